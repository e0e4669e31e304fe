"""How the whole pipeline's wall time grows with catalog size, per component.

    .venv/bin/python bench/pipeline_scale.py                       # 2k, 8k, full fashion
    .venv/bin/python bench/pipeline_scale.py --sizes 2000 --beam-mode in_memory multi_processing

Each size runs `pipeline.py run` in a fresh pipeline root and a fresh embedding cache
(so embedding cost is counted), as a child process from an installed venv; the total is
that process's wall time, the per-component times are read back from the run's ML
Metadata (execution create -> last update, `components/run_status.py`), and the peak
memory is the largest resident set of any process of the run (TFX runs the components
in-process; the training workers and Beam workers are children). The resident set of the
run's whole process tree is also sampled twice a second and each sample attributed to the
component the console names as running then, so the table can say which component holds
the peak (`--rss-by-component`). With `--rerun`, the largest size is run a second time on
the same root and cache: what caching saves.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence


from schema.config import BEAM_MODES, DEFAULT_CATALOG, PROJECT_ROOT  # noqa: E402

ORDER = ["CatalogExampleGen", "StatisticsGen", "ImportSchemaGen", "SchemaGen", "StrictExampleValidator",
         "TaxonomyGen", "Embedder", "TaxonomyTransform", "TaxonomyTrainer", "BagOfWordsTrainer",
         "latest_blessed_model_resolver", "BaselineSelector", "Evaluator", "SafePusher",
         "ReviewReport"]


def run_once(catalog: str, spec: str, root: Path, cache: Path, rows: Optional[int], beam_mode: str,
             train_workers: int, log: Path) -> dict:
    """One `pipeline.py run` in its own process; -> wall time, per-node seconds, peak RSS."""
    from components.run_status import list_runs
    from schema.mlmd import open_store

    cmd = [sys.executable, str(PROJECT_ROOT / "pipeline.py"), "run", "--spec", spec, "--catalog", catalog,
           "--pipeline-root", str(root), "--serving-dir", str(root / "serving"),
           "--embedding-cache-dir", str(cache), "--beam-mode", beam_mode, "--train-workers", str(train_workers)]
    if rows:
        cmd += ["--max-rows", str(rows)]
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    samples = log.with_suffix(".rss")
    start = time.time()
    with open(log, "w", encoding="utf-8") as handle:
        # A wrapper process per run, so that its RUSAGE_CHILDREN peak is this run's alone
        # (the peak of the largest process of the run, training workers included).
        wrapper = [sys.executable, "-m", "bench.pipeline_scale", "--wrap", str(samples), "--"]
        proc = subprocess.run(wrapper + cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT)
    wall = time.time() - start
    text = log.read_text(encoding="utf-8", errors="replace")
    peak = next((int(line.split()[1]) / 1024 for line in text.splitlines() if line.startswith("PEAK_RSS_KIB")), 0.0)
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline run failed (exit {proc.returncode}); see {log}")
    runs = list_runs(open_store(str(root / "metadata.sqlite")))
    last = runs[-1]
    return {"wall": wall, "seconds": last["seconds"], "cached": last["cached"], "peak_mib": peak,
            "pushed": last["pushed"], "rows": rows,
            "rss_by_node": rss_by_component(text, _read_samples(samples), start)}


def run_and_sample(samples: Path, cmd: list[str], interval: float = 0.5) -> int:
    """Runs `cmd`, writing `<epoch seconds> <resident set of its whole process tree, KiB>`
    lines to `samples` every `interval`; prints the largest single process's peak at the end."""
    import resource

    import psutil

    proc = subprocess.Popen(cmd)
    with open(samples, "w", encoding="utf-8") as out:
        while proc.poll() is None:
            try:
                tree = [psutil.Process(proc.pid)]
                tree += tree[0].children(recursive=True)
            except psutil.NoSuchProcess:
                break
            total = 0
            for p in tree:
                try:
                    total += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            out.write(f"{time.time():.2f} {total // 1024}\n")
            out.flush()
            time.sleep(interval)
    rc = proc.wait()
    print("PEAK_RSS_KIB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
    return rc


def _read_samples(path: Path) -> list[tuple[float, int]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            rows.append((float(parts[0]), int(parts[1])))
    return rows


_START = re.compile(r"^\[(\d\d):(\d\d):(\d\d)\] (\S+) \.\.\.$")


def rss_by_component(console: str, samples: list[tuple[float, int]], started: float) -> dict[str, float]:
    """Largest process-tree resident set (MiB) sampled while each component ran.

    A component runs from its console start line (`[HH:MM:SS] Name ...`, local time) to
    the next component's start; before the first one the process is importing."""
    day = datetime.datetime.fromtimestamp(started)
    marks = []
    for line in console.splitlines():
        m = _START.match(line.strip())
        if m:
            when = day.replace(hour=int(m[1]), minute=int(m[2]), second=int(m[3]), microsecond=0)
            if when.timestamp() < started - 1:  # the run crossed midnight
                when += datetime.timedelta(days=1)
            marks.append((when.timestamp(), m[4]))
    peaks: dict[str, float] = {}
    for t, kib in samples:
        node = "(start-up)"
        for when, name in marks:
            if when <= t:
                node = name
        peaks[node] = max(peaks.get(node, 0.0), kib / 1024)
    return peaks


def render(results: list[tuple[str, dict]]) -> str:
    nodes = [n for n in ORDER if any(n in r["seconds"] for _, r in results)]
    nodes += sorted({n for _, r in results for n in r["seconds"]} - set(nodes))
    head = ["run"] + nodes + ["total (wall)", "peak RSS", "largest process-tree RSS, while"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results:
        cells = [name] + [f"{r['seconds'][n]:.0f}" if n in r["seconds"] else
                          ("cached" if n in r["cached"] else "-") for n in nodes]
        cells += [f"{r['wall']:.0f} s ({r['wall'] / 60:.1f} min)", f"{r['peak_mib'] / 1024:.1f} GiB"]
        by_node = r.get("rss_by_node") or {}
        top = sorted(by_node.items(), key=lambda kv: -kv[1])[:3]
        cells.append(", ".join(f"{n} {mib / 1024:.2f} GiB" for n, mib in top) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--wrap"]:  # the per-run wrapper process (run_once)
        return run_and_sample(Path(argv[1]), argv[3:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", default=str(DEFAULT_CATALOG))
    parser.add_argument("--spec", default="fashion")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 0], help="rows; 0 = the whole catalog")
    parser.add_argument("--beam-mode", nargs="+", default=["in_memory"], choices=sorted(BEAM_MODES))
    parser.add_argument("--train-workers", type=int, default=1)
    parser.add_argument("--rerun", action="store_true", help="run the largest size again on the same root")
    parser.add_argument("--workdir", default=str(PROJECT_ROOT / "outputs" / "bench_scale"))
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args(argv)

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[tuple[str, dict]] = []
    for mode in args.beam_mode:
        for rows in args.sizes:
            label = f"{rows}" if rows else "full"
            root, cache = workdir / f"{args.spec}-{label}-{mode}", workdir / f"embeddings-{label}-{mode}"
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
            print(f"running {label} rows, beam {mode} ...", flush=True)
            r = run_once(args.catalog, args.spec, root, cache, rows, mode, args.train_workers,
                         workdir / f"{args.spec}-{label}-{mode}.log")
            name = f"{label} rows, {mode}"
            results.append((name, r))
            print(f"  {name}: {r['wall']:.0f}s, peak {r['peak_mib']:.0f} MiB", flush=True)
        if args.rerun:
            rows = max(args.sizes, key=lambda n: n or float("inf"))
            label = f"{rows}" if rows else "full"
            root, cache = workdir / f"{args.spec}-{label}-{mode}", workdir / f"embeddings-{label}-{mode}"
            r = run_once(args.catalog, args.spec, root, cache, rows, mode, args.train_workers,
                         workdir / f"{args.spec}-{label}-{mode}-rerun.log")
            results.append((f"{label} rows, {mode}, re-run (same data)", r))
            print(f"  re-run: {r['wall']:.0f}s", flush=True)
    text = render(results)
    print("\nseconds per component (executed; 'cached' = reused from an earlier run)\n\n" + text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
