"""The boto3 failover client: a normal botocore client whose requests a `before-send`
hook sends itself, to the region the Router chooses, failing over when that is safe.

Nothing of boto3 is forked: botocore builds, signs and parses every request as usual;
only the transport step is taken over (a `before-send` handler that returns a response
makes botocore skip its own HTTP send). Botocore's own retries are turned off, since a
retry to the same dead region is what failover replaces; throttling and 5xx answers that
are not failed over surface as the usual ClientError.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import urllib3
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from atoll.client.routing import Router, retry_safe

CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 10.0
FAILOVER_BUDGET_S = 5.0
_DEFAULT_CREDENTIALS = {"aws_access_key_id": "atoll", "aws_secret_access_key": "atoll",
                        "region_name": "us-east-1"}


class _Body:
    """What AWSResponse reads a body from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, *_args: Any, **_kwargs: Any) -> Iterator[bytes]:
        yield self.data


class FailoverTransport:
    """The before-send handler: try the Router's candidates in order."""

    def __init__(self, router: Router, *, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 read_timeout_s: float = READ_TIMEOUT_S,
                 budget_s: float = FAILOVER_BUDGET_S) -> None:
        self.router = router
        self.budget_s = budget_s
        self.timeout = urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s)
        self.pool = urllib3.PoolManager(maxsize=32, retries=False, timeout=self.timeout)

    def __call__(self, request: Any, **_kwargs: Any) -> AWSResponse:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        operation = target.rpartition(".")[2]
        body = request.body or b""
        if hasattr(body, "read"):
            body = body.read()
        body = body.encode() if isinstance(body, str) else bytes(body)
        path = urlsplit(request.url).path or "/"
        headers = {k: (v.decode() if isinstance(v, bytes) else v)
                   for k, v in request.headers.items() if k.lower() != "host"}
        safe = None  # decided lazily: most requests succeed at the first region
        deadline = time.monotonic() + self.budget_s
        candidates = self.router.candidates()
        first = candidates[0][0]
        last_error: Exception | None = None
        last_response: AWSResponse | None = None
        for attempt, (region, endpoint) in enumerate(candidates):
            if attempt and time.monotonic() > deadline:
                break
            if attempt:
                self.router.mark_retry()
            url = endpoint + path
            try:
                response = self.pool.urlopen("POST", url, body=body, headers=headers,
                                             preload_content=True, redirect=False)
            except (urllib3.exceptions.NewConnectionError,
                    urllib3.exceptions.ConnectTimeoutError) as exc:
                # never reached the server: always safe to send elsewhere
                self.router.mark_failed(region, repr(exc))
                last_error = EndpointConnectionError(endpoint_url=url, error=exc)
                continue
            except urllib3.exceptions.HTTPError as exc:  # read timeout, reset after sending
                self.router.mark_failed(region, repr(exc))
                if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                    last_error = ReadTimeoutError(endpoint_url=url, error=exc)
                else:
                    last_error = EndpointConnectionError(endpoint_url=url, error=exc)
                if safe is None:
                    safe = _safe(operation, body)
                if safe:
                    continue
                break
            answer = AWSResponse(url, response.status, dict(response.headers),
                                 _Body(response.data))
            if response.status >= 500:
                self.router.mark_failed(region, f"HTTP {response.status}")
                last_response, last_error = answer, None
                if safe is None:
                    safe = _safe(operation, body)
                if safe:
                    continue
                break
            self.router.mark_served(region, first)
            return answer
        self.router.mark_surfaced()
        if last_response is not None and last_error is None:
            return last_response
        assert last_error is not None
        raise last_error


def _safe(operation: str, body: bytes) -> bool:
    try:
        request = json.loads(body) if body else {}
    except ValueError:
        return False
    return isinstance(request, dict) and retry_safe(operation, request)


def _session_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], Config]:
    settings = {**_DEFAULT_CREDENTIALS, **kwargs}
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=CONNECT_TIMEOUT_S,
                    read_timeout=READ_TIMEOUT_S)
    if "config" in settings:
        config = settings.pop("config").merge(config)
    return settings, config


def _attach(client: Any, router: Router, transport: FailoverTransport) -> None:
    client.meta.events.register_first("before-send.dynamodb", transport)
    client.atoll_router = router  # for metrics(client)


def boto3_client(seeds: Sequence[str], region_preference: Sequence[str] = (),
                 cache_path: str | Path | None = None, **boto3_kwargs: Any) -> Any:
    """A boto3 DynamoDB client that fails over between the cluster's regions."""
    router = Router(seeds, region_preference, cache_path)
    settings, config = _session_kwargs(boto3_kwargs)
    client = boto3.client("dynamodb", endpoint_url=router.candidates()[0][1], config=config,
                          **settings)
    _attach(client, router, FailoverTransport(router))
    return client


def boto3_resource(seeds: Sequence[str], region_preference: Sequence[str] = (),
                   cache_path: str | Path | None = None, **boto3_kwargs: Any) -> Any:
    """The boto3 DynamoDB resource on a failover client."""
    router = Router(seeds, region_preference, cache_path)
    settings, config = _session_kwargs(boto3_kwargs)
    resource = boto3.resource("dynamodb", endpoint_url=router.candidates()[0][1],
                              config=config, **settings)
    _attach(resource.meta.client, router, FailoverTransport(router))
    return resource


def metrics(client_or_resource: Any) -> dict[str, Any]:
    """Route, failovers and per-region probe results of a failover client."""
    client = getattr(getattr(client_or_resource, "meta", None), "client", client_or_resource)
    router: Router = client.atoll_router
    return router.snapshot()


def close(client_or_resource: Any) -> None:
    """Stop the client's background prober."""
    client = getattr(getattr(client_or_resource, "meta", None), "client", client_or_resource)
    client.atoll_router.close()
