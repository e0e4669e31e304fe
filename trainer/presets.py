"""Model presets: the size knobs of the model and of training, in one place.

`small` keeps the test suite fast on 2 cores, `default` is what `make run` trains, `large`
is sized for a data-parallel cluster run (see kubeflow/). Text hashing sizes are shared
with preprocessing_fn, which produces the ids the model embeds.
"""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelPreset:
    name: str
    hash_buckets: int = 2**18  # word and character n-gram ids (preprocessing_fn hashes into these)
    char_ngram_widths: tuple[int, ...] = (3,)  # character n-grams of each word (preprocessing_fn)
    ngram_weighting: str = "tfidf"  # n-grams weighted by TF-IDF (train-split frequencies) or "uniform"
    token_dim: int = 64  # learned n-gram embedding width
    ngram_lr_multiplier: float = 10.0  # n-gram embeddings learn this many times faster than the rest
    ngram_init_scale: float = 1e-3  # initial n-gram embeddings uniform in +-this (see HashedBag)
    # Wide part: per-class weights of the n-grams, added to every level's logits, in this
    # many buckets (the n-gram ids folded; a divisor of hash_buckets; 0 = none). Fewer than
    # hash_buckets because the table has a column per class of every level.
    wide_buckets: int = 2**16
    wide_lr_multiplier: float = 10.0  # as ngram_lr_multiplier, for the wide table
    shared_wide: bool = True  # an ensemble's members share one wide table (False: one each)
    # The n-gram tables hold only the rows of the train split's n-grams, and one zero row that
    # every other id reads: while training (trainer/model.py, build_model), and in float16 in
    # the serving model (keep_seen_ngram_rows). Both are a fraction of the full tables' size.
    compact_tables: bool = True
    hidden_units: int = 256  # shared fused representation
    head_units: int = 128  # per-level head, after the parent embedding is joined
    parent_dim: int = 32
    dropout: float = 0.2
    modality_dropout: float = 0.15  # chance to blank a whole modality in training
    ngram_dropout: float = 0.3  # chance to blank the title n-grams alone (sentence embedding kept)
    photo_aux_weight: float = 0.5  # extra loss: heads trained from the photo alone (photo products)
    normalize_embeddings: bool = True  # layer-normalise each pretrained embedding before fusion
    members: int = 3  # independently initialised copies whose level probabilities are averaged (1 = one model)
    epochs: int = 6
    batch_size: int = 128
    learning_rate: float = 3e-3
    lazy_sparse_updates: bool = True  # Adam moves only the n-gram rows in the batch (trainer/optimizers.py)
    beam_width: int = 5
    bag_of_words_epochs: int = 4  # the linear bag-of-words model (the gate's first baseline)

    def __post_init__(self):
        if self.members < 1:
            raise ValueError(f"preset {self.name!r}: members must be at least 1, not {self.members}")
        if self.wide_buckets < 0 or (self.wide_buckets and self.hash_buckets % self.wide_buckets):
            raise ValueError(f"preset {self.name!r}: wide_buckets ({self.wide_buckets}) must be 0 or a divisor "
                             f"of hash_buckets ({self.hash_buckets})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS = {
    "small": ModelPreset("small", hash_buckets=2**15, wide_buckets=2**12, token_dim=32, hidden_units=96,
                         head_units=64, parent_dim=16, members=2, epochs=4, batch_size=64, beam_width=3, bag_of_words_epochs=3),
    "default": ModelPreset("default"),
    "large": ModelPreset("large", hash_buckets=2**21, wide_buckets=2**18, token_dim=128, hidden_units=1024,
                         head_units=512, parent_dim=64, members=2, epochs=20, batch_size=1024, beam_width=8),
}


def get_preset(name_or_dict: str | dict[str, Any]) -> ModelPreset:
    if isinstance(name_or_dict, dict):
        return ModelPreset(**name_or_dict)
    if name_or_dict not in PRESETS:
        raise ValueError(f"unknown model preset {name_or_dict!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name_or_dict]
