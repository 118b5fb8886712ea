"""`fedledger`: one entry point, sub-commands by role.

Role groups that live in other packages (``node`` in nodes/, ``audit`` in
ledger_tools/, ``bench`` in benchmarks/) plug in through the
``fedledger.commands`` entry-point group, so this package never imports
them (see docs/decisions.md).

Exit codes: 0 success; 1 unexpected failure; 2 bad input (flags, config
files); 3 a component is not installed; 4 a service (chain node, Kubo) is
unreachable; 5 Solidity build missing or stale; 6 a transaction failed;
7 a round cannot or must not be aggregated; 8 an audit check failed; 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from ._errors import FedLedgerError, ServiceError

F = TypeVar("F", bound=Callable[..., Any])

def _console(*, err: bool) -> Console:
    """A console that wraps at the terminal's width, and never when piped:
    tables and suggested command lines are copied and grepped."""
    stream = sys.stderr if err else sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return Console(stderr=err, width=None if tty else 100_000, soft_wrap=not tty)


stderr = _console(err=True)
stdout = _console(err=False)

# -- options shared by every command (defined once) ---------------------------

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print only JSON on stdout (progress and logs stay on stderr).")
rpc_url_option = click.option(
    "--rpc-url", envvar="FEDLEDGER_RPC_URL", default="embedded", show_default=True,
    help="Chain: embedded (in-process py-evm), anvil or hardhat (a node started on "
         "127.0.0.1), or an http(s):// JSON-RPC URL. Env: FEDLEDGER_RPC_URL.")
running_rpc_url_option = click.option(
    "--rpc-url", envvar="FEDLEDGER_RPC_URL", default=None, metavar="URL",
    help="JSON-RPC URL of the running chain the deployment lives on, e.g. "
         "http://127.0.0.1:8545 (the URL `fedledger chain up` or `federation up` printed). "
         "Env: FEDLEDGER_RPC_URL.")
keystore_option = click.option(
    "--keystore", "keystores", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Encrypted keystore (v3 JSON) of an account to sign with on an RPC URL chain; "
         "repeatable. Passphrase: --passphrase-file or env FEDLEDGER_KEYSTORE_PASSPHRASE.")
passphrase_file_option = click.option(
    "--passphrase-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None, help="File whose first line is the keystore passphrase.")
ipfs_api_option = click.option(
    "--ipfs-api", envvar="FEDLEDGER_IPFS_API", default=None,
    help="Kubo RPC API, e.g. http://127.0.0.1:5001 or /ip4/127.0.0.1/tcp/5001. "
         "Env: FEDLEDGER_IPFS_API.")


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON on stdout, or call ``human`` to render it."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human()


def open_chain(rpc_url: str, keystores: tuple[Path, ...] = (),
               passphrase_file: Path | None = None) -> Any:
    """Connect to ``rpc_url``; URL chains sign with the given keystores."""
    import os

    from .chain._chain import connect

    if not rpc_url.startswith(("http://", "https://")):
        return connect(rpc_url)
    passphrase = os.environ.get("FEDLEDGER_KEYSTORE_PASSPHRASE")
    if passphrase_file is not None:
        lines = passphrase_file.read_text().splitlines()
        passphrase = lines[0] if lines else ""
    chain = connect(rpc_url, keystores=keystores, passphrase=passphrase)
    if not chain.accounts:
        from ._errors import ConfigError

        chain.close()
        raise ConfigError(f"no account to sign with on {rpc_url}",
                          hint="pass --keystore FILE (and its passphrase)")
    return chain


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """-v/-q after a sub-command: the same as before it (the root already set
    the level from its own -v/-q; this only raises or lowers it)."""
    if not value or ctx.resilient_parsing:
        return value
    root = logging.getLogger()
    if param.name == "quiet":
        root.setLevel(logging.ERROR)
    else:
        root.setLevel((logging.WARNING, logging.INFO, logging.DEBUG)[min(int(value), 2)])
    return value


def _verbosity_params() -> list[click.Parameter]:
    return [click.Option(["-v", "--verbose"], count=True, expose_value=False,
                         callback=_set_verbosity, is_eager=True,
                         help="More log output on stderr (-vv for debug)."),
            click.Option(["-q", "--quiet"], is_flag=True, expose_value=False,
                         callback=_set_verbosity, is_eager=True, help="Only errors on stderr.")]


def with_verbosity(cmd: click.Command) -> click.Command:
    """Accept -v/-q on ``cmd`` and every command below it, not only before
    the sub-command."""
    names = {o for p in cmd.params for o in getattr(p, "opts", [])}
    if "-v" not in names and "--verbose" not in names:
        cmd.params.extend(_verbosity_params())
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            with_verbosity(sub)
    return cmd


class RoleGroup(click.Group):
    """The root group; adds role groups registered by other packages."""

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group="fedledger.commands")}

    #: top-level shortcuts for a command of a role group: `fedledger init` is
    #: `fedledger federation new` (like `flwr new`), named by entry point only.
    ALIASES = {"init": ("federation", "new")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()) | set(self.ALIASES))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.ALIASES:
            group_name, sub = self.ALIASES[name]
            group = self.get_command(ctx, group_name)
            return group.get_command(ctx, sub) if isinstance(group, click.Group) else None
        cmd = super().get_command(ctx, name)
        if cmd is None and name in self._plugins():
            loaded = self._plugins()[name].load()
            cmd = loaded if isinstance(loaded, click.Command) else None
        return with_verbosity(cmd) if cmd is not None else None


@click.group(cls=RoleGroup, context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=True, no_args_is_help=False)
@click.version_option(package_name="fedledger", prog_name="fedledger")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """fedledger: blockchain-coordinated federated learning with DP adapters
    and secure aggregation over IPFS.

    \b
    Roles:
      chain    compile, deploy and run local chains (governor, operators)
      ipfs     run a local Kubo daemon (operators)
      doctor   check that every component is installed and reachable
      round    open, inspect, aggregate and finalize rounds, or keep them going
      node     a peer: train locally, or run the peer daemon
      init     write a commented federation.toml and peer.toml to edit
      federation  a whole federation as local processes (new/up/down)
      audit    inspect, verify, challenge, export, report, explore (auditors)
      bench    benchmarks and the researchers' comparisons (JSON out)
      demo     the whole system end to end on embedded defaults
    """
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ctx.invoked_subcommand is None:  # bare `fedledger`: the overview, and success
        click.echo(ctx.get_help())
        ctx.exit(0)


# -- chain ----------------------------------------------------------------------

@cli.group()
def chain() -> None:
    """Compile the contracts, deploy them, or run a local chain node."""


@chain.command("compile")
@json_option
def chain_compile(as_json: bool) -> None:
    """Compile contracts/ with Hardhat 3 and the bundled solc-js (offline)."""
    import subprocess

    from .chain._artifacts import _load_all, check_fresh, load_artifacts
    from .ops._paths import hardhat_cli, node_env, project_root

    t0 = time.monotonic()
    proc = subprocess.run([str(hardhat_cli()), "build"], cwd=project_root(), env=node_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        from ._errors import BuildError

        raise BuildError("Hardhat build failed:\n" + (proc.stderr or proc.stdout).strip())
    _load_all.cache_clear()
    check_fresh()
    names = sorted(load_artifacts())
    data = {"contracts": names, "seconds": round(time.monotonic() - t0, 2)}
    emit(as_json, data, lambda: stdout.print(
        f"[green]compiled[/] {len(names)} contracts in {data['seconds']} s: {', '.join(names)}"))


@chain.command("deploy")
@rpc_url_option
@keystore_option
@passphrase_file_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the deployment record (default: .fedledger/deployment.json).")
@click.option("--data-schema", "data_schema", default="", metavar="0xHASH",
              help="Declare the federation's data schema on-chain: the 32-byte hash that "
                   "`fedledger node schema check --schema schema.toml` prints. Peers whose "
                   "schema hashes differently refuse to start.")
@json_option
def chain_deploy(rpc_url: str, keystores: tuple[Path, ...], passphrase_file: Path | None,
                 out: Path | None, data_schema: str, as_json: bool) -> None:
    """Deploy the contract suite and write a deployment record.

    The record (addresses, chain id, block, source hash) is what auditors
    start from. On the embedded chain the deployment lives only as long as
    this process, so the record is for inspection only.
    """
    from ._errors import ConfigError
    from .chain._deploy import deploy_all
    from .ops._paths import state_dir

    schema = bytes(32)
    if data_schema:
        try:
            schema = bytes.fromhex(data_schema.removeprefix("0x"))
        except ValueError:
            schema = b""
        if len(schema) != 32 or not any(schema):
            raise ConfigError(f"--data-schema {data_schema!r} must be a non-zero 32-byte hex hash",
                              hint="print it with `fedledger node schema check --schema schema.toml`")
    with open_chain(rpc_url, keystores, passphrase_file) as ch:
        rec = deploy_all(ch, data_schema=schema)
    path = out or state_dir() / "deployment.json"
    rec.save(path)
    def human() -> None:
        stdout.print(f"[green]deployed[/] on {rec.backend} (chain {rec.chain_id}) at block {rec.block}")
        for n, a in rec.contracts.items():
            stdout.print(f"  {n}: {a}")
        stdout.print(f"record written to {path}")

    emit(as_json, {"record": json.loads(rec.to_json()), "path": str(path)}, human)


@chain.command("up")
@click.option("--kind", type=click.Choice(["anvil", "hardhat"]), default="anvil", show_default=True,
              help="Which development node to run.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port on 127.0.0.1 (default: a free one).")
@click.option("--deploy/--no-deploy", default=True, show_default=True,
              help="Deploy the contract suite once the node is up.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the deployment record (default: .fedledger/deployment.json).")
@json_option
def chain_up(kind: str, port: int | None, deploy: bool, out: Path | None, as_json: bool) -> None:
    """Start a local chain node on 127.0.0.1 and keep it running until Ctrl-C
    (or SIGTERM, which stops the node too).

    Prints the RPC URL, the funded development accounts (the governor is
    account 0) and where the deployment record was written, as anvil and the
    Hardhat node do; their private keys come from the public development
    mnemonic, so never send real funds to them.
    """
    import signal

    from .chain._chain import LocalNode
    from .chain._deploy import deploy_all
    from .ops._paths import state_dir

    def on_term(*_: Any) -> None:
        raise KeyboardInterrupt  # unwinds through `finally`, which stops the node

    previous = signal.signal(signal.SIGTERM, on_term)
    node = None
    try:
        node = LocalNode(kind, port=port)
        info: dict[str, Any] = {"kind": kind, "rpc_url": node.url, "chain_id": node.chain_id,
                                "accounts": [a.address for a in node.accounts],
                                "deployment": None}
        if deploy:
            rec = deploy_all(node)
            path = out or state_dir() / "deployment.json"
            rec.save(path)
            info["deployment"] = str(path)
            info["contracts"] = dict(rec.contracts)

        def human() -> None:
            stdout.print(f"[green]{kind} ready[/] at {node.url} (chain {node.chain_id})")
            shown, total = info["accounts"][:10], len(info["accounts"])
            first = f", the first {len(shown)} (`--json` lists all)" if len(shown) < total else ""
            stdout.print(f"{total} funded accounts (development mnemonic; account 0 is the "
                         f"governor){first}:")
            for i, a in enumerate(shown):
                stdout.print(f"  ({i}) {a}")
            if info["deployment"]:
                for n, a in info["contracts"].items():
                    stdout.print(f"  {n}: {a}")
                stdout.print(f"deployment record written to {info['deployment']}")
                stdout.print(f"peers join with rpc_url = \"{node.url}\" and deployment = "
                             f"\"{info['deployment']}\" in their peer.toml (`fedledger init` "
                             "writes one)")
            stderr.print("Ctrl-C stops it")

        emit(as_json, info, human)
        sys.stdout.flush()
        while node.process.alive():
            time.sleep(0.5)
        raise FedLedgerError(f"{kind} exited unexpectedly; see {node.process.log_path}")
    finally:
        if node is not None:
            node.close()
        signal.signal(signal.SIGTERM, previous)


# -- ipfs -----------------------------------------------------------------------

@cli.group()
def ipfs() -> None:
    """Run a local Kubo (IPFS) daemon."""


@ipfs.command("up")
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Kubo repository directory (default: .fedledger/ipfs/default).")
@json_option
def ipfs_up(repo: Path | None, as_json: bool) -> None:
    """Start Kubo on 127.0.0.1 (no bootstrap, no MDNS, no DHT) until Ctrl-C."""
    from .ops._paths import state_dir
    from .store._store import KuboDaemon

    daemon = KuboDaemon(repo or state_dir() / "ipfs" / "default")
    try:
        client = daemon.start()
        info = {"api": client.api, "swarm": daemon.swarm_addr, "repo": str(daemon.repo)}
        emit(as_json, info, lambda: stderr.print(
            f"[green]Kubo ready[/]: API {client.api}, swarm {info['swarm']}; Ctrl-C stops it"))
        sys.stdout.flush()
        while daemon.process is not None and daemon.process.alive():
            time.sleep(0.5)
        raise FedLedgerError(f"Kubo exited unexpectedly; see {daemon.repo / 'daemon.log'}")
    finally:
        daemon.stop()


# -- doctor ---------------------------------------------------------------------

@cli.command()
@click.option("--rpc-url", envvar="FEDLEDGER_RPC_URL", default=None,
              help="Also check this JSON-RPC endpoint (default: the embedded chain).")
@ipfs_api_option
@json_option
def doctor(rpc_url: str | None, ipfs_api: str | None, as_json: bool) -> None:
    """Check every component and say how to fix what is missing."""
    from dataclasses import asdict

    from ._doctor import run_checks

    checks = run_checks(rpc_url=rpc_url, ipfs_api=ipfs_api)

    def human() -> None:
        table = Table(title="fedledger doctor")
        for col in ("component", "status", "detail"):
            table.add_column(col)
        for c in checks:
            status = "[green]ok[/]" if c.ok else "[red]FAIL[/]"
            detail = c.detail if c.ok else f"{c.detail} → {c.fix}"
            table.add_row(c.name, status, detail)
        stdout.print(table)

    emit(as_json, {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}, human)
    if not all(c.ok for c in checks):
        raise SystemExit(3)


# -- round ----------------------------------------------------------------------

deployment_option = click.option(
    "--deployment", type=click.Path(dir_okay=False, path_type=Path), default=None,
    envvar="FEDLEDGER_DEPLOYMENT",
    help="Deployment record written by `chain deploy` / `federation up` "
         "(default: .fedledger/deployment.json). Env: FEDLEDGER_DEPLOYMENT.")
account_option = click.option(
    "--account", type=click.IntRange(0), default=None,
    help="Sign with this development account (index into the dev mnemonic) on a local "
         "chain URL; without it, the first --keystore account signs.")


def open_federation(rpc_url: str | None, deployment: Path | None, keystores: tuple[Path, ...],
                    passphrase_file: Path | None, account: int | None,
                    *, read_only: bool = False) -> tuple[Any, Any, str]:
    """(chain, federation, signing address) for a recorded deployment; a
    read-only view needs no account ("" as the address)."""
    from .chain._chain import connect
    from .chain._deploy import DeploymentRecord, attach
    from .ops._paths import state_dir

    if rpc_url is None:
        from ._errors import ConfigError

        raise ConfigError("pass --rpc-url URL of the running chain (or set FEDLEDGER_RPC_URL), "
                          "e.g. http://127.0.0.1:8545")
    if rpc_url in ("embedded", "anvil", "hardhat"):
        raise click.UsageError("round commands need the --rpc-url of a running chain "
                               "(an embedded or freshly started chain has no rounds)")
    record = DeploymentRecord.load(deployment or state_dir() / "deployment.json")
    signer: str
    if account is not None:
        chain = connect(rpc_url, dev_accounts=True)
        signer = chain.account(account).address
    elif read_only and not keystores:
        chain = connect(rpc_url)
        signer = ""
    else:
        chain = open_chain(rpc_url, keystores, passphrase_file)
        signer = chain.accounts[0].address
    return chain, attach(chain, record), signer


def open_store(ipfs_api: str | None) -> Any:
    from .store._store import KuboClient

    if not ipfs_api:
        from ._errors import ConfigError

        raise ConfigError("this command needs a Kubo RPC API",
                          hint="pass --ipfs-api http://127.0.0.1:5001 or set FEDLEDGER_IPFS_API")
    client = KuboClient(ipfs_api)
    client.id()  # fails clearly if nothing answers there
    return client


def round_view(fed: Any, r: int) -> dict[str, Any]:
    from .protocol._aggregate import collect

    info = fed.round_info(r)
    pub = collect(fed, r)
    return {"round": r, "phase": info.phase.name, "fail_reason": info.fail_reason.name,
            "n": info.n, "t": info.t, "deadline": info.deadline,
            "block": fed.chain.block_number, "attempt": info.attempt,
            "dp_config": info.dp_config, "vector_length": info.vector_length,
            "participants": fed.participants(r), "U1": pub.u1, "U2": pub.u2, "U3": pub.u3,
            "revealed": sorted(pub.reveals), "late": late_peers(info, pub),
            # committed, then left U3 unanswered after an availability challenge
            "withheld": sorted(pub.dropped),
            # committed vectors posted on-chain in answer to a challenge
            "answered_on_chain": sorted(pub.answered),
            "adapter": "0x" + info.adapter_cid.hex()}


def late_peers(info: Any, pub: Any) -> dict[str, list[int]]:
    """Per phase whose window has closed, the participants (by index) that
    did not act in it although they had done every earlier step (a committer
    dropped for withholding its vector committed: it is listed under
    "withheld" by :func:`round_view`, not here)."""
    from .chain._contracts import FailReason, Phase

    closed = {Phase.KEYS: info.phase > Phase.KEYS, Phase.SHARES: info.phase > Phase.SHARES,
              Phase.COMMIT: info.phase > Phase.COMMIT, Phase.REVEAL: info.phase > Phase.REVEAL}
    if info.phase == Phase.FAILED:  # the window that failed closed; later ones never opened
        last = {FailReason.INSUFFICIENT_KEYS: Phase.KEYS,
                FailReason.INSUFFICIENT_SHARES: Phase.SHARES,
                FailReason.INSUFFICIENT_COMMITS: Phase.COMMIT}.get(info.fail_reason, Phase.REVEAL)
        closed = {ph: ph <= last for ph in closed}
    before = list(range(info.n))
    late: dict[str, list[int]] = {}
    for ph, acted in ((Phase.KEYS, pub.u1), (Phase.SHARES, pub.u2),
                      (Phase.COMMIT, sorted({*pub.u3, *pub.dropped})),
                      (Phase.REVEAL, sorted(pub.reveals))):
        if not closed[ph]:
            break
        late[ph.name] = [i for i in before if i not in acted]
        before = [i for i in acted if i not in pub.dropped]
    return late


def _round_options(f: F) -> F:
    for opt in (running_rpc_url_option, deployment_option, ipfs_api_option, account_option,
                keystore_option, passphrase_file_option, json_option):
        f = opt(f)
    return f


@cli.group("round")
def round_group() -> None:
    """Drive rounds: open, inspect, aggregate, finalize, or keep them going."""


round_option = click.option(
    "--round", "round_id", type=click.IntRange(1), default=None,
    help="Round number (default: the current one).")


def existing_round(fed: Any, round_id: int | None) -> int:
    """``round_id`` (or the current round) after checking the chain has it:
    a round that was never opened is a user mistake, not an empty answer."""
    from ._errors import ConfigError

    current = fed.current_round()
    if round_id is None:
        return int(current)
    if not 1 <= round_id <= current:
        have = f"rounds 1..{current}" if current else "no rounds yet"
        raise ConfigError(f"round {round_id} does not exist: the federation has {have}",
                          hint="omit --round for the current one, or see `fedledger audit inspect`")
    return round_id


@round_group.command("status")
@round_option
@running_rpc_url_option
@deployment_option
@json_option
def round_status(round_id: int | None, rpc_url: str, deployment: Path | None,
                 as_json: bool) -> None:
    """Show a round's phase and its participant sets U1 ⊇ U2 ⊇ U3 from the
    chain, the peers late in each closed phase, the committers dropped for
    withholding their masked vector (and those whose vector was posted
    on-chain after an availability challenge), each peer's eligibility, and
    why no round opens when none does. Read-only: it signs nothing."""
    from .protocol._driver import eligibility, stall_reason

    chain, fed, _ = open_federation(rpc_url, deployment, (), None, None, read_only=True)
    with chain:
        r = existing_round(fed, round_id)
        view: dict[str, Any] = {"round": 0, "phase": "NONE"} if r == 0 else round_view(fed, r)
        dp_cfg = int(view.get("dp_config") or 1)
        view["peers"] = eligibility(fed, dp_cfg)
        view["stalled"] = stall_reason(fed, dp_cfg) if round_id is None else None

    def human() -> None:
        if r == 0:
            stdout.print("no round opened yet")
        else:
            stdout.print(f"round {r}: [bold]{view['phase']}[/] (deadline block {view['deadline']}, "
                         f"now {view['block']}); n = {view['n']}, t = {view['t']}")
            stdout.print(f"  keys U1 = {view['U1']}\n  shares U2 = {view['U2']}\n"
                         f"  committed U3 = {view['U3']}\n  revealed = {view['revealed']}")
        counts: dict[str, int] = {}
        for p in view["peers"]:
            counts[p["status"]] = counts.get(p["status"], 0) + 1
        stdout.print("  peers: " + (", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
                                    or "none registered"))
        if view["stalled"]:
            stdout.print(f"[yellow]no round can open[/]: {view['stalled']}")
        for phase, peers in view.get("late", {}).items():
            if peers:
                stdout.print(f"  late in {phase}: {peers}")
        if view.get("withheld"):
            stdout.print(f"  [yellow]withheld their vector[/] (dropped from U3, slashed): "
                         f"{view['withheld']}")
        if view.get("answered_on_chain"):
            stdout.print(f"  vectors posted on-chain after a challenge: {view['answered_on_chain']}")

    emit(as_json, view, human)


@round_group.command("open")
@click.option("--dp-config", type=click.IntRange(1), default=1, show_default=True,
              help="Id of a registered DP configuration every participant trains at.")
@_round_options
def round_open(dp_config: int, rpc_url: str, deployment: Path | None, ipfs_api: str | None,
               account: int | None, keystores: tuple[Path, ...], passphrase_file: Path | None,
               as_json: bool) -> None:
    """Open the next round (governor, or anyone once the last one ended)."""
    from .protocol._aggregate import load_adapter
    from .protocol._secagg import chunk_elems_for

    store = open_store(ipfs_api)
    chain, fed, signer = open_federation(rpc_url, deployment, keystores, passphrase_file, account)
    with chain:
        fixed = fed.quantization()  # round 1 fixed it; later rounds repeat it
        if fixed is None:
            length = len(load_adapter(store, fed.global_adapter_cid()))
            pol = fed.policy()
            r, rcpt = fed.open_round(dp_config=dp_config, vector_length=length, sender=signer,
                                     chunk_elems=chunk_elems_for(pol.participants, pol.threshold))
        else:
            length, ce, fb = fixed
            r, rcpt = fed.open_round(dp_config=dp_config, vector_length=length, chunk_elems=ce,
                                     frac_bits=fb, sender=signer)
        data = {"round": r, "tx": rcpt.tx_hash, "gas": rcpt.gas_used, "vector_length": length,
                "participants": fed.participants(r)}
    emit(as_json, data, lambda: stdout.print(f"[green]opened round {r}[/] with "
                                             f"{len(data['participants'])} participants (tx {rcpt.tx_hash})"))


@round_group.command("aggregate")
@round_option
@_round_options
def round_aggregate(round_id: int | None, rpc_url: str, deployment: Path | None,
                    ipfs_api: str | None, account: int | None, keystores: tuple[Path, ...],
                    passphrase_file: Path | None, as_json: bool) -> None:
    """Unmask the round's sum, publish the new adapter and post it with the bond."""
    from ._errors import AggregationError
    from .chain._contracts import Phase
    from .protocol._agent import Aggregator

    chain, fed, signer = open_federation(rpc_url, deployment, keystores, passphrase_file, account)
    with chain:
        r = existing_round(fed, round_id)
        if r == 0:
            raise AggregationError("no round has been opened yet",
                                   hint="open one with `fedledger round open`")
        phase = fed.round_info(r).phase
        if phase != Phase.AGGREGATE:  # checked before any IPFS fetch, which could wait long
            raise AggregationError(f"round {r} is in phase {phase.name}, not AGGREGATE",
                                   hint="see `fedledger round status`; aggregate once the "
                                        "reveal phase has ended")
        store = open_store(ipfs_api)
        agg, _, gas = Aggregator(fed, store, signer).run(r)
        data = {"round": r, "gas": gas, "survivors": len(agg.masked), "seeds": len(agg.seeds),
                "rejected_shares": agg.rejected_shares}
    emit(as_json, data, lambda: stdout.print(
        f"[green]round {r}: result posted[/] ({data['survivors']} updates, {data['seeds']} seeds, "
        f"gas {gas:,})"))


