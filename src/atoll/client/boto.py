"""The boto3 failover client: a normal botocore client whose requests a `before-send`
hook sends itself, to the region the Router chooses, failing over when that is safe.

Nothing of boto3 is forked: botocore builds, signs and parses every request as usual
(so ConditionalCheckFailedException and friends are raised as always); only the
transport step is taken over — a `before-send` handler that returns a response makes
botocore skip its own HTTP send. Botocore's own retries are turned off, since a retry to
the same dead region is what failover replaces; throttling, 4xx answers and 5xx answers
that may not be sent twice surface as the usual ClientError.

Why our own small HTTP layer (stdlib http.client, keep-alive, a bounded idle pool per
endpoint) rather than urllib3's one call: the wait for an answer is split from the
send, so a request waiting on a region that has just failed its health probes (a hung
process, a black-holed network) gives up at once when it is safe to send it elsewhere,
instead of sitting out a read timeout.

Signing per region: botocore signs each request once, for the endpoint it was built
with, and the signature covers the Host header. The hook signs each attempt again, with
the client's own credentials (botocore's SigV4 signer), for the region endpoint it is
sent to: every region receives an ordinary request addressed to itself, which it
verifies with the same cluster-wide key, and which a load balancer in front of a region
routes by its Host like any other. (Forwarding the first signature with a Host naming
another region would verify too — keys are cluster-wide and a node does not bind
signatures to its own name — but would address a region by another's name.) An
unsigned client (botocore's UNSIGNED) stays unsigned.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from urllib3.util.wait import wait_for_read

from atoll.client.routing import CONNECT_TIMEOUT_S, FAILOVER_BUDGET_S, Failover, Outcome, Router
from atoll.client.signing import sign

WAIT_SLICE_S = 0.05  # how often a waiting request looks at its region's probes
IDLE_PER_ENDPOINT = 32
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_DEFAULT_SETTINGS = {"aws_access_key_id": "atoll", "aws_secret_access_key": "atoll",
                     "region_name": "us-east-1"}


class _Body:
    """What AWSResponse reads a body from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, *_args: Any, **_kwargs: Any) -> Iterator[bytes]:
        yield self.data


class AttemptFailed(Exception):
    def __init__(self, outcome: Outcome, error: Exception) -> None:
        super().__init__(f"{outcome.value}: {error!r}")
        self.outcome = outcome
        self.error = error


