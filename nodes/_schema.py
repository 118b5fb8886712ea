"""A federation's declared data schema, and loading an operator's file against it.

The schema says which column holds the text (one or several, joined), which
the image (a JPEG/PNG path, or a ``.npy`` array), which numeric and
categorical feature columns (any number, any names) with their
normalisation, and which the label with its label set (binary or K
classes). It is parsed from TOML with pydantic, and hashed
(:meth:`Schema.hash`, SHA-256 over its canonical JSON) so that the governor
can declare it on-chain (``FedRounds.dataSchema``) and a peer whose schema
differs refuses to start.

Normalisation parameters are part of the schema, never estimated by a peer
from its own rows: every peer must map the same value to the same input,
or the aggregated model is meaningless.

Loading a file checks every row and stops at the first bad one with a
one-line :class:`nodes._data.DataFileError` naming the file, the line and
the column: ``reviews.csv:17:3: column 'price': 'abc' is not a number``
(CSV: line, then the 1-based column index; JSONL: line, then the column's
name only).

Images: opened with Pillow, converted to RGB, resized (bilinear) to
``image_size``² and normalised with the schema's per-channel mean and std
(ImageNet's by default). A path must stay inside the data file's folder,
and an image above ``MAX_IMAGE_PIXELS`` is refused before it is decoded.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import stat
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coordinator import ConfigError

from ._data import FEATURES, IMAGE_SHAPE, DataFileError, Examples

#: Images larger than this (width × height, before resizing) are refused.
MAX_IMAGE_PIXELS = 25_000_000
#: Nor may either side exceed this (a 1 × 24M-pixel PNG decoded to 957 MB).
MAX_IMAGE_SIDE = 16_384
#: The encoded feature vector's width (numeric + one-hot categorical) at most.
MAX_FEATURES = 16_384
#: A JSONL line longer than this is refused before it is parsed.
MAX_JSONL_LINE = 1 << 20
#: Image files read, by what Pillow identifies them as (not by their suffix).
IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG"})
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_Name = Annotated[str, Field(min_length=1, max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Numeric(_Strict):
    """A numeric feature column and how it is normalised:
    ``standard`` (x − mean) / std, ``minmax`` (x − min) / (max − min),
    ``log1p`` then standard (mean/std of log1p x), or ``none``."""

    name: _Name
    norm: Literal["standard", "minmax", "log1p", "none"] = "standard"
    mean: float = 0.0
    std: float = 1.0
    min: float = 0.0
    max: float = 1.0

    @model_validator(mode="after")
    def _check(self) -> Numeric:
        if self.norm in ("standard", "log1p") and not self.std > 0:
            raise ValueError(f"numeric column {self.name!r}: std must be positive")
        if self.norm == "minmax" and not self.max > self.min:
            raise ValueError(f"numeric column {self.name!r}: max must exceed min")
        for v in (self.mean, self.std, self.min, self.max):
            if not np.isfinite(v):
                raise ValueError(f"numeric column {self.name!r}: parameters must be finite")
        return self

    def apply(self, x: float) -> float:
        if self.norm == "standard":
            return (x - self.mean) / self.std
        if self.norm == "minmax":
            return (x - self.min) / (self.max - self.min)
        if self.norm == "log1p":
            return (float(np.log1p(x)) - self.mean) / self.std
        return x


class Categorical(_Strict):
    """A categorical feature column, one-hot encoded over ``categories``; a
    value outside them is an error, or (``unknown = "other"``) one more slot."""

    name: _Name
    categories: list[Annotated[str, Field(max_length=256)]] = Field(min_length=1, max_length=1024)
    unknown: Literal["error", "other"] = "error"

    @model_validator(mode="after")
    def _check(self) -> Categorical:
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"categorical column {self.name!r}: categories repeat")
        return self

    @property
    def width(self) -> int:
        return len(self.categories) + (self.unknown == "other")


class Schema(_Strict):
    """What every peer's data file must hold (see the module docstring)."""

    label: _Name
    classes: list[Annotated[str, Field(max_length=256)]] = Field(min_length=2, max_length=1000)
    text: list[_Name] = Field(default_factory=list, max_length=16)
    image: str = ""
    image_size: int = Field(default=32, ge=8, le=224)
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD
    numeric: list[Numeric] = Field(default_factory=list, max_length=4096)
    categorical: list[Categorical] = Field(default_factory=list, max_length=256)

    @model_validator(mode="after")
    def _check(self) -> Schema:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes repeat")
        names = [self.label, *self.text, *([self.image] if self.image else []),
                 *(c.name for c in self.numeric), *(c.name for c in self.categorical)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"column(s) {dup} are used twice")
        if not (self.text or self.image or self.numeric or self.categorical):
            raise ValueError("declare at least one input: text, image, numeric or categorical")
        if any(not s > 0 for s in self.image_std):
            raise ValueError("image_std must be positive")
        if self.n_features > MAX_FEATURES:
            raise ValueError(f"{self.n_features} feature inputs (numeric + one-hot categories) "
                             f"exceed the limit of {MAX_FEATURES}")
        return self

    # -- derived ------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_features(self) -> int:
        return len(self.numeric) + sum(c.width for c in self.categorical)

    def canonical(self) -> bytes:
        """The bytes hashed on-chain: sorted-key compact JSON of every field,
        defaults filled in, so two TOML spellings of one schema agree."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True,
                          separators=(",", ":")).encode()

    def hash(self) -> bytes:
        return hashlib.sha256(b"fedledger.schema.v1\x00" + self.canonical()).digest()


def parse_schema(raw: dict[str, Any], *, source: str = "schema") -> Schema:
    """A :class:`Schema` from a TOML-like dict (the ``[schema]`` table's
    content); one-line :class:`ConfigError` naming the first bad field."""
    try:
        return Schema.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or "schema"
        raise ConfigError(f"{source}: [schema] {where}: {e['msg']} ({len(exc.errors())} "
                          "problem(s) in all)") from None


@contextlib.contextmanager
def shallow_parsing(limit: int = 1000) -> Iterator[None]:
    """Parse hostile text under a low recursion limit. py-ecc and py-evm
    raise the interpreter's limit to 100 000 on import, past which the C JSON
    decoder overflows the C stack (a segfault) on deeply nested input; under
    this limit it raises RecursionError instead."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(min(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def load_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict; one-line ConfigError for anything else."""
    try:
        text = path.read_text()
        with shallow_parsing():
            return tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a folder, not a file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path} is not valid TOML: nested too deeply") from None


