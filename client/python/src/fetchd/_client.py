"""Client: the asyncio client of fetchd (grpc.aio), one channel per client.

Threads: a Client belongs to the event loop that first uses it (its channel
is made there); use it from that loop only. fetchd.SyncClient wraps one for
threads without a loop.

Ownership: the Client owns its channel; close() (or leaving `async with`)
closes it, which cancels the calls still running on it.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from typing import (TYPE_CHECKING, Any, AsyncIterable, AsyncIterator, Dict,
                    Iterable, List, Mapping, Optional, Sequence, Tuple, Union)

import grpc

from . import _build
from ._build import RequestOptions
from ._errors import from_rpc_error
from ._options import ChannelTLS, Request, read_pem
from ._proto import fetch_pb2, fetch_pb2_grpc, websocket_pb2_grpc
from ._response import Response
from ._stream import StreamContext
from ._ws import WSConnect

if TYPE_CHECKING:
    from typing import Unpack

    from ._options import TargetTLS

Input = Union[str, Request, Any]  # Any: a fetch.v1.FetchRequest
Inputs = Union[Iterable[Input], AsyncIterable[Input]]

# fetchd's default limits.max_batch_size; a server with a lower limit says
# so when refusing a batch, and the client then splits (see _batch_limit).
DEFAULT_MAX_BATCH_SIZE = 10000
# An async input that pauses this long ends the batch being gathered, so a
# slow producer's requests don't wait for a full batch.
BATCH_LINGER_S = 0.005
# Most requests per FetchStream message.
STREAM_MESSAGE_REQUESTS = 256
_LIMIT_RE = re.compile(
    r"server limit (?:per message )?is (\d+) \(limits\.max_batch_size\)")


def _batch_limit(error: grpc.aio.AioRpcError) -> Optional[int]:
    """The server's max_batch_size when `error` refuses a batch as too
    large, else None."""
    if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
        return None
    m = _LIMIT_RE.search(error.details() or "")
    return int(m.group(1)) if m else None


async def _stop(task: "asyncio.Future[Any]") -> None:
    """Cancels `task` and waits for it to end, whatever it ends with (its
    errors are the call's, reported by the reader)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class _Feeder:
    """Takes the inputs of fetch_many() a batch at a time, from a sync or
    an async iterable, without reading ahead of the batch being built."""

    def __init__(self, source: Inputs, linger: float) -> None:
        if isinstance(source, (str, bytes)):
            raise TypeError("fetch_many() takes an iterable of URLs or "
                            "requests, not one URL")
        self._iter: Optional[Iterable[Input]] = None
        self._aiter: Optional[AsyncIterator[Input]] = None
        if hasattr(source, "__aiter__"):
            self._aiter = source.__aiter__()  # type: ignore[union-attr]
        else:
            self._iter = iter(source)  # type: ignore[arg-type]
        self._linger = linger
        self._next: Optional["asyncio.Future[Input]"] = None
        self._done = False
        self._back: List[Input] = []

    async def take(self, n: int) -> List[Input]:
        items = self._back[:n]
        del self._back[:n]
        if self._iter is not None:
            items.extend(itertools.islice(self._iter, n - len(items)))
            return items
        assert self._aiter is not None
        try:
            while len(items) < n and not self._done:
                if self._next is None:
                    self._next = asyncio.ensure_future(
                        self._aiter.__anext__())
                if items and not self._next.done():
                    await asyncio.wait((self._next,), timeout=self._linger)
                    if not self._next.done():
                        break  # the producer paused: send what we have
                else:
                    await asyncio.wait((self._next,))
                pending, self._next = self._next, None
                try:
                    items.append(pending.result())
                except StopAsyncIteration:
                    self._done = True
        except asyncio.CancelledError:
            # Nothing taken is lost: the next take() starts with it (and
            # with the pending __anext__, kept in self._next).
            self.push_back(items)
            raise
        return items

    def push_back(self, items: List[Input]) -> None:
        self._back[:0] = items

    def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
            self._next = None


class Client:
    """fetchd's asyncio client: `async with fetchd.Client(target) as c`.

    target:   fetchd's gRPC address, host:port
    token:    bearer token for fetchd (auth.token_file), sent with every
              call as "authorization: Bearer TOKEN"
    tls:      None (plaintext), True (TLS, system roots) or ChannelTLS
              (CA, client certificate for mTLS, server name)
    max_batch_size: largest FetchBatch sent (default: fetchd's default
              limit; a lower server limit is learnt from its refusal)
    rpc_timeout: deadline of each RPC in seconds (default none: the
              requests' own timeouts bound them)
    **defaults: request options applied to every call (headers=,
              timeout=, retries=, raise_for_status=, ...), like
              aiohttp.ClientSession(headers=..., timeout=...)
    """

    def __init__(self, target: str = "127.0.0.1:50051", *,
                 token: Optional[str] = None,
                 tls: Union[None, bool, ChannelTLS] = None,
                 max_batch_size: Optional[int] = None,
                 rpc_timeout: Optional[float] = None,
                 channel_options: Sequence[Tuple[str, Any]] = (),
                 **defaults: "Unpack[RequestOptions]") -> None:
        self.target = target
        self._metadata: Optional[Tuple[Tuple[str, str], ...]] = (
            (("authorization", f"Bearer {token}"),) if token else None)
        self._credentials: Optional[grpc.ChannelCredentials] = None
        options: List[Tuple[str, Any]] = [
            # The server bounds messages (grpc.max_message_bytes); a large
            # unstreamed body must not be refused by the client first.
            ("grpc.max_receive_message_length", -1),
            ("grpc.max_send_message_length", -1),
        ]
        if tls is True:
            self._credentials = grpc.ssl_channel_credentials()
        elif isinstance(tls, ChannelTLS):
            self._credentials = grpc.ssl_channel_credentials(
                root_certificates=read_pem(tls.ca),
                private_key=read_pem(tls.key),
                certificate_chain=read_pem(tls.cert))
            if tls.server_name:
                options.append(("grpc.ssl_target_name_override",
                                tls.server_name))
        elif tls not in (None, False):
            raise TypeError("tls= takes None, True or a fetchd.ChannelTLS")
        options.extend(channel_options)
        self._options = options
        self._max_batch = max_batch_size or DEFAULT_MAX_BATCH_SIZE
        self._rpc_timeout = rpc_timeout
        self._defaults = _build.defaults_message(defaults)
        self._channel: Optional[grpc.aio.Channel] = None
        self._fetch: Any = None
        self._ws: Any = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    def _stubs(self) -> Any:
        if self._channel is None:
            if self._closed:
                raise RuntimeError("the fetchd.Client is closed")
            if self._credentials is not None:
                self._channel = grpc.aio.secure_channel(
                    self.target, self._credentials, self._options)
            else:
                self._channel = grpc.aio.insecure_channel(self.target,
                                                          self._options)
            self._fetch = fetch_pb2_grpc.FetchServiceStub(self._channel)
            self._ws = websocket_pb2_grpc.WebSocketServiceStub(self._channel)
        return self._fetch

    def _ws_stub(self) -> Any:
        self._stubs()
        return self._ws

    async def close(self) -> None:
        """Closes the channel; calls still running are cancelled."""
        self._closed = True
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    async def __aenter__(self) -> "Client":
        self._stubs()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- one request -------------------------------------------------------

    async def request(self, method: str, url: str, *, id: str = "",
                      **options: "Unpack[RequestOptions]") -> Response:
        """Sends one request (fetch.v1 Fetch) and returns its Response; a
        failed URL is Response.error, not an exception. Raises FetchdError
        subclasses for RPC failures, TypeError/ValueError for bad
        options."""
        msg = _build.build(method, url, options, self._defaults, id)
        try:
            result = await self._stubs().Fetch(msg, metadata=self._metadata,
                                               timeout=self._rpc_timeout)
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from None
        return Response(result, url, 0)

    async def get(self, url: str,
                  **options: "Unpack[RequestOptions]") -> Response:
        return await self.request("GET", url, **options)

    async def head(self, url: str,
                   **options: "Unpack[RequestOptions]") -> Response:
        return await self.request("HEAD", url, **options)

    async def options(self, url: str,
                      **options: "Unpack[RequestOptions]") -> Response:
        return await self.request("OPTIONS", url, **options)

    async def delete(self, url: str,
                     **options: "Unpack[RequestOptions]") -> Response:
        return await self.request("DELETE", url, **options)

    async def post(self, url: str,
                   **options: "Unpack[RequestOptions]") -> Response:
        return await self.request("POST", url, **options)

    async def put(self, url: str,
                  **options: "Unpack[RequestOptions]") -> Response:
        return await self.request("PUT", url, **options)

    async def patch(self, url: str,
                    **options: "Unpack[RequestOptions]") -> Response:
        return await self.request("PATCH", url, **options)

    # -- many requests -----------------------------------------------------

    def _input_message(self, item: Input) -> Any:
        if isinstance(item, Request):
            return _build.build(item.method, item.url, item.options, None,
                                item.id)
        if isinstance(item, fetch_pb2.FetchRequest):
            return item
        raise TypeError("fetch_many() inputs are URLs (str), fetchd.Request "
                        f"or fetch.v1.FetchRequest, not {type(item).__name__}")

    def _batch_options(self, base: Any, ordered: bool, fail_fast: bool,
                       concurrency: int,
                       cookies: Optional[Mapping[str, str]],
                       cookie_jar: Optional[bool]) -> Any:
        """A BatchRequest with the call's options and no requests."""
        batch = fetch_pb2.BatchRequest(
            ordered=ordered, fail_fast=fail_fast,
            max_concurrency=concurrency)
        if base is not None:
            batch.defaults.CopyFrom(base)
        if cookie_jar is not None:
            batch.cookie_jar = cookie_jar
        if cookies:
            for name, value in cookies.items():
                batch.cookies.add(name=name, value=value)
        return batch

    def _add_requests(self, repeated: Any, items: Sequence[Input]) -> None:
        add = repeated.add
        append = repeated.append
        for item in items:
            if isinstance(item, str):
                add(url=item)
            else:
                append(self._input_message(item))

    async def fetch_many(
            self, requests: Inputs, *, concurrency: int = 32,
            ordered: bool = False, fail_fast: bool = False,
            cookies: Optional[Mapping[str, str]] = None,
            cookie_jar: Optional[bool] = None,
            **defaults: "Unpack[RequestOptions]") -> AsyncIterator[Response]:
        """Runs every request of `requests` and yields one Response each,
        as each finishes (in input order with ordered=True); failures are
        Responses with `error`, like gather(..., return_exceptions=True).
        Response.index is the input's position.

        requests: URLs, fetchd.Request or fetch.v1.FetchRequest, from a
            list, any iterable or an async iterable of any size. A list or
            tuple of at most the server's max_batch_size goes as one
            FetchBatch; anything else streams through one FetchStream,
            read only as fast as fetchd takes it (its flow control), so a
            generator of a million URLs or an endless async queue is fine
        concurrency: most requests in flight at once (the semaphore)
        fail_fast: the first failure cancels the rest (each still yields a
            CANCELLED result) and no later input is read
        cookies, cookie_jar: the call's cookie jar (on by default, like
            one aiohttp session)
        **defaults: options for every request (a request's own override)

        Breaking out of the loop or cancelling the task cancels the
        requests still running in fetchd; `contextlib.aclosing()` makes
        that immediate. Raises FetchdError subclasses for RPC failures.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, not {concurrency}")
        base = _build.merged_defaults(self._defaults, defaults)
        options = self._batch_options(base, ordered, fail_fast, concurrency,
                                      cookies, cookie_jar)
        if isinstance(requests, (list, tuple)):
            if not requests:
                return
            if len(requests) <= self._max_batch:
                batch = fetch_pb2.BatchRequest()
                batch.CopyFrom(options)
                self._add_requests(batch.requests, requests)
                call = self._stubs().FetchBatch(batch,
                                                metadata=self._metadata,
                                                timeout=self._rpc_timeout)
                del batch
                yielded = 0
                try:
                    async for event in call:
                        for result in event.results:
                            yielded += 1
                            yield Response(result, requests[result.index],
                                           result.index)
                    return
                except grpc.aio.AioRpcError as e:
                    limit = _batch_limit(e)
                    if not (yielded == 0 and limit and limit < len(requests)):
                        raise from_rpc_error(e) from None
                    # A server with a lower limit: stream them instead.
                    self._max_batch = limit
                finally:
                    if not call.done():
                        call.cancel()
        async for response in self._fetch_stream(requests, options):
            yield response

    async def _fetch_stream(self, requests: Inputs,
                            options: Any) -> AsyncIterator[Response]:
        """fetch_many() over FetchStream: messages of up to
        STREAM_MESSAGE_REQUESTS requests (and the server's max_batch_size),
        each sent as soon as the input pauses; the inputs in flight are kept
        until their result. A server that refuses a message as too large
        says its limit; the requests it did not read then go again, in
        smaller messages, on a new stream."""
        feeder = _Feeder(requests, BATCH_LINGER_S)
        # (input position, input) of requests to send again, first.
        redo: List[Tuple[int, Input]] = []
        next_input = 0
        input_error: List[BaseException] = []

        async def write(call: Any,
                        in_flight: Dict[int, Tuple[int, Input]]) -> None:
            """Feeds `call` until the input ends; cancelled when the call
            ends first (what it took stays in in_flight or the feeder)."""
            nonlocal next_input
            index = 0
            first = True
            while True:
                size = min(STREAM_MESSAGE_REQUESTS, self._max_batch)
                if redo:
                    chunk = redo[:size]
                    del redo[:size]
                else:
                    items = await feeder.take(size)
                    if not items:
                        break
                    chunk = list(zip(
                        range(next_input, next_input + len(items)), items))
                    next_input += len(items)
                message = fetch_pb2.FetchStreamRequest()
                if first:
                    message.options.CopyFrom(options)
                    first = False
                for pair in chunk:
                    in_flight[index] = pair
                    index += 1
                try:
                    self._add_requests(message.requests,
                                       [item for _, item in chunk])
                except Exception as e:  # a bad input ends the input
                    input_error.append(e)
                    for _ in chunk:
                        index -= 1
                        del in_flight[index]
                    break
                await call.write(message)
            await call.done_writing()

        try:
            while True:
                in_flight: Dict[int, Tuple[int, Input]] = {}
                call = self._stubs().FetchStream(metadata=self._metadata,
                                                 timeout=self._rpc_timeout)
                writer = asyncio.ensure_future(write(call, in_flight))
                try:
                    while True:
                        event = await call.read()
                        if event is grpc.aio.EOF:
                            break
                        for result in event.results:
                            position, item = in_flight.pop(result.index)
                            yield Response(result, item, position)
                    code = await call.code()
                    if code != grpc.StatusCode.OK:
                        raise grpc.aio.AioRpcError(
                            code, await call.initial_metadata(),
                            await call.trailing_metadata(),
                            await call.details())
                except grpc.aio.AioRpcError as e:
                    limit = _batch_limit(e)
                    if limit and limit < min(STREAM_MESSAGE_REQUESTS,
                                             self._max_batch):
                        self._max_batch = limit
                        await _stop(writer)
                        redo[:0] = [in_flight[i] for i in sorted(in_flight)]
                        continue
                    # fail_fast: fetchd read no further after the first
                    # failure.
                    if not (e.code() == grpc.StatusCode.ABORTED
                            and options.fail_fast):
                        raise from_rpc_error(e) from None
                finally:
                    if not call.done():
                        call.cancel()
                    await _stop(writer)
                if input_error:
                    raise input_error[0]
                return
        finally:
            feeder.close()

    # -- streamed body -----------------------------------------------------

    def stream(self, url: str, method: str = "GET", *,
               chunk_size: Optional[int] = None, id: str = "",
               **options: "Unpack[RequestOptions]") -> StreamContext:
        """`async with client.stream(url) as resp:` the response head, then
        its body through `resp.iter_chunked(n)`, `resp.iter_any()`,
        `resp.read()` or `await resp.save(path)`, read from fetchd only as
        fast as the caller consumes it. `chunk_size` is fetchd's chunk size
        (FetchRequest.chunk_bytes, 1 KiB to the server's max)."""
        msg = _build.build(method, url, options, self._defaults, id)
        msg.stream_body = True
        if chunk_size is not None:
            msg.chunk_bytes = chunk_size
        return StreamContext(self._stubs(), msg, url, self._metadata,
                             self._rpc_timeout)

    # -- WebSocket ---------------------------------------------------------

    def ws_connect(self, url: str, *,
                   headers: Optional[_build.Pairs] = None,
                   protocols: Sequence[str] = (),
                   bearer_token: Optional[str] = None,
                   ssl: Union[None, bool, "TargetTLS"] = None,
                   handshake_timeout: Optional[float] = None,
                   idle_timeout: Optional[float] = None,
                   max_msg_size: int = 0) -> WSConnect:
        """`async with client.ws_connect("ws://...") as ws:` a WebSocket
        run by fetchd (or `ws = await client.ws_connect(...)`). Raises
        WSHandshakeError when it can't be opened, FetchdError subclasses
        for RPC failures."""
        return WSConnect(self._ws_stub(), self._metadata, url, headers,
                         protocols, bearer_token, ssl, handshake_timeout,
                         idle_timeout, max_msg_size)
