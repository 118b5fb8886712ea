"""How to follow events on the embedded chain (eth-tester + py-evm).

eth-tester answers ``eth_getLogs`` by scanning every block in the range, so a
follower that re-reads from the deployment block each time does work that
grows with chain length on every poll — quadratic over a run. This bench
measures, in one run and on the same chain, three ways to follow one event
type while N transactions are mined (one block each):

* ``full``: after each block, get_logs(from deployment, latest) — the naive way;
* ``narrow``: after each block, get_logs(last seen + 1, latest) — what
  :meth:`coordinator.Chain.logs` callers do;
* ``filter``: an eth filter created before the transactions, polled with
  get_filter_changes.

Speeds are reported as ratios against ``narrow`` measured in the same run.
"""

from __future__ import annotations

from typing import Any

from coordinator import connect

from ._common import machine, timed


def run(blocks: tuple[int, ...] = (25, 50, 100)) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for n in blocks:
        row: dict[str, Any] = {"blocks": n}
        for mode in ("narrow", "filter", "full"):
            with connect("embedded") as chain:
                probe, rcpt = chain.deploy("Probe")
                start = rcpt.block_number
                ev = probe.events.ValueSet
                flt = ev.create_filter(from_block=start + 1) if mode == "filter" else None
                seen = 0
                last = start
                query_s = 0.0
                for i in range(n):
                    chain.transact(probe.functions.set(i % 1000))
                    if mode == "full":
                        dt, got = timed(lambda: ev.get_logs(from_block=start, to_block="latest"))
                        seen = len(got)
                    elif mode == "narrow":
                        head = chain.block_number
                        dt, got = timed(lambda: ev.get_logs(from_block=last + 1, to_block=head))
                        last = head
                        seen += len(got)
                    else:
                        assert flt is not None
                        dt, got = timed(flt.get_new_entries)
                        seen += len(got)
                    query_s += dt
                assert seen == n, (mode, seen, n)
                row[f"{mode}_query_s"] = round(query_s, 4)
        row["full_vs_narrow"] = round(row["full_query_s"] / row["narrow_query_s"], 2)
        row["filter_vs_narrow"] = round(row["filter_query_s"] / row["narrow_query_s"], 2)
        results.append(row)
    return {"bench": "chain-logs", "backend": "embedded", "machine": machine(), "results": results}
