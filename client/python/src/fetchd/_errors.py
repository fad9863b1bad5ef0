"""Exceptions of the fetchd client.

Two families, kept apart on purpose:

- FetchdError and its subclasses: the call to fetchd itself failed (it is
  down, overloaded, refused the credentials or the batch). Mapped from the
  gRPC status in one place, `from_rpc_error()`.
- ResponseError and its subclasses: raised only when the caller asks for it
  (Response.raise_for_status(), or a streamed body that breaks off). A
  failed URL is otherwise data: Response.error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import grpc

if TYPE_CHECKING:
    from ._response import ErrorKind, Response


class FetchdError(Exception):
    """An RPC to fetchd failed. `code` is the gRPC status code, `details`
    fetchd's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class FetchdUnavailable(FetchdError):
    """fetchd can't be reached, or it is shutting down (draining)."""


class FetchdOverloaded(FetchdError):
    """fetchd is over its pending bound or the caller's quota
    (RESOURCE_EXHAUSTED). Retry after `retry_after` seconds (from fetchd's
    retry-after-ms trailer; None when it sent none)."""

    def __init__(self, code: grpc.StatusCode, details: str,
                 retry_after: Optional[float]) -> None:
        super().__init__(code, details)
        self.retry_after = retry_after


class FetchdUnauthenticated(FetchdError):
    """No token or certificate where fetchd requires one, or an unknown
    token."""


class FetchdPermissionDenied(FetchdError):
    """fetchd refused the caller."""


class FetchdInvalidArgument(FetchdError):
    """fetchd refused the call as a whole: an empty or oversize batch, bad
    batch defaults, a malformed WebSocket open."""


class FetchdDeadlineExceeded(FetchdError):
    """The RPC deadline (Client(rpc_timeout=...)) passed."""


class FetchdCancelled(FetchdError):
    """fetchd cancelled the call (e.g. at the end of a drain)."""


_BY_CODE = {
    grpc.StatusCode.UNAVAILABLE: FetchdUnavailable,
    grpc.StatusCode.UNAUTHENTICATED: FetchdUnauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: FetchdPermissionDenied,
    grpc.StatusCode.INVALID_ARGUMENT: FetchdInvalidArgument,
    grpc.StatusCode.DEADLINE_EXCEEDED: FetchdDeadlineExceeded,
    grpc.StatusCode.CANCELLED: FetchdCancelled,
}


def from_rpc_error(error: grpc.aio.AioRpcError) -> FetchdError:
    """The FetchdError for a failed call."""
    code = error.code()
    details = error.details() or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        retry_after = None
        for key, value in error.trailing_metadata() or ():
            if key == "retry-after-ms":
                try:
                    retry_after = int(value) / 1000.0
                except ValueError:
                    pass
        return FetchdOverloaded(code, details, retry_after)
    return _BY_CODE.get(code, FetchdError)(code, details)


class ResponseError(Exception):
    """A response was asked to be a success and isn't. `response` is it;
    `kind` and `message` are its error (kind None for an HTTP status)."""

    def __init__(self, response: "Response", message: str) -> None:
        super().__init__(message)
        self.response = response
        self.status: int = response.status
        err = response.error
        self.kind: Optional["ErrorKind"] = err.kind if err else None
        self.message = message


class HTTPStatusError(ResponseError):
    """The response has a status >= 400 (aiohttp's ClientResponseError)."""


class PayloadError(ResponseError):
    """A streamed body broke off after it started (aiohttp's
    ClientPayloadError): the bytes already given are incomplete."""


class WSHandshakeError(Exception):
    """ws_connect() could not open the WebSocket (aiohttp's
    WSServerHandshakeError). `kind` and `message` say why, `status` is the
    HTTP status of the handshake response (0 when none)."""

    def __init__(self, kind: "ErrorKind", message: str, status: int) -> None:
        super().__init__(f"{kind.value}: {message}" if message else kind.value)
        self.kind = kind
        self.message = message
        self.status = status
