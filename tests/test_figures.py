"""Every published figure is backed by committed output.

A number with a unit in README.md or docs/*.md must appear (at its printed
precision) in a JSON file committed under benchmarks/out/ that its section
(the text between two headings) cites, by file name (`gas.json`) or by its
command (`bench gas`), or sit in a "References" section. Any JSON anywhere
would not do: small numbers (10 s, 4 ×, 20 %) then match by coincidence.
Files may be regenerated (docs/results.md by ``bench compare``): the test
reads whatever JSON is committed, so it checks consistency, not values."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import pytest

from coordinator.ops._paths import project_root

ROOT = project_root()
OUT = ROOT / "benchmarks" / "out"

# A number (1,234 · 6.34 · 12.0 · 1e-5) then a unit. Prefixes k/M scale gas.
FIGURE = re.compile(
    r"(?<![\w.\-/])(?P<num>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s?"
    r"(?P<unit>MB/s|GiB|MiB|KiB|MB|KB|ms|µs|min|M gas|k gas|gas|s|×|%)(?![\w/])")
# Definitions, not measurements.
DEFINITIONS = re.compile(r"95 % CI|0\.1 ?% ?FPR|TPR@0\.1%FPR|\d+ ?% of (?:the|its)")
SCALE = {"M gas": 1e6, "k gas": 1e3}


def _numbers(obj: object, out: list[float]) -> None:
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        if math.isfinite(obj):
            out.append(float(obj))
    elif isinstance(obj, dict):
        for v in obj.values():
            _numbers(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _numbers(v, out)


def committed_json() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "benchmarks/out"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    return sorted(ROOT / p for p in tracked if p.endswith(".json"))


def _backed(num: str, unit: str, values: list[float]) -> bool:
    text = num.replace(",", "")
    decimals = len(text.split(".")[1]) if "." in text else 0
    want = float(text) * SCALE.get(unit, 1.0)
    step = 10 ** -decimals * SCALE.get(unit, 1.0)
    for v in values:
        for scaled in ((v, v * 100) if unit == "%" else (v,)):  # a fraction printed as a percentage
            if abs(scaled - want) <= step / 2 + 1e-9 * max(1.0, abs(want)):
                return True
    return False


def figures(path: Path) -> list[tuple[int, str, str, str]]:
    """(line number, number, unit, line) for every figure not exempted."""
    return [(i, n, u, line) for i, n, u, line, _ in _figures_in_sections(path)]


def _figures_in_sections(path: Path) -> list[tuple[int, str, str, str, str]]:
    """As figures(), with the text of the section each one sits in."""
    lines = path.read_text().splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith("#")]
    found = []
    in_refs = False
    for i, line in enumerate(lines):
        if line.startswith("#"):
            in_refs = "reference" in line.lower()
        if in_refs or line.lstrip().startswith(("```", "$ ")):
            continue
        clean = DEFINITIONS.sub("", re.sub(r"`[^`]*`", "", line))
        for m in FIGURE.finditer(clean):
            lo = max([h for h in heads if h <= i], default=0)
            hi = min([h for h in heads if h > i], default=len(lines))
            found.append((i + 1, m["num"], m["unit"], line.strip(), "\n".join(lines[lo:hi])))
    return found


def cited_values(section: str, outputs: dict[str, dict]) -> list[float]:
    """The numbers of every committed output the section cites, by file name
    or by its command (`bench gas`, `fedledger bench soak`)."""
    values: list[float] = []
    for name, data in outputs.items():  # name: the file's path under benchmarks/out, or its name
        command = data.get("command", "") if isinstance(data, dict) else ""
        bench = " ".join(command.split()[1:3]) if command.startswith("fedledger bench") else None
        if name in section or Path(name).name in section or (bench and bench in section):
            _numbers(data, values)
    return values


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Known debt, visible here so it can only shrink: figures merged before this
# test whose output is not committed yet, as (file, number, unit). Commit the
# JSON (or remove the figure) and delete the entry; an entry that no longer
# matches any figure fails the test.
PENDING: set[tuple[str, str, str]] = set()  # every hand-timed figure is gone from the docs

# Not measurements, so no output can hold them: settings and bounds the code
# fixes, sizes and products written with ×, targets, and an analytic ratio.
# (Each must still match a figure, or the test fails.)
SETTINGS = {
    ("decisions.md", "1", "MiB"),  # MAX_JSONL_LINE (nodes/_schema.py)
    ("README.md", "1", "MiB"),  # MAX_JSONL_LINE (nodes/_schema.py)
    ("decisions.md", "0.15", "%"),  # an analytic ratio (√d term vs Δ2)
    ("decisions.md", "30", "s"),  # the daemon's backoff cap (nodes/_daemon.py)
    ("decisions.md", "10", "s"),  # round run's backoff cap (cli.py), the old 40-block window
    ("decisions.md", "350", "MB"),  # issue 19's target
    ("decisions.md", "256", "MiB"),  # MAX_FETCH
    ("decisions.md", "16", "MiB"),  # the bz2 decompression bound
    ("decisions.md", "4", "×"),  # bytes per uint32 in a size formula
    ("decisions.md", "2", "×"),  # the selection pool bound (× participants)
    ("decisions.md", "8", "×"),  # 8 peers × 192 examples
    ("decisions.md", "20", "%"),  # the local test split
    ("decisions.md", "128", "×"),  # batch 128 × 10 epochs
    ("decisions.md", "256", "×"),  # batch 256 × 20 epochs
    ("results.md", "20", "%"),  # bench compare's held-out split, printed by the generator
}


def test_the_figure_finder_finds_figures_and_checks_them(tmp_path) -> None:
    doc = tmp_path / "d.md"
    doc.write_text("plain 6.34 s, DP 6.91 s, 27 MB/s, 3.5× faster, 12.0M gas\n"
                   "mean ± 95 % CI\n`bench 10 s` in code\n"
                   "## References\n1. Bell et al. 2020, 10 s\n")
    got = [(n, u) for _, n, u, _ in figures(doc)]
    assert got == [("6.34", "s"), ("6.91", "s"), ("27", "MB/s"), ("3.5", "×"), ("12.0", "M gas")]
    values = [6.3412, 12_040_000.0, 3.49]
    assert _backed("6.34", "s", values) and not _backed("6.91", "s", values)
    assert _backed("12.0", "M gas", values) and _backed("3.5", "×", values)
    assert not _backed("27", "MB/s", values)


def test_a_figure_counts_only_against_the_output_its_section_cites(tmp_path) -> None:
    """A number held by some JSON that its section does not cite is not
    backed: "n": 10 in gas.json must not back a setting of 10 s elsewhere."""
    doc = tmp_path / "d.md"
    doc.write_text("# Gas\nFrom `fedledger bench gas`: commit 71,231 gas.\n"
                   "# Retries\nbackoff ≤ 10 s; commit 71,231 gas\n"
                   "# Soak\nsee benchmarks/out/soak.json: 10 s\n")
    outputs = {"gas.json": {"command": "fedledger bench gas --sizes 10", "n": 10, "commit": 71231},
               "soak.json": {"command": "fedledger bench soak", "seconds": 10.0}}
    got = [(i, n, u, _backed(n, u, cited_values(sec, outputs)))
           for i, n, u, _, sec in _figures_in_sections(doc)]
    assert got == [(2, "71,231", "gas", True), (4, "10", "s", False), (4, "71,231", "gas", False),
                   (6, "10", "s", True)]


def test_the_gas_table_in_the_threat_model_is_gas_json() -> None:
    """Every row of docs/threat-model.md's gas table, cell by cell, from
    benchmarks/out/gas.json (the table has no units, so the figure check
    does not see it)."""
    data = json.loads((OUT / "gas.json").read_text())
    text = (ROOT / "docs" / "threat-model.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| \d+( \(\d+ dropped, \d+ seeds\))? \|", line)]
    want = []
    for r in data["rows"]:
        label = f"{r['n']}" if r["dropped"] == 1 else f"{r['n']} ({r['dropped']} dropped, {r['seeds']} seeds)"
        cells = [r["open"], r["select"], r["commit"]["max"], r["post_result"], r["finalize"], r["chunk_proof"],
                 r["chunk_proof_wrong_adapter"], r["seed_proof_pair"], r["dealer_fault_proof"],
                 r["bad_share_proof"]]
        want.append("| " + " | ".join([label, *(f"{c:,}" for c in cells)]) + " |")
    assert rows == want
    assert data["targets"]["ok"] is True and data["targets"]["commit_max"] <= 80_000


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_figure_with_a_unit_is_in_committed_benchmark_output(doc: Path) -> None:
    # keyed by path: several outputs share a file name (every compare.json)
    outputs = {str(p.relative_to(OUT)): json.loads(p.read_text()) for p in committed_json()}
    unbacked = [(i, num, unit, line) for i, num, unit, line, section in _figures_in_sections(doc)
                if not _backed(num, unit, cited_values(section, outputs))
                and (doc.name, num, unit) not in SETTINGS]
    missing = [f"{doc.name}:{i}: {num} {unit} — {line[:100]}"
               for i, num, unit, line in unbacked if (doc.name, num, unit) not in PENDING]
    stale = {(f, n, u) for f, n, u in PENDING | SETTINGS if f == doc.name} - {
        (doc.name, n, u) for _, n, u, _ in figures(doc)}
    stale |= {(f, n, u) for f, n, u in PENDING if f == doc.name} - {
        (doc.name, n, u) for _, n, u, _ in unbacked}
    assert not stale, f"PENDING entries that are no longer needed: {sorted(stale)}"
    assert not missing, ("figures that no committed JSON under benchmarks/out/ holds "
                         "(regenerate it, cite it on the line, or remove the figure):\n"
                         + "\n".join(missing))


def test_every_committed_benchmark_names_its_command_and_computes_its_targets() -> None:
    files = committed_json()
    assert files, "no benchmark JSON is committed under benchmarks/out/"
    for p in files:
        data = json.loads(p.read_text())
        assert isinstance(data.get("command"), str) and data["command"].startswith("fedledger bench"), p
        targets = data.get("targets")
        if isinstance(targets, list):  # bench compare: one computed verdict per target
            assert targets and all(isinstance(t.get("met"), bool) for t in targets), p.name
        elif targets is not None:
            assert isinstance(targets.get("ok"), bool), f"{p.name}: targets has no computed ok"


def test_confidence_intervals_use_students_t_for_the_number_of_seeds() -> None:
    from benchmarks.compare import ci95_half_width

    assert ci95_half_width(1.0, 3) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert ci95_half_width(2.0, 10) == pytest.approx(2 * 2.262157 / math.sqrt(10), rel=1e-6)
    assert ci95_half_width(1.0, 1) == 0.0
