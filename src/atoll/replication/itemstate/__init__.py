"""Per-item causal state and its merge (DESIGN.md decisions 3 and 5; pure code).

Theory of operation: every item carries a state-based CRDT, and the visible item is a
pure function of it (`materialize`). A write's identity is a dot `Dot(hlc, region)`;
the state holds its causal context (every dot of the item it has seen) and dotted
entries: whole-item writes (PutItem/DeleteItem), whole-value writes per top-level
attribute, add-wins set members, existence markers, plus per-region counter
contributions. A local write removes what it observed of what it replaces and adds its
own entries (local.py); a receiver joins the writer's whole state into its own
(join.py): an entry survives iff both hold it or the other never saw it. Hence:

  - a write that has seen a version supersedes it in every region, whatever the clocks
    (it removed it; (hlc, region) is never consulted for causally ordered writes);
  - concurrent writes to different attributes both survive; concurrent increments all
    count (a counter is its value plus every contribution above the floors a reset
    observed); set members merge add-wins;
  - only truly concurrent writes of one attribute, or a whole-item write and a concurrent
    older attribute write, are decided by (hlc, region) — and only those are reported
    as conflicts (conflicts.py);
  - the join is commutative, associative and idempotent, so any order of any set of
    changes, with duplicates, gives the same state and the same item everywhere.

The whole-item opt-out (a table that wants DynamoDB global tables' exact rule) writes
every UpdateItem as a `put` of its new image: still causal, but whole-item.

Modules: `state` (the types and invariants), `local` (put, delete, update, fold_regions and
unfolded_regions, migrate, row_form), `join`, `view` (materialize, numbers), `conflicts`, `codec` (bytes),
`row` (the stored form beside a row's item, and the write path's fast entry points).
"""

from atoll.replication.itemstate.codec import (
    MAX_REGIONS,
    MAX_STATE_BYTES,
    decode_state,
    encode_state,
    verify_item,
)
from atoll.replication.itemstate.conflicts import (
    ATTRIBUTE,
    COUNTER,
    ITEM,
    REPLACED,
    Conflict,
    join_conflicts,
    losses,
)
from atoll.replication.itemstate.join import join, join_full
from atoll.replication.itemstate.local import (
    delete,
    fold_region,
    fold_regions,
    migrate,
    put,
    row_form,
    unfolded_regions,
    update,
)
from atoll.replication.itemstate.row import (
    RawStored,
    Stored,
    apply_stored,
    as_stored,
    delete_stored,
    load,
    put_stored,
    store,
    update_stored,
)
from atoll.replication.itemstate.state import (
    AttrState,
    Dot,
    ItemState,
    empty_state,
    greatest_gen,
    latest_dot,
)
from atoll.replication.itemstate.view import dynamodb_number, materialize

__all__ = [
    "ATTRIBUTE", "COUNTER", "ITEM", "MAX_REGIONS", "MAX_STATE_BYTES", "REPLACED",
    "AttrState", "Conflict", "Dot", "ItemState", "RawStored", "Stored", "apply_stored",
    "as_stored", "decode_state",
    "delete",
    "delete_stored", "dynamodb_number", "empty_state", "encode_state", "fold_region",
    "fold_regions", "greatest_gen", "join", "join_conflicts", "join_full", "latest_dot", "load", "losses",
    "materialize", "migrate", "put", "put_stored", "row_form", "store", "unfolded_regions",
    "update", "update_stored", "verify_item",
]
