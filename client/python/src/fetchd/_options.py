"""The option types callers pass: Timeout, Retry, BasicAuth, TargetTLS,
ChannelTLS and Request. Plain immutable values; _build turns them into
fetch.v1 messages."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, NamedTuple, Optional, Sequence, Union

PathOrPem = Union[str, "os.PathLike[str]", bytes]


def read_pem(value: Optional[PathOrPem]) -> Optional[bytes]:
    """bytes are PEM text already; a str or path names a file to read."""
    if value is None or isinstance(value, bytes):
        return value
    with open(value, "rb") as f:
        return f.read()


@dataclass(frozen=True)
class Timeout:
    """Per-attempt limits in seconds (aiohttp's ClientTimeout). None leaves
    the server's default.

    total:   the whole transfer of one attempt (not the wait for a slot)
    connect: TCP and TLS connection establishment
    read:    longest time without receiving a byte once connected
    queue:   longest wait for a free slot (per-host, global or batch
             concurrency) before the first attempt
    """

    total: Optional[float] = None
    connect: Optional[float] = None
    read: Optional[float] = None
    queue: Optional[float] = None


@dataclass(frozen=True)
class Retry:
    """fetchd's retry policy. `retries=N` is Retry(max_attempts=N + 1).

    max_attempts: attempts in total, the first included
    backoff, max_backoff: full-jitter exponential backoff, seconds
    on: error kinds retried (names like "CONNECT"; empty: fetchd's default)
    on_status: HTTP statuses retried (empty: 429, 502, 503, 504)
    honor_retry_after: wait at least a 429/503's Retry-After
    retry_non_idempotent: retry POST/PATCH even after they were sent
    """

    max_attempts: Optional[int] = None
    backoff: Optional[float] = None
    max_backoff: Optional[float] = None
    on: Sequence[str] = ()
    on_status: Sequence[int] = ()
    honor_retry_after: Optional[bool] = None
    retry_non_idempotent: Optional[bool] = None


class BasicAuth(NamedTuple):
    """HTTP Basic credentials for the target (aiohttp.BasicAuth)."""

    login: str
    password: str = ""


@dataclass(frozen=True)
class TargetTLS:
    """TLS towards the target URL (the `ssl=` option): trust `ca` instead
    of the system store, present `cert`/`key` for mutual TLS, or skip
    verification (`verify=False`, only where fetchd's config allows it).
    Each PEM is bytes, or a path to read."""

    ca: Optional[PathOrPem] = None
    cert: Optional[PathOrPem] = None
    key: Optional[PathOrPem] = None
    verify: bool = True


@dataclass(frozen=True)
class ChannelTLS:
    """TLS of the connection to fetchd itself (Client(tls=...)): `ca` to
    trust (default: the system roots), `cert`/`key` for mTLS, and
    `server_name` when the certificate's name is not the target's host.
    Each PEM is bytes, or a path to read."""

    ca: Optional[PathOrPem] = None
    cert: Optional[PathOrPem] = None
    key: Optional[PathOrPem] = None
    server_name: Optional[str] = None


@dataclass(frozen=True)
class Request:
    """One request for fetch_many(): a URL, a method and the same keyword
    options as Client.request() (headers=, json=, timeout=, ...). `id` is
    echoed in the response."""

    url: str
    method: str = "GET"
    id: str = ""
    options: Dict[str, Any] = field(default_factory=dict)

    def __init__(self, url: str, method: str = "GET", *, id: str = "",
                 **options: Any) -> None:
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "options", options)
