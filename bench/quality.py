"""Model quality side by side: TF-IDF baseline, text-only, image-only and the full model.

    .venv/bin/python bench/quality.py                      # fashion and flipkart
    .venv/bin/python bench/quality.py --catalogs fashion --markdown out.md

For each catalog this reads the pipeline root's newest trained model and its embedded
examples (train / calibration / eval splits by id hash) from ML Metadata; when the root
has no trained model yet, it runs the pipeline first (serving dir inside the root). It
then trains, on the train split only, the reference models the trained model is judged
against, and reports everything on the eval split, which none of them saw:

- TF-IDF baseline: logistic regression over word 1-2-grams and character 2-5-grams of
  the title (plus description), one class per full category path.
- text-only model: the trained model with every photo removed (image embedding zero,
  `has_image = 0`), as a product without a photo arrives; on the products with a photo,
  "the same model, photo removed": what their photo adds (issue 19's first target).
- full model: the trained model on the products as they are (title and photo).
- image-only model (fashion, products with a photo): the trained model with title and
  description blanked, its embeddings recomputed by the Embedder's own function.
- image probe: logistic regression on the frozen image embeddings of the train split's
  photos, the same products as the image-only row.
- multilingual (fashion): the 300 hand-translated titles (es/fr/de) through the trained
  model, against a logistic-regression probe on the frozen text embeddings of the
  English train titles and the TF-IDF baseline (also trained on English).
- "titles not word-mapped" (a model exported with a word mapper): the same model with
  its n-grams reading the titles as they are, not the word-mapped titles the Embedder and
  `categorize` give it (schema/encoders/word_mapper.py).

The text-only and image-only rows are one model with a modality removed at inference:
the model is trained with modality dropout for exactly that (trainer/model.py).
Metrics (evaluator/metrics.py, the pipeline's own definitions): accuracy per level and
leaf accuracy of the decoded path, hierarchical F1 of the decoded path (no thresholding,
so every row predicts for every product).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from schema import features, serving_layout  # noqa: E402

CATALOGS = {  # spec name -> catalog folder under ../shared/datasets
    "fashion": "fashion",
    "flipkart": "flipkart",
}
MULTILINGUAL = "multilingual"
RANDOM_STATE = 0


# ---- data ---------------------------------------------------------------------------
@dataclasses.dataclass
class Split:
    """Parsed examples of one split; `records` are the tf.train.Examples themselves."""

    records: list
    ids: list[str]
    texts: list[str]
    truth: list[str]
    has_image: np.ndarray
    text_emb: np.ndarray
    image_emb: np.ndarray

    @classmethod
    def from_examples(cls, examples: list) -> "Split":
        from schema.encoders import IMAGE_DIM, TEXT_DIM, example_text
        from schema.examples import first_bytes, first_int

        def floats(e, name, dim):
            values = e.features.feature[name].float_list.value
            return np.asarray(values, np.float32) if len(values) == dim else np.zeros(dim, np.float32)

        labelled = [e for e in examples if first_bytes(e, features.CATEGORY_PATH)]
        return cls(
            records=labelled,
            ids=[first_bytes(e, features.ID).decode() for e in labelled],
            texts=[example_text(e) for e in labelled],
            truth=[first_bytes(e, features.CATEGORY_PATH).decode() for e in labelled],
            has_image=np.array([bool(first_int(e, features.HAS_IMAGE)) for e in labelled]),
            text_emb=np.stack([floats(e, features.TEXT_EMBEDDING, TEXT_DIM) for e in labelled]) if labelled
            else np.zeros((0, TEXT_DIM), np.float32),
            image_emb=np.stack([floats(e, features.IMAGE_EMBEDDING, IMAGE_DIM) for e in labelled]) if labelled
            else np.zeros((0, IMAGE_DIM), np.float32),
        )

    def subset(self, mask: np.ndarray) -> "Split":
        idx = np.flatnonzero(mask)
        return Split(
            records=[self.records[i] for i in idx], ids=[self.ids[i] for i in idx],
            texts=[self.texts[i] for i in idx], truth=[self.truth[i] for i in idx],
            has_image=self.has_image[idx], text_emb=self.text_emb[idx], image_emb=self.image_emb[idx],
        )


def read_split(examples_uri: str, split: str) -> Split:
    """The labelled products of one split of the Embedder's examples (the other benches read
    the calibration split through this too)."""
    import tensorflow as tf

    from bench.thresholding import split_records

    records = split_records(examples_uri, split)
    if not records:
        raise FileNotFoundError(f"no Split-{split} records under {examples_uri}")
    return Split.from_examples([tf.train.Example.FromString(r) for r in records])


# ---- modality ablations: edit the example as the product would arrive ----------------------
def without_photo(examples: Sequence) -> list:
    import tensorflow as tf

    out = []
    for example in examples:
        new = tf.train.Example()
        new.CopyFrom(example)
        feats = new.features.feature
        feats[features.IMAGE].bytes_list.value[:] = [b""]
        feats[features.HAS_IMAGE].int64_list.value[:] = [0]
        feats[features.IMAGE_EMBEDDING].float_list.value[:] = [0.0] * len(
            feats[features.IMAGE_EMBEDDING].float_list.value)
        out.append(new)
    return out


def without_text(examples: Sequence, cache) -> list:
    """Title and description blanked (the mapped title too); embeddings recomputed by the
    Embedder's function."""
    from schema.encoders import embed_examples

    return embed_examples(text_blanked(examples), cache)


