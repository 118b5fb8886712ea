"""One hostile party never stops an honest one, and every fetch is bounded
(issue 11, items 2 and 3): each attack as another party would mount it, and
hypothesis fuzzing of every decoder of another party's data."""

from __future__ import annotations

from pathlib import Path

import cbor2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator import (ConfigError, ContentMismatchError, ContentTooLargeError,
                         InvalidContentError, connect)
from coordinator._errors import AggregationError
from coordinator import _encoding as enc
from coordinator.chain._contracts import LedgerPolicy, Phase, Policy, deploy_federation
from coordinator.privacy._privacy import dp_config
from coordinator.protocol import _secagg as sa
from coordinator.protocol._aggregate import (RoundPublic, _take, aggregate, reconstruct,
                                             collect, verify)
from coordinator.protocol._driver import WAITING, RoundDriver, initial_adapter_args
from coordinator.protocol._wire import AdapterBlob, ShareBundle
from coordinator.store._cid import (CID, DAG_PB, RAW, AddOptions, dagpb_links, dagpb_node,
                                    unixfs_file_data, unixfs_filesize)
from coordinator.store._store import EmbeddedStore, read_car
from nodes._peer import PeerNode, SyntheticLearner
from nodes._state import PeerState

STAKE = 10**17
PASS = b"hostile input test passphrase"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- a small round with one hostile participant (no training: a fake learner) --

def _round(tmp_path: Path, n: int = 4, t: int = 2, size: int = 300, store=None):
    chain = connect("embedded")
    chain.ensure_accounts(n + 2)
    store = EmbeddedStore() if store is None else store
    pol = Policy(participants=n, threshold=t, keys_blocks=8, shares_blocks=8, commit_blocks=8,
                 reveal_blocks=8, aggregate_blocks=8, challenge_blocks=1, bond=STAKE)
    fed, _ = deploy_federation(chain, policy=pol, ledger_policy=LedgerPolicy(epsilon_cap=50),
                               **initial_adapter_args(store, np.zeros(size, np.float32)))
    fed.register_config(dp_config(config_id=1, q=0.5, sigma=1.0, steps=2))
    for i in range(1, n + 1):
        fed.register(sender=i, stake=STAKE)
    driver = RoundDriver(fed, store, aggregator=chain.account(1).address, dp_config=1,
                         vector_length=size, rounds=1)
    r = int(driver.tick().split()[-1])
    nodes = [PeerNode(fed, store, chain.account(i + 1).address,
                      PeerState(tmp_path / f"p{i}.sqlite", PASS,
                                deployment=(chain.chain_id, fed.rounds.address)),
                      SyntheticLearner(size)) for i in range(n)]
    return chain, fed, store, driver, nodes, r


def _drive(fed, driver, nodes, r: int, until=(Phase.AGGREGATE,)) -> None:
    for _ in range(40):
        phase = fed.round_info(r).phase
        if phase in until or phase not in WAITING:
            return
        for nd in nodes:
            nd.step(r)
        if fed.round_info(r).phase == phase:
            fed.chain.mine(max(1, fed.round_info(r).deadline - fed.chain.block_number + 1))
            driver.tick()


def test_an_all_zero_encryption_key_does_not_stop_honest_dealers(tmp_path: Path) -> None:
    # Old main: sealing a box to the zero key raised nacl's RuntimeError in every
    # honest dealer. Now they deal to the others and the round completes.
    chain, fed, store, driver, nodes, r = _round(tmp_path)
    with chain:
        hostile, honest = nodes[3], nodes[:3]
        fed.post_keys(r, bytes(32), sa.X25519Pair.generate().public, sender=hostile.address)
        _drive(fed, driver, honest, r)
        pub = collect(fed, r)
        mine = sorted(fed.status(r, nd.address)[0] for nd in honest)
        assert pub.u2 == mine and pub.u3 == mine
        driver.tick()  # aggregate
        assert all(c.ok for c in verify(fed, store, r))