class Upstreams:
    """Keep-alive HTTP/1.1 connections to region endpoints (blocking, thread-safe);
    https:// endpoints over TLS, trusting `ca_file` (else the system's CAs)."""

    def __init__(self, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 ca_file: str | None = None) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.tls = ssl.create_default_context(cafile=ca_file)
        self._idle: dict[str, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def exchange(self, trip: Failover, region: str, endpoint: str, path: str, body: bytes,
                 headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Send one request and read its answer; AttemptFailed says how it failed."""
        connection = self._connection(endpoint, trip)
        try:
            assert connection.sock is not None
            connection.sock.settimeout(max(trip.remaining_s(), 0.01))
            connection.request("POST", path, body, headers)
        except OSError as exc:  # maybe partly written: the server may have it
            connection.close()
            raise AttemptFailed(Outcome.NO_ANSWER, exc) from None
        try:
            self._await_answer(connection, trip, region)
            connection.sock.settimeout(max(trip.remaining_s(), 0.01))
            response = connection.getresponse()
            data = response.read(MAX_RESPONSE_BYTES + 1)
            if len(data) > MAX_RESPONSE_BYTES:
                raise http.client.HTTPException("response too large")
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise AttemptFailed(Outcome.NO_ANSWER, exc) from None
        except AttemptFailed:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._give_back(endpoint, connection)
        return response.status, dict(response.getheaders()), data

    def _connection(self, endpoint: str, trip: Failover) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get(endpoint, [])
            while idle:
                connection = idle.pop()
                # an idle connection with something to read was closed by the server
                # (it restarted, or timed the connection out): never send on it
                if connection.sock is not None and not wait_for_read(connection.sock, 0):
                    return connection
                connection.close()
        parts = urlsplit(endpoint)
        timeout_s = max(min(self.connect_timeout_s, trip.remaining_s()), 0.01)
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=timeout_s, context=self.tls)
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                                    timeout=timeout_s)
        try:
            connection.connect()
        except OSError as exc:  # refused, timed out, name not resolved: nothing was sent
            connection.close()
            raise AttemptFailed(Outcome.NOT_SENT, exc) from None
        assert connection.sock is not None
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    @staticmethod
    def _await_answer(connection: http.client.HTTPConnection, trip: Failover,
                      region: str) -> None:
        assert connection.sock is not None
        while not wait_for_read(connection.sock, min(WAIT_SLICE_S, trip.remaining_s())):
            if trip.remaining_s() <= 0:
                raise AttemptFailed(Outcome.NO_ANSWER, TimeoutError("no answer in time"))
            if trip.abandon(region):
                raise AttemptFailed(Outcome.ABANDONED,
                                    TimeoutError(f"region {region} failed its probes"))

    def _give_back(self, endpoint: str, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(endpoint, [])
            if len(idle) < IDLE_PER_ENDPOINT:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            for idle in self._idle.values():
                for connection in idle:
                    connection.close()
            self._idle.clear()


def _botocore_error(url: str, failure: AttemptFailed) -> Exception:
    """The botocore exception a plain client would raise for this failure."""
    if failure.outcome is Outcome.NOT_SENT:
        if isinstance(failure.error, TimeoutError):
            return ConnectTimeoutError(endpoint_url=url, error=failure.error)
        return EndpointConnectionError(endpoint_url=url, error=failure.error)
    if isinstance(failure.error, TimeoutError) or failure.outcome is Outcome.ABANDONED:
        return ReadTimeoutError(endpoint_url=url, error=failure.error)
    return ConnectionClosedError(endpoint_url=url, error=failure.error)


_SIGNATURE_HEADERS = ("authorization", "x-amz-date", "x-amz-security-token",
                      "x-amz-content-sha256", "host")


class FailoverTransport:
    """The before-send handler: try the Router's candidates in order, each attempt
    signed for its region's endpoint (see the module docstring)."""

    def __init__(self, router: Router, *, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 budget_s: float = FAILOVER_BUDGET_S, credentials: Any = None,
                 signing_region: str = "us-east-1") -> None:
        self.router = router
        self.budget_s = budget_s
        self.credentials = credentials
        self.signing_region = signing_region
        self.upstreams = Upstreams(connect_timeout_s, router.ca_file)

    def _headers_for(self, endpoint: str, path: str, body: bytes,
                     headers: dict[str, str], signed: bool) -> dict[str, str]:
        """The request's headers, signed again for `endpoint` if it was signed."""
        if not signed or self.credentials is None:
            return headers
        return sign(self.credentials, "POST", endpoint + path, body, headers,
                    self.signing_region)

    def __call__(self, request: Any, **_kwargs: Any) -> AWSResponse:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        body = request.body or b""
        if hasattr(body, "read"):
            body = body.read()
        body = body.encode() if isinstance(body, str) else bytes(body)
        path = urlsplit(request.url).path or "/"
        signed = "Authorization" in request.headers
        headers = {k: (v.decode() if isinstance(v, bytes) else v)
                   for k, v in request.headers.items()
                   if k.lower() not in _SIGNATURE_HEADERS}
        trip = self.router.failover(target.rpartition(".")[2], body, self.budget_s)
        last: Exception | AWSResponse | None = None
        for region, endpoint in trip:
            url = endpoint + path
            try:
                status, response_headers, data = self.upstreams.exchange(
                    trip, region, endpoint, path, body,
                    self._headers_for(endpoint, path, body, headers, signed))
            except AttemptFailed as failure:
                last = _botocore_error(url, failure)
                if trip.failed(region, failure.outcome, repr(failure.error)):
                    continue
                break
            answer = AWSResponse(url, status, response_headers, _Body(data))
            if status < 500:
                trip.served(region)
                return answer
            last = answer
            if not trip.failed(region, Outcome.SERVER_ERROR, f"HTTP {status}"):
                break
        trip.surfaced()
        if isinstance(last, AWSResponse):
            return last  # botocore raises the usual ClientError for the 5xx
        assert last is not None
        raise last

    def close(self) -> None:
        self.upstreams.close()


def _credentials(session: Any, kwargs: dict[str, Any]) -> Any:
    """The credentials the client will sign with: given as arguments, else the
    session's (environment, profile, ...), else None."""
    if kwargs.get("aws_access_key_id") and kwargs.get("aws_secret_access_key"):
        return Credentials(kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"],
                           kwargs.get("aws_session_token"))
    return session.get_credentials()


def _client_settings(kwargs: dict[str, Any], connect_timeout_s: float,
                     budget_s: float, have_credentials: bool) -> dict[str, Any]:
    # dummies only when nothing else is found (a cluster with auth off takes any)
    settings = {**({} if have_credentials else _DEFAULT_SETTINGS), **kwargs}
    settings.setdefault("region_name", _DEFAULT_SETTINGS["region_name"])
    # botocore retries nothing (failing over is the retry); its own timeouts are never
    # used for sending, but are set to ours for anything that reads them
    ours = Config(retries={"total_max_attempts": 1}, connect_timeout=connect_timeout_s,
                  read_timeout=budget_s)
    given = settings.pop("config", None)
    settings["config"] = given.merge(ours) if given is not None else ours
    return settings


def _attach(client: Any, router: Router, transport: FailoverTransport) -> None:
    client.meta.events.register_first("before-send.dynamodb", transport)
    client.atoll_router = router  # for metrics(client)
    client.atoll_transport = transport


def _build(factory: str, seeds: Sequence[str], region_preference: Sequence[str],
           cache_path: str | Path | None, connect_timeout_s: float, budget_s: float,
           boto3_kwargs: dict[str, Any]) -> Any:
    session = boto3_kwargs.pop("session", None) or boto3.session.Session()
    credentials = _credentials(session, boto3_kwargs)
    verify = boto3_kwargs.get("verify")
    ca_file = verify if isinstance(verify, str) else None
    router = boto3_kwargs.pop("router", None) or Router(
        seeds, region_preference, cache_path, credentials=credentials, ca_file=ca_file)
    settings = _client_settings(boto3_kwargs, connect_timeout_s, budget_s,
                                credentials is not None)
    # botocore needs an endpoint to sign for; the hook decides where requests go
    made = getattr(session, factory)("dynamodb", endpoint_url=router.candidates()[0][1],
                                     **settings)
    client = made.meta.client if factory == "resource" else made
    _attach(client, router, FailoverTransport(
        router, connect_timeout_s=connect_timeout_s, budget_s=budget_s,
        credentials=credentials, signing_region=client.meta.region_name))
    return made


def boto3_client(seeds: Sequence[str], region_preference: Sequence[str] = (),
                 cache_path: str | Path | None = None, *,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 failover_budget_s: float = FAILOVER_BUDGET_S, **boto3_kwargs: Any) -> Any:
    """A boto3 DynamoDB client that fails over between the cluster's regions.

    seeds: client endpoints of any nodes (`http://HOST:PORT`), tried in order for the
    topology. region_preference: region ids, nearest first (others follow).
    cache_path: where to keep the last good topology (default ~/.cache/atoll/<cluster>.json).
    Other keyword arguments go to `boto3.client` (credentials default to dummies; a
    `session=` is used instead of boto3's default one; `router=` shares one Router —
    one topology and one set of probes — between several clients, and then seeds,
    region_preference and cache_path are ignored)."""
    return _build("client", seeds, region_preference, cache_path, connect_timeout_s,
                  failover_budget_s, boto3_kwargs)


def boto3_resource(seeds: Sequence[str], region_preference: Sequence[str] = (),
                   cache_path: str | Path | None = None, *,
                   connect_timeout_s: float = CONNECT_TIMEOUT_S,
                   failover_budget_s: float = FAILOVER_BUDGET_S, **boto3_kwargs: Any) -> Any:
    """The boto3 DynamoDB resource (`Table`, ...) on a failover client."""
    return _build("resource", seeds, region_preference, cache_path, connect_timeout_s,
                  failover_budget_s, boto3_kwargs)


def _client_of(client_or_resource: Any) -> Any:
    return getattr(getattr(client_or_resource, "meta", None), "client", client_or_resource)


def router(client_or_resource: Any) -> Router:
    """The Router behind a failover client or resource."""
    return _client_of(client_or_resource).atoll_router  # type: ignore[no-any-return]


def metrics(client_or_resource: Any) -> dict[str, Any]:
    """Route, failovers and per-region probe results of a failover client."""
    return router(client_or_resource).snapshot()


def close(client_or_resource: Any) -> None:
    """Stop the client's background threads and close its connections."""
    client = _client_of(client_or_resource)
    client.atoll_router.close()
    client.atoll_transport.close()
