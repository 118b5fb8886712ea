"""The external baseline: the same secure-round workload through Flower's
SecAgg+ in deployment mode (a SuperLink and n SuperNodes on 127.0.0.1).

Flower runs in its own virtual environment (``.tools/flower-venv``, flwr and
numpy from PyPI, pinned) so its dependency pins (rich < 15, protobuf, grpc)
never touch ours. The app is ``benchmarks/flower_app``; its ServerApp times
one round of ``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))`` from
its first message to the aggregated result and writes the seconds to a file.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coordinator.ops._paths import project_root
from coordinator.ops._procs import ManagedProcess, free_port

FLWR_VERSION = "1.42.0"
APP = Path(__file__).resolve().parent / "flower_app"


def flower_venv() -> Path:
    """Create (once) the separate environment Flower runs in."""
    venv = project_root() / ".tools" / "flower-venv"
    marker = venv / f".flwr-{FLWR_VERSION}"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                        "--disable-pip-version-check", f"flwr=={FLWR_VERSION}", "numpy"],
                       check=True)
        marker.touch()
    return venv


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def flower_round(n: int, params: int, *, secure: bool = True,
                 log: Callable[[str], None] = print, timeout: float = 600) -> dict[str, Any]:
    t = n // 2 + 1
    result = flower_run(n, {"num-clients": n, "num-params": params, "reconstruction-threshold": t,
                            "secure": secure}, timeout=timeout)
    result["seconds"] = round(result["seconds"], 2)
    result["reconstruction_threshold"] = t
    log(f"n={n}: Flower {'SecAgg+' if secure else 'FedAvg (plain)'} round in "
        f"{result['seconds']:.1f} s")
    return result


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f"'{v}'"
    return str(v)


def flower_run(n: int, run_config: dict[str, Any], *, timeout: float = 600) -> dict[str, Any]:
    """Start a SuperLink and n SuperNodes on 127.0.0.1, run the app with this
    run config, and return what its ServerApp wrote."""
    venv = flower_venv()
    bin_ = venv / "bin"
    procs: list[ManagedProcess] = []
    with tempfile.TemporaryDirectory(prefix=f"fedledger-flower-{n}-") as tmp:
        root = Path(tmp)
        home = root / "flwr-home"
        home.mkdir()
        port = free_port()
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\n'
            f'address = "127.0.0.1:{port}"\ninsecure = true\n')
        env = {**os.environ, "FLWR_HOME": str(home),
               "PATH": f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}"}
        try:
            link = ManagedProcess("flower-superlink", [
                str(bin_ / "flower-superlink"), "--insecure", "--host", "127.0.0.1",
                "--port", str(port), "--disable-runtime-dependency-installation"],
                log_path=root / "superlink.log", env=env, cwd=root)
            procs.append(link)
            link.wait_ready(lambda: _port_open(port), timeout=60, what="its API port")
            for i in range(n):
                procs.append(ManagedProcess(f"flower-supernode-{i}", [
                    str(bin_ / "flower-supernode"), "--insecure", "--superlink",
                    f"127.0.0.1:{port}", "--port", str(free_port()),
                    "--node-config", f"partition-id={i}"],
                    log_path=root / f"supernode{i}.log", env=env, cwd=root))
            out = root / "result.json"
            cfg = {**run_config, "out-file": str(out)}
            run_cfg = " ".join(f"{k}={_toml_value(v)}" for k, v in cfg.items())
            t0 = time.perf_counter()
            proc = subprocess.run([str(bin_ / "flwr"), "run", str(APP), "bench",
                                   "--run-config", run_cfg], env=env, cwd=root,
                                  capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"flwr run failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
            while not out.exists():
                if time.perf_counter() - t0 > timeout:
                    tail = link.log_tail(30)
                    raise RuntimeError(f"the Flower run did not finish in {timeout:.0f} s:\n{tail}")
                time.sleep(0.2)
            time.sleep(0.1)
            result: dict[str, Any] = json.loads(out.read_text())
            result["wall_from_submit_s"] = round(time.perf_counter() - t0, 2)
            result["flwr"] = FLWR_VERSION
            return result
        finally:
            for p in reversed(procs):
                p.stop(timeout=5)
