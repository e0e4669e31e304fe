"""Feature names shared by every component: the single home of the data contract.

ExampleGen writes these keys, the curated schema declares them, Transform reads them and
the serving signature accepts them. Renaming one here renames it everywhere.
"""
from __future__ import annotations

ID = "id"
TITLE = "title"
DESCRIPTION = "description"
IMAGE = "image"  # encoded image bytes (JPEG/PNG/...), empty when the product has no photo
HAS_IMAGE = "has_image"
CATEGORY_PATH = "category_path"  # the full raw label path, levels joined by PATH_SEPARATOR
PATH_SEPARATOR = " > "

# Names the pipeline reserves; attribute columns of a catalog spec may not use them.
LEVEL_PREFIX = "level_"


def level_feature(level: int) -> str:
    """Raw name of the category at `level` (1-based); empty string below the product's depth."""
    return f"{LEVEL_PREFIX}{level}"


def label_id_feature(level: int) -> str:
    """Transformed label id at `level`: index into the taxonomy's classes, -1 when masked."""
    return f"label_{level}_id"


def label_mask_feature(level: int) -> str:
    """Transformed 0/1 weight: whether `level` takes part in the loss for this product."""
    return f"label_{level}_mask"


# Transformed text features.
TITLE_NORMALIZED = "title_xf"
TEXT_TOKENS = "text_tokens_xf"  # hashed word and character n-gram ids (ragged -> sparse)
TEXT_TOKEN_WEIGHTS = "text_token_weights_xf"  # TF-IDF weight of each id in TEXT_TOKENS (same indices)

# Embedding features added by the Embedder component.
TEXT_EMBEDDING = "text_embedding"
IMAGE_EMBEDDING = "image_embedding"
# Also added by the Embedder (and by `categorize`): the title's words with each word the
# train titles never used replaced by its nearest train word (schema/encoders/word_mapper.py).
# The n-gram features read it instead of the title; "" or absent means "use the title".
TITLE_MAPPED = "title_mapped"

# Serving outputs (one contract for the trained model and the baseline, read by TFMA and
# by `categorize`). They live in the signature's output dict, never among the input
# features: OUT_PATH is the model's answer to the label CATEGORY_PATH and carries the same
# text on purpose (as `categorize`'s output column does). It is kept, not renamed, because
# every pushed model and every baseline the gate compares with already serves it.
OUT_PATH = "category_path"  # thresholded path, "" when the model abstains
OUT_CONFIDENCE = "confidence"  # confidence of the returned path's deepest node
OUT_DEPTH = "depth"
OUT_FULL_PATH = "full_path"  # decoded path before thresholding
OUT_FULL_CONFIDENCE = "full_confidence"


def out_level_class(level: int) -> str:
    return f"level_{level}_class"


def out_level_confidence(level: int) -> str:
    return f"level_{level}_confidence"


RESERVED = {
    ID,
    TITLE,
    DESCRIPTION,
    IMAGE,
    HAS_IMAGE,
    CATEGORY_PATH,
    TEXT_EMBEDDING,
    IMAGE_EMBEDDING,
    TITLE_MAPPED,
}


def is_reserved(name: str) -> bool:
    return name in RESERVED or name.startswith(LEVEL_PREFIX) or name.endswith("_xf")
