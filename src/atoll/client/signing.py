"""Signing Atoll's own HTTP calls (topology, status, keys) the way SDKs sign DynamoDB's.

A node with auth on answers `/_atoll/...` only to requests signed with AWS Signature
Version 4 by one of its keys (node/admin.py). The CLI, the failover client's router and
the proxy sign those calls with botocore's own signer (service `dynamodb`), with
credentials found the way the AWS SDKs find them (`resolve_credentials`).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

SERVICE = "dynamodb"
SIGNING_REGION = "us-east-1"  # any region works: keys are cluster-wide
LOCAL_CREDENTIALS = Path("data") / "credentials"  # what `make run` writes
LOCAL_PROFILE = "atoll"
MAX_ANSWER_BYTES = 16 * 1024 * 1024


def resolve_credentials(profile: str | None = None, credentials_file: str | Path | None = None,
                        access_key_id: str | None = None, secret_access_key: str | None = None,
                        session_token: str | None = None) -> Credentials | None:
    """Credentials as given, else from a profile of a credentials file, else the SDKs'
    usual chain (environment, ~/.aws, ...), else `./data/credentials` (profile `atoll`,
    written by `make run`) when it exists. None when there are none at all."""
    if access_key_id and secret_access_key:
        return Credentials(access_key_id, secret_access_key, session_token)
    local = credentials_file is None and profile is None
    session = botocore.session.Session(profile=profile)
    if credentials_file is not None:
        session.set_config_variable("credentials_file", str(credentials_file))
    found = session.get_credentials()
    if found is None and local and LOCAL_CREDENTIALS.exists():
        session = botocore.session.Session(profile=LOCAL_PROFILE)
        session.set_config_variable("credentials_file", str(LOCAL_CREDENTIALS.resolve()))
        found = session.get_credentials()
    return found  # type: ignore[no-any-return]


def sign(credentials: Credentials | ReadOnlyCredentials | Any, method: str, url: str,
         body: bytes = b"", headers: dict[str, str] | None = None,
         region: str = SIGNING_REGION) -> dict[str, str]:
    """The headers to send: `headers` plus SigV4's (unchanged without credentials)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    if credentials is not None:
        frozen = getattr(credentials, "get_frozen_credentials", None)  # refreshable ones
        SigV4Auth(frozen() if frozen is not None else credentials, SERVICE,
                  region).add_auth(request)
    return {k: (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in request.headers.items()}


def tls_context(ca_file: str | Path | None) -> ssl.SSLContext | None:
    """For https:// endpoints: trust `ca_file` (else the system's CAs)."""
    if ca_file is None:
        return None
    return ssl.create_default_context(cafile=str(ca_file))


def call(url: str, credentials: Credentials | None, body: bytes | None = None,
         timeout_s: float = 5.0, ca_file: str | Path | None = None) -> tuple[int, Any]:
    """GET (or POST `body`) a node's JSON page, signed; (status, decoded answer). The
    answer of a refusal is DynamoDB's error shape ({"__type", "message"})."""
    method = "GET" if body is None else "POST"
    headers = sign(credentials, method, url, body or b"",
                   {"Content-Type": "application/json"} if body is not None else {})
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s,  # noqa: S310
                                    context=tls_context(ca_file)) as response:
            return response.status, _decode(response.read(MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as exc:
        return exc.code, _decode(exc.read(MAX_ANSWER_BYTES))


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw.decode(errors="replace")[:300]}


def refusal(answer: Any) -> str:
    """A short description of a refusal answer."""
    if isinstance(answer, dict):
        kind = str(answer.get("__type", "")).rsplit("#", 1)[-1]
        message = answer.get("message") or answer.get("reason") or answer
        return f"{kind}: {message}" if kind else str(message)
    return str(answer)
