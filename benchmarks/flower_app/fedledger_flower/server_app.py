"""ServerApp: one FedAvg round through SecAggPlusWorkflow (or plain), timed."""

import json
import time

import numpy as np
from flwr.common import Context, ndarrays_to_parameters
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    n, size = int(cfg["num-clients"]), int(cfg["num-params"])
    strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n,
                      min_available_clients=n,
                      initial_parameters=ndarrays_to_parameters([np.zeros(size, np.float32)]))
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=1), strategy=strategy)
    fit = (SecAggPlusWorkflow(num_shares=1.0,  # every client shares with all: as ours at n <= 20
                              reconstruction_threshold=int(cfg["reconstruction-threshold"]))
           if cfg["secure"] else None)
    workflow = DefaultWorkflow(fit_workflow=fit)
    while len(list(grid.get_node_ids())) < n:  # wait for every SuperNode to connect
        time.sleep(0.2)
    t0 = time.perf_counter()
    workflow(grid, legacy)
    seconds = time.perf_counter() - t0
    if cfg["out-file"]:
        with open(str(cfg["out-file"]), "w") as f:
            json.dump({"seconds": seconds, "n": n, "parameters": size,
                       "secure": bool(cfg["secure"])}, f)
