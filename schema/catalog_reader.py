"""Reads a merchant catalog CSV through its spec into clean product records.

Shared by the ingest component and by `categorize`, so a row is parsed and cleaned the
same way when the model is trained and when it is used. Nothing is dropped silently:
every data row comes out either as a `Product` or as a `Rejected` with its row number
and the reason, and image problems that do not cost the row come out as warnings.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import errno
import io
import json
import os
import re
import stat
import sys
import warnings
from pathlib import Path
from typing import Iterator, Optional, Union

from schema.catalog_spec import CatalogSpec

# Titles are truncated, not rejected, past this many characters (a 100 KB title is a
# merchant's copy-paste accident, not a reason to lose the product).
MAX_TEXT_CHARS = 2000
# Decompression-bomb guard: more pixels than this and the image is refused.
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_BYTES = 20 * 1024 * 1024
# Formats a photo may have (grayscale and CMYK JPEGs included); the bytes are kept encoded.
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")

# Control characters, zero-width space, direction marks and bidi embeddings/overrides, line
# and paragraph separators, BOM. Zero-width (non-)joiners stay: emoji sequences (a family,
# a flag with a skin tone) and Persian or Indic spelling need them.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_WHITESPACE = re.compile(r"\s+")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class CatalogError(ValueError):
    """The catalog file as a whole cannot be read; the message names the file."""


class _ImageRefused(ValueError):
    """An image check failed with a reason already written for the reader."""


@dataclasses.dataclass
class Product:
    row_number: int
    id: str
    title: str
    description: str
    image_path: str  # relative to the catalog folder, "" when none
    levels: list[str]  # cleaned category path, [] when the catalog has no label
    attributes: dict[str, str]

    @property
    def category_path(self) -> str:
        from schema.features import PATH_SEPARATOR

        return PATH_SEPARATOR.join(self.levels)


@dataclasses.dataclass
class Rejected:
    row_number: int
    id: str
    reason: str


Row = Union[Product, Rejected]


def clean_text(value: str) -> str:
    """Removes control and bidi-override characters and folds whitespace."""
    value = _CONTROL_CHARS.sub(" ", value)
    value = _WHITESPACE.sub(" ", value).strip()
    return value[:MAX_TEXT_CHARS]


def clean_path(spec: CatalogSpec, row: dict[str, str]) -> list[str]:
    """Returns the category levels of a row, cleaned by the spec's rules.

    Raises ValueError with a readable reason when the label cannot be used.
    """
    label = spec.label
    if label.columns:
        levels = [clean_text(row.get(col, "") or "") for col in label.columns]
    else:
        raw = (row.get(label.path_column or "", "") or "").strip()
        if label.encoding == "json_list" and raw:
            try:
                decoded = json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError(f"label column {label.path_column!r} is not a JSON list: {raw[:80]!r}")
            if not isinstance(decoded, list) or not all(isinstance(x, str) for x in decoded):
                raise ValueError(f"label column {label.path_column!r} is not a JSON list of strings")
            raw = decoded[0] if decoded else ""
        # Split on the separator without its padding, so a trailing "A > B > " (stripped
        # to "A > B >") still ends in an empty, dropped level rather than a "B >" node.
        separator = label.separator.strip() or label.separator
        levels = [clean_text(part) for part in raw.split(separator)] if raw else []
    while levels and not levels[-1]:
        levels.pop()
    if not levels:
        raise ValueError("no category")
    if "" in levels:
        raise ValueError(f"empty level {levels.index('') + 1} in category path {levels!r}")
    if label.drop_last_level_min_depth is not None and len(levels) >= label.drop_last_level_min_depth:
        levels = levels[:-1]
    return levels[: spec.max_depth]


def _decode_row(values: list[str]) -> Optional[str]:
    """Returns a reason when the row holds bytes that were not UTF-8."""
    for value in values:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "non-UTF-8 bytes in row"
    return None


def read_catalog(
    csv_path: Union[str, os.PathLike],
    spec: CatalogSpec,
    *,
    require_label: bool = True,
    max_rows: Optional[int] = None,
) -> Iterator[Row]:
    """Yields one Product or Rejected per data row, in file order.

    `require_label=False` serves `categorize`, where new products have no category yet.
    """
    path = Path(csv_path)
    try:
        handle = open(path, "r", encoding="utf-8", errors="surrogateescape", newline="")
    except OSError as err:
        raise CatalogError(f"{path}: cannot open catalog: {err}") from err
    with handle:
        lines = _Lines(handle)
        reader = csv.reader(lines, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise CatalogError(f"{path}: the file is empty (no header row)")
        except csv.Error as err:
            raise CatalogError(f"{path}: cannot parse the header row: {err}") from err
        header = [clean_text(h) for h in header]
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]
        check_unique_header(path, header)
        check_header(path, header, spec, require_label=require_label)
        seen_ids: dict[str, int] = {}
        yielded = 0
        line = len(lines.take())  # physical lines read so far (the header's)
        while max_rows is None or yielded < max_rows:
            row_number = line + 1  # physical line where this record starts
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                # Reject the record's first line only and parse again from the next one,
                # so an unbalanced quote costs one row, not every row up to the next quote.
                consumed = lines.take()
                first = consumed[0] if consumed else ""
                lines.push_back(consumed[1:])
                line = row_number
                reader = csv.reader(lines, strict=True)
                guess = clean_text(first.split(",", 1)[0].strip('"'))[:80]
                yield Rejected(row_number, guess, f"unparseable CSV ({err}); check for unbalanced quotes")
                yielded += 1
                continue
            line += len(lines.take())
            if not values or (len(values) == 1 and not values[0].strip()):
                continue  # a blank line is not a record
            yielded += 1
            yield _parse_row(spec, header, values, row_number, seen_ids, require_label)


class _Lines:
    """The CSV file's lines for csv.reader, remembering those the current record used, so
    that after a parse error the lines after the record's first can be read again."""

    def __init__(self, handle):
        self._handle = handle
        self._pending: collections.deque[str] = collections.deque()
        self._consumed: list[str] = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self._pending.popleft() if self._pending else next(self._handle)
        self._consumed.append(line)
        return line

    def take(self) -> list[str]:
        consumed, self._consumed = self._consumed, []
        return consumed

    def push_back(self, consumed: list[str]) -> None:
        self._pending.extendleft(reversed(consumed))


