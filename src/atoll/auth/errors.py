"""Exceptions of the auth core.

The verifier, the permission check and the key store raise these; they carry no HTTP
status and no `__type`. `atoll.api.errors` maps them once onto DynamoDB's shapes. What
DynamoDB answers (all with HTTP 400; the `__type` prefix is `com.amazon.coral.service#`):

| exception                   | DynamoDB `__type`                     |
|-----------------------------|---------------------------------------|
| MissingAuthenticationToken  | MissingAuthenticationTokenException   |
| IncompleteSignature         | IncompleteSignatureException          |
| InvalidSignature            | InvalidSignatureException             |
| UnrecognizedClient          | UnrecognizedClientException           |
| ExpiredToken                | ExpiredTokenException                 |
| AccessDenied                | AccessDeniedException                 |

Every refusal carries `reason`, a short stable code (the REASON_* constants) for the
counters in `/_atoll/status` and the one log line per refused request, and `key_id`
when the request named a key (never a secret). Clients see only `message`, which
follows DynamoDB's wording; the reason may be more precise than the message on purpose
(an unknown and a revoked key get the same message, but different reasons).

`SealedRecordError` is not a client error: it means a stored key record could not be
opened (another cluster's data key, or tampering) and is for the node's logs.
"""

from __future__ import annotations

from atoll.errors import AtollError

# DynamoDB's wording of the common refusals
MISMATCH = ("The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.")
BAD_TOKEN = "The security token included in the request is invalid."
EXPIRED_TOKEN = "The security token included in the request is expired"
MISSING = "Request is missing Authentication Token"

REASON_MISSING = "missing"
REASON_MALFORMED = "malformed"
REASON_TOO_LARGE = "too-large"
REASON_PRESIGNED = "presigned"
REASON_ALGORITHM = "algorithm"
REASON_DATE_FORMAT = "date-format"
REASON_EXPIRED = "expired"
REASON_NOT_YET_VALID = "not-yet-valid"
REASON_SCOPE = "scope"
REASON_UNSIGNED_HEADER = "unsigned-header"
REASON_UNKNOWN_KEY = "unknown-key"
# an unknown key while the region may lack keys its peers hold (answered as retryable)
REASON_KEYS_INCOMPLETE = "unknown-key-catching-up"
REASON_REVOKED_KEY = "revoked-key"
REASON_EXPIRED_KEY = "expired-key"
REASON_TOKEN = "session-token"
REASON_BODY_HASH = "body-hash"
REASON_SIGNATURE = "signature"
REASON_DENIED = "denied"


class AuthError(AtollError):
    """A request refused by authentication or authorization."""

    def __init__(self, message: str, reason: str, key_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.key_id = key_id


class MissingAuthenticationToken(AuthError):
    """The request carries no SigV4 authorization at all."""


class IncompleteSignature(AuthError):
    """The Authorization header (or its date) is malformed or lacks a part."""


class InvalidSignature(AuthError):
    """The signature is well formed but wrong: scope, signed headers, date or HMAC."""


class UnrecognizedClient(AuthError):
    """The access key (or its session token) is unknown, revoked or wrong."""


class ExpiredToken(AuthError):
    """A key issued with an expiry (a session key) is used after it."""


class AccessDenied(AuthError):
    """The key is authentic but its role or table list does not allow the request."""


class SealedRecordError(AtollError):
    """A stored key record cannot be opened: wrong cluster data key, or tampered with."""
