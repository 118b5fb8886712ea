"""`fedledger node host`: peer daemons forked from one parent that imported
torch once (nodes/_host.py).

The forking parent runs in a subprocess of its own (pytest's process may have
threads, and the host refuses to fork from a threaded parent). Each child
here runs a small stand-in for the daemon (a fake for the mission's daemon:
it records what a forked daemon inherits) or, in the last test, the real
daemon against anvil and Kubo through `federation up`, whose default is now
the forked host.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

HOST = textwrap.dedent('''
    import json, os, random, secrets, sys, time
    from pathlib import Path
    import numpy as np
    import torch
    from nodes._host import host

    mode = sys.argv[1]
    configs = [Path(p) for p in sys.argv[2:]]
    real_fork, forks = os.fork, []

    def fork():
        """fork, failing the third time ("forkfail") or slowly ("slowfork")."""
        forks.append(1)
        if mode == "forkfail" and len(forks) == 3:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        if mode == "slowfork":
            time.sleep(0.4)
        return real_fork()

    os.fork = fork
    # The parent draws first: a child that kept the inherited state would repeat these.
    parent = {"random": random.random(), "np": float(np.random.rand()),
              "torch": float(torch.rand(1))}

    def run(config):
        """A stand-in for the daemon (a fake): records what it inherited."""
        out = {"pid": os.getpid(), "pgid": os.getpgid(0), "sid": os.getsid(0),
               "ppid": os.getppid(), "random": random.random(), "np": float(np.random.rand()),
               "torch": float(torch.rand(1)), "dp_seed": secrets.token_bytes(32).hex(),
               "parent": parent}
        config.with_suffix(".json").write_text(json.dumps(out))
        print("daemon of", config.name, "up", flush=True)
        if mode == "fail" and config.stem == "b":
            raise SystemExit(3)
        if mode in ("wait", "slowfork", "forkfail"):
            while True:
                time.sleep(0.05)

    sys.exit(host(configs, [c.with_suffix(".log") for c in configs], run,
                  pid_file=configs[0].parent / "pids.json", say=print))
''')


def _start(tmp_path: Path, mode: str, names: str = "abc") -> tuple[subprocess.Popen[str], list[Path]]:
    script = tmp_path / "host.py"
    script.write_text(HOST)
    configs = [tmp_path / f"{n}.toml" for n in names]
    for c in configs:
        c.write_text("")
    p = subprocess.Popen([sys.executable, str(script), mode, *map(str, configs)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p, configs


def _running(pid: int) -> bool:
    """A process that exists and is not a zombie (not our child)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(paths: list[Path], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"not written: {[p for p in paths if not p.exists()]}"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running (a zombie child of this process counts as gone)."""
    from nodes._federation import _alive as alive

    return alive(pid)


def test_each_forked_daemon_is_its_own_process_group_with_fresh_randomness(tmp_path: Path) -> None:
    p, configs = _start(tmp_path, "once")
    out, _ = p.communicate(timeout=180)
    assert p.returncode == 0, out
    seen = [json.loads(c.with_suffix(".json").read_text()) for c in configs]
    pids = json.loads((tmp_path / "pids.json").read_text())
    assert pids["host"] == p.pid
    assert sorted(pids["peers"].values()) == sorted(s["pid"] for s in seen)
    for s in seen:
        # kill -9 of one peer's group (what the soak and `federation down` do)
        # reaches that peer alone
        assert s["pgid"] == s["pid"] == s["sid"] != p.pid
        assert s["ppid"] == p.pid
    for key in ("random", "np", "torch", "dp_seed"):
        values = [s[key] for s in seen] + ([seen[0]["parent"][key]] if key != "dp_seed" else [])
        assert len(set(values)) == len(values), f"{key} repeated across forked daemons: {values}"
    for c in configs:  # each daemon's output went to its own log, not the host's
        assert f"daemon of {c.name} up" in c.with_suffix(".log").read_text()
        assert f"daemon of {c.name}" not in out
        assert f"{c.name}: pid" in out


def test_sigterm_stops_every_daemon_and_a_killed_one_leaves_the_others(tmp_path: Path) -> None:
    p, configs = _start(tmp_path, "wait")
    try:
        _wait_for([c.with_suffix(".json") for c in configs])
        seen = {c.stem: json.loads(c.with_suffix(".json").read_text()) for c in configs}
        os.killpg(seen["a"]["pid"], signal.SIGKILL)
        time.sleep(0.5)
        assert p.poll() is None, "the host exited when one daemon was killed"
        assert _alive(seen["b"]["pid"]) and _alive(seen["c"]["pid"])
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=20)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
    # killed from outside before the stop: not the host's failure to stop, but reported
    assert "a.toml: pid" in out and "ended by signal 9" in out
    assert p.returncode == 1, out  # a daemon ended by a signal nobody forwarded
    assert not _alive(seen["b"]["pid"]) and not _alive(seen["c"]["pid"])
    assert took < 5, f"stopping the host took {took:.1f} s"


def test_a_fork_that_fails_stops_the_daemons_already_forked(tmp_path: Path) -> None:
    """Fork failing (EAGAIN with fifty peers) must not orphan the first ones."""
    p, configs = _start(tmp_path, "forkfail", "abcd")
    out, _ = p.communicate(timeout=180)
    assert p.returncode != 0 and "BlockingIOError" in out
    first = [json.loads(c.with_suffix(".json").read_text())["pid"]
             for c in configs[:2] if c.with_suffix(".json").exists()]
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in first) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_running(pid) for pid in first), "a forked daemon outlived its failed host"
    assert not (tmp_path / "pids.json").exists()


def test_a_stop_while_forking_reaches_every_daemon_and_forks_no_more(tmp_path: Path) -> None:
    p, configs = _start(tmp_path, "slowfork", "abcdefgh")
    try:
        _wait_for([configs[0].with_suffix(".json")])
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out
    assert "did not stop" not in out  # no daemon needed SIGKILL
    forked = [c for c in configs if f"{c.name}: pid" in out]
    assert 1 <= len(forked) < len(configs)  # the stop ended the forking
    import re

    ended = re.findall(r"(\w)\.toml: pid \d+ (?:exited with 0|ended by signal 15)", out)
    assert sorted(ended) == sorted(c.stem for c in forked), out


def test_a_daemon_that_fails_makes_the_host_fail(tmp_path: Path) -> None:
    p, configs = _start(tmp_path, "fail")
    out, _ = p.communicate(timeout=180)
    assert p.returncode == 1, out
    assert "b.toml: pid" in out and "exited with 3" in out


def test_host_refuses_one_config_twice_and_a_threaded_parent(tmp_path: Path) -> None:
    code = textwrap.dedent('''
        import sys, threading, time
        from pathlib import Path
        from coordinator import ConfigError
        from nodes._host import host
        try:
            host([Path("a.toml"), Path("a.toml")], [Path("a.log"), Path("b.log")], print)
        except ConfigError as exc:
            print("twice:", exc)
        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
        try:
            host([Path("a.toml")], [Path("a.log")], print)
        except ConfigError as exc:
            print("threads:", exc)
    ''')
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "twice: node host was given the same configuration twice" in r.stdout, r.stderr
    assert "threads: node host must fork from a single-threaded parent (2 threads" in r.stdout


def test_node_host_cli_rejects_a_bad_config_before_forking(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[node]\nnot_a_key = 1\n")
    r = subprocess.run([sys.executable, "-m", "coordinator.cli", "node", "host", "--config", str(bad)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "unknown key 'not_a_key' in [node]" in r.stderr
    assert "Traceback" not in r.stderr and "pid" not in r.stderr


@pytest.mark.integration
def test_federation_up_forks_real_daemons_that_stop_cleanly_on_the_hosts_sigterm(
        tmp_path: Path) -> None:
    """`federation up` (its default: the forked host) with the real daemon:
    each peer is recorded under its own pid, and the host's SIGTERM stops
    every daemon with its state closed ("stopping on request"), not by the
    default action of a second signal."""
    from nodes._federation import FederationSpec, down, up

    spec = FederationSpec(peers=2, threshold=2, examples_per_peer=32, phase_blocks=40,
                          driver=False)
    info = up(spec, tmp_path, log=lambda _m: None)
    try:
        procs = {p["name"]: p["pid"] for p in info["processes"]}
        host, peers = procs["peer-host"], [procs["peer0"], procs["peer1"]]
        assert len({host, *peers}) == 3
        logs = [tmp_path / "logs" / f"peer{i}.log" for i in range(2)]
        deadline = time.monotonic() + 240
        while not all(lg.exists() and "following" in lg.read_text() for lg in logs):
            assert _alive(host), (tmp_path / "logs" / "peer-host.log").read_text()
            assert time.monotonic() < deadline, [lg.read_text() for lg in logs if lg.exists()]
            time.sleep(0.2)
        for pid in peers:
            assert os.getpgid(pid) == pid
        t0 = time.monotonic()
        os.kill(host, signal.SIGTERM)
        while _alive(host) and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        took = time.monotonic() - t0
        assert not _alive(host)
        assert took < 5, f"{took:.1f} s"
        host_log = (tmp_path / "logs" / "peer-host.log").read_text()
        assert "exited with 0" in host_log and "stopped" in host_log, host_log
        for lg in logs:
            assert "stopping on request" in lg.read_text()
        for i in range(2):
            assert (tmp_path / f"peer{i}" / "state.sqlite").exists()
    finally:
        down(tmp_path)


def test_the_synthetic_daemons_round_path_imports_no_torch() -> None:
    """Synthetic peers (protocol benchmarks) must stay torch-free: the soak's
    50 of them each mapped libtorch (327 MB private) because quantization's
    secret subkey came from a module that imported torch at its top."""
    code = textwrap.dedent('''
        import sys
        import nodes._daemon, nodes._peer, nodes.cli
        from nodes._dprng import subkey
        from nodes._peer import SyntheticLearner
        subkey(bytes(32), "quantize")
        SyntheticLearner(16)
        print("torch" in sys.modules, "opacus" in sys.modules, "transformers" in sys.modules)
    ''')
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.stdout.split() == ["False", "False", "False"], r.stdout + r.stderr
