"""Catalog specs: a small config file per catalog format, so new formats need no code.

A spec names the columns of a merchant CSV and how to turn its label into a category
path. It is loaded with `yaml.safe_load` (no code execution from config) and checked
field by field, so a typo fails at start-up with the field named instead of deep inside
a Beam job.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Optional

import yaml

from schema import features

CATALOGS_DIR = Path(__file__).resolve().parent / "catalogs"
SCHEMA_DIR = Path(__file__).resolve().parent


class SpecError(ValueError):
    """A catalog spec is malformed; the message names the file and the field."""


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """How the category path is read: one column per level, or one path column."""

    columns: tuple[str, ...] = ()
    path_column: Optional[str] = None
    separator: str = " > "
    encoding: str = "plain"  # "plain" or "json_list" (a JSON list holding one path string)
    drop_last_level_min_depth: Optional[int] = None  # drop the noisy last level from this depth


@dataclasses.dataclass(frozen=True)
class CatalogSpec:
    name: str
    id_column: str
    title_column: str
    label: LabelSpec
    max_depth: int
    min_products_per_category: int = 1
    description_columns: tuple[str, ...] = ()
    image_column: Optional[str] = None
    attribute_columns: tuple[str, ...] = ()
    slice_columns: tuple[str, ...] = ()
    csv_file: str = "products.csv"
    schema_file: Optional[str] = None  # curated schema, relative to schema/

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns a catalog CSV must have; attribute columns are optional per file."""
        cols = [self.id_column, self.title_column, *self.description_columns]
        if self.image_column:
            cols.append(self.image_column)
        cols.extend(self.label.columns)
        if self.label.path_column:
            cols.append(self.label.path_column)
        return tuple(dict.fromkeys(cols))

    @property
    def schema_path(self) -> Optional[Path]:
        return SCHEMA_DIR / self.schema_file if self.schema_file else None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CatalogSpec":
        return _build(json.loads(text), "<json>")


_TOP_KEYS = {
    "name": str,
    "id_column": str,
    "title_column": str,
    "description_columns": list,
    "image_column": (str, type(None)),
    "label": dict,
    "max_depth": int,
    "min_products_per_category": int,
    "attribute_columns": list,
    "slice_columns": list,
    "csv_file": str,
    "schema_file": (str, type(None)),
}
_REQUIRED = ("name", "id_column", "title_column", "label", "max_depth")
_LABEL_KEYS = {
    "columns": list,
    "path_column": (str, type(None)),
    "separator": str,
    "encoding": str,
    "drop_last_level_min_depth": (int, type(None)),
}
_ENCODINGS = ("plain", "json_list")


def _check_type(where: str, field: str, value: Any, expected: Any) -> None:
    # bool is an int subclass; a `max_depth: yes` typo must not pass as 1.
    if isinstance(value, bool) and expected in (int, (int, type(None))):
        raise SpecError(f"{where}: field '{field}' must be an integer, got {value!r}")
    if not isinstance(value, expected):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(
            "null" if t is type(None) else t.__name__ for t in expected
        )
        raise SpecError(f"{where}: field '{field}' must be {names}, got {value!r}")


def _string_list(where: str, field: str, value: list) -> tuple[str, ...]:
    for item in value:
        if not isinstance(item, str) or not item:
            raise SpecError(f"{where}: field '{field}' must list non-empty strings, got {item!r}")
    if len(set(value)) != len(value):
        raise SpecError(f"{where}: field '{field}' lists a column twice: {value!r}")
    return tuple(value)