def load_schema(path: Path) -> Schema:
    """Read ``path`` (TOML with a ``[schema]`` table, or the table's keys at top level)."""
    path = Path(path)
    raw = load_toml(path, "schema file")
    return parse_schema(raw.get("schema", raw), source=str(path))


#: The built-in synthetic generator's layout (what a peer with no declared
#: schema uses, and what a deployment declares by default): review text,
#: a 3×16×16 ``.npy`` image, the six behaviour features (normalised in the
#: model with the generator's population constants) and a 0/1 label.
SYNTHETIC = Schema(label="label", classes=["0", "1"], text=["text"], image="image",
                   image_size=IMAGE_SHAPE[1], image_mean=(0.0, 0.0, 0.0),
                   image_std=(1.0, 1.0, 1.0),
                   numeric=[Numeric(name=n, norm="none") for n in FEATURES])


def schema_hash(schema: Schema | None) -> bytes:
    """What a peer declares: ``schema.hash()`` for a data file read against a
    schema; for the built-in generator (no schema) a hash under its own tag.
    The generator's path builds another model (its image tower, its feature
    constants) than a file with the same columns, so the two must not agree."""
    if schema is None:
        return hashlib.sha256(b"fedledger.schema.v1.generator\x00" + SYNTHETIC.canonical()).digest()
    return schema.hash()


# -- loading a file against a schema --------------------------------------------------

