"""Response: one request's final result, over fetchd's FetchResult message.

Nothing is copied or decoded up front: headers, body, timings and history
are read from the message the first time they are asked for (the body once,
then kept), so a fetch_many() loop that looks only at `status` costs one
small object per result.
"""

from __future__ import annotations

import enum
import json as _json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Callable, List, NamedTuple, Optional

from ._errors import HTTPStatusError, ResponseError
from ._headers import Headers
from ._proto import fetch_pb2


class ErrorKind(str, enum.Enum):
    """Why a request failed (fetch.v1.ErrorKind without its prefix). A str,
    so `resp.error.kind == "DNS"` holds too."""

    INVALID_REQUEST = "INVALID_REQUEST"
    DNS = "DNS"
    CONNECT = "CONNECT"
    TLS = "TLS"
    CONNECT_TIMEOUT = "CONNECT_TIMEOUT"
    TOTAL_TIMEOUT = "TOTAL_TIMEOUT"
    READ_TIMEOUT = "READ_TIMEOUT"
    QUEUE_TIMEOUT = "QUEUE_TIMEOUT"
    TOO_MANY_REDIRECTS = "TOO_MANY_REDIRECTS"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    HTTP_STATUS = "HTTP_STATUS"
    DENIED = "DENIED"
    CANCELLED = "CANCELLED"
    PROTOCOL = "PROTOCOL"
    INTERNAL = "INTERNAL"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    # The host's circuit breaker is open: no connection was attempted.
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    # A kind this client does not know (a newer fetchd).
    UNKNOWN = "UNKNOWN"

    @property
    def is_timeout(self) -> bool:
        return self in _TIMEOUTS

    @classmethod
    def _from_proto(cls, value: int) -> "ErrorKind":
        try:
            return _KINDS[value]
        except KeyError:
            return cls.UNKNOWN


_TIMEOUTS = frozenset({ErrorKind.CONNECT_TIMEOUT, ErrorKind.TOTAL_TIMEOUT,
                       ErrorKind.READ_TIMEOUT, ErrorKind.QUEUE_TIMEOUT,
                       ErrorKind.DEADLINE_EXCEEDED})
# Kinds the proto has and this enum lacks read as UNKNOWN.
_KINDS = {number: ErrorKind.__members__.get(name[len("ERROR_KIND_"):],
                                            ErrorKind.UNKNOWN)
          for name, number in fetch_pb2.ErrorKind.items()
          if number != fetch_pb2.ERROR_KIND_NONE}


@dataclass(frozen=True)
class ErrorInfo:
    """A failed request: its kind and fetchd's human-readable detail."""

    kind: ErrorKind
    message: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}" if self.message else \
            self.kind.value


def _seconds(d: Any) -> float:
    return d.seconds + d.nanos * 1e-9


@dataclass(frozen=True)
class Timings:
    """Where the time went, in seconds. queue_wait is summed over attempts;
    the others are of the last attempt, from its start; redirect is the
    time spent in the hops before the last response."""

    queue_wait: float
    dns: float
    connect: float
    tls: float
    first_byte: float
    total: float
    redirect: float

    @classmethod
    def _from_proto(cls, t: Any) -> "Timings":
        return cls(_seconds(t.queue_wait), _seconds(t.dns),
                   _seconds(t.connect), _seconds(t.tls),
                   _seconds(t.first_byte), _seconds(t.total),
                   _seconds(t.redirect))


class Redirect(NamedTuple):
    """One followed redirect: the URL requested and its 3xx status."""

    url: str
    status: int


def _input_url(item: Any) -> str:
    return item if isinstance(item, str) else item.url