def test_a_bundle_that_is_not_cbor_is_skipped_and_the_aggregator_fails_cleanly(
        tmp_path: Path) -> None:
    # Old main: receive_shares raised ConfigError out of step (the daemon exits).
    chain, fed, store, driver, nodes, r = _round(tmp_path)
    with chain:
        hostile, honest = nodes[3], nodes[:3]
        from coordinator.protocol._agent import PeerAgent

        PeerAgent(fed, store, hostile.address, r).post_keys()
        _drive(fed, driver, honest, r, until=(Phase.SHARES,))
        garbage = store.add(b"\xff this is not CBOR at all")
        fed.post_shares(r, garbage.digest, bytes(32), sender=hostile.address)
        _drive(fed, driver, honest, r)
        agents = [nd._agents[r] for nd in honest]
        h = fed.status(r, hostile.address)[0]
        assert all(h in a.faulty and h not in a.received for a in agents)
        assert all(nd.state.get(r, "abandoned") is None for nd in honest)
        assert len(collect(fed, r).u3) == 3
        # Nobody holds the hostile dealer's mask key: the round cannot be
        # unmasked, and says so (exit 7), instead of crashing.
        with pytest.raises(AggregationError, match=f"participant {h}"):
            aggregate(collect(fed, r), store)
        # The driver (an aggregator) goes on: the round fails at its deadline.
        _drive(fed, driver, honest, r)
        assert "cannot be aggregated" in (driver.tick() or "")
        for _ in range(20):
            if fed.round_info(r).phase == Phase.FAILED:
                break
            fed.chain.mine(2)
            driver.tick()
        assert fed.round_info(r).phase == Phase.FAILED


@pytest.mark.integration
def test_sybil_dealers_with_unservable_cids_cost_one_timeout_per_step_not_one_each(
        tmp_path: Path, kubo_a) -> None:
    """Three dealers post share CIDs that no one serves. Fetched one after
    the other (old main) an honest peer's step waited three Kubo timeouts;
    fetched concurrently it waits one, and still takes the honest shares."""
    import hashlib
    import time

    from coordinator.protocol._agent import PeerAgent
    from coordinator.store._store import KuboClient

    timeout = 3.0
    store = KuboClient(kubo_a.api, timeout=timeout)
    chain, fed, store, driver, nodes, r = _round(tmp_path, n=6, t=2, store=store)
    with chain:
        agents = [PeerAgent(fed, store, nd.address, r) for nd in nodes]
        for a in agents:
            a.post_keys()
        honest, sybils = agents[:3], agents[3:]
        for a in honest:
            a.post_shares()
        for a in sybils:  # a CID of bytes nobody ever added: Kubo searches until its timeout
            fed.post_shares(r, hashlib.sha256(np.random.default_rng(a.index).bytes(64)).digest(),
                            bytes(32), sender=a.address)
        victim = honest[0]
        t0 = time.monotonic()
        victim.receive_shares()
        took = time.monotonic() - t0
        sybil_ix = {a.index for a in sybils}
        assert set(victim.received) == {a.index for a in honest}
        assert not sybil_ix & (set(victim.received) | set(victim.faulty))  # retried next step
        assert took < 2 * timeout, f"one step waited {took:.1f} s for {len(sybils)} sybil dealers"


def test_a_one_leaf_share_tree_is_refused_not_an_index_error() -> None:
    # Old main: leaves[2 * holder + kind] raised IndexError in aggregate/verify.
    store = EmbeddedStore()
    ctx = sa.RoundContext(1, "0x" + "11" * 20, 1, 4, 2, 10)
    leaf = bytes(range(32))
    digest = store.add(ShareBundle(1, 0, (leaf,), ()).to_bytes()).digest
    pub = RoundPublic(None, ctx, ["0x" + f"{i:040x}" for i in range(4)])  # type: ignore[arg-type]
    pub.share_root[0], pub.bundle_digest[0] = enc.merkle_root([leaf]), digest
    pub.reveals = {3: {0: 5}, 2: {0: 7}}
    with pytest.raises(AggregationError, match="1 leaves; a round of 4 has 9"):
        reconstruct(pub, store, 0, 0, [])


