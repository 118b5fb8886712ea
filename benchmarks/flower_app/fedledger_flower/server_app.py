"""ServerApp. Task "secagg": one FedAvg round through SecAggPlusWorkflow,
timed. Task "dp-linear": FedAvg wrapped in Flower's
DifferentialPrivacyClientSideFixedClipping for several rounds; writes the
final weights and the seconds per round."""

import json
import time

import numpy as np
from flwr.common import Context, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

app = ServerApp()


class KeepLast(FedAvg):
    last = None

    def aggregate_fit(self, server_round, results, failures):  # noqa: ANN001, ANN201
        params, metrics = super().aggregate_fit(server_round, results, failures)
        if params is not None:
            KeepLast.last = parameters_to_ndarrays(params)[0]
        return params, metrics


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    n = int(cfg["num-clients"])
    dp = cfg.get("task", "secagg") == "dp-linear"
    size = int(cfg["num-params"])
    rounds = int(cfg.get("num-rounds", 1)) if dp else 1
    base = KeepLast(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n,
                    min_available_clients=n,
                    initial_parameters=ndarrays_to_parameters([np.zeros(size, np.float32)]))
    strategy = (DifferentialPrivacyClientSideFixedClipping(
        base, noise_multiplier=float(cfg["noise-multiplier"]),
        clipping_norm=float(cfg["clipping-norm"]), num_sampled_clients=n) if dp else base)
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds),
                           strategy=strategy)
    fit = None if dp else SecAggPlusWorkflow(
        num_shares=1.0,  # every client shares with all: as ours at n <= 20
        reconstruction_threshold=int(cfg["reconstruction-threshold"]))
    workflow = DefaultWorkflow(fit_workflow=fit)
    while len(list(grid.get_node_ids())) < n:  # wait for every SuperNode to connect
        time.sleep(0.2)
    t0 = time.perf_counter()
    workflow(grid, legacy)
    seconds = time.perf_counter() - t0
    if cfg["out-file"]:
        out = {"seconds": seconds, "n": n, "parameters": size, "secure": not dp, "rounds": rounds}
        if dp and KeepLast.last is not None:
            out["weights"] = [float(v) for v in KeepLast.last]
        with open(str(cfg["out-file"]), "w") as f:
            json.dump(out, f)