def text_blanked(examples: Sequence) -> list:
    """Title, description and mapped title blanked, the embeddings left as they were: with
    the sentence embedding kept, the model reads it (and the photo, if any) without n-grams."""
    import tensorflow as tf

    blanked = []
    for example in examples:
        new = tf.train.Example()
        new.CopyFrom(example)
        for name in (features.TITLE, features.DESCRIPTION):
            new.features.feature[name].bytes_list.value[:] = [b""]
        if features.TITLE_MAPPED in new.features.feature:
            del new.features.feature[features.TITLE_MAPPED]
        blanked.append(new)
    return blanked


def without_word_mapping(examples: Sequence) -> list:
    """The Embedder's mapped title removed: the model's n-grams read the title as it is,
    as with a model trained before the word mapper (schema/encoders/word_mapper.py)."""
    import tensorflow as tf

    out = []
    for example in examples:
        new = tf.train.Example()
        new.CopyFrom(example)
        if features.TITLE_MAPPED in new.features.feature:
            del new.features.feature[features.TITLE_MAPPED]
        out.append(new)
    return out


# ---- scoring ------------------------------------------------------------------------
def score(truth: Sequence[str], predicted: Sequence[str], depth: int) -> dict[str, float]:
    """Per-level accuracy, leaf accuracy and hF1 of full predicted paths."""
    from evaluator.metrics import VALUES, PathStats

    stats = PathStats()
    for t, p in zip(truth, predicted):
        stats.add(t, p, p)
    out = {"n": stats.c["n"]}
    for k in range(1, depth + 1):
        out[f"accuracy_level_{k}"] = VALUES[f"accuracy_level_{k}"][0](stats.c)
    out["leaf_accuracy"] = VALUES["leaf_accuracy"][0](stats.c)
    out["hierarchical_f1"] = VALUES["hierarchical_f1"][0](stats.c)
    return out


