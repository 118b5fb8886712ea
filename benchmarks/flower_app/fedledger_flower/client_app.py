"""ClientApp. Task "secagg": a fixed random update (no training), masked by
SecAgg+. Task "dp-linear": logistic regression on the peer's exported
behaviour + image-summary features, with Flower's client-side fixed clipping
(central DP: the server adds the noise)."""

import numpy as np
from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import fixedclipping_mod, secaggplus_mod
from flwr.common import Context


class UpdateClient(NumPyClient):
    def __init__(self, size: int, seed: int) -> None:
        self.update = np.random.default_rng(seed).normal(0, 1e-3, size).astype(np.float32)

    def fit(self, parameters, config):  # noqa: ANN001 - Flower's signature
        return [parameters[0] + self.update], 100, {}


class LinearClient(NumPyClient):
    """Binary logistic regression trained with full-batch gradient steps."""

    def __init__(self, path: str, steps: int, lr: float) -> None:
        d = np.load(path)
        self.x, self.y = d["x"], d["y"].astype(np.float64)
        self.steps, self.lr = steps, lr

    def fit(self, parameters, config):  # noqa: ANN001
        w = parameters[0].astype(np.float64).copy()
        xb = np.c_[self.x, np.ones(len(self.x))]
        for _ in range(self.steps):
            p = 1 / (1 + np.exp(-xb @ w))
            w -= self.lr * xb.T @ (p - self.y) / len(self.y)
        return [w.astype(np.float32)], len(self.y), {}


def client_fn(context: Context):  # noqa: ANN201
    cfg = context.run_config
    pid = int(context.node_config.get("partition-id", 0))
    if cfg.get("task", "secagg") == "dp-linear":
        return LinearClient(f"{cfg['data-dir']}/peer{pid}.npz", int(cfg["local-steps"]),
                            float(cfg["lr"])).to_client()
    return UpdateClient(int(cfg["num-params"]), pid).to_client()


def task_mod(msg, context, call_next):  # noqa: ANN001, ANN201
    """SecAgg+ for the secure-aggregation task, fixed clipping for the DP task."""
    if context.run_config.get("task", "secagg") == "dp-linear":
        return fixedclipping_mod(msg, context, call_next)
    return secaggplus_mod(msg, context, call_next)


app = ClientApp(client_fn=client_fn, mods=[task_mod])
