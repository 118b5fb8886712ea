"""`fedledger audit`: what an auditor runs. It holds no peer's keys and trusts
only the chain (through a deployment record) and content addresses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from coordinator.cli import (
    deployment_option,
    emit,
    ipfs_api_option,
    json_option,
    open_federation,
    open_store,
    running_rpc_url_option,
    stdout,
)


@click.group()
def audit() -> None:
    """Inspect and verify a federation from public data (chain events + IPFS)."""


@audit.command("inspect")
@running_rpc_url_option
@deployment_option
@click.option("--round", "round_id", type=click.IntRange(1), default=None,
              help="Show only this round (it must exist).")
@click.option("--peer", default=None, help="Show only this peer (a 0x… address of a "
                                           "registered peer).")
@json_option
def inspect_cmd(rpc_url: str, deployment: Path | None, round_id: int | None, peer: str | None,
                as_json: bool) -> None:
    """Deployment, policy, rounds (phases, U1/U2/U3, commitments, results,
    challenges) and peers (stake, rounds joined, ε vs cap), rebuilt from
    contract events alone."""
    from coordinator import ConfigError
    from coordinator.cli import existing_round

    from ._inspect import build_log

    if peer is not None:
        from eth_utils import is_address

        if not is_address(peer):
            raise ConfigError(f"--peer {peer!r} is not an address",
                              hint="give a 0x-prefixed 20-byte hex address, as listed by "
                                   "`fedledger audit inspect`")
    chain, fed, _ = open_federation(rpc_url, deployment, (), None, None, read_only=True)
    with chain, fed.snapshot():
        if round_id is not None:
            existing_round(fed, round_id)
        log = build_log(fed)
    if round_id is not None:
        log["rounds"] = [r for r in log["rounds"] if r["round"] == round_id]
    if peer is not None:
        log["peers"] = [p for p in log["peers"] if p["address"].lower() == peer.lower()]
        if not log["peers"]:
            raise ConfigError(f"{peer} is not a registered peer of this federation",
                              hint="`fedledger audit inspect` lists the registered peers")

    def human() -> None:
        from rich.table import Table

        d = log["deployment"]
        stdout.print(f"chain {d['chain_id']}, deployed at block {d['block']}; FedRounds "
                     f"{d['contracts']['FedRounds']}; ε cap {log['ledger']['cap']} at δ "
                     f"{log['ledger']['delta']}; {log['events']} events")
        for line in dp_config_lines(log):
            stdout.print(line, highlight=False)
        t = Table(title="rounds")
        for col in ("round", "phase", "n", "U1", "U2", "U3", "revealed", "results", "voided"):
            t.add_column(col, justify="right")
        for r in log["rounds"]:
            t.add_row(str(r["round"]), r["phase"] if r["phase"] != "FAILED"
                      else f"FAILED ({r['fail_reason']})", str(len(r["participants"])),
                      str(len(r["U1"])), str(len(r["U2"])), str(len(r["U3"])),
                      str(len(r["revealed"])), str(len(r["results"])), str(len(r["voided"])))
        stdout.print(t)
        p = Table(title="peers")
        for col in ("address", "stake (wei)", "rounds joined", "ε", "cap", "status"):
            p.add_column(col, justify="right")
        for x in log["peers"]:
            p.add_row(x["address"], f"{x['stake']:,}", str(len(x["rounds_joined"])),
                      f"{x['epsilon']:.4f}", f"{x['cap']:.2f}", x["status"])
        stdout.print(p)
        if log["stalled"]:
            stdout.print(f"[yellow]no round can open[/]: {log['stalled']}")

    emit(as_json, log, human)


def dp_config_lines(log: dict[str, Any]) -> list[str]:
    """One line per registered DP configuration: which mode the federation
    runs in is the first thing an operator of a distributed mode looks for."""
    mode = {"DISTRIBUTED_RECORD": "distributed record level",
            "DISTRIBUTED_USER": "distributed user level"}
    lines = [(c["id"], f"local (q {c['q']:g}, σ {c['sigma']:g}, T {c['steps']} per round)")
             for c in log["dp_configs"].values()]
    lines += [(c["id"], f"{mode.get(c['mode'], c['mode'])} (q {c['q']:g}, k {c['k']}, floor "
                        f"{c['floor_m']} noisy shares)") for c in log["distributed_configs"].values()]
    return [f"DP config {i}: {text}" for i, text in sorted(lines)]


@audit.command("verify")
@running_rpc_url_option
@deployment_option
@ipfs_api_option
@click.option("--round", "round_id", type=click.IntRange(1), default=None,
              help="Verify this round only.")
@click.option("--all", "all_rounds", is_flag=True,
              help="Verify every round opened so far (rounds in flight are reported as "
                   "'in progress', never as failures).")
@click.option("--budgets/--no-budgets", default=True, show_default=True,
              help="Recompute every peer's ε with Opacus and compare with the ledger.")
@click.option("--code/--no-code", default=True, show_default=True,
              help="Compare deployed bytecode with a py-solc-x build of contracts/.")
@click.option("--allow-unchecked", is_flag=True,
              help="Exit 0 even if some checks could not run ('not checked'); by default "
                   "anything not checked exits 8, like a failure.")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="JSON file caching the verdicts of FINAL rounds that passed "
                                 "(keyed by chain, contract, round and posted result); "
                                 "default: none.")
@click.option("--block", "at_block", type=click.IntRange(0), default=None,
              help="Read the chain as of this block (default: the head, read once).")
@json_option
def verify_cmd(rpc_url: str, deployment: Path | None, ipfs_api: str | None,
               round_id: int | None, all_rounds: bool, budgets: bool, code: bool,
               allow_unchecked: bool, cache_path: Path | None, at_block: int | None,
               as_json: bool) -> None:
    """Re-run rounds from chain + IPFS with the aggregator's own function and
    check budgets and code, every read pinned to one block. A verdict per
    check: ok, FAIL, not checked (could not run) or in progress (a round in
    flight). Progress per round goes to stderr; a count by status ends the
    output. Exit 8 if any check fails or, without --allow-unchecked, was not
    checked."""
    from dataclasses import asdict

    from coordinator.cli import stderr

    from ._inspect import build_log
    from ._verify import VerifyCache, exit_ok, summary, verify_budgets, verify_code, verify_rounds

    from coordinator.cli import existing_round

    chain, fed, _ = open_federation(rpc_url, deployment, (), None, None, read_only=True)
    verdicts: list[Any] = []
    cache = VerifyCache(cache_path)

    def progress(done: int, total: int, r: int, here: list[Any]) -> None:
        c = summary(here)
        state = ("FAIL" if c["fail"] else "not checked" if c["not checked"]
                 else "in progress" if c["in progress"] and not c["ok"] else "ok")
        stderr.print(f"[{done}/{total}] round {r}: {state}", highlight=False, soft_wrap=True)

    with chain, fed.snapshot(at_block) as block:
        if round_id is not None:  # before anything runs: an unknown round is no success
            existing_round(fed, round_id)
        if round_id is not None or all_rounds:
            store = open_store(ipfs_api)
            rounds = [round_id] if round_id else list(range(1, fed.current_round() + 1))
            verdicts += verify_rounds(fed, store, rounds, cache=cache, progress=progress)
        if budgets:
            verdicts += verify_budgets(fed, build_log(fed))
        if code:
            verdicts += verify_code(fed)
    counts = summary(verdicts)
    ok = exit_ok(verdicts, allow_unchecked=allow_unchecked)

    def human() -> None:
        marks = {"ok": "[green]ok[/]  ", "fail": "[red]FAIL[/]", "not checked": "[yellow]NOT CHECKED[/]",
                 "in progress": "[cyan]in progress[/]"}
        for v in verdicts:
            stdout.print(f"{marks[v.status]} {v.scope}: {v.check}"
                         + (f" — {v.detail}" if v.detail else ""), highlight=False, soft_wrap=True)
        line = (f"at block {block}: {counts['ok']} ok, {counts['fail']} failed, "
                f"{counts['not checked']} not checked, {counts['in progress']} in progress")
        stdout.print(("[green]" if ok else "[red]") + line + "[/]", highlight=False, soft_wrap=True)

    emit(as_json, {"ok": ok, "block": block, "counts": counts, "cache_hits": cache.hits,
                   "verdicts": [asdict(v) for v in verdicts]}, human)
    if not ok:
        raise SystemExit(8)


@audit.command("challenge")
@running_rpc_url_option
@deployment_option
@ipfs_api_option
@click.option("--round", "round_id", type=click.IntRange(1), required=True,
              help="The round whose posted result to challenge.")
@click.option("--account", type=click.IntRange(0), default=None,
              help="Development account index to sign with (or --keystore).")
@click.option("--keystore", "keystores", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Encrypted keystore of the challenger (passphrase: env "
                   "FEDLEDGER_KEYSTORE_PASSPHRASE).")
@json_option
def challenge_cmd(rpc_url: str, deployment: Path | None, ipfs_api: str | None, round_id: int,
                  account: int | None, keystores: tuple[Path, ...], as_json: bool) -> None:
    """If the round's posted result is wrong, prove it on-chain: a seed proof
    for the first wrong seed, else a chunk proof for the first wrong chunk.
    Prints the transaction and the slash; exit 8 if there is nothing to prove."""
    from coordinator.protocol._challenge import challenge, find_fraud

    store = open_store(ipfs_api)
    chain, fed, signer = open_federation(rpc_url, deployment, keystores, None, account)
    with chain:
        fraud = find_fraud(fed, store, round_id)
        if fraud is None:
            emit(as_json, {"round": round_id, "fraud": None},
                 lambda: stdout.print(f"round {round_id}: the posted result is correct; "
                                      "nothing to challenge"))
            raise SystemExit(8)
        rcpt = challenge(fed, store, round_id, fraud, sender=signer)
        voided = next(e for e in fed.receipt_events(rcpt) if e.name == "ResultVoided")
        data = {"round": round_id, "fraud": {"kind": fraud.kind, "index": fraud.index,
                                             "detail": fraud.detail},
                "tx": rcpt.tx_hash, "gas": rcpt.gas_used,
                "aggregator": voided.args["aggregator"], "slashed_wei": voided.args["slashed"],
                "reward_wei": voided.args["reward"]}
    emit(as_json, data, lambda: stdout.print(
        f"[green]fraud proven[/] ({fraud.detail}) in tx {rcpt.tx_hash}: aggregator "
        f"{data['aggregator']} slashed {data['slashed_wei']:,} wei, reward {data['reward_wei']:,} "
        f"wei to the challenger; the round can be aggregated again"))


@audit.command("export")
@running_rpc_url_option
@deployment_option
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json",
              show_default=True, help="json: the rebuilt log plus every event; csv: one row "
                                      "per event.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write (atomically).")
@json_option
def export_cmd(rpc_url: str, deployment: Path | None, fmt: str, out: Path, as_json: bool) -> None:
    """Write the full log: every event of the four contracts (CSV), or the
    rebuilt log plus every event (JSON)."""
    from ._inspect import build_log
    from ._report import export

    chain, fed, _ = open_federation(rpc_url, deployment, (), None, None, read_only=True)
    with chain, fed.snapshot():
        n = export(fed, build_log(fed), fmt, out)
    emit(as_json, {"path": str(out), "events": n},
         lambda: stdout.print(f"wrote {n} events to {out}"))


@audit.command("report")
@running_rpc_url_option
@deployment_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="HTML file to write (self-contained: plots are inline PNGs).")
@click.option("--metrics", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="JSON with per-round accuracy (e.g. `fedledger demo --json` "
                                 "output): accuracy is not on-chain, so it is plotted only if given.")
@click.option("--verify", "verify_file", type=click.Path(dir_okay=False, exists=True,
                                                        path_type=Path),
              default=None, help="JSON written by `audit verify --all --json`: a verdict per "
                                 "round in the report (without it, rounds show as unverified).")
@json_option
def report_cmd(rpc_url: str, deployment: Path | None, out: Path, metrics: Path | None,
               verify_file: Path | None, as_json: bool) -> None:
    """A self-contained HTML report: ε per peer over rounds against the cap,
    participation and dropouts, gas per phase, bytes, a verification verdict
    per round (--verify), accuracy (--metrics)."""
    from coordinator import ConfigError

    from ._inspect import build_log
    from ._report import report

    per_round: dict[int, dict[str, float]] | None = None
    if metrics is not None:
        try:
            data = json.loads(metrics.read_text())
            per_round = {int(r["round"]): {"accuracy": float(r["accuracy"])}
                         for r in data.get("rounds", [])}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{metrics} has no rounds[].round/accuracy: {exc}") from None
    verdicts: list[dict[str, Any]] | None = None
    if verify_file is not None:
        try:
            verdicts = list(json.loads(verify_file.read_text())["verdicts"])
            if not all(isinstance(v, dict) and "scope" in v and "ok" in v for v in verdicts):
                raise ValueError("each verdict needs scope and ok")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{verify_file} is not the JSON of `audit verify --json`: {exc}",
                              hint="write it with `fedledger audit verify --all --json > FILE`"
                              ) from None
    chain, fed, _ = open_federation(rpc_url, deployment, (), None, None, read_only=True)
    with chain, fed.snapshot():
        info = report(fed, build_log(fed), out, per_round, verdicts)
    emit(as_json, info, lambda: stdout.print(
        f"wrote {out} ({info['bytes']:,} bytes; plots: {', '.join(info['plots'])})"))


@audit.command("serve")
@running_rpc_url_option
@deployment_option
@ipfs_api_option
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port on 127.0.0.1 (0: a free one).")
@click.option("--refresh", type=click.FloatRange(0), default=10.0, show_default=True,
              help="Seconds between the page's refreshes from /api/log (0: never).")
def serve_cmd(rpc_url: str, deployment: Path | None, ipfs_api: str | None, port: int,
              refresh: float) -> None:
    """A read-only explorer page and JSON API (/api/log, /api/verify) on
    127.0.0.1 until Ctrl-C. The page refreshes itself, shows each peer's real
    status and why no round opens, and opens a round's sets, commitments,
    results and proofs on a click (or at /#round=N). With --ipfs-api, rounds
    are re-verified too."""
    import signal
    import sys
    import time

    from ._serve import Explorer

    store = open_store(ipfs_api) if ipfs_api else None
    chain, fed, _ = open_federation(rpc_url, deployment, (), None, None, read_only=True)
    with chain:
        try:
            running = Explorer(fed, store, refresh_seconds=refresh).start(port)
        except OSError as exc:
            from coordinator import ConfigError

            raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}",
                              hint="pick another --port, or --port 0 for a free one") from None
        stdout.print(f"explorer at {running.url} (Ctrl-C stops it)")
        sys.stdout.flush()

        def on_term(*_: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
        try:
            while running.thread.is_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            running.stop()
