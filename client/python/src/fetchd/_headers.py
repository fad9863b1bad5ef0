"""Headers: a read-only, case-insensitive multi-dict of HTTP headers.

Built over fetchd's repeated Header messages without reading them: the
pairs are decoded the first time a header is looked up, so a caller that
never looks pays nothing. Order and duplicates are kept (Set-Cookie).
"""

from __future__ import annotations

from typing import (Any, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple, TypeVar, Union, overload)

_T = TypeVar("_T")
_MISSING: Any = object()

HeadersLike = Union[Mapping[str, str], Iterable[Tuple[str, str]], "Headers"]


class Headers(Mapping[str, str]):
    """Like aiohttp's CIMultiDictProxy: `h["content-type"]` is the first
    value of that name in any case, `h.getall("set-cookie")` every value,
    `h.items()` every (name, value) pair in order, `len(h)` their number."""

    __slots__ = ("_source", "_pairs", "_index")

    def __init__(self, pairs: Optional[HeadersLike] = None) -> None:
        self._source: Any = None
        self._pairs: Optional[List[Tuple[str, str]]] = None
        self._index: Optional[Dict[str, List[str]]] = None
        if pairs is None:
            self._pairs = []
        elif isinstance(pairs, Headers):
            self._pairs = list(pairs.items())
        elif isinstance(pairs, Mapping):
            self._pairs = [(str(k), str(v)) for k, v in pairs.items()]
        else:
            self._pairs = [(str(k), str(v)) for k, v in pairs]

    @classmethod
    def _lazy(cls, source: Sequence[Any]) -> "Headers":
        """Over a repeated fetch.v1.Header field, decoded on first use."""
        h = cls.__new__(cls)
        h._source = source
        h._pairs = None
        h._index = None
        return h

    def _load(self) -> List[Tuple[str, str]]:
        if self._pairs is None:
            self._pairs = [(h.name, h.value) for h in self._source]
            self._source = None
        return self._pairs

    def _idx(self) -> Dict[str, List[str]]:
        if self._index is None:
            index: Dict[str, List[str]] = {}
            for name, value in self._load():
                index.setdefault(name.lower(), []).append(value)
            self._index = index
        return self._index

    def __getitem__(self, name: str) -> str:
        return self._idx()[name.lower()][0]

    @overload
    def get(self, name: str) -> Optional[str]: ...
    @overload
    def get(self, name: str, default: Union[str, _T]) -> Union[str, _T]: ...

    def get(self, name: str, default: Any = None) -> Any:
        values = self._idx().get(name.lower())
        return values[0] if values else default

    def getone(self, name: str, default: Any = _MISSING) -> str:
        """The first value; KeyError (or `default`) when absent."""
        values = self._idx().get(name.lower())
        if values:
            return values[0]
        if default is _MISSING:
            raise KeyError(name)
        return default

    def getall(self, name: str, default: Any = _MISSING) -> List[str]:
        """Every value of `name`, in order; KeyError (or `default`) when
        absent (multidict's contract)."""
        values = self._idx().get(name.lower())
        if values:
            return list(values)
        if default is _MISSING:
            raise KeyError(name)
        return default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._idx()

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._load())

    def __len__(self) -> int:
        return len(self._load())

    def keys(self) -> List[str]:  # type: ignore[override]
        return [name for name, _ in self._load()]

    def values(self) -> List[str]:  # type: ignore[override]
        return [value for _, value in self._load()]

    def items(self) -> List[Tuple[str, str]]:  # type: ignore[override]
        return list(self._load())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self.items() == other.items()
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers({self._load()!r})"
