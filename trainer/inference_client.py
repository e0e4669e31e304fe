"""`categorize`: a thin client of the pushed model's serving signature.

Rows are read and encoded by the same code as ingest (`schema.catalog_reader`,
`schema.product_example`), so a product is seen the same way in training and here. One output
row per input row, in input order: rejected rows get an empty path and the reason.

No input can destroy data: an output that is the catalog file (by any path or link) is
refused before anything is opened for writing; catalog-wide errors (an empty file, a
missing column) are found before the model loads; the output is written to a temporary
file beside the target and renamed over it only once every row is done, so an
interrupted or failed job leaves the previous output (or none) and says so. Cells that a
spreadsheet would run as a formula are neutralised (`schema/csv_cells.py`).
"""
from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from schema import features, serving_layout
from schema.catalog_reader import (Product, Rejected, catalog_csv_path, check_catalog, product_photo,
                                   read_catalog)
from schema.catalog_spec import CatalogSpec, load_spec
from schema.config import CATEGORIZE_BATCH_ROWS, PROJECT_ROOT
from schema.csv_cells import spreadsheet_safe
from schema.serving_model import ServingModel, ServingModelError

OUTPUT_COLUMNS = ("id", "category_path", "confidence", "depth", "reason")
REASON_ABSTAINED = "confidence below the top-level threshold"
PHOTO_NOT_USED = "photo not used: "


class CategorizeError(Exception):
    """A fault of the whole `categorize` job (output over the catalog, a model that does
    not load, an output that cannot be written); the message says what to change."""


def newest_model(serving_dir: str | os.PathLike, spec_name: str) -> Path:
    """The newest complete version under serving/<spec>/ (`schema/serving_layout.py`: its
    `_COMPLETE` manifest is there and matches its files). Newer broken versions are named
    on stderr and skipped."""
    base = Path(serving_dir) / spec_name
    newest, broken = serving_layout.newest_complete(base)
    for folder, reason in broken:
        print(f"warning: skipping {folder}: not a complete model version: {reason}", file=sys.stderr, flush=True)
    if newest is None:
        if broken:
            raise FileNotFoundError(f"no complete model version under {base} (broken: "
                                    f"{', '.join(p.name for p, _ in broken)}): push again or pass --model")
        raise FileNotFoundError(f"no pushed model under {base}: run `python pipeline.py run` first or pass --model")
    return newest


class Categorizer:
    """Loads a serving model once and categorises batches of products."""

    def __init__(self, model_dir: str | os.PathLike):
        self.model_dir = str(model_dir)
        if not Path(self.model_dir).is_dir():
            raise CategorizeError(f"cannot load the model {self.model_dir}: no such folder")
        try:
            self._model = ServingModel(self.model_dir)
        except ServingModelError as err:
            raise CategorizeError(f"cannot load the model {self.model_dir}: {err} "
                                  f"(--model must be a pushed SavedModel folder)") from err
        info_path = Path(self.model_dir) / serving_layout.ASSETS_EXTRA / serving_layout.ASSETS_INFO
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
        # Embedding inputs the model reads (trainer/run.py); added to requests with the
        # encoders the Embedder uses (schema/encoders/).
        self.embedding_features = tuple(info.get("embedding_features") or ())
        # The word mapper the model was trained with (assets.extra, trainer/export.py):
        # request titles are mapped by it, as the Embedder mapped the training examples.
        self.word_mapper = self._load_word_mapper()

    def _load_word_mapper(self):
        from schema.encoders import word_mapper

        path = Path(self.model_dir) / serving_layout.ASSETS_EXTRA / word_mapper.FILE_NAME
        try:
            return word_mapper.load_optional(str(path))
        except Exception as err:  # noqa: BLE001 - a damaged asset: one clear error, no traceback
            raise CategorizeError(f"cannot load the model {self.model_dir}: its word mapper {path} is "
                                  f"unreadable ({err}); push the model again") from err

    def predict(self, serialized: list[bytes]) -> dict:
        return self._model(serialized)


