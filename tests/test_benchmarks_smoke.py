"""Benchmarks run (tiny sizes); their numbers live in benchmarks/out, not here."""

from __future__ import annotations

from benchmarks import chain_logs


def test_chain_logs_bench_counts_every_event_in_every_mode() -> None:
    data = chain_logs.run((3,))
    row = data["results"][0]
    assert row["blocks"] == 3
    for mode in ("narrow", "filter", "full"):
        assert row[f"{mode}_query_s"] > 0
