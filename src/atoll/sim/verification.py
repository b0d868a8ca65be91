"""Verify in the simulator: the node's verify protocol run against the simulated regions,
during the run and after faults that only verify can find.

Theory of operation
- Each region's `TreeStore` is the node's own: `StorageTreeStore` over the region's
  SQLite storage (its `TreeAccess`, whose writes — a scrub's correction, a repair — run
  through `write_sync` as the simulator's jobs do) with the node's `repair_job`. The
  requests and answers are the protocol's bytes: `Session` asks, `serve` answers.
- During the run (`SimVerifier.tick`), sessions start one after another over every live
  region and one live table, now and then a deep one (the scrub first). Each request
  reaches its region after a random delay and is answered there and then, at that
  moment's state, while writes, applies, purges and rebuilds go on between the answers;
  a region that crashed before its request arrived fails the session (INCOMPLETE). Every
  verdict such a session reaches is kept: a run without verify faults must never show a
  DIVERGED key (verdict.py argues why lag cannot produce one) — except between a region
  and a peer that purged changes the region had not applied yet (the simulator's
  purge-log fault, the node's bounded maximum): verdict.py judges those DIVERGED by
  design (the region can no longer get them from that log; it rebuilds from a
  snapshot meanwhile). The session's Open answers say which pairs are in that state;
  such verdicts are counted apart (`verify_diverged_past_retention`), not failures.
- After the run healed (`after_heal`), a run with verify faults does to some regions
  what replication cannot see: a region drops one applied change (its cursor moves, the
  row does not), a stored row's bytes flip (its checksum no longer passes), a row's
  value is edited with its checksum recomputed (it reads as valid), a live row is
  deleted, and a region's data — items, tombstones, index rows and trees — is
  restored from a copy taken before the last writes, its replication state (cursors,
  changelog) kept. The file is changed while its region is down, as an operator or a
  disk would. Then, with the cluster quiet: a deep pass (the scrub finds the rows
  changed behind Atoll's back, every below-cut difference is a first sighting), a
  second pass that confirms and repairs, and a third deep pass that must be MATCH.
  The keys the confirming pass names DIVERGED must be exactly the keys whose stored
  rows differ between regions (read straight from the files, `stored_states`), which
  must include every key a fault touched; the simulator's checkers then judge the
  repaired regions as after any run (identical, every acknowledged write present).
- A run without verify faults ends with a deep pass that must be MATCH.

Restoring from a copy taken before *puts only* is deliberate: a restore from before a
delete whose tombstone every region has since purged gives back a live item that no
other region can contradict, and the repair rule pushes the only version there is
(antientropy/repair.py) — what a restore older than the tombstone retention does in
any store that purges tombstones.

Randomness comes from the run's seed through a generator of its own: the replication
run (its trace) is the same with verify on or off, until the faults phase.
"""

from __future__ import annotations

import heapq
import os
import random
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from atoll.antientropy import (
    DIVERGED_KIND,
    Session,
    SessionConfig,
    Status,
    TableReport,
    VerdictBook,
    drive,
    serve,
)
from atoll.antientropy.messages import Opened
from atoll.antientropy.store import KeyPos
from atoll.antientropy.wire import decode_response
from atoll.checksum import crc32
from atoll.engine.repairs import repair_job
from atoll.engine.replica_store import EngineReplicaStore
from atoll.engine.treestore import StorageTreeStore
from atoll.replication.change import Change, ItemWrite, Op
from atoll.replication.cursors import ZERO
from atoll.replication.errors import BadMessage
from atoll.replication.faults import DropItemWrites
from atoll.replication.store import ReplicaStore
from atoll.storage import SqliteStorage
from atoll.storage.treeprotocol import TreeAccess

SESSION_GAP_MS = (20, 200)  # between one session's end and the next one's start
DELAY_MS = (1, 25)  # a request's (and its answer's) way to a region
DEEP_EVERY = 8  # about one mid-run session in this many scrubs first
MAX_SESSION_MS = 30_000  # a session still running after this long fails the run
MAX_MID_RUN_SESSIONS = 64
LATE_PUTS = 8
SETTLE_STEPS_MAX = 2000
FAULTS = ("drop", "flip", "edit", "delete", "restore")
MAX_REPORTED = 10

Key = tuple[str, bytes, bytes]  # (table name, pk, sk)
State = tuple[int, str, bytes] | None  # a live item's (hlc, origin, stored bytes); None: no item