class TrainedModel:
    """The pipeline's trained model through its serving signature (full decoded path)."""

    def __init__(self, model_dir: str):
        import tensorflow as tf

        from schema.encoders import word_mapper

        self._serve = tf.saved_model.load(model_dir).signatures["serving_default"]
        # The word mapper exported with the model, as `categorize` loads it (None: none).
        self.word_mapper = word_mapper.load_optional(os.path.join(model_dir, serving_layout.ASSETS_EXTRA, word_mapper.FILE_NAME))

    def predict(self, examples: Sequence, batch: int = 512) -> list[str]:
        import tensorflow as tf

        out: list[str] = []
        for i in range(0, len(examples), batch):
            chunk = [e.SerializeToString() for e in examples[i:i + batch]]
            paths = self._serve(examples=tf.constant(chunk))[features.OUT_FULL_PATH].numpy()
            out.extend(p.decode("utf-8") for p in paths)
        return out


def tfidf_classifier(texts: Sequence[str], truth: Sequence[str], c: float
                     ) -> tuple[np.ndarray, Callable[[Sequence[str]], np.ndarray]]:
    """Word and character n-gram TF-IDF + logistic regression, one class per full path:
    (its classes, a function giving their probabilities [N, classes] for new texts)."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=1, sublinear_tf=True, lowercase=True)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, lowercase=True)
    x = hstack([word.fit_transform(texts), char.fit_transform(texts)]).tocsr()
    clf = LogisticRegression(C=c, max_iter=300, random_state=RANDOM_STATE)
    clf.fit(x, list(truth))

    def probabilities(texts: Sequence[str]) -> np.ndarray:
        return clf.predict_proba(hstack([word.transform(texts), char.transform(texts)]).tocsr())

    return clf.classes_, probabilities


def tfidf_baseline(texts: Sequence[str], truth: Sequence[str], c: float) -> Callable[[Sequence[str]], list[str]]:
    """The TF-IDF classifier's most probable full path."""
    classes, probabilities = tfidf_classifier(texts, truth, c)

    def predict(texts: Sequence[str]) -> list[str]:
        return list(classes[probabilities(texts).argmax(axis=1)])

    return predict


