"""Local data of a peer: a synthetic social-commerce generator, non-IID
partitions, and loaders for an operator's own CSV/JSONL files.

An example has a review text, a product image (3×16×16), behaviour features
and a purchase-intent label. The generator puts real signal in each modality
and a cross-modal interaction (the review's price wording against the
behaviour's price bucket), so a model that fuses modalities beats any single
one. Everything is deterministic in the seed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coordinator import ConfigError

IMAGE_SHAPE = (3, 16, 16)
FEATURES = ("views", "cart_adds", "dwell_minutes", "price_bucket", "return_rate", "followers")
N_FEATURES = len(FEATURES)

_NOUNS = [["sneakers", "jacket", "dress", "scarf"], ["phone", "charger", "headphones", "tablet"],
          ["lipstick", "serum", "perfume", "cream"], ["sofa", "lamp", "rug", "mug"]]
_POS = ["great", "lovely", "excellent", "perfect", "amazing", "solid"]
_NEG = ["poor", "flimsy", "awful", "broken", "disappointing", "meh"]
_CHEAP = ["bargain", "cheap", "affordable"]
_PRICEY = ["pricey", "expensive", "overpriced"]
_FILLER = ["honestly", "overall", "i think", "for me", "in short", "to be fair", "lol", "tbh"]


@dataclass(frozen=True)
class Examples:
    """A set of examples; missing modalities are flagged, not dropped."""

    texts: tuple[str, ...]
    images: np.ndarray  # float32 (n, 3, 16, 16)
    features: np.ndarray  # float32 (n, N_FEATURES)
    labels: np.ndarray  # int64 (n,)
    has_text: np.ndarray  # bool (n,)
    has_image: np.ndarray  # bool (n,)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Examples:
        idx = np.asarray(idx, dtype=np.int64)
        return Examples(tuple(self.texts[i] for i in idx), self.images[idx], self.features[idx],
                        self.labels[idx], self.has_text[idx], self.has_image[idx])

    def without(self, *, text: bool = False, image: bool = False) -> Examples:
        """The same examples with a modality removed (as a peer lacking it)."""
        return Examples(
            tuple("" for _ in self.texts) if text else self.texts,
            np.zeros_like(self.images) if image else self.images,
            self.features, self.labels,
            np.zeros_like(self.has_text) if text else self.has_text,
            np.zeros_like(self.has_image) if image else self.has_image,
        )


def concat(parts: Sequence[Examples]) -> Examples:
    return Examples(tuple(t for p in parts for t in p.texts),
                    np.concatenate([p.images for p in parts]),
                    np.concatenate([p.features for p in parts]),
                    np.concatenate([p.labels for p in parts]),
                    np.concatenate([p.has_text for p in parts]),
                    np.concatenate([p.has_image for p in parts]))


def generate(n: int, *, seed: int = 0, label_bias: float = 0.0) -> Examples:
    """``n`` synthetic examples. ``label_bias`` shifts the latent score (and so
    the label mix), which the partitioner uses for label skew."""
    rng = np.random.default_rng(seed)
    cat = rng.integers(0, 4, n)
    t_sent = rng.normal(0, 1, n)  # what the review says about quality
    t_price = rng.choice([-1.0, 1.0], n)  # review calls it cheap (+1) or pricey (-1)
    engagement = rng.normal(0, 1, n)  # behaviour signal
    price_bucket = rng.integers(0, 4, n)  # 0 cheapest .. 3 dearest
    visual = rng.normal(0, 1, n)  # image quality signal
    # Cross-modal: "cheap" wording matters only for dear items and vice versa.
    interaction = t_price * (price_bucket - 1.5) / 1.5
    z = (0.9 * t_sent + 0.9 * engagement + 0.7 * visual + 1.1 * interaction
         + 0.3 * (cat == 1) + label_bias + rng.normal(0, 0.6, n))
    labels = (z > 0).astype(np.int64)

    texts = []
    for i in range(n):
        words = rng.choice(_POS if t_sent[i] + rng.normal(0, 0.5) > 0 else _NEG)
        noun = rng.choice(_NOUNS[cat[i]])
        price = rng.choice(_CHEAP if t_price[i] > 0 else _PRICEY)
        filler = rng.choice(_FILLER)
        strength = "really " if abs(t_sent[i]) > 1 else ""
        texts.append(f"{filler} the {noun} was {strength}{words} and felt {price}")

    images = rng.normal(0, 0.35, (n, *IMAGE_SHAPE)).astype(np.float32)
    yy, xx = np.mgrid[0:16, 0:16]
    stripes = np.sin(xx / 1.5).astype(np.float32)
    for i in range(n):
        images[i, cat[i] % 3] += 0.8  # category colour
        images[i] += 0.45 * visual[i] * stripes  # quality shows as pattern contrast

    features = np.stack([
        np.log1p(rng.poisson(np.exp(1.5 + 0.4 * engagement))),
        rng.poisson(np.clip(0.8 + 0.9 * engagement, 0.05, None)),
        np.clip(2 + 1.2 * engagement + rng.normal(0, 1, n), 0, None),
        price_bucket.astype(np.float64),
        np.clip(0.2 - 0.08 * engagement + rng.normal(0, 0.05, n), 0, 1),
        np.log1p(rng.poisson(50, n)),
    ], axis=1).astype(np.float32)
    return Examples(tuple(texts), images, features, labels, np.ones(n, bool), np.ones(n, bool))


@dataclass(frozen=True)
class PeerData:
    train: Examples
    test: Examples


def partition(n_peers: int, *, examples_per_peer: int = 256, alpha: float = 0.5,
              quantity_skew: float = 0.5, missing_text: Sequence[int] = (),
              missing_image: Sequence[int] = (), test_fraction: float = 0.2,
              seed: int = 0) -> list[PeerData]:
    """Non-IID peers: Dirichlet(alpha) label skew, log-normal quantity skew,
    and peers listed in ``missing_*`` lacking a modality. Each peer has a
    held-out test split of its own distribution."""
    if n_peers < 1:
        raise ConfigError(f"n_peers={n_peers} must be at least 1")
    if isinstance(examples_per_peer, bool) or not isinstance(examples_per_peer, int) \
            or examples_per_peer < 1:
        raise ConfigError(f"examples_per_peer = {examples_per_peer!r} must be a positive integer",
                          hint="set [data] examples_per_peer to the mean number of examples "
                               "per peer, e.g. 256")
    rng = np.random.default_rng(seed)
    sizes = np.maximum(32, (examples_per_peer * rng.lognormal(0, quantity_skew, n_peers)).astype(int))
    props = rng.dirichlet([alpha, alpha], n_peers)[:, 1]  # share of positive labels wanted
    out = []
    for p in range(n_peers):
        bias = float(np.clip(np.log(props[p] / (1 - props[p] + 1e-9) + 1e-9), -2.5, 2.5)) * 0.6
        ex = generate(int(sizes[p]), seed=seed * 1000 + p + 1, label_bias=bias)
        ex = ex.without(text=p in missing_text, image=p in missing_image)
        idx = rng.permutation(len(ex))
        n_test = max(8, int(test_fraction * len(ex)))
        out.append(PeerData(ex.subset(idx[n_test:]), ex.subset(idx[:n_test])))
    return out


def global_test(n: int = 1024, *, seed: int = 99) -> Examples:
    """The global held-out set (IID, all modalities)."""
    return generate(n, seed=10_000 + seed)


# -- an operator's own data ---------------------------------------------------------

class DataFileError(ConfigError):
    """A row of a user's data file is invalid; says which file, line and what."""


