"""WebSockets through fetchd (fetch.v1.WebSocketService): one
bidirectional gRPC stream per WebSocket, with aiohttp's
ClientWebSocketResponse interface.

Threads: the event loop of the Client that made it. One task may receive
while another sends or closes.
"""

from __future__ import annotations

import enum
import json as _json
from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple, Union

import grpc

from ._build import Pairs, _pairs, _set_duration, _text
from ._errors import WSHandshakeError, from_rpc_error
from ._headers import Headers
from ._options import TargetTLS, read_pem
from ._proto import websocket_pb2
from ._response import ErrorInfo, ErrorKind


class WSMsgType(enum.IntEnum):
    """aiohttp.WSMsgType's values for the messages receive() returns."""

    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    CLOSED = 0x101
    ERROR = 0x102


class WSMessage(NamedTuple):
    """TEXT: data is str; BINARY: bytes; CLOSE: data is the close code and
    extra the reason; CLOSED: the WebSocket was already closed."""

    type: WSMsgType
    data: Any
    extra: Any

    def json(self, loads: Callable[[Any], Any] = _json.loads) -> Any:
        return loads(self.data)


_CLOSED = WSMessage(WSMsgType.CLOSED, None, None)


class WebSocket:
    """An open WebSocket (aiohttp's ClientWebSocketResponse).

    protocol      the subprotocol the target chose (None: none)
    status, headers, remote_address   of the handshake
    closed, close_code, close_reason  once closed; close_initiator says
                  who closed ("target", "client", "fetchd") and
                  close_error why fetchd did (idle timeout, too large ...)
    """

    def __init__(self, call: Any, handshake: Any) -> None:
        self._call = call
        self.status: int = handshake.status
        self.headers = Headers._lazy(handshake.headers)
        self.protocol: Optional[str] = handshake.subprotocol or None
        self.remote_address: str = handshake.remote_address
        self.closed = False
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self.close_initiator = ""
        self.close_error: Optional[ErrorInfo] = None
        self._close_sent = False
        self._receiving = False

    async def _write(self, msg: Any) -> None:
        if self._close_sent or self.closed:
            raise ConnectionResetError("the WebSocket is closing or closed")
        try:
            await self._call.write(msg)
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from None

    async def send_str(self, data: str) -> None:
        await self._write(websocket_pb2.WsClientMessage(
            frame=websocket_pb2.WsFrame(text=data)))

    async def send_bytes(self, data: bytes) -> None:
        await self._write(websocket_pb2.WsClientMessage(
            frame=websocket_pb2.WsFrame(binary=bytes(data))))

    async def send_json(self, data: Any,
                        dumps: Callable[[Any], str] = _json.dumps) -> None:
        await self.send_str(dumps(data))

    async def receive(self) -> WSMessage:
        """The next message: TEXT or BINARY, then one CLOSE, then
        CLOSED."""
        if self.closed:
            return _CLOSED
        self._receiving = True
        try:
            try:
                msg = await self._call.read()
            except grpc.aio.AioRpcError as e:
                self.closed = True
                raise from_rpc_error(e) from None
        finally:
            self._receiving = False
        if msg is grpc.aio.EOF:
            self.closed = True
            return _CLOSED
        kind = msg.WhichOneof("kind")
        if kind == "frame":
            if msg.frame.WhichOneof("payload") == "text":
                return WSMessage(WSMsgType.TEXT, msg.frame.text, None)
            return WSMessage(WSMsgType.BINARY, msg.frame.binary, None)
        if kind == "close":
            c = msg.close
            self.closed = True
            self.close_code = c.code
            self.close_reason = c.reason
            self.close_initiator = c.initiator
            if c.error:
                self.close_error = ErrorInfo(ErrorKind._from_proto(c.error),
                                             c.error_message)
            return WSMessage(WSMsgType.CLOSE, c.code, c.reason)
        return WSMessage(WSMsgType.ERROR, f"unexpected message {kind}", None)

    async def receive_str(self) -> str:
        msg = await self.receive()
        if msg.type != WSMsgType.TEXT:
            raise TypeError(f"received {msg.type.name}, not TEXT")
        return msg.data

    async def receive_bytes(self) -> bytes:
        msg = await self.receive()
        if msg.type != WSMsgType.BINARY:
            raise TypeError(f"received {msg.type.name}, not BINARY")
        return msg.data

    async def receive_json(self,
                           loads: Callable[[Any], Any] = _json.loads) -> Any:
        return loads(await self.receive_str())

    async def close(self, *, code: int = 1000,
                    message: Union[bytes, str] = b"") -> bool:
        """Starts the closing handshake and, unless another task is
        receiving, waits for the target's close (messages still arriving
        are dropped). False when it was already closed."""
        if self.closed or self._close_sent:
            return False
        reason = message.decode() if isinstance(message, bytes) else message
        await self._write(websocket_pb2.WsClientMessage(
            close=websocket_pb2.WsClose(code=code, reason=reason)))
        self._close_sent = True
        try:
            await self._call.done_writing()
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from None
        if not self._receiving:
            while not self.closed:
                await self.receive()
        return True

    def _abort(self) -> None:
        """Cancels the call: fetchd closes the WebSocket with 1001."""
        if not self._call.done():
            self._call.cancel()
        self.closed = True

    def __aiter__(self) -> "WebSocket":
        return self

    async def __anext__(self) -> WSMessage:
        msg = await self.receive()
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED):
            raise StopAsyncIteration
        return msg


