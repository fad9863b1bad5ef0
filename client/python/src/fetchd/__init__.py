"""fetchd: the Python client of fetchd, the shared HTTP fetch service.

    async with fetchd.Client("127.0.0.1:50051") as client:
        resp = await client.get("https://example.org/", timeout=10)
        async for r in client.fetch_many(urls, concurrency=64):
            print(r.index, r.status, r.error)

A failed URL is data (Response.error); exceptions are for calls to fetchd
that fail (FetchdError and its subclasses). client/python/README.md has the
whole API and the mapping from aiohttp.
"""

from ._client import Client
from ._errors import (FetchdCancelled, FetchdDeadlineExceeded, FetchdError,
                      FetchdInvalidArgument, FetchdOverloaded,
                      FetchdPermissionDenied, FetchdUnauthenticated,
                      FetchdUnavailable, HTTPStatusError, PayloadError,
                      ResponseError, WSHandshakeError)
from ._headers import Headers
from ._options import (BasicAuth, ChannelTLS, Request, Retry, TargetTLS,
                       Timeout)
from ._response import ErrorInfo, ErrorKind, Redirect, Response, Timings
from ._stream import StreamResponse
from ._sync import SyncClient
from ._ws import WebSocket, WSMessage, WSMsgType

__version__ = "0.1.0"

__all__ = [
    "BasicAuth", "ChannelTLS", "Client", "ErrorInfo", "ErrorKind",
    "FetchdCancelled", "FetchdDeadlineExceeded", "FetchdError",
    "FetchdInvalidArgument", "FetchdOverloaded", "FetchdPermissionDenied",
    "FetchdUnauthenticated", "FetchdUnavailable", "HTTPStatusError",
    "Headers", "PayloadError", "Redirect", "Request", "Response",
    "ResponseError", "Retry", "StreamResponse", "SyncClient", "TargetTLS",
    "Timeout", "Timings", "WSHandshakeError", "WSMessage", "WSMsgType",
    "WebSocket",
]
