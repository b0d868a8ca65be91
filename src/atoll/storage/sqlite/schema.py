"""The SQLite schema, in one place.

items       one row per live item: (tid, h, pk, sk) is the primary key, where h is the
            partition key's 32-bit hash, so a Scan walks hash order (as DynamoDB does)
            and a Query is a range scan inside one (tid, h, pk).
            Each row also keeps `prev`, the version its write overwrote, and `state`,
            the item's causal state (atoll.replication.itemstate's stored form; NULL
            is the row form, which hlc/origin/prev rebuild: one whole-item write).
tombstones  the version of every deleted item, so replication can order a delete
            against a late put (DESIGN.md decision 6), with its `state` likewise.
changelog   every change this node applied, its own and its peers', indexed by
            (origin, origin_seq): the outbox replication reads (decision 2).
cursors     per origin, the highest contiguous origin_seq applied here.
conflicts   writes that lost a last-writer-wins race, readable through the API.
index_items one row per item in a secondary index: (tid, iid, h, pk, sk) is the index key
            (h hashes the index partition key) and, since index keys are not unique, the
            base item's (base_pk, base_sk) completes the unique key. Rows are derived
            data, written in the same transaction as their base item, never logged. A
            rowid table plus a unique index on the key, not WITHOUT ROWID: rows holding
            a projected item are too large for a WITHOUT ROWID b-tree's interior pages,
            and the narrow index costs ~20% less per write (measured).
txn_tokens  ClientRequestTokens of committed TransactWriteItems with the request's hash,
            so a retry within the idempotency window is answered without re-running.
kept_tables the tables whose changelog records are kept past the purge, with the byte
            strings that mark their records (point-in-time recovery).
kept_changes per such table, the records the purge moved there instead of deleting.
tree_buckets  per table and bucket, the XOR of its keys' leaf hashes
            (storage/treeprotocol.py) as two signed 64-bit halves, except for the deltas still in
            tree_deltas; a bucket without a row hashes to 0.
tree_deltas the write path's bucket deltas, one row per batch (appended: a write
            touches no page of tree_buckets), folded into tree_buckets in the background
            (sqlite/trees.py says why); readers XOR the ones not folded yet.
tree_progress per table, how far its tree is built (65,536: complete; no row: none).
purge_points  per origin, the newest changelog record purged here (seq, hlc): verify
            judges a peer's missing changes against it (atoll.antientropy.verdict).
repairs     what verify repaired here, readable like the conflict log.
streams, stream_shards, stream_records
            DynamoDB Streams (atoll.streams): each stream (sid never reused:
            AUTOINCREMENT), its shards as ranges of positions, and its records keyed by
            one integer, `id` = sid * 2**44 + pos (streams.py `record_id`), so a
            GetRecords is one range of the rowid. A rowid table, not WITHOUT ROWID on
            (sid, pos): appending ~480-byte records at the end of a rowid b-tree leaves
            full pages behind (SQLite's quick balance), where an index b-tree rebalances
            its last pages on every split; measured, 32 records of 480 bytes a commit
            write 6 WAL frames instead of 13. Positions are given by SqliteTxn
            (streams.py says how they are never reused).
"""