class Cluster(Protocol):
    """What verify needs of the simulation (atoll.sim.simulator.Simulation)."""

    regions: tuple[str, ...]
    stores: dict[str, ReplicaStore]
    now_ms: int

    def up(self) -> list[str]: ...
    def crash(self, region: str) -> None: ...
    def restart(self, region: str) -> None: ...
    def step(self) -> None: ...
    def caught_up(self) -> bool: ...
    def local_write(self, region: str, ops: list[Op]) -> Change | None: ...
    def storage(self, region: str) -> SqliteStorage: ...
    def event(self, text: str) -> None: ...


@dataclass(slots=True)
class _Running:
    session: Session
    started_ms: int
    deep: bool
    opened: dict[str, Opened] = field(default_factory=dict)

    def past_retention(self, a: str, b: str) -> bool:
        """Whether one side's cursor for some origin is below the other side's purge
        point for it (verdict.py: such a pair's differences are DIVERGED by design)."""
        sides = (self.opened.get(a), self.opened.get(b))
        return any(behind is not None and ahead is not None and any(
            behind.cursors.get(origin, ZERO) < purged for origin, purged in ahead.purged.items())
            for behind, ahead in (sides, sides[::-1]))


@dataclass(slots=True)
class VerifyLog:
    """What verify saw in a run, for the checker and the summary."""

    sessions: int = 0
    deep_sessions: int = 0
    incomplete: int = 0
    transient_keys: int = 0
    diverged: list[str] = field(default_factory=list)  # mid-run DIVERGED verdicts
    diverged_past_retention: int = 0  # DIVERGED between a region and a peer past its log
    problems: list[str] = field(default_factory=list)
    faulted: dict[str, list[Key]] = field(default_factory=dict)
    repairs: int = 0

    def counters(self) -> dict[str, int]:
        return {"verify_sessions": self.sessions, "verify_deep": self.deep_sessions,
                "verify_incomplete": self.incomplete,
                "verify_transient_keys": self.transient_keys,
                "verify_diverged_past_retention": self.diverged_past_retention,
                "verify_repairs": self.repairs}


