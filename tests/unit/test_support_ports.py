"""The port pickers (atoll.drill.ports) of the drill and the test helpers: ports below the
kernel's ephemeral range, none handed out twice, one held elsewhere passed over; and
pytest-xdist workers draw from disjoint slices of that range, so two workers never
start servers on the same port (a picked port is bound only later, by the server given
it)."""

from __future__ import annotations

import random
import socket
from typing import Any

import pytest

from atoll.drill.cluster import free_port as drill_free_port
from atoll.drill.ports import PORTS_LOW, PortPicker, ephemeral_low
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


class Scripted(random.Random):
    """A random source whose `randrange` answers from a script first."""

    def __init__(self, script: list[int]) -> None:
        super().__init__(0)
        self.script = script

    def randrange(self, *args: Any, **kwargs: Any) -> int:
        return self.script.pop(0) if self.script else super().randrange(*args, **kwargs)


def test_a_picker_passes_over_a_port_held_elsewhere_and_never_repeats_one() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held_port = int(held.getsockname()[1])
        free = PortPicker(10_000, 12_000, random.Random(5))()  # a port free now
        picker = PortPicker(10_000, 12_000, Scripted([held_port, free, free]))
        assert picker() == free  # the held port was passed over
        again = picker()  # `free` drawn again: passed over, another port drawn
        assert again != free and 10_000 <= again < 12_000
        assert picker.handed_out == {free, again}


def test_pickers_sharing_what_they_handed_out_never_hand_out_one_port_twice() -> None:
    shared: set[int] = set()
    port = PortPicker(10_000, 12_000, random.Random(7), shared)()
    other = PortPicker(10_000, 12_000, Scripted([port]), shared)()
    assert other != port and shared == {port, other}


def test_the_drills_own_ports_lie_below_the_ephemeral_range() -> None:
    if ephemeral_low() - PORTS_LOW <= 1_000:
        pytest.fail("this machine's ephemeral range leaves no room below it for ports")
    ports = [drill_free_port() for _ in range(20)]
    assert all(PORTS_LOW <= port < ephemeral_low() for port in ports)
    assert len(set(ports)) == len(ports)


def test_a_picker_given_a_narrow_range_keeps_to_it() -> None:
    picker = PortPicker(20_000, 20_100, random.Random(3))
    ports = [picker() for _ in range(30)]
    assert all(20_000 <= port < 20_100 for port in ports) and len(set(ports)) == 30


@pytest.mark.parametrize("given", ["5-4", "20000", "20000-20050", "a-b", "80-2000"])
def test_the_drill_refuses_a_port_range_without_room(given: str, tmp_path: Any) -> None:
    from click.testing import CliRunner

    from atoll.cli.drill import drill

    done = CliRunner().invoke(drill, ["partition", "--port-range", given, "--data-dir",
                                      str(tmp_path / "data")])
    assert done.exit_code == 2 and "--port-range" in done.output, done.output
    assert not (tmp_path / "data").exists()  # refused before anything was made
