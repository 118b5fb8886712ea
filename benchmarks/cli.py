"""`fedledger bench`: researchers' and performance benchmarks (write JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from coordinator.cli import json_option, stderr, stdout


def _sizes(text: str, most: int, what: str) -> tuple[int, ...]:
    """Parse --sizes: comma-separated integers in 3..most."""
    from coordinator import ConfigError

    try:
        ns = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise ConfigError(f"--sizes {text!r} must be comma-separated integers") from None
    if any(n < 3 or n > most for n in ns):
        raise ConfigError(f"--sizes values must be between 3 and {most} {what}")
    return ns


@click.group()
def bench() -> None:
    """Benchmarks. Each writes JSON under benchmarks/out/ (or --out)."""


@bench.command("chain-logs")
@click.option("--blocks", default="25,50,100", show_default=True,
              help="Comma-separated chain lengths to measure.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@json_option
def chain_logs(blocks: str, out: Path | None, as_json: bool) -> None:
    """Event following on the embedded chain: full-range vs narrow vs filter."""
    from coordinator import ConfigError

    from . import chain_logs as mod
    from ._common import write_json

    try:
        sizes = tuple(int(b) for b in blocks.split(","))
    except ValueError:
        raise ConfigError(f"--blocks {blocks!r} must be comma-separated integers") from None
    if any(s < 1 for s in sizes):
        raise ConfigError("--blocks values must be positive")
    with stderr.status("measuring get_logs on the embedded chain"):
        data = mod.run(sizes)
    path = write_json("chain_logs", data, out)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    for r in data["results"]:
        stdout.print(f"{r['blocks']:>5} blocks: narrow {r['narrow_query_s']:.3f} s, "
                     f"filter {r['filter_query_s']:.3f} s ({r['filter_vs_narrow']}x), "
                     f"full {r['full_query_s']:.3f} s ({r['full_vs_narrow']}x)")
    stdout.print(f"written to {path}")


@bench.command("gas")
@click.option("--sizes", default="10,20,50", show_default=True,
              help="Comma-separated participant counts.")
@click.option("--backend", type=click.Choice(["anvil", "hardhat", "embedded"]), default="anvil",
              show_default=True, help="Chain to measure on.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@json_option
def gas(sizes: str, backend: str, out: Path | None, as_json: bool) -> None:
    """Gas per contract function for rounds of n participants (and both fraud proofs)."""
    from . import gas as mod
    from ._common import write_json

    ns = _sizes(sizes, 200, "participants")
    with stderr.status(f"running rounds of {sizes} participants on {backend}"):
        data = mod.run(ns, backend=backend)
    path = write_json("gas", data, out)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    from rich.table import Table

    table = Table(title=f"gas per function ({backend})")
    cols = ["register", "open", "keys", "shares", "commit", "reveal", "post_result", "finalize",
            "seed_proof_self", "seed_proof_pair", "chunk_proof"]
    table.add_column("n")
    for c in cols:
        table.add_column(c, justify="right")
    for r in data["rows"]:
        cells = [r[c]["median"] if isinstance(r[c], dict) else r[c] for c in cols]
        table.add_row(str(r["n"]), *[f"{v:,}" for v in cells])
    stdout.print(table)
    t = data["targets"]
    stdout.print(f"commit max {t['commit_max']:,} (target ≤ {t['commit_target']:,}); "
                 f"largest proof {t['proof_max']:,} (target ≤ {t['proof_target']:,})")
    stdout.print(f"commit median vs vector length {data['commit_vs_model_size']}")
    stdout.print(f"written to {path}")


@bench.command("train")
@click.option("--encoder", type=click.Choice(["minilm", "tiny"]), default="minilm", show_default=True)
@click.option("--examples", type=click.IntRange(32), default=1024, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@json_option
def train(encoder: str, examples: int, out: Path | None, as_json: bool) -> None:
    """One local round with and without DP: seconds, overhead ratio, peak RSS."""
    from . import train as mod
    from ._common import write_json

    with stderr.status(f"training {examples} examples with {encoder}, with and without DP"):
        data = mod.run(encoder=encoder, examples=examples)
    path = write_json("train", data, out)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    r = data["rounds"]
    stdout.print(f"{encoder}, {examples} examples, {data['trainable_parameters']:,} trainable parameters")
    stdout.print(f"  plain {r['plain']['train_seconds']} s, DP {r['dp']['train_seconds']} s: "
                 f"overhead {data['dp_overhead']}x (target ≤ {data['targets']['overhead']}x)")
    stdout.print(f"  peak RSS {data['peak_rss_mib']} MiB; written to {path}")


@bench.command("secure-round")
@click.option("--sizes", default="5,10,20", show_default=True,
              help="Comma-separated numbers of peer processes.")
@click.option("--params", type=click.IntRange(8), default=100_000, show_default=True,
              help="Parameters per update (float32).")
@click.option("--flower/--no-flower", default=True, show_default=True,
              help="Also run Flower SecAgg+ on the same workload (its own venv, from PyPI).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@json_option
def secure_round(sizes: str, params: int, flower: bool, out: Path | None, as_json: bool) -> None:
    """Masking throughput, and one secure round (keys → finalize, training
    excluded) with n peer processes, each with its own Kubo, on anvil — and
    the same through Flower SecAgg+ (SuperLink + SuperNodes), as a ratio."""
    from . import secure_round as mod
    from ._common import write_json

    ns = _sizes(sizes, 50, "peers")
    data = mod.run(ns, params, flower=flower, log=lambda s: stderr.print(s, highlight=False))
    data["target"] = {"ratio_at_20": 0.25}
    path = write_json("secure_round", data, out)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    t = data["throughput"]
    stdout.print(f"PRG (keccak-CTR, one core): {t['ours_keccak_ctr_mb_s']:.1f} MB/s; AES-128-CTR "
                 f"{t['aes128_ctr_mb_s']:.0f} MB/s, SHAKE256 {t['shake256_mb_s']:.0f} MB/s")
    for i, o in enumerate(data["ours"]):
        line = (f"n={o['n']}: ours {o['seconds']:.1f} s, {o['bytes_per_peer']:,} B/peer "
                f"(×{o['expansion']} of the raw update)")
        if flower:
            f = data["flower"][i]
            line += f"; Flower SecAgg+ {f['seconds']:.1f} s → ratio {o['seconds'] / f['seconds']:.3f}"
        stdout.print(line)
    stdout.print(f"written to {path}")
