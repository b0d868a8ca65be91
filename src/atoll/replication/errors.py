"""Replication errors: what a peer or a caller can get wrong (typed, never `invariant`).

ReplicationError
├── BadChange      a change record is damaged, malformed or not canonical (the peer misbehaved)
├── BadMessage     a protocol message is malformed (the peer misbehaved)
├── UnknownTable   a change writes to a table this region has never seen; it is held, not applied
└── NotAPeer       a request from a region that is not a peer of this one
"""

from __future__ import annotations


class ReplicationError(Exception):
    """Base of the replication core's errors."""


class BadChange(ReplicationError):
    """A change record failed its checksum or its shape check; it is refused."""


class BadMessage(ReplicationError):
    """A protocol message from a peer is malformed; it is refused as a whole."""


class UnknownTable(ReplicationError):
    """A change writes into a table this store has never seen (its creation has not
    arrived yet): the change is held and the origin's cursor stays before it."""

    def __init__(self, table: str) -> None:
        super().__init__(f"unknown table {table!r}")
        self.table = table


class NotAPeer(ReplicationError):
    """A request from a region that is not a peer of this one in the current topology."""