def _build(raw: Any, where: str) -> CatalogSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: a catalog spec must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {unknown}; known: {sorted(_TOP_KEYS)}")
    for key in _REQUIRED:
        if key not in raw:
            raise SpecError(f"{where}: missing required field '{key}'")
    for key, value in raw.items():
        _check_type(where, key, value, _TOP_KEYS[key])
    for key in ("name", "id_column", "title_column", "csv_file"):
        if key in raw and not raw[key].strip():
            raise SpecError(f"{where}: field '{key}' must not be empty")

    csv_file = raw.get("csv_file", "products.csv")
    normalized = os.path.normpath(csv_file)
    if (os.path.isabs(csv_file) or csv_file.startswith(("/", "\\")) or normalized in (".", os.pardir)
            or normalized.startswith(os.pardir + os.sep)):
        # Never read (nor quote in an error) a file outside the catalog folder.
        raise SpecError(f"{where}: field 'csv_file' must be a file inside the catalog folder, got {csv_file!r}")

    label_raw = raw["label"]
    unknown = sorted(set(label_raw) - set(_LABEL_KEYS))
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {['label.' + u for u in unknown]}")
    for key, value in label_raw.items():
        _check_type(where, f"label.{key}", value, _LABEL_KEYS[key])
    columns = _string_list(where, "label.columns", label_raw.get("columns", []))
    path_column = label_raw.get("path_column")
    if bool(columns) == bool(path_column):
        raise SpecError(f"{where}: field 'label' needs exactly one of 'columns' or 'path_column'")
    encoding = label_raw.get("encoding", "plain")
    if encoding not in _ENCODINGS:
        raise SpecError(f"{where}: field 'label.encoding' must be one of {_ENCODINGS}, got {encoding!r}")
    separator = label_raw.get("separator", " > ")
    if not separator:
        raise SpecError(f"{where}: field 'label.separator' must not be empty")
    drop_min = label_raw.get("drop_last_level_min_depth")
    if drop_min is not None and drop_min < 1:
        raise SpecError(f"{where}: field 'label.drop_last_level_min_depth' must be >= 1")
    label = LabelSpec(columns, path_column, separator, encoding, drop_min)

    max_depth = raw["max_depth"]
    if not 1 <= max_depth <= 8:
        raise SpecError(f"{where}: field 'max_depth' must be between 1 and 8, got {max_depth}")
    if columns and len(columns) < max_depth:
        raise SpecError(
            f"{where}: field 'max_depth' is {max_depth} but 'label.columns' names only {len(columns)} levels"
        )
    min_products = raw.get("min_products_per_category", 1)
    if min_products < 1:
        raise SpecError(f"{where}: field 'min_products_per_category' must be >= 1")

    attributes = _string_list(where, "attribute_columns", raw.get("attribute_columns", []))
    for attr in attributes:
        if features.is_reserved(attr):
            raise SpecError(f"{where}: attribute column {attr!r} clashes with a reserved feature name")
    slices = _string_list(where, "slice_columns", raw.get("slice_columns", list(attributes)))
    stray = sorted(set(slices) - set(attributes))
    if stray:
        raise SpecError(f"{where}: field 'slice_columns' names {stray}, which are not attribute_columns")
    image_column = raw.get("image_column") or None

    return CatalogSpec(
        name=raw["name"],
        id_column=raw["id_column"],
        title_column=raw["title_column"],
        label=label,
        max_depth=max_depth,
        min_products_per_category=min_products,
        description_columns=_string_list(where, "description_columns", raw.get("description_columns", [])),
        image_column=image_column,
        attribute_columns=attributes,
        slice_columns=slices,
        csv_file=csv_file,
        schema_file=raw.get("schema_file"),
    )


def available_specs() -> list[str]:
    return sorted(p.stem for p in CATALOGS_DIR.glob("*.y*ml")) + sorted(
        p.stem for p in CATALOGS_DIR.glob("*.json")
    )


def resolve_spec_path(name_or_file: str) -> Path:
    """A spec is named (`fashion`, looked up in schema/catalogs/) or given as a file path."""
    candidate = Path(name_or_file)
    if candidate.suffix in (".yaml", ".yml", ".json") and candidate.exists():
        return candidate
    for suffix in (".yaml", ".yml", ".json"):
        path = CATALOGS_DIR / f"{name_or_file}{suffix}"
        if path.exists():
            return path
    raise SpecError(
        f"catalog spec {name_or_file!r} not found: give a file path or one of {available_specs()}"
    )


def load_spec(name_or_file: str | os.PathLike) -> CatalogSpec:
    path = resolve_spec_path(str(name_or_file))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: cannot read spec: {err}") from err
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise SpecError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}") from err
    return _build(raw, str(path))
