"""A table's stream as its definition holds it: StreamSpecification, labels, ARNs.

Theory of operation: a table definition carries its stream's view type (None while no
stream is enabled) and the label of its latest stream, which stays after the stream is
disabled (DescribeTable keeps answering LatestStreamArn and LatestStreamLabel then, as
DynamoDB does, while StreamSpecification disappears). A label is the stream's creation
time as ISO 8601 with milliseconds ("2015-05-20T20:51:10.252", UTC); with the table name
it identifies the stream, and the ARN is built from both and the region:
`arn:aws:dynamodb:<region>:000000000000:table/<name>/stream/<label>`.

The definition replicates, so every region has the same stream (same label, same view
type); each region's ARN names its own region, and each region's stream holds the
changes applied there.

Rules of StreamSpecification (as DynamoDB answers them): enabling needs a view type,
disabling must not name one; enabling a table that has an enabled stream is refused,
even with the same view type (a view type never changes in place: disable, then enable,
which creates a new stream with a new label); disabling a table without one is refused.
A new label is always later than the table's previous one, so a disable and re-enable
within one millisecond still yields a new ARN.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from atoll.errors import ValidationError

VIEW_TYPES = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")
ACCOUNT = "000000000000"  # the account id in ARNs unless a node is told another

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LABEL_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\Z")
_ARN_RE = re.compile(r"arn:aws:dynamodb:([^:]*):(\d{12}):table/([a-zA-Z0-9_.-]{3,255})"
                     r"/stream/(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3})\Z")


def wanted_view_type(spec: dict[str, Any]) -> str | None:
    """The view type a StreamSpecification asks for (None: no stream), validated."""
    enabled = bool(spec.get("StreamEnabled"))
    view_type = spec.get("StreamViewType")
    if enabled and view_type is None:
        raise ValidationError("One or more parameter values were invalid: If stream is being "
                              "enabled then UpdateViewType is required")
    if not enabled and view_type is not None:
        raise ValidationError("One or more parameter values were invalid: If stream is being "
                              "disabled, then UpdateViewType must not be specified")
    return str(view_type) if enabled else None


def check_update(table_name: str, current: str | None, wanted: str | None) -> None:
    """UpdateTable may only switch a stream on (from none) or off (from one)."""
    if wanted is not None and current is not None:
        raise ValidationError(f"Table already has an enabled stream: TableName: {table_name}")
    if wanted is None and current is None:
        raise ValidationError(f"Table has no stream to disable: TableName: {table_name}")


def label_at(ms: int) -> str:
    """The label of a stream created at `ms` (epoch milliseconds, UTC)."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def label_ms(label: str) -> int:
    """The epoch milliseconds a label was made from (`label_at`'s inverse)."""
    moment = datetime.strptime(label, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def new_label(now_ms: int, previous: str | None) -> str:
    """A label for a stream enabled now: later than the table's previous one."""
    if previous is not None and _LABEL_RE.match(previous):
        now_ms = max(now_ms, label_ms(previous) + 1)
    return label_at(now_ms)


def stream_arn(region: str, table_name: str, label: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{table_name}/stream/{label}"


def parse_stream_arn(arn: str) -> tuple[str, str, str] | None:
    """(region, table name, label) of a well-formed stream ARN, else None."""
    match = _ARN_RE.match(arn)
    if match is None:
        return None
    return match.group(1), match.group(3), match.group(4)
