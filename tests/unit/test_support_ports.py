"""The test helpers' port picker: pytest-xdist workers draw from disjoint slices of the
range below the kernel's ephemeral ports, so two workers never start servers on the
same port (a picked port is bound only later, by the server given it)."""

from __future__ import annotations

import pytest

from tests import support


def slice_of(monkeypatch: pytest.MonkeyPatch, worker: str | None, count: str | None
             ) -> tuple[int, int]:
    for name, value in (("PYTEST_XDIST_WORKER", worker),
                        ("PYTEST_XDIST_WORKER_COUNT", count)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return support._worker_ports(10_000, 32_768)


def test_workers_get_disjoint_slices_that_stay_in_the_range(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for count in (2, 3, 8):
        slices = sorted(slice_of(monkeypatch, f"gw{i}", str(count)) for i in range(count))
        assert slices[0][0] == 10_000 and slices[-1][1] <= 32_768
        for (low, high), (next_low, _) in zip(slices, slices[1:]):
            assert low < high <= next_low
        assert all(high - low >= (32_768 - 10_000) // count for low, high in slices)


def test_one_process_without_xdist_uses_the_whole_range(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert slice_of(monkeypatch, None, None) == (10_000, 32_768)
    assert slice_of(monkeypatch, "gw0", "1") == (10_000, 32_768)


def test_free_port_answers_from_this_workers_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    slice_of(monkeypatch, "gw1", "2")  # this process as worker gw1 of two
    if support._EPHEMERAL_LOW - support._PORTS_LOW <= 1_000:
        pytest.fail("this machine's ephemeral range leaves no room below it for test ports")
    low, high = support._worker_ports(support._PORTS_LOW, support._EPHEMERAL_LOW)
    ports = [support.free_port() for _ in range(20)]
    assert all(low <= port < high for port in ports)
    assert len(set(ports)) == len(ports)