@round_group.command("finalize")
@round_option
@_round_options
def round_finalize(round_id: int | None, rpc_url: str, deployment: Path | None,
                   ipfs_api: str | None, account: int | None, keystores: tuple[Path, ...],
                   passphrase_file: Path | None, as_json: bool) -> None:
    """Finalize a round whose challenge window has passed."""
    chain, fed, signer = open_federation(rpc_url, deployment, keystores, passphrase_file, account)
    with chain:
        r = existing_round(fed, round_id)
        rcpt = fed.finalize(r, sender=signer)
    emit(as_json, {"round": r, "tx": rcpt.tx_hash, "gas": rcpt.gas_used},
         lambda: stdout.print(f"[green]round {r} finalized[/] (tx {rcpt.tx_hash})"))


@round_group.command("run")
@click.option("--rounds", type=click.IntRange(1), default=None,
              help="Stop after opening this many rounds and seeing the last one end "
                   "(default: keep going).")
@click.option("--dp-config", type=click.IntRange(1), default=1, show_default=True,
              help="Id of a registered DP configuration every round trains at.")
@click.option("--interval", type=click.FloatRange(0.05), default=0.5, show_default=True,
              help="Seconds between looks at the chain.")
@click.option("--min-peers", type=click.IntRange(0), default=0, show_default=True,
              help="Wait until this many eligible peers are registered before opening the "
                   "federation's first round (later rounds open with the threshold).")