def _batches(rows: Iterator, size: int) -> Iterator[list]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def prefetched(items: Iterator, depth: int = 2) -> Iterator:
    """`items`, produced by a background thread up to `depth` ahead of the consumer, in
    order. Reading and embedding the next batch (the encoders run in ONNX Runtime, which
    releases the GIL) then runs while the serving model scores this one, so on
    2 cores the slower stage, not the sum, sets the pace. An exception in the producer is
    raised here, in the consumer, at the point where its item would have come. A consumer
    that stops early (an error, `close()`) stops the producer after its current item and
    waits for it, so nothing runs on behind the caller's back."""
    import queue
    import threading

    done = object()
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple) -> bool:
        """Queues `entry` unless the consumer has stopped (then False)."""
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((done, None))
        except BaseException as err:  # handed to the consumer, raised there
            offer((done, err))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator's own cleanup (open files) runs now
                close()

    worker = threading.Thread(target=produce, name="categorize-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, err = slots.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join()


# Batches prepared at once: one's Python work (reading, requests) runs while the other's
# encoder graphs run in ONNX Runtime, which releases the GIL (BENCHMARKS.md, "`categorize`
# throughput").
PREPARE_WORKERS = 2


def mapped_in_order(work: Callable, items: Iterator, workers: int = PREPARE_WORKERS) -> Iterator:
    """`work(item)` for each of `items`, up to `workers` at once on a thread pool, the
    results in the items' order. `items` is read here, in the caller's thread; at most
    `workers` items are taken ahead of the result the caller is given. An exception in
    `work` is raised where its result would have come; a caller that stops early (an
    error, `close()`) cancels what has not started and waits for what has."""
    import collections
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="categorize-prepare")
    pending: collections.deque = collections.deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
        close = getattr(items, "close", None)
        if close is not None:  # a generator's own cleanup (open files) runs now
            close()


def _read_batches(csv_path: Path, image_root: Path, spec: CatalogSpec, batch_size: int
                  ) -> Iterator[tuple[list, list, list, list, dict[int, str]]]:
    """Per batch of catalog rows: the rows, their output rows (rejections already filled
    in), which of them go to the model, their tf.Examples, and {row index: why its photo
    was not used}."""
    from schema.product_example import product_to_example

    for batch in _batches(read_catalog(csv_path, spec, require_label=False), batch_size):
        examples, slots, photo_notes = [], [], {}
        results: list[Optional[list]] = [None] * len(batch)
        for i, row in enumerate(batch):
            if isinstance(row, Rejected):
                results[i] = [row.id, "", "", 0, f"rejected: row {row.row_number}: {row.reason}"]
                continue
            assert isinstance(row, Product)
            photo = product_photo(image_root, row)
            if photo.reject:
                results[i] = [row.id, "", "", 0, f"rejected: row {row.row_number}: {photo.reject}"]
                continue
            if photo.problem:
                photo_notes[i] = f"{PHOTO_NOT_USED}{photo.problem}"
            examples.append(product_to_example(row, spec, photo.image))
            slots.append(i)
        yield batch, results, slots, examples, photo_notes


def _prepared_batches(csv_path: Path, image_root: Path, spec: CatalogSpec, batch_size: int,
                      embed: Optional[Callable], cache
                      ) -> Iterator[tuple[list, list, list, list[bytes], dict[int, str]]]:
    """`_read_batches` with each batch's tf.Examples made serialized requests (their
    embeddings added by `embed`), `PREPARE_WORKERS` batches at once, in order: everything
    before the serving call, so it can run ahead of it."""
    def requests(read: tuple) -> tuple:
        batch, results, slots, examples, photo_notes = read
        if examples and embed is not None:
            serialized = embed(examples, cache)
        else:
            serialized = [example.SerializeToString() for example in examples]
        return batch, results, slots, serialized, photo_notes

    return mapped_in_order(requests, _read_batches(csv_path, image_root, spec, batch_size))


def _refuse_output_over_catalog(output: Path, csv_path: Path) -> None:
    """Raises CategorizeError when `output` is the catalog file, by any path or link."""
    if output.is_dir():
        raise CategorizeError(f"--output {output} is a folder; give a file name")
    try:
        same = output.exists() and os.path.samefile(output, csv_path)
    except OSError:
        same = False
    if same or os.path.realpath(output) == os.path.realpath(csv_path):  # realpath: no error on a loop
        raise CategorizeError(f"--output {output} is the catalog file {csv_path}: writing it would destroy "
                              f"the catalog; choose another output file")


