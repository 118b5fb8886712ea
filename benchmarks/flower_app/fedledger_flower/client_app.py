"""ClientApp: returns a fixed random update (no training), masked by SecAgg+."""

import numpy as np
from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.common import Context


class UpdateClient(NumPyClient):
    def __init__(self, size: int, seed: int) -> None:
        self.update = np.random.default_rng(seed).normal(0, 1e-3, size).astype(np.float32)

    def fit(self, parameters, config):  # noqa: ANN001 - Flower's signature
        return [parameters[0] + self.update], 100, {}


def client_fn(context: Context):  # noqa: ANN201
    size = int(context.run_config["num-params"])
    seed = int(context.node_config.get("partition-id", 0))
    return UpdateClient(size, seed).to_client()


app = ClientApp(client_fn=client_fn, mods=[secaggplus_mod])
plain_app = ClientApp(client_fn=client_fn)
