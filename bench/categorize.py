"""`categorize` throughput: text-only products, products with photos, and the TF-IDF baseline.

    .venv/bin/python bench/categorize.py                    # newest pushed fashion model
    .venv/bin/python bench/categorize.py --model serving/fashion/<version> --text-rows 20000

Runs the real `categorize` code path (`trainer.inference_client.categorize`: CSV in, CSV out,
embeddings computed, no embedding cache, so nothing is free) on catalogs made from the
shared fashion catalog in a scratch folder: one with photos removed and one of products
with photos (their images copied beside it). Start-up (loading the serving model and the
two encoders) is timed apart, once; the throughput runs reuse the loaded model after a
small warm-up batch; beside the wall-clock rate, the process's CPU time (every thread), which
other work on a shared machine changes less. The TF-IDF + logistic-regression baseline (bench/quality.py) is
timed on the same text-only rows through the same reader and a CSV writer.
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from schema.config import CATEGORIZE_BATCH_ROWS, DEFAULT_CATALOG, PROJECT_ROOT  # noqa: E402


def write_catalogs(source: Path, spec, workdir: Path, text_rows: int, photo_rows: int,
                   warmup_rows: int = 64) -> dict[str, Path]:
    """Scratch catalogs (CSV + copied photos) in `workdir`; the shared data stays read-only."""
    with open(source / spec.csv_file, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    image_col = spec.image_column
    with_photo = [r for r in rows if r.get(image_col)]
    out = {}
    for name, chosen, keep_photo in (("warmup", with_photo[-warmup_rows:], True),
                                      ("text", rows[:text_rows], False),
                                      ("photo", with_photo[:photo_rows], True)):
        folder = workdir / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        with open(folder / spec.csv_file, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            for row in chosen:
                row = dict(row)
                if keep_photo:
                    target = folder / row[image_col]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source / row[image_col], target)
                else:
                    row[image_col] = ""
                writer.writerow(row)
        out[name] = folder
    return out


def time_tfidf(source: Path, skip: int, spec, catalog: Path, out_csv: Path) -> tuple[float, float, int]:
    """-> (fit seconds, predict seconds, rows). Fitted on the source catalog's products
    after the first `skip` (the timed ones); timed: read the catalog, predict, write a CSV."""
    from bench.quality import tfidf_baseline
    from schema.catalog_reader import Product, read_catalog

    train = [p for p in read_catalog(source / spec.csv_file, spec) if isinstance(p, Product)][skip:]
    start = time.time()
    predict = tfidf_baseline([p.title for p in train], [p.category_path for p in train], c=10.0)
    fit = time.time() - start
    start = time.time()
    n = 0
    with open(out_csv, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "category_path"])
        batch: list = []

        def flush():
            for product, path in zip(batch, predict([p.title for p in batch])):
                writer.writerow([product.id, path])
            batch.clear()

        for row in read_catalog(catalog / spec.csv_file, spec, require_label=False):
            if isinstance(row, Product):
                batch.append(row)
                n += 1
                if len(batch) >= 512:
                    flush()
        flush()
    return fit, time.time() - start, n


def time_stages(catalog: Path, spec, categorizer, batch_size: int) -> dict:
    """{stage: (wall seconds, process CPU seconds)} of `categorize`'s text-only work done
    stage by stage, each over every product, with the functions `categorize` calls (no
    overlap: what each costs, not the pipelined rate). "products" -> how many."""
    import io

    from schema import encoders
    from schema.catalog_reader import catalog_csv_path, product_photo, read_catalog
    from schema.csv_cells import spreadsheet_safe
    from schema.product_example import product_to_example

    csv_path, image_root = catalog_csv_path(str(catalog), spec)
    out: dict = {}

    def timed(stage: str, work):
        wall, cpu_start = time.perf_counter(), time.process_time()
        result = work()
        out[stage] = (time.perf_counter() - wall, time.process_time() - cpu_start)
        return result

    rows = timed("read the CSV (`read_catalog`)", lambda: list(read_catalog(csv_path, spec, require_label=False)))
    examples = timed("tf.Examples of the rows (`product_photo`, `product_to_example`)",
                     lambda: [product_to_example(r, spec, product_photo(image_root, r).image) for r in rows])
    batches = [examples[i:i + batch_size] for i in range(0, len(examples), batch_size)]
    texts = [[encoders.example_text(e) for e in batch] for batch in batches]
    encoder = encoders.get_text_encoder()
    timed("text encoder alone (tokenizer + graph)", lambda: [encoder.encode(t) for t in texts])
    requests = timed("requests with embeddings (`embedded_requests`, the encoder included)",
                     lambda: [encoders.embedded_requests(batch, None) for batch in batches])
    outputs = timed("serving model (`predict`)", lambda: [categorizer.predict(r) for r in requests])

    def write():
        writer = csv.writer(io.StringIO())
        for output in outputs:
            for path, conf in zip(output["category_path"], output["confidence"]):
                writer.writerow([spreadsheet_safe(c) for c in ("id", path.decode("utf-8"), f"{conf:.4f}", 1, "")])

    timed("output rows (CSV)", write)
    out["products"] = len(examples)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="default: newest pushed model of the spec")
    parser.add_argument("--serving-dir", default=str(PROJECT_ROOT / "serving"))
    parser.add_argument("--catalog", default=str(DEFAULT_CATALOG))
    parser.add_argument("--spec", default="fashion")
    parser.add_argument("--text-rows", type=int, default=10000)
    parser.add_argument("--photo-rows", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=CATEGORIZE_BATCH_ROWS)
    parser.add_argument("--workdir", default=str(PROJECT_ROOT / "outputs" / "bench_categorize"))
    parser.add_argument("--no-tfidf", action="store_true", help="skip the TF-IDF baseline (its fit takes minutes)")
    parser.add_argument("--stages", action="store_true",
                        help="also time the text-only path's stages one after another (where its CPU time goes)")
    args = parser.parse_args(argv)

    from schema import encoders
    from schema.catalog_spec import load_spec
    from trainer.inference_client import Categorizer, categorize, newest_model

    spec = load_spec(args.spec)
    workdir = Path(args.workdir)
    catalogs = write_catalogs(Path(args.catalog), spec, workdir, args.text_rows, args.photo_rows)
    model_dir = Path(args.model) if args.model else newest_model(args.serving_dir, spec.name)

    t0 = time.time()
    categorizer = Categorizer(model_dir)
    t1 = time.time()
    encoders.get_text_encoder().load()
    t2 = time.time()
    encoders.get_image_encoder().load()
    t3 = time.time()
    categorize(str(catalogs["warmup"]), args.spec, str(workdir / "warmup.csv"), embedding_cache_dir="",
               categorizer=categorizer, batch_size=args.batch_size)
    t4 = time.time()
    results, cpu = {}, {}
    for name in ("text", "photo"):
        cpu_start = time.process_time()
        counts = categorize(str(catalogs[name]), args.spec, str(workdir / f"{name}.out.csv"),
                            embedding_cache_dir="", categorizer=categorizer, batch_size=args.batch_size)
        results[name], cpu[name] = counts, time.process_time() - cpu_start
    if not args.no_tfidf:
        fit, tfidf_seconds, tfidf_rows = time_tfidf(Path(args.catalog), args.text_rows, spec, catalogs["text"],
                                                    workdir / "tfidf.out.csv")
    stages = time_stages(catalogs["text"], spec, categorizer, args.batch_size) if args.stages else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024

    print(f"\nmodel {model_dir}\n")
    print("| start-up step | seconds |\n|---|---|")
    print(f"| load the serving model | {t1 - t0:.1f} |\n| load the text encoder | {t2 - t1:.1f} |")
    print(f"| load the image encoder | {t3 - t2:.1f} |\n| first batch ({len(list((catalogs['warmup']).glob('images/*')))} "
          f"products with photos, graph tracing) | {t4 - t3:.1f} |\n")
    print("| what | products | seconds | products/s | CPU seconds (all threads) | CPU ms per product |\n"
          "|---|---|---|---|---|---|")
    for name, label in (("text", "categorize, text only"), ("photo", "categorize, with photos")):
        c = results[name]
        if not c["rows"]:  # --photo-rows 0 or --text-rows 0: that row was not run
            continue
        print(f"| {label} | {c['rows']:,} | {c['seconds']:.1f} | {c['rows'] / c['seconds']:,.0f} | {cpu[name]:.1f} | "
              f"{1000 * cpu[name] / c['rows']:.2f} |")
    if not args.no_tfidf:
        print(f"| TF-IDF + logistic regression, text only (fit {fit:.0f}s apart) | {tfidf_rows:,} | "
              f"{tfidf_seconds:.1f} | {tfidf_rows / tfidf_seconds:,.0f} | | |")
    if stages:
        rows = stages.pop("products")
        print(f"\ntext-only stages, one after another ({rows:,} products, batches of {args.batch_size})\n")
        print("| stage | wall us per product | CPU us per product (all threads) |\n|---|---|---|")
        for stage, (wall, cpu_seconds) in stages.items():
            print(f"| {stage} | {1e6 * wall / rows:,.0f} | {1e6 * cpu_seconds / rows:,.0f} |")
    print(f"\npeak RSS of the benchmark process: {peak:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