class SimVerifier:
    def __init__(self, cluster: Cluster, seed: int, faults: bool) -> None:
        self.cluster = cluster
        self.rng = random.Random(f"verify:{seed}")
        self.faults = faults
        self.book = VerdictBook()
        self.log = VerifyLog()
        self.drops = {r: DropItemWrites(r, 0) for r in cluster.regions}
        self._stores: dict[str, tuple[ReplicaStore, TreeAccess, StorageTreeStore]] = {}
        self._running: _Running | None = None
        self._next_ms = cluster.now_ms + self.rng.randint(*SESSION_GAP_MS)
        self._queue: list[tuple[int, int, str, bytes, bool]] = []  # (due, n, region, data, answer?)
        self._sent = 0
        self._sid = 0
        self._stopped = False  # after healing: no more sessions during the run

    # --- the regions' tree stores --------------------------------------------------------
    def tree_store(self, region: str) -> StorageTreeStore:
        """The region's verify store over its current incarnation's storage."""
        store = self.cluster.stores[region]
        held = self._stores.get(region)
        if held is not None and held[0] is store:
            return held[2]
        if held is not None:
            held[1].close()
        if not isinstance(store, EngineReplicaStore):
            raise TypeError("verify in the simulator needs the node's SQLite store")
        context = store.context
        access = self.cluster.storage(region).tree_access()
        tree_store = StorageTreeStore(access, region,
                                      lambda record, now_ms: repair_job(context, record, now_ms))
        self._stores[region] = (store, access, tree_store)
        return tree_store

    def close(self) -> None:
        for _store, access, _tree_store in self._stores.values():
            access.close()
        self._stores.clear()

    # --- during the run ------------------------------------------------------------------
    def tick(self, now_ms: int) -> None:
        """Deliver what is due; start the next session when it is time."""
        if self._stopped:
            return
        while self._queue and self._queue[0][0] <= now_ms:
            _due, _n, region, data, is_answer = heapq.heappop(self._queue)
            self._deliver(region, data, is_answer, now_ms)
        running = self._running
        if running is not None and now_ms - running.started_ms > MAX_SESSION_MS:
            self.log.problems.append(f"a verify session ran over {MAX_SESSION_MS} ms")
            self._finish(running, now_ms)
        if self._running is None and now_ms >= self._next_ms \
                and self.log.sessions < MAX_MID_RUN_SESSIONS:
            self._start(now_ms)

    def _start(self, now_ms: int) -> None:
        up = self.cluster.up()
        tables = _live_tables(self.cluster.stores[up[0]]) if up else []
        if len(up) < 2 or not tables:
            self._next_ms = now_ms + self.rng.randint(*SESSION_GAP_MS)
            return
        deep = self.rng.randrange(DEEP_EVERY) == 0
        self._sid += 1
        session = Session(self.rng.choice(tables), up, self._sid, now_ms, self.book,
                          config=SessionConfig(deep=deep))
        self._running = _Running(session, now_ms, deep)
        self.cluster.event(f"verify {session.table} over {up}{' deep' if deep else ''}")
        self._send(session.start(), now_ms)

    def _send(self, outbound: Sequence[tuple[str, bytes]], now_ms: int) -> None:
        for region, data in outbound:
            self._sent += 1
            heapq.heappush(self._queue, (now_ms + self.rng.randint(*DELAY_MS), self._sent,
                                         region, data, False))

    def _deliver(self, region: str, data: bytes, is_answer: bool, now_ms: int) -> None:
        running = self._running
        if running is None:
            return
        session = running.session
        if is_answer:
            try:
                response = decode_response(data)
            except BadMessage:
                response = None
            if isinstance(response, Opened):
                running.opened[region] = response
            self._send(session.receive(region, data, now_ms), now_ms)
        elif region not in self.cluster.up():
            session.fail(region, "down", now_ms)
        else:
            answer = serve(data, self.tree_store(region), now_ms)
            self._sent += 1
            heapq.heappush(self._queue, (now_ms + self.rng.randint(*DELAY_MS), self._sent,
                                         region, answer, True))
        if session.done:
            self._finish(running, now_ms)

    def _finish(self, running: _Running, now_ms: int) -> None:
        self._running = None
        self._queue.clear()
        self._next_ms = now_ms + self.rng.randint(*SESSION_GAP_MS)
        report = running.session.report
        self._count(report, running.deep)
        damaged = {r: n for r, n in report.damaged_buckets.items() if n}
        if damaged or report.corrupt:
            self.log.problems.append(
                f"mid-run session {running.session.sid}'s scrub of {report.table} found "
                f"buckets unlike their rows {damaged} or corrupt rows {report.corrupt[:3]}: "
                "the trees were not kept with every write")
        for difference in report.differences:
            if difference.kind == DIVERGED_KIND and running.past_retention(difference.a,
                                                                            difference.b):
                self.log.diverged_past_retention += 1
            elif difference.kind == DIVERGED_KIND:
                self.log.diverged.append(
                    f"mid-run session {running.session.sid} judged {difference.table} "
                    f"{_key_text(difference.key)} DIVERGED between {difference.a} "
                    f"({difference.a_state}) and {difference.b} ({difference.b_state}): "
                    f"{difference.reason}")

    def _count(self, report: TableReport, deep: bool) -> None:
        self.log.sessions += 1
        self.log.deep_sessions += deep
        self.log.incomplete += report.status is Status.INCOMPLETE
        self.log.transient_keys += sum(p.transient + p.unconfirmed for p in report.pairs)
        self.log.repairs += sum(entry.outcome == "applied" for entry in report.repairs)

    # --- after healing -------------------------------------------------------------------
    def after_heal(self) -> list[str]:
        """The faults phase (or a last deep pass); violations found (empty = pass)."""
        self._stopped = True
        self._running = None
        self._queue.clear()
        problems = [*self.log.problems, *self.log.diverged][:MAX_REPORTED]
        if self.faults:
            problems += self._faults_phase()
        else:
            for report in self._pass(deep=True, repair=False):
                if report.status is not Status.MATCH or report.differences \
                        or any(report.damaged_buckets.values()) or report.corrupt:
                    problems.append(f"a healed run's verify of {report.table} is "
                                    f"{report.status.name} (damaged buckets "
                                    f"{report.damaged_buckets}): {_differences(report)}")
        return problems[:MAX_REPORTED]

    def _pass(self, deep: bool, repair: bool) -> list[TableReport]:
        """One session per live table over every region, driven to its end at once."""
        reports = []
        regions = sorted(self.cluster.regions)
        for table in _live_tables(self.cluster.stores[regions[0]]):
            self._sid += 1
            session = Session(table, regions, self._sid, self.cluster.now_ms, self.book,
                              config=SessionConfig(deep=deep, repair=repair))
            report = drive(session, self._answer, lambda: self.cluster.now_ms)
            self._count(report, deep)
            self.cluster.event(f"verify {table}: {report.status.name} "
                               f"{len(report.diverged_keys())} diverged "
                               f"{len(report.repairs)} repairs")
            reports.append(report)
        return reports

    def _answer(self, region: str, data: bytes) -> bytes:
        return serve(data, self.tree_store(region), self.cluster.now_ms)

    def _faults_phase(self) -> list[str]:
        cluster, rng = self.cluster, self.rng
        regions = sorted(cluster.regions)
        targets = {fault: rng.choice(regions) for fault in FAULTS}
        snapshot_path = cluster.storage(targets["restore"]).path + ".old"
        cluster.storage(targets["restore"]).copy_to(snapshot_path)
        self._drop_one(targets["drop"])
        for _ in range(LATE_PUTS):
            self._late_put(rng.choice(regions))
        problems = self._settle("the late puts")
        for fault in ("restore", "flip", "edit", "delete"):
            region = targets[fault]
            cluster.crash(region)
            path = cluster.storage(region).path
            if fault == "restore":
                restore_data(path, snapshot_path)
            else:
                key = damage_row(path, fault, rng)
                if key is not None:
                    self.log.faulted.setdefault(fault, []).append(key)
            cluster.event(f"verify fault: {fault} in {region}")
            cluster.restart(region)
        os.remove(snapshot_path)
        problems += self._settle("the faults")
        return problems or self._judge_faults()

    def _drop_one(self, region: str) -> None:
        """The region silently drops the next replicated item write it applies."""
        writer = self.rng.choice([r for r in sorted(self.cluster.regions) if r != region])
        self.drops[region].arm(1)
        change = self._late_put(writer)
        for _ in range(SETTLE_STEPS_MAX):
            if self.drops[region].dropped:
                break
            self.cluster.step()
        if self.drops[region].dropped and change is not None:
            op = change.ops[0]
            if isinstance(op, ItemWrite):
                self.log.faulted.setdefault("drop", []).append((op.table, op.pk, op.sk))
        self.cluster.event(f"verify fault: drop in {region} "
                           f"({self.drops[region].dropped} dropped)")

    def _late_put(self, region: str) -> Change | None:
        self._sid += 1
        number = self.rng.randrange(12)
        item = {"pk": {"S": f"k{number}"}, "v": {"N": str(10_000 + self._sid)},
                "by": {"S": region}}
        return self.cluster.local_write(region, [ItemWrite("t0", f"k{number}".encode(), b"",
                                                           item)])

    def _settle(self, after: str) -> list[str]:
        for _ in range(SETTLE_STEPS_MAX):
            self.cluster.step()
            if self.cluster.caught_up():
                return []
        return [f"not caught up {SETTLE_STEPS_MAX} steps after {after}"]

    def _judge_faults(self) -> list[str]:
        expected = differing_keys({r: stored_states(self.cluster.storage(r).path)
                                   for r in self.cluster.regions})
        problems = [f"the {fault} fault left {_key_text(key[1:])} of {key[0]} like the "
                    "other regions" for fault, keys in sorted(self.log.faulted.items())
                    for key in keys if key not in expected]
        first = self._pass(deep=True, repair=False)
        confirm = self._pass(deep=False, repair=True)
        named = {(r.table, pk, sk) for r in confirm for pk, sk in r.diverged_keys()}
        for key in sorted(expected - named):
            problems.append(f"{key[0]} {_key_text(key[1:])} differs between regions but "
                            "verify did not name it DIVERGED")
        for key in sorted(named - expected):
            problems.append(f"verify named {key[0]} {_key_text(key[1:])} DIVERGED but the "
                            "regions hold the same row")
        for report in first + confirm:
            if report.status is Status.INCOMPLETE:
                problems.append(f"verify of {report.table} incomplete: {report.error}")
        for report in confirm:
            problems += [f"{report.table} {_key_text(key)} not repaired: {why}"
                         for key, why in report.unrepairable]
        for report in self._pass(deep=True, repair=False):
            if report.status is not Status.MATCH or report.differences or report.corrupt:
                problems.append(f"after repair, verify of {report.table} is "
                                f"{report.status.name}: {_differences(report)}")
        return problems


