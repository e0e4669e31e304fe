"""preprocessing_fn: text normalisation, hashed n-grams and per-level label ids.

It runs in Transform and is exported with the model (the tft layer), so serving applies
exactly the preprocessing that training saw. Label ids come from the taxonomy artifact;
nothing here decides what a category is.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from schema import features
from schema.taxonomy import STOP, Taxonomy, taxonomy_uri
from trainer.presets import ModelPreset

HASH_BUCKETS_CONFIG = "hash_buckets"
CHAR_NGRAMS_CONFIG = "char_ngram_widths"
DEFAULT_CHAR_NGRAMS = ModelPreset.char_ngram_widths  # the presets own the defaults
NGRAM_WEIGHTING_CONFIG = "ngram_weighting"
NGRAM_WEIGHTINGS = ("uniform", "tfidf")


def dense_string(x: Any) -> tf.Tensor:
    """A [batch] string tensor from a dense, sparse or ragged [batch, 1] input."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x, default_value="")
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor(default_value="")
    if x.shape.rank == 2:
        x = tf.concat([x, tf.fill([tf.shape(x)[0], 1], "")], axis=1)[:, 0]
    return x


def dense_int(x: Any) -> tf.Tensor:
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x, default_value=0)
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor(default_value=0)
    if x.shape.rank == 2:
        x = tf.concat([x, tf.zeros([tf.shape(x)[0], 1], x.dtype)], axis=1)[:, 0]
    return x


def normalize_text(text: tf.Tensor) -> tf.Tensor:
    """Lower-cases and keeps letters and digits of any script, so titles in Spanish,
    German or Chinese tokenise as well as English ones."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"[^\p{L}\p{N}]+", " ")
    return tf.strings.strip(text)


def hashed_ngrams(text: tf.Tensor, buckets: int, char_widths: tuple[int, ...] = DEFAULT_CHAR_NGRAMS
                  ) -> tf.SparseTensor:
    """Word unigrams and bigrams plus character n-grams of each word, hashed to ids.

    Character n-grams carry misspellings, plural forms and unseen brand-model strings.
    """
    words = tf.strings.split(text)  # [batch, (words)]
    word_grams = tf.strings.ngrams(words, ngram_width=(1, 2), separator=" ")
    padded = tf.strings.join(["<", words, ">"])
    chars = tf.strings.unicode_split(padded, "UTF-8")  # [batch, (words), (chars)]
    char_grams = tf.strings.ngrams(chars, ngram_width=tuple(char_widths), separator="")
    char_grams = tf.strings.join(["#", char_grams.merge_dims(1, 2)])
    grams = tf.concat([word_grams, char_grams], axis=1)
    ids = tf.strings.to_hash_bucket_fast(grams, buckets)
    return ids.to_sparse()


def ngram_title(inputs: dict[str, Any]) -> tf.Tensor:
    """The title the n-grams read: the Embedder's `title_mapped` (unseen words mapped to
    training words, schema/encoders/word_mapper.py) where it is there and not empty, else
    the title itself (examples embedded without a mapper, requests that do not send it).
    The sentence embedding is the original title's either way."""
    title = dense_string(inputs[features.TITLE])
    if features.TITLE_MAPPED not in inputs:
        return title
    mapped = dense_string(inputs[features.TITLE_MAPPED])
    return tf.where(tf.equal(mapped, ""), title, mapped)


def _level_tables(taxonomy: Taxonomy) -> list[tf.lookup.StaticHashTable]:
    tables = []
    for level in taxonomy.levels:
        keys = [c for c in level.classes if c != STOP]
        values = [i for i, c in enumerate(level.classes) if c != STOP]
        tables.append(
            tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(keys, tf.string), tf.constant(values, tf.int64)
                ),
                default_value=-1,
            )
        )
    return tables


def label_ids(inputs: dict[str, Any], taxonomy: Taxonomy) -> dict[str, tf.Tensor]:
    """Per level: the node id, STOP (0) just below the product's depth, -1 further down.

    Mirrors `Taxonomy.label_ids`: a path whose deeper nodes were merged away (rare) or
    never seen stops at its deepest known ancestor.
    """
    out = {}
    prefix = None
    valid_above = None
    ids_above = None
    for k, table in enumerate(_level_tables(taxonomy), start=1):
        name = dense_string(inputs[features.level_feature(k)])
        prefix = name if prefix is None else tf.strings.join([prefix, features.PATH_SEPARATOR, name])
        node = table.lookup(prefix)
        valid = tf.logical_and(node >= 0, tf.not_equal(name, ""))
        if valid_above is not None:
            valid = tf.logical_and(valid, valid_above)
            # STOP is a target only under parents where training products end; elsewhere
            # the product's next node was unseen in training and the level is masked.
            stop_ok = tf.gather(tf.constant(taxonomy.child_mask(k)[:, 0] > 0), tf.maximum(ids_above, 0))
            stop_here = tf.logical_and(tf.logical_and(valid_above, tf.logical_not(valid)), stop_ok)
            ids = tf.where(valid, node, tf.where(stop_here, tf.zeros_like(node), -tf.ones_like(node)))
        else:
            ids = tf.where(valid, node, -tf.ones_like(node))
        ids_above = ids
        out[features.label_id_feature(k)] = ids
        out[features.label_mask_feature(k)] = tf.cast(ids >= 0, tf.float32)
        valid_above = valid
    return out


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    taxonomy = Taxonomy.load(taxonomy_uri(custom_config))
    buckets = int(custom_config[HASH_BUCKETS_CONFIG])
    char_widths = tuple(int(w) for w in custom_config.get(CHAR_NGRAMS_CONFIG, DEFAULT_CHAR_NGRAMS))
    weighting = custom_config.get(NGRAM_WEIGHTING_CONFIG, ModelPreset.ngram_weighting)
    if weighting not in NGRAM_WEIGHTINGS:
        raise ValueError(f"{NGRAM_WEIGHTING_CONFIG} is {weighting!r}; choose one of {NGRAM_WEIGHTINGS}")
    text = tf.strings.join([ngram_title(inputs), dense_string(inputs[features.DESCRIPTION])], separator=" ")
    text = normalize_text(text)
    outputs = {
        features.TITLE_NORMALIZED: text,
        features.TEXT_TOKENS: hashed_ngrams(text, buckets, char_widths),
        features.HAS_IMAGE: dense_int(inputs[features.HAS_IMAGE]),
    }
    if weighting == "tfidf":
        # Document frequencies come from the train split (Transform analyses only it) and
        # are frozen into the transform graph, so serving weighs a title exactly as training
        # did. Rare, telling n-grams (brand and model names) weigh most from the first step,
        # instead of waiting for their few gradient updates.
        ids, weights = tft.tfidf(outputs[features.TEXT_TOKENS], buckets)
        outputs[features.TEXT_TOKENS] = ids
        outputs[features.TEXT_TOKEN_WEIGHTS] = weights
    for name in (features.TEXT_EMBEDDING, features.IMAGE_EMBEDDING):
        if name in inputs:  # added by the Embedder component; passed through unchanged
            outputs[name] = inputs[name]
    if features.level_feature(1) in inputs:
        outputs.update(label_ids(inputs, taxonomy))
    return outputs
