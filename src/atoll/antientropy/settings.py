"""How a node verifies in the background: the `[verify]` table of the cluster config.

    [verify]
    interval_s = 30            # pause between rounds comparing every table with every peer
    scrub_rows_per_s = 5000    # rows a node re-hashes per second to find changes behind
                               # Atoll's back (0: no background scrub)
    auto_repair = false        # repair what a background round confirms DIVERGED
    background = true          # compare with peers in the background at all

Every node of a cluster reads the same file, so these are cluster settings. A round
costs each side one read of the table's bucket hashes per peer (65,536 rows at most)
when nothing differs; the scrub costs what it re-hashes, so the rate bounds it (5,000
rows a second: a few percent of a core; a table of 1,000,000 items is scrubbed every
200 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MIN_INTERVAL_S = 1.0
MAX_SCRUB_ROWS_PER_S = 1_000_000


class BadSettings(ValueError):
    """A `[verify]` table that does not fit."""


@dataclass(frozen=True, slots=True)
class VerifySettings:
    interval_s: float = 30.0
    scrub_rows_per_s: int = 5_000
    auto_repair: bool = False
    background: bool = True


def verify_settings(options: Mapping[str, Any]) -> VerifySettings:
    """The settings in a cluster config's other keys (`ClusterConfig.options`); the
    defaults where there is no `[verify]` table."""
    raw = options.get("verify", {})
    if not isinstance(raw, dict):
        raise BadSettings("[verify] must be a table")
    unknown = sorted(set(raw) - {"interval_s", "scrub_rows_per_s", "auto_repair", "background"})
    if unknown:
        raise BadSettings(f"[verify] has unknown keys: {', '.join(unknown)}")
    defaults = VerifySettings()
    interval = raw.get("interval_s", defaults.interval_s)
    rate = raw.get("scrub_rows_per_s", defaults.scrub_rows_per_s)
    repair = raw.get("auto_repair", defaults.auto_repair)
    background = raw.get("background", defaults.background)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
            or interval < MIN_INTERVAL_S:
        raise BadSettings(f"[verify] interval_s must be a number >= {MIN_INTERVAL_S}")
    if isinstance(rate, bool) or not isinstance(rate, int) \
            or not 0 <= rate <= MAX_SCRUB_ROWS_PER_S:
        raise BadSettings(f"[verify] scrub_rows_per_s must be an integer in 0.."
                          f"{MAX_SCRUB_ROWS_PER_S}")
    if not isinstance(repair, bool) or not isinstance(background, bool):
        raise BadSettings("[verify] auto_repair and background must be true or false")
    return VerifySettings(float(interval), rate, repair, background)