def test_a_small_order_mask_key_makes_honest_peers_sit_out_not_crash(tmp_path: Path) -> None:
    # Old main: crypto_scalarmult raised RuntimeError while masking (commit).
    chain, fed, store, driver, nodes, r = _round(tmp_path)
    with chain:
        hostile, honest = nodes[3], nodes[:3]
        e = sa.X25519Pair.generate()
        fed.post_keys(r, e.public, bytes(32), sender=hostile.address)
        _drive(fed, driver, honest, r, until=(Phase.SHARES,))
        for nd in honest:
            nd.step(r)
        # The hostile peer deals a well-formed bundle, so it is in U2.
        from coordinator.protocol._agent import PeerAgent

        agent = PeerAgent(fed, store, hostile.address, r, enc=e,
                          mask=sa.X25519Pair(bytes(32), bytes(32)), seed=1)
        agent.post_shares()
        _drive(fed, driver, honest, r, until=(Phase.REVEAL, Phase.AGGREGATE))
        assert all(b"cannot be masked" in (nd.state.get(r, "abandoned") or b"")
                   for nd in honest)


def test_valid_public_key_rejects_small_order_points() -> None:
    assert sa.valid_public_key(sa.X25519Pair.generate().public)
    for bad in (bytes(32), (1).to_bytes(32, "little"), b"\x01" * 31, "x" * 32, None,
                bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")):
        assert not sa.valid_public_key(bad)


# -- bounded fetches ------------------------------------------------------------

def _bomb(store: EmbeddedStore, links: int, leaf_size: int, declared: int | None = None) -> CID:
    """A dag-pb root linking ``links`` times to one leaf (a "DAG bomb")."""
    leaf = bytes(leaf_size)
    lc = CID.of(RAW, leaf)
    store._put(lc, leaf)
    total = links * leaf_size
    node = dagpb_node([(lc, leaf_size)] * links,
                      unixfs_file_data(total if declared is None else declared,
                                       [leaf_size] * links))
    root = CID.of(DAG_PB, node)
    store._put(root, node)
    return root


def test_a_dag_bomb_is_refused_before_it_is_read() -> None:
    store = EmbeddedStore()
    root = _bomb(store, 174, 262_144)  # 44 MiB declared and real, from two blocks
    with pytest.raises(ContentTooLargeError, match="declares 45613056 bytes"):
        store.cat(root, max_bytes=1 << 20)
    assert store.bytes_read == 0


def test_a_dag_that_lies_about_its_size_stops_at_the_cap() -> None:
    store = EmbeddedStore()
    root = _bomb(store, 174, 262_144, declared=1000)
    with pytest.raises(ContentTooLargeError, match="expands beyond"):
        store.cat(root, max_bytes=1 << 20)
    # Empty leaves: no bytes, but more blocks than any file within the cap has.
    s2 = EmbeddedStore()
    root = _bomb(s2, 174, 0, declared=0)
    with pytest.raises(ContentTooLargeError):
        s2.cat(root, max_bytes=1000)


def test_an_unbounded_cat_is_still_bounded() -> None:
    from coordinator.store import _store

    store = EmbeddedStore()
    root = _bomb(store, 174, 262_144)
    old = _store.MAX_FETCH
    _store.MAX_FETCH = 1 << 20
    try:
        with pytest.raises(ContentTooLargeError):
            store.cat(root)
    finally:
        _store.MAX_FETCH = old


@pytest.mark.integration
def test_kubo_cat_checks_the_declared_size_and_streams_with_a_cap(kubo_a) -> None:
    emb = EmbeddedStore()
    root = _bomb(emb, 174, 262_144)
    assert kubo_a.import_car(emb.export_car(root)) == [root]
    with pytest.raises(ContentTooLargeError, match="declares"):
        kubo_a.cat(root, max_bytes=1 << 20)
    liar = _bomb(emb, 174, 262_144, declared=1000)
    kubo_a.import_car(emb.export_car(liar))
    with pytest.raises(ContentMismatchError):  # the cap, or Kubo's own size check
        kubo_a.cat(liar, max_bytes=1 << 20)
    ok = kubo_a.add(b"x" * 300_000)
    assert kubo_a.cat(ok, max_bytes=300_000) == b"x" * 300_000
    with pytest.raises(ContentTooLargeError):
        kubo_a.cat(ok, max_bytes=299_999)


# -- fuzzing every decoder of another party's data --------------------------------

cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.binary(max_size=40)
    | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=5),
    max_leaves=20)