def _spec_fields(spec: CatalogSpec) -> dict[str, str]:
    """Column -> the spec field that names it, for error messages."""
    fields = {spec.id_column: "id_column", spec.title_column: "title_column"}
    fields.update({c: "description_columns" for c in spec.description_columns})
    if spec.image_column:
        fields[spec.image_column] = "image_column"
    fields.update({c: "label.columns" for c in spec.label.columns})
    if spec.label.path_column:
        fields[spec.label.path_column] = "label.path_column"
    return fields


def check_unique_header(path: Union[str, os.PathLike], header: list[str]) -> None:
    """Refuses a header that names a column twice (a row would silently keep only the later
    value). Unnamed columns, such as a spreadsheet's trailing commas, are never read."""
    first: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name and name in first:
            raise CatalogError(f"{path}: the header names column {name!r} twice "
                               f"(columns {first[name]} and {position}); rename or remove one")
        first.setdefault(name, position)


def check_header(path: Union[str, os.PathLike], header: list[str], spec: CatalogSpec, *,
                 require_label: bool = True) -> None:
    """Refuses a header that lacks a column the spec names, naming the file, the spec field
    and the column."""
    needed = [c for c in spec.required_columns if require_label or c not in _label_columns(spec)]
    missing = [c for c in needed if c not in header]
    if missing:
        fields = _spec_fields(spec)
        named = ", ".join(f"{fields.get(c, 'column')} {c!r}" for c in missing)
        raise CatalogError(
            f"{path}: header lacks column(s) {missing} that spec {spec.name!r} needs ({named}); "
            f"header is {header}"
        )


def check_catalog(csv_path: Union[str, os.PathLike], spec: CatalogSpec, *, require_label: bool = True) -> None:
    """Reads only the header: a run refuses a catalog that cannot fit its spec before any
    component starts."""
    rows = read_catalog(csv_path, spec, require_label=require_label, max_rows=0)
    for _ in rows:
        pass


def _label_columns(spec: CatalogSpec) -> set[str]:
    cols = set(spec.label.columns)
    if spec.label.path_column:
        cols.add(spec.label.path_column)
    return cols


def _parse_row(
    spec: CatalogSpec,
    header: list[str],
    values: list[str],
    row_number: int,
    seen_ids: dict[str, int],
    require_label: bool,
) -> Row:
    if len(values) != len(header):
        first = clean_text(values[0]) if values else ""
        return Rejected(row_number, first, f"has {len(values)} columns, header has {len(header)}")
    bad = _decode_row(values)
    row = dict(zip(header, values))
    product_id = clean_text(row.get(spec.id_column, "") or "")
    if bad:
        return Rejected(row_number, product_id.encode("utf-8", "replace").decode("utf-8"), bad)
    if not product_id:
        return Rejected(row_number, "", f"empty id column {spec.id_column!r}")
    if product_id in seen_ids:
        return Rejected(row_number, product_id, f"duplicate id (first seen at row {seen_ids[product_id]})")
    seen_ids[product_id] = row_number
    title = clean_text(row.get(spec.title_column, "") or "")
    description = clean_text(" ".join(row.get(c, "") or "" for c in spec.description_columns))
    image_path = (row.get(spec.image_column, "") or "").strip() if spec.image_column else ""
    if not title and not description and not image_path:
        return Rejected(row_number, product_id, "no title, description or image")
    levels: list[str] = []
    if require_label:
        try:
            levels = clean_path(spec, row)
        except ValueError as err:
            return Rejected(row_number, product_id, str(err))
    attributes = {a: clean_text(row.get(a, "") or "") for a in spec.attribute_columns}
    return Product(row_number, product_id, title, description, image_path, levels, attributes)


