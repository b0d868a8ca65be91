"""The compare-and-set rule for topology updates (pure).

Theory of operation: a node holds one topology. A proposed one — from an operator, an
updater's plan, or a peer spreading what it accepted — replaces it only if
  1. it is valid (never empty, every region has a client and a peer endpoint, …),
  2. it belongs to the same cluster, and
  3. its generation is higher than the current one.
An equal generation with identical content is the same topology arriving twice
(a retry, or a peer spreading it back): accepted as a no-op. An equal generation with
different content is refused: two plans claimed the same generation, and the one that
got here first stays — a later plan must take a higher generation.

Checking validity first means an empty plan is refused as invalid whatever generation
it carries (HTTP 400); a valid but stale or foreign one is a conflict (HTTP 409).

Generations have a ceiling (MAX_GENERATION, 2^53) and a plan may not jump more than
MAX_GENERATION_STEP above the current generation (refused as `too_far`, HTTP 400): a
plan at a huge generation, forged or mistyped, would otherwise leave the operator no
higher generation to replace it with. So the current generation + 1 is always free for
the operator's correction (`atoll topology set --next`), short of 2^53 / 10^6 accepted
jumps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from atoll.topology.model import MAX_GENERATION_STEP, ClusterConfig

RejectKind = Literal["invalid", "too_far", "other_cluster", "stale", "conflict"]


@dataclass(frozen=True, slots=True)
class Accept:
    topology: ClusterConfig
    changed: bool  # False: the node already holds exactly this topology


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str
    kind: RejectKind

    @property
    def invalid(self) -> bool:
        return self.kind in ("invalid", "too_far")


def decide(current: ClusterConfig | None, proposed: ClusterConfig) -> Accept | Reject:
    """Whether a node holding `current` (None: nothing yet) may adopt `proposed`."""
    problems = proposed.problems()
    if problems:
        return Reject("invalid topology: " + "; ".join(problems), "invalid")
    if current is None:
        return Accept(proposed, changed=True)
    if proposed.cluster_id != current.cluster_id:
        return Reject(f"topology of cluster {proposed.cluster_id!r}, this node belongs to "
                      f"{current.cluster_id!r}", "other_cluster")
    if proposed.generation < current.generation:
        return Reject(f"stale topology: generation {proposed.generation} is older than the "
                      f"current generation {current.generation}", "stale")
    if proposed.generation == current.generation:
        if proposed.same_layout(current):
            return Accept(current, changed=False)
        return Reject(f"generation {proposed.generation} is already taken by a different "
                      "topology; a new plan needs a higher generation", "conflict")
    if proposed.generation > current.generation + MAX_GENERATION_STEP:
        return Reject(f"generation {proposed.generation} jumps more than "
                      f"{MAX_GENERATION_STEP} above the current generation "
                      f"{current.generation}; use {current.generation + 1}", "too_far")
    return Accept(proposed, changed=True)


def start_topology(stored: ClusterConfig | None, configured: ClusterConfig
                   ) -> tuple[ClusterConfig, str]:
    """The topology a node starts with, and why: the newer of the one it accepted and
    stored before a restart and the one in its config file (the file is often older —
    an update accepted while the node ran must survive the restart). A stored topology
    of another cluster means the data directory belongs to another cluster: ValueError."""
    if stored is None or stored.problems():
        return configured, "from the config file (nothing valid stored)"
    if stored.cluster_id != configured.cluster_id:
        raise ValueError(f"the data directory holds a topology of cluster "
                         f"{stored.cluster_id!r}, the config file is for "
                         f"{configured.cluster_id!r}")
    outcome = decide(stored, configured)
    if isinstance(outcome, Accept) and outcome.changed:
        return configured, (f"from the config file (generation {configured.generation}, "
                            f"newer than the stored {stored.generation})")
    why = f": {outcome.reason}" if isinstance(outcome, Reject) and outcome.kind == "too_far" \
        else ""
    return stored, (f"stored generation {stored.generation} "
                    f"(the config file has generation {configured.generation}{why})")
