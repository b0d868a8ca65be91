"""What one node runs with (`atoll serve`'s options, resolved): `NodeConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

from atoll.antientropy.settings import VerifySettings
from atoll.api.access import OFF
from atoll.clock.offset import DEFAULT_MAX_OFFSET_MS
from atoll.engine.context import DEFAULT_TTL_INTERVAL_S
from atoll.engine.tabledef import DEFAULT_ACCOUNT
from atoll.replication.config import ReplicationConfig
from atoll.topology.config import ClusterConfig


@dataclass
class NodeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: str = "./data"
    in_memory: bool = False
    region: str = "local"
    ttl_interval_s: float = DEFAULT_TTL_INTERVAL_S
    cluster: ClusterConfig | None = None
    # where the peer listener binds when it differs from the advertised peer endpoint
    # (a fault-injecting proxy sits at the advertised one: `atoll drill`)
    peer_listen: tuple[str, int] | None = None
    clock_offset_ms: int = 0  # added to the wall clock (clock-skew drills)
    # writes are refused while this region's clock differs from most peers' by more
    max_clock_offset_ms: int = DEFAULT_MAX_OFFSET_MS
    settable_clock: bool = False  # tests: POST /_atoll/clock moves the clock forward
    max_connections: int | None = None  # client port; None: derived from the open-file limit
    fault_drop_every: int = 0  # a deliberate replication defect (atoll.replication.faults)
    # postgresql://...: the region's storage is in PostgreSQL, shared with the region's
    # other nodes (storage/postgres); None: a SQLite file under data_dir
    storage_url: str | None = None
    auth: str = OFF  # off | warn | required (api/access.py)
    # `atoll certs` directory: the cluster data key (sealing key secrets) and, in a
    # cluster, the CA and this region's certificate for mutual TLS between regions
    certs_dir: str | None = None
    tls_cert: str | None = None  # HTTPS on the client port: certificate and key files
    tls_key: str | None = None
    # make an admin key at start-up and write it here (unless the file exists)
    admin_credentials: str | None = None
    insecure: bool = False  # allow listening beyond loopback without authentication
    peer_source: str | None = None  # local address of outgoing peer connections (drills)
    account_id: str = DEFAULT_ACCOUNT  # the account id in ARNs
    backup_dir: str | None = None  # backups and PITR [default: <data dir>/backups]
    pitr_window_s: float | None = None  # caps every table's PITR window (tests: seconds)
    pitr_snapshot_interval_s: float = 86_400.0  # between a PITR table's snapshots
    verify: VerifySettings = field(default_factory=VerifySettings)  # cluster.toml [verify]
    # replication's bounds, and every peer client's connect timeout (cluster.toml [replication])
    replication: ReplicationConfig = field(default_factory=ReplicationConfig)
    trees: bool = True  # keep hash trees (off only to measure what they cost)
