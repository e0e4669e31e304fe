"""Throughput of the two pretrained encoders, by batch size and threads.

    .venv/bin/python bench/encoders.py [--images 256] [--texts 4000] [--torch]

Images: EfficientNet-Lite0 on photos of the shared fashion catalog, decoded once up front
(decoding is timed apart), then embedded for each (threads, batch size) after a warm-up
of three batches, best of `--repeats` runs. `--torch` also times the PyTorch encoder the
project ran before (bench/torch_reference.py; needs torch, which the lock no longer
installs) on the same pixels, alternating with the ONNX Runtime one, and prints the largest
difference of their features. Texts: the multilingual sentence encoder on catalog titles, in calls of
512 as `categorize` makes them (the encoder's batches of 64 inside), with 1 and 2 batches
encoded concurrently (`TextEncoder(workers=...)`).
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

    titles = [r["productDisplayName"] for r in rows[: args.texts]]
    print(f"\ntexts: {len(titles):,} titles, in calls of 512 (as `categorize` makes them), "
          f"split into the encoder's batches of 64\n")
    print("| concurrent batches (workers) | texts/s |\n|---|---|")
    for workers in sorted({1, 2, os.cpu_count() or 1}):
        text = encoders.TextEncoder(workers=workers)
        text.encode(titles[:512])  # warm-up
        start = time.perf_counter()
        for i in range(0, len(titles), 512):
            text.encode(titles[i:i + 512])
        print(f"| {workers} | {len(titles) / (time.perf_counter() - start):,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
