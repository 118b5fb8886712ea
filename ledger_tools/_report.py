"""Export of the full log (JSON/CSV) and the self-contained HTML report.

Everything comes from :func:`ledger_tools._inspect.build_log` plus the
receipts of the logged transactions (gas). Global accuracy is not public
data — the auditor holds no test set the contracts know of — so the report
plots it only when given a metrics file (e.g. the JSON of `fedledger demo`).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from coordinator.chain._contracts import Federation
from coordinator.ops._procs import atomic_write

from ._inspect import event_rows
from ._templates import templates

GAS_GROUPS = {"SelectionScheduled": "open", "RoundOpened": "select", "KeysPosted": "keys",
              "SharesPosted": "shares",
              "UpdateCommitted": "commit", "SharesRevealed": "reveal",
              "ResultPosted": "result", "RoundFinalized": "finalize", "FraudProven": "challenge"}


def export(fed: Federation, log: dict[str, Any], fmt: str, out: Path) -> int:
    rows = event_rows(fed)
    if fmt == "json":
        atomic_write(out, json.dumps({"log": log, "events": rows}, indent=2, default=str).encode())
    else:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["block", "log_index", "tx", "contract", "event", "args"])
        for r in rows:
            w.writerow([r["block"], r["log_index"], r["tx"], r["contract"], r["event"],
                        json.dumps(r["args"], sort_keys=True, default=str)])
        atomic_write(out, buf.getvalue().encode())
    return len(rows)


def gas_per_phase(fed: Federation) -> dict[int, dict[str, int]]:
    """Gas of every logged protocol transaction, per round and phase."""
    seen: set[str] = set()
    out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in event_rows(fed):
        group = GAS_GROUPS.get(r["event"])
        if group is None or r["tx"] in seen or "round" not in r["args"]:
            continue
        seen.add(r["tx"])
        rcpt = fed.chain.w3.eth.get_transaction_receipt(r["tx"])  # type: ignore[arg-type]
        out[int(r["args"]["round"])][group] += int(rcpt["gasUsed"])
    return {k: dict(v) for k, v in out.items()}


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


#: what each cell of the participation map means, lowest stage first
STAGES = ("not selected", "selected, no keys", "keys (U1)", "shares (U2)", "committed (U3)",
          "committed, revealed")
STAGE_COLOURS = ("#f2f2f2", "#f4a582", "#fddbc7", "#92c5de", "#4393c3", "#2166ac")


def round_verdicts(verdicts: list[dict[str, Any]] | None) -> dict[int, dict[str, str]]:
    """Per round: "ok", "FAIL" (naming the first failing check) or "skipped",
    from the verdicts of `audit verify --json`."""
    out: dict[int, dict[str, str]] = {}
    by_round: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for v in verdicts or []:
        scope = str(v.get("scope", ""))
        if scope.startswith("round ") and scope[6:].isdigit():
            by_round[int(scope[6:])].append(v)
    for r, vs in by_round.items():
        bad = [v for v in vs if not v.get("ok")]
        if bad:
            out[r] = {"text": "FAIL", "cls": "fail",
                      "detail": f"{bad[0].get('check')}: {bad[0].get('detail', '')}"}
        elif all(str(v.get("detail", "")).startswith("skipped") for v in vs):
            out[r] = {"text": "skipped", "cls": "none", "detail": str(vs[0].get("detail", ""))}
        else:
            out[r] = {"text": "ok", "cls": "ok", "detail": f"{len(vs)} checks pass"}
    return out


def participation_matrix(log: dict[str, Any]) -> tuple[list[str], list[int], list[list[int]]]:
    """(peers, rounds, stage[peer][round]) with stages indexing :data:`STAGES`."""
    peers = [p["address"] for p in log["peers"]]
    row = {a: i for i, a in enumerate(peers)}
    rounds = [r["round"] for r in log["rounds"]]
    m = [[0] * len(rounds) for _ in peers]
    for j, r in enumerate(log["rounds"]):
        sets = [set(r[k]) for k in ("U1", "U2", "U3")]
        revealed = set(r["revealed"])
        for idx, a in enumerate(r["participants"]):
            if a not in row:
                continue
            stage = 1 + sum(idx in s for s in sets)
            if stage == 4 and idx in revealed:
                stage = 5
            m[row[a]][j] = stage
    return peers, rounds, m


def _integer_rounds(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _legend_outside(ax: Any, **kw: Any) -> None:
    """Legends sit right of the axes, so they cover no data."""
    if not ax.get_legend_handles_labels()[0]:
        return
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False,
              fontsize=8, **kw)


def _short(a: str) -> str:
    return a[:6] + "…" + a[-4:]


def report(fed: Federation, log: dict[str, Any], out: Path,
           metrics: dict[int, dict[str, float]] | None = None,
           verdicts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write the self-contained HTML report (Jinja2 template
    ``templates/report.html.j2``, plots as inline PNGs); ``verdicts`` are
    those of `audit verify --json`, shown per round when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    rounds = [r["round"] for r in log["rounds"]]
    figs: list[tuple[str, str, str]] = []
    # ε per peer over rounds against the cap; peers whose histories coincide
    # share one line (and one legend entry naming them all).
    fig, ax = plt.subplots(figsize=(8, 3.6))
    groups: dict[tuple[tuple[int, float], ...], list[str]] = {}
    for p in log["peers"]:
        hist = tuple((int(ch["round"]), float(ch["epsilon_after"])) for ch in p["charges"])
        groups.setdefault(hist, []).append(p["address"])
    styles = ["-", "--", "-.", ":"]
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    for i, (hist, addrs) in enumerate(sorted(groups.items(), key=lambda kv: -len(kv[1]))):
        xs = [0] + [h[0] for h in hist]
        ys = [0.0] + [h[1] for h in hist]
        who = (", ".join(_short(a) for a in addrs) if len(addrs) <= 2
               else f"{len(addrs)} peers ({_short(addrs[0])}, …)")
        ax.step(xs, ys, where="post", linestyle=styles[i % len(styles)], linewidth=1.4,
                marker=markers[i % len(markers)], markersize=3.5, label=who)
    ax.axhline(log["ledger"]["cap"], color="red", linestyle="--", linewidth=1, label="ε cap")
    ax.set(xlabel="round", ylabel=f"ε (δ = {log['ledger']['delta']:g})",
           title="privacy spent per peer (on-chain ledger)")
    ax.set_ylim(bottom=0)
    _integer_rounds(ax)
    _legend_outside(ax)
    figs.append(("epsilon", "ε per peer", _png(fig)))
    # Participation: which stage each peer reached in each round.
    peers, rs, m = participation_matrix(log)
    fig, ax = plt.subplots(figsize=(8, max(1.8, 0.32 * len(peers) + 1.0)))
    if peers and rs:
        ax.imshow(m, aspect="auto", interpolation="nearest", vmin=0, vmax=len(STAGES) - 1,
                  cmap=ListedColormap(STAGE_COLOURS),
                  extent=(min(rs) - 0.5, max(rs) + 0.5, len(peers) - 0.5, -0.5))
        ax.set_yticks(range(len(peers)), [_short(a) for a in peers], fontsize=7,
                      fontfamily="monospace")
    ax.set(xlabel="round", title="participation: the last stage each peer reached")
    _integer_rounds(ax)
    ax.legend(handles=[Patch(facecolor=c, edgecolor="#999", label=s)
                       for s, c in zip(STAGES, STAGE_COLOURS, strict=True)],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    figs.append(("participation", "participation and dropouts", _png(fig)))
    # Gas per phase.
    gas = gas_per_phase(fed)
    groups_g = list(dict.fromkeys(GAS_GROUPS.values()))
    fig, ax = plt.subplots(figsize=(8, 3.2))
    bottom = [0.0] * len(rounds)
    for g in groups_g:
        vals = [gas.get(r, {}).get(g, 0) / 1e6 for r in rounds]
        if any(vals):
            ax.bar(rounds, vals, bottom=bottom, label=g, width=0.7)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set(xlabel="round", ylabel="Mgas", title="gas per phase")
    _integer_rounds(ax)
    _legend_outside(ax)
    figs.append(("gas", "gas per phase", _png(fig)))
    # Bytes: each committed masked vector (4 bytes per padded element).
    fig, ax = plt.subplots(figsize=(8, 3.0))
    mb = [len(r["U3"]) * 4 * _padded(r) / 1e6 for r in log["rounds"]]
    ax.bar(rounds, mb, width=0.7, color="#4393c3")
    ax.set(xlabel="round", ylabel="MB", title="masked updates committed (bytes on IPFS)")
    _integer_rounds(ax)
    figs.append(("bytes", "bytes", _png(fig)))
    accuracy: dict[int, float] = {}
    if metrics:
        accuracy = {int(k): float(v["accuracy"]) for k, v in metrics.items() if "accuracy" in v}
        fig, ax = plt.subplots(figsize=(8, 3.0))
        xs = sorted(accuracy)
        ax.plot(xs, [accuracy[x] for x in xs], marker="o")
        ax.set(xlabel="round", ylabel="accuracy", title="global accuracy per round (metrics file)")
        _integer_rounds(ax)
        figs.append(("accuracy", "accuracy", _png(fig)))
    per_round = round_verdicts(verdicts)
    verified = None
    if verdicts is not None:
        bad = sum(not v.get("ok") for v in verdicts)
        verified = (f"{len(verdicts)} checks, all pass" if not bad
                    else f"{bad} of {len(verdicts)} checks FAIL")
    page = templates().get_template("report.html.j2").render(
        log=log, d=log["deployment"], figs=figs, accuracy=accuracy, verdicts=per_round,
        verified=verified, gas_total={r: sum(gas.get(r, {}).values()) for r in rounds})
    atomic_write(out, page.encode())
    return {"path": str(out), "plots": sorted(f[0] for f in figs), "bytes": len(page),
            "verified_rounds": sorted(per_round)}


def _padded(r: dict[str, Any]) -> int:
    ce = int(r.get("chunkElems") or 256)
    n = int(r.get("vectorLength") or 0)
    return -(-n // ce) * ce
