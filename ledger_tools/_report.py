"""Export of the full log (JSON/CSV) and the self-contained HTML report.

Everything comes from :func:`ledger_tools._inspect.build_log` plus the
receipts of the logged transactions (gas). Global accuracy is not public
data — the auditor holds no test set the contracts know of — so the report
plots it only when given a metrics file (e.g. the JSON of `fedledger demo`).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from coordinator.chain._contracts import Federation
from coordinator.ops._procs import atomic_write

from ._inspect import event_rows

GAS_GROUPS = {"RoundOpened": "open", "KeysPosted": "keys", "SharesPosted": "shares",
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


def report(fed: Federation, log: dict[str, Any], out: Path,
           metrics: dict[int, dict[str, float]] | None = None) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r["round"] for r in log["rounds"]]
    figs: dict[str, str] = {}
    # ε per peer over rounds against the cap.
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for p in log["peers"]:
        xs, ys, eps = [0], [0.0], 0.0
        for ch in p["charges"]:
            eps = ch["epsilon_after"]
            xs.append(ch["round"])
            ys.append(eps)
        ax.step(xs, ys, where="post", label=p["address"][:8] + "…", linewidth=1.2)
    ax.axhline(log["ledger"]["cap"], color="red", linestyle="--", label="cap")
    ax.set(xlabel="round", ylabel=f"ε (δ = {log['ledger']['delta']:g})",
           title="privacy spent per peer (ledger)")
    ax.legend(fontsize=6, ncol=2)
    figs["epsilon"] = _png(fig)
    # Participation and dropouts.
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.18
    for i, key in enumerate(("participants", "U1", "U2", "U3", "revealed")):
        ax.bar([r + (i - 2) * width for r in rounds], [len(r[key]) for r in log["rounds"]],
               width, label=key)
    ax.set(xlabel="round", ylabel="peers", title="participation and dropouts per round")
    ax.legend(fontsize=7)
    figs["participation"] = _png(fig)
    # Gas per phase.
    gas = gas_per_phase(fed)
    groups = list(dict.fromkeys(GAS_GROUPS.values()))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bottom = [0] * len(rounds)
    for g in groups:
        vals = [gas.get(r, {}).get(g, 0) / 1e6 for r in rounds]
        if any(vals):
            ax.bar(rounds, vals, bottom=bottom, label=g)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set(xlabel="round", ylabel="Mgas", title="gas per phase")
    ax.legend(fontsize=7, ncol=4)
    figs["gas"] = _png(fig)
    # Bytes: each committed masked vector (4 bytes per padded element).
    fig, ax = plt.subplots(figsize=(7, 3.0))
    mb = [len(r["U3"]) * 4 * _padded(r) / 1e6 for r in log["rounds"]]
    ax.bar(rounds, mb)
    ax.set(xlabel="round", ylabel="MB", title="masked updates committed (bytes on IPFS)")
    figs["bytes"] = _png(fig)
    if metrics:
        fig, ax = plt.subplots(figsize=(7, 3.0))
        xs = sorted(metrics)
        ax.plot(xs, [metrics[x].get("accuracy", float("nan")) for x in xs], marker="o")
        ax.set(xlabel="round", ylabel="accuracy", title="global accuracy per round (metrics file)")
        figs["accuracy"] = _png(fig)
    rows = "".join(
        f"<tr><td>{r['round']}</td><td>{html.escape(r['phase'])}</td><td>{len(r['participants'])}"
        f"</td><td>{len(r['U1'])}</td><td>{len(r['U2'])}</td><td>{len(r['U3'])}</td>"
        f"<td>{len(r['revealed'])}</td><td>{len(r['voided'])}</td>"
        f"<td>{sum(gas.get(r['round'], {}).values()):,}</td></tr>" for r in log["rounds"])
    peers = "".join(
        f"<tr><td>{html.escape(p['address'])}</td><td>{len(p['rounds_joined'])}</td>"
        f"<td>{p['epsilon']:.4f}</td><td>{p['cap']:.2f}</td></tr>" for p in log["peers"])
    imgs = "".join(f'<h2>{html.escape(k)}</h2><img alt="{k}" src="data:image/png;base64,{v}">'
                   for k, v in figs.items())
    d = log["deployment"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>fedledger audit report</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head><body>
<h1>fedledger audit report</h1>
<p>chain {d['chain_id']}, FedRounds {html.escape(d['contracts']['FedRounds'])}, deployed at block
{d['block']}; {log['events']} events; ε cap {log['ledger']['cap']} at δ {log['ledger']['delta']:g}.</p>
<h2>rounds</h2><table id="rounds"><tr><th>round</th><th>phase</th><th>n</th><th>U1</th><th>U2</th>
<th>U3</th><th>revealed</th><th>voided</th><th>gas</th></tr>{rows}</table>
<h2>peers</h2><table id="peers"><tr><th>address</th><th>rounds</th><th>ε</th><th>cap</th></tr>{peers}
</table>{imgs}</body></html>"""
    atomic_write(out, page.encode())
    return {"path": str(out), "plots": sorted(figs), "bytes": len(page)}


def _padded(r: dict[str, Any]) -> int:
    ce = int(r.get("chunkElems") or 256)
    n = int(r.get("vectorLength") or 0)
    return -(-n // ce) * ce
