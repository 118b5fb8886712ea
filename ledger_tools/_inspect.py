"""The federation's history rebuilt from contract events alone.

An auditor holds no key of any peer: everything here comes from the four
contracts' events since the deployment block (plus the deployment record
for where to look). Phases come from the events too (`PhaseAdvanced`,
`RoundFailed`, `RoundFinalized`); a phase whose deadline passed without
anyone calling `advance` shows as it was last recorded.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from coordinator.chain._contracts import Event, FailReason, Federation, Phase
from coordinator.privacy._noise import DPMode
from coordinator.privacy._privacy import ORDERS
from coordinator.protocol._driver import peer_status, stall_reason

CONTRACTS = ("PeerRegistry", "PrivacyLedger", "FedRounds", "FraudProofs")


def _hex(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()
    if isinstance(v, (list, tuple)):
        return [_hex(x) for x in v]
    return v


def events(fed: Federation) -> list[Event]:
    out: list[Event] = []
    for c in CONTRACTS:
        out += fed.all_events(c, fed.deploy_block)
    return sorted(out, key=lambda e: (e.block, e.log_index))


def build_log(fed: Federation) -> dict[str, Any]:
    """Deployment, policy, DP configurations, rounds and peers, from events."""
    evs = events(fed)
    configs: dict[int, dict[str, Any]] = {}
    dist: dict[int, dict[str, Any]] = {}
    rounds: dict[int, dict[str, Any]] = {}
    peers: dict[str, dict[str, Any]] = {}
    cap = fed.cap_micro()

    def rnd(r: int) -> dict[str, Any]:
        return rounds.setdefault(r, {
            "round": r, "phase": "NONE", "fail_reason": "NONE", "participants": [],
            "U1": [], "U2": [], "U3": [], "revealed": [], "commits": [], "results": [],
            "voided": [], "fraud": [], "adapter": None, "opened_block": None,
            "withheld": [], "availability": []})

    for e in evs:
        a = e.args
        if e.name == "DPConfigRegistered":
            configs[int(a["id"])] = {"id": int(a["id"]), "q": int(a["qPpm"]) / 1e6,
                                     "sigma": int(a["sigmaMilli"]) / 1e3, "steps": int(a["steps"]),
                                     "rdp_micro": [int(x) for x in a["rdpMicro"]]}
        elif e.name == "DistributedConfigRegistered":
            dist[int(a["id"])] = {"id": int(a["id"]), "mode": DPMode(int(a["mode"])).name,
                                  "q": int(a["qPpm"]) / 1e6, "mu": int(a["mu"]),
                                  "delta2": int(a["delta2"]), "delta1": int(a["delta1"]),
                                  "k": int(a["k"]), "floor_m": int(a["floorM"]),
                                  "rdp_by_m": [[int(x) for x in v] for v in a["rdpMicro"]]}
        elif e.name == "PeerRegistered":
            peers[a["peer"]] = {"address": a["peer"], "stake": int(a["stake"]),
                                "region": int(a["region"]), "modalities": int(a["modalities"]),
                                "rounds_joined": [], "charges": [], "epsilon": 0.0,
                                "cap": cap / 1e6, "quarantined": False, "left": False}
        elif e.name == "PeerQuarantined" and a["peer"] in peers:
            peers[a["peer"]]["quarantined"] = True
        elif e.name == "PeerSlashed" and a["peer"] in peers:
            peers[a["peer"]]["stake"] -= int(a["amount"])
        elif e.name == "PeerWithdrawn" and a["peer"] in peers:
            peers[a["peer"]]["left"] = True
        elif e.name in ("BudgetCharged", "BudgetRefunded") and a["peer"] in peers:
            p = peers[a["peer"]]
            sign = 1 if e.name == "BudgetCharged" else -1
            p["charges"].append({"round": int(a["round"]), "config": int(a["configId"]),
                                 "sign": sign, "epsilon_after": int(a["epsilonAfter"]) / 1e6})
            p["epsilon"] = int(a["epsilonAfter"]) / 1e6
        elif "round" in a and e.contract in ("FedRounds", "FraudProofs"):
            r = rnd(int(a["round"]))
            if e.name == "RoundOpened":
                r["opened_block"] = e.block
                r["phase"] = Phase.KEYS.name
                r["adapter"] = _hex(a.get("adapterCid"))
                for k in ("dpConfig", "n", "t", "vectorLength", "chunkElems", "fracBits"):
                    if k in a:
                        r[k] = int(a[k])
            elif e.name == "ParticipantsSelected":
                r["participants"] = list(a["participants"])
            elif e.name == "PhaseAdvanced":
                r["phase"] = Phase(int(a["phase"])).name
            elif e.name == "RoundFailed":
                r["phase"] = Phase.FAILED.name
                r["fail_reason"] = FailReason(int(a["reason"])).name
            elif e.name == "RoundFinalized":
                r["phase"] = Phase.FINAL.name
                r["final_adapter"] = _hex(a["adapterCid"])
            elif e.name in ("KeysPosted", "SharesPosted", "UpdateCommitted", "SharesRevealed"):
                idx = r["participants"].index(a["peer"]) if a["peer"] in r["participants"] else -1
                key = {"KeysPosted": "U1", "SharesPosted": "U2", "UpdateCommitted": "U3",
                       "SharesRevealed": "revealed"}[e.name]
                r[key].append(idx)
                if e.name == "UpdateCommitted":
                    r["commits"].append({"peer": a["peer"], "index": idx,
                                         "cid_digest": _hex(a["cidDigest"]),
                                         "chunks_root": _hex(a["chunksRoot"]),
                                         "weight": int(a["weight"]), "tx": e.tx_hash})
                    if a["peer"] in peers:
                        peers[a["peer"]]["rounds_joined"].append(int(a["round"]))
            elif e.name == "CommitterDropped":
                # Left U3 unanswered at the end of Availability: it is in no
                # sum, charged for none (distributed charges follow |U3|).
                idx = r["participants"].index(a["peer"]) if a["peer"] in r["participants"] else -1
                r["U3"] = [i for i in r["U3"] if i != idx]
                r["commits"] = [c for c in r["commits"] if c["peer"] != a["peer"]]
                r["withheld"].append(idx)
                if a["peer"] in peers and int(a["round"]) in peers[a["peer"]]["rounds_joined"]:
                    peers[a["peer"]]["rounds_joined"].remove(int(a["round"]))
            elif e.name in ("AvailabilityChallenged", "AvailabilityAnswered",
                            "AvailabilityBondReclaimed"):
                item: dict[str, Any] = {"event": e.name, "peer": a["peer"], "tx": e.tx_hash}
                if e.name == "AvailabilityAnswered":
                    item |= {"answerer": a["answerer"], "fee": int(a["fee"]),
                             "bytes": len(a["data"])}
                else:
                    item |= {"challenger": a["challenger"], "bond": int(a["bond"])}
                r["availability"].append(item)
            elif e.name == "ResultPosted":
                r["results"].append({"aggregator": a["aggregator"], "attempt": int(a["attempt"]),
                                     "adapter": _hex(a["newAdapterCid"]),
                                     "masked_sum_root": _hex(a["maskedSumRoot"]),
                                     "result_root": _hex(a["resultRoot"]),
                                     "bond": int(a["bond"]), "seeds": len(a["seeds"]),
                                     "tx": e.tx_hash})
            elif e.name == "ResultVoided":
                r["voided"].append({k: _hex(v) for k, v in a.items()} | {"tx": e.tx_hash})
            elif e.name == "FraudProven":
                r["fraud"].append({"challenger": a["challenger"], "kind": int(a["kind"]),
                                   "detail": int(a["detail"]), "tx": e.tx_hash})
    # Peer status is the one thing not from events: whether each peer could be
    # selected now (quarantined, left, or at its ε cap for the DP configuration
    # of the latest round) comes from the same view calls the selection makes.
    dp_cfg = next((int(r["dpConfig"]) for r in reversed(rounds.values()) if "dpConfig" in r),
                  min(configs, default=1))
    for p in peers.values():
        p["status"] = peer_status(fed, p["address"], dp_cfg)
    return {
        "deployment": {"chain_id": fed.chain.chain_id, "block": fed.deploy_block,
                       "contracts": dict(fed.addresses)},
        "policy": asdict(fed.policy()),
        "ledger": {"cap": cap / 1e6, "delta": fed.delta(), "orders": list(ORDERS)},
        "dp_configs": configs,
        "distributed_configs": dist,
        "rounds": [rounds[k] for k in sorted(rounds)],
        "peers": sorted(peers.values(), key=lambda p: p["address"]),
        "events": len(evs),
        "stalled": stall_reason(fed, dp_cfg),
    }


def event_rows(fed: Federation) -> list[dict[str, Any]]:
    """Every event as a flat row (the full log, for export)."""
    rows = []
    for e in events(fed):
        rows.append({"block": e.block, "log_index": e.log_index, "tx": e.tx_hash,
                     "contract": e.contract, "event": e.name,
                     "args": {k: _hex(v) if not isinstance(v, int) else v
                              for k, v in e.args.items()}})
    return rows