def resolve_image(catalog_dir: Union[str, os.PathLike], relative: str) -> Path:
    """The image file for a catalog path. The path is the merchant's text: it must be
    relative and must not climb out of the catalog folder (`..`), judged on the text
    itself, before the file system is asked. Symlinks that are in the catalog folder are
    followed: they are the folder owner's choice (an `images/` linked to a photo store)."""
    if not relative:
        raise ValueError("no image path")
    if "\x00" in relative:
        raise ValueError(f"image path {relative!r} holds a NUL character")
    if os.path.isabs(relative) or relative.startswith(("/", "\\")):
        raise ValueError(f"image path {relative!r} is absolute; it must be relative to the catalog")
    normalized = os.path.normpath(relative)
    if normalized == os.pardir or normalized.startswith(os.pardir + os.sep):
        raise ValueError(f"image path {relative!r} escapes the catalog folder")
    return Path(catalog_dir) / normalized


_OS_REASONS = {
    errno.ELOOP: "is a symlink loop",
    errno.ENAMETOOLONG: "has a name too long for the file system",
    errno.ENOENT: "not found",
    errno.ENOTDIR: "not found (a part of the path is not a folder)",
    errno.EISDIR: "is a folder, not a file",
}


def _os_reason(relative: str, err: OSError) -> str:
    what = _OS_REASONS.get(err.errno)
    if what is None:
        what = f"cannot be read: {err.strerror or err}"
    return f"image file {relative!r} {what}"


def _read_image_file(catalog_dir: Union[str, os.PathLike], relative: str) -> bytes:
    """The file's bytes; every OS-level problem (a loop, a long name, permissions, a folder,
    a FIFO or device) is a ValueError with the reason. The file is opened without blocking
    and checked on the open descriptor, so a FIFO swapped in after a check cannot hang."""
    target = resolve_image(catalog_dir, relative)
    try:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise ValueError(_os_reason(relative, err)) from err
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ValueError(f"image file {relative!r} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"image file {relative!r} is not a regular file (a FIFO, device or socket)")
        if info.st_size == 0:
            raise ValueError(f"image file {relative!r} is empty")
        if info.st_size > MAX_IMAGE_BYTES:
            raise ValueError(f"image file {relative!r} is {info.st_size} bytes, over {MAX_IMAGE_BYTES}")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(MAX_IMAGE_BYTES + 1)
    except OSError as err:
        raise ValueError(_os_reason(relative, err)) from err
    finally:
        os.close(fd)


def load_image_bytes(catalog_dir: Union[str, os.PathLike], relative: str) -> bytes:
    """Reads and checks an image; raises ValueError with the reason when it is unusable
    (only ValueError: callers turn it into a row's reason or warning).

    The bytes are kept encoded: pixels are decoded only where a model needs them.
    """
    from PIL import Image

    data = _read_image_file(catalog_dir, relative)
    try:
        with warnings.catch_warnings():
            # PIL warns (DecompressionBombWarning) past its own limit and raises
            # (DecompressionBombError) past twice that, both in Image.open; both are refusals.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as img:
                # Image.open reads only the header: the size is checked before any decoding.
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise _ImageRefused(
                        f"image {relative!r} has {width}x{height} pixels, over the limit of {MAX_IMAGE_PIXELS}"
                    )
                img.verify()
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as img:
                # A decode (JPEGs at 1/8 scale, which is cheap) finds truncated files that
                # verify() lets through.
                img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                img.load()
    except _ImageRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(f"image {relative!r} is over the pixel limit (decompression bomb?): {err}") from err
    except Image.UnidentifiedImageError as err:
        raise ValueError(
            f"image {relative!r} cannot be decoded: not one of the accepted formats {list(IMAGE_FORMATS)}"
        ) from err
    except Exception as err:  # PIL raises many types for corrupt data
        raise ValueError(f"image {relative!r} cannot be decoded: {type(err).__name__}: {err}") from err
    return data


def catalog_csv_path(catalog: Union[str, os.PathLike], spec: CatalogSpec) -> tuple[Path, Path]:
    """Returns (csv file, folder images are relative to) for a catalog folder or CSV path."""
    path = Path(catalog)
    if path.is_dir():
        return path / spec.csv_file, path
    return path, path.parent


@dataclasses.dataclass(frozen=True)
class Photo:
    """A product's photo as the ingest and `categorize` use it (`product_photo`)."""

    image: Optional[bytes]  # the checked, still encoded bytes; None when there is no usable photo
    problem: str = ""  # why the photo could not be used; "" when it could or there is none
    reject: str = ""  # why the row is rejected instead ("" when it is kept)


def product_photo(catalog_dir: Union[str, os.PathLike], product: Product) -> Photo:
    """The one rule for a product's photo, shared by the ingest and `categorize`: an
    unusable photo is dropped and the row kept (categorised from its text) when the row has
    a title or a description; with neither, nothing is left to categorise and the row is
    rejected ("no title and unusable image: <why>")."""
    if not product.image_path:
        return Photo(None)
    try:
        return Photo(load_image_bytes(catalog_dir, product.image_path))
    except ValueError as err:
        if not product.title and not product.description:
            return Photo(None, str(err), f"no title and unusable image: {err}")
        return Photo(None, str(err))
