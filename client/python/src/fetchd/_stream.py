"""Streamed bodies: Client.stream() runs a one-request FetchBatch with
stream_body set and hands the body over chunk by chunk.

Memory stays bounded: one gRPC message is read only when the caller has
taken the chunks of the previous one, and fetchd reads from the target only
as fast as the stream is read (its flow control).

Threads: the event loop of the Client that made it.
"""

from __future__ import annotations

import collections
import os
from typing import Any, AsyncIterator, Deque, List, Optional, Tuple, Union

import grpc

from ._errors import HTTPStatusError, PayloadError, ResponseError, \
    from_rpc_error
from ._headers import Headers
from ._proto import fetch_pb2
from ._response import (ErrorInfo, ErrorKind, Redirect, Response, Timings,
                        charset_of)


class StreamResponse:
    """A response whose body is still coming (aiohttp's ClientResponse
    before read()). The head (status, headers, final_url) is known on
    entry; `error`, `attempts`, `timings` and `history` are final once the
    body has been read to its end (`complete`).

    A request that failed before any response (DNS, connect, denied ...)
    has `error` set on entry and an empty body. A body that breaks off
    after it started raises PayloadError from the iterators and save().
    """

    def __init__(self, call: Any, url: str) -> None:
        self._call = call
        self.url = url
        self._head: Any = None
        self._result: Any = None
        self._chunks: Deque[bytes] = collections.deque()
        self._eof = False
        self._headers: Optional[Headers] = None
        self._consumed = False

    # -- reading the gRPC stream --------------------------------------------

    async def _read_event(self) -> bool:
        """Reads one FetchEvent into the state; False at the stream's end."""
        try:
            event = await self._call.read()
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from None
        if event is grpc.aio.EOF:
            self._eof = True
            return False
        # Heads first, then chunks, then results (fetch.proto, FetchEvent).
        for head in event.heads:
            self._head = head
        for chunk in event.chunks:
            self._chunks.append(chunk.data)
        for result in event.results:
            self._result = result
        return True

    async def _start(self) -> None:
        while self._head is None and self._result is None:
            if not await self._read_event():
                raise ResponseError(
                    Response(fetch_pb2.FetchResult(), self.url, 0),
                    "fetchd ended the stream without a result")

    async def _next_chunk(self) -> Optional[bytes]:
        while not self._chunks:
            if self._result is not None or self._eof:
                self._consumed = True
                self._check()
                return None
            await self._read_event()
        return self._chunks.popleft()

    def _check(self) -> None:
        r = self._result
        if r is not None and r.error and self._head is not None:
            raise PayloadError(self.response(),
                               f"the body broke off: "
                               f"{ErrorInfo(ErrorKind._from_proto(r.error), r.error_message)}")

    # -- the head ----------------------------------------------------------

    @property
    def status(self) -> int:
        src = self._head if self._head is not None else self._result
        return src.status

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            src = self._head if self._head is not None else self._result
            self._headers = Headers._lazy(src.headers)
        return self._headers

    @property
    def final_url(self) -> str:
        src = self._head if self._head is not None else self._result
        return src.final_url

    @property
    def http_version(self) -> str:
        src = self._head if self._head is not None else self._result
        return src.http_version

    @property
    def content_length(self) -> Optional[int]:
        """The body's size when known up front (Content-Length of a body
        fetchd does not decode), else None."""
        h = self._head
        if h is not None and h.HasField("content_length"):
            return h.content_length
        return None

    @property
    def charset(self) -> Optional[str]:
        return charset_of(self.headers.get("content-type"))

    # -- known at the end --------------------------------------------------

    @property
    def complete(self) -> bool:
        """The final result has arrived (the body is fully read)."""
        return self._result is not None and not self._chunks

    @property
    def error(self) -> Optional[ErrorInfo]:
        r = self._result
        if r is None or r.error == 0:
            return None
        return ErrorInfo(ErrorKind._from_proto(r.error), r.error_message)

    @property
    def ok(self) -> bool:
        return self.error is None and 0 < self.status < 400

    @property
    def attempts(self) -> int:
        return self._result.attempts if self._result is not None else 0

    @property
    def timings(self) -> Optional[Timings]:
        if self._result is None:
            return None
        return Timings._from_proto(self._result.timings)

    @property
    def history(self) -> List[Redirect]:
        if self._result is None:
            return []
        return [Redirect(h.url, h.status)
                for h in self._result.redirect_history]

    @property
    def bytes_received(self) -> int:
        return self._result.bytes_received if self._result is not None else 0

    def response(self) -> Response:
        """The final result as a Response (no body: it was streamed)."""
        r = self._result if self._result is not None else \
            fetch_pb2.FetchResult()
        return Response(r, self.url, 0)

    def raise_for_status(self) -> "StreamResponse":
        err = self.error
        if err is not None and self._head is None:
            raise ResponseError(self.response(), str(err))
        if self.status >= 400:
            raise HTTPStatusError(self.response(),
                                  f"{self.status} for {self.url}")
        return self

    # -- the body ----------------------------------------------------------

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body in the pieces fetchd sends (BodyChunk.data)."""
        while True:
            chunk = await self._next_chunk()
            if chunk is None:
                return
            yield chunk

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        """The body in pieces of at most `n` bytes (as aiohttp's
        StreamReader.iter_chunked; a piece may be shorter)."""
        if n < 1:
            raise ValueError(f"iter_chunked(n) needs n >= 1, not {n}")
        while True:
            chunk = await self._next_chunk()
            if chunk is None:
                return
            if len(chunk) <= n:
                yield chunk
            else:
                view = memoryview(chunk)
                for start in range(0, len(chunk), n):
                    yield bytes(view[start:start + n])

    async def read(self) -> bytes:
        """The rest of the body, in memory."""
        parts = [chunk async for chunk in self.iter_any()]
        return b"".join(parts)

    async def text(self, encoding: Optional[str] = None,
                   errors: str = "replace") -> str:
        return (await self.read()).decode(encoding or self.charset or
                                          "utf-8", errors)

    async def save(self, path: Union[str, "os.PathLike[str]"]) -> int:
        """Writes the rest of the body to `path`; returns the bytes
        written. A body that breaks off raises PayloadError (the file
        keeps what came)."""
        written = 0
        with open(path, "wb") as f:
            async for chunk in self.iter_any():
                f.write(chunk)
                written += len(chunk)
        return written

    def close(self) -> None:
        """Stops the transfer (cancels the call) unless it has ended."""
        if not self._call.done():
            self._call.cancel()

    def __repr__(self) -> str:
        return f"<StreamResponse [{self.status}] {self.url}>"


class StreamContext:
    """What Client.stream() returns: `async with` it (or await it and
    close() the response yourself)."""

    def __init__(self, stub: Any, request: Any, url: str,
                 metadata: Optional[Tuple[Tuple[str, str], ...]],
                 rpc_timeout: Optional[float]) -> None:
        self._stub = stub
        self._request = request
        self._url = url
        self._metadata = metadata
        self._rpc_timeout = rpc_timeout
        self._resp: Optional[StreamResponse] = None

    async def _open(self) -> StreamResponse:
        batch = fetch_pb2.BatchRequest()
        batch.requests.append(self._request)
        call = self._stub.FetchBatch(batch, metadata=self._metadata,
                                     timeout=self._rpc_timeout)
        resp = StreamResponse(call, self._url)
        try:
            await resp._start()
        except BaseException:
            resp.close()
            raise
        return resp

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> StreamResponse:
        self._resp = await self._open()
        return self._resp

    async def __aexit__(self, *exc: Any) -> None:
        if self._resp is not None:
            self._resp.close()
