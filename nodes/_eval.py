"""Utility metrics and membership-inference attacks against a model.

* Utility: accuracy, macro-F1 and AUC-ROC (scikit-learn).
* Loss-threshold attack (Yeom et al. 2018): score = −loss; members have
  lower loss.
* Offline LiRA (Carlini et al. 2022): shadow models trained on random halves
  of a population that excludes the targets; for each target, fit a Gaussian
  to the shadow models' logit-scaled confidence on it and score the target
  model's confidence by how far it sits in the upper tail.
Both report AUC and TPR at 0.1 % FPR (``tpr_at_fpr``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score, roc_curve

from ._data import Examples


def utility(labels: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 and AUC. ``proba`` is P(class 1) of shape (n,) for
    a binary task, or the (n, K) class probabilities; for K > 2 the AUC is
    the macro one-vs-rest AUC over the classes present in ``labels`` (NaN if
    fewer than two are)."""
    proba = np.asarray(proba, np.float64)
    labels = np.asarray(labels)
    if proba.ndim == 2 and proba.shape[1] == 2:
        proba = proba[:, 1]
    if proba.ndim == 1:
        pred = (proba >= 0.5).astype(int)
    else:
        pred = proba.argmax(1)
    out = {"accuracy": float(accuracy_score(labels, pred)),
           "macro_f1": float(f1_score(labels, pred, average="macro", zero_division=0))}
    present = np.unique(labels)
    if len(present) < 2:
        out["auc"] = math.nan
    elif proba.ndim == 1:
        out["auc"] = float(roc_auc_score(labels, proba))
    else:  # one-vs-rest per present class, macro-averaged
        out["auc"] = float(np.mean([roc_auc_score(labels == c, proba[:, c]) for c in present]))
    return out


@dataclass(frozen=True)
class AttackResult:
    auc: float
    tpr_at_0_1_fpr: float
    fpr: np.ndarray
    tpr: np.ndarray


def attack_metrics(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> AttackResult:
    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    s = np.r_[member_scores, nonmember_scores]
    fpr, tpr, _ = roc_curve(y, s)
    return AttackResult(float(roc_auc_score(y, s)), tpr_at_fpr(fpr, tpr, 1e-3), fpr, tpr)


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    ok = fpr <= target
    return float(tpr[ok].max()) if ok.any() else 0.0


def loss_threshold_attack(member_loss: np.ndarray, nonmember_loss: np.ndarray) -> AttackResult:
    return attack_metrics(-member_loss, -nonmember_loss)


def _logit_conf(p_true: np.ndarray) -> np.ndarray:
    p = np.clip(p_true, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log(1 - p)


def lira_offline(target_conf: Callable[[Examples], np.ndarray],
                 shadow_confs: list[Callable[[Examples], np.ndarray]],
                 members: Examples, nonmembers: Examples) -> AttackResult:
    """``target_conf`` / ``shadow_confs`` give each example's probability of
    its true label. Shadows must not have trained on members or nonmembers."""
    def scores(ex: Examples) -> np.ndarray:
        obs = _logit_conf(target_conf(ex))
        sh = np.stack([_logit_conf(f(ex)) for f in shadow_confs])
        mu, sd = sh.mean(0), sh.std(0) + 1e-3
        from scipy.stats import norm

        return norm.logcdf(obs, mu, sd)  # high when the target is unusually confident
    return attack_metrics(scores(members), scores(nonmembers))
