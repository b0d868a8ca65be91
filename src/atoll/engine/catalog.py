"""The table catalog: every table definition of this node, owned in one place.

Theory of operation: a definition has two views, because requests and write jobs see
the catalog at different moments.
- The request view (`get`, `table`, `names`): name -> TableDef, read and changed on the
  event-loop thread. It is what requests are validated against. A CreateTable reserves
  its name here before its job commits (`reserve`) and a DeleteTable removes it after
  (`publish_drop`); an applied remote DDL publishes once its job committed. While this
  node's CreateTable or DeleteTable is in flight (`begin_ddl` .. `end_ddl`, from before
  its job runs until its result is published or it failed) the name is `in_flight`: a
  refresh from storage (node/shared_region.py) leaves it alone, because storage does not
  show the DDL until it commits, and the DDL itself publishes its outcome.
- The commit view (`current`, `ensure_live`, `is_live`, `committed_*`): tid -> TableDef
  and the set of live tids, changed only by write jobs, in commit order. Write jobs
  maintain index rows by it, so a job that runs after an UpdateTable's job uses the new
  indexes even if the request view has not caught up yet.
DDL that rewrites a definition holds `ddl_lock`, so definitions change one at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from atoll.engine.tabledef import TableDef, table_name_of
from atoll.errors import ResourceNotFound


class Catalog:
    def __init__(self, tables: Iterable[TableDef] = ()) -> None:
        self._by_name: dict[str, TableDef] = {}
        for table in tables:
            self._by_name[table.name] = table
        self._by_tid: dict[int, TableDef] = {t.tid: t for t in self._by_name.values()}
        self._live_tids: set[int] = set(self._by_tid)
        self._in_flight: dict[str, int] = {}  # name -> this node's DDL jobs not yet done
        self.ddl_lock = asyncio.Lock()

    # --- the request view (event-loop thread) --------------------------------------------
    def get(self, name: str) -> TableDef | None:
        return self._by_name.get(name)

    def table(self, table_name: str, restoring_ok: bool = False) -> TableDef:
        """The table a request names (by name or ARN), or ResourceNotFound. A table a
        restore is still loading is CREATING: only DDL-side callers (`restoring_ok`) get it,
        as DynamoDB serves no item operation on a table that is not ACTIVE."""
        table = self._by_name.get(table_name)
        if table is None:
            name = table_name_of(table_name)
            table = self._by_name.get(name)
            if table is None:
                raise ResourceNotFound(f"Requested resource not found: Table: {name} not found")
        if table.restore is not None and not restoring_ok and table.restoring:
            raise ResourceNotFound(f"Requested resource not found: Table: {table.name} is being "
                                   "restored (TableStatus CREATING)")
        return table

    def names(self) -> list[str]:
        """Names of tables that exist (not those whose CreateTable is still committing),
        without Atoll's internal tables (engine/internal.py)."""
        return sorted(n for n, t in self._by_name.items() if t.tid and not n.startswith("atoll:"))

    def tables(self) -> list[TableDef]:
        return list(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def reserve(self, table: TableDef) -> None:
        """Hold a new table's name while its CreateTable commits."""
        self._by_name[table.name] = table

    def release(self, name: str) -> None:
        """Give up a reservation whose CreateTable failed."""
        self._by_name.pop(name, None)

    def begin_ddl(self, name: str) -> None:
        """This node's DDL on `name` is about to run: refreshes leave the name alone."""
        self._in_flight[name] = self._in_flight.get(name, 0) + 1

    def end_ddl(self, name: str) -> None:
        """The DDL begun on `name` published its outcome or failed."""
        left = self._in_flight.get(name, 0) - 1
        if left > 0:
            self._in_flight[name] = left
        else:
            self._in_flight.pop(name, None)

    def in_flight(self, name: str) -> bool:
        return name in self._in_flight

    def publish(self, table: TableDef) -> None:
        """A committed definition (created, updated or replicated) becomes visible."""
        self._by_name[table.name] = table

    def publish_update(self, old: TableDef, updated: TableDef) -> None:
        """An UpdateTable committed: visible unless the table was dropped or replaced."""
        current = self._by_name.get(old.name)
        if current is not None and current.tid == old.tid:
            self._by_name[old.name] = updated

    def publish_drop(self, name: str, table: TableDef | None = None) -> None:
        """A drop committed: the name disappears (only if it still names `table`)."""
        if table is None or self._by_name.get(name) is table:
            self._by_name.pop(name, None)

    # --- the commit view (write jobs, commit order) --------------------------------------
    def current(self, table: TableDef) -> TableDef:
        """Inside a write job: the table's definition as of this point in commit order."""
        return self._by_tid.get(table.tid, table)

    def current_by_tid(self, tid: int) -> TableDef | None:
        return self._by_tid.get(tid)

    def is_live(self, tid: int) -> bool:
        return tid in self._live_tids

    def ensure_live(self, table: TableDef) -> None:
        """Inside a write job: the table may have been dropped since the request was
        validated."""
        if table.tid not in self._live_tids:
            raise ResourceNotFound(f"Requested resource not found: Table: {table.name} not found")

    def committed_create(self, table: TableDef) -> None:
        self._live_tids.add(table.tid)
        self._by_tid[table.tid] = table

    def committed_update(self, table: TableDef) -> None:
        self._by_tid[table.tid] = table

    def committed_drop(self, tid: int) -> None:
        self._live_tids.discard(tid)
        self._by_tid.pop(tid, None)