@click.option("--mine/--no-mine", default=False, show_default=True,
              help="On a development chain, mine a block per look while a phase waits for "
                   "its deadline (automining chains make blocks only on transactions).")
@_round_options
def round_run(rounds: int | None, dp_config: int, interval: float, min_peers: int, mine: bool,
              rpc_url: str,
              deployment: Path | None, ipfs_api: str | None, account: int | None,
              keystores: tuple[Path, ...], passphrase_file: Path | None, as_json: bool) -> None:
    """Keep rounds going: open, advance past deadlines, aggregate, finalize."""
    import signal

    from .protocol._aggregate import load_adapter
    from .protocol._driver import RoundDriver

    store = open_store(ipfs_api)
    chain, fed, signer = open_federation(rpc_url, deployment, keystores, passphrase_file, account)
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with chain:
        length = len(load_adapter(store, fed.global_adapter_cid()))
        driver = RoundDriver(fed, store, aggregator=signer, dp_config=dp_config,
                             vector_length=length, rounds=rounds, mine=mine, min_peers=min_peers)
        outage = 0.0
        while not stop and not driver.finished:
            try:
                did = driver.tick()
            except (ServiceError, OSError) as exc:
                # A chain or Kubo briefly gone costs time, not the driver.
                if not outage:
                    stderr.print(f"[yellow]unreachable[/] ({exc}); retrying", highlight=False)
                outage = min(max(outage, interval) * 2, 10.0)
                time.sleep(outage)
                continue
            if outage:
                stderr.print("reachable again", highlight=False)
                outage = 0.0
            if did:
                stderr.print(did, highlight=False)
            time.sleep(0 if did else interval)
        views = [round_view(fed, r) for r in driver.opened]
    emit(as_json, {"rounds": views, "gas": driver.gas}, lambda: stdout.print(
        f"[green]done[/]: {len(driver.opened)} rounds, phases "
        + ", ".join(f"{v['round']}={v['phase']}" for v in views)))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the only place that catches the root error."""
    try:
        cli.main(args=argv, prog_name="fedledger", standalone_mode=False)
    except FedLedgerError as exc:
        from rich.markup import escape

        stderr.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        stderr.print("[red]aborted[/]")
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        stderr.print("[red]interrupted[/]")
        raise SystemExit(130) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