SCHEMA_VERSION = 3

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS tables (
        name TEXT PRIMARY KEY,
        tid INTEGER NOT NULL UNIQUE,
        definition BLOB NOT NULL,
        item_count INTEGER NOT NULL DEFAULT 0,
        size_bytes INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS items (
        tid INTEGER NOT NULL,
        h INTEGER NOT NULL,
        pk BLOB NOT NULL,
        sk BLOB NOT NULL,
        item BLOB NOT NULL,
        size INTEGER NOT NULL,
        hlc INTEGER NOT NULL,
        origin TEXT NOT NULL,
        crc INTEGER NOT NULL,
        prev_hlc INTEGER,
        prev_origin TEXT,
        state BLOB,
        PRIMARY KEY (tid, h, pk, sk)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS tombstones (
        tid INTEGER NOT NULL,
        h INTEGER NOT NULL,
        pk BLOB NOT NULL,
        sk BLOB NOT NULL,
        hlc INTEGER NOT NULL,
        origin TEXT NOT NULL,
        prev_hlc INTEGER,
        prev_origin TEXT,
        state BLOB,
        PRIMARY KEY (tid, h, pk, sk)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS changelog (
        seq INTEGER PRIMARY KEY,
        origin TEXT NOT NULL,
        origin_seq INTEGER NOT NULL,
        hlc INTEGER NOT NULL,
        body BLOB NOT NULL,
        crc INTEGER NOT NULL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS changelog_by_origin ON changelog (origin, origin_seq)",
    # The highest contiguous origin_seq applied per origin: advanced in the same
    # transaction as the changes it covers, so apply is exactly-once in effect.
    """CREATE TABLE IF NOT EXISTS cursors (
        origin TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        hlc INTEGER NOT NULL DEFAULT 0
    )""",
    # Each table name's replicated state (decision 5 for DDL): when it was created and
    # last changed, and whether it is live (a deleted table keeps its row, so writes
    # into it that arrive late are dropped, not mistaken for an unknown table).
    """CREATE TABLE IF NOT EXISTS table_states (
        name TEXT PRIMARY KEY,
        created_hlc INTEGER NOT NULL,
        created_origin TEXT NOT NULL,
        version_hlc INTEGER NOT NULL,
        version_origin TEXT NOT NULL,
        definition BLOB
    )""",
    # Concurrent writes that lost last-writer-wins, with both versions (decision 5).
    """CREATE TABLE IF NOT EXISTS conflicts (
        id INTEGER PRIMARY KEY,
        detected_ms INTEGER NOT NULL,
        table_name TEXT NOT NULL,
        record BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS index_items (
        tid INTEGER NOT NULL,
        iid INTEGER NOT NULL,
        h INTEGER NOT NULL,
        pk BLOB NOT NULL,
        sk BLOB NOT NULL,
        base_pk BLOB NOT NULL,
        base_sk BLOB NOT NULL,
        item BLOB NOT NULL,
        size INTEGER NOT NULL,
        crc INTEGER NOT NULL
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS index_items_by_key
        ON index_items (tid, iid, h, pk, sk, base_pk, base_sk)""",
    """CREATE TABLE IF NOT EXISTS txn_tokens (
        token TEXT PRIMARY KEY,
        request_hash BLOB NOT NULL,
        created_ms INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS txn_tokens_by_age ON txn_tokens (created_ms)",
    """CREATE TABLE IF NOT EXISTS kept_tables (
        name TEXT PRIMARY KEY,
        markers BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS kept_changes (
        table_name TEXT NOT NULL,
        origin TEXT NOT NULL,
        origin_seq INTEGER NOT NULL,
        hlc INTEGER NOT NULL,
        body BLOB NOT NULL,
        crc INTEGER NOT NULL,
        PRIMARY KEY (table_name, origin, origin_seq)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS tree_buckets (
        tid INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        high INTEGER NOT NULL,
        low INTEGER NOT NULL,
        PRIMARY KEY (tid, bucket)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS tree_deltas (
        seq INTEGER PRIMARY KEY,
        deltas BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS tree_progress (
        tid INTEGER PRIMARY KEY,
        built INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS purge_points (
        origin TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        hlc INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS repairs (
        id INTEGER PRIMARY KEY,
        repaired_ms INTEGER NOT NULL,
        table_name TEXT NOT NULL,
        record BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS streams (
        sid INTEGER PRIMARY KEY AUTOINCREMENT,
        table_name TEXT NOT NULL,
        label TEXT NOT NULL,
        view_type TEXT NOT NULL,
        key_schema BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        disabled_ms INTEGER,
        trimmed_pos INTEGER NOT NULL DEFAULT 0,
        UNIQUE (table_name, label)
    )""",
    """CREATE TABLE IF NOT EXISTS stream_shards (
        sid INTEGER NOT NULL,
        shard INTEGER NOT NULL,
        first_pos INTEGER NOT NULL,
        end_pos INTEGER,
        created_ms INTEGER NOT NULL,
        closed_ms INTEGER,
        PRIMARY KEY (sid, shard)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS stream_records (
        id INTEGER PRIMARY KEY,
        created_ms INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        origin TEXT NOT NULL,
        record BLOB NOT NULL,
        crc INTEGER NOT NULL
    )""",
)

MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 -> 2: each item's causal state beside it. Version 1 files had no `state` columns:
    # every row of theirs is in row form, so adding the columns (NULL) is the whole step.
    1: ("ALTER TABLE items ADD COLUMN state BLOB",
        "ALTER TABLE tombstones ADD COLUMN state BLOB"),
    # 2 -> 3: stream records keyed by (sid, pos) WITHOUT ROWID become a rowid table keyed
    # by sid * 2**44 + pos (see above). A file older than streams has no such table yet.
    2: ("""CREATE TABLE IF NOT EXISTS stream_records (
            sid INTEGER NOT NULL,
            pos INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            kind INTEGER NOT NULL,
            origin TEXT NOT NULL,
            record BLOB NOT NULL,
            crc INTEGER NOT NULL,
            PRIMARY KEY (sid, pos)
        ) WITHOUT ROWID""",
        "ALTER TABLE stream_records RENAME TO stream_records_1",
        """CREATE TABLE stream_records (
            id INTEGER PRIMARY KEY,
            created_ms INTEGER NOT NULL,
            kind INTEGER NOT NULL,
            origin TEXT NOT NULL,
            record BLOB NOT NULL,
            crc INTEGER NOT NULL
        )""",
        "INSERT INTO stream_records SELECT (sid << 44) + pos, created_ms, kind, origin,"
        " record, crc FROM stream_records_1 ORDER BY sid, pos",
        "DROP TABLE stream_records_1"),
}
"""Per schema version, the statements that take a file of that version to the next, run
in one transaction when a node opens it (connection.init_schema)."""
