"""Verify core benchmark: hash trees and comparison of 1,000,000 items in 3 regions.

    .venv/bin/python -m bench.verify_core [--items 1000000] [--regions 3]

In memory (MemoryTreeStore, no network, no SQLite), on one core:
1. build: every region's rows and bucket hashes, one `write` per item (the per-write
   tree update a store makes: two BLAKE2b leaves, one XOR);
2. compare, no difference: a 3-region session (as `atoll verify` runs it, every region
   remote) and the pairwise sessions a node runs with each peer (its own region local);
3. compare, one divergent key: one region misses the newest version of one key (a
   dropped change) — the same sessions, twice (the second pass confirms DIVERGED);
4. deep compare: the same with the scrub first (every row re-hashed: finds rows changed
   behind Atoll's back), one row edited behind Atoll's back.
Printed: CPU seconds, bytes exchanged, round trips and the verdict of each. Targets
(issue 27): 1,000,000 items verified in under 30 s, under 1 MB exchanged for one
divergent key. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterable

from atoll.antientropy import (
    MemoryTreeStore,
    Session,
    SessionConfig,
    TableReport,
    VerdictBook,
    drive,
    encode_hlc_version,
    serve,
)
from atoll.model.keys import encode_key_value
from atoll.replication.change import Version

TABLE = "bench"


def build(regions: Iterable[str], items: int) -> dict[str, MemoryTreeStore]:
    stores = {r: MemoryTreeStore(r) for r in regions}
    names = sorted(stores)
    created = encode_hlc_version(Version(1, names[0]), None)
    for store in stores.values():
        store.create_table(TABLE, created)
    for index in range(items):
        origin = names[index % len(names)]
        version = encode_hlc_version(Version(1000 + index, origin), None)
        pk = encode_key_value({"S": f"user#{index:08d}"}, "S")
        item = b'{"n":{"N":"%d"},"pk":{"S":"user#%08d"}}' % (index, index)
        for store in stores.values():
            store.write(TABLE, pk, b"", version, item)
    last = 1000 + items - 1
    for store in stores.values():
        for origin in names:
            store.set_cursor(origin, items // len(names) + 1, last + 10)
    return stores


def run(stores: dict[str, MemoryTreeStore], regions: list[str], book: VerdictBook,
        sid: int, remote: Iterable[str], deep: bool = False) -> tuple[TableReport, float]:
    clock = itertools.count(1)
    session = Session(TABLE, regions, sid, 0, book, config=SessionConfig(deep=deep),
                      remote=remote)
    started = time.process_time()
    report = drive(session, lambda region, data: serve(data, stores[region], 0),
                   lambda: next(clock))
    return report, time.process_time() - started


def line(what: str, report: TableReport, cpu_s: float) -> None:
    total = sum(report.bytes_by_region.values())
    verdicts = ", ".join(f"{p.a}-{p.b} {p.summary()}" for p in report.pairs)
    print(f"  {what:<44} cpu {cpu_s:7.2f} s  bytes {total:>9,}  round trips "
          f"{report.round_trips:>3}  {verdicts}")


def compare_all(stores: dict[str, MemoryTreeStore], books: dict[str, VerdictBook],
                label: str, deep: bool = False) -> float:
    """The 3-region session and the pairwise ones, each with its own book (a node keeps
    one per peer); returns the 3-region session's CPU seconds."""
    regions = sorted(stores)
    sid = itertools.count(1)
    book = books.setdefault("all", VerdictBook())
    report, cpu_total = run(stores, regions, book, next(sid), regions, deep)
    line(f"{label}: {len(regions)} regions at once", report, cpu_total)
    for a, b in itertools.combinations(regions, 2):
        book = books.setdefault(f"{a}-{b}", VerdictBook())
        report, cpu_s = run(stores, [a, b], book, next(sid), [b], deep)
        line(f"{label}: {a} with peer {b}", report, cpu_s)
    return cpu_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--regions", type=int, default=3)
    args = parser.parse_args()
    regions = [f"region-{i}" for i in range(args.regions)]
    started = time.process_time()
    stores = build(regions, args.items)
    build_s = time.process_time() - started
    print(f"verify core: {args.items:,} items x {len(regions)} regions in memory")
    print(f"  build (rows + trees, all regions)            cpu {build_s:7.2f} s  "
          f"({build_s / (args.items * len(regions)) * 1e6:.2f} us a write)")

    compare_all(stores, {}, "no difference")

    pk = encode_key_value({"S": f"user#{args.items // 2:08d}"}, "S")
    newer = encode_hlc_version(Version(1000 + args.items + 1, regions[0]), None)
    for store in stores.values():
        store.set_cursor(regions[0], args.items // len(regions) + 2, 1000 + args.items + 1)
        if store.region != regions[-1]:  # the last region dropped this change
            store.write(TABLE, pk, b"", newer, b'{"n":{"N":"-1"}}')
    books: dict[str, VerdictBook] = {}
    first = compare_all(stores, books, "one divergent key, pass 1")
    second = compare_all(stores, books, "one divergent key, pass 2")
    print(f"  one divergent key, both passes, 3-region sessions: cpu {first + second:.2f} s")

    stores[regions[1]].edit_row(TABLE, encode_key_value({"S": "user#00000007"}, "S"), b"",
                                b'{"n":{"N":"edited"}}')
    deep_first = compare_all(stores, {}, "deep, pass 1", deep=True)
    print(f"  deep (scrub of every row) pass, 3-region session: cpu {deep_first:.2f} s")


if __name__ == "__main__":
    main()
