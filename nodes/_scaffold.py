"""`fedledger init` / `fedledger federation new`: the files an operator edits
to start a federation of their own (as `flwr new` writes a project).

Two commented TOML files:

* ``federation.toml``: the governor's policy (threshold, phase lengths, the
  per-peer ε cap, the DP configuration every round trains at) and the shape
  of the local federation `federation up --config` starts from it;
* ``peer.toml``: one peer's configuration for `node run --config`, every key
  with its default and what it means, for an operator joining someone
  else's federation.

Both are read back by the same loaders the commands use
(:func:`spec_from_file`, :func:`nodes.cli.load_config`), so what `init`
writes is always accepted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from coordinator import ConfigError
from coordinator.ops._procs import atomic_write

from ._federation import FederationSpec

# (section, key) -> FederationSpec field; the TOML groups them by who decides.
SPEC_KEYS: dict[str, dict[str, str]] = {
    "federation": {"peers": "peers", "threshold": "threshold", "chain": "chain",
                   "rounds": "rounds"},
    "policy": {"phase_blocks": "phase_blocks", "epsilon_cap": "epsilon_cap"},
    "dp": {"q": "q", "sigma": "sigma", "steps": "steps", "mode": "mode", "k": "k", "clip": "clip"},
    "peers": {"encoder": "encoder", "examples_per_peer": "examples_per_peer", "lr": "lr",
              "seed": "seed"},
}

FEDERATION_TOML = """\
# A fedledger federation: the governor's policy, and the local federation that
# `fedledger federation up --config {name}` starts from it (a chain node, one
# Kubo daemon per peer, the peer daemons and the round driver, on 127.0.0.1).
# Every value here is written on-chain at deployment or into the peers'
# configurations; a flag given to `federation up` overrides the value here.

[federation]
# Peer daemons to start (2..50). Each gets its own account, Kubo and state.
peers = {peers}
# Secret-sharing threshold t (2..peers): a round completes only if at least t
# peers commit a masked update, and any t-1 shares reveal nothing.
threshold = {threshold}
# Local chain node: "anvil" or "hardhat".
chain = "{chain}"
# Rounds the driver runs before it stops (0: keep going until `federation down`).
rounds = {rounds}

[policy]
# Length of each phase (keys, shares, commit, availability, reveal, aggregate)
# in blocks; the driver mines a block per look on the development chain. 0: fit
# the windows to one measured local training (times peers per core). In
# availability, a committer whose masked vector cannot be fetched is
# challenged and must post it on-chain, or it leaves the round, slashed.
phase_blocks = {phase_blocks}
# Per-peer privacy cap: the ledger refuses a commit that would take a peer's
# cumulative ε (at δ = 1e-5) above this. A peer at its cap is no longer
# selected; when fewer than `threshold` peers are left, no round opens
# (`fedledger round status` says so).
epsilon_cap = {epsilon_cap}

[dp]
# The DP-SGD configuration every round trains at, registered on-chain with its
# RDP vector: Poisson sampling rate q, noise multiplier sigma, steps T per round.
# Peers cannot choose it; the ledger charges exactly this per round.
q = {q}
sigma = {sigma}
steps = {steps}
# DP mode: "local" (each peer adds all of its own noise; trusts no one), or
# "distributed-record" (each round is one DP-SGD step over the union of the
# peers' data, records Poisson-sampled at q, weighed by the class counts that
# the configuration's first round releases; each survivor adds a Skellam share
# under the masks) or "distributed-user" (DP-FedAvg; q must be 1). In the
# distributed modes sigma is the noise multiplier of the released sum at the
# floor of threshold − k noisy shares (steps is unused), k (0..threshold − 1)
# the survivors whose noise is assumed known, and clip the per-record (record
# level) or per-update (user level) L2 bound ("local" checks k and clip but
# uses neither).
mode = "{mode}"
k = {k}
clip = {clip}

[peers]
# Every peer's model and data (the local demo uses synthetic non-IID shards;
# a peer of your own federation reads its data with [data] source = "file").
# Frozen text encoder: "tiny" (fast, random) or "minilm" (all-MiniLM-L6-v2).
encoder = "{encoder}"
# Mean examples per peer (quantity-skewed around it).
examples_per_peer = {examples_per_peer}
# Learning rate of the LoRA adapters and fusion head.
lr = {lr}
# Seed of the synthetic data and the model initialisation.
seed = {seed}
"""

PEER_TOML = """\
# A fedledger peer: `fedledger node run --config {name}` follows the chain and
# takes part in every round this peer is selected for. Paths are relative to
# this file. Only [node] rpc_url, ipfs_api, deployment and one of account /
# keystore usually need editing; the rest are the defaults.

