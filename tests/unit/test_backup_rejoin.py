"""When a region restored from a whole-node backup may catch up from its cursors."""

from __future__ import annotations

from atoll.backup.rejoin import CATCH_UP, REBUILD, PeerView, plan_rejoin

RESTORED = {"south": 40, "east": 100, "west": 70}


def test_peers_that_hold_everything_the_backup_lacks_let_it_catch_up() -> None:
    peers = [PeerView("east", {"south": 40, "east": 150, "west": 90}, {"east": 90, "west": 60}),
             PeerView("west", {"south": 35, "east": 120, "west": 90}, {"south": 30})]
    plan = plan_rejoin("south", RESTORED, peers)
    assert plan.action == CATCH_UP and plan.reasons == ()


def test_a_peer_holding_more_of_the_regions_own_changes_means_a_rebuild() -> None:
    plan = plan_rejoin("south", RESTORED, [PeerView("east", {"south": 41}, {})])
    assert plan.action == REBUILD
    assert plan.reasons == ("east holds south's changes up to 41; the backup has them up to 40",)


def test_a_peer_that_purged_past_the_backup_means_a_rebuild() -> None:
    plan = plan_rejoin("south", RESTORED, [PeerView("west", {"south": 40},
                                                    {"west": 71, "south": 99})])
    assert plan.action == REBUILD  # its own origin's purge point does not matter
    assert plan.reasons == ("west purged west's changes up to 71; the backup has them up to 70",)
    unknown_origin = plan_rejoin("south", RESTORED, [PeerView("west", {}, {"north": 1})])
    assert unknown_origin.action == REBUILD