def _bundle_like(d: dict) -> bytes:
    return cbor2.dumps({"magic": "fedledger.share-bundle.v1", **d})


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_share_bundle_bytes(data: bytes) -> None:
    try:
        ShareBundle.from_bytes(data)
    except InvalidContentError:
        pass


@FUZZ
@given(st.dictionaries(st.sampled_from(["round", "dealer", "leaves", "boxes", "x"]), cbor_values),
       st.integers(1, 6))
def test_fuzz_share_bundle_fields(fields: dict, n: int) -> None:
    try:
        b = ShareBundle.from_bytes(_bundle_like(fields))
        b.check(round_id=b.round_id, dealer=b.dealer, n=n)
    except InvalidContentError:
        return
    assert len(b.leaves) == 2 * n and all(len(x) == 32 for x in b.leaves)
    assert all(0 <= h < n and len(x) == 116 for h, x in b.boxes)


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.dictionaries(
    st.sampled_from(["magic", "round", "values", "aggregate", "frac_bits", "length"]),
    cbor_values).map(lambda d: cbor2.dumps({"magic": "fedledger.adapter.v2", **d}))))
def test_fuzz_adapter_blob(data: bytes) -> None:
    try:
        blob = AdapterBlob.from_bytes(data)
    except InvalidContentError:
        return
    assert len(blob.values) % 4 == 0 and len(blob.aggregate) % 4 == 0
    assert 0 <= blob.frac_bits <= 30 and 0 <= blob.model_length <= len(blob.values) // 4


@FUZZ
@given(st.binary(max_size=64))
def test_fuzz_masked_vector_bytes(data: bytes) -> None:
    try:
        v = enc.from_bytes(data)
    except ValueError:
        return
    assert enc.to_bytes(v) == data


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_car_files(data: bytes) -> None:
    try:
        read_car(data)
    except (ConfigError, ContentMismatchError):
        pass


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_dagpb_unixfs_and_cid_bytes(data: bytes) -> None:
    for fn in (dagpb_links, unixfs_filesize, CID.from_bytes):
        try:
            fn(data)
        except ValueError:
            pass


@FUZZ
@given(st.binary(max_size=200), st.binary(min_size=0, max_size=40))
def test_fuzz_share_boxes_and_dealer_keys(box: bytes, dealer_pk: bytes) -> None:
    ctx = sa.RoundContext(1, "0x" + "11" * 20, 1, 4, 2, 10)
    holder = sa.X25519Pair.generate()
    try:
        sa.open_box(ctx, dealer=0, holder=1, box=box, holder_enc=holder, dealer_enc_pk=dealer_pk)
    except InvalidContentError:
        pass


@FUZZ
@given(st.sampled_from(["KeysPosted", "SharesPosted", "UpdateCommitted", "SharesRevealed"]),
       st.dictionaries(st.sampled_from(["peer", "encPk", "maskPk", "shareRoot", "bundleCid",
                                        "cidDigest", "chunksRoot", "weight", "dealers",
                                        "shares"]),
                       cbor_values | st.sampled_from(["0xA", "0xB"]) | st.binary(min_size=32,
                                                                                 max_size=32)))
def test_fuzz_event_arguments(name: str, args: dict) -> None:
    ctx = sa.RoundContext(1, "0x" + "11" * 20, 1, 2, 2, 10)
    pub = RoundPublic(None, ctx, ["0xA", "0xB"])  # type: ignore[arg-type]
    try:
        _take(pub, {"0xA": 0, "0xB": 1}, name, args)
    except (ValueError, TypeError, KeyError):
        return
    for d in (pub.enc_pk, pub.mask_pk, pub.share_root, pub.bundle_digest):
        assert all(isinstance(v, bytes) and len(v) == 32 for v in d.values())
    for digest, root, weight in pub.commits.values():
        assert len(digest) == len(root) == 32 and 0 < weight < 2**64
    for got in pub.reveals.values():
        assert all(0 <= d < 2 and 0 <= v < enc.FIELD_P for d, v in got.items())


def test_add_options_are_what_the_bomb_assumes() -> None:
    assert AddOptions().chunk_size == 262_144
