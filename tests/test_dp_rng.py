"""Secret DP randomness (issue 11, item 1): Opacus' noise and Poisson
sampling come from ChaCha20 under a per-round secret, never from public
data; the same secret reproduces the byte-identical update (crash-resume)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nodes import _dprng
from nodes._data import partition
from nodes._model import ModelConfig, build_model, get_flat, set_flat
from nodes._train import TrainConfig, train_local

torch.set_num_threads(1)
KEY_A, KEY_B = bytes(range(32)), bytes(range(1, 33))


def _train(cfg: TrainConfig, key: bytes | None, start: np.ndarray | None = None) -> np.ndarray:
    model = build_model(ModelConfig(encoder="tiny", seed=0))
    if start is not None:
        set_flat(model, start)
    data = partition(2, examples_per_peer=40, seed=3)[0].train
    train_local(model, data, cfg=cfg, rng_key=key)
    return get_flat(model)


def test_secure_rng_trains_with_the_installed_packages() -> None:
    # Old main: secure_rng = true raised ImportError (torchcsprng is not installable).
    cfg = TrainConfig(secure_rng=True, sample_rate=0.25, steps=3, lr=1e-2)
    a1, a2 = _train(cfg, KEY_A), _train(cfg, KEY_A)
    b = _train(cfg, KEY_B)
    assert a1.tobytes() == a2.tobytes(), "the same secret must give the byte-identical update"
    assert not np.array_equal(a1, b), "another secret must give other noise"


def test_secure_noise_is_not_the_noise_of_the_public_seed() -> None:
    """The attack of issue 11: train on dummy data with the public seed and
    the peer's parameters, and subtract the noise. With a secret key the
    attacker's noise is unrelated to the peer's."""
    start = get_flat(build_model(ModelConfig(encoder="tiny", seed=0)))
    base = dict(sample_rate=1.0, steps=1, lr=1e-2, noise_multiplier=5.0, seed=7)
    # The attacker knows everything public: same start, same data size, same seed.
    attacker = _train(TrainConfig(**base, secure_rng=False), None, start)
    peer_insecure = _train(TrainConfig(**base, secure_rng=False), None, start)
    peer_secure = _train(TrainConfig(**base, secure_rng=True), KEY_A, start)
    assert attacker.tobytes() == peer_insecure.tobytes()  # the old, predictable mode
    assert not np.allclose(attacker, peer_secure, atol=1e-6)


def test_secret_stream_normals_and_uniforms_have_the_right_law() -> None:
    from scipy import stats

    s = _dprng.SecretStream(KEY_A, "test")
    u = s.uniform(200_000)
    assert u.min() > 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    z = s.normal(200_001)
    assert len(z) == 200_001
    assert stats.kstest(z, "norm").pvalue > 1e-4
    noise = _dprng.SecretNoise(KEY_A).gaussian(3.0, torch.zeros(100_000))
    assert noise.dtype == torch.float32
    assert abs(float(noise.std()) - 3.0) < 0.05 and abs(float(noise.mean())) < 0.05
    # Streams are keyed and domain-separated.
    assert not np.array_equal(_dprng.SecretStream(KEY_A, "a").uint64(4),
                              _dprng.SecretStream(KEY_A, "b").uint64(4))
    assert np.array_equal(_dprng.SecretStream(KEY_A, "a").uint64(4),
                          _dprng.SecretStream(KEY_A, "a").uint64(4))
    assert "SecretStream(<secret>)" == repr(s) and KEY_A.hex() not in repr(s)


def test_secret_poisson_sampler_samples_at_rate_q() -> None:
    sampler = _dprng.SecretPoissonSampler(num_samples=1000, sample_rate=0.1, key=KEY_A, steps=50)
    sizes = [len(b) for b in sampler]
    assert len(sizes) == 50 == len(sampler)
    assert 90 < np.mean(sizes) < 110
    assert all(0 <= i < 1000 for b in _dprng.SecretPoissonSampler(
        num_samples=1000, sample_rate=0.1, key=KEY_A, steps=2) for i in b)


def test_node_run_refuses_predictable_dp_randomness(tmp_path: Path) -> None:
    cfg = tmp_path / "peer.toml"
    cfg.write_text("[train]\nsecure_rng = false\n")
    proc = subprocess.run([sys.executable, "-m", "coordinator.cli", "node", "run", "--config",
                           str(cfg)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "predictable" in lines[0] and "--insecure-dp-rng" in lines[0]


def test_insecure_dp_rng_flag_is_accepted_with_a_visible_note(tmp_path: Path) -> None:
    cfg = tmp_path / "peer.toml"
    cfg.write_text("[train]\nsecure_rng = false\n")  # no passphrase: the next check fails
    proc = subprocess.run([sys.executable, "-m", "coordinator.cli", "node", "run", "--config",
                           str(cfg), "--insecure-dp-rng"], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in __import__("os").environ.items()
                                            if k != "FEDLEDGER_PASSPHRASE"})
    assert "INSECURE" in proc.stderr and "predictable" not in proc.stderr
    assert proc.returncode == 2 and "passphrase" in proc.stderr.splitlines()[-1]
