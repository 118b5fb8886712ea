"""Fixtures that start real services on 127.0.0.1 and always stop them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator import Chain, connect
from coordinator.store._store import KuboClient, KuboDaemon


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``heavy`` first (stable otherwise): xdist hands tests out
    in collection order, so a long test collected last would run alone while
    the other worker idles."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.fixture(params=["embedded", "anvil", "hardhat"])
def any_chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chain]:
    """The same test on every chain backend."""
    if request.param != "embedded":
        request.applymarker(pytest.mark.integration)
    kwargs = {} if request.param == "embedded" else {"workdir": tmp_path}
    with connect(request.param, **kwargs) as chain:
        yield chain


@pytest.fixture
def embedded_chain() -> Iterator[Chain]:
    with connect("embedded") as chain:
        yield chain


@pytest.fixture(scope="session")
def kubo_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KuboDaemon, KuboDaemon]]:
    """Two Kubo daemons, swarm-connected over 127.0.0.1."""
    base = tmp_path_factory.mktemp("kubo")
    a, b = KuboDaemon(base / "a", timeout=60), KuboDaemon(base / "b", timeout=60)
    try:
        a.start()
        b.start()
        assert b.client is not None
        b.client.swarm_connect(a.swarm_addr)
        yield a, b
    finally:
        a.stop()
        b.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def kubo_a(kubo_pair: tuple[KuboDaemon, KuboDaemon]) -> KuboClient:
    assert kubo_pair[0].client is not None
    return kubo_pair[0].client


@pytest.fixture
def kubo_b(kubo_pair: tuple[KuboDaemon, KuboDaemon]) -> KuboClient:
    assert kubo_pair[1].client is not None
    return kubo_pair[1].client
