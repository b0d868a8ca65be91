"""`atoll streams tail` — print a table's stream records as they arrive (for people
watching changes by eye; `--json` for scripts).

It reads the table's stream the way any consumer does, through the DynamoDB Streams API
of one region (boto3's `dynamodbstreams` client): from the open shard's LATEST (or every
shard's TRIM_HORIZON with `--from trim-horizon`), each shard after its parent, moving to
a shard's children once it is closed and read to its end, polling every `--poll`
seconds when nothing is new. An expired iterator is taken again after the last record
printed; a trimmed one at the trim horizon. It stops after `--count` records if given,
when the stream is disabled and read to its end, or on Ctrl-C.

Which region: `--endpoint URL`, or `--region R` of the cluster config (`--config`,
./data/cluster.toml by default), or the config's first region, or http://127.0.0.1:8000.
Every region's stream holds every change applied there; a record's origin region is the
part of its eventID before ':'.

Requests are signed with a key found as `atoll keys` finds one (`--profile`/
`--credentials`, the AWS environment and files, then ./data/credentials from `make
run`); the key needs read permission on the table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import click
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from atoll.cli.keys import connection_options
from atoll.client.signing import resolve_credentials
from atoll.errors import ValidationError
from atoll.topology.config import load_cluster_config

DEFAULT_ENDPOINT = "http://127.0.0.1:8000"
DEFAULT_CONFIG = "./data/cluster.toml"
MAX_DESCRIBE_PAGES = 100  # 10,000 shards
_deserialize = TypeDeserializer().deserialize


def resolve_endpoint(endpoint: str | None, region: str | None, config_path: str) -> str:
    if endpoint is not None:
        return endpoint.rstrip("/")
    if region is None and not Path(config_path).exists():
        return DEFAULT_ENDPOINT
    try:
        config = load_cluster_config(config_path)
    except ValidationError as exc:
        raise click.UsageError(exc.message) from None
    except OSError as exc:
        raise click.UsageError(f"cannot read {config_path}: {exc}") from None
    if region is None:
        return config.regions[0].client_endpoint
    if not config.has_region(region):
        raise click.UsageError(f"region {region} is not in {config_path} "
                               f"(regions: {', '.join(config.region_ids())})")
    return config.region(region).client_endpoint


def _clients(endpoint: str, profile: str | None, credentials_file: str | None,
             ca_file: str | None) -> tuple[Any, Any]:
    """DynamoDB and DynamoDB Streams clients signing with the key found as `atoll keys`
    finds one (--profile/--credentials, the SDKs' usual places, ./data/credentials)."""
    found = resolve_credentials(profile, credentials_file)
    frozen = found.get_frozen_credentials() if found is not None else None
    options: dict[str, Any] = {
        "endpoint_url": endpoint, "region_name": "us-east-1",
        # no key at all: a node with auth off takes any
        "aws_access_key_id": frozen.access_key if frozen else "atoll",
        "aws_secret_access_key": frozen.secret_key if frozen else "atoll",
        "aws_session_token": frozen.token if frozen else None,
        "config": Config(retries={"max_attempts": 3, "mode": "standard"})}
    if ca_file is not None:
        options["verify"] = ca_file
    return boto3.client("dynamodb", **options), boto3.client("dynamodbstreams", **options)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set):
        return sorted((_plain(v) for v in value), key=str)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _image(image: dict[str, Any] | None) -> str:
    if image is None:
        return "-"
    return json.dumps({k: _plain(_deserialize(v)) for k, v in image.items()}, sort_keys=True)


def format_record(record: dict[str, Any]) -> str:
    """One line for people: time, origin region, event, keys, images shown."""
    body = record["dynamodb"]
    when = body["ApproximateCreationDateTime"]
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(when, "strftime") else str(when)
    origin = record["eventID"].partition(":")[0]
    line = f"{stamp}  {origin:<10} {record['eventName']:<6}  {_image(body['Keys'])}"
    if "OldImage" in body:
        line += f"  old={_image(body['OldImage'])}"
    if "NewImage" in body:
        line += f"  new={_image(body['NewImage'])}"
    if "userIdentity" in record:
        line += "  (by TTL)"
    return line


def json_record(record: dict[str, Any]) -> str:
    return json.dumps(record, default=lambda v: v.isoformat() if hasattr(v, "isoformat")
                      else str(v), sort_keys=True)