def load_file(path: Path) -> Examples:
    """Load CSV or JSONL rows with ``text``, ``image`` (path to a .npy array of
    shape 3×16×16, optional), the behaviour feature columns and ``label``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"data file {path} does not exist")
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            rows = [(i + 2, r) for i, r in enumerate(csv.DictReader(f))]
    elif path.suffix in (".jsonl", ".ndjson"):
        rows = []
        for i, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((i, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataFileError(f"{path}:{i}: not valid JSON ({exc.msg})") from None
    else:
        raise ConfigError(f"data file {path} must end in .csv or .jsonl")
    if not rows:
        raise DataFileError(f"{path}: no rows")
    texts, images, feats, labels, has_text, has_image = [], [], [], [], [], []
    for line, row in rows:
        where = f"{path}:{line}"
        if not isinstance(row, dict):
            raise DataFileError(f"{where}: expected an object with named fields")
        try:
            label = int(row["label"])
        except KeyError:
            raise DataFileError(f"{where}: missing 'label'") from None
        except (TypeError, ValueError):
            raise DataFileError(f"{where}: label {row['label']!r} is not 0 or 1") from None
        if label not in (0, 1):
            raise DataFileError(f"{where}: label {label} is not 0 or 1")
        vec = []
        for name in FEATURES:
            if name not in row or row[name] in ("", None):
                raise DataFileError(f"{where}: missing feature {name!r}")
            try:
                vec.append(float(row[name]))
            except (TypeError, ValueError):
                raise DataFileError(f"{where}: feature {name}={row[name]!r} is not a number") from None
            if not np.isfinite(vec[-1]):
                raise DataFileError(f"{where}: feature {name} is not finite")
        text = str(row.get("text") or "")
        img_ref = row.get("image") or ""
        img = np.zeros(IMAGE_SHAPE, np.float32)
        if img_ref:
            img_path = (path.parent / str(img_ref)).resolve()
            try:
                arr = np.load(img_path)
            except (OSError, ValueError):
                raise DataFileError(f"{where}: image {img_ref!r} cannot be read as a .npy array") from None
            if arr.shape != IMAGE_SHAPE:
                raise DataFileError(f"{where}: image {img_ref!r} has shape {arr.shape}, expected {IMAGE_SHAPE}")
            img = arr.astype(np.float32)
        texts.append(text)
        images.append(img)
        feats.append(vec)
        labels.append(label)
        has_text.append(bool(text))
        has_image.append(bool(img_ref))
    return Examples(tuple(texts), np.stack(images), np.asarray(feats, np.float32),
                    np.asarray(labels, np.int64), np.asarray(has_text), np.asarray(has_image))


# -- held-out splits and partitions of a given dataset ----------------------------

def holdout(ex: Examples, *, fraction: float = 0.2, seed: int = 0) -> PeerData:
    """A seeded, stratified split of ``ex`` into (train, held-out test).
    Classes with a single example stay in train; at least one example is held
    out. Deterministic in ``seed``."""
    train, test = holdout_indices(ex.labels, fraction=fraction, seed=seed)
    return PeerData(ex.subset(train), ex.subset(test))


def holdout_indices(labels: np.ndarray, *, fraction: float = 0.2,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices of :func:`holdout`, each sorted."""
    if not 0 < fraction < 1:
        raise ConfigError(f"holdout fraction={fraction} must be in (0, 1)")
    if len(labels) < 4:
        raise ConfigError(f"{len(labels)} examples are too few to hold out a test split (need ≥ 4)")
    rng = np.random.default_rng(seed)
    test: list[int] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) >= 2:
            test += idx[:max(1, int(round(fraction * len(idx))))].tolist()
    if not test:
        test = [int(rng.integers(len(labels)))]
    mask = np.zeros(len(labels), bool)
    mask[test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def split_peers(ex: Examples, n_peers: int, *, mode: str = "iid", alpha: float = 0.5,
                groups: Sequence[str] | None = None, seed: int = 0) -> list[Examples]:
    """Partition a dataset over ``n_peers``: ``iid`` (a random equal split),
    ``dirichlet`` (each class spread over peers by Dirichlet(alpha) shares),
    or ``by-column`` (the distinct ``groups`` values dealt round-robin to
    peers, largest first, so one group never spans two peers)."""
    if n_peers < 1 or n_peers > len(ex):
        raise ConfigError(f"cannot split {len(ex)} examples over {n_peers} peers")
    rng = np.random.default_rng(seed)
    owner = np.zeros(len(ex), np.int64)
    if mode == "iid":
        owner[rng.permutation(len(ex))] = np.arange(len(ex)) % n_peers
    elif mode == "dirichlet":
        if not alpha > 0:
            raise ConfigError(f"dirichlet alpha={alpha} must be positive")
        for c in np.unique(ex.labels):
            idx = rng.permutation(np.flatnonzero(ex.labels == c))
            cuts = (np.cumsum(rng.dirichlet([alpha] * n_peers)) * len(idx)).astype(int)[:-1]
            for p, part in enumerate(np.split(idx, cuts)):
                owner[part] = p
    elif mode == "by-column":
        if groups is None or len(groups) != len(ex):
            raise ConfigError("by-column partitioning needs one group value per example")
        values, counts = np.unique(np.asarray(groups, dtype=object).astype(str), return_counts=True)
        if len(values) < n_peers:
            raise ConfigError(f"the partition column has {len(values)} distinct values, fewer "
                              f"than {n_peers} peers")
        order = values[np.argsort(-counts, kind="stable")]
        load = np.zeros(n_peers, np.int64)
        where = {}
        for v, cnt in zip(order, np.sort(counts)[::-1], strict=True):
            p = int(np.argmin(load))  # greedy: the least loaded peer takes the next group
            where[v] = p
            load[p] += cnt
        g = np.asarray(groups, dtype=object).astype(str)
        owner = np.array([where[v] for v in g], np.int64)
    else:
        raise ConfigError(f"partition {mode!r} must be iid, dirichlet:ALPHA or by-column:NAME")
    out = [ex.subset(np.flatnonzero(owner == p)) for p in range(n_peers)]
    small = [p for p, e in enumerate(out) if len(e) < 4]
    if small:
        raise ConfigError(f"peer(s) {small} get fewer than 4 examples with partition {mode!r}; "
                          "use fewer peers or a larger alpha")
    return out
