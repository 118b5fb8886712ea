"""`fedledger audit serve`: a read-only explorer on 127.0.0.1.

A small threaded HTTP server (standard library) with a JSON API —
``/api/log`` (rounds, peers, budgets: :func:`build_log`) and ``/api/verify``
(the verdicts of `audit verify`) — and one page that renders both. It sends
no transactions and holds no keys.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from coordinator.chain._contracts import Federation
from coordinator.store._store import ContentStore

from ._inspect import build_log
from ._verify import VerifyCache, exit_ok, summary, verify_budgets, verify_code, verify_rounds

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>fedledger explorer</title>
<style>body{font-family:sans-serif;max-width:1000px;margin:1.5em auto}
table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:2px 8px}
.ok{color:#070}.fail{color:#b00;font-weight:bold}</style></head><body>
<h1>fedledger explorer <small id="chain"></small></h1>
<h2>rounds</h2><table id="rounds"><thead><tr><th>round</th><th>phase</th><th>n</th><th>U1</th>
<th>U2</th><th>U3</th><th>revealed</th><th>voided</th><th>verified</th></tr></thead><tbody></tbody></table>
<h2>peers</h2><table id="peers"><thead><tr><th>address</th><th>rounds</th><th>&epsilon;</th>
<th>cap</th><th>status</th></tr></thead><tbody></tbody></table>
<p id="status">loading…</p>
<script>
const cell = (t, v, cls) => { const c = document.createElement(t); c.textContent = v;
  if (cls) c.className = cls; return c; };
async function load() {
  const log = await (await fetch('/api/log')).json();
  const ver = await (await fetch('/api/verify')).json();
  document.getElementById('chain').textContent =
    `chain ${log.deployment.chain_id}, FedRounds ${log.deployment.contracts.FedRounds}`;
  const byRound = {};  // worst status per round: FAIL > not checked > in progress > ok
  const rank = {'ok': 0, 'in progress': 1, 'not checked': 2, 'fail': 3};
  for (const v of ver.verdicts) if (v.scope.startsWith('round ')) {
    const r = v.scope.slice(6);
    if (!(r in byRound) || rank[v.status] > rank[byRound[r]]) byRound[r] = v.status; }
  const rb = document.querySelector('#rounds tbody');
  for (const r of log.rounds) {
    const tr = document.createElement('tr'); tr.dataset.round = r.round;
    const verified = r.round in byRound ? (byRound[r.round] === 'fail' ? 'FAIL' : byRound[r.round]) : '—';
    for (const v of [r.round, r.phase, r.participants.length, r.U1.length, r.U2.length,
                     r.U3.length, r.revealed.length, r.voided.length]) tr.appendChild(cell('td', v));
    tr.appendChild(cell('td', verified, verified === 'ok' || verified === 'in progress' ? 'ok' : 'fail'));
    rb.appendChild(tr);
  }
  const pb = document.querySelector('#peers tbody');
  for (const p of log.peers) {
    const tr = document.createElement('tr');
    const status = p.quarantined ? 'quarantined' : (p.left ? 'left' : 'active');
    for (const v of [p.address, p.rounds_joined.length, p.epsilon.toFixed(4), p.cap, status])
      tr.appendChild(cell('td', v));
    pb.appendChild(tr);
  }
  const bad = ver.verdicts.filter(v => !v.ok).length;
  const c = ver.counts;
  document.getElementById('status').textContent =
    bad ? `${c['fail']} verification checks fail, ${c['not checked']} not checked`
        : `all ${ver.verdicts.length} verification checks pass` +
          (c['in progress'] ? ` (${c['in progress']} in progress)` : '');
  document.getElementById('status').className = bad ? 'fail' : 'ok';
}
load();
</script></body></html>"""


class Explorer:
    def __init__(self, fed: Federation, store: ContentStore | None) -> None:
        self.fed = fed
        self.store = store
        self._lock = threading.Lock()  # one chain connection, used by one request at a time
        self.cache = VerifyCache()

    def log(self) -> dict[str, Any]:
        with self._lock, self.fed.snapshot():
            return build_log(self.fed)

    def verify(self) -> dict[str, Any]:
        """Every check, at one block; FINAL rounds that passed come from the
        cache on later calls (they cannot change)."""
        with self._lock, self.fed.snapshot() as block:
            verdicts = (verify_budgets(self.fed, build_log(self.fed))
                        + verify_code(self.fed, self.cache))
            if self.store is not None:
                rounds = list(range(1, self.fed.current_round() + 1))
                verdicts = verify_rounds(self.fed, self.store, rounds, cache=self.cache) + verdicts
        return {"ok": exit_ok(verdicts), "block": block, "counts": summary(verdicts),
                "verdicts": [asdict(v) for v in verdicts]}

    def server(self, port: int = 0) -> ThreadingHTTPServer:
        explorer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                routes = {"/": ("text/html", lambda: PAGE.encode()),
                          "/api/log": ("application/json",
                                       lambda: json.dumps(explorer.log(), default=str).encode()),
                          "/api/verify": ("application/json",
                                          lambda: json.dumps(explorer.verify()).encode())}
                path = self.path.split("?")[0]
                if path not in routes:
                    self.send_error(404, "no such page")
                    return
                ctype, body = routes[path]
                data = body()
                self.send_response(200)
                self.send_header("Content-Type", f"{ctype}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

        return ThreadingHTTPServer(("127.0.0.1", port), Handler)
