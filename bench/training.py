"""Training throughput of the hierarchical model with 1 and with N local workers.

    .venv/bin/python bench/training.py                 # full fashion catalog, 1 and 2 workers
    .venv/bin/python bench/training.py --rows 8000 --workers 1 2

Runs `pipeline.py run --train-workers N` for each N on one pipeline root, so that all the
upstream components come from the cache after the first run and only the Trainer (and
what follows it) runs again. The number is what `trainer/run.py` measures inside `fit`:
examples of the training batches per second, per-epoch validation excluded, read from the
trained model's `assets.extra/model_info.json`. With N workers the N processes share
this machine's cores and talk over localhost (the cluster code path: TF_CONFIG +
MultiWorkerMirroredStrategy).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence


from bench.pipeline_scale import run_once  # noqa: E402
from schema.config import DEFAULT_CATALOG, PROJECT_ROOT  # noqa: E402


def newest_model_info(root: Path) -> dict:
    from schema import serving_layout
    from schema.mlmd import newest, open_store
    from schema.config import PipelineConfig

    store = open_store(PipelineConfig.local(".", "fashion", pipeline_root=str(root)).metadata_path)
    model = newest(store, "Model", producer="TaxonomyTrainer")
    return json.loads((Path(model.uri) / "Format-Serving" / serving_layout.ASSETS_EXTRA / serving_layout.ASSETS_INFO).read_text())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", default=str(DEFAULT_CATALOG))
    parser.add_argument("--spec", default="fashion")
    parser.add_argument("--rows", type=int, default=0, help="0 = the whole catalog")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--embedding-cache-dir", default=str(PROJECT_ROOT / ".cache" / "embeddings"),
                        help="embeddings are not what this measures: the shared cache by default")
    parser.add_argument("--workdir", default=str(PROJECT_ROOT / "outputs" / "bench_training"))
    args = parser.parse_args(argv)

    workdir = Path(args.workdir)
    root = workdir / f"{args.spec}-{args.rows or 'full'}"
    shutil.rmtree(root, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.workers:
        print(f"training with {n} worker(s) ...", flush=True)
        run = run_once(args.catalog, args.spec, root, Path(args.embedding_cache_dir), args.rows or None,
                       "in_memory", n, workdir / f"{args.spec}-{n}-workers.log")
        info = newest_model_info(root)
        if info.get("workers") != n:
            raise RuntimeError(f"expected a model trained by {n} worker(s), got {info.get('workers')}")
        rows.append((n, info, run))
    print("\n| workers | train examples | epochs | training time (s) | examples/s | vs 1 worker | "
          "Trainer component (s) | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    base = rows[0][1]["train_examples_per_second"]
    for n, info, run in rows:
        eps = info["train_examples_per_second"]
        print(f"| {n} | {info['train_examples']:,} | {info['preset']['epochs']} | {info['train_seconds']:.0f} | "
              f"{eps:,.0f} | {eps / base:.2f}x | {run['seconds'].get('TaxonomyTrainer', float('nan')):.0f} | "
              f"{run['peak_mib'] / 1024:.1f} GiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
