"""The last good topology on disk, so discovery survives a restart during an outage.

One file per cluster id under ~/.cache/atoll/ (or $XDG_CACHE_HOME/atoll/), or one file
the caller names. Each file also lists the seeds that led to it: a process that cannot
reach any seed does not know the cluster id, and finds its cluster's file by its seeds.
Writes are atomic (temporary file, fsync, rename) and never replace a newer generation
than the one they carry — another process may have learned a newer topology meanwhile.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from atoll.errors import AtollError
from atoll.topology.model import ClusterConfig, topology_from_dict, validate

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "atoll"


class TopologyCache:
    """The last good topology on disk: `<dir>/<cluster id>.json`, or one given file.

    Each file also lists the seeds that led to it, so a process that cannot reach any
    seed (and so does not know the cluster id) finds its cluster's file by its seeds.
    """

    def __init__(self, seeds: Sequence[str], path: str | Path | None = None,
                 directory: str | Path | None = None) -> None:
        self.seeds = list(seeds)
        self.path = Path(path) if path is not None else None
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def file_for(self, cluster_id: str) -> Path:
        if self.path is not None:
            return self.path
        return self.directory / (re.sub(r"[^A-Za-z0-9._-]", "_", cluster_id) + ".json")

    def load(self, cluster_id: str) -> ClusterConfig | None:
        found = self._read(self.file_for(cluster_id))
        return found[0] if found is not None and found[0].cluster_id == cluster_id else None

    def load_for_seeds(self) -> ClusterConfig | None:
        """The newest cached topology these seeds led to (or that lists one of them)."""
        files = [self.path] if self.path is not None else sorted(self.directory.glob("*.json"))
        best: ClusterConfig | None = None
        for path in files:
            found = self._read(path)
            if found is None:
                continue
            topology, seeds = found
            known = set(seeds) | {e for r in topology.regions for e in r.client_endpoints}
            if (self.path is not None or known & set(self.seeds)) and (
                    best is None or topology.generation > best.generation):
                best = topology
        return best

    def save(self, topology: ClusterConfig) -> None:
        """Write atomically; never replace a newer generation (another process's)."""
        path = self.file_for(topology.cluster_id)
        held = self._read(path)
        if held is not None and held[0].cluster_id == topology.cluster_id \
                and held[0].generation > topology.generation:
            return
        seeds = sorted(set(self.seeds) | set(held[1] if held is not None else []))
        data = json.dumps({"seeds": seeds, "topology": topology.to_dict()}, indent=1)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "w") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            log.warning("could not cache the topology at %s: %s", path, exc)
            temporary.unlink(missing_ok=True)

    @staticmethod
    def _read(path: Path) -> tuple[ClusterConfig, list[str]] | None:
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and "topology" in data:  # seeds + topology
                seeds = data.get("seeds")
                return (validate(topology_from_dict(data["topology"])),
                        [s for s in seeds if isinstance(s, str)] if isinstance(seeds, list)
                        else [])
            return validate(topology_from_dict(data)), []  # the first version: topology only
        except (OSError, ValueError, AtollError):
            return None

