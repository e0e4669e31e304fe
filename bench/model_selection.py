"""Model selection on the calibration split: train preset variants, compare them.

    .venv/bin/python bench/model_selection.py --catalog fashion \
        --variant base '{}' --variant wider '{"token_dim": 128}'

Reads the Transform output of the newest pipeline run under pipelines/<catalog> (train
and calibration splits), trains the hierarchical model once per variant (a variant is a
JSON dict of ModelPreset fields over the `default` preset) on the train split only (its
n-gram tables holding only the train split's rows, float16 after training, as the Trainer
builds and exports them, where `compact_tables`), and
reports leaf accuracy of the decoded path on the calibration split, never on eval (a
product whose category is not in the taxonomy counts as wrong, as in the pipeline's
metrics), as:

- full: the products as they are;
- sentence-embedding only (n-grams and photo removed): how well the model works from
  the multilingual sentence embedding alone, which is what a title in a language the
  n-grams never saw leaves it with;
- sentence embedding + unseen n-grams: every n-gram id replaced by a random bucket, photo
  removed: a title whose words the n-grams never saw;
- photo only (products with a photo, text removed).

Alongside, logistic-regression probes on the frozen embeddings of the same splits, the
reference the model has to beat on the two single-modality rows (`--probes`).

`--tfidf-mixture C` also fits bench/quality.py's TF-IDF logistic regression (at that C, on
the normalised title and description) and scores, for each variant, the mixture of the two: each
candidate path (the model's beams and the regression's most probable paths) scored by
w * model path probability + (1 - w) * regression probability, for a few w. A mixture
clearly above both says they know different things (a case for combining them); one
within noise of the better says their errors coincide.

`--photo-knn K` also scores the photo-only row mixed with the K nearest train photos' vote
(bench/photo_knn.py), as the TF-IDF mixture: w * model + (1 - w) * vote over the candidates.

`--photo-fusion` also scores, on the calibration products with a photo, the model with the
photo, its text path (photo removed) and bench/photo_fusion.py's gated late fusion of its
text path and photo path (weights per level and gate fitted on one half of those products,
scored on the other; with `--tfidf-mixture`, the TF-IDF regression on them too).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _newest_uris(root: Path) -> tuple[str, str, str]:
    """(transform graph uri, transformed examples uri, taxonomy uri) of the newest run."""
    from schema.mlmd import newest, open_store
    from schema.config import PipelineConfig

    config = PipelineConfig.local("unused", root.name, pipeline_root=str(root))
    store = open_store(config.metadata_path)
    graph = newest(store, "TransformGraph", producer="TaxonomyTransform")
    examples = newest(store, "Examples", producer="TaxonomyTransform")
    taxonomy = newest(store, "CategoryTaxonomy", producer="TaxonomyGen")
    if not (graph and examples and taxonomy):
        raise RuntimeError(f"no Transform output under {root}: run the pipeline first")
    return graph.uri, examples.uri, taxonomy.uri


def load_split(examples_uri: str, split: str, feature_spec: dict) -> dict:
    """One split of transformed examples, parsed into one in-memory batch."""
    import tensorflow as tf

    files = tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*.gz"))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return tf.io.parse_example(tf.stack(list(records)), feature_spec)


def tfidf(x: dict, buckets: int, df=None):
    """tft.tfidf on the in-memory split (df: the train split's document frequencies, counted
    here on the first call), so variants need no Transform re-run."""
    import numpy as np
    import tensorflow as tf

    from schema import features

    ids = x[features.TEXT_TOKENS]
    rows, values, n = ids.indices[:, 0].numpy(), ids.values.numpy(), int(ids.dense_shape[0])
    keys, counts = np.unique(rows * buckets + values, return_counts=True)
    r, v = keys // buckets, keys % buckets
    if df is None:
        df = (np.bincount(v, minlength=buckets), n)
    doc_freq, n_docs = df
    weights = counts / np.bincount(rows, minlength=n)[r] * (1.0 + np.log((n_docs + 1) / (doc_freq[v] + 1)))
    first = np.searchsorted(r, r, side="left")
    indices = np.stack([r, np.arange(len(r)) - first], 1)
    width = int((np.arange(len(r)) - first).max(initial=0)) + 1
    x[features.TEXT_TOKENS] = tf.SparseTensor(indices, v.astype(np.int64), [n, width])
    x[features.TEXT_TOKEN_WEIGHTS] = tf.SparseTensor(indices, weights.astype(np.float32), [n, width])
    return df


MIXTURE_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # weight of the model; 0 = the regression alone


def full_paths(taxonomy, ids) -> "np.ndarray":
    """The deepest node's full path of each class-id row [..., depth] (the served
    `full_path`, by the serving code's own decoding); the result drops the depth axis."""
    import numpy as np
    import tensorflow as tf

    from schema import features
    from trainer.model import class_tables, decode_outputs, threshold_tables

    flat = np.asarray(ids).reshape(-1, np.shape(ids)[-1])
    out = decode_outputs(tf.constant(flat), tf.ones(flat.shape), class_tables(taxonomy),
                         threshold_tables(taxonomy, None))
    paths = np.array([p.decode("utf-8") for p in out[features.OUT_FULL_PATH].numpy()], dtype=object)
    return paths.reshape(np.shape(ids)[:-1])