def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any], dict[str, int]]]:
    """(line, row, column name → 1-based index) for each data row."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first name
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                header = [name.strip() for name in next(reader)]
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DataFileError(f"{path}:1: not readable as CSV ({exc})") from None
            dup = sorted({n for n in header if header.count(n) > 1})
            if dup:
                raise DataFileError(f"{path}:1: column name(s) {', '.join(map(repr, dup))} "
                                    "appear more than once in the header")
            cols = {name: i + 1 for i, name in enumerate(header)}
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except (csv.Error, UnicodeDecodeError) as exc:
                    raise DataFileError(f"{path}:{reader.line_num}: not readable as CSV "
                                        f"({exc})") from None
                if not values:
                    continue
                if len(values) != len(header):
                    raise DataFileError(f"{path}:{reader.line_num}: {len(values)} fields, the "
                                        f"header has {len(header)}")
                yield reader.line_num, dict(zip(header, values, strict=True)), cols
    elif suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8-sig") as f:
            i = 0
            while True:
                try:
                    line = f.readline(MAX_JSONL_LINE + 1)
                except UnicodeDecodeError as exc:
                    raise DataFileError(f"{path}:{i + 1}: not valid UTF-8 ({exc})") from None
                if not line:
                    return
                i += 1
                if len(line) > MAX_JSONL_LINE:
                    raise DataFileError(f"{path}:{i}: line longer than {MAX_JSONL_LINE:,} "
                                        "characters")
                if not line.strip():
                    continue
                try:
                    with shallow_parsing():
                        row = json.loads(line, object_pairs_hook=_unique_keys)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise DataFileError(f"{path}:{i}: not valid JSON ({exc})") from None
                except RecursionError:
                    raise DataFileError(f"{path}:{i}: not valid JSON (nested too deeply)") from None
                except _DuplicateKey as exc:
                    raise DataFileError(f"{path}:{i}: field {exc.args[0]!r} appears more than "
                                        "once") from None
                if not isinstance(row, dict):
                    raise DataFileError(f"{path}:{i}: expected an object with named fields")
                yield i, row, {}
    else:
        raise ConfigError(f"data file {path} must end in .csv or .jsonl")


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _image(path: Path, ref: str, schema: Schema, where: str) -> np.ndarray:
    base = path.parent.resolve()
    target = (base / ref).resolve()
    if not target.is_relative_to(base):
        raise DataFileError(f"{where}: image path {ref!r} leaves the data file's folder "
                            "(after following any symlink)")
    try:
        st = os.stat(target)
    except OSError:
        raise DataFileError(f"{where}: image {ref!r} does not exist") from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise DataFileError(f"{where}: image {ref!r} is not a regular file")
    s = schema.image_size
    if target.suffix.lower() == ".npy":
        try:
            arr = np.load(target, allow_pickle=False)
        except (OSError, ValueError):
            raise DataFileError(f"{where}: image {ref!r} cannot be read as a .npy array") from None
        if arr.shape != (3, s, s):
            raise DataFileError(f"{where}: image {ref!r} has shape {arr.shape}, expected (3, {s}, {s})")
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise DataFileError(f"{where}: image {ref!r} has dtype {arr.dtype}, expected real "
                                "numbers (integer or float)")
        out = arr.astype(np.float32)
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(target) as im:
                if im.format not in IMAGE_FORMATS:
                    raise DataFileError(f"{where}: image {ref!r} is {im.format or 'an unknown format'}"
                                        ", not JPEG or PNG")
                if im.width * im.height > MAX_IMAGE_PIXELS or max(im.size) > MAX_IMAGE_SIDE:
                    raise DataFileError(f"{where}: image {ref!r} is {im.width}×{im.height}, above "
                                        f"the {MAX_IMAGE_PIXELS:,}-pixel or {MAX_IMAGE_SIDE:,}-"
                                        "per-side limit")
                rgb = im.convert("RGB").resize((s, s), Image.Resampling.BILINEAR)
        except DataFileError:
            raise
        except Image.DecompressionBombError:
            raise DataFileError(f"{where}: image {ref!r} is larger than Pillow decodes safely "
                                f"(above the {MAX_IMAGE_PIXELS:,}-pixel limit)") from None
        except (OSError, UnidentifiedImageError, ValueError):
            raise DataFileError(f"{where}: image {ref!r} cannot be read as a JPEG/PNG "
                                "image") from None
        out = np.asarray(rgb, np.float32).transpose(2, 0, 1) / 255.0
        mean = np.asarray(schema.image_mean, np.float32)[:, None, None]
        std = np.asarray(schema.image_std, np.float32)[:, None, None]
        out = (out - mean) / std
    if not np.isfinite(out).all():
        raise DataFileError(f"{where}: image {ref!r} has non-finite values")
    return out.astype(np.float32)


def load_with_schema(path: Path, schema: Schema) -> Examples:
    """Every row of ``path`` (CSV or JSONL) checked against ``schema`` and
    encoded: features are the normalised numeric columns, then each
    categorical column one-hot, in schema order; labels are indices into
    ``schema.classes``. Text and image cells may be empty (the modality is
    flagged missing); every other declared column is required."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"data file {path} does not exist")
    s = schema.image_size
    texts, images, feats, labels, has_text, has_image = [], [], [], [], [], []
    class_index = {c: i for i, c in enumerate(schema.classes)}
    for line, row, cols in _rows(path):
        def at(col: str) -> str:
            return f"{path}:{line}:{cols[col]}" if col in cols else f"{path}:{line}"

        def cell(col: str, *, required: bool) -> Any:
            v = row.get(col)
            if col not in row and (cols or required):
                if cols:
                    raise DataFileError(f"{path}:{line}: the file has no column {col!r} "
                                        f"(the schema declares it)")
                raise DataFileError(f"{path}:{line}: column {col!r}: missing")
            if required and (v is None or (isinstance(v, str) and not v.strip())):
                raise DataFileError(f"{at(col)}: column {col!r}: empty")
            return v

        raw_label = cell(schema.label, required=True)
        key = str(raw_label).strip() if not isinstance(raw_label, bool) else str(raw_label)
        if isinstance(raw_label, float) and raw_label.is_integer():
            key = str(int(raw_label))
        if key not in class_index:
            shown = ", ".join(schema.classes[:10]) + (" …" if len(schema.classes) > 10 else "")
            raise DataFileError(f"{at(schema.label)}: column {schema.label!r}: label {raw_label!r} "
                                f"is not one of the declared classes ({shown})")
        vec: list[float] = []
        for num in schema.numeric:
            v = cell(num.name, required=True)
            try:
                if isinstance(v, bool):
                    raise ValueError
                x = float(v)
            except (TypeError, ValueError, OverflowError):
                raise DataFileError(f"{at(num.name)}: column {num.name!r}: {str(v)[:40]!r} is "
                                    "not a number") from None
            if not np.isfinite(x) or (num.norm == "log1p" and x <= -1):
                raise DataFileError(f"{at(num.name)}: column {num.name!r}: {v!r} is out of range")
            with np.errstate(over="ignore", invalid="ignore"):
                y = np.float32(num.apply(x))  # what the model is fed
            if not np.isfinite(y):
                raise DataFileError(f"{at(num.name)}: column {num.name!r}: {v!r} normalises to "
                                    f"{float(num.apply(x))!r}, outside float32 (check the value and "
                                    "the schema's mean/std/min/max)")
            vec.append(float(y))
        for cat in schema.categorical:
            v = str(cell(cat.name, required=True)).strip()
            onehot = [0.0] * cat.width
            if v in cat.categories:
                onehot[cat.categories.index(v)] = 1.0
            elif cat.unknown == "other":
                onehot[-1] = 1.0
            else:
                raise DataFileError(f"{at(cat.name)}: column {cat.name!r}: {v!r} is not one of "
                                    f"its declared categories")
            vec.extend(onehot)
        parts = [str(cell(c, required=False) or "").strip() for c in schema.text]
        text = " . ".join(p for p in parts if p)
        img = np.zeros((3, s, s), np.float32)
        ref = str(cell(schema.image, required=False) or "").strip() if schema.image else ""
        if ref:
            img = _image(path, ref, schema, f"{at(schema.image)}: column {schema.image!r}")
        texts.append(text)
        images.append(img)
        feats.append(vec)
        labels.append(class_index[key])
        has_text.append(bool(text))
        has_image.append(bool(ref))
    if not labels:
        raise DataFileError(f"{path}: no rows")
    return Examples(tuple(texts), np.stack(images), np.asarray(feats, np.float32).reshape(
        len(labels), schema.n_features), np.asarray(labels, np.int64), np.asarray(has_text),
        np.asarray(has_image))


def data_files(path: Path) -> list[Path]:
    """A data file, or every ``.csv``/``.jsonl`` file directly in a folder (sorted)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.suffix.lower() in (".csv", ".jsonl", ".ndjson"))
        if not files:
            raise ConfigError(f"{path} holds no .csv or .jsonl data files")
        return files
    if not path.exists():
        raise ConfigError(f"data file {path} does not exist")
    return [path]


def column_values(path: Path, name: str) -> list[str]:
    """The raw values of column ``name``, one per data row (for partitioning
    by a column such as a shop or a movie)."""
    out = []
    for line, row, _ in _rows(Path(path)):
        if name not in row:
            raise DataFileError(f"{path}:{line}: the file has no column {name!r} to partition by")
        out.append(str(row[name]))
    return out
