"""IndexedDict (controller/core/indexed_dict.py): every way of changing it keeps its
groups those of its values."""

from __future__ import annotations

import copy

from controller.core.indexed_dict import IndexedDict


def groups_of(d: dict) -> dict:
    out: dict = {}
    for k, v in d.items():
        out.setdefault(v[0], {})[k] = v
    return out


def test_groups_follow_every_change():
    d: IndexedDict = IndexedDict(lambda v: v[0], {"a": ("x", 1), "b": ("y", 2)})
    d["c"] = ("x", 3)
    d["a"] = ("y", 4)  # a value replaced by one of another group
    assert d.groups == groups_of(d)
    del d["b"]
    assert d.pop("c") == ("x", 3) and d.pop("nothing", None) is None
    assert d.setdefault("a", ("z", 0)) == ("y", 4) and d.setdefault("e", ("z", 5)) == ("z", 5)
    d.update({"f": ("x", 6)}, g=("x", 7))
    d |= {"h": ("w", 8)}
    assert d.groups == groups_of(d)
    assert dict(d.group("x")) == {"f": ("x", 6), "g": ("x", 7)} and d.group("none") == {}
    key, value = d.popitem()
    assert key not in d.group(value[0])
    assert d.groups == groups_of(d) and "y" in d.groups
    d.pop("a")
    assert "y" not in d.groups  # (no empty group kept)
    twin = copy.deepcopy(d)
    twin["i"] = ("x", 9)
    assert twin.groups == groups_of(twin) and "i" not in d and d.groups == groups_of(d)
    d.clear()
    assert d.groups == {} and len(d) == 0