def _open_message(url: str, headers: Optional[Pairs],
                  protocols: Sequence[str], bearer_token: Optional[str],
                  ssl: Union[None, bool, TargetTLS],
                  handshake_timeout: Optional[float],
                  idle_timeout: Optional[float], max_msg_size: int) -> Any:
    o = websocket_pb2.WsOpen(url=url, subprotocols=list(protocols),
                             max_message_bytes=max_msg_size)
    if headers is not None:
        for name, value in _pairs(headers):
            o.headers.add(name=name, value=_text(value))
    if bearer_token:
        o.bearer_token = bearer_token
    if ssl is False:
        o.tls.insecure_skip_verify = True
    elif isinstance(ssl, TargetTLS):
        for attr, name in (("ca", "ca_cert_pem"), ("cert", "client_cert_pem"),
                           ("key", "client_key_pem")):
            pem = read_pem(getattr(ssl, attr))
            if pem is not None:
                setattr(o.tls, name, pem.decode())
        o.tls.insecure_skip_verify = not ssl.verify
    elif ssl not in (None, True):
        raise TypeError("ssl= takes a bool or a fetchd.TargetTLS")
    if handshake_timeout is not None:
        _set_duration(o.handshake_timeout, handshake_timeout)
    if idle_timeout is not None:
        _set_duration(o.idle_timeout, idle_timeout)
    return websocket_pb2.WsClientMessage(open=o)


class WSConnect:
    """What Client.ws_connect() returns: `async with` it, or await it and
    close() the WebSocket yourself."""

    def __init__(self, stub: Any,
                 metadata: Optional[Tuple[Tuple[str, str], ...]],
                 url: str, *open_args: Any) -> None:
        self._stub = stub
        self._metadata = metadata
        self._open = _open_message(url, *open_args)
        self._ws: Optional[WebSocket] = None

    async def _connect(self) -> WebSocket:
        call = self._stub.WebSocket(metadata=self._metadata)
        try:
            await call.write(self._open)
            msg = await call.read()
        except grpc.aio.AioRpcError as e:
            call.cancel()
            raise from_rpc_error(e) from None
        except BaseException:
            call.cancel()
            raise
        if msg is grpc.aio.EOF or msg.WhichOneof("kind") != "handshake":
            call.cancel()
            raise WSHandshakeError(ErrorKind.PROTOCOL,
                                   "fetchd sent no handshake", 0)
        h = msg.handshake
        if not h.ok:
            call.cancel()
            raise WSHandshakeError(ErrorKind._from_proto(h.error),
                                   h.error_message, h.status)
        return WebSocket(call, h)

    def __await__(self) -> Any:
        return self._connect().__await__()

    async def __aenter__(self) -> WebSocket:
        self._ws = await self._connect()
        return self._ws

    async def __aexit__(self, exc_type: Any, *exc: Any) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            if ws is not None:
                ws._abort()
            return
        if exc_type is None:
            try:
                await ws.close()
            finally:
                ws._abort()
        else:
            ws._abort()