def mixture_accuracies(beam_paths, beam_probs, lr_classes, lr_probs, truth, weights=MIXTURE_WEIGHTS,
                       top: int = 5) -> dict[float, float]:
    """Leaf accuracy of w * model + (1 - w) * regression over the candidate paths of each
    product (its beam paths [N, B] with their probabilities, and the regression's `top`
    paths); `truth` holds None where no model can be right."""
    import numpy as np

    best = np.argsort(-lr_probs, axis=1)[:, :top]
    out = {}
    for w in weights:
        right = 0
        for i, want in enumerate(truth):
            score: dict[str, float] = {}
            for path, p in zip(beam_paths[i], beam_probs[i]):
                score[path] = score.get(path, 0.0) + w * float(p)
            for j in best[i]:
                score[lr_classes[j]] = score.get(lr_classes[j], 0.0) + (1 - w) * float(lr_probs[i, j])
            right += want is not None and max(score, key=score.get) == want
        out[w] = right / max(len(truth), 1)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--pipelines", default=str(Path(__file__).resolve().parent.parent / "pipelines"))
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), required=True)
    parser.add_argument("--probes", action="store_true", help="also fit the frozen-embedding probes")
    parser.add_argument("--seed", type=int, default=7, help="the seed every variant trains from")
    parser.add_argument("--photo-fusion", action="store_true",
                        help="also score bench/photo_fusion.py's gated late fusion on the photo products")
    parser.add_argument("--photo-knn", type=int, metavar="K",
                        help="also score the photo-only row mixed with bench/photo_knn.py's K nearest train photos' vote")
    parser.add_argument("--tfidf-mixture", type=float, metavar="C",
                        help="also score mixtures with the TF-IDF logistic regression at this C")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft
    import tf_keras as keras

    from schema import features
    from schema.taxonomy import Taxonomy
    from trainer.model import build_model
    from trainer.optimizers import compile_model
    from trainer.preprocessing import hashed_ngrams
    from trainer.presets import get_preset

    graph_uri, examples_uri, taxonomy_uri = _newest_uris(Path(args.pipelines) / args.catalog)
    taxonomy = Taxonomy.load(taxonomy_uri)
    depth = taxonomy.depth
    spec = tft.TFTransformOutput(graph_uri).transformed_feature_spec()
    embedding_features = tuple(n for n in spec if n.endswith("_embedding"))

    train = load_split(examples_uri, "train", spec)
    calib = load_split(examples_uri, "calibration", spec)
    n_train = int(train[features.label_id_feature(1)].shape[0])
    print(f"[{args.catalog}] train {n_train}, calibration {int(calib[features.label_id_feature(1)].shape[0])}; "
          f"embeddings {embedding_features}", flush=True)

    def truth_ids(x):
        return np.stack([np.maximum(x[features.label_id_feature(k)].numpy(), 0) for k in range(1, depth + 1)], 1)

    def representable(x):
        """False where a product's path goes below a node the taxonomy has (a category not
        in the taxonomy): no model can get its leaf right, as the eval metrics count it."""
        labels = np.stack([x[features.label_id_feature(k)].numpy() for k in range(1, depth + 1)], 1)
        node = np.concatenate([labels[:, :1] >= 0, labels[:, 1:] > 0], axis=1)  # a real node, not STOP
        return node[:, 0] & ~np.any(node[:, :-1] & (labels[:, 1:] < 0), axis=1)

    def leaf_accuracy(model, x, beam, per_level=False):
        ids, _ = model.beam_search(x, beam)
        hit = (ids.numpy() == truth_ids(x)) & representable(x)[:, None]
        if per_level:  # level k right with all levels above it
            print("    per level: " + ", ".join(f"{np.mean(np.all(hit[:, :k], 1)):.4f}" for k in range(1, depth + 1)))
        return float(np.mean(np.all(hit, axis=1)))

    def blank(x, ngrams=False, text_emb=False, image=False, scramble=False):
        y = dict(x)
        if scramble:  # every n-gram replaced by a random bucket: a title of unseen words
            t = x[features.TEXT_TOKENS]
            rnd = tf.random.stateless_uniform(tf.shape(t.values), [1, 2], 0, preset.hash_buckets, t.values.dtype)
            y[features.TEXT_TOKENS] = tf.SparseTensor(t.indices, rnd, t.dense_shape)
        if ngrams:
            t = x[features.TEXT_TOKENS]
            y[features.TEXT_TOKENS] = tf.SparseTensor(tf.zeros([0, 2], tf.int64), tf.zeros([0], t.dtype), t.dense_shape)
            y.pop(features.TEXT_TOKEN_WEIGHTS, None)
        if text_emb and features.TEXT_EMBEDDING in x:
            y[features.TEXT_EMBEDDING] = tf.zeros_like(x[features.TEXT_EMBEDDING])
        if image and features.IMAGE_EMBEDDING in x:
            y[features.IMAGE_EMBEDDING] = tf.zeros_like(x[features.IMAGE_EMBEDDING])
        return y

    def select(x, mask):
        idx = np.flatnonzero(mask)
        return {name: tf.gather(tf.RaggedTensor.from_sparse(v), idx).to_sparse() if isinstance(v, tf.SparseTensor)
                else tf.gather(v, idx) for name, v in x.items()}

    def photo_fusion_row(model, x, beam, lr_on_x=None):
        """bench/photo_fusion.py on the photo products `x`: text path, photo path, fused;
        `lr_on_x`: the TF-IDF regression's (classes, probabilities) on them, also scored."""
        from bench import photo_fusion

        x_text, x_photo = blank(x, image=True), blank(x, ngrams=True, text_emb=True)
        paths = photo_fusion.candidate_paths(model, x_text, x_photo, beam)
        truth = truth_ids(x)
        hit = np.all(paths == truth[:, None, :], axis=2) & representable(x)[:, None]
        text_lp = photo_fusion.level_log_probs(model, x_text, paths, features.label_id_feature)
        photo_lp = photo_fusion.level_log_probs(model, x_photo, paths, features.label_id_feature)
        result = photo_fusion.cross_fitted(text_lp, photo_lp, hit)
        print(f"    photo fusion on {len(hit)} photo products: half fits {result['half fits']}, "
              f"all-products fit {result['all-products fit']}, fused fixed {result['fused fixed']}, "
              f"broke {result['fused broke']}, truth among the candidates {result['truth among candidates']:.4f}",
              flush=True)
        row = {}
        if lr_on_x is not None:
            classes, probabilities = lr_on_x
            predicted = classes[np.argmax(probabilities, axis=1)]
            truth_paths = full_paths(taxonomy, truth)
            row["photo products, TF-IDF"] = float(np.mean((predicted == truth_paths) & representable(x)))
        return {**row, "photo products, full": leaf_accuracy(model, x, beam),
                "photo products, text path": result["text path"],
                "photo products, fused (cross-fitted)": result["fused (cross-fitted)"]}

    def photo_knn_rows(model, x, beam):
        """The photo-only path's beams mixed with the k nearest train photos' vote (w: the
        model's weight; 1 = the model alone, 0 = the vote alone), on the photo products `x`."""
        from bench.photo_knn import knn_vote_shares

        train_images = train[features.IMAGE_EMBEDDING].numpy()
        with_photo = np.any(train_images != 0, axis=1)
        classes, shares = knn_vote_shares(train_images[with_photo], full_paths(taxonomy, truth_ids(train))[with_photo],
                                          x[features.IMAGE_EMBEDDING].numpy(), args.photo_knn, 0.05)
        paths, probs = model.beam_search(blank(x, ngrams=True, text_emb=True), beam, all_beams=True)
        truth = [p if ok else None for p, ok in zip(full_paths(taxonomy, truth_ids(x)), representable(x))]
        mixed = mixture_accuracies(full_paths(taxonomy, paths.numpy()), probs.numpy()[:, :, -1], classes, shares, truth)
        return {f"photo only + {args.photo_knn}-NN w={w:g}": acc for w, acc in mixed.items()}

    has_photo = calib_photo = None
    if features.IMAGE_EMBEDDING in calib:
        has_photo = np.any(calib[features.IMAGE_EMBEDDING].numpy() != 0, axis=1)
        calib_photo = select(calib, has_photo)
        if not has_photo.any():  # a text-only catalog
            has_photo = calib_photo = None

    if args.probes:
        from bench.quality import embedding_probe

        def path_keys(x):
            return [" ".join(map(str, r)) for r in truth_ids(x)]

        for name, x_cal in ((features.TEXT_EMBEDDING, calib), (features.IMAGE_EMBEDDING, calib_photo)):
            if name not in train or x_cal is None:
                continue
            xtr, ytr = train[name].numpy(), path_keys(train)
            if name == features.IMAGE_EMBEDDING:  # products with a photo, as the photo-only row
                m = np.any(xtr != 0, axis=1)
                xtr, ytr = xtr[m], [y for y, k in zip(ytr, m) if k]
            for c in (0.1, 1.0):
                predict = embedding_probe(xtr, ytr, c)
                acc = float(np.mean(np.array(predict(x_cal[name].numpy())) == np.array(path_keys(x_cal))))
                print(f"[{args.catalog}] probe {name} C={c}: calibration leaf accuracy {acc:.4f}", flush=True)

    lr = None
    if args.tfidf_mixture is not None:
        from bench.quality import tfidf_classifier

        def texts(x):
            return [t.decode("utf-8") for t in x[features.TITLE_NORMALIZED].numpy()]

        ok = representable(calib)
        calib_truth = [p if good else None for p, good in zip(full_paths(taxonomy, truth_ids(calib)), ok)]
        fit = representable(train)  # a product outside the taxonomy has no path id to learn
        t0 = time.time()
        classes, probabilities = tfidf_classifier(
            [t for t, keep in zip(texts(train), fit) if keep], list(full_paths(taxonomy, truth_ids(train))[fit]),
            args.tfidf_mixture)
        lr = classes, probabilities(texts(calib))
        print(f"[{args.catalog}] TF-IDF C={args.tfidf_mixture:g} fitted in {time.time() - t0:.0f}s", flush=True)

    for name, overrides in args.variant:
        preset = get_preset({**get_preset("default").to_dict(), **json.loads(overrides)})
        keras.utils.set_random_seed(args.seed)
        df = None
        for x in (train, calib):  # n-grams as preprocessing_fn would make them for this preset
            x[features.TEXT_TOKENS] = hashed_ngrams(x[features.TITLE_NORMALIZED], preset.hash_buckets,
                                                    preset.char_ngram_widths)
            x.pop(features.TEXT_TOKEN_WEIGHTS, None)
            if preset.ngram_weighting == "tfidf":
                df = tfidf(x, preset.hash_buckets, df)
        steps = int(np.ceil(n_train / preset.batch_size))
        labels = {f"level_{k}": np.maximum(train[features.label_id_feature(k)].numpy(), 0) for k in range(1, depth + 1)}
        weights = {f"level_{k}": train[features.label_mask_feature(k)].numpy() for k in range(1, depth + 1)}
        ds = tf.data.Dataset.from_tensor_slices((train, labels, weights)).shuffle(n_train, seed=7).repeat()
        ds = ds.batch(preset.batch_size)
        seen = np.unique(train[features.TEXT_TOKENS].values.numpy())  # as the Trainer, tables of these rows
        model = build_model(taxonomy, preset, embedding_features=embedding_features, seen_ids=seen)
        compile_model(model, preset, depth, total_steps=preset.epochs * steps, metrics=False)
        t0 = time.time()
        model.fit(ds, epochs=preset.epochs, steps_per_epoch=steps, verbose=0)
        seconds = time.time() - t0
        if preset.compact_tables:  # scored as the Trainer exports it
            from trainer.model import keep_seen_ngram_rows

            keep_seen_ngram_rows(model, seen)
        row = {"full": leaf_accuracy(model, calib, preset.beam_width, per_level=True)}
        if features.TEXT_EMBEDDING in calib:
            row["sentence-embedding only"] = leaf_accuracy(model, blank(calib, ngrams=True, image=True),
                                                           preset.beam_width)
            row["sentence embedding + unseen n-grams"] = leaf_accuracy(model, blank(calib, scramble=True, image=True),
                                                                       preset.beam_width)
        if has_photo is not None:
            row["photo only"] = leaf_accuracy(model, blank(calib_photo, ngrams=True, text_emb=True),
                                              preset.beam_width)
        if args.photo_fusion and has_photo is not None:
            row.update(photo_fusion_row(model, select(calib, has_photo), preset.beam_width,
                                        None if lr is None else (lr[0], lr[1][has_photo])))
        if args.photo_knn and has_photo is not None:
            row.update(photo_knn_rows(model, calib_photo, preset.beam_width))
        if lr is not None:
            paths, probs = model.beam_search(calib, preset.beam_width, all_beams=True)
            mixed = mixture_accuracies(full_paths(taxonomy, paths.numpy()), probs.numpy()[:, :, -1], *lr, calib_truth)
            row.update({f"mixture w={w:g}": acc for w, acc in mixed.items()})
        print(f"[{args.catalog}] {name} {overrides}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items())
              + f" ({seconds:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
