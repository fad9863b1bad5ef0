"""Turning the keyword options of Client.request() into a fetch.v1
FetchRequest. One function, `fill()`, used for single requests, for the
inputs of fetch_many() and for batch defaults alike; it raises TypeError or
ValueError for options that can't be expressed (a caller bug, before any
RPC)."""

from __future__ import annotations

import json as _json
import os
from typing import (Any, Iterable, Mapping, Optional, Tuple, TypedDict,
                    Union)

from ._options import BasicAuth, Retry, TargetTLS, Timeout, read_pem
from ._proto import fetch_pb2

Pairs = Union[Mapping[str, Any], Iterable[Tuple[str, Any]]]
FileValue = Union[bytes, str, Any, Tuple[Any, ...]]


class RequestOptions(TypedDict, total=False):
    """The keyword options of Client.request(), get(), ..., fetch_many()
    defaults and Request(). Each maps to one FetchRequest field."""

    params: Pairs
    headers: Pairs
    data: Union[Pairs, bytes, str, None]
    json: Any
    form: Pairs
    files: Mapping[str, FileValue]
    auth: Union[BasicAuth, Tuple[str, str]]
    bearer_token: str
    timeout: Union[float, Timeout]
    retries: Union[int, Retry]
    allow_redirects: bool
    max_redirects: int
    max_body_bytes: int
    raise_for_status: bool
    decompress: bool
    ssl: Union[bool, TargetTLS]
    proxy: str
    proxy_auth: Union[BasicAuth, Tuple[str, str]]
    http_version: str
    resolve: Iterable[Tuple[str, int, str]]


OPTION_NAMES = frozenset(RequestOptions.__annotations__)

_HTTP_VERSIONS = {
    "1.1": fetch_pb2.HTTP_VERSION_1_1,
    "2": fetch_pb2.HTTP_VERSION_2,
    "auto": fetch_pb2.HTTP_VERSION_AUTO,
}


def _pairs(value: Pairs) -> Iterable[Tuple[str, Any]]:
    items = value.items() if isinstance(value, Mapping) else value
    for name, v in items:
        # params={"tag": ["a", "b"]} repeats the name, as in httpx.
        if isinstance(v, (list, tuple)):
            for one in v:
                yield name, one
        else:
            yield name, v


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _set_duration(d: Any, seconds: float) -> None:
    if seconds < 0:
        raise ValueError(f"a duration can't be negative: {seconds}")
    d.FromNanoseconds(int(round(seconds * 1e9)))


def _timeouts(msg: Any, timeout: Union[float, Timeout]) -> None:
    if isinstance(timeout, Timeout):
        for attr, name in (("total", "total"), ("connect", "connect"),
                           ("read", "read_idle"), ("queue", "queue")):
            value = getattr(timeout, attr)
            if value is not None:
                _set_duration(getattr(msg, name), value)
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        _set_duration(msg.total, float(timeout))
    else:
        raise TypeError("timeout= takes seconds or a fetchd.Timeout, "
                        f"not {type(timeout).__name__}")


def _retry(msg: Any, retries: Union[int, Retry]) -> None:
    if isinstance(retries, Retry):
        if retries.max_attempts is not None:
            msg.max_attempts = retries.max_attempts
        if retries.backoff is not None:
            _set_duration(msg.base_backoff, retries.backoff)
        if retries.max_backoff is not None:
            _set_duration(msg.max_backoff, retries.max_backoff)
        for kind in retries.on:
            name = str(getattr(kind, "value", kind)).upper()
            msg.retry_on.append(fetch_pb2.ErrorKind.Value(
                name if name.startswith("ERROR_KIND_") else
                "ERROR_KIND_" + name))
        msg.retry_on_status.extend(retries.on_status)
        if retries.honor_retry_after is not None:
            msg.honor_retry_after = retries.honor_retry_after
        if retries.retry_non_idempotent is not None:
            msg.retry_non_idempotent = retries.retry_non_idempotent
    elif isinstance(retries, int) and not isinstance(retries, bool):
        if retries < 0:
            raise ValueError(f"retries= can't be negative: {retries}")
        msg.max_attempts = retries + 1
    else:
        raise TypeError("retries= takes a count or a fetchd.Retry, "
                        f"not {type(retries).__name__}")


def _file_part(part: Any, name: str, value: FileValue) -> None:
    """httpx's files= forms: content (bytes or str), a file object, or a
    tuple (filename, content[, content_type])."""
    part.name = name
    filename: Optional[str] = None
    if isinstance(value, tuple):
        if not 2 <= len(value) <= 3:
            raise ValueError(f"files[{name!r}]: a tuple is (filename, "
                             "content[, content_type])")
        filename = value[0]
        if len(value) == 3 and value[2]:
            part.content_type = value[2]
        value = value[1]
    if hasattr(value, "read"):
        if filename is None:
            filename = os.path.basename(str(getattr(value, "name", name)))
        value = value.read()
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"files[{name!r}]: bytes, str or a file object, "
                        f"not {type(value).__name__}")
    part.data = bytes(value)
    part.filename = filename if filename is not None else name


def _files(msg: Any, files: Mapping[str, FileValue],
           fields: Optional[Pairs]) -> None:
    parts = msg.multipart.parts
    if fields is not None:
        for name, value in _pairs(fields):
            p = parts.add()
            p.name = name
            p.data = value if isinstance(value, bytes) else \
                _text(value).encode()
    for name, value in files.items():
        _file_part(parts.add(), name, value)


def _auth(msg: Any, auth: Union[BasicAuth, Tuple[str, str]]) -> None:
    login, password = auth
    msg.username = login
    msg.password = password


