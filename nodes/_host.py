"""Several peer daemons on one host from one parent that imports torch once.

A tiny-encoder peer daemon in its own process holds about 830 MB RSS, 480 MB
of it private, 300 MB of that before any model exists: the PyPI torch is a
CUDA build, and importing it relocates and initialises libraries that every
process then holds privately (``benchmarks/out/peer_memory.json``). Fifty of
them do not fit this 24 GiB machine.

``fedledger node host`` imports torch, Opacus, transformers and the peer
loop once, freezes the garbage collector's view of those objects
(``gc.freeze``, so a collection in a child does not write to, and so copy,
every page of them), and forks one child per configuration. Each child is a
whole daemon: its own process and process group (``setsid``, so ``kill -9``
of one peer's group kills that peer alone), its own log, its own keys and
state, and its own secret DP randomness (every generator it inherited is
reseeded from the OS CSPRNG; the DP keys come from ``os.urandom`` at use
anyway). The libraries' pages stay shared copy-on-write: what each extra
peer costs is its private pages (``fedledger bench peer-memory``, variant
``forked``).

The parent supervises nothing beyond its children's exit: it forwards
SIGTERM and SIGINT to every live child, reaps them, and exits when the last
one has (status 0 if each stopped cleanly or by a signal it forwarded, else
1). A child killed from outside is not restarted here; an operator or the
soak benchmark restarts that peer with ``node run``.

Forking a process with threads is unsafe (a lock held by another thread
stays held in the child): the parent refuses to fork unless it is
single-threaded, and it opens no connection before forking.
"""

from __future__ import annotations

import gc
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from coordinator import ConfigError, FedLedgerError
from coordinator.ops._procs import atomic_write


def preload() -> None:
    """Import what every tiny-encoder daemon imports, before any fork."""
    import opacus  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from . import _daemon, _model, _peer, _train  # noqa: F401


def reseed_inherited() -> None:
    """Fresh state for every generator a forked child inherited from the
    parent, so no two children draw the same numbers. Nothing secret comes
    from these (DP keys and protocol keys are drawn from the OS CSPRNG at
    use), but model code that uses them must not repeat across peers."""
    import numpy as np

    random.seed(os.urandom(32))
    np.random.seed(np.frombuffer(os.urandom(32), dtype=np.uint32))
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _child(config: Path, log_path: Path, run: Callable[[Path], None]) -> None:
    """In the forked child: become a daemon of its own, then run."""
    code = 0
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # Until the daemon installs its own handler (and after it restores
        # this one), a stop request ends the child at once: no worse than the
        # kill -9 its state is built to survive. The host forwards SIGTERM to a
        # child that `federation down` also signalled, so a second one is usual.
        # The parent forked with both signals blocked, so none was lost or
        # handled by the parent's forwarding handler in here; unblock now.
        for s in _STOP_SIGNALS:
            signal.signal(s, _exit_cleanly)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.close(null)
        reseed_inherited()
        run(config)
    except FedLedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException as exc:  # noqa: BLE001 - a child must never return into the parent's code
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def host(configs: Sequence[Path], logs: Sequence[Path], run: Callable[[Path], None], *,
         pid_file: Path | None = None, say: Callable[[str], None] = print,
         stop_seconds: float = 5.0) -> int:
    """Fork one daemon per configuration (``run(config)`` in each child) and
    wait for them all; returns the parent's exit status: 0 when every daemon
    exited 0 or was stopped by a SIGTERM/SIGINT the host forwarded, else 1.

    If anything fails while forking (``fork`` itself: EAGAIN, ENOMEM), the
    daemons already forked are stopped before the error propagates: none is
    left running without a parent or a record."""
    if len(configs) != len(logs):
        raise ConfigError("node host needs one log per configuration")
    if len(set(map(str, configs))) != len(configs):
        raise ConfigError("node host was given the same configuration twice: two daemons "
                          "would share one account and one state file")
    # Python threads only: a native pool (OpenMP, Rayon) started by a library
    # would not show here; preload() only imports, which starts none.
    if threading.active_count() != 1:
        raise ConfigError(f"node host must fork from a single-threaded parent "
                          f"({threading.active_count()} threads are running)")
    gc.collect()
    gc.freeze()
    kids: dict[int, Path] = {}
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(kids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, forward) for s in _STOP_SIGNALS}
    try:
        for config, log_path in zip(configs, logs):
            if stopping:
                break
            sys.stdout.flush()
            sys.stderr.flush()
            # Blocked across fork: a stop request is then either the parent's
            # (handled once kids holds the new pid, so it reaches it) or the
            # child's (delivered after the child's own handler is installed).
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            try:
                pid = os.fork()
                if pid == 0:
                    _child(config, log_path, run)  # never returns
                kids[pid] = config
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            say(f"{config.name}: pid {pid}, log {log_path}")
        _wait_for_own_groups(list(kids))
        if pid_file is not None and not stopping:
            atomic_write(pid_file, json.dumps(
                {"host": os.getpid(), "peers": {str(c): p for p, c in kids.items()}},
                indent=2).encode())
    except BaseException:
        forward(signal.SIGTERM, None)
        _reap(kids, stop_seconds, say)
        raise
    try:
        return 0 if _reap(kids, stop_seconds, say, stopped=lambda: stopping) else 1
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _wait_for_own_groups(pids: list[int], timeout: float = 5.0) -> None:
    """Until each child has called setsid (bounded), so that whoever reads the
    pid file can kill a peer's process group by its pid."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if os.getpgid(pid) == pid:
                    break
            except ProcessLookupError:
                break
            time.sleep(0.01)


def _reap(kids: dict[int, Path], stop_seconds: float, say: Callable[[str], None], *,
          stopped: Callable[[], bool] = lambda: True) -> bool:
    """Wait for every child in ``kids`` (each by its pid: other children of
    this process are not ours to reap). Once ``stopped()``, a child still
    running ``stop_seconds`` later gets SIGKILL. True when each exited 0 or
    was ended by the SIGTERM/SIGINT it was sent."""
    ok = True
    deadline: float | None = None
    while kids:
        if stopped() and deadline is None:
            deadline = time.monotonic() + stop_seconds
        if deadline is not None and time.monotonic() > deadline:
            for p, config in list(kids.items()):  # a child that ignored SIGTERM
                say(f"{config.name}: pid {p} did not stop within {stop_seconds:.0f} s; killing it")
                try:
                    os.killpg(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            ok = False
            deadline = time.monotonic() + stop_seconds
        progressed = False
        for pid in list(kids):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                kids.pop(pid)
                continue
            if done == 0:
                continue
            progressed = True
            config = kids.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if code != 0 and not (stopped() and -code in (signal.SIGTERM, signal.SIGINT)):
                ok = False
            say(f"{config.name}: pid {pid} " + (f"exited with {code}" if code >= 0
                                                else f"ended by signal {-code}"))
        if kids and not progressed:
            time.sleep(0.1)
    return ok
