"""Verdict scenarios: replication in flight is TRANSIENT, faults are DIVERGED, repair heals.

A small replicated cluster of `MemoryTreeStore`s (`Cluster`) models what the verdicts
depend on: origins number their changes, regions apply each origin's changes in order
through the merge rule and advance their cursors with them, retention purges changelog
records and tombstones only once every region applied them (replication/retention.py).
Faults are injected explicitly: a region that drops a change, bytes flipped, a row
edited or deleted behind Atoll's back, a region restored from an old copy.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from atoll.antientropy import (
    DIVERGED_KIND,
    TRANSIENT_KIND,
    UNCONFIRMED_KIND,
    MemoryTreeStore,
    Session,
    SessionConfig,
    Status,
    TableReport,
    TreeShape,
    VerdictBook,
    drive,
    encode_hlc_version,
    exit_code,
    serve,
)
from atoll.antientropy.store import DamageRecord
from atoll.antientropy.versions import decode_hlc_version
from atoll.replication.change import Version

TABLE = "orders"
SHAPE = TreeShape(6, 2)  # 64 buckets, depth 3: small enough that buckets hold several keys


@dataclass(frozen=True)
class Write:
    pk: bytes
    item: bytes | None  # None: a delete
    version: bytes


@dataclass(frozen=True)
class Change:
    origin: str
    seq: int
    hlc: int
    writes: tuple[Write, ...]


class Cluster:
    """Regions, their changelogs and cursors; every step explicit."""

    def __init__(self, regions: tuple[str, ...] = ("a", "b", "c"), bucket_bits: int = 6) -> None:
        self.regions = regions
        self.stores = {r: MemoryTreeStore(r, bucket_bits=bucket_bits) for r in regions}
        self.log: dict[str, list[Change]] = {r: [] for r in regions}
        self.applied: dict[str, dict[str, int]] = {r: {o: 0 for o in regions} for r in regions}
        self.hlc = itertools.count(1000)
        self.book = VerdictBook()
        self.sids = itertools.count(1)
        self.clock = itertools.count(10_000)
        self.purged_through: dict[str, dict[str, int]] = {r: {} for r in regions}
        created = encode_hlc_version(Version(1, regions[0]), None)
        for store in self.stores.values():
            store.create_table(TABLE, created)

    # --- replication ---------------------------------------------------------------------
    def write(self, region: str, pk: bytes, item: bytes | None) -> Change:
        """A local write (item None: a delete), applied and logged at `region`."""
        store = self.stores[region]
        hlc = next(self.hlc)
        current = store.row(TABLE, pk)
        prev = None if current is None else decode_hlc_version(current.version)[0]
        version = encode_hlc_version(Version(hlc, region), prev)
        change = Change(region, len(self.log[region]) + 1, hlc, (Write(pk, item, version),))
        self.log[region].append(change)
        self._apply(region, change)
        return change

    def deliver(self, region: str, origin: str, through: int | None = None,
                drop: bool = False) -> None:
        """`region` applies `origin`'s next changes in order, through seq `through`.
        drop=True: the cursor moves but the rows are not written (a lost apply)."""
        last = len(self.log[origin]) if through is None else through
        for change in self.log[origin][self.applied[region][origin]:last]:
            self._apply(region, change, drop)

    def deliver_all(self) -> None:
        for region in self.regions:
            for origin in self.regions:
                self.deliver(region, origin)

    def _apply(self, region: str, change: Change, drop: bool = False) -> None:
        store = self.stores[region]
        if not drop:
            for write in change.writes:
                store.merge_write(TABLE, write.pk, b"", write.version, write.item)
        self.applied[region][change.origin] = change.seq
        store.set_cursor(change.origin, change.seq, change.hlc)

    def heartbeat(self) -> None:
        """A write from every region, delivered everywhere: tombstones older than all of
        them become purgeable (retention needs every origin's clock to have passed)."""
        for region in self.regions:
            self.write(region, b"heartbeat-" + region.encode(), item(0))
        self.deliver_all()

    def purge(self, region: str) -> int:
        """Retention at `region`: changelog records and tombstones every region applied."""
        store = self.stores[region]
        meet = {o: min(self.applied[r][o] for r in self.regions) for o in self.regions}
        for origin, seq in meet.items():
            if seq:
                store.set_purged(origin, seq, self.log[origin][seq - 1].hlc)
                self.purged_through[region][origin] = seq
        horizon = min(self.log[o][meet[o] - 1].hlc if meet[o] else 0 for o in self.regions)
        purged = 0
        for (pk, sk), entry in store.rows(TABLE).items():
            if entry.item is None and decode_hlc_version(entry.version)[0].hlc < horizon:
                store.purge_tombstone(TABLE, pk, sk)
                purged += 1
        return purged

    # --- verify ----------------------------------------------------------------------------
    def verify(self, regions: tuple[str, ...] | None = None, deep: bool = False,
               repair: bool = False, between: Callable[[str, bytes], None] | None = None,
               book: VerdictBook | None = None) -> TableReport:
        """One session; `between(region, request)` runs before each answer (events that
        happen while the session is under way)."""
        stores = self.stores

        def answer(region: str, data: bytes) -> bytes:
            if between is not None:
                between(region, data)
            return serve(data, stores[region], next(self.clock))

        config = SessionConfig(shape=SHAPE, deep=deep, repair=repair, page_keys=50)
        session = Session(TABLE, regions or self.regions, next(self.sids), next(self.clock),
                          book or self.book, config=config)
        return drive(session, answer, lambda: next(self.clock))

    def identical(self) -> bool:
        views = [{k: (e.version, e.item) for k, e in s.rows(TABLE).items() if e.item is not None}
                 for s in self.stores.values()]
        return all(view == views[0] for view in views)


def kinds(report: TableReport) -> dict[tuple[bytes, str, str], str]:
    return {(d.pk, d.a, d.b): d.kind for d in report.differences}


def item(n: int) -> bytes:
    return b'{"n":{"N":"%d"}}' % n


def seeded(cluster: Cluster, keys: int = 40) -> None:
    for n in range(keys):
        cluster.write(cluster.regions[n % len(cluster.regions)], b"k%03d" % n, item(n))
    cluster.deliver_all()


# --- replication in flight -------------------------------------------------------------

def test_identical_regions_match_and_exit_zero():
    cluster = Cluster()
    seeded(cluster)
    report = cluster.verify()
    assert report.status is Status.MATCH
    assert [p.status for p in report.pairs] == [Status.MATCH] * 3
    assert report.round_trips == 1  # level 1 equal everywhere: nothing else asked
    assert exit_code([report]) == 0


def test_in_flight_write_is_transient_in_every_pass():
    cluster = Cluster()
    seeded(cluster)
    cluster.write("a", b"k001", item(100))  # not delivered to b and c yet
    for _ in range(3):
        report = cluster.verify()
        assert set(kinds(report).values()) == {TRANSIENT_KIND}
        assert kinds(report) == {(b"k001", "a", "b"): TRANSIENT_KIND,
                                 (b"k001", "a", "c"): TRANSIENT_KIND}
        assert "above the cut" in report.differences[0].reason
        assert exit_code([report]) == 0
    cluster.deliver_all()
    assert cluster.verify().status is Status.MATCH


def test_out_of_order_application_across_origins_is_transient():
    cluster = Cluster()
    seeded(cluster)
    cluster.write("a", b"k005", item(1))
    cluster.write("b", b"k005", item(2))  # concurrent: b's is newer by hlc
    cluster.write("c", b"k006", item(3))
    cluster.deliver("a", "c")  # a hears c before b; c hears b before a
    cluster.deliver("c", "b")
    report = cluster.verify()
    assert report.status is Status.TRANSIENT
    assert set(kinds(report).values()) == {TRANSIENT_KIND}
    cluster.deliver_all()
    assert cluster.verify().status is Status.MATCH
    assert cluster.identical()


def test_delete_in_flight_and_tombstone_purged_at_different_moments():
    cluster = Cluster()
    seeded(cluster)
    cluster.write("b", b"k007", None)
    report = cluster.verify()
    assert set(kinds(report).values()) == {TRANSIENT_KIND}  # the delete is above the cut
    cluster.deliver_all()
    cluster.heartbeat()
    assert cluster.purge("a") >= 1  # a drops its tombstone, b and c keep theirs
    report = cluster.verify()
    assert report.status is Status.MATCH  # a tombstone and nothing agree
    assert report.round_trips > 1  # the trees differ (tombstones are in them) ...
    assert report.differences == []  # ... but no key does


def test_tombstone_purged_while_the_session_runs_is_never_confirmed():
    """The one way lag can show a below-cut difference (verdict.py, case 2): region a
    lists the key before applying a delete that region c had already applied and
    purged — a's state cannot repeat in a later session."""
    cluster = Cluster(("a", "c"))
    seeded(cluster)
    cluster.write("c", b"k003", None)
    cluster.write("c", b"heartbeat-c", item(0))
    cluster.write("a", b"heartbeat-a", item(0))
    cluster.deliver("c", "a")
    cursor_a = dict(cluster.applied["a"])
    fired = []

    def race(region: str, data: bytes) -> None:
        # c answers its listing after a applied the delete and c purged its tombstone;
        # a's listing (answered first) still showed the item.
        if region == "c" and data[4:5] == b"k" and not fired:
            fired.append(True)
            cluster.deliver("a", "c")
            cluster.purge("c")

    # a's opening cursors do not include the delete; c's do: the delete is above the cut.
    report = cluster.verify(between=race)
    assert fired and cursor_a["c"] < cluster.applied["a"]["c"]
    assert kinds(report)[(b"k003", "a", "c")] == UNCONFIRMED_KIND  # the race, seen once
    assert DIVERGED_KIND not in kinds(report).values()
    second = cluster.verify()
    assert second.status is Status.MATCH


# --- faults ----------------------------------------------------------------------------

def test_dropped_change_is_diverged_on_the_second_pass_and_repaired():
    cluster = Cluster()
    seeded(cluster)
    cluster.write("a", b"k010", item(999))
    cluster.deliver("b", "a")
    cluster.deliver("c", "a", drop=True)  # c's cursor moves past a change it never stored
    first = cluster.verify()
    assert kinds(first) == {(b"k010", "a", "c"): UNCONFIRMED_KIND,
                            (b"k010", "b", "c"): UNCONFIRMED_KIND}
    assert exit_code([first]) == 0
    second = cluster.verify(repair=True)
    assert kinds(second) == {(b"k010", "a", "c"): DIVERGED_KIND,
                             (b"k010", "b", "c"): DIVERGED_KIND}
    assert exit_code([second]) == 1
    assert [(e.region, e.pk, e.reason, e.outcome) for e in second.repairs] == [
        ("c", b"k010", "older", "applied")]
    assert cluster.stores["c"].row(TABLE, b"k010").item == item(999)
    assert cluster.stores["c"].repair_log[0].winner.startswith("a@")
    assert cluster.verify().status is Status.MATCH
    assert cluster.identical()


def test_a_version_only_one_region_holds_is_pushed_to_the_others():
    cluster = Cluster()
    seeded(cluster)
    cluster.write("b", b"k011", item(5))
    cluster.deliver("a", "b", drop=True)
    cluster.deliver("c", "b", drop=True)
    cluster.verify()
    report = cluster.verify(repair=True)
    assert sorted(e.region for e in report.repairs) == ["a", "c"]
    assert all(e.source == "b" and e.outcome == "applied" for e in report.repairs)
    assert cluster.identical()


def test_dropped_delete_is_repaired_with_the_tombstone():
    cluster = Cluster()
    seeded(cluster)
    cluster.write("a", b"k012", None)
    cluster.deliver("b", "a")
    cluster.deliver("c", "a", drop=True)
    cluster.verify()
    report = cluster.verify(repair=True)
    assert [(e.region, e.reason, e.outcome) for e in report.repairs] == [
        ("c", "deleted", "applied")]
    assert cluster.stores["c"].row(TABLE, b"k012").item is None
    assert cluster.verify().status is Status.MATCH


def test_flipped_byte_is_found_by_the_deep_pass_and_repaired():
    cluster = Cluster()
    seeded(cluster)
    cluster.stores["b"].flip_byte(TABLE, b"k020", b"", at=3)
    assert cluster.verify().status is Status.MATCH  # the tree still says what Atoll wrote
    first = cluster.verify(deep=True)
    assert first.damaged_buckets == {"a": 0, "b": 1, "c": 0}
    assert first.corrupt == [("b", (b"k020", b""))]
    assert set(kinds(first).values()) == {UNCONFIRMED_KIND}
    second = cluster.verify(repair=True)  # the scrub corrected b's tree: a cheap pass sees it
    assert {k for k, v in kinds(second).items() if v == DIVERGED_KIND} == {
        (b"k020", "a", "b"), (b"k020", "b", "c")}
    assert [(e.region, e.reason, e.outcome) for e in second.repairs] == [
        ("b", "corrupt", "applied")]
    assert cluster.stores["b"].row(TABLE, b"k020").intact
    assert cluster.verify(deep=True).status is Status.MATCH


def test_row_edited_with_its_checksum_recomputed_loses_to_the_undamaged_copies():
    cluster = Cluster(("a", "b"))
    seeded(cluster)
    cluster.stores["a"].edit_row(TABLE, b"k021", b"", b'{"n":{"N":"forged"}}')
    first = cluster.verify(deep=True)
    assert first.damaged_buckets == {"a": 1, "b": 0}
    assert kinds(first) == {(b"k021", "a", "b"): UNCONFIRMED_KIND}
    assert first.differences[0].reason == "same version, different contents"
    second = cluster.verify(repair=True)
    # Two regions, equal versions, both checksums pass: the scrub's evidence decides.
    assert [(e.region, e.source, e.reason) for e in second.repairs] == [("a", "b", "content")]
    assert cluster.stores["a"].row(TABLE, b"k021").item == item(21)


def test_damage_found_by_a_scrub_outside_the_session_decides_the_winner():
    """A node scrubs its own rows continuously; what it found is evidence for the
    sessions it runs later (Session(damage=...)), as a session's own scrub would be."""
    cluster = Cluster(("a", "b"))
    seeded(cluster)
    cluster.stores["a"].edit_row(TABLE, b"k021", b"", b'{"n":{"N":"forged"}}')
    scrub = cluster.verify(regions=("a", "b"), deep=True, book=VerdictBook())  # a's own scrub
    assert scrub.damaged_buckets["a"] == 1
    damaged = {b for b in range(SHAPE.buckets)
               if any(pk == b"k021" for pk, _ in cluster.stores["a"].tables[TABLE].rows.get(b, {}))}
    assert set(cluster.stores["a"].damaged(TABLE)) == damaged
    cluster.stores["a"].damage = DamageRecord()  # a restart: the store's record is soft state
    for damage, repaired in (({}, []), ({"a": damaged}, [("a", "b", "content")])):
        book = VerdictBook()
        for repair in (False, True):
            session = Session(TABLE, ("a", "b"), next(cluster.sids), next(cluster.clock), book,
                              config=SessionConfig(shape=SHAPE, repair=repair), damage=damage)
            report = drive(session, lambda r, d: serve(d, cluster.stores[r],
                                                         next(cluster.clock)),
                           lambda: next(cluster.clock))
        assert [(e.region, e.source, e.reason) for e in report.repairs] == repaired
        if not repaired:  # two regions, one version, two contents, no evidence: no guess
            assert report.unrepairable and "different contents" in report.unrepairable[0][1]
    assert cluster.stores["a"].row(TABLE, b"k021").item == item(21)


def test_a_region_remembers_what_its_scrubs_corrected_and_tells_every_session():
    """`atoll verify` then `atoll verify --repair`, two regions: the first run's scrub
    made a's tree agree with the edited row; the second run, a new session with a new
    book and no damage handed in, still learns from a's Open which copy is damaged."""
    cluster = Cluster(("a", "b"))
    seeded(cluster)
    cluster.stores["a"].edit_row(TABLE, b"k021", b"", b'{"n":{"N":"forged"}}')
    assert cluster.verify(deep=True, book=VerdictBook()).damaged_buckets == {"a": 1, "b": 0}
    book = VerdictBook()
    for repair in (False, True):
        session = Session(TABLE, ("a", "b"), next(cluster.sids), next(cluster.clock), book,
                          config=SessionConfig(shape=SHAPE, deep=True, repair=repair))
        report = drive(session, lambda r, d: serve(d, cluster.stores[r], next(cluster.clock)),
                       lambda: next(cluster.clock))
    assert report.damaged_buckets == {"a": 0, "b": 0}  # this session's scrubs found nothing
    assert [(e.region, e.source, e.reason) for e in report.repairs] == [("a", "b", "content")]
    assert cluster.stores["a"].row(TABLE, b"k021").item == item(21)


def test_row_deleted_behind_atolls_back_is_found_and_restored():
    cluster = Cluster()
    seeded(cluster)
    cluster.stores["c"].drop_row(TABLE, b"k030", b"")
    first = cluster.verify(deep=True)
    assert set(kinds(first)) == {(b"k030", "a", "c"), (b"k030", "b", "c")}
    second = cluster.verify(repair=True)
    assert [(e.region, e.reason) for e in second.repairs] == [("c", "missing")]
    assert cluster.identical()


def test_version_bytes_changed_behind_atolls_back():
    cluster = Cluster(("a", "b", "c"))
    seeded(cluster)
    store = cluster.stores["a"]
    bucket = next(b for b, rows in store.tables[TABLE].rows.items() if (b"k004", b"") in rows)
    store.tables[TABLE].rows[bucket][(b"k004", b"")].version = b"garbage"
    first = cluster.verify(deep=True)
    assert {d.reason for d in first.differences} == {"a's version bytes do not decode"}
    assert "unreadable" in first.differences[0].a_state
    second = cluster.verify(repair=True)
    assert [(e.region, e.replaced, e.outcome) for e in second.repairs] == [
        ("a", "(unreadable version)", "applied")]
    assert cluster.identical()


def test_region_restored_from_an_old_snapshot():
    cluster = Cluster()
    seeded(cluster)
    old = cluster.stores["c"].copy()
    old_applied = dict(cluster.applied["c"])
    for n in range(5):
        cluster.write("a", b"k%03d" % n, item(500 + n))
    cluster.deliver_all()
    cluster.stores["c"], cluster.applied["c"] = old, old_applied  # restored
    # The peers still hold the changes c lacks: replication will bring them, TRANSIENT.
    report = cluster.verify()
    assert report.pairs[0].status is Status.MATCH  # a-b
    assert {d.kind for d in report.differences} == {TRANSIENT_KIND}
    assert cluster.verify().status is Status.TRANSIENT
    # Once the peers purged those changes, c can never receive them: DIVERGED.
    cluster.applied["c"] = {o: len(cluster.log[o]) for o in cluster.regions}  # as acked before
    cluster.purge("a")
    cluster.purge("b")
    cluster.applied["c"] = old_applied
    cluster.verify()
    report = cluster.verify(repair=True)
    assert {d.pk for d in report.differences if d.kind == DIVERGED_KIND} == {
        b"k%03d" % n for n in range(5)}
    assert sorted(e.pk for e in report.repairs) == [b"k%03d" % n for n in range(5)]
    assert cluster.identical()


def test_repair_is_idempotent_and_skips_rows_that_moved_on():
    cluster = Cluster(("a", "b"))
    seeded(cluster)
    cluster.write("a", b"k002", item(7))
    cluster.deliver("b", "a", drop=True)
    cluster.verify()
    book_before = cluster.book
    report = cluster.verify(repair=True)
    assert [e.outcome for e in report.repairs] == ["applied"]
    # The same confirmation replayed (a stale second pass) changes nothing.
    again = cluster.verify(repair=True, book=book_before)
    assert [e.outcome for e in again.repairs] == []
    assert cluster.stores["b"].row(TABLE, b"k002").item == item(7)


def test_a_region_that_fails_makes_the_session_incomplete():
    cluster = Cluster(("a", "b"))
    seeded(cluster)
    session = Session(TABLE, ("a", "b"), 1, 0, VerdictBook(), config=SessionConfig(shape=SHAPE))
    out = session.start()
    assert sorted(region for region, _ in out) == ["a", "b"]
    session.fail("b", "timed out", 5)
    assert session.done and session.report.status is Status.INCOMPLETE
    assert exit_code([session.report]) == 2
    assert "timed out" in session.report.pairs[0].error


def test_an_answer_from_another_session_is_refused():
    cluster = Cluster(("a", "b"))
    seeded(cluster)
    one = Session(TABLE, ("a", "b"), 1, 0, VerdictBook(), config=SessionConfig(shape=SHAPE))
    two = Session(TABLE, ("a", "b"), 2, 0, VerdictBook(), config=SessionConfig(shape=SHAPE))
    request = dict(two.start())["a"]
    one.start()
    one.receive("a", serve(request, cluster.stores["a"], 0), 1)
    assert one.done and "another session" in one.report.error


def test_table_missing_in_one_region():
    cluster = Cluster(("a", "b"))
    seeded(cluster)
    # A drop stamped later than anything b applied is in flight as far as a can tell ...
    cluster.stores["b"].drop_table(TABLE, encode_hlc_version(Version(5000, "b"), None))
    assert cluster.verify().differences[0].kind == TRANSIENT_KIND
    # ... one stamped inside the cut (a table dropped behind Atoll's back) is not.
    cluster.stores["b"].tables[TABLE].dropped = encode_hlc_version(Version(1001, "b"), None)
    report = cluster.verify()
    assert report.differences[0].b_state.startswith("table deleted")
    assert report.differences[0].kind == UNCONFIRMED_KIND
    assert cluster.verify().status is Status.DIVERGED
