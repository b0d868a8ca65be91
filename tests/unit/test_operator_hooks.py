"""The hooks for figures other components will provide: authentication failures and
verify results are "not available" (None, no metric families) until a source is
attached to the node's OperatorEndpoints, and then show up in both."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping
from typing import Any

from atoll.node.node import Node, NodeConfig


class Auth:
    def auth_failures(self) -> Mapping[str, int]:
        return {"bad_signature": 3, "unknown_key": 1}


class Verify:
    def verify_results(self) -> Mapping[str, Mapping[str, Any]]:
        return {"eu-west": {"finished_unix_s": 1.8e9, "verdict": "diverged",
                            "divergent_items": 2, "repaired_items": 2}}


def test_auth_and_verify_are_not_available_until_attached() -> None:
    async def run() -> None:
        node = Node(NodeConfig(in_memory=True, region="us-east"))
        node.storage.start(asyncio.get_running_loop())
        try:
            figures = node.operator.figures()
            assert figures["auth"] is None and figures["verify"] is None
            assert b"atoll_auth_" not in node.operator.metrics.render()
            node.operator.attach_auth(Auth())
            node.operator.attach_verify(Verify())
            figures = node.operator.figures()
            assert figures["auth"] == {"failures": {"bad_signature": 3, "unknown_key": 1}}
            assert figures["verify"]["eu-west"]["verdict"] == "diverged"
            text = node.operator.metrics.render().decode()
            assert 'atoll_auth_failures_total{reason="bad_signature"} 3.0' in text
            assert 'atoll_verify_divergent_items{peer="eu-west"} 2.0' in text
            assert 'atoll_verify_verdict{atoll_verify_verdict="diverged",peer="eu-west"} 1.0' \
                in text
        finally:
            node.storage.close()
            shutil.rmtree(os.path.dirname(node.storage.path), ignore_errors=True)
    asyncio.run(run())
