"""The PostgreSQL schema: the SQLite tables (storage/sqlite schema), in portable SQL.

Written to the subset of SQL that Postgres-compatible distributed engines also speak
(CockroachDB, YugabyteDB, Citus, Aurora/AlloyDB/Neon): plain tables with primary keys,
`bigint`, `bytea` and `text` columns, `CREATE ... IF NOT EXISTS`, `INSERT ... ON
CONFLICT`, `SELECT ... FOR UPDATE` and row-value comparisons. Nothing else: no
sequences or SERIAL columns (a sequence number is taken before commit, so sequence
order is not commit order, and a distributed engine hands them out per node), no
advisory locks, no LISTEN/NOTIFY, no extensions, no triggers, no stored procedures, no
partial or expression indexes, no system columns (xmin, ctid).

Every primary key leads with the columns the reads range over, so each read is one
index range scan, and (on a distributed engine) rows of one partition key stay together:
items       (tid, h, pk, sk): h is the partition key's 32-bit hash (bigint, as an
            unsigned value), pk and sk the order-preserving key bytes. bytea compares as
            memcmp with a shorter prefix first: the order the key encoding relies on.
tombstones  (tid, h, pk, sk): the version of each key's last delete.
changelog   (origin, origin_seq): every change applied here. No surrogate row id.
log_heads   (origin): the last origin_seq taken by this region's own changes, the row
            whose lock orders them (see loghead.py), with what every node of the region
            must know before writing: the highest hlc of the region's own changes and of
            peers' changes applied here, the catalog's version and the last stream
            position taken (streams.py). One row per region.
cursors     (origin): the last change applied per origin, with the changes it covers.
table_states, tables, conflicts (id assigned under the write lock: MAX(id) + 1),
index_items (tid, iid, h, pk, sk, base_pk, base_sk), txn_tokens (token), meta (key).
leases      (name): which node runs a background job, until when (leases.py).
streams     (sid): DynamoDB Streams (atoll.streams), one row per stream, (table_name,
            label) unique; sid given under the write lock, never reused (streams.py).
stream_shards  (sid, shard): each shard as a range of positions.
stream_records (sid, pos): a stream's records, so a GetRecords is one range of the key.
kept_tables (name): the tables whose changelog records are kept past the purge, with the
            byte strings that mark their records (point-in-time recovery).
kept_changes (table_name, origin, origin_seq): per such table, the records the purge
            moved there instead of deleting.
tree_buckets (tid, bucket): each table's hash tree (trees.py), a bucket's 128-bit hash
            as two bigint halves; tree_progress (tid): how far a table's tree is built.
purge_points (origin): the newest changelog record purged here, per origin (verify).
repairs     (id): the repair log (id assigned under the write lock, as conflicts').

PostgreSQL's b-tree limits an index entry to about 2,700 bytes (a third of a page,
after compressing it if that helps): a key of more than KEY_BYTES_LIMIT bytes in all
is checked with the write that stores it (WriteTxn) so that the error belongs to it.
"""

SCHEMA_VERSION = 2
MIGRATES_FROM = (1,)  # versions the STATEMENTS bring up to SCHEMA_VERSION

