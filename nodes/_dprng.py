"""Secret DP randomness: Opacus' Gaussian noise and Poisson sampling drawn
from ChaCha20 keyed by a per-round secret (DESIGN §5, "DP randomness is
secret").

``torchcsprng`` — what Opacus' own ``secure_mode`` needs — is not
installable here, and a ``torch.Generator`` is a Mersenne Twister whatever
its seed: its outputs are linear in its state, so it is not a CSPRNG. We
draw every random bit the DP guarantee rests on from ChaCha20
(pycryptodome's C implementation) under a 256-bit key:

* **Poisson sampling.** :class:`SecretPoissonSampler` includes each example
  in a step's batch iff its uniform draw is below q — the same batches
  Opacus' ``UniformWithReplacementSampler`` forms, from a different source.
* **Gaussian noise.** :class:`SecretNoise` is handed to Opacus as its
  ``noise_generator``; a dispatcher installed once in front of Opacus'
  ``_generate_noise`` (flat and adaptive-clipping optimizers) sends it here
  and leaves every other generator to Opacus. Normals come from the
  Box–Muller transform of 53-bit uniforms in float64; each noise tensor is
  the sum of four independent N(0, σ²) draws halved (Holohan & Braghin 2021,
  §5.1, what Opacus' secure mode does), rounded once to the parameter's
  dtype. See docs/decisions.md, "Secret DP randomness", for what this does
  and does not protect against (incl. floating-point attacks).

The key never leaves this module in a log line or an error. Each use draws
from its own stream (a distinct key derived with SHA-256 under a purpose
label), so the noise of step s never depends on how many examples were
sampled before it — a resumed round draws exactly the same bytes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where noise is drawn: subkey() serves
    import torch  # the synthetic learner too, whose daemon imports no torch

_DOMAIN = b"fedledger.dp-rng.v1"


def subkey(key: bytes, purpose: str) -> bytes:
    """A 256-bit key for one use of ``key`` (domain-separated by ``purpose``)."""
    if len(key) != 32:
        raise ValueError("a DP randomness key is 32 bytes")
    return hashlib.sha256(_DOMAIN + b"|" + purpose.encode() + b"|" + key).digest()


class SecretStream:
    """A ChaCha20 keystream read as uniforms and normals."""

    def __init__(self, key: bytes, purpose: str) -> None:
        from Crypto.Cipher import ChaCha20

        self._cipher = ChaCha20.new(key=subkey(key, purpose), nonce=bytes(12))

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return "SecretStream(<secret>)"

    def uint64(self, n: int) -> np.ndarray:
        return np.frombuffer(self._cipher.encrypt(bytes(8 * n)), dtype="<u8")

    def uniform(self, n: int) -> np.ndarray:
        """``n`` float64 uniforms in the open interval (0, 1), on a 2^-53 grid."""
        return ((self.uint64(n) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53

    def normal(self, n: int) -> np.ndarray:
        """``n`` standard normals (Box–Muller over 53-bit uniforms, float64)."""
        m = (n + 1) // 2
        u = self.uniform(2 * m)
        r = np.sqrt(-2.0 * np.log(u[:m]))
        theta = 2.0 * math.pi * u[m:]
        return np.concatenate([r * np.cos(theta), r * np.sin(theta)])[:n]


class SecretNoise:
    """Opacus' ``noise_generator`` in secure mode: Gaussian noise from ChaCha20."""

    def __init__(self, key: bytes) -> None:
        self._stream = SecretStream(key, "noise")
        self.draws = 0

    def __repr__(self) -> str:
        return "SecretNoise(<secret>)"

    def gaussian(self, std: float, reference: torch.Tensor) -> torch.Tensor:
        import torch

        if std == 0:
            return torch.zeros(reference.shape, device=reference.device, dtype=reference.dtype)
        n = int(reference.numel())
        z = self._stream.normal(4 * n).reshape(4, n).sum(axis=0) / 2.0  # N(0, 1), four draws
        self.draws += 1
        out = torch.from_numpy(z * float(std)).to(dtype=reference.dtype, device=reference.device)
        return out.reshape(reference.shape)


class SecretPoissonSampler:
    """Poisson sampling at rate q, ``steps`` batches, from ChaCha20: a drop-in
    for Opacus' ``UniformWithReplacementSampler`` (same ``len``, same batches
    semantics, empty batches allowed)."""

    def __init__(self, *, num_samples: int, sample_rate: float, key: bytes,
                 steps: int | None = None) -> None:
        if num_samples < 1 or not 0 < sample_rate <= 1:
            raise ValueError(f"cannot Poisson-sample {num_samples} examples at rate {sample_rate}")
        self.num_samples = num_samples
        self.sample_rate = sample_rate
        self.steps = steps if steps is not None else int(1 / sample_rate)
        self._stream = SecretStream(key, "sampling")

    def __repr__(self) -> str:
        return f"SecretPoissonSampler(n={self.num_samples}, q={self.sample_rate})"

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps):
            mask = self._stream.uniform(self.num_samples) < self.sample_rate
            yield np.flatnonzero(mask).tolist()


def secret_loader(dataset: Any, *, sample_rate: float, key: bytes) -> Any:
    """A DataLoader with Poisson batches from :class:`SecretPoissonSampler`
    and Opacus' handling of empty batches (as ``DPDataLoader`` builds it)."""
    from opacus.data_loader import dtype_safe, shape_safe, wrap_collate_with_empty
    from torch.utils.data import DataLoader
    from torch.utils.data.dataloader import default_collate

    sampler = SecretPoissonSampler(num_samples=len(dataset), sample_rate=sample_rate, key=key)
    collate = wrap_collate_with_empty(collate_fn=default_collate, batch_first=True,
                                      sample_empty_shapes=[(0, *shape_safe(x)) for x in dataset[0]],
                                      dtypes=[dtype_safe(x) for x in dataset[0]])
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)


_installed = False


def install() -> None:
    """Route Opacus' noise draws for a :class:`SecretNoise` generator to it
    (idempotent; every other generator still goes to Opacus unchanged)."""
    global _installed
    if _installed:
        return
    from opacus.optimizers import adaclipoptimizer, optimizer

    original = optimizer._generate_noise

    def generate_noise(std: float, reference: torch.Tensor, generator: Any = None,
                       secure_mode: bool = False) -> torch.Tensor:
        if isinstance(generator, SecretNoise):
            return generator.gaussian(std, reference)
        return original(std=std, reference=reference, generator=generator,
                        secure_mode=secure_mode)

    optimizer._generate_noise = generate_noise
    adaclipoptimizer._generate_noise = generate_noise
    _installed = True


def torch_seed(key: bytes) -> int:
    """A 63-bit seed for torch's own generator (dropout and the like — not
    the DP noise or sampling) derived from the secret key."""
    return int.from_bytes(subkey(key, "torch")[:8], "big") >> 1
