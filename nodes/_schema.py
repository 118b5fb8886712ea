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

import csv
import hashlib
import json
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


def load_schema(path: Path) -> Schema:
    """Read ``path`` (TOML with a ``[schema]`` table, or the table's keys at top level)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"schema file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
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
    return (schema or SYNTHETIC).hash()


# -- loading a file against a schema --------------------------------------------------

def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any], dict[str, int]]]:
    """(line, row, column name → 1-based index) for each data row."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DataFileError(f"{path}:1: not readable as CSV ({exc})") from None
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
    elif path.suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise DataFileError(f"{path}:{i}: not valid JSON ({exc})") from None
                if not isinstance(row, dict):
                    raise DataFileError(f"{path}:{i}: expected an object with named fields")
                yield i, row, {}
    else:
        raise ConfigError(f"data file {path} must end in .csv or .jsonl")


def _image(path: Path, ref: str, schema: Schema, where: str) -> np.ndarray:
    base = path.parent.resolve()
    target = (base / ref).resolve()
    if not target.is_relative_to(base):
        raise DataFileError(f"{where}: image path {ref!r} leaves the data file's folder")
    s = schema.image_size
    if target.suffix == ".npy":
        try:
            arr = np.load(target, allow_pickle=False)
        except (OSError, ValueError):
            raise DataFileError(f"{where}: image {ref!r} cannot be read as a .npy array") from None
        if arr.shape != (3, s, s) or not np.issubdtype(arr.dtype, np.number):
            raise DataFileError(f"{where}: image {ref!r} has shape {arr.shape}, expected (3, {s}, {s})")
        out = arr.astype(np.float32)
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(target) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise DataFileError(f"{where}: image {ref!r} is {im.width}×{im.height}, above "
                                        f"the {MAX_IMAGE_PIXELS:,}-pixel limit")
                rgb = im.convert("RGB").resize((s, s), Image.Resampling.BILINEAR)
        except DataFileError:
            raise
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
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
            except (TypeError, ValueError):
                raise DataFileError(f"{at(num.name)}: column {num.name!r}: {v!r} is not a "
                                    "number") from None
            if not np.isfinite(x) or (num.norm == "log1p" and x <= -1):
                raise DataFileError(f"{at(num.name)}: column {num.name!r}: {v!r} is out of range")
            vec.append(num.apply(x))
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
        files = sorted(p for p in path.iterdir() if p.suffix in (".csv", ".jsonl", ".ndjson"))
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
