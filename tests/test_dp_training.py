"""DP adapters on peers: model, Opacus DP-SGD, accounting, attacks (tiny models)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch

from coordinator import ConfigError
from nodes._data import DataFileError, FEATURES, generate, global_test, load_file, partition
from nodes._eval import loss_threshold_attack, utility
from nodes._model import ATTN_IMPL, ModelConfig, build_model, get_flat, parameter_count, set_flat, trainable
from nodes._train import TrainConfig, per_example_loss, predict_proba, train_local

torch.set_num_threads(1)


def test_flat_vector_round_trips_exactly() -> None:
    m = build_model(ModelConfig())
    v = get_flat(m)
    assert v.dtype == np.float32 and v.shape == (parameter_count(m),)
    w = np.random.default_rng(0).normal(size=v.shape).astype(np.float32)
    set_flat(m, w)
    assert np.array_equal(get_flat(m), w)
    names = [n for n, _ in trainable(m)]
    assert names == sorted(names) and any("lora_A" in n for n in names)
    # Only adapters and heads are trainable; the encoder's own weights are frozen.
    assert not any("lora" not in n and n.startswith("text_encoder") for n in names)
    with pytest.raises(ValueError):
        set_flat(m, w[:-1])


def test_noise_free_attention_equals_stock_eager_and_honours_padding() -> None:
    from transformers import BertConfig, BertModel

    ex = generate(5, seed=2)
    m = build_model(ModelConfig())
    tok = m.tokenizer(ex.texts, 24)
    assert (tok["attention_mask"] == 0).any(), "the batch must contain padding"
    enc = m.text_encoder
    assert enc.config._attn_implementation == ATTN_IMPL
    enc.train()
    ours = enc(**tok).last_hidden_state
    enc.set_attn_implementation("eager")
    stock = enc(**tok).last_hidden_state
    enc.set_attn_implementation(ATTN_IMPL)
    assert torch.equal(ours, stock)
    # If the mask were dropped, padded and unpadded runs would differ: check
    # one example alone (no padding beyond its own) matches its batched row.
    n = int(tok["attention_mask"][0].sum())
    alone = enc(input_ids=tok["input_ids"][:1, :n], attention_mask=tok["attention_mask"][:1, :n])
    assert torch.allclose(alone.last_hidden_state[0], ours[0, :n], atol=1e-5)
    m.set_attention_noise(0.3)
    noisy = enc(**tok).last_hidden_state
    assert not torch.allclose(noisy, stock)
    enc.eval()  # no noise outside training
    assert torch.allclose(enc(**tok).last_hidden_state, stock, atol=1e-6)


def test_reported_epsilon_equals_the_accountants() -> None:
    tr = generate(256, seed=1)
    r = train_local(build_model(ModelConfig()), tr,
                    cfg=TrainConfig(epochs=2, noise_multiplier=1.1, batch_size=32))
    assert r.steps == 16
    assert r.epsilon_rdp == pytest.approx(r.epsilon_accountant, rel=1e-9)
    assert 0 < r.epsilon_prv <= r.epsilon_rdp * 1.05
    assert r.dp_config is not None and r.dp_config.steps == 16
    assert r.dp_config.q == pytest.approx(32 / 256)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.floats(0.3, 4.0), st.floats(0.01, 1.0), st.integers(1, 50)),
                min_size=1, max_size=4), st.sampled_from([1e-5, 1e-6]))
def test_memoised_accounting_equals_opacus_accountant(history, delta) -> None:
    """The memoised RDP curves give exactly what Opacus' own RDP accountant
    gives for the same recorded history (what train_local reports)."""
    import warnings

    from opacus.accountants import RDPAccountant

    from nodes._train import accountant_epsilon

    acc = RDPAccountant()
    acc.history = list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = acc.get_epsilon(delta)
    assert accountant_epsilon(list(history), delta) == pytest.approx(want, rel=1e-12)
    assert accountant_epsilon(list(history), delta) == pytest.approx(want, rel=1e-12)  # cached


@pytest.mark.parametrize("n", [2, 3])
def test_a_peer_with_fewer_examples_than_one_expected_batch_trains_to_finite_values(n) -> None:
    """n·q < 1: Opacus' int(n·q) = 0 divided every gradient by zero (NaN
    model, three seeds of four on old main)."""
    for seed in range(3):
        model = build_model(ModelConfig(encoder="tiny", lora_r=0, seed=0))
        train_local(model, generate(n, seed=seed),
                    cfg=TrainConfig(lr=1e-2, sample_rate=0.25, steps=3, noise_multiplier=1.5,
                                    secure_rng=True, max_grad_norm=1.0))
        assert np.isfinite(get_flat(model)).all(), (n, seed)


def test_sigma_from_target_epsilon_hits_the_target() -> None:
    tr = generate(256, seed=1)
    r = train_local(build_model(ModelConfig()), tr,
                    cfg=TrainConfig(epochs=1, noise_multiplier=None, target_epsilon=3.0))
    assert r.epsilon_rdp <= 3.0 + 1e-6
    assert r.epsilon_rdp > 2.7


def test_adaptive_clipping_is_charged_at_the_effective_sigma() -> None:
    tr = generate(256, seed=1)
    flat = train_local(build_model(ModelConfig()), tr, cfg=TrainConfig(noise_multiplier=1.0))
    ada = train_local(build_model(ModelConfig()), tr,
                      cfg=TrainConfig(noise_multiplier=1.0, clipping="adaptive", unclipped_num_std=2.0))
    assert ada.effective_noise_multiplier < ada.noise_multiplier == 1.0
    assert ada.epsilon_rdp > flat.epsilon_rdp


def test_clipping_bounds_real_per_sample_gradients() -> None:
    from opacus import GradSampleModule

    m = build_model(ModelConfig())
    ex = generate(12, seed=3)
    t = m.encode(ex)
    gsm = GradSampleModule(m, batch_first=True, loss_reduction="sum")
    torch.nn.functional.cross_entropy(gsm(*t[:-1]), t[-1], reduction="sum").backward()
    per = torch.cat([p.grad_sample.reshape(12, -1) for _, p in trainable(m)], 1)
    # The per-sample gradients are real: each equals that example's own gradient.
    ref = build_model(ModelConfig())
    ref.load_state_dict(m.state_dict())
    torch.nn.functional.cross_entropy(ref(*[x[:1] for x in t[:-1]]), t[-1][:1]).backward()
    own = torch.cat([p.grad.reshape(-1) for _, p in trainable(ref)])
    assert torch.allclose(per[0], own, atol=1e-5)
    c = 0.5
    assert (per.norm(dim=1) > c).all(), "the test needs norms above the clip"
    clipped = per * torch.clamp(c / (per.norm(dim=1, keepdim=True) + 1e-6), max=1.0)
    assert (clipped.norm(dim=1) <= c + 1e-5).all()


def test_dp_with_noise_and_clipping_off_equals_plain_sgd_on_same_batches() -> None:
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    ex = generate(96, seed=4)
    a, b = build_model(ModelConfig()), build_model(ModelConfig())
    b.load_state_dict(a.state_dict())
    ta = a.encode(ex)
    batches = [tuple(x[i:i + 32] for x in ta) for i in range(0, 96, 32)]
    opt_b = torch.optim.SGD([p for _, p in trainable(b)], lr=0.1)
    for batch in batches:
        opt_b.zero_grad()
        torch.nn.functional.cross_entropy(b(*batch[:-1]), batch[-1]).backward()
        opt_b.step()
    opt_a = torch.optim.SGD([p for _, p in trainable(a)], lr=0.1)
    loader = DataLoader(TensorDataset(*ta), batch_size=32, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net, opt_a, loader = PrivacyEngine().make_private(
            module=a, optimizer=opt_a, data_loader=loader, noise_multiplier=0.0,
            max_grad_norm=1e9, poisson_sampling=False)
    for batch in loader:
        opt_a.zero_grad()
        torch.nn.functional.cross_entropy(net(*batch[:-1]), batch[-1]).backward()
        opt_a.step()
    assert np.allclose(get_flat(a), get_flat(b), atol=1e-6)


def test_a_model_learns_real_signal() -> None:
    tr, te = generate(1024, seed=1), global_test(512)
    m = build_model(ModelConfig())
    train_local(m, tr, cfg=TrainConfig(dp=False, epochs=4, batch_size=64))
    u = utility(te.labels, predict_proba(m, te))
    assert u["accuracy"] > 0.62 and u["auc"] > 0.68, u


def test_membership_inference_finds_overfit_members_but_not_private_ones() -> None:
    members, nonmembers = generate(48, seed=11), generate(48, seed=12)
    over = build_model(ModelConfig(hidden=64))
    train_local(over, members, cfg=TrainConfig(dp=False, epochs=60, batch_size=16, lr=1e-2))
    leaky = loss_threshold_attack(per_example_loss(over, members), per_example_loss(over, nonmembers))
    assert leaky.auc > 0.75, leaky.auc
    private = build_model(ModelConfig(hidden=64))
    train_local(private, members, cfg=TrainConfig(epochs=60, batch_size=16, lr=1e-2,
                                                  noise_multiplier=8.0))
    tight = loss_threshold_attack(per_example_loss(private, members),
                                  per_example_loss(private, nonmembers))
    assert abs(tight.auc - 0.5) < 0.15, tight.auc


def test_partitions_are_non_iid_with_missing_modalities() -> None:
    peers = partition(6, examples_per_peer=100, alpha=0.3, missing_text=[1], missing_image=[2])
    pos = [p.train.labels.mean() for p in peers]
    assert max(pos) - min(pos) > 0.3, pos
    sizes = [len(p.train) for p in peers]
    assert max(sizes) > 1.3 * min(sizes)
    assert not peers[1].train.has_text.any() and peers[1].train.has_image.all()
    assert not peers[2].train.has_image.any()
    assert generate(10, seed=5).texts == generate(10, seed=5).texts  # deterministic


def test_user_data_errors_name_file_line_and_problem(tmp_path) -> None:
    good = {"text": "nice mug", "label": 1, **{f: 1 for f in FEATURES}}
    f = tmp_path / "d.csv"
    rows = ["text,label," + ",".join(FEATURES),
            "nice mug,1," + ",".join("1" for _ in FEATURES),
            "bad,7," + ",".join("1" for _ in FEATURES)]
    f.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataFileError, match=r"d\.csv:3: label 7 is not 0 or 1"):
        load_file(f)
    j = tmp_path / "d.jsonl"
    import json

    j.write_text(json.dumps(good) + "\n" + json.dumps({**good, "views": "many"}) + "\n")
    with pytest.raises(DataFileError, match=r"d\.jsonl:2: feature views='many' is not a number"):
        load_file(j)
    j.write_text(json.dumps({**good, "image": "missing.npy"}) + "\n")
    with pytest.raises(DataFileError, match="cannot be read"):
        load_file(j)
    np.save(tmp_path / "img.npy", np.zeros((3, 16, 16), np.float32))
    j.write_text(json.dumps({**good, "image": "img.npy"}) + "\n" + json.dumps({**good, "text": ""}) + "\n")
    ex = load_file(j)
    assert len(ex) == 2 and ex.has_image.tolist() == [True, False] and ex.has_text.tolist() == [True, False]


@pytest.mark.parametrize("kwargs", [dict(noise_multiplier=-1.0), dict(max_grad_norm=0.0),
                                    dict(delta=1.5), dict(noise_multiplier=1.0, target_epsilon=2.0),
                                    dict(clipping="weird"), dict(epochs=0)])
def test_train_config_rejects_bad_dp_parameters(kwargs) -> None:
    with pytest.raises(ConfigError):
        TrainConfig(**kwargs)


def test_lira_shadow_attack_finds_members_of_an_overfit_model() -> None:
    from nodes._eval import lira_offline

    members, nonmembers = generate(40, seed=21), generate(40, seed=22)
    population = generate(160, seed=23)

    def fit(ex, seed):
        m = build_model(ModelConfig(hidden=64, seed=seed))
        train_local(m, ex, cfg=TrainConfig(dp=False, epochs=50, batch_size=16, lr=1e-2, seed=seed))
        return m

    def conf(model):
        def f(ex):
            p = predict_proba(model, ex)
            return np.where(ex.labels == 1, p, 1 - p)
        return f

    target = fit(members, 0)
    rng = np.random.default_rng(0)
    shadows = [conf(fit(population.subset(rng.choice(160, 80, replace=False)), s)) for s in (1, 2, 3, 4)]
    res = lira_offline(conf(target), shadows, members, nonmembers)
    assert res.auc > 0.7, res.auc
    assert 0.0 <= res.tpr_at_0_1_fpr <= 1.0


def test_node_train_cli_prints_metrics_and_epsilon(tmp_path) -> None:
    import json
    import subprocess
    import sys

    cfg = tmp_path / "peer.toml"
    cfg.write_text("[data]\npeers = 4\npeer = 1\nexamples_per_peer = 128\n[train]\nepochs = 2\n"
                   "noise_multiplier = 1.2\n")
    proc = subprocess.run([sys.executable, "-m", "coordinator.cli", "node", "train", "--config",
                           str(cfg), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["dp"] and out["epsilon_rdp"] > 0 and out["sigma"] == 1.2
    assert set(out["metrics"]) == {"global", "local"}
    cfg.write_text("[train]\nnoise_multiplier = -1\n")
    proc = subprocess.run([sys.executable, "-m", "coordinator.cli", "node", "train", "--config",
                           str(cfg)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "noise_multiplier=-1" in proc.stderr


def test_fusing_modalities_beats_any_single_one() -> None:
    from nodes._data import Examples
    from nodes._model import FEATURE_MEAN

    def only(ex: Examples, keep: str) -> Examples:
        feats = ex.features if keep in ("behaviour", "all") else np.tile(
            np.asarray(FEATURE_MEAN, np.float32), (len(ex), 1))
        out = ex.without(text=keep not in ("text", "all"), image=keep not in ("image", "all"))
        return Examples(out.texts, out.images, feats, out.labels, out.has_text, out.has_image)

    tr, te = generate(1536, seed=31), global_test(768, seed=5)
    acc = {}
    for keep in ("text", "image", "behaviour", "all"):
        m = build_model(ModelConfig())
        train_local(m, only(tr, keep), cfg=TrainConfig(dp=False, epochs=5, batch_size=64))
        acc[keep] = utility(te.labels, predict_proba(m, only(te, keep)))["accuracy"]
    assert acc["all"] > max(acc["text"], acc["image"], acc["behaviour"]) + 0.02, acc
    assert min(acc["text"], acc["image"], acc["behaviour"]) > 0.5, acc