def _live_tables(store: ReplicaStore) -> list[str]:
    return sorted(name for name, state in store.table_states().items() if state.live)


def _key_text(key: KeyPos) -> str:
    return key[0].decode(errors="replace") + (f"/{key[1]!r}" if key[1] else "")


def _differences(report: TableReport) -> str:
    shown = [f"{d.kind} {_key_text(d.key)} {d.a}={d.a_state} {d.b}={d.b_state}"
             for d in report.differences[:3]]
    return "; ".join(shown) or report.error or "no differences listed"


# --- the files, read and changed behind Atoll's back ---------------------------------------
def stored_states(path: str) -> dict[Key, State]:
    """Every key's tree row as stored in the SQLite file at `path`: a live item's (hlc,
    origin, stored bytes) unless a tombstone is newer (a live item at its
    tombstone's version joined that delete: it is the row); None for a tombstone. Read with
    plain SQL, not through Atoll, so the oracle shares no code with what it checks."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = dict(conn.execute("SELECT tid, name FROM tables").fetchall())
        states: dict[Key, State] = {}
        dead: dict[Key, tuple[int, str]] = {}
        for tid, pk, sk, hlc, origin in conn.execute(
                "SELECT tid, pk, sk, hlc, origin FROM tombstones"):
            dead[(names[tid], bytes(pk), bytes(sk))] = (int(hlc), str(origin))
        for tid, pk, sk, item, hlc, origin in conn.execute(
                "SELECT tid, pk, sk, item, hlc, origin FROM items"):
            key = (names[tid], bytes(pk), bytes(sk))
            tomb = dead.get(key)
            if tomb is None or (int(hlc), str(origin)) >= tomb:
                states[key] = (int(hlc), str(origin), bytes(item))
        for key in dead:
            states.setdefault(key, None)
        return states
    finally:
        conn.close()


def differing_keys(by_region: Mapping[str, Mapping[Key, State]]) -> set[Key]:
    """Keys whose stored state is not the same in every region (a tombstone and no row
    at all count as the same: no item)."""
    keys = {key for states in by_region.values() for key in states}
    return {key for key in keys if len({states.get(key) for states in by_region.values()}) > 1}


def _edit(path: str, work: Callable[[sqlite3.Connection], Key | None]) -> Key | None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        found = work(conn)
        conn.execute("COMMIT")
        return found
    finally:
        conn.close()


_EDITED = b'"v":{"N":"'


def damage_row(path: str, fault: str, rng: random.Random) -> Key | None:
    """Flip one bit of a live row's stored bytes (its checksum left as it was), edit
    its value with the checksum recomputed (it reads as valid), or delete a live row
    (its index rows and its table's counters left as they were)."""

    def work(conn: sqlite3.Connection) -> Key | None:
        rows = conn.execute("SELECT tid, h, name, pk, sk, item FROM items JOIN tables "
                            "USING (tid) ORDER BY name, pk, sk").fetchall()
        if fault == "edit":  # an item with a number `v` (counter- or set-only ones have none)
            rows = [row for row in rows if _EDITED in bytes(row[5])]
        if not rows:
            return None
        tid, h, name, pk, sk, item = rows[rng.randrange(len(rows))]
        where = (tid, h, pk, sk)
        if fault == "flip":
            raw = bytearray(item)
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
            conn.execute("UPDATE items SET item=? WHERE tid=? AND h=? AND pk=? AND sk=?",
                         (bytes(raw), *where))
        elif fault == "edit":
            edited = bytes(item).replace(_EDITED, b'"v":{"N":"-', 1)
            conn.execute("UPDATE items SET item=?, crc=? WHERE tid=? AND h=? AND pk=? AND sk=?",
                         (edited, crc32(edited), *where))
        else:
            conn.execute("DELETE FROM items WHERE tid=? AND h=? AND pk=? AND sk=?", where)
        return (str(name), bytes(pk), bytes(sk))

    return _edit(path, work)


RESTORED_TABLES = ("items", "tombstones", "index_items", "tree_buckets", "tree_deltas",
                   "tree_progress")


def restore_data(path: str, old_path: str) -> None:
    """The data of the SQLite file at `old_path` (rows, index rows, trees, per-table
    counts) written over the file at `path`; its replication state (cursors, changelog,
    table catalog) kept. The tables must be the same in both (no DDL in between)."""

    def work(conn: sqlite3.Connection) -> Key | None:
        for table in RESTORED_TABLES:
            conn.execute(f"DELETE FROM main.{table}")
            conn.execute(f"INSERT INTO main.{table} SELECT * FROM old.{table}")
        conn.execute("UPDATE main.tables SET item_count=(SELECT o.item_count FROM old.tables "
                     "o WHERE o.tid=main.tables.tid), size_bytes=(SELECT o.size_bytes FROM "
                     "old.tables o WHERE o.tid=main.tables.tid)")
        return None

    _edit_attached(path, old_path, work)


def _edit_attached(path: str, old_path: str,
                   work: Callable[[sqlite3.Connection], Key | None]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS old", (old_path,))
        conn.execute("BEGIN IMMEDIATE")
        work(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()


__all__ = ["SimVerifier", "VerifyLog", "damage_row", "differing_keys",
           "restore_data", "stored_states"]
