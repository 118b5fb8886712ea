"""The content store: real Kubo over its RPC API, or an embedded block store.

Both name content exactly alike (:mod:`coordinator.store._cid`), so a round can
move between them; both check every byte they hand back against its CID.

Every ``cat`` is bounded (``max_bytes``, :data:`MAX_FETCH` when not given):
the size a dag-pb root declares is checked before any child is read, and
the bytes actually read stop at the bound — a small DAG that links one leaf
many times (a "DAG bomb") is refused, not expanded into memory.

Kubo is driven over HTTP (``POST /api/v0/...``) with httpx. ``ipfshttpclient``
is unmaintained since 2021 and refuses current Kubo versions; see
docs/decisions.md.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import httpx

from ._cid import CID, AddOptions, dagpb_links, layout, read_varint, unixfs_filesize, varint, DAG_PB
from .._errors import ConfigError, ContentMismatchError, ContentTooLargeError, IpfsError
from ..ops._paths import KUBO_VERSION, kubo_binary, state_dir
from ..ops._procs import ManagedProcess, atomic_write

log = logging.getLogger("fedledger.store")

MAX_FETCH = 256 * 2**20  # the bound of a fetch that names none (bytes)


class ContentStore(Protocol):
    """What the protocol needs from IPFS."""

    opts: AddOptions

    def add(self, data: bytes) -> CID: ...
    def cat(self, cid: CID, *, max_bytes: int | None = None) -> bytes: ...
    def pin(self, cid: CID) -> None: ...
    def unpin(self, cid: CID) -> None: ...
    def has(self, cid: CID) -> bool: ...
    def export_car(self, cid: CID) -> bytes: ...
    def import_car(self, car: bytes) -> list[CID]: ...


def _declared_size(cid: CID, root: bytes, cap: int) -> int:
    """The size the root block says the content has; refused above ``cap``."""
    if cid.codec == DAG_PB:
        try:
            size = unixfs_filesize(root)
        except ValueError as exc:
            raise ContentMismatchError(f"root block of {cid} is not a UnixFS file: {exc}") from None
    else:
        size = len(root)
    if size > cap:
        raise ContentTooLargeError(f"{cid} declares {size} bytes, more than the {cap} bytes "
                                   "this fetch allows")
    return size


def _too_large(cid: CID, cap: int) -> ContentTooLargeError:
    return ContentTooLargeError(f"{cid} expands beyond the {cap} bytes this fetch allows")


def _verified(cid: CID, data: bytes, opts: AddOptions) -> bytes:
    got = layout(data, opts)[0]
    if got != cid:
        raise ContentMismatchError(
            f"content fetched for {cid} hashes to {got}: it was tampered with or "
            f"added with other options than chunk size {opts.chunk_size}"
        )
    return data


# -- CAR v1 ----------------------------------------------------------------

def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
    raise ValueError("integer too large for CBOR")


def car_header(roots: Iterable[CID]) -> bytes:
    """dag-cbor {"roots": [CID...], "version": 1}, length-prefixed."""
    roots = list(roots)
    body = _cbor_head(5, 2)
    body += _cbor_head(3, 5) + b"roots" + _cbor_head(4, len(roots))
    for r in roots:
        link = b"\x00" + r.to_bytes()
        body += b"\xd8\x2a" + _cbor_head(2, len(link)) + link  # tag 42
    body += _cbor_head(3, 7) + b"version" + _cbor_head(0, 1)
    return varint(len(body)) + body


def write_car(root: CID, get: Any) -> bytes:
    """CAR v1 of the DAG under ``root``, blocks in depth-first pre-order
    without repeats (the order `ipfs dag export` writes)."""
    out = bytearray(car_header([root]))
    seen: set[CID] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        seen.add(cid)
        block: bytes = get(cid)
        raw = cid.to_bytes()
        out += varint(len(raw) + len(block)) + raw + block
        if cid.codec == DAG_PB:
            stack.extend(reversed(dagpb_links(block)))
    return bytes(out)


def read_car(car: bytes) -> tuple[list[CID], list[tuple[CID, bytes]]]:
    """Roots and verified blocks of a CAR v1."""
    try:
        hlen, pos = read_varint(car)
        header = car[pos:pos + hlen]
        pos += hlen
        roots = _car_roots(header)
        blocks: list[tuple[CID, bytes]] = []
        while pos < len(car):
            n, pos = read_varint(car, pos)
            section = car[pos:pos + n]
            pos += n
            # CIDv1 prefix: version, codec, hash code, digest length, digest.
            _, p = read_varint(section)
            _, p = read_varint(section, p)
            _, p = read_varint(section, p)
            dlen, p = read_varint(section, p)
            cid = CID.from_bytes(section[:p + dlen])
            data = section[p + dlen:]
            if not cid.verify(data):
                raise ContentMismatchError(f"CAR block {cid} does not match its hash")
            blocks.append((cid, data))
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"not a valid CAR v1 file: {exc}") from None
    return roots, blocks


def _car_roots(header: bytes) -> list[CID]:
    roots: list[CID] = []
    i = header.find(b"roots")
    if i < 0:
        raise ValueError("CAR header has no roots")
    pos = i + 5
    count = header[pos] & 0x1F
    pos += 1
    for _ in range(count):
        if header[pos:pos + 2] != b"\xd8\x2a":
            raise ValueError("CAR root is not a CID")
        pos += 2
        major_len = header[pos] & 0x1F
        pos += 1
        if major_len == 24:
            n = header[pos]
            pos += 1
        else:
            n = major_len
        roots.append(CID.from_bytes(header[pos + 1:pos + n]))
        pos += n
    return roots


# -- embedded ----------------------------------------------------------------

class EmbeddedStore:
    """A block store in memory or in a directory; no daemon.

    It produces exactly the CIDs Kubo produces for the same bytes and
    :class:`AddOptions` (tested against Kubo). Used by the demo and by peers
    in one process; ``bytes_added`` and ``bytes_read`` count traffic.
    """

    def __init__(self, root: Path | None = None, *, opts: AddOptions = AddOptions()) -> None:
        self.opts = opts
        self.root = root
        self._blocks: dict[CID, bytes] = {}
        self._pins: set[CID] = set()
        self.bytes_added = 0
        self.bytes_read = 0
        if root is not None:
            (root / "blocks").mkdir(parents=True, exist_ok=True)

    def _put(self, cid: CID, block: bytes) -> None:
        if self.root is None:
            self._blocks[cid] = block
        else:
            path = self.root / "blocks" / str(cid)
            if not path.exists():
                atomic_write(path, block)

    def _get(self, cid: CID) -> bytes:
        if self.root is None:
            block = self._blocks.get(cid)
        else:
            path = self.root / "blocks" / str(cid)
            block = path.read_bytes() if path.exists() else None
        if block is None:
            raise IpfsError(f"block {cid} is not in the embedded store")
        if not cid.verify(block):
            raise ContentMismatchError(f"stored block {cid} does not match its hash")
        return block

    def add(self, data: bytes) -> CID:
        root, blocks = layout(data, self.opts)
        for cid, block in blocks:
            self._put(cid, block)
        self._pins.add(root)
        self.bytes_added += len(data)
        return root

    def cat(self, cid: CID, *, max_bytes: int | None = None) -> bytes:
        data = self._read(cid, MAX_FETCH if max_bytes is None else max_bytes)
        self.bytes_read += len(data)
        return _verified(cid, data, self.opts)

    def _read(self, cid: CID, cap: int) -> bytes:
        """The file bytes under ``cid``, depth-first, never more than ``cap``
        bytes nor more blocks than a file of ``cap`` bytes has."""
        root = self._get(cid)
        _declared_size(cid, root, cap)
        budget = 2 * (cap // self.opts.chunk_size + 2) + 16
        out = bytearray()
        stack: list[CID] = [cid]
        while stack:
            c = stack.pop()
            budget -= 1
            if budget < 0:
                raise _too_large(cid, cap)
            block = root if c is cid else self._get(c)
            if c.codec != DAG_PB:
                out += block
                if len(out) > cap:
                    raise _too_large(cid, cap)
                continue
            try:
                stack.extend(reversed(dagpb_links(block)))
            except ValueError as exc:
                raise ContentMismatchError(f"block {c} under {cid} is not dag-pb: {exc}") from None
        return bytes(out)

    def has(self, cid: CID) -> bool:
        try:
            self._get(cid)
            return True
        except IpfsError:
            return False

    def pin(self, cid: CID) -> None:
        self._get(cid)
        self._pins.add(cid)

    def unpin(self, cid: CID) -> None:
        self._pins.discard(cid)

    def export_car(self, cid: CID) -> bytes:
        return write_car(cid, self._get)

    def import_car(self, car: bytes) -> list[CID]:
        roots, blocks = read_car(car)
        for cid, block in blocks:
            self._put(cid, block)
        self._pins.update(roots)
        return roots


# -- Kubo --------------------------------------------------------------------

class KuboClient:
    """Kubo's RPC API over HTTP (POST /api/v0/...)."""

    def __init__(self, api: str, *, opts: AddOptions = AddOptions(), timeout: float = 60.0) -> None:
        self.api = _api_url(api)
        self.opts = opts
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.api + "/api/v0", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _post(self, cmd: str, params: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        params = dict(params or {})
        params.setdefault("timeout", f"{int(self.timeout)}s")
        try:
            resp = self._http.post(cmd, params=params, **kw)
        except httpx.TransportError as exc:
            raise IpfsError(
                f"Kubo RPC API at {self.api} is unreachable ({type(exc).__name__})",
                hint="start it with `fedledger ipfs up` or pass --ipfs-api",
            ) from None
        if resp.status_code != 200:
            try:
                msg = resp.json().get("Message", resp.text)
            except (json.JSONDecodeError, AttributeError):
                msg = resp.text
            raise IpfsError(f"Kubo {cmd} failed: {msg.strip()}")
        return resp

    def _json(self, cmd: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self._post(cmd, params, **kw).json()

    def id(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("id")
        return result

    def version(self) -> str:
        return str(self._json("version")["Version"])

    def add(self, data: bytes) -> CID:
        params = {**self.opts.kubo_params, "quieter": "true"}
        resp = self._post("add", params, files={"file": ("blob", data)})
        last = resp.text.strip().splitlines()[-1]
        return CID.parse(json.loads(last)["Hash"])

    def cat(self, cid: CID, *, max_bytes: int | None = None) -> bytes:
        """The verified bytes of ``cid``: the root block's declared size is
        checked first, then ``cat`` is streamed and cut at the bound."""
        cap = MAX_FETCH if max_bytes is None else max_bytes
        root = self._stream("block/get", {"arg": str(cid)}, 2 * 2**20 + 1024)
        if not cid.verify(root):
            raise ContentMismatchError(f"block {cid} from Kubo does not match its hash")
        _declared_size(cid, root, cap)
        if cid.codec != DAG_PB:
            return _verified(cid, root, self.opts)
        data = self._stream("cat", {"arg": str(cid), "length": str(cap + 1)}, cap)
        return _verified(cid, data, self.opts)

    def _stream(self, cmd: str, params: dict[str, Any], cap: int) -> bytes:
        """A POST whose body is read in pieces and refused past ``cap`` bytes."""
        params = {**params, "timeout": f"{int(self.timeout)}s"}
        try:
            with self._http.stream("POST", cmd, params=params) as resp:
                if resp.status_code != 200:
                    resp.read()
                    try:
                        msg = resp.json().get("Message", resp.text)
                    except (json.JSONDecodeError, AttributeError):
                        msg = resp.text
                    raise IpfsError(f"Kubo {cmd} failed: {msg.strip()}")
                out = bytearray()
                for piece in resp.iter_bytes():
                    out += piece
                    if len(out) > cap:
                        raise ContentTooLargeError(f"Kubo {cmd} {params.get('arg')} returned "
                                                   f"more than the {cap} bytes allowed")
                return bytes(out)
        except httpx.TransportError as exc:
            raise IpfsError(f"Kubo RPC API at {self.api} is unreachable ({type(exc).__name__})",
                            hint="start it with `fedledger ipfs up` or pass --ipfs-api") from None

    def block_get(self, cid: CID) -> bytes:
        block = self._post("block/get", {"arg": str(cid)}).content
        if not cid.verify(block):
            raise ContentMismatchError(f"block {cid} from Kubo does not match its hash")
        return block

    def has(self, cid: CID) -> bool:
        try:
            self._post("block/stat", {"arg": str(cid), "offline": "true"})
            return True
        except IpfsError:
            return False

    def pin(self, cid: CID) -> None:
        self._post("pin/add", {"arg": str(cid)})

    def unpin(self, cid: CID) -> None:
        self._post("pin/rm", {"arg": str(cid)})

    def pins(self) -> set[CID]:
        """Recursively pinned CIDv1s (CIDv0 pins of other tools are left out)."""
        keys = self._json("pin/ls", {"type": "recursive"}).get("Keys", {})
        return {CID.parse(k) for k in keys if k.startswith("b")}

    def stat(self, cid: CID) -> dict[str, Any]:
        result: dict[str, Any] = self._json("files/stat", {"arg": f"/ipfs/{cid}"})
        return result

    def swarm_connect(self, multiaddr: str) -> None:
        self._post("swarm/connect", {"arg": multiaddr})

    def swarm_peers(self) -> list[str]:
        peers = self._json("swarm/peers").get("Peers") or []
        return [p["Peer"] for p in peers]

    def export_car(self, cid: CID) -> bytes:
        return self._post("dag/export", {"arg": str(cid)}).content

    def import_car(self, car: bytes) -> list[CID]:
        resp = self._post("dag/import", {"pin-roots": "true"}, files={"file": ("dag.car", car)})
        roots = []
        for line in resp.text.strip().splitlines():
            item = json.loads(line)
            if "Root" in item:
                if item["Root"].get("PinErrorMsg"):
                    raise IpfsError(f"CAR import could not pin: {item['Root']['PinErrorMsg']}")
                roots.append(CID.parse(item["Root"]["Cid"]["/"]))
        return roots

    def shutdown(self) -> None:
        try:
            self._http.post("shutdown")
        except httpx.TransportError:
            pass


def _api_url(api: str) -> str:
    """Accept http://host:port or a multiaddr /ip4/127.0.0.1/tcp/5001."""
    api = api.strip()
    if api.startswith("/ip4/"):
        parts = api.split("/")
        try:
            return f"http://{parts[2]}:{int(parts[4])}"
        except (IndexError, ValueError):
            raise ConfigError(f"IPFS API address {api!r} is not /ip4/HOST/tcp/PORT") from None
    if api.startswith(("http://", "https://")):
        return api.rstrip("/")
    raise ConfigError(f"IPFS API address {api!r} must be http://HOST:PORT or /ip4/HOST/tcp/PORT")


class KuboDaemon:
    """A Kubo daemon in a repository we own, reachable on 127.0.0.1 only.

    The repository has no bootstrap peers, no MDNS, no DHT (routing "none":
    blocks move over bitswap between daemons we connect explicitly), and
    loopback-only API, gateway and swarm addresses on ports the kernel picks
    (Kubo writes the API address it bound to ``$IPFS_PATH/api``).
    """

    def __init__(self, repo: Path | None = None, *, opts: AddOptions = AddOptions(),
                 timeout: float = 60.0) -> None:
        self.binary = kubo_binary()
        self.repo = repo or state_dir() / "ipfs" / f"repo-{os.getpid()}-{id(self):x}"
        self.opts = opts
        self.timeout = timeout
        self.env = {**os.environ, "IPFS_PATH": str(self.repo)}
        self.process: ManagedProcess | None = None
        self.client: KuboClient | None = None

    def init(self) -> None:
        """Create and configure the repository (idempotent)."""
        import subprocess

        if not (self.repo / "config").exists():
            self.repo.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(
                [str(self.binary), "init", "--profile=test", "--empty-repo"],
                env=self.env, capture_output=True, text=True, timeout=self.timeout,
            )
            if proc.returncode != 0:
                raise IpfsError(f"ipfs init failed in {self.repo}: {proc.stderr.strip()}")
        cfg_path = self.repo / "config"
        cfg = json.loads(cfg_path.read_text())
        cfg["Addresses"].update({
            "API": "/ip4/127.0.0.1/tcp/0",
            "Gateway": "/ip4/127.0.0.1/tcp/0",
            "Swarm": ["/ip4/127.0.0.1/tcp/0"],
            "Announce": [], "AppendAnnounce": [], "NoAnnounce": [],
        })
        cfg["Bootstrap"] = []
        cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
        cfg.setdefault("Routing", {})["Type"] = "none"
        swarm = cfg.setdefault("Swarm", {})
        swarm["DisableNatPortMap"] = True
        swarm.setdefault("RelayClient", {})["Enabled"] = False
        swarm.setdefault("RelayService", {})["Enabled"] = False
        swarm.setdefault("Transports", {}).setdefault("Network", {}).update(
            {"QUIC": False, "WebTransport": False, "WebRTCDirect": False, "Websocket": False,
             "Relay": False})
        cfg.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
        cfg.setdefault("AutoConf", {})["Enabled"] = False
        atomic_write(cfg_path, json.dumps(cfg, indent=2).encode())

    def start(self) -> KuboClient:
        self.init()
        api_file = self.repo / "api"
        api_file.unlink(missing_ok=True)
        self.process = ManagedProcess(
            "kubo", [str(self.binary), "daemon", "--migrate=false"],
            log_path=self.repo / "daemon.log", env=self.env,
        )
        holder: dict[str, KuboClient] = {}

        def ready() -> bool:
            if not api_file.exists():
                return False
            if "c" not in holder:
                holder["c"] = KuboClient(api_file.read_text().strip(), opts=self.opts,
                                         timeout=self.timeout)
            holder["c"].id()
            return True

        self.process.wait_ready(ready, timeout=self.timeout, what="the RPC API answering")
        self.client = holder["c"]
        log.info("kubo %s ready at %s (repo %s)", KUBO_VERSION, self.client.api, self.repo)
        return self.client

    @property
    def swarm_addr(self) -> str:
        """A loopback multiaddr other daemons can dial, with our peer id."""
        assert self.client is not None, "daemon not started"
        info = self.client.id()
        for addr in info.get("Addresses") or []:
            if addr.startswith("/ip4/127.0.0.1/tcp/"):
                return str(addr)
        raise IpfsError("Kubo reports no loopback TCP swarm address")

    def stop(self) -> None:
        if self.client is not None:
            self.client.shutdown()
            self.client.close()
            self.client = None
        if self.process is not None:
            self.process.stop(timeout=15)
            self.process = None

    def __enter__(self) -> KuboClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