def embedding_probe(x_train: np.ndarray, y_train: Sequence[str], c: float) -> Callable[[np.ndarray], list[str]]:
    """Logistic regression on frozen embeddings (standardised), one class per full path."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=300, random_state=RANDOM_STATE))
    clf.fit(x_train, list(y_train))
    return lambda x: list(clf.predict(x))


def choose_c(fit: Callable[[float], Callable], calib_inputs, calib_truth: Sequence[str],
             grid: Sequence[float]) -> tuple[float, Callable]:
    """Regularisation picked on the calibration split (never on eval): best leaf accuracy."""
    best = None
    for c in grid:
        predict = fit(c)
        acc = float(np.mean([p == t for p, t in zip(predict(calib_inputs), calib_truth)]))
        if best is None or acc > best[0]:
            best = (acc, c, predict)
    return best[1], best[2]


# ---- the pipeline root ----------------------------------------------------------------
def ensure_trained(spec: str, catalog: Path, root: Path, train_workers: int) -> tuple[str, str]:
    """(serving model dir, embedded examples uri) of the root's newest run; runs the
    pipeline first when nothing is trained there yet."""
    from schema.mlmd import newest, open_store
    from schema.config import PipelineConfig

    config = PipelineConfig.local(str(catalog), spec, pipeline_root=str(root),
                                  serving_dir=str(root / "serving"), train_workers=train_workers)

    def lookup():
        if not Path(config.metadata_path).exists():
            return None, None
        store = open_store(config.metadata_path)
        return (newest(store, "Model", producer="TaxonomyTrainer"),
                newest(store, "Examples", producer="Embedder"))

    model, examples = lookup()
    if model is None or examples is None:
        from pipeline import run_local

        print(f"[{spec}] no trained model with embeddings under {root}: running the pipeline", flush=True)
        run_local(config)
        model, examples = lookup()
    if model is None or examples is None:
        raise RuntimeError(f"the pipeline under {root} produced no trained model with embedded examples")
    return os.path.join(model.uri, "Format-Serving"), examples.uri


# ---- one catalog ---------------------------------------------------------------------
def same_title_elsewhere(train: Split, evals: Split) -> tuple[int, int, int]:
    """How far titles alone can decide: eval products whose text (case and spacing aside)
    is also a train product's, those of them whose text the train split also files under
    another category, and those it files only under other categories (a reader of the
    text alone that follows the train labels gets these wrong)."""
    import collections

    def key(text: str) -> str:
        return " ".join(text.lower().split())

    paths_of: dict[str, set] = collections.defaultdict(set)
    for text, path in zip(train.texts, train.truth):
        paths_of[key(text)].add(path)
    seen = also_other = only_other = 0
    for text, path in zip(evals.texts, evals.truth):
        paths = paths_of.get(key(text))
        if paths:
            seen += 1
            also_other += bool(paths - {path})
            only_other += path not in paths
    return seen, also_other, only_other


def bench_catalog(spec: str, catalog: Path, root: Path, train_workers: int, c_grid: Sequence[float],
                  probe_c_grid: Sequence[float]) -> dict:
    from schema.encoders import open_cache
    from schema.taxonomy import Taxonomy
    from schema import serving_layout

    model_dir, examples_uri = ensure_trained(spec, catalog, root, train_workers)
    taxonomy = Taxonomy.from_dict(serving_layout.read_asset(model_dir, serving_layout.ASSETS_TAXONOMY))
    depth = taxonomy.depth
    train, calib, evals = (read_split(examples_uri, s) for s in ("train", "calibration", "eval"))
    print(f"[{spec}] model {model_dir}\n[{spec}] train {len(train.truth)}, calibration {len(calib.truth)}, "
          f"eval {len(evals.truth)} labelled products", flush=True)
    result: dict = {"spec": spec, "model": model_dir, "sizes": (len(train.truth), len(calib.truth), len(evals.truth)),
                    "depth": depth, "rows": {}, "photo_rows": {}, "multilingual": {}, "notes": []}

    nodes = taxonomy.nodes()
    seen = set(train.truth)
    missing = [t for t in evals.truth if t not in nodes]
    result["notes"].append(
        f"{len(missing)} eval products ({len(missing) / max(len(evals.truth), 1):.1%}) are in a category the model's "
        f"taxonomy lacks (no model row can get their leaf right; {sum(t in seen for t in missing)} of them in a "
        f"category seen in the train split, which TF-IDF can predict)")

    shared, also_other, only_other = same_title_elsewhere(train, evals)
    result["notes"].append(
        f"{shared} eval products have a title (with description) that a train product also has; the train split "
        f"files {also_other} of these titles under another category, {only_other} of them only under other "
        f"categories (a model of the text alone that follows the train labels gets those wrong)")

    t0 = time.time()
    c_tfidf, tfidf = choose_c(lambda c: tfidf_baseline(train.texts, train.truth, c), calib.texts, calib.truth, c_grid)
    result["notes"].append(f"TF-IDF baseline C={c_tfidf:g} (chosen on calibration from {list(c_grid)}), "
                           f"{time.time() - t0:.0f}s to fit the grid")
    model = TrainedModel(model_dir)
    rows = result["rows"]
    rows["TF-IDF + logistic regression (title)"] = score(evals.truth, tfidf(evals.texts), depth)
    rows["text-only model (photos removed)"] = score(evals.truth, model.predict(without_photo(evals.records)), depth)
    rows["full model (title + photo)"] = score(evals.truth, model.predict(evals.records), depth)
    if model.word_mapper is not None:
        rows["full model, titles not word-mapped"] = score(
            evals.truth, model.predict(without_word_mapping(evals.records)), depth)
    print(f"[{spec}] main rows done", flush=True)

    cache = open_cache(None)
    if evals.has_image.any():
        photo_eval = evals.subset(evals.has_image)
        photo_train, photo_calib = train.subset(train.has_image), calib.subset(calib.has_image)
        c_img, probe = choose_c(lambda c: embedding_probe(photo_train.image_emb, photo_train.truth, c),
                                photo_calib.image_emb, photo_calib.truth, probe_c_grid)
        result["notes"].append(f"image probe C={c_img:g} on {len(photo_train.truth)} train photos")
        pr = result["photo_rows"]
        pr["TF-IDF + logistic regression (title)"] = score(photo_eval.truth, tfidf(photo_eval.texts), depth)
        pr["full model (title + photo)"] = score(photo_eval.truth, model.predict(photo_eval.records), depth)
        pr["the same model, photo removed"] = score(
            photo_eval.truth, model.predict(without_photo(photo_eval.records)), depth)
        pr["image-only model (title blanked)"] = score(
            photo_eval.truth, model.predict(without_text(photo_eval.records, cache)), depth)
        pr["logistic-regression probe on frozen image embeddings"] = score(
            photo_eval.truth, probe(photo_eval.image_emb), depth)
        print(f"[{spec}] photo rows done", flush=True)

    multi_dir = catalog.parent / MULTILINGUAL
    if spec == "fashion" and (multi_dir / "products.csv").exists():
        result["multilingual"] = bench_multilingual(multi_dir, spec, model, tfidf, train, calib, depth, probe_c_grid,
                                                    cache, result["notes"])
    return result


def bench_multilingual(multi_dir: Path, spec_name: str, model: TrainedModel, tfidf, train: Split, calib: Split,
                       depth: int, c_grid: Sequence[float], cache, notes: list) -> dict:
    """Translated titles vs the frozen-text-embedding probe and TF-IDF, all trained on English."""
    from schema.encoders import embed_examples, embed_texts
    from schema.encoders.word_mapper import words
    from schema.catalog_reader import Product, read_catalog
    from schema.catalog_spec import load_spec
    from schema.product_example import product_to_example

    spec = load_spec(spec_name)
    products = [p for p in read_catalog(multi_dir / "products.csv", spec) if isinstance(p, Product)]
    langs = [p.id.rsplit("-", 1)[-1] for p in products]
    truth = [p.category_path for p in products]
    texts = [p.title for p in products]
    raw = [product_to_example(p, spec, None) for p in products]
    examples = embed_examples(raw, cache, model.word_mapper)  # as `categorize` sends them
    c_txt, probe = choose_c(lambda c: embedding_probe(train.text_emb, train.truth, c), calib.text_emb, calib.truth,
                            c_grid)
    train_ids = set(train.ids)
    seen = sum(p.id.rsplit("-", 1)[0] in train_ids for p in products[::3])
    notes.append(f"text-embedding probe C={c_txt:g}; {seen} of the {len(products) // 3} multilingual products "
                 f"are in the train split in English (the model and the probes saw their English title)")
    predictions = {"full model": model.predict(examples)}
    if model.word_mapper is not None:
        predictions["full model, titles not word-mapped"] = model.predict(embed_examples(raw, cache))
        mapper = model.word_mapper
        unseen = [w for t in texts for w in mapper.unseen(t)]
        mapped = sum(a != b for t, m in zip(texts, mapper.map_texts(texts, cache))
                     for a, b in zip(words(t), m.split()))
        notes.append(f"word mapper (threshold {mapper.threshold:g}, {len(mapper.vocabulary):,} train title words): "
                     f"{mapped} of the {len(unseen)} translated title words unseen in training were mapped")
    predictions.update({
        "logistic-regression probe on frozen text embeddings (English train titles)": probe(embed_texts(texts, cache)),
        "TF-IDF + logistic regression (English train titles)": tfidf(texts),
    })
    out: dict = {}
    for name, pred in predictions.items():
        out[name] = {"all": score(truth, pred, depth)}
        for lang in sorted(set(langs)):
            idx = [i for i, g in enumerate(langs) if g == lang]
            out[name][lang] = score([truth[i] for i in idx], [pred[i] for i in idx], depth)
    return out


# ---- report --------------------------------------------------------------------------
def leaf_interval(m: dict) -> str:
    """Leaf accuracy with its exact 95% interval (Clopper-Pearson, evaluator/stats.py, the
    intervals the pipeline's own evaluation reports): rows within each other's intervals
    are not told apart by this many products."""
    from evaluator.stats import clopper_pearson

    return clopper_pearson(round(m["leaf_accuracy"] * m["n"]), m["n"], 0.95).text(3)


def _table(rows: dict[str, dict], depth: int) -> list[str]:
    # Leaf accuracy also as a count of products: close calls are decided by a handful.
    head = (["model", "products"] + [f"level {k} acc." for k in range(1, depth + 1)]
            + ["leaf acc.", "leaf acc. [95% CI]", "leaf right", "hF1"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in rows.items():
        cells = [name, f"{int(m['n']):,}"] + [f"{m[f'accuracy_level_{k}']:.3f}" for k in range(1, depth + 1)]
        cells += [f"{m['leaf_accuracy']:.4f}", leaf_interval(m), f"{round(m['leaf_accuracy'] * m['n']):,}",
                  f"{m['hierarchical_f1']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(results: list[dict]) -> str:
    lines: list[str] = []
    for r in results:
        train, calib, evals = r["sizes"]
        lines += [f"### {r['spec']} (eval split: {evals:,} products; train {train:,}, calibration {calib:,})", ""]
        lines += _table(r["rows"], r["depth"]) + [""]
        if r["photo_rows"]:
            lines += ["Eval products with a photo:", ""] + _table(r["photo_rows"], r["depth"]) + [""]
        if r["multilingual"]:
            lines += ["Hand-translated titles (no photo), trained on English only; leaf accuracy [95% CI] / hF1:", ""]
            langs = [k for k in next(iter(r["multilingual"].values())) if k != "all"]
            lines += ["| model | " + " | ".join(langs) + " | all |", "|---|" + "---|" * (len(langs) + 1)]
            for name, by_lang in r["multilingual"].items():
                cells = [f"{leaf_interval(by_lang[g])} / {by_lang[g]['hierarchical_f1']:.4f}"
                         for g in langs + ["all"]]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += [f"- {n}" for n in r["notes"]] + [f"- model: `{r['model']}`", ""]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from schema.config import DEFAULT_DATASETS, PROJECT_ROOT

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalogs", nargs="+", default=list(CATALOGS), choices=list(CATALOGS))
    parser.add_argument("--datasets", default=str(DEFAULT_DATASETS))
    parser.add_argument("--pipelines", default=str(PROJECT_ROOT / "pipelines"),
                        help="pipeline roots are <pipelines>/<spec> (those of `make run` / `make flipkart`)")
    parser.add_argument("--train-workers", type=int, default=1, help="when the pipeline has to run first")
    parser.add_argument("--c-grid", type=float, nargs="+", default=[1.0, 10.0, 100.0],
                        help="TF-IDF logistic-regression regularisation grid, chosen on the calibration split")
    parser.add_argument("--probe-c-grid", type=float, nargs="+", default=[0.1, 1.0, 10.0],
                        help="the same for the frozen-embedding probes (standardised features)")
    parser.add_argument("--markdown", default=None, help="also write the tables to this file")
    args = parser.parse_args(argv)

    start = time.time()
    results = []
    for spec in args.catalogs:
        catalog = Path(args.datasets) / CATALOGS[spec]
        if not (catalog / "products.csv").exists():
            print(f"[{spec}] no catalog at {catalog}: skipped", file=sys.stderr)
            continue
        results.append(bench_catalog(spec, catalog, Path(args.pipelines) / spec, args.train_workers, args.c_grid,
                                     args.probe_c_grid))
    text = render(results)
    print("\n" + text + f"\n(total {time.time() - start:.0f}s)")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