KEY_BYTES_LIMIT = 2_600

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS meta (
        key text PRIMARY KEY,
        value text NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS tables (
        name text PRIMARY KEY,
        tid bigint NOT NULL UNIQUE,
        definition bytea NOT NULL,
        item_count bigint NOT NULL DEFAULT 0,
        size_bytes bigint NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS items (
        tid bigint NOT NULL,
        h bigint NOT NULL,
        pk bytea NOT NULL,
        sk bytea NOT NULL,
        item bytea NOT NULL,
        size bigint NOT NULL,
        hlc bigint NOT NULL,
        origin text NOT NULL,
        crc bigint NOT NULL,
        prev_hlc bigint,
        prev_origin text,
        PRIMARY KEY (tid, h, pk, sk)
    )""",
    """CREATE TABLE IF NOT EXISTS tombstones (
        tid bigint NOT NULL,
        h bigint NOT NULL,
        pk bytea NOT NULL,
        sk bytea NOT NULL,
        hlc bigint NOT NULL,
        origin text NOT NULL,
        prev_hlc bigint,
        prev_origin text,
        PRIMARY KEY (tid, h, pk, sk)
    )""",
    """CREATE TABLE IF NOT EXISTS changelog (
        origin text NOT NULL,
        origin_seq bigint NOT NULL,
        hlc bigint NOT NULL,
        body bytea NOT NULL,
        crc bigint NOT NULL,
        PRIMARY KEY (origin, origin_seq)
    )""",
    """CREATE TABLE IF NOT EXISTS log_heads (
        origin text PRIMARY KEY,
        seq bigint NOT NULL,
        hlc bigint NOT NULL DEFAULT 0,
        remote_hlc bigint NOT NULL DEFAULT 0,
        catalog bigint NOT NULL DEFAULT 0,
        stream_pos bigint NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS cursors (
        origin text PRIMARY KEY,
        seq bigint NOT NULL,
        hlc bigint NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS table_states (
        name text PRIMARY KEY,
        created_hlc bigint NOT NULL,
        created_origin text NOT NULL,
        version_hlc bigint NOT NULL,
        version_origin text NOT NULL,
        definition bytea
    )""",
    """CREATE TABLE IF NOT EXISTS conflicts (
        id bigint PRIMARY KEY,
        detected_ms bigint NOT NULL,
        table_name text NOT NULL,
        record bytea NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS index_items (
        tid bigint NOT NULL,
        iid bigint NOT NULL,
        h bigint NOT NULL,
        pk bytea NOT NULL,
        sk bytea NOT NULL,
        base_pk bytea NOT NULL,
        base_sk bytea NOT NULL,
        item bytea NOT NULL,
        size bigint NOT NULL,
        crc bigint NOT NULL,
        PRIMARY KEY (tid, iid, h, pk, sk, base_pk, base_sk)
    )""",
    """CREATE TABLE IF NOT EXISTS txn_tokens (
        token text PRIMARY KEY,
        request_hash bytea NOT NULL,
        created_ms bigint NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS txn_tokens_by_age ON txn_tokens (created_ms)",
    "CREATE INDEX IF NOT EXISTS tombstones_by_hlc ON tombstones (hlc)",
    """CREATE TABLE IF NOT EXISTS leases (
        name text PRIMARY KEY,
        holder text NOT NULL,
        expires_ms bigint NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS streams (
        sid bigint PRIMARY KEY,
        table_name text NOT NULL,
        label text NOT NULL,
        view_type text NOT NULL,
        key_schema bytea NOT NULL,
        created_ms bigint NOT NULL,
        disabled_ms bigint,
        trimmed_pos bigint NOT NULL DEFAULT 0,
        UNIQUE (table_name, label)
    )""",
    """CREATE TABLE IF NOT EXISTS stream_shards (
        sid bigint NOT NULL,
        shard bigint NOT NULL,
        first_pos bigint NOT NULL,
        end_pos bigint,
        created_ms bigint NOT NULL,
        closed_ms bigint,
        PRIMARY KEY (sid, shard)
    )""",
    """CREATE TABLE IF NOT EXISTS stream_records (
        sid bigint NOT NULL,
        pos bigint NOT NULL,
        created_ms bigint NOT NULL,
        kind bigint NOT NULL,
        origin text NOT NULL,
        record bytea NOT NULL,
        crc bigint NOT NULL,
        PRIMARY KEY (sid, pos)
    )""",
    """CREATE TABLE IF NOT EXISTS kept_tables (
        name text PRIMARY KEY,
        markers bytea NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS kept_changes (
        table_name text NOT NULL,
        origin text NOT NULL,
        origin_seq bigint NOT NULL,
        hlc bigint NOT NULL,
        body bytea NOT NULL,
        crc bigint NOT NULL,
        PRIMARY KEY (table_name, origin, origin_seq)
    )""",
    """CREATE TABLE IF NOT EXISTS tree_buckets (
        tid bigint NOT NULL,
        bucket bigint NOT NULL,
        high bigint NOT NULL,
        low bigint NOT NULL,
        PRIMARY KEY (tid, bucket)
    )""",
    """CREATE TABLE IF NOT EXISTS tree_progress (
        tid bigint PRIMARY KEY,
        built bigint NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS purge_points (
        origin text PRIMARY KEY,
        seq bigint NOT NULL,
        hlc bigint NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS repairs (
        id bigint PRIMARY KEY,
        repaired_ms bigint NOT NULL,
        table_name text NOT NULL,
        record bytea NOT NULL
    )""",
)

COLUMNS_ADDED = (("log_heads", "stream_pos", "bigint NOT NULL DEFAULT 0"),
                 # version 1 had no `state` columns (the item's causal state; NULL is the
                 # row form that hlc/origin/prev rebuild): adding them is its migration
                 ("items", "state", "bytea"),
                 ("tombstones", "state", "bytea"))
"""(table, column, type) of columns added to a table after it was first created: a
database made before has them added when a node opens it (connection.init_schema)."""
