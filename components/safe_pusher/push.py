"""The SafePusher's push logic in plain Python: infra check, model card, atomic versioned push.

The executor (`executor.py`) only turns TFX artifacts and exec properties into the plain
values these functions take; everything the pusher decides and writes is here, testable
without TFX's executor contract.

1. Infra check (`infra_check`): the SavedModel is loaded and its `serving_default`
   signature is called on up to `smoke_rows` eval examples; every contract output must be
   there with one row per request, and every `full_path` must be non-empty and a path of
   the model's taxonomy. A failure is not an exception: the caller does not push and
   records the reason, so the run finishes and its summary can say why.
2. Model card (`model_card_for`): the facts of `model_card.py` from the model's assets,
   the TFMA evaluation (`read_evaluation`), the blessing and the infra check.
3. Push (`push_model`; the layout and its rules are owned by `schema/serving_layout.py`):
   under a lock, staging folders of killed pushes are removed; the model and its model
   card are copied to `<base>/.incoming-<version>` (a number above every existing
   version), the `_COMPLETE` manifest is written last, everything is synced, then renamed
   to `<base>/<version>` (one rename on one filesystem, so a reader never sees a
   half-written version); complete versions beyond the newest `keep_versions` (default 3)
   are deleted, never the served one. Destinations with a scheme (gs://...) have no
   rename: files are copied with `saved_model.pb` last and an empty `_COMPLETE` marker
   after it.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from typing import Any, Callable, Mapping, Optional

import numpy as np
from absl import logging
from tfx.dsl.io import fileio
from tfx.utils import io_utils

from components.safe_pusher import model_card
from schema import evaluation_results, features, serving_layout
from schema.serving_model import SIGNATURE, ServingModel, ServingModelError
from schema.taxonomy import ancestors

DEFAULT_SMOKE_ROWS = 32
INCOMING_PREFIX = serving_layout.INCOMING_PREFIX
COMPLETE_MARKER = serving_layout.COMPLETE_MARKER
SAVED_MODEL_PB = serving_layout.SAVED_MODEL_PB
ASSETS = serving_layout.ASSETS_EXTRA


# ---- infra check ------------------------------------------------------------------------
@dataclasses.dataclass
class InfraResult:
    status: str  # "passed", "failed" or "skipped"
    rows: int = 0
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def describe(self) -> str:
        return f"{self.status}: {self.detail}" if self.detail else self.status

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def contract_outputs(depth: int) -> list[str]:
    """The serving outputs TFMA and `categorize` read (schema/features.py)."""
    names = [features.OUT_PATH, features.OUT_CONFIDENCE, features.OUT_DEPTH, features.OUT_FULL_PATH,
             features.OUT_FULL_CONFIDENCE, "full_depth"]
    for k in range(1, depth + 1):
        names += [features.out_level_class(k), features.out_level_confidence(k)]
    return names


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _rows_note(rows: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (", ..." if len(rows) > limit else "")


def check_outputs(outputs: Mapping[str, Any], num_requests: int, taxonomy: dict) -> list[str]:
    """Problems with one signature call's outputs (numpy arrays); [] when it keeps the contract."""
    levels = [set(level["classes"]) for level in taxonomy["levels"]]
    problems = []
    missing = [name for name in contract_outputs(len(levels)) if name not in outputs]
    if missing:
        problems.append(f"outputs missing from the signature: {', '.join(missing)}")
    for name in contract_outputs(len(levels)):
        if name in outputs:
            shape = np.shape(outputs[name])
            if not shape or shape[0] != num_requests:
                problems.append(f"output {name!r} has shape {list(shape)} for {num_requests} requests")
    if problems:
        return problems

    def in_taxonomy(path: str) -> bool:
        prefixes = ancestors(path)
        return len(prefixes) <= len(levels) and all(p in levels[i] for i, p in enumerate(prefixes))

    full = [_text(v) for v in np.reshape(outputs[features.OUT_FULL_PATH], (num_requests, -1))[:, 0]]
    empty = [i for i, path in enumerate(full) if not path]
    if empty:
        problems.append(f"full_path is empty for {len(empty)} of {num_requests} rows (rows {_rows_note(empty)})")
    unknown = [i for i, path in enumerate(full) if path and not in_taxonomy(path)]
    if unknown:
        problems.append(f"full_path is not a taxonomy path for {len(unknown)} of {num_requests} rows, "
                        f"e.g. {full[unknown[0]]!r} (rows {_rows_note(unknown)})")
    returned = [_text(v) for v in np.reshape(outputs[features.OUT_PATH], (num_requests, -1))[:, 0]]
    unknown = [i for i, path in enumerate(returned) if path and not in_taxonomy(path)]
    if unknown:
        problems.append(f"category_path is not a taxonomy path for {len(unknown)} of {num_requests} rows, "
                        f"e.g. {returned[unknown[0]]!r} (rows {_rows_note(unknown)})")
    for name in (features.OUT_CONFIDENCE, features.OUT_FULL_CONFIDENCE):
        values = np.asarray(outputs[name], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            problems.append(f"output {name!r} has non-finite values")
    return problems


def run_smoke_test(model_path: str, rows: list[bytes], taxonomy: dict) -> InfraResult:
    """Loads the SavedModel and checks one call of its serving signature on `rows`."""
    try:
        model = ServingModel(model_path)
    except ServingModelError as err:
        return InfraResult("failed", 0, str(err))
    try:
        outputs = model(rows)
    except Exception as err:  # noqa: BLE001
        return InfraResult("failed", len(rows), f"{SIGNATURE} failed on {len(rows)} eval examples: "
                                                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    problems = check_outputs(outputs, len(rows), taxonomy)
    if problems:
        return InfraResult("failed", len(rows), "; ".join(problems))
    return InfraResult("passed", len(rows), f"{SIGNATURE} kept the serving contract on {len(rows)} eval examples")


def infra_check(model_path: str, taxonomy: Optional[dict],
                read_rows: Optional[Callable[[int], list[bytes]]], smoke_rows: int) -> InfraResult:
    """The infra check of the model at `model_path`. `read_rows(n)` gives up to n serialized
    eval examples; None when the pusher has no examples input (the smoke test is skipped)."""
    if taxonomy is None:
        return InfraResult("failed", 0, f"the model has no {ASSETS}/{serving_layout.ASSETS_TAXONOMY} to check its outputs against")
    if read_rows is None:
        logging.warning("SafePusher: no examples input, so the infra check's smoke test is skipped")
        return InfraResult("skipped", 0, "no examples input to smoke-test the serving signature with")
    if smoke_rows <= 0:
        logging.warning("SafePusher: smoke_rows=%d, so the infra check's smoke test is skipped", smoke_rows)
        return InfraResult("skipped", 0, f"smoke_rows={smoke_rows}")
    try:
        rows = read_rows(smoke_rows)
    except Exception as err:  # noqa: BLE001 - e.g. no eval split
        return InfraResult("failed", 0, f"cannot read the eval examples: {err}")
    if not rows:
        return InfraResult("failed", 0, "the eval split has no examples to smoke-test with")
    return run_smoke_test(model_path, rows, taxonomy)


# ---- model card -------------------------------------------------------------------------
def read_evaluation(uri: str) -> tuple[list[dict], Optional[bool]]:
    """TFMA's metrics as flat rows for `model_card.summarize_metrics` (read by
    `schema/evaluation_results.py`), and whether TFMA's validation passed (None when it
    wrote no validation result)."""
    rows = []
    for v in evaluation_results.metric_values(uri):
        if v.value is None:
            continue
        row = {"slice": list(v.slice_items), "model": v.model, "metric": v.name, "diff": v.is_diff,
               "value": v.value}
        if v.lower is not None and v.upper is not None:  # evaluator/metrics.py writes one per value
            row["lower"], row["upper"] = v.lower, v.upper
        rows.append(row)
    try:
        result = evaluation_results.validation_result(uri)
        validation_ok: Optional[bool] = bool(result.validation_ok) if result is not None else None
    except Exception:  # noqa: BLE001 - an unreadable validations file
        validation_ok = None
    return rows, validation_ok


def evaluation_facts(uri: Optional[str]) -> tuple[Optional[dict], str, Optional[bool]]:
    """(the card's metrics or None, why they are unavailable, TFMA's validation verdict) for
    the evaluation at `uri` (None: the pusher was given none). An unreadable evaluation
    does not stop a push: the card says why it has no metrics."""
    if uri is None:
        return None, "no evaluation was given to the pusher", None
    try:
        rows, validation_ok = read_evaluation(uri)
        metrics = model_card.summarize_metrics(rows)
    except Exception as err:  # noqa: BLE001 - the card must not stop a push
        logging.warning("SafePusher: cannot read the evaluation %s: %s", uri, err)
        return None, f"cannot read the evaluation at {uri}: {err}", None
    if not metrics["overall"][model_card.CANDIDATE]:
        return None, f"the evaluation at {uri} has no overall metrics", validation_ok
    return metrics, "", validation_ok


def model_card_for(model_path: str, taxonomy: Optional[dict], infra: InfraResult, evaluation_uri: Optional[str],
                   blessed: Optional[bool]) -> dict:
    """The card's facts for the model at `model_path` (see model_card.build_card)."""
    metrics, note, validation_ok = evaluation_facts(evaluation_uri)
    return model_card.build_card(
        info=serving_layout.read_asset(model_path, serving_layout.ASSETS_INFO),
        taxonomy=taxonomy,
        thresholds=serving_layout.read_asset(model_path, serving_layout.ASSETS_THRESHOLDS),
        infra=infra.to_dict(),
        metrics=metrics,
        metrics_note=note,
        blessed=blessed,
        validation_ok=validation_ok,
        model_uri=model_path,
        pushed_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )


def card_files(card: dict) -> dict[str, str]:
    """The card's two renderings, file name -> text, written into the pushed version."""
    return {model_card.CARD_MD: model_card.render_markdown(card),
            model_card.CARD_JSON: json.dumps(card, ensure_ascii=False, indent=1)}


# ---- push -------------------------------------------------------------------------------
def _is_local(path: str) -> bool:
    return "://" not in path


def _fsync_tree(root: str) -> None:
    """Best effort: files and folders of `root` reach the disk before the rename."""
    for folder, _dirs, files in os.walk(root):
        for name in files + [""]:
            path = os.path.join(folder, name) if name else folder
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)


def push_model(model_path: str, base: str, extra_files: Mapping[str, str],
               version: Optional[int] = None,
               keep_versions: int = serving_layout.DEFAULT_KEEP_VERSIONS) -> tuple[str, str]:
    """Copies the model and `extra_files` (name -> text) to `<base>/<version>`; returns
    (version, serving path). Local: under the push lock, staging folders of killed pushes
    are removed, the version is numbered above every existing one, staged in
    `.incoming-<version>` with its `_COMPLETE` manifest written last, renamed into place,
    and complete versions beyond the newest `keep_versions` are deleted."""
    version = int(time.time()) if version is None else version
    if not _is_local(base):
        return _push_by_copy(model_path, base, extra_files, version)
    with serving_layout.push_lock(base):
        version = max(version, serving_layout.next_version(base, now=time.time()))
        stale = serving_layout.remove_stale_incoming(base)
        if stale:
            logging.warning("SafePusher: removed %s left in %s by a push that did not finish", stale, base)
        staging = os.path.join(base, f"{INCOMING_PREFIX}{version}")
        target = os.path.join(base, str(version))
        os.mkdir(staging)
        try:
            io_utils.copy_dir(model_path, staging)
            for name, text in extra_files.items():
                with open(os.path.join(staging, name), "w", encoding="utf-8") as handle:
                    handle.write(text)
            marker = serving_layout.marker_text(staging)
            with open(os.path.join(staging, COMPLETE_MARKER), "w", encoding="utf-8") as handle:
                handle.write(marker)
            _fsync_tree(staging)
            os.rename(staging, target)  # atomic on one filesystem; the lock keeps `target` free
        except BaseException:
            if os.path.isdir(staging):
                fileio.rmtree(staging)
            raise
        _fsync_dir(base)
        pruned = serving_layout.prune_versions(base, keep_versions)
        if pruned:
            logging.info("SafePusher: removed old versions %s (keeping the newest %d)", pruned, keep_versions)
    return str(version), target


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _push_by_copy(model_path: str, base: str, extra_files: Mapping[str, str], version: int) -> tuple[str, str]:
    """Object stores have no rename: saved_model.pb is copied last, then `_COMPLETE`.
    The version is numbered above every existing one, as a local push's."""
    fileio.makedirs(base)
    taken = [int(name.strip("/")) for name in fileio.listdir(base) if name.strip("/").isdigit()]
    version = max([version] + [v + 1 for v in taken])
    target = os.path.join(base, str(version))
    io_utils.copy_dir(model_path, target, deny_regex_patterns=[r"saved_model\.pb$"])
    for name, text in extra_files.items():
        io_utils.write_string_file(os.path.join(target, name), text)
    source_pb = os.path.join(model_path, SAVED_MODEL_PB)
    if fileio.exists(source_pb):
        io_utils.copy_file(source_pb, os.path.join(target, SAVED_MODEL_PB))
    io_utils.write_string_file(os.path.join(target, COMPLETE_MARKER), "")
    return str(version), target