def charset_of(content_type: Optional[str]) -> Optional[str]:
    """The charset parameter of a Content-Type value, if any."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"\'') or None
    return None


class Response:
    """The final result of one request (like aiohttp's ClientResponse
    after read()).

    status      HTTP status of the last response; 0 when none came
    ok          no error and status < 400
    error       None on success, else ErrorInfo(kind, message)
    headers     Headers, case-insensitive multi-dict
    url         the URL as requested; final_url after redirects
    history     [Redirect(url, status)] for each redirect followed
    content     the body (bytes); text(), json()
    attempts    attempts made (1 + retries)
    timings     Timings
    index, id   position in fetch_many()'s input and the caller's id
    """

    __slots__ = ("_r", "_input", "index", "_content", "_headers")

    def __init__(self, result: Any, item: Any, index: int) -> None:
        self._r = result
        self._input = item
        self.index = index
        self._content: Optional[bytes] = None
        self._headers: Optional[Headers] = None

    @property
    def raw(self) -> Any:
        """The fetch.v1.FetchResult message itself."""
        return self._r

    @property
    def id(self) -> str:
        return self._r.id

    @property
    def status(self) -> int:
        return self._r.status

    @property
    def reason(self) -> str:
        try:
            return HTTPStatus(self._r.status).phrase
        except ValueError:
            return ""

    @property
    def ok(self) -> bool:
        r = self._r
        return r.error == 0 and 0 < r.status < 400

    @property
    def error(self) -> Optional[ErrorInfo]:
        r = self._r
        if r.error == 0:
            return None
        return ErrorInfo(ErrorKind._from_proto(r.error), r.error_message)

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers._lazy(self._r.headers)
        return self._headers

    @property
    def url(self) -> str:
        return _input_url(self._input)

    @property
    def final_url(self) -> str:
        return self._r.final_url

    @property
    def history(self) -> List[Redirect]:
        return [Redirect(h.url, h.status) for h in self._r.redirect_history]

    @property
    def content(self) -> bytes:
        if self._content is None:
            self._content = self._r.body
        return self._content

    @property
    def content_type(self) -> str:
        value = self.headers.get("content-type", "")
        return value.split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> Optional[str]:
        return charset_of(self.headers.get("content-type"))

    def text(self, encoding: Optional[str] = None,
             errors: str = "replace") -> str:
        """The body decoded with `encoding`, else the Content-Type's
        charset, else UTF-8; undecodable bytes replaced unless `errors`
        says otherwise."""
        return self.content.decode(encoding or self.charset or "utf-8",
                                   errors)

    def json(self, loads: Callable[[bytes], Any] = _json.loads) -> Any:
        """The body parsed as JSON (any Content-Type)."""
        return loads(self.content)

    @property
    def attempts(self) -> int:
        return self._r.attempts

    @property
    def timings(self) -> Timings:
        return Timings._from_proto(self._r.timings)

    @property
    def elapsed(self) -> float:
        """Seconds of the last attempt's transfer (timings.total)."""
        return _seconds(self._r.timings.total)

    @property
    def bytes_received(self) -> int:
        return self._r.bytes_received

    @property
    def bytes_sent(self) -> int:
        return self._r.bytes_sent

    @property
    def remote_address(self) -> str:
        return self._r.remote_address

    @property
    def http_version(self) -> str:
        return self._r.http_version

    @property
    def connection_reused(self) -> bool:
        return self._r.connection_reused

    @property
    def set_cookies(self) -> List[str]:
        """Every Set-Cookie value received, redirect hops included."""
        return list(self._r.set_cookies)

    def raise_for_status(self) -> "Response":
        """Raises HTTPStatusError for a status >= 400, ResponseError for
        any other failure; returns the response otherwise."""
        err = self.error
        if err is not None and err.kind is not ErrorKind.HTTP_STATUS:
            raise ResponseError(self, str(err))
        if self._r.status >= 400:
            raise HTTPStatusError(
                self, f"{self._r.status} {self.reason} for {self.url}")
        return self

    def __repr__(self) -> str:
        err = self.error
        what = f"{err}" if err else f"{self.status}"
        return f"<Response [{what}] {self.url}>"
