"""A dict that also keeps its items grouped by a property of their values.

The core asks some questions of large tables very often: the flows TE tracks that enter
the fabric at one leaf (at every sync of that leaf), the TE pins a switch holds (at
every placement). A pass over the whole table each time cost more than the rest of a
placement; the groups answer them in the size of the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()


class IndexedDict(dict, Generic[K, V]):
    """``dict`` whose items are also grouped by ``group_of(value)`` (``groups``: group ->
    {key: value}, no empty group kept), as of when each was put in. Every way of
    changing it keeps the groups right."""

    def __init__(self, group_of: Callable[[V], Hashable],
                 items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        super().__init__()
        self._group_of = group_of
        self.groups: dict[Hashable, dict[K, V]] = {}
        self._group_at: dict[K, Hashable] = {}  # (each key's group, as it was put in)
        for key, value in dict(items).items():
            self[key] = value

    def group(self, name: Hashable) -> Mapping[K, V]:
        """The items of group ``name`` (empty if none): a view, not to be changed."""
        return self.groups.get(name, {})

    def __setitem__(self, key: K, value: V) -> None:
        old = dict.get(self, key, _MISSING)
        if old is not _MISSING:
            self._ungroup(key, old)
        dict.__setitem__(self, key, value)
        name = self._group_of(value)
        self._group_at[key] = name
        self.groups.setdefault(name, {})[key] = value

    def __delitem__(self, key: K) -> None:
        self._ungroup(key, self[key])
        dict.__delitem__(self, key)

    def pop(self, key: K, default=_MISSING):  # type: ignore[override]
        if key in self:
            value = self[key]
            del self[key]
            return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def setdefault(self, key: K, default: V) -> V:  # type: ignore[override]
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args, **kwargs) -> None:  # type: ignore[override]
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def popitem(self) -> tuple[K, V]:
        key, value = dict.popitem(self)
        self._ungroup(key, value)
        return key, value

    def clear(self) -> None:
        dict.clear(self)
        self.groups.clear()
        self._group_at.clear()

    def __ior__(self, other):  # type: ignore[override]
        self.update(other)
        return self

    def copy(self) -> IndexedDict[K, V]:
        return IndexedDict(self._group_of, self)

    def __reduce__(self):  # (copy and pickle keep the groups)
        return (IndexedDict, (self._group_of, dict(self)))

    def _ungroup(self, key: K, value: V) -> None:
        """(By the group the key was put in: a value changed meanwhile leaves no stale
        member behind.)"""
        name = self._group_at.pop(key)
        members = self.groups[name]
        del members[key]
        if not members:
            del self.groups[name]
