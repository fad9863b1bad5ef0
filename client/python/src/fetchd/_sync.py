"""SyncClient: fetchd.Client for code without an event loop.

It runs a Client on a private event loop in a daemon thread and waits for
each call; the results are the same Response objects. Any thread may call
it (calls are serialized only by the loop). close() or leaving `with`
stops the loop and its thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import (TYPE_CHECKING, Any, Awaitable, Iterable, Iterator,
                    Optional, TypeVar, Union)

from ._client import Client, Input
from ._response import Response
from ._stream import StreamContext, StreamResponse

if TYPE_CHECKING:
    from typing import Unpack

    from ._build import RequestOptions

_T = TypeVar("_T")


class SyncClient:
    """`with fetchd.SyncClient("127.0.0.1:50051") as c: c.get(url)`.
    Takes Client's arguments."""

    def __init__(self, target: str = "127.0.0.1:50051",
                 **client_args: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="fetchd-sync-client",
                                        daemon=True)
        self._thread.start()

        async def make() -> Client:
            client = Client(target, **client_args)
            await client.__aenter__()
            return client

        try:
            self._client = self._run(make())
        except BaseException:
            self._stop()
            raise

    def _run(self, coro: Awaitable[_T]) -> _T:
        return asyncio.run_coroutine_threadsafe(
            coro, self._loop).result()  # type: ignore[arg-type]

    def _stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self._client.close())
        finally:
            self._stop()

    def __enter__(self) -> "SyncClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def request(self, method: str, url: str, *, id: str = "",
                **options: "Unpack[RequestOptions]") -> Response:
        return self._run(self._client.request(method, url, id=id, **options))

    def get(self, url: str, **options: "Unpack[RequestOptions]") -> Response:
        return self.request("GET", url, **options)

    def head(self, url: str, **options: "Unpack[RequestOptions]") -> Response:
        return self.request("HEAD", url, **options)

    def delete(self, url: str,
               **options: "Unpack[RequestOptions]") -> Response:
        return self.request("DELETE", url, **options)

    def post(self, url: str, **options: "Unpack[RequestOptions]") -> Response:
        return self.request("POST", url, **options)

    def put(self, url: str, **options: "Unpack[RequestOptions]") -> Response:
        return self.request("PUT", url, **options)

    def patch(self, url: str,
              **options: "Unpack[RequestOptions]") -> Response:
        return self.request("PATCH", url, **options)

    def fetch_many(self, requests: Iterable[Input],
                   **kwargs: Any) -> Iterator[Response]:
        """Client.fetch_many() as a generator; leaving the loop early (or
        close()) cancels what is still running."""
        results = self._client.fetch_many(requests, **kwargs)
        try:
            while True:
                try:
                    yield self._run(results.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            if not self._loop.is_closed():
                self._run(results.aclose())

    def stream(self, url: str, method: str = "GET", *,
               chunk_size: Optional[int] = None,
               **options: Any) -> "SyncStream":
        """`with client.stream(url) as resp:` as Client.stream()."""
        ctx = self._run(_in_loop(lambda: self._client.stream(
            url, method, chunk_size=chunk_size, **options)))
        return SyncStream(self, ctx)


async def _in_loop(make: Any) -> Any:
    return make()


class SyncStream:
    """A streamed response for SyncClient: the StreamResponse's head
    attributes, plus blocking iter_chunked(), read() and save()."""

    def __init__(self, client: SyncClient, ctx: StreamContext) -> None:
        self._client = client
        self._ctx = ctx
        self._resp: Optional[StreamResponse] = None

    def __enter__(self) -> "SyncStream":
        self._resp = self._client._run(self._ctx.__aenter__())
        return self

    def __exit__(self, *exc: Any) -> None:
        self._client._run(self._ctx.__aexit__(*exc))

    def __getattr__(self, name: str) -> Any:
        if self._resp is None:
            raise AttributeError(name)
        return getattr(self._resp, name)

    def iter_chunked(self, n: int) -> Iterator[bytes]:
        assert self._resp is not None, "use `with client.stream(...)`"
        chunks = self._resp.iter_chunked(n)
        while True:
            try:
                yield self._client._run(chunks.__anext__())
            except StopAsyncIteration:
                return

    def read(self) -> bytes:
        assert self._resp is not None, "use `with client.stream(...)`"
        return self._client._run(self._resp.read())

    def save(self, path: Union[str, "os.PathLike[str]"]) -> int:
        assert self._resp is not None, "use `with client.stream(...)`"
        return self._client._run(self._resp.save(path))
