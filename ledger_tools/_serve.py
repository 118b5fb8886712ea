"""`fedledger audit serve`: a read-only explorer on 127.0.0.1.

An aiohttp web application (aiohttp is already in the lock file; see
docs/decisions.md) with a JSON API — ``/api/log`` (rounds, peers, budgets,
peer status and the stall reason: :func:`build_log`) and ``/api/verify`` (the
verdicts of `audit verify`) — and one page rendered from the Jinja2 template
``templates/explorer.html.j2``. The page draws from ``/api/log`` first,
fetches ``/api/verify`` asynchronously, refreshes itself, and lets one drill
into a round (``/#round=N``: its sets, commitments, results and proofs). It
sends no transactions and holds no keys.

The chain connection is synchronous and used by one request at a time (a
lock); handlers run it in a worker thread so the event loop keeps serving.
A client that goes away mid-answer is aiohttp's ordinary case, not an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from coordinator.chain._contracts import Federation
from coordinator.store._store import ContentStore

from ._inspect import build_log
from ._templates import templates
from ._verify import VerifyCache, exit_ok, summary, verify_budgets, verify_code, verify_rounds

log = logging.getLogger("fedledger.explorer")


class Explorer:
    def __init__(self, fed: Federation, store: ContentStore | None, *,
                 refresh_seconds: float = 10.0) -> None:
        self.fed = fed
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()  # one chain connection, used by one request at a time
        self.cache = VerifyCache()
        self._verified: tuple[Any, dict[str, Any]] | None = None

    def log(self) -> dict[str, Any]:
        with self._lock, self.fed.snapshot():
            return build_log(self.fed)

    def verify(self) -> dict[str, Any]:
        """Every check, at one block. The answer is reused while the chain's log
        has not changed (the same events give the same verdicts), and FINAL
        rounds that passed come from the cache on later calls (they cannot
        change), so a page refresh or a second visitor re-runs nothing."""
        with self._lock, self.fed.snapshot() as block:
            log = build_log(self.fed)
            key = (log["events"], self.fed.current_round(),
                   tuple((r["round"], r["phase"], len(r["results"])) for r in log["rounds"]))
            if self._verified is not None and self._verified[0] == key:
                return self._verified[1]
            verdicts = verify_budgets(self.fed, log) + verify_code(self.fed, self.cache)
            if self.store is not None:
                rounds = list(range(1, self.fed.current_round() + 1))
                verdicts = verify_rounds(self.fed, self.store, rounds, cache=self.cache) + verdicts
            out = {"ok": exit_ok(verdicts), "block": block, "counts": summary(verdicts),
                   "verdicts": [asdict(v) for v in verdicts]}
            self._verified = (key, out)
            return out

    def page(self) -> str:
        return templates().get_template("explorer.html.j2").render(
            refresh_ms=int(self.refresh_seconds * 1000))

    def app(self) -> web.Application:
        page = self.page()

        async def blocking(fn: Callable[[], dict[str, Any]]) -> web.Response:
            data = await asyncio.get_running_loop().run_in_executor(None, fn)
            return web.json_response(data, dumps=lambda d: json.dumps(d, default=str))

        async def index(_: web.Request) -> web.Response:
            return web.Response(text=page, content_type="text/html", charset="utf-8")

        async def api_log(_: web.Request) -> web.Response:
            return await blocking(self.log)

        async def api_verify(_: web.Request) -> web.Response:
            return await blocking(self.verify)

        app = web.Application()
        app.router.add_get("/", index)
        app.router.add_get("/api/log", api_log)
        app.router.add_get("/api/verify", api_verify)
        return app

    def start(self, port: int = 0) -> RunningExplorer:
        """Serve on 127.0.0.1:``port`` (0: a free one) from a background
        thread; raises OSError at once if the port cannot be bound."""
        ready: Future[tuple[asyncio.AbstractEventLoop, web.AppRunner, int]] = Future()
        stopped = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
            try:
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", port)
                loop.run_until_complete(site.start())
                server = site._server  # noqa: SLF001 - the bound port when port=0
                bound = server.sockets[0].getsockname()[1] if server is not None else port
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                loop.run_until_complete(runner.cleanup())
                loop.close()
                ready.set_exception(exc)
                return
            ready.set_result((loop, runner, int(bound)))
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(runner.cleanup())
                loop.close()
                stopped.set()

        thread = threading.Thread(target=serve, name="explorer", daemon=True)
        thread.start()
        loop, runner, bound = ready.result(timeout=30)
        return RunningExplorer(bound, loop, thread, stopped)


@dataclass
class RunningExplorer:
    port: int
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    stopped: threading.Event

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self, timeout: float = 10.0) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
