"""IntegrityWatch: what the node does when its storage finds a row failing its checksum.

Theory of operation: the storage reports every checksum failure to its IntegrityFaults
(atoll.storage.integrity) before refusing to serve the row; this listener logs each
damaged row once, with its table's name and its key as written (or the key's bytes when
the table's schema cannot decode them), and the node's health turns "degraded" from
that moment (`reasons`): `/health` detail, `/_atoll/status`, the console and `atoll
status` all say so. Requests that touch the row keep failing with DynamoDB's
InternalServerError shape (the API maps CorruptionDetected); the others are served.
Listeners may run on the writer thread: logging and the counters are thread-safe, and
the catalog is only read.
"""

from __future__ import annotations

import logging
from typing import Any

from atoll.engine.catalog import Catalog
from atoll.node.conflictlog import readable_key
from atoll.storage.integrity import IntegrityFaults, Located

log = logging.getLogger(__name__)

ROWS_IN_STATUS = 20


class IntegrityWatch:
    def __init__(self, region: str, faults: IntegrityFaults, catalog: Catalog) -> None:
        self.region = region
        self.faults = faults
        self.catalog = catalog
        faults.listeners.append(self._found)

    def _describe(self, kind: str, tid: int | None, pk: bytes | None, sk: bytes | None
                  ) -> dict[str, Any]:
        table = self.catalog.current_by_tid(tid) if tid is not None else None
        entry: dict[str, Any] = {"kind": kind, "table": table.name if table else None,
                                 "key": None}
        if table is not None and pk is not None and sk is not None:
            entry["key"] = (readable_key(self.catalog, table.name, pk.hex(), sk.hex())
                            or {"pk": pk.hex(), "sk": sk.hex()})
        elif pk is not None:
            entry["key"] = {"pk": pk.hex(), "sk": (sk or b"").hex()}
        return entry

    def _found(self, error: Located, new: bool) -> None:
        if not new:
            return  # logged when first found; counted by IntegrityFaults
        where = self._describe(error.kind, error.tid, error.pk, error.sk)
        log.error("checksum failure in region %s: %s of table %s, key %s (%s); the row is "
                  "not served, this region reports itself degraded", self.region,
                  where["kind"], where["table"] or "?", where["key"], error.message)

    def reasons(self) -> list[str]:
        """Why this region is degraded, if it is (empty otherwise)."""
        damaged = self.faults.damaged
        if not damaged:
            return []
        rows = "1 stored row" if damaged == 1 else f"{damaged} stored rows"
        return [f"{rows} failed the checksum (not served)"]

    def status(self) -> dict[str, Any]:
        rows = list(self.faults.rows.items())[:ROWS_IN_STATUS]
        return {"checksum_failures": self.faults.detections,
                "damaged_rows": self.faults.damaged,
                "rows": [{**self._describe(r.kind, r.tid, r.pk, r.sk), "detections": n}
                         for r, n in rows]}
