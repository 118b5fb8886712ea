"""The user level's local step (docs/decisions.md "User level: its own local
step"): a diverged local training never reaches the encoding as NaN, the
``user_lr`` knob reaches the arm, and adding it left every committed seed of
both comparisons loadable under ``--resume``."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks.compare import MECHANISM, CompareConfig, _seed_key, load_seed, user_lr
from coordinator.privacy import _noise as nz

ROOT = Path(__file__).resolve().parents[1]


def _user_contribution(lr: float) -> tuple[np.ndarray, dict[str, float], float]:
    from nodes._data import generate
    from nodes._distributed import contribution
    from nodes._model import ModelConfig, build_model, get_flat
    from nodes._train import TrainConfig

    model = build_model(ModelConfig(lora_r=0, head="mlp", seed=0))
    start = get_flat(model)
    clip = 1.0
    cfg = nz.distributed_config(config_id=2, mode=nz.DPMode.DISTRIBUTED_USER, q=1.0, clip=clip,
                                frac_bits=16, dim=len(start), sigma=3.0, k=1, floor_m=2)
    v, weight, metrics = contribution(model, generate(96, seed=3), start, cfg=cfg, clip=clip,
                                      train=TrainConfig(lr=lr, epochs=1, optimizer="sgd"))
    assert weight == 1
    return v, metrics, clip


def test_diverged_local_training_contributes_zeros_never_nan() -> None:
    v, metrics, _ = _user_contribution(1e12)  # plain SGD at an absurd step: inf/NaN weights
    assert not np.isfinite(metrics["update_norm"]) and metrics["diverged"] == 1.0
    assert np.all(v == 0)
    v, metrics, clip = _user_contribution(0.1)  # the synthetic recipe's step
    assert metrics["diverged"] == 0.0 and np.isfinite(v).all()
    assert 0 < np.linalg.norm(v) <= clip * (1 + 1e-9)


def _toml(name: str) -> dict:
    raw = tomllib.loads((ROOT / "benchmarks" / name).read_text())["compare"]
    return {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}


def test_user_lr_left_unset_is_not_part_of_the_seed_key() -> None:
    assert user_lr(CompareConfig()) == CompareConfig().lr
    assert '"user_lr"' not in _seed_key(CompareConfig())
    assert user_lr(CompareConfig(user_lr=0.1)) == 0.1
    assert '"user_lr": 0.1' in _seed_key(CompareConfig(user_lr=0.1))
    assert _seed_key(CompareConfig(user_lr=0.1)) != _seed_key(CompareConfig())


@pytest.mark.parametrize("toml,out,drop", [
    ("compare-rotten-tomatoes.toml", "compare-rotten-tomatoes", ("ref-features-lr",)),
    ("compare-synthetic.toml", "compare-synthetic", ()),
    ("compare-synthetic-user.toml", "compare-synthetic-user", ()),
])
def test_only_seeds_of_todays_mechanism_load_under_resume(tmp_path: Path, toml: str, out: str,
                                                          drop: tuple[str, ...]) -> None:
    """The seed key is the configuration and the mechanism (MECHANISM): every
    committed seed was made after the distributed arms' start fix
    (docs/decisions.md "User level: its own local step") and loads under the
    documented command, while the same file stamped with the mechanism before
    the fix is refused, so a `--resume` reruns it instead of reusing invalid rows."""
    cfg = CompareConfig(**_toml(toml))
    cfg = replace(cfg, arms=tuple(a for a in cfg.arms if a not in drop))  # as run() skips them
    seeds_dir = ROOT / "benchmarks" / "out" / out / "seeds"
    committed = sorted(int(p.stem.split("-")[1]) for p in seeds_dir.glob("seed-*.json"))
    assert committed, out
    stale = tmp_path / "seeds"
    stale.mkdir()
    for seed in committed:
        assert load_seed(ROOT / "benchmarks" / "out" / out, cfg, seed) is not None, (toml, seed)
        data = json.loads((seeds_dir / f"seed-{seed}.json").read_text())
        data["config"]["mechanism"] = MECHANISM - 1
        (stale / f"seed-{seed}.json").write_text(json.dumps(data))
        assert load_seed(tmp_path, cfg, seed) is None, (toml, seed)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("arm", ["fedledger-distributed-record", "fedledger-distributed-user"])
def test_distributed_arms_start_from_the_seeds_start_not_the_arm_before(monkeypatch,
                                                                         arm: str) -> None:
    """The pooled arm (non-private, pooled data) runs before the distributed
    ones on the same model object; the federation must still start from the
    seed's initial weights. The real run_distributed is wrapped only to
    record the weights it is handed, then stopped (the arm's own cost)."""
    import nodes._inprocess as inproc
    from benchmarks.compare import load_dataset, run_seed
    from nodes._model import build_model, get_flat

    seen: list[np.ndarray] = []

    def spy(*, model, **kw):  # type: ignore[no-untyped-def]
        seen.append(get_flat(model).copy())
        raise _Stop

    monkeypatch.setattr(inproc, "run_distributed", spy)
    cfg = CompareConfig(peers=3, threshold=2, rounds=1, examples_per_peer=48, mia_examples=64,
                        record_rounds=2, seeds=(0,), arms=("pooled", arm))
    with pytest.raises(_Stop):
        run_seed(cfg, 0, lambda s: None)
    start = get_flat(build_model(load_dataset(cfg, 0).model))
    assert len(seen) == 1 and np.array_equal(seen[0], start)