[node]
# The federation's Ethereum JSON-RPC endpoint (the URL `fedledger chain up` prints).
rpc_url = "{rpc_url}"
# Your own Kubo daemon's RPC API (`fedledger ipfs up` prints it).
ipfs_api = "{ipfs_api}"
# The deployment record the governor published (`chain up` / `chain deploy` write it).
deployment = "{deployment}"
# Durable local state (SQLite, keys sealed under the passphrase); survives kill -9.
state = "{state}"
# Sign with a development account (an index into the public development
# mnemonic, local chains only) ...
account = {account}
# ... or with an encrypted keystore file (v3 JSON) on a real chain: set one of the two.
keystore = "{keystore}"
# File whose first line is the passphrase that seals the state (or env
# FEDLEDGER_PASSPHRASE). Never commit it; back it up with the state file.
passphrase_file = "{passphrase_file}"
# The keystore's own passphrase file (or env FEDLEDGER_KEYSTORE_PASSPHRASE);
# set keystore_uses_state_passphrase = true to use the state's instead.
keystore_passphrase_file = "{keystore_passphrase_file}"
keystore_uses_state_passphrase = {keystore_uses_state_passphrase}
# Seconds between looks at the chain.
poll_seconds = {poll_seconds}
# Register (with stake_wei of stake) on first start if not yet registered.
register = {register}
stake_wei = {stake_wei}

[data]
# "synthetic" (a shard of the built-in non-IID data) or "file" (a CSV of your own).
source = "{source}"
# file = "data.csv"
# For source = "synthetic": how many shards, which one is this peer's, their size.
peers = {peers}
peer = {peer}
examples_per_peer = {examples_per_peer}
seed = {seed}

[model]
# Must match the federation's model, or the daemon refuses to start.
encoder = "{encoder}"
lora_r = {lora_r}

[train]
# Local DP-SGD settings; q, sigma and steps come from the chain each round.
epochs = {epochs}
batch_size = {batch_size}
lr = {lr}
max_grad_norm = {max_grad_norm}
# DP noise and sampling from ChaCha20 keyed by the OS CSPRNG, sealed in the
# state. false makes the noise predictable: `node run` then refuses to start
# unless given --insecure-dp-rng (development only).
secure_rng = {secure_rng}
"""


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def spec_from_file(path: Path, **overrides: Any) -> FederationSpec:
    """A :class:`FederationSpec` from ``federation.toml``; ``overrides`` (flags
    the user gave) win over the file, the file over the defaults."""
    from ._schema import load_toml

    if not path.exists():
        raise ConfigError(f"federation file {path} does not exist",
                          hint="write one with `fedledger init DIR`")
    raw = load_toml(path, "federation file")
    defaults = FederationSpec()
    kw: dict[str, Any] = {}
    for section, values in raw.items():
        if section not in SPEC_KEYS or not isinstance(values, dict):
            raise ConfigError(f"{path}: unknown section [{section}]; known: {', '.join(SPEC_KEYS)}")
        for key, value in values.items():
            field = SPEC_KEYS[section].get(key)
            if field is None:
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]; "
                                  f"known: {', '.join(SPEC_KEYS[section])}")
            want = type(getattr(defaults, field))
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  if want is float else isinstance(value, want) and
                  (want is bool or not isinstance(value, bool)))
            if not ok:
                raise ConfigError(f"{path}: [{section}] {key} = {value!r} must be {want.__name__}")
            kw[field] = value
    kw.update(overrides)
    try:  # FederationSpec checks every value (one place, before anything starts)
        return dataclasses.replace(defaults, **kw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", hint=exc.hint) from None


def write_templates(root: Path, *, force: bool = False) -> list[Path]:
    """Write ``federation.toml`` and ``peer.toml`` into ``root``; refuses to
    overwrite an operator's edits unless ``force``."""
    from .cli import DEFAULTS

    root.mkdir(parents=True, exist_ok=True)
    fed_path, peer_path = root / "federation.toml", root / "peer.toml"
    existing = [p for p in (fed_path, peer_path) if p.exists()]
    if existing and not force:
        raise ConfigError(f"{existing[0]} already exists; not overwriting it",
                          hint="edit it, pick another directory, or pass --force")
    spec = FederationSpec()
    fed_text = FEDERATION_TOML.format(
        name=fed_path.name, **{k: _toml_value(getattr(spec, k)) for s in SPEC_KEYS.values()
                               for k in s.values()})
    n, d, m, t = (DEFAULTS[k] for k in ("node", "data", "model", "train"))
    values = {**n, **d, **m, **t, "account": 1, "passphrase_file": "passphrase",
              "deployment": "deployment.json", "state": "peer-state/state.sqlite",
              "encoder": spec.encoder, "examples_per_peer": spec.examples_per_peer}
    peer_text = PEER_TOML.format(name=peer_path.name,
                                 **{k: _toml_value(v) for k, v in values.items()})
    atomic_write(fed_path, fed_text.encode())
    atomic_write(peer_path, peer_text.encode())
    return [fed_path, peer_path]
