"""`fedledger bench`: researchers' and performance benchmarks (write JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from coordinator.cli import json_option, stderr, stdout


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
