"""Policy validation and secrets defaults (issue 11, item 5)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from coordinator import ConfigError, connect
from coordinator.chain._contracts import (MIN_CHALLENGE_BLOCKS, Policy, check_policy,
                                          deploy_federation)
from nodes._daemon import settings_from
from nodes.cli import load_config


def test_threshold_one_is_refused_everywhere() -> None:
    # Old main deployed t = 1, where one share reveals a peer's secrets.
    for development in (True, False):
        with pytest.raises(ConfigError, match="below the minimum 2"):
            check_policy(Policy(participants=4, threshold=1), development=development)
    with connect("embedded") as chain, pytest.raises(ConfigError, match="below the minimum"):
        deploy_federation(chain, policy=Policy(participants=4, threshold=1))


def test_short_windows_and_minority_thresholds_are_refused_on_public_chains() -> None:
    short = Policy(participants=8, threshold=5, challenge_blocks=3)
    with pytest.raises(ConfigError, match="challenge window of 3 blocks"):
        check_policy(short, development=False)
    with pytest.raises(ConfigError, match="not a majority"):
        check_policy(Policy(participants=8, threshold=4), development=False)
    assert check_policy(Policy(participants=8, threshold=5), development=False) == []
    assert Policy().challenge_blocks >= MIN_CHALLENGE_BLOCKS
    check_policy(Policy(), development=False)  # the default is deployable anywhere


def test_majority_threshold_is_a_majority_of_every_neighbourhood() -> None:
    from coordinator.chain._contracts import majority_threshold
    from coordinator.protocol._secagg import degree

    for n in range(3, 300):
        t = majority_threshold(n)
        assert 2 * t > degree(n, t) + 1, n  # t of the k + 1 holders is a majority
        assert 2 * (t - 1) <= degree(n, t - 1) + 1, n  # and t − 1 is not


def test_development_chains_warn_loudly_instead() -> None:
    with pytest.warns(UserWarning, match="development chain only: challenge window"):
        weak = check_policy(Policy(participants=4, threshold=3, challenge_blocks=2),
                            development=True)
    assert len(weak) == 1
    with connect("embedded") as chain, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        deploy_federation(chain, policy=Policy(participants=4, threshold=2, challenge_blocks=2))
    assert any("not a majority" in str(w.message) for w in seen)


def _node_cfg(tmp_path: Path, **node: object) -> dict:
    cfg = load_config(None)
    cfg["node"].update({"account": -1, "keystore": "key.json", "passphrase_file": "pass",
                        **node})
    (tmp_path / "pass").write_text("state passphrase\n")
    return cfg


def test_keystore_passphrase_is_not_the_state_passphrase_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Old main: the keystore silently used the state's passphrase.
    monkeypatch.delenv("FEDLEDGER_KEYSTORE_PASSPHRASE", raising=False)
    with pytest.raises(ConfigError, match="keystore needs its own passphrase"):
        settings_from(_node_cfg(tmp_path), tmp_path)
    (tmp_path / "kpass").write_text("keystore passphrase\n")
    s = settings_from(_node_cfg(tmp_path, keystore_passphrase_file="kpass"), tmp_path)
    assert s.keystore_passphrase == "keystore passphrase"
    assert "keystore passphrase" not in repr(s)
    monkeypatch.setenv("FEDLEDGER_KEYSTORE_PASSPHRASE", "from env")
    assert settings_from(_node_cfg(tmp_path), tmp_path).keystore_passphrase == "from env"
    same = settings_from(_node_cfg(tmp_path, keystore_uses_state_passphrase=True), tmp_path)
    assert same.keystore_passphrase == "state passphrase"
