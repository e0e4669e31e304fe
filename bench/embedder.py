"""The Embedder's wall time, cold cache, by the Beam batch sizes that feed the encoders.

    .venv/bin/python bench/embedder.py --examples <root>/CatalogExampleGen/examples/<id> \
        [--rows 8000] [--batches 16:64 256:512] [--repeats 2]

Runs the Embedder's executor (components/embedder/executor.py) in this process on an
Examples artifact (a pipeline run's CatalogExampleGen output; `--rows` keeps the first N
products of each split, in a scratch copy), with an empty embedding cache every run, once
per batch setting (`BATCH_SIZES`, min:max) and repeat, the settings alternating so that a
machine shared with other jobs weighs on them alike. The encoders load before the first
run, so every run times embedding, the cache and Beam, not model loading. Reports wall
time, rows/s, and the sizes of the calls the encoders got.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _subset(examples_uri: str, rows: int, out_dir: Path):
    """An Examples artifact with the first `rows` records of each split of `examples_uri`."""
    import tensorflow as tf
    from tfx.types import artifact_utils, standard_artifacts

    out = standard_artifacts.Examples()
    out.uri = str(out_dir)
    splits = sorted(p.name[len("Split-"):] for p in Path(examples_uri).glob("Split-*"))
    out.split_names = artifact_utils.encode_split_names(splits)
    for split in splits:
        files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
        records = tf.data.TFRecordDataset(files, compression_type="GZIP")
        if rows:
            records = records.take(rows)
        os.makedirs(out_dir / f"Split-{split}")
        with tf.io.TFRecordWriter(str(out_dir / f"Split-{split}" / "data.gz"), options="GZIP") as writer:
            for record in records:
                writer.write(record.numpy())
    return out


def _run(executor_module, examples, batches: tuple[int, int], work: Path) -> tuple[float, int, list[int]]:
    """One Embedder run with `BATCH_SIZES = batches` and a fresh cache; -> (seconds, rows,
    sizes of the encoder calls)."""
    from tfx.types import standard_artifacts

    from components.artifacts import WordMapperArtifact

    calls: list[int] = []
    embed = executor_module.encoders.embed_examples

    def counting(batch, cache=None, mapper=None):
        calls.append(len(batch))
        return embed(batch, cache, mapper)

    out = standard_artifacts.Examples()
    out.uri = str(work / "examples")
    schema = standard_artifacts.Schema()
    schema.uri = str(work / "schema")
    os.makedirs(schema.uri)
    mapper = WordMapperArtifact()
    mapper.uri = str(work / "word_mapper")
    os.makedirs(mapper.uri)
    executor_module.BATCH_SIZES, executor_module.encoders.embed_examples = batches, counting
    try:
        start = time.perf_counter()
        executor_module.Executor().Do({"input_examples": [examples]}, {"examples": [out], "schema": [schema], "word_mapper": [mapper]},
                                      {"cache_dir": str(work / "cache")})
        seconds = time.perf_counter() - start
    finally:
        executor_module.encoders.embed_examples = embed
    return seconds, sum(calls), calls


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", required=True, help="an Examples artifact folder (with Split-* inside)")
    parser.add_argument("--rows", type=int, default=0, help="first N products of each split; 0 = all")
    parser.add_argument("--batches", nargs="+", default=["16:64", "256:512"], help="min:max examples per call")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    settings = [tuple(int(x) for x in b.split(":")) for b in args.batches]

    from schema import encoders
    from components.embedder import executor as executor_module

    encoders.get_text_encoder().load()
    encoders.get_image_encoder().load()
    times: dict[tuple, list[float]] = {s: [] for s in settings}
    sizes: dict[tuple, list[int]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory(prefix="bench_embedder_") as scratch:
        examples = _subset(args.examples, args.rows, Path(scratch) / "input")
        for repeat in range(args.repeats):
            for setting in settings:
                work = Path(scratch) / f"run-{repeat}-{setting[0]}-{setting[1]}"
                seconds, rows, calls = _run(executor_module, examples, setting, work)
                times[setting].append(seconds)
                sizes[setting] = calls
                print(f"batches {setting[0]}:{setting[1]}, run {repeat + 1}: {rows} rows in {seconds:.1f} s "
                      f"({rows / seconds:.0f} rows/s), {len(calls)} encoder calls", flush=True)
    print("\n| batch sizes (min:max) | rows | encoder calls (median size) | wall time per run (s) | rows/s (best) |")
    print("|---|---|---|---|---|")
    for setting in settings:
        calls = sizes[setting]
        print(f"| {setting[0]}:{setting[1]} | {sum(calls):,} | {len(calls)} ({statistics.median(calls):.0f}) | "
              f"{' / '.join(f'{t:.0f}' for t in times[setting])} | {sum(calls) / min(times[setting]):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
