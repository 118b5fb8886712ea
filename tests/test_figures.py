"""Every published figure is backed by committed output.

A number with a unit in README.md or docs/*.md must appear (at its printed
precision) in a JSON file committed under benchmarks/out/ (the line names
which, with the command that wrote it), or sit in a "References" section.
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
    found = []
    in_refs = False
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("#"):
            in_refs = "reference" in line.lower()
        if in_refs or line.lstrip().startswith(("```", "$ ")):
            continue
        clean = DEFINITIONS.sub("", re.sub(r"`[^`]*`", "", line))
        for m in FIGURE.finditer(clean):
            found.append((i, m["num"], m["unit"], line.strip()))
    return found


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Known debt, visible here so it can only shrink: figures merged before this
# test whose output is not committed yet, as (file, number, unit). Commit the
# JSON (or remove the figure) and delete the entry; an entry that no longer
# matches any figure fails the test.
PENDING = {
    ("decisions.md", "0.15", "%"),  # an analytic ratio (√d term vs Δ2), not a measurement
    ("decisions.md", "68,969", "gas"),  # commit gas with the distributed-DP hook: rerun bench gas
    ("decisions.md", "1.15", "×"),  # bench distributed: time ratio vs local mode
    ("decisions.md", "1.01", "×"),  # bench distributed: gas ratio vs local mode
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


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_figure_with_a_unit_is_in_committed_benchmark_output(doc: Path) -> None:
    values: list[float] = []
    for p in committed_json():
        _numbers(json.loads(p.read_text()), values)
    found = figures(doc)
    missing = [f"{doc.name}:{i}: {num} {unit} — {line[:100]}"
               for i, num, unit, line in found
               if not _backed(num, unit, values) and (doc.name, num, unit) not in PENDING]
    stale = {(f, n, u) for f, n, u in PENDING if f == doc.name} - {
        (doc.name, n, u) for _, n, u, _ in found if not _backed(n, u, values)}
    assert not stale, f"PENDING entries that are no longer needed: {sorted(stale)}"
    assert not missing, ("figures that no committed JSON under benchmarks/out/ holds "
                         "(regenerate it, cite it on the line, or remove the figure):\n"
                         + "\n".join(missing))


# Known debt, as PENDING: committed output that does not yet name its command.
NO_COMMAND_YET = {"dp_rng.json"}  # issue 11's bench dp-rng: add "command" to its output


def test_every_committed_benchmark_names_its_command_and_computes_its_targets() -> None:
    files = committed_json()
    assert files, "no benchmark JSON is committed under benchmarks/out/"
    assert NO_COMMAND_YET <= {p.name for p in files}, "drop NO_COMMAND_YET entries that are gone"
    for p in files:
        data = json.loads(p.read_text())
        if p.name in NO_COMMAND_YET:
            assert "command" not in data, f"{p.name} names its command now: drop it from NO_COMMAND_YET"
            continue
        assert isinstance(data.get("command"), str) and data["command"].startswith("fedledger bench"), p
        targets = data.get("targets")
        if targets is not None:
            assert isinstance(targets.get("ok"), bool), f"{p.name}: targets has no computed ok"


def test_confidence_intervals_use_students_t_for_the_number_of_seeds() -> None:
    from benchmarks.compare import ci95_half_width

    assert ci95_half_width(1.0, 3) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert ci95_half_width(2.0, 10) == pytest.approx(2 * 2.262157 / math.sqrt(10), rel=1e-6)
    assert ci95_half_width(1.0, 1) == 0.0
