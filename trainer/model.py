"""The hierarchical classifier: fused encoder, one head per level, beam search over the tree.

- Encoder: a learned bag of hashed word and character n-grams (TF-IDF weighted by
  Transform), fused with the layer-normalised pretrained text and image embeddings when
  the examples carry them (modality dropout in training, so text-only, photo-only and
  sentence-embedding-only products all work).
- Head k sees the encoder output and the parent it is conditioned on: the true parent in
  training (teacher forcing), the decoded parent at inference. Its logits are masked to
  the parent's children, so P(child | parent, x) is a proper distribution over valid nodes.
- Decoding is a beam search over the tree; a path's score is the product of its level
  probabilities, and only paths of the taxonomy can come out.
- The default preset trains an ensemble of such classifiers side by side and averages
  their level probabilities in the beam search (`HierarchicalEnsemble`).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import tensorflow as tf
import tf_keras as keras

from schema import features
from schema.taxonomy import Taxonomy
from trainer.presets import ModelPreset

_NEG = -1e9


def _present(x: tf.Tensor) -> tf.Tensor:
    """[N, 1] 1.0 where the embedding row is not all zeros (a photo or text is there)."""
    return tf.cast(tf.reduce_any(tf.not_equal(x, 0.0), axis=-1, keepdims=True), tf.float32)


class HashedBag(keras.layers.Layer):
    """Learned embeddings of hashed n-gram ids, pooled (fastText-style)."""

    def __init__(self, buckets: int, dim: int, init_scale: float = 0.05, lr_multiplier: float = 1.0,
                 rows: np.ndarray | None = None, **kwargs):
        """`rows`: the n-gram ids (of `buckets`) the table holds, one trainable row each, plus
        one zero row that every other id reads; None: a row per bucket."""
        super().__init__(**kwargs)
        self.buckets = buckets
        self.dim = dim
        self.init_scale = init_scale
        self._rows = None if rows is None else _bucket_ids(rows, buckets, self.name)
        # Adam moves every touched row by about the learning rate per step, so an n-gram
        # seen in a handful of titles barely leaves its initial value in a few epochs. The
        # table is stored divided by this factor and multiplied back on lookup: the same
        # function, with rare n-grams learning `lr_multiplier` times faster.
        self.lr_multiplier = lr_multiplier
        self.kept_ids = None  # set by build (`rows`) or keep_rows: the sorted n-gram ids whose rows the table holds

    def build(self, input_shape):
        # A tiny init_scale: an n-gram never seen in training adds next to nothing, so a
        # title in another language is not read as noise from random rows, it only dilutes
        # the bag. Not exactly zero: a model whose only input is the n-grams would then feed
        # zeros to its ReLU layer and get no gradient at all.
        scale = self.init_scale / self.lr_multiplier
        initializer = keras.initializers.RandomUniform(-scale, scale) if scale > 0 else keras.initializers.Zeros()
        if self._rows is None:
            self.table = self.add_weight(name="table", shape=(self.buckets, self.dim), initializer=initializer)
            return
        # Training on the rows of the train split's n-grams alone computes what the full table
        # would for them (the other rows never move), in a fraction of its memory with Adam's
        # two slots; the last row stays zero: no train-split n-gram reads it, so no gradient.
        def kept_rows_and_zero_row(shape, dtype=None):
            return tf.concat([initializer([shape[0] - 1, shape[1]], dtype), tf.zeros([1, shape[1]], dtype)], 0)

        self.table = self.add_weight(name="table", shape=(self._rows.size + 1, self.dim),
                                     initializer=kept_rows_and_zero_row)
        self.kept_ids = tf.Variable(self._rows, trainable=False, name="kept_ids")

    def call(self, ids: tf.SparseTensor, weights: tf.SparseTensor | None = None) -> tf.Tensor:
        """Weighted (TF-IDF from Transform) or plain sum over n-grams, divided by the L2 norm
        of the weights."""
        if self.kept_ids is None:
            pooled = tf.nn.safe_embedding_lookup_sparse(self.table, ids, weights, combiner="sqrtn")
        else:
            pooled = self._pool_kept_rows(ids, weights)
        return pooled * self.lr_multiplier if self.lr_multiplier != 1.0 else pooled

    def keep_rows(self, ids: np.ndarray, dtype: tf.DType = tf.float16) -> None:
        """Shrinks the table to the rows of `ids` (the n-gram ids training saw), stored as
        `dtype`, plus one zero row that every other id reads from then on; a table built on
        these rows (`rows`) is only stored as `dtype`.

        For the serving model: training moves only the rows of the n-grams in its batches,
        a small part of the buckets (the train split's distinct n-grams, a fraction of the
        hash buckets on these catalogs), so the export keeps those rows, exactly, and an
        unseen n-gram adds nothing (instead of its row's tiny initial value) while its
        weight still counts in the pooling's norm. Lookups cast the batch's rows to
        float32, so float16 storage changes a weight by at most one part in 2,000."""
        ids = _bucket_ids(ids, self.buckets, self.name)
        if self.kept_ids is not None and (self._rows is None or not self.table.trainable):
            raise ValueError(f"{self.name}: the table is already reduced to its kept rows")
        if self.kept_ids is not None:  # built on its rows: they must be these
            if not np.array_equal(ids, self._rows):
                raise ValueError(f"{self.name}: the table was trained on other n-gram rows than the kept ids")
            table = self.table.numpy().astype(dtype.as_numpy_dtype)
        else:
            rows = tf.gather(self.table, ids).numpy()
            table = np.concatenate([rows, np.zeros((1, self.dim), rows.dtype)]).astype(dtype.as_numpy_dtype)
        del self.table  # Keras stops tracking the trained table: an export leaves it out
        self.table = tf.Variable(table, trainable=False, name="table")
        if self.kept_ids is None:
            self.kept_ids = tf.Variable(ids, trainable=False, name="kept_ids")

    def _pool_kept_rows(self, ids: tf.SparseTensor, weights: tf.SparseTensor | None) -> tf.Tensor:
        """The pooling of `call` over the kept rows: each n-gram's row (the zero row for an id
        not kept) read once and cast to float32, sum of weight x row over the product's
        n-grams divided by the L2 norm of its weights; a product without n-grams, or an
        n-gram of weight <= 0, adds nothing (as the lookup over the full table prunes them)."""
        kept = self.kept_ids
        last = tf.size(kept, out_type=tf.int64) - 1
        position = tf.minimum(tf.searchsorted(kept, ids.values, out_type=tf.int64), last)
        rows = tf.where(tf.equal(tf.gather(kept, position), ids.values), position, last + 1)
        values = tf.ones_like(ids.values, tf.float32) if weights is None else tf.cast(weights.values, tf.float32)
        values = tf.maximum(values, 0.0)
        products = ids.indices[:, 0]
        count = ids.dense_shape[0]
        summed = tf.math.unsorted_segment_sum(tf.cast(tf.gather(self.table, rows), tf.float32) * values[:, None],
                                              products, count)
        norm = tf.sqrt(tf.math.unsorted_segment_sum(tf.square(values), products, count))
        return tf.math.divide_no_nan(summed, norm[:, None])


def _bucket_ids(ids: np.ndarray, buckets: int, name: str) -> np.ndarray:
    """`ids` sorted and unique, checked to be a non-empty set of buckets in [0, buckets)."""
    ids = np.unique(np.asarray(ids, np.int64))
    if ids.size == 0 or ids[0] < 0 or ids[-1] >= buckets:
        raise ValueError(f"{name}: kept ids must be a non-empty set of buckets in [0, {buckets})")
    return ids


def wide_table(preset: ModelPreset, columns: int, seen_ids: np.ndarray | None = None) -> HashedBag:
    """The wide part's table: per-class weights (`columns`: the classes of every level) of
    the n-grams folded into `preset.wide_buckets`, starting at zero; with `seen_ids` (the
    train split's n-gram ids), only the rows they fold into."""
    rows = None if seen_ids is None else np.mod(seen_ids, preset.wide_buckets)
    return HashedBag(preset.wide_buckets, columns, init_scale=0.0, lr_multiplier=preset.wide_lr_multiplier,
                     rows=rows, name="wide")


class HierarchicalClassifier(keras.Model):
    """`linear=True` gives the bag-of-words model: a linear model with the same heads,
    the same decoding and the same export, so the two are compared like for like."""

    def __init__(self, taxonomy: Taxonomy, preset: ModelPreset, linear: bool = False,
                 embedding_features: tuple[str, ...] = (), wide: HashedBag | None = None,
                 seen_ids: np.ndarray | None = None, **kwargs):
        """`wide`: a wide table shared with other members of an ensemble (`wide_table`);
        None builds this classifier's own when the preset has a wide part. `seen_ids`: the
        train split's n-gram ids, for n-gram tables that hold only their rows (see
        `build_model`); None: a row per bucket."""
        super().__init__(**kwargs)
        self.depth = taxonomy.depth
        self.linear = linear
        self.preset = preset
        self.embedding_features = tuple(embedding_features)
        self.num_classes = [taxonomy.num_classes(k) for k in range(1, self.depth + 1)]
        if linear:  # the documented bag-of-words model: unweighted n-grams, plain init and rate
            self.bag = HashedBag(preset.hash_buckets, preset.token_dim, name="ngram_bag")
        else:
            self.bag = HashedBag(preset.hash_buckets, preset.token_dim, preset.ngram_init_scale,
                                 preset.ngram_lr_multiplier, rows=seen_ids, name="ngram_bag")
        self.sentence_features = [n for n in self.embedding_features if n != features.IMAGE_EMBEDDING]
        self.image_features = [n for n in self.embedding_features if n == features.IMAGE_EMBEDDING]
        self.norms = {name: keras.layers.LayerNormalization(name=f"{name}_norm") for name in self.embedding_features}
        self.child_masks = [None] + [
            tf.constant(taxonomy.child_mask(k), tf.float32) for k in range(2, self.depth + 1)
        ]
        if linear:
            self.fuse = None
        else:
            self.fuse = keras.Sequential(
                [keras.layers.Dense(preset.hidden_units, activation="relu"), keras.layers.Dropout(preset.dropout)],
                name="fuse",
            )
        self.parent_embeddings = [None] + [
            keras.layers.Embedding(self.num_classes[k - 2], preset.parent_dim, name=f"parent_{k}")
            for k in range(2, self.depth + 1)
        ]
        self.head_hidden = [None] + [
            None if linear else keras.layers.Dense(preset.head_units, activation="relu", name=f"head_hidden_{k}")
            for k in range(2, self.depth + 1)
        ]
        self.heads = [keras.layers.Dense(n, name=f"head_{k}") for k, n in enumerate(self.num_classes, start=1)]
        # Wide part: per-class weights of every n-gram, added to each level's logits. A
        # rare brand or model n-gram can then point straight at its category, which the
        # narrow n-gram embedding of the deep tower has to squeeze through `token_dim`.
        self.wide = None
        if not linear and preset.wide_buckets > 0:
            self.wide = wide if wide is not None else wide_table(preset, sum(self.num_classes), seen_ids)

    # ---- encoder ------------------------------------------------------------------------
    def encode(self, inputs: dict, training: bool = False, wide_done: dict | None = None
               ) -> tuple[tf.Tensor, list | None]:
        """(fused representation, the wide part's logits per level or None). `wide_done`:
        wide logits already computed on these inputs, by table, for members that share it."""
        return self._encode(self._modalities(inputs, wide_done), training)

    def _encode(self, modalities: tuple, training: bool) -> tuple[tf.Tensor, list | None]:
        wide, *modalities = self._drop_modality(*modalities) if training else modalities
        return self._fuse(*modalities, training=training), wide

    def wide_logits(self, inputs: dict) -> list:
        """The wide part's logits on `inputs`, per level (this classifier must have a wide part)."""
        ids = inputs[features.TEXT_TOKENS]
        # Folding the ids is hashing into fewer buckets: the ids are a fingerprint modulo
        # hash_buckets, of which wide_buckets is a divisor (checked in the preset).
        folded = tf.SparseTensor(ids.indices, tf.math.floormod(ids.values, self.wide.buckets), ids.dense_shape)
        return tf.split(self.wide(folded, inputs.get(features.TEXT_TOKEN_WEIGHTS)), self.num_classes, axis=1)

    def _modalities(self, inputs: dict, wide_done: dict | None = None) -> tuple:
        """(wide logits per level or None, n-gram bag, sentence embeddings, image embeddings)
        as the product has them."""
        ids = inputs[features.TEXT_TOKENS]
        weights = None if self.linear else inputs.get(features.TEXT_TOKEN_WEIGHTS)
        bag = self.bag(ids, weights)
        wide = None if self.wide is None or wide_done is None else wide_done.get(id(self.wide))
        if self.wide is not None and wide is None:
            wide = self.wide_logits(inputs)
            if wide_done is not None:
                wide_done[id(self.wide)] = wide
        sentence = [tf.cast(inputs[n], tf.float32) for n in self.sentence_features]
        image = [tf.cast(inputs[n], tf.float32) for n in self.image_features]
        return wide, bag, sentence, image

    def _fuse(self, bag: tf.Tensor, sentence: list, image: list, training: bool) -> tf.Tensor:
        names = self.sentence_features + self.image_features
        parts = [bag] + [self._normalise(name, x) for name, x in zip(names, sentence + image)]
        h = tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]
        return h if self.fuse is None else self.fuse(h, training=training)

    def _normalise(self, name: str, x: tf.Tensor) -> tf.Tensor:
        """Layer-normalised, so the sentence embedding (unit norm, ~0.04 per dimension) and
        the image features (~0.3 per dimension) enter the fusion at one scale; an absent
        embedding (all zeros: no photo, no text, or dropped) stays exactly zero, the same in
        training and at serving."""
        if not self.preset.normalize_embeddings:
            return x
        return self.norms[name](x) * _present(x)

    def _drop_modality(self, wide: list | None, bag: tf.Tensor, sentence: list, image: list) -> tuple:
        """Modality dropout, one draw per product.

        A product with a photo loses all of its text (title n-grams and sentence embedding
        together, as a product without a title arrives at serving) with probability p, or
        its photo with probability p, never both. Independently, any product loses its
        n-grams alone with probability `ngram_dropout`: the heads then have to categorise
        from the multilingual sentence embedding, which is all a title in a language the
        n-grams never saw leaves them with."""
        p = self.preset.modality_dropout
        n = tf.shape(bag)[0]
        # Without a sentence embedding (the bag-of-words model) the n-grams are all there is.
        ngram_dropout = self.preset.ngram_dropout if sentence else 0.0
        keep_ngrams = tf.cast(tf.random.uniform([n, 1]) >= ngram_dropout, tf.float32)
        if p > 0 and image:
            has_photo = _present(image[0])
            u = tf.random.uniform([n, 1])
            keep_text = 1.0 - tf.cast(u < p, tf.float32) * has_photo
            keep_image = 1.0 - tf.cast((u >= p) & (u < 2 * p), tf.float32)
            sentence = [t * keep_text for t in sentence]
            image = [i * keep_image for i in image]
            keep_ngrams = keep_ngrams * keep_text
        if wide is not None:  # the wide part reads the n-grams too, and goes with them
            wide = [w * keep_ngrams for w in wide]
        return wide, bag * keep_ngrams, sentence, image

    def level_logits(self, level: int, h: tf.Tensor, parent: tf.Tensor | None,
                     wide: tf.Tensor | None = None) -> tf.Tensor:
        """Logits at `level` (1-based); for level >= 2, conditioned on and masked by `parent`.
        `wide`: the wide part's logits at this level, or None."""
        if level == 1:
            logits = self.heads[0](h)
            return logits if wide is None else logits + wide
        x = tf.concat([h, self.parent_embeddings[level - 1](parent)], axis=-1)
        if self.head_hidden[level - 1] is not None:
            x = self.head_hidden[level - 1](x)
        logits = self.heads[level - 1](x)
        if wide is not None:
            logits += wide
        mask = tf.gather(self.child_masks[level - 1], parent)
        return logits + (1.0 - mask) * _NEG

    # ---- training (teacher forcing) ----------------------------------------------------
    def call(self, inputs: dict, training: bool = False, wide: list | None = None) -> dict:
        """Teacher-forced logits per level. `wide`: this classifier's wide logits on `inputs`,
        already computed (`wide_logits`) by an ensemble whose members share the table; None:
        computed here."""
        modalities = self._modalities(inputs, None if wide is None else {id(self.wide): wide})
        h, wide = self._encode(modalities, training)
        _, bag, sentence, image = modalities
        if training and self.preset.photo_aux_weight > 0 and image:
            self._add_photo_only_loss(inputs, bag, sentence, image, self.preset.photo_aux_weight)
        out = {}
        for k in range(1, self.depth + 1):
            parent = None
            if k > 1:
                parent = tf.maximum(tf.cast(inputs[features.label_id_feature(k - 1)], tf.int32), 0)
            out[f"level_{k}"] = self.level_logits(k, h, parent, None if wide is None else wide[k - 1])
        return out

    def _add_photo_only_loss(self, inputs: dict, bag: tf.Tensor, sentence: list, image: list,
                             weight: float) -> None:
        """Every product with a photo also trains the heads from its photo alone (text
        blanked, teacher-forced like the main loss), weighted by `photo_aux_weight`.

        Modality dropout alone shows the heads a photo-only product only when it happens
        to drop the text (15% of photo products), and the fused model then got less out of
        a photo than a linear probe on the frozen image embedding does."""
        # Only the products with a photo go through the photo-only pass (a fifth of a fashion
        # batch): the others would add nothing to the loss but their share of the compute.
        rows = tf.where(_present(image[0])[:, 0] > 0)[:, 0]
        count = tf.size(rows)
        h = self._fuse(tf.zeros([count, bag.shape[-1]]), [tf.zeros([count, t.shape[-1]]) for t in sentence],
                       [tf.gather(i, rows) for i in image], training=True)

        def photo_rows(name: str, dtype: tf.DType) -> tf.Tensor:
            return tf.reshape(tf.gather(tf.cast(inputs[name], dtype), rows), [-1])

        total = 0.0
        for k in range(1, self.depth + 1):
            labels = tf.maximum(photo_rows(features.label_id_feature(k), tf.int32), 0)
            parent = None if k == 1 else tf.maximum(photo_rows(features.label_id_feature(k - 1), tf.int32), 0)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, self.level_logits(k, h, parent))
            w = photo_rows(features.label_mask_feature(k), tf.float32)
            total += tf.reduce_sum(ce * w) / tf.maximum(tf.cast(count, tf.float32), 1.0)
        self.add_loss(weight * total)

    # ---- inference ----------------------------------------------------------------------
    def beam_search(self, inputs: dict, beam_width: int, all_beams: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        return tree_beam_search([self], inputs, beam_width, all_beams)


class HierarchicalEnsemble(keras.Model):
    """`members` independently initialised classifiers trained side by side on the same
    batches (each on its own loss, with its own dropout draws) whose level probabilities are
    averaged at inference.

    Seeds alone move leaf accuracy by about +-0.3 points on these catalogs; averaging a few
    members removes most of that variance and is worth more than any single-model change
    found on the calibration split (BENCHMARKS.md). Training outputs are stacked member
    logits [N, members, C] per level (see `trainer.optimizers.members_cross_entropy`).

    With `preset.shared_wide` the members share one wide table, trained by all of their
    losses: the wide part is a linear model of the n-grams, with a column per class of
    every level, and one copy per member was most of a serving model."""

    def __init__(self, taxonomy: Taxonomy, preset: ModelPreset, embedding_features: tuple[str, ...] = (),
                 seen_ids: np.ndarray | None = None, **kwargs):
        super().__init__(**kwargs)
        shared = None
        if preset.shared_wide and preset.wide_buckets > 0:
            shared = wide_table(preset, sum(taxonomy.num_classes(k) for k in range(1, taxonomy.depth + 1)), seen_ids)
        self._wide_read_once = shared is not None  # (a flag, not the layer: Keras would track it twice)
        self.members = [HierarchicalClassifier(taxonomy, preset, embedding_features=embedding_features, wide=shared,
                                               seen_ids=seen_ids, name=f"member_{i}") for i in range(preset.members)]

    def call(self, inputs: dict, training: bool = False) -> dict:
        # A shared wide table is read once a batch for all members (each still applies its own
        # dropout to it): one lookup, and one gradient for the table instead of a copy per member.
        wide = self.members[0].wide_logits(inputs) if self._wide_read_once else None
        outputs = [member(inputs, training=training, wide=wide) for member in self.members]
        return {name: tf.stack([out[name] for out in outputs], axis=1) for name in outputs[0]}

    def beam_search(self, inputs: dict, beam_width: int, all_beams: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        return tree_beam_search(self.members, inputs, beam_width, all_beams)


Classifier = HierarchicalClassifier | HierarchicalEnsemble  # what build_model returns and export serves


def build_model(taxonomy: Taxonomy, preset: ModelPreset, linear: bool = False,
                embedding_features: tuple[str, ...] = (), seen_ids: np.ndarray | None = None) -> Classifier:
    """The model a preset describes: the linear bag-of-words model, one classifier, or an ensemble.

    `seen_ids`: the hashed n-gram ids of the train split. With the preset's `compact_tables`
    the hierarchical model's n-gram tables then hold only their rows (folded, for the wide
    table) and a zero row for every other id, from the start: training moves no other row,
    so this is the function of the full tables without their memory (and Adam's slots),
    and `keep_seen_ngram_rows` later only stores them in float16. The linear model keeps a
    row per bucket."""
    rows = seen_ids if preset.compact_tables and not linear else None
    if linear or preset.members == 1:
        return HierarchicalClassifier(taxonomy, preset, linear=linear, embedding_features=embedding_features,
                                      seen_ids=rows)
    return HierarchicalEnsemble(taxonomy, preset, embedding_features=embedding_features, seen_ids=rows)


def ngram_tables(model: Classifier) -> list[HashedBag]:
    """Every distinct n-gram table of the model: each member's bag, and the wide table(s)."""
    members = model.members if isinstance(model, HierarchicalEnsemble) else [model]
    tables = []
    for member in members:
        for table in (member.bag, member.wide):
            if table is not None and all(table is not t for t in tables):
                tables.append(table)
    return tables


def keep_seen_ngram_rows(model: Classifier, seen_ids: np.ndarray) -> None:
    """For the serving model, once training is done: every n-gram table keeps only the rows
    of `seen_ids` (the hashed n-gram ids of the train split), in float16
    (`HashedBag.keep_rows`); a wide table keeps them folded into its buckets as the wide
    part folds them (for a bag, whose buckets are the hash buckets, folding changes
    nothing). The model then computes what it did for every n-gram training saw."""
    seen_ids = np.asarray(seen_ids, np.int64)
    for table in ngram_tables(model):  # (a table built on these rows is only cast)
        table.keep_rows(np.mod(seen_ids, table.buckets))


def tree_beam_search(models: list[HierarchicalClassifier], inputs: dict, beam_width: int,
                     all_beams: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
    """Beam search over the tree with the models' level probabilities averaged (one model:
    its own). Returns (class ids [N, depth], cumulative path probability [N, depth]) of the
    best path; a path's score is the product of its level probabilities. STOP (class 0 at
    levels >= 2) continues as STOP with probability 1. `all_beams` returns every surviving
    path, best first ([N, B, depth] both), for analyses that weigh alternatives."""
    wide_done: dict = {}  # a wide table the members share is read once
    encoded = [model.encode(inputs, training=False, wide_done=wide_done) for model in models]

    def log_probs(level: int, repeats, parent):
        per_model = []
        for model, (h, wide) in zip(models, encoded):
            wide = None if wide is None else wide[level - 1]  # this level's only
            if repeats is not None:
                h = tf.repeat(h, repeats, axis=0)
                wide = None if wide is None else tf.repeat(wide, repeats, axis=0)
            per_model.append(tf.nn.log_softmax(model.level_logits(level, h, parent, wide)))
        # Log of the mean probability (exactly the model's own for one model).
        return tf.reduce_logsumexp(tf.stack(per_model), axis=0) - tf.math.log(float(len(models)))

    num_classes = models[0].num_classes
    n = tf.shape(encoded[0][0])[0]
    width = min(beam_width, num_classes[0])
    scores, ids = tf.math.top_k(log_probs(1, None, None), k=width)  # [N, B]
    paths = ids[:, :, None]  # [N, B, 1]
    level_scores = scores[:, :, None]
    for k in range(2, len(num_classes) + 1):
        b = tf.shape(scores)[1]
        parent = tf.reshape(paths[:, :, -1], [-1])
        step = log_probs(k, b, parent)  # [N*B, C]
        c = num_classes[k - 1]
        total = scores[:, :, None] + tf.reshape(step, [n, b, c])
        flat = tf.reshape(total, [n, -1])
        new_width = min(beam_width, c * beam_width)
        scores, flat_idx = tf.math.top_k(flat, k=tf.minimum(new_width, b * c))
        beam_idx = flat_idx // c
        class_idx = flat_idx % c
        paths = tf.concat([tf.gather(paths, beam_idx, batch_dims=1), class_idx[:, :, None]], axis=-1)
        level_scores = tf.concat(
            [tf.gather(level_scores, beam_idx, batch_dims=1), scores[:, :, None]], axis=-1
        )
    if all_beams:
        return paths, tf.exp(level_scores)
    return paths[:, 0, :], tf.exp(level_scores[:, 0, :])


def class_tables(taxonomy: Taxonomy) -> list[tf.Tensor]:
    """Per level, the class index -> full path string table ("" for STOP)."""
    return [
        tf.constant([c if i > 0 or k == 1 else "" for i, c in enumerate(level.classes)], tf.string)
        for k, level in enumerate(taxonomy.levels, start=1)
    ]


def threshold_tables(taxonomy: Taxonomy, thresholds: dict | None) -> list[tf.Tensor]:
    """Per level, the class index -> minimum confidence to keep that node (0 = always)."""
    out = []
    for k, level in enumerate(taxonomy.levels, start=1):
        values = np.zeros(len(level.classes), np.float32)
        if thresholds:
            per_node = thresholds.get("nodes", {})
            default = thresholds.get("levels", {}).get(str(k), 0.0)
            for i, path in enumerate(level.classes):
                values[i] = per_node.get(path, default)
        out.append(tf.constant(values))
    return out


def decode_outputs(
    class_ids: tf.Tensor,
    confidences: tf.Tensor,
    classes: list[tf.Tensor],
    thresholds: list[tf.Tensor],
) -> dict[str, tf.Tensor]:
    """Turns beam-search ids into the serving contract, with per-node back-off.

    A level is kept while its node is not STOP and its confidence reaches the node's
    threshold; the returned path is the deepest kept node (its full path string), so a
    low-confidence leaf backs off to its parent, and a weak top level gives no path."""
    depth = len(classes)
    out: dict[str, tf.Tensor] = {}
    full_path = tf.fill(tf.shape(class_ids)[:1], "")
    full_conf = tf.zeros(tf.shape(class_ids)[:1])
    path = full_path
    conf = full_conf
    kept_depth = tf.zeros(tf.shape(class_ids)[:1], tf.int32)
    full_depth = kept_depth
    still = tf.ones(tf.shape(class_ids)[:1], tf.bool)
    for k in range(1, depth + 1):
        ids = class_ids[:, k - 1]
        name = tf.gather(classes[k - 1], ids)
        level_conf = confidences[:, k - 1]
        real = tf.not_equal(name, "")
        out[features.out_level_class(k)] = tf.where(real, name, "")
        out[features.out_level_confidence(k)] = tf.where(real, level_conf, 0.0)
        full_path = tf.where(real, name, full_path)
        full_conf = tf.where(real, level_conf, full_conf)
        full_depth = tf.where(real, k, full_depth)
        still = tf.logical_and(still, tf.logical_and(real, level_conf >= tf.gather(thresholds[k - 1], ids)))
        path = tf.where(still, name, path)
        conf = tf.where(still, level_conf, conf)
        kept_depth = tf.where(still, k, kept_depth)
    out[features.OUT_FULL_PATH] = full_path
    out[features.OUT_FULL_CONFIDENCE] = full_conf
    out[features.OUT_PATH] = path
    out[features.OUT_CONFIDENCE] = conf
    out[features.OUT_DEPTH] = kept_depth
    out["full_depth"] = full_depth
    return out