class Tail:
    """Follows one stream's shards; `poll` reads what is new once."""

    def __init__(self, streams: Any, arn: str, from_start: bool) -> None:
        self.streams = streams
        self.arn = arn
        self.iterators: dict[str, str] = {}  # shard id -> its next iterator
        self.done: set[str] = set()  # shards read to their end
        self.last: dict[str, str] = {}  # shard id -> the last sequence number read
        self.disabled = False
        self._discover(first=True, from_start=from_start)

    def _describe(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": self.arn}
        for _ in range(MAX_DESCRIBE_PAGES):
            description = self.streams.describe_stream(**kwargs)["StreamDescription"]
            self.disabled = description["StreamStatus"] == "DISABLED"
            shards += description["Shards"]
            if "LastEvaluatedShardId" not in description:
                break
            kwargs["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]
        return shards

    def _discover(self, first: bool = False, from_start: bool = True) -> None:
        """Start reading shards whose parent is done (or gone); on the first call
        without `from_start`, only the open shard, at LATEST."""
        shards = self._describe()
        known = {s["ShardId"] for s in shards}
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in self.iterators or shard_id in self.done:
                continue
            if first and not from_start:
                if "EndingSequenceNumber" in shard["SequenceNumberRange"]:
                    self.done.add(shard_id)
                    continue
                self.iterators[shard_id] = self._iterator(shard_id, "LATEST")
                continue
            parent = shard.get("ParentShardId")
            if parent is None or parent not in known or parent in self.done:
                self.iterators[shard_id] = self._iterator(shard_id, "TRIM_HORIZON")

    def _iterator(self, shard_id: str, kind: str, **extra: Any) -> str:
        return str(self.streams.get_shard_iterator(StreamArn=self.arn, ShardId=shard_id,
                                                   ShardIteratorType=kind,
                                                   **extra)["ShardIterator"])

    def poll(self, emit: Callable[[dict[str, Any]], bool]) -> int:
        """Read every active shard once; `emit` each record (False: stop). Returns how
        many records were emitted, or -1 if `emit` asked to stop."""
        emitted = 0
        for shard_id in sorted(self.iterators):
            page = self._read(shard_id)
            for record in page["Records"]:
                self.last[shard_id] = record["dynamodb"]["SequenceNumber"]
                emitted += 1
                if not emit(record):
                    return -1
            following = page.get("NextShardIterator")
            if following is None:
                del self.iterators[shard_id]
                self.done.add(shard_id)
            else:
                self.iterators[shard_id] = following
        if not self.iterators or emitted == 0:
            self._discover()
        return emitted

    def _read(self, shard_id: str) -> dict[str, Any]:
        try:
            return dict(self.streams.get_records(ShardIterator=self.iterators[shard_id]))
        except self.streams.exceptions.ExpiredIteratorException:
            last = self.last.get(shard_id)
            self.iterators[shard_id] = (
                self._iterator(shard_id, "AFTER_SEQUENCE_NUMBER", SequenceNumber=last)
                if last is not None else self._iterator(shard_id, "LATEST"))
        except self.streams.exceptions.TrimmedDataAccessException:
            self.iterators[shard_id] = self._iterator(shard_id, "TRIM_HORIZON")
        return dict(self.streams.get_records(ShardIterator=self.iterators[shard_id]))

    @property
    def finished(self) -> bool:
        return self.disabled and not self.iterators


@click.group()
def streams() -> None:
    """Read DynamoDB Streams of a running Atoll."""


@streams.command()
@click.option("--table", required=True, help="The table whose stream to follow.")
@click.option("--region", default=None, help="Read this region's stream (named in --config).")
@click.option("--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
              type=click.Path(dir_okay=False), help="Cluster config naming the regions.")
@click.option("--endpoint", default=None, help="Read the stream of the node at this URL.")
@click.option("--from", "start", type=click.Choice(["latest", "trim-horizon"]),
              default="latest", show_default=True,
              help="Begin with records written from now on, or with every record kept.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line.")
@click.option("--count", type=click.IntRange(1), default=None,
              help="Stop after this many records.")
@click.option("--poll", "poll_s", type=click.FloatRange(0.05), default=0.5, show_default=True,
              help="Seconds between reads when nothing is new.")
@connection_options
def tail(table: str, region: str | None, config_path: str, endpoint: str | None, start: str,
         as_json: bool, count: int | None, poll_s: float, profile: str | None,
         credentials_file: str | None, ca_file: str | None) -> None:
    """Print TABLE's stream records as they arrive."""
    url = resolve_endpoint(endpoint, region, config_path)
    ddb, stream_client = _clients(url, profile, credentials_file, ca_file)
    try:
        arn = ddb.describe_table(TableName=table)["Table"].get("LatestStreamArn")
        if arn is None:
            raise click.ClickException(f"table {table} has no stream: enable one with UpdateTable "
                                       "StreamSpecification")
        follower = Tail(stream_client, arn, from_start=start == "trim-horizon")
        click.echo(f"following {arn} at {url}", err=True)
        _follow(follower, as_json, count, poll_s)
    except (ClientError, BotoCoreError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


def _follow(follower: Tail, as_json: bool, count: int | None, poll_s: float) -> None:
    printed = 0

    def emit(record: dict[str, Any]) -> bool:
        nonlocal printed
        click.echo(json_record(record) if as_json else format_record(record))
        printed += 1
        return count is None or printed < count

    while True:
        got = follower.poll(emit)
        if got < 0:
            return
        if follower.finished:
            click.echo("the stream is disabled and read to its end", err=True)
            return
        if got == 0:
            time.sleep(poll_s)