def fill(msg: Any, options: Mapping[str, Any]) -> None:
    """Sets the fields of FetchRequest `msg` from `options`
    (RequestOptions). Unknown names are a TypeError."""
    unknown = set(options) - OPTION_NAMES
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    get = options.get
    params = get("params")
    if params is not None:
        for name, value in _pairs(params):
            msg.query.add(name=name, value=_text(value))
    headers = get("headers")
    if headers is not None:
        for name, value in _pairs(headers):
            msg.headers.add(name=name, value=_text(value))

    data, json_value, form, files = (get("data"), options.get("json"),
                                     get("form"), get("files"))
    if "json" in options and (data is not None or form is not None or
                              files is not None):
        raise ValueError("json= can't be combined with data=, form= or "
                         "files=")
    if files is not None:
        if form is not None and data is not None:
            raise ValueError("files= takes its fields from data= or form=, "
                             "not both")
        _files(msg, files, form if form is not None else data)
    elif form is not None:
        if data is not None:
            raise ValueError("form= and data= are both bodies; pick one")
        for name, value in _pairs(form):
            msg.form.fields.add(name=name, value=_text(value))
    elif data is not None:
        if isinstance(data, (bytes, bytearray, memoryview)):
            msg.body = bytes(data)
        elif isinstance(data, str):
            msg.body = data.encode()
        else:  # a dict or pairs: a form, as in aiohttp
            for name, value in _pairs(data):
                msg.form.fields.add(name=name, value=_text(value))
    elif "json" in options:
        msg.json = _json.dumps(json_value, separators=(",", ":"),
                               ensure_ascii=False)

    auth = get("auth")
    if auth is not None:
        _auth(msg.basic_auth, auth)
    token = get("bearer_token")
    if token is not None:
        if auth is not None:
            raise ValueError("auth= and bearer_token= are both credentials")
        msg.bearer_token = token
    timeout = get("timeout")
    if timeout is not None:
        _timeouts(msg.timeouts, timeout)
    retries = get("retries")
    if retries is not None:
        _retry(msg.retry, retries)
    for name, field_name in (("allow_redirects", "follow_redirects"),
                             ("max_redirects", "max_redirects"),
                             ("max_body_bytes", "max_body_bytes"),
                             ("raise_for_status", "fail_on_http_error"),
                             ("decompress", "decompress")):
        value = get(name)
        if value is not None:
            setattr(msg, field_name, value)
    ssl = get("ssl")
    if ssl is not None:
        if ssl is False:
            msg.tls.verify = False
        elif isinstance(ssl, TargetTLS):
            for attr, name in (("ca", "ca_pem"), ("cert", "client_cert_pem"),
                               ("key", "client_key_pem")):
                pem = read_pem(getattr(ssl, attr))
                if pem is not None:
                    setattr(msg.tls, name, pem)
            if not ssl.verify:
                msg.tls.verify = False
        elif ssl is not True:
            raise TypeError("ssl= takes a bool or a fetchd.TargetTLS, not "
                            f"{type(ssl).__name__}")
    proxy = get("proxy")
    if proxy is not None:
        msg.proxy.url = proxy
        proxy_auth = get("proxy_auth")
        if proxy_auth is not None:
            msg.proxy.username, msg.proxy.password = proxy_auth
    elif get("proxy_auth") is not None:
        raise ValueError("proxy_auth= needs proxy=")
    version = get("http_version")
    if version is not None:
        try:
            msg.http_version = _HTTP_VERSIONS[str(version).lower()]
        except KeyError:
            raise ValueError(f"http_version= is '1.1', '2' or 'auto', not "
                             f"{version!r}") from None
    resolve = get("resolve")
    if resolve is not None:
        for host, port, address in resolve:
            msg.resolve.add(host=host, port=port, address=address)


def build(method: str, url: str, options: Mapping[str, Any],
          defaults: Optional[Any] = None, id: str = "") -> Any:
    """A FetchRequest for one call; `defaults` (a FetchRequest of the
    client's defaults) goes under the call's own options."""
    msg = fetch_pb2.FetchRequest()
    if defaults is not None:
        msg.CopyFrom(defaults)
    msg.url = url
    if method:
        msg.method = method.upper()
    if id:
        msg.id = id
    if options:
        if defaults is not None:
            own = fetch_pb2.FetchRequest()
            fill(own, options)
            _merge_over(msg, own)
        else:
            fill(msg, options)
    return msg


def _merge_over(msg: Any, own: Any) -> None:
    """Lays `own` over `msg` the way fetchd lays a request over batch
    defaults: repeated fields appended, a body kind or credentials set in
    `own` replace the default's."""
    if own.WhichOneof("body_kind") is not None or own.body:
        msg.ClearField("body")
        msg.ClearField(msg.WhichOneof("body_kind") or "body")
    if own.WhichOneof("credentials") is not None:
        msg.ClearField(msg.WhichOneof("credentials") or "basic_auth")
    msg.MergeFrom(own)


def defaults_message(options: Mapping[str, Any]) -> Optional[Any]:
    """The FetchRequest of default options, or None when there are none."""
    if not options:
        return None
    msg = fetch_pb2.FetchRequest()
    fill(msg, options)
    return msg


def merged_defaults(base: Optional[Any],
                    options: Mapping[str, Any]) -> Optional[Any]:
    """`options` over `base` (both defaults), as a new message or None."""
    if not options:
        return base
    own = fetch_pb2.FetchRequest()
    fill(own, options)
    if base is None:
        return own
    msg = fetch_pb2.FetchRequest()
    msg.CopyFrom(base)
    _merge_over(msg, own)
    return msg

