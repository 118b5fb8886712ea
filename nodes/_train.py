"""One local round of DP-SGD with Opacus (Poisson sampling, per-sample
clipping, Gaussian noise), and its privacy accounting.

The DP configuration a round costs — (q, σ, steps) and its RDP vector — comes
from :func:`coordinator.privacy._privacy.dp_config`, the same function the governor
uses to register configurations on the privacy ledger.

Privacy-aware clipping (``clipping="adaptive"``): the clipping bound follows
a target quantile of per-sample gradient norms (Andrew et al. 2021, Opacus'
AdaClip optimizer). Estimating the quantile spends privacy through a noisy
count with std ``unclipped_num_std``; we account for it by charging the
round at the effective noise multiplier σ_eff = (σ⁻² + (2·σ_b)⁻²)^(−1/2)
(Andrew et al., Thm. 1), which is smaller than σ, so ε is larger.
"""

from __future__ import annotations

import functools

import math
import time
import warnings
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from coordinator import ConfigError
from coordinator.privacy._privacy import DPConfig, dp_config, opacus_epsilon, rdp_epsilon

from ._data import Examples
from ._model import MultimodalModel, trainable


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Local training options; DP parameters are keyword-only and validated."""

    epochs: int = 1
    batch_size: int = 32
    lr: float = 3e-3
    dp: bool = True
    noise_multiplier: float | None = 1.0
    target_epsilon: float | None = None
    delta: float = 1e-5
    max_grad_norm: float = 3.0  # above typical per-sample norms here: see docs/decisions.md
    clipping: str = "flat"
    optimizer: str = "adam"  # or "sgd": plain DP-SGD, the step of the distributed record mode
    target_unclipped_quantile: float = 0.5
    clipbound_learning_rate: float = 0.2
    unclipped_num_std: float = 10.0
    config_id: int = 1
    secure_rng: bool = False
    seed: int = 0
    # A federation fixes the DP configuration (q, σ, T) on-chain for every
    # peer of a round, whatever its data size: these override batch_size/epochs.
    sample_rate: float | None = None
    steps: int | None = None
    # Non-private training only: per-class loss weights (the pooled reference
    # of bench compare). DP training weighs records after clipping instead
    # (nodes._distributed.record_sum), where the weights cannot undo the clip.
    class_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "lr", "noise_multiplier", "target_epsilon", "delta",
                     "max_grad_norm", "target_unclipped_quantile", "clipbound_learning_rate",
                     "unclipped_num_std", "config_id", "seed", "sample_rate", "steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{name}={value!r} must be a number")
        if self.epochs < 1:
            raise ConfigError(f"epochs={self.epochs} must be at least 1")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be at least 1")
        if not self.lr > 0:
            raise ConfigError(f"lr={self.lr} must be positive")
        if self.sample_rate is not None and not 0 < self.sample_rate <= 1:
            raise ConfigError(f"sample_rate={self.sample_rate} must be in (0, 1]")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ConfigError(f"steps={self.steps!r} must be a positive integer")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"optimizer={self.optimizer!r} must be 'adam' or 'sgd'")
        if self.clipping not in ("flat", "adaptive"):
            raise ConfigError(f"clipping={self.clipping!r} must be 'flat' or 'adaptive'")
        if self.class_weights is not None and (self.dp or not all(
                isinstance(w, (int, float)) and 0 < w <= 1 for w in self.class_weights)):
            raise ConfigError("class_weights are for non-private training, each in (0, 1]")
        if not self.dp:
            return
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ConfigError("give exactly one of noise_multiplier and target_epsilon")
        if self.noise_multiplier is not None and self.noise_multiplier < 0:
            raise ConfigError(f"noise_multiplier={self.noise_multiplier} must be ≥ 0")
        if self.target_epsilon is not None and not self.target_epsilon > 0:
            raise ConfigError(f"target_epsilon={self.target_epsilon} must be positive")
        if not 0 < self.delta < 1:
            raise ConfigError(f"delta={self.delta} must be in (0, 1)")
        if not self.max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm={self.max_grad_norm} must be positive")
        if self.clipping == "adaptive" and not self.unclipped_num_std > 0:
            raise ConfigError("unclipped_num_std must be positive for adaptive clipping")


@dataclass(frozen=True)
class TrainResult:
    examples: int
    steps: int
    seconds: float
    loss: float
    sample_rate: float
    noise_multiplier: float
    effective_noise_multiplier: float
    epsilon_rdp: float
    epsilon_prv: float
    epsilon_accountant: float  # what Opacus' own RDP accountant says for the steps taken
    delta: float
    dp_config: DPConfig | None
    losses: list[float] = field(default_factory=list)


_RNG_WARNED = False  # the insecure-RNG notice has been given in this process

def plan(n: int, cfg: TrainConfig) -> tuple[float, int, float, float]:
    """(q, steps, σ, σ_eff) of a round over ``n`` examples."""
    q = cfg.sample_rate if cfg.sample_rate is not None else min(1.0, cfg.batch_size / n)
    steps = cfg.steps if cfg.steps is not None else cfg.epochs * max(1, math.ceil(1 / q))
    if not cfg.dp:
        return q, steps, 0.0, 0.0
    if cfg.target_epsilon is not None:
        from opacus.accountants.utils import get_noise_multiplier

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sigma = float(get_noise_multiplier(target_epsilon=cfg.target_epsilon,
                                               target_delta=cfg.delta, sample_rate=q,
                                               steps=steps, accountant="rdp"))
        if cfg.clipping == "adaptive":  # the noisy count spends part of the budget
            sigma = 1 / math.sqrt(max(sigma**-2 - (2 * cfg.unclipped_num_std) ** -2, 1e-12))
    else:
        sigma = float(cfg.noise_multiplier or 0.0)
    eff = sigma
    if cfg.clipping == "adaptive" and sigma > 0:
        eff = (sigma**-2 + (2 * cfg.unclipped_num_std) ** -2) ** -0.5
    return q, steps, sigma, eff


def prv_epsilon(history: list[DPConfig], delta: float) -> float:
    """Opacus' PRV accountant's ε for ``history`` (memoised by value)."""
    return _prv_epsilon(tuple((c.sigma, c.q, c.steps) for c in history), delta)


@functools.lru_cache(maxsize=256)
def _prv_epsilon(history: tuple[tuple[float, float, int], ...], delta: float) -> float:
    from opacus.accountants import PRVAccountant

    acc = PRVAccountant()
    acc.history = list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(acc.get_epsilon(delta))


def accountant_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    """What Opacus' RDP accountant reports for its recorded ``history`` of
    (σ, q, steps), over the memoised RDP curves."""
    return rdp_epsilon(history, delta)


def train_local(model: MultimodalModel, data: Examples, *, cfg: TrainConfig,
                on_epoch: Callable[[int, float], None] | None = None,
                rng_key: bytes | None = None) -> TrainResult:
    """Train ``model`` in place for one local round; return what it cost.

    With ``cfg.secure_rng`` the Poisson sampling and the Gaussian noise come
    from ChaCha20 under ``rng_key`` (32 secret bytes; a fresh key from the OS
    CSPRNG when None), never from ``cfg.seed``: see :mod:`nodes._dprng`. The
    same key gives the byte-identical update (a resumed round)."""
    if len(data) < 2:
        raise ConfigError(f"a peer needs at least 2 training examples, got {len(data)}")
    secure = cfg.dp and cfg.secure_rng
    if secure:
        import secrets

        from . import _dprng

        key = rng_key if rng_key is not None else secrets.token_bytes(32)
        if len(key) != 32:
            raise ConfigError("the DP randomness key must be 32 bytes")
        _dprng.install()
        torch.manual_seed(_dprng.torch_seed(key))
    else:
        torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()  # Opacus refuses a module in eval mode (e.g. after an evaluation)
    tensors = model.encode(data)
    q, steps, sigma, eff = plan(len(data), cfg)
    loader: DataLoader[Any]
    if secure:  # Poisson sampling at exactly the accounted q, from the secret stream
        loader = _dprng.secret_loader(TensorDataset(*tensors), sample_rate=q, key=key)
    elif cfg.dp:  # Poisson sampling at exactly the q the round is accounted at
        from opacus.data_loader import DPDataLoader

        loader = DPDataLoader(TensorDataset(*tensors), sample_rate=q, generator=gen)
    else:
        loader = DataLoader(TensorDataset(*tensors), batch_size=cfg.batch_size, shuffle=True,
                            generator=gen)
    params = [p for _, p in trainable(model)]
    opt: torch.optim.Optimizer = (torch.optim.Adam(params, lr=cfg.lr) if cfg.optimizer == "adam"
                                  else torch.optim.SGD(params, lr=cfg.lr))
    net: nn.Module = model
    if cfg.dp:
        from opacus import PrivacyEngine

        global _RNG_WARNED
        if not secure and not _RNG_WARNED:  # once per process, not once per round
            _RNG_WARNED = True
            warnings.warn("DP noise comes from a non-cryptographic RNG seeded from public data "
                          "(secure_rng = false): fine for experiments; set [train] secure_rng = "
                          "true for production runs", stacklevel=2)
        with warnings.catch_warnings():
            # Opacus' secure_mode needs torchcsprng; ours draws from ChaCha20 instead.
            warnings.filterwarnings("ignore", message="Secure RNG turned off")
            engine = PrivacyEngine(accountant="rdp", secure_mode=False)
        noise_gen: Any = _dprng.SecretNoise(key) if secure else None  # None: torch's global RNG
        extra = {}
        if cfg.clipping == "adaptive":
            extra = dict(target_unclipped_quantile=cfg.target_unclipped_quantile,
                         clipbound_learning_rate=cfg.clipbound_learning_rate,
                         max_clipbound=10 * cfg.max_grad_norm,
                         min_clipbound=cfg.max_grad_norm / 100,
                         unclipped_num_std=cfg.unclipped_num_std)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net, opt, loader = engine.make_private(
                module=model, optimizer=opt, data_loader=loader, noise_multiplier=sigma,
                max_grad_norm=cfg.max_grad_norm, poisson_sampling=False,
                grad_sample_mode="hooks", clipping=cfg.clipping, noise_generator=noise_gen,
                **extra)
        dp_engine = engine
        # Opacus averages by int(n·q), which is 0 when n·q < 1: p.grad / 0
        # made every parameter NaN for a peer with 2–3 examples at q = 0.25.
        # Dividing the noised sum by 1 instead changes the step size only; the
        # privacy is that of the noised sum, whatever it is divided by.
        if getattr(opt, "expected_batch_size", 1) < 1:
            opt.expected_batch_size = 1
    loss_fn = nn.CrossEntropyLoss(weight=None if cfg.class_weights is None else
                                  torch.tensor(cfg.class_weights, dtype=torch.float32))
    t0 = time.perf_counter()
    net.train()
    losses: list[float] = []
    taken = 0
    groups = 1 if cfg.steps is not None else cfg.epochs
    per_epoch = steps // groups
    for epoch in range(groups):
        total, count = 0.0, 0
        it = iter(loader)
        for _ in range(per_epoch):
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                batch = next(it)
            if batch[0].shape[0] == 0:  # an empty Poisson batch releases nothing
                continue
            opt.zero_grad()
            logits = net(*batch[:-1])
            loss = loss_fn(logits, batch[-1])
            with warnings.catch_warnings():  # Opacus' hooks on frozen-input modules
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            opt.step()
            taken += 1
            total += float(loss.detach()) * batch[0].shape[0]
            count += batch[0].shape[0]
        losses.append(total / max(count, 1))
        if on_epoch:
            on_epoch(epoch, losses[-1])
    eps_acc = math.inf
    if cfg.dp:
        if sigma > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                eps_acc = accountant_epsilon(list(dp_engine.accountant.history), cfg.delta)
        _strip_opacus(model)
    seconds = time.perf_counter() - t0
    cfg_dp = dp_config(config_id=cfg.config_id, q=q, sigma=eff, steps=steps) if cfg.dp and eff > 0 else None
    eps_rdp = opacus_epsilon([cfg_dp], cfg.delta) if cfg_dp else (math.inf if cfg.dp else math.inf)
    eps_prv = prv_epsilon([cfg_dp], cfg.delta) if cfg_dp else math.inf
    return TrainResult(len(data), taken, seconds, losses[-1], q, sigma, eff, eps_rdp, eps_prv,
                       eps_acc, cfg.delta, cfg_dp, losses)


def _strip_opacus(model: nn.Module) -> None:
    """Remove Opacus' per-sample-gradient hooks and buffers from ``model``,
    so the same model can be made private again (next round, next peer)."""
    handles = getattr(model, "autograd_grad_sample_hooks", None)
    if handles is not None:
        for h in handles:
            h.remove()
        del model.autograd_grad_sample_hooks
    for p in model.parameters():
        for attr in ("grad_sample", "_forward_counter", "summed_grad"):
            if hasattr(p, attr):
                delattr(p, attr)
    for m in model.modules():
        for attr in ("_forward_hooks", "_backward_hooks"):
            hooks = getattr(m, attr, None)
            if hooks:
                for k in [k for k, h in hooks.items() if "opacus" in getattr(h, "__module__", "")]:
                    del hooks[k]
        if hasattr(m, "_backward_pre_hooks"):
            for k in [k for k, h in m._backward_pre_hooks.items()
                      if "opacus" in getattr(h, "__module__", "")]:
                del m._backward_pre_hooks[k]


@torch.no_grad()
def class_proba(model: MultimodalModel, data: Examples, batch_size: int = 256) -> np.ndarray:
    """Class probabilities, shape (n, K)."""
    model.eval()
    tensors = model.encode(data)
    out = []
    for i in range(0, len(data), batch_size):
        logits = model(*[t[i:i + batch_size] for t in tensors[:-1]])
        out.append(torch.softmax(logits, -1).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.cfg.n_classes))


def predict_proba(model: MultimodalModel, data: Examples, batch_size: int = 256) -> np.ndarray:
    """P(class 1), shape (n,), for a binary model; the (n, K) matrix for K > 2."""
    p = class_proba(model, data, batch_size)
    return p[:, 1] if p.shape[1] == 2 else p


@torch.no_grad()
def per_example_loss(model: MultimodalModel, data: Examples) -> np.ndarray:
    """Cross-entropy of each example's true label (any number of classes)."""
    p = class_proba(model, data)
    return -np.log(np.clip(p[np.arange(len(data)), data.labels], 1e-7, 1.0))
