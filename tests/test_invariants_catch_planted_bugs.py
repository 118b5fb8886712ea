"""The Solidity invariant campaign can fail: each planted bug in the bond and
slash paths of FedRounds, compiled in a copy of the project, makes Hardhat's
invariant runner fail on the invariant that guards it.

The outcome is recorded here rather than in prose: if the handler stopped
reaching these paths (as it did when it posted an empty seed list that
FedRounds always refused), these tests would fail."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from coordinator.ops._paths import hardhat_cli, node_env, project_root

ROOT = project_root()

# (name, [(original, replacement)] in contracts/FedRounds.sol, invariant that must fail)
BUGS = {
    # The slashed part of a voided bond goes back to the aggregator instead
    # of the pool: value is conserved, only the ghost ledger of what each
    # account is owed sees it.
    "slashed bond credited to its aggregator": (
        [("slashedPool += res.bond - reward;", "withdrawable[res.aggregator] += res.bond - reward;")],
        "invariant_bondsCreditedOnlyWhenFinal"),
    # The bond is credited when the result is posted, not when the round is FINAL.
    "bond credited before FINAL": (
        [("emit ResultPosted(round,", "withdrawable[msg.sender] += msg.value;\n        emit ResultPosted(round,"),
         ("            globalAdapterRoot = res.resultRoot;\n            withdrawable[res.aggregator] += res.bond;\n",
          "            globalAdapterRoot = res.resultRoot;\n")],
        "invariant_bondsCreditedOnlyWhenFinal"),
    # postResult no longer checks the seed list (FraudProofs.checkSeedSet).
    "seed list not checked": (
        [("        IFraudProofs(fraudProofs).checkSeedSet(round, seeds);\n", "")],
        "invariant_wrongSeedListsRefused"),
}


RUNS = 32  # of the one guarding invariant; CI's campaign runs 128 of each


def _copy_project(work: Path) -> None:
    work.mkdir()
    for name in ("contracts", "package.json"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    (work / "node_modules").symlink_to(ROOT / "node_modules")
    cfg = (ROOT / "hardhat.config.js").read_text()
    cfg, n = re.subn(r"invariant: \{[^}]*\}", f"invariant: {{ runs: {RUNS}, depth: 120 }}", cfg)
    assert n == 1, "hardhat.config.js has no invariant settings to scale down"
    (work / "hardhat.config.js").write_text(cfg)


@pytest.mark.integration
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_invariant_campaign_catches_planted_bug(bug: str, tmp_path: Path) -> None:
    edits, invariant = BUGS[bug]
    work = tmp_path / "proj"
    _copy_project(work)
    src = work / "contracts/FedRounds.sol"
    text = src.read_text()
    for old, new in edits:
        assert text.count(old) == 1, f"planted bug {bug!r} no longer applies: {old!r}"
        text = text.replace(old, new)
    src.write_text(text)
    proc = subprocess.run(
        # Only the invariant that guards the bug: the others would run their
        # whole campaign for nothing (77 s instead of ~15 s for the seed list).
        [str(hardhat_cli()), "test", "solidity", "--grep", invariant,
         "contracts/test/Federation.t.sol"],
        cwd=work, env=node_env(), capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert "Compiled" in out or "Nothing to compile" in out or "Running Solidity tests" in out, out
    assert proc.returncode != 0, f"the campaign passed with the planted bug {bug!r}:\n{out}"
    failing = re.findall(r"^\s*\d+\) FederationInvariants#(\w+)", out, re.M)
    assert invariant in failing, f"{invariant} did not fail ({failing}):\n{out[-3000:]}"