def _open_temporary_output(target: Path):
    """A new file beside `target` (same file system, so the final rename is atomic), with
    the permissions `target` has or a new file would get."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as err:
        raise CategorizeError(f"cannot write the output {target}: {err}") from err
    try:
        mode = target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(name, mode)
    return os.fdopen(fd, "w", newline="", encoding="utf-8"), Path(name)


def categorize(
    catalog: str,
    spec_name: str,
    output: str,
    model_dir: Optional[str] = None,
    serving_dir: Optional[str] = None,
    use_thresholds: bool = True,
    batch_size: int = CATEGORIZE_BATCH_ROWS,
    embedding_cache_dir: Optional[str] = None,
    categorizer: Optional[Categorizer] = None,
) -> dict:
    """-> counts of rows, categorized, abstained, rejected and photo_warnings (rows whose
    photo could not be used), plus `load_seconds` (model start-up) and `seconds` (the rows,
    after start-up). A loaded `categorizer` is reused."""
    spec: CatalogSpec = load_spec(spec_name)
    csv_path, image_root = catalog_csv_path(catalog, spec)
    if not csv_path.exists():
        raise FileNotFoundError(f"catalog file {csv_path} not found")
    requested = Path(output)
    _refuse_output_over_catalog(requested, csv_path)
    check_catalog(csv_path, spec, require_label=False)  # catalog-wide errors, before the model loads
    target = Path(os.path.realpath(requested))  # a link to an output file: replace the file it names
    existed = target.exists()
    handle, partial = _open_temporary_output(target)
    try:
        counts = _categorize_into(handle, csv_path, image_root, spec, model_dir, serving_dir, use_thresholds,
                                  batch_size, embedding_cache_dir, categorizer)
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(partial, target)
    except BaseException as err:
        handle.close()
        partial.unlink(missing_ok=True)
        what = "interrupted" if isinstance(err, KeyboardInterrupt) else "stopped"
        print(f"categorize {what}: {output} was " + ("not changed" if existed else "not written"),
              file=sys.stderr, flush=True)
        raise
    print(
        f"wrote {output}: {counts['rows']} rows, {counts['categorized']} with a path, "
        f"{counts['abstained']} abstained, {counts['rejected']} rejected, "
        f"{counts['photo_warnings']} with a photo not used ({counts['load_seconds'] + counts['seconds']:.1f}s)",
        flush=True,
    )
    return counts


def _categorize_into(handle, csv_path: Path, image_root: Path, spec: CatalogSpec, model_dir: Optional[str],
                     serving_dir: Optional[str], use_thresholds: bool, batch_size: int,
                     embedding_cache_dir: Optional[str], categorizer: Optional[Categorizer]) -> dict:
    """Loads the model (unless given), categorises every row into `handle`; -> counts."""
    start = time.time()
    if categorizer is None:
        model_path = Path(model_dir) if model_dir else newest_model(serving_dir or PROJECT_ROOT / "serving", spec.name)
        categorizer = Categorizer(model_path)
        print(f"loaded model {model_path} in {time.time() - start:.1f}s", file=sys.stderr, flush=True)
    load_seconds = time.time() - start
    embed, cache = None, None
    mapper = getattr(categorizer, "word_mapper", None)
    if getattr(categorizer, "embedding_features", ()) or mapper is not None:
        import functools

        from schema import encoders

        embed = functools.partial(encoders.embedded_requests, mapper=mapper)
        cache = encoders.open_cache(embedding_cache_dir)
    path_key = features.OUT_PATH if use_thresholds else features.OUT_FULL_PATH
    conf_key = features.OUT_CONFIDENCE if use_thresholds else features.OUT_FULL_CONFIDENCE
    depth_key = features.OUT_DEPTH if use_thresholds else "full_depth"
    counts = {"rows": 0, "categorized": 0, "abstained": 0, "rejected": 0, "photo_warnings": 0}
    writer = csv.writer(handle)
    writer.writerow(OUTPUT_COLUMNS)
    batches = _prepared_batches(csv_path, image_root, spec, batch_size, embed, cache)
    for batch, results, slots, requests, photo_notes in prefetched(batches):
        if requests:
            out = categorizer.predict(requests)
            for j, i in enumerate(slots):
                path = out[path_key][j].decode("utf-8")
                conf = float(out[conf_key][j])
                reasons = [] if path else [REASON_ABSTAINED]
                if i in photo_notes:
                    reasons.append(photo_notes[i])
                results[i] = [batch[i].id, path, f"{conf:.4f}" if path else "", int(out[depth_key][j]),
                              "; ".join(reasons)]
        for i, result in enumerate(results):
            writer.writerow([spreadsheet_safe(cell) for cell in result])
            counts["rows"] += 1
            counts["photo_warnings"] += i in photo_notes
            if result[4].startswith("rejected"):
                counts["rejected"] += 1
            elif result[1]:
                counts["categorized"] += 1
            else:
                counts["abstained"] += 1
        print(f"  {counts['rows']} rows categorised", file=sys.stderr, flush=True)
    counts["load_seconds"], counts["seconds"] = load_seconds, time.time() - start - load_seconds
    return counts
