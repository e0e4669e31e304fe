"""Cross-lingual word mapping: a title word the training titles never used becomes its
nearest training word, by the multilingual sentence encoder's embedding of single words.

Why: the model's n-gram (wide) part knows only the words of the train split. A title in
Spanish ("Bolso de mano negro") shares almost none of them, so that part says nothing
useful, while the encoder places "negro" close to "black". Mapping each unseen word to
its nearest known word (when the cosine reaches `threshold`) hands the n-gram part words
it learned; the sentence embedding stays that of the original title.

One owner, used by the Embedder (which fits the mapper on the train split's titles and
writes the mapped title of every product as `features.TITLE_MAPPED`) and by `categorize`
(which reads the fitted mapper from the serving model's assets and maps each request the
same way). Words are embedded by the shared text encoder through the embedding cache
(`embed_texts`), so a word has one vector everywhere.

Words are what `trainer/preprocessing.normalize_text` makes of a text: lower-cased runs of
letters and digits of any script. Only words of letters alone are mapped or mapped to:
a word with a digit (a size, a year, a model code such as "ch2694") is a code, not a word
of a language, and its character n-grams already match its siblings'.
"""
from __future__ import annotations

import io
import re
from typing import Iterable, Optional, Sequence

import numpy as np

# The threshold the pipeline fits with: the cosine an unseen word's nearest training word
# needs to replace it. Chosen on the English calibration split (BENCHMARKS.md, "Model
# quality"), never on the translated titles.
DEFAULT_THRESHOLD = 0.75
FILE_NAME = "word_mapper.npz"  # in the Embedder's WordMapper artifact and the model's assets.extra
URI_CONFIG = "word_mapper_uri"  # the Trainer's custom_config key of the WordMapper artifact's folder

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)  # normalize_text's [^\p{L}\p{N}]+
_LETTERS_ONLY = re.compile(r"[^\W\d_]+", re.UNICODE)


def mappable(word: str) -> bool:
    """Whether `word` (one of `words`) is letters alone: only such words are mapped."""
    return _LETTERS_ONLY.fullmatch(word) is not None


def words(text: str) -> list[str]:
    """The words of `text` as the n-gram features see them (normalize_text, in Python)."""
    return _NOT_WORD.sub(" ", text.lower()).split()


class WordMapper:
    """A fitted vocabulary (train title words, sorted) with unit vectors [V, 512] and the
    cosine threshold. `map_texts` returns each text as its words, unseen ones replaced."""

    def __init__(self, vocabulary: Sequence[str], vectors: np.ndarray, threshold: float = DEFAULT_THRESHOLD):
        vectors = np.asarray(vectors, np.float32)
        if vectors.shape[0] != len(vocabulary):
            raise ValueError(f"word mapper: {len(vocabulary)} words but {vectors.shape[0]} vectors")
        self.vocabulary = list(vocabulary)
        self.vectors = vectors
        self.threshold = float(threshold)
        self.known_only: list[str] = []  # known words that are never targets (with a digit)
        self._known = set(self.vocabulary)

    # ---- fitting ------------------------------------------------------------------------
    @classmethod
    def fit(cls, titles: Iterable[str], cache=None, threshold: float = DEFAULT_THRESHOLD,
            encoder=None) -> "WordMapper":
        """The mapper of a train split: every word of `titles` is known; each one of
        letters alone is a possible replacement, embedded by the shared text encoder."""
        from schema.encoders import embed_texts

        vocabulary = sorted({w for title in titles for w in words(title)})
        targets = [w for w in vocabulary if mappable(w)]
        vectors = _unit(embed_texts(targets, cache, encoder)) if targets else np.zeros((0, 512), np.float32)
        mapper = cls(targets, vectors, threshold)
        mapper.known_only = [w for w in vocabulary if not mappable(w)]
        mapper._known.update(mapper.known_only)
        return mapper

    # ---- applying -----------------------------------------------------------------------
    def unseen(self, text: str) -> list[str]:
        """The words of `text` the mapper may replace: not in the vocabulary, letters alone."""
        return [w for w in words(text) if w not in self._known and mappable(w)]

    def nearest(self, unseen: Sequence[str], cache=None, encoder=None) -> dict[str, tuple[str, float]]:
        """{unseen word: (nearest vocabulary word, cosine)}."""
        from schema.encoders import embed_texts

        unique = list(dict.fromkeys(unseen))
        if not unique or not self.vocabulary:
            return {}
        sims = _unit(embed_texts(unique, cache, encoder)) @ self.vectors.T
        best = sims.argmax(axis=1)
        return {w: (self.vocabulary[b], float(sims[i, b])) for i, (w, b) in enumerate(zip(unique, best))}

    def map_texts(self, texts: Sequence[str], cache=None, encoder=None) -> list[str]:
        """Each text as its normalised words, every unseen word whose nearest training word
        has a cosine of at least `threshold` replaced by that word (others kept)."""
        nearest = self.nearest([w for t in texts for w in self.unseen(t)], cache, encoder)
        out = []
        for text in texts:
            mapped = []
            for w in words(text):
                hit = nearest.get(w)
                mapped.append(hit[0] if hit is not None and hit[1] >= self.threshold else w)
            out.append(" ".join(mapped))
        return out

    # ---- the serving asset ----------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """npz: the vocabulary, its vectors (float16: half the size, cosines to ~1e-3), the
        words without a letter (known, never targets) and the threshold."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, vocabulary=np.array(self.vocabulary, dtype=str),
                            vectors=self.vectors.astype(np.float16),
                            known_only=np.array(self.known_only, dtype=str),
                            threshold=np.float32(self.threshold))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "WordMapper":
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            mapper = cls([str(w) for w in npz["vocabulary"]], npz["vectors"].astype(np.float32),
                         float(npz["threshold"]))
            mapper.known_only = [str(w) for w in npz["known_only"]]
        mapper._known.update(mapper.known_only)
        return mapper

    def save(self, path: str) -> None:
        """Writes the mapper file, creating its folder (an output artifact's folder does not
        exist yet on Kubeflow / Vertex AI)."""
        import os

        import tensorflow as tf

        tf.io.gfile.makedirs(os.path.dirname(path) or ".")
        with tf.io.gfile.GFile(path, "wb") as handle:
            handle.write(self.to_bytes())

    @classmethod
    def load(cls, path: str) -> "WordMapper":
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as handle:
            return cls.from_bytes(handle.read())


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def load_optional(path: str) -> Optional[WordMapper]:
    """The mapper at `path`, or None when the file is not there (a model trained before
    the mapper existed, or without embeddings)."""
    import tensorflow as tf

    return WordMapper.load(path) if tf.io.gfile.exists(path) else None
