"""Hypothesis strategies shared by the fuzz targets: arbitrary CBOR values, and registered shapes (codec tags)
whose fields are mostly of the declared types (so examples get past the decoder into the checks and the
handlers) and sometimes of any type at all (so the checks are tried too)."""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

import attrs
import cbor2
from hypothesis import strategies as st

from trikv.api import codec

# Integers that break naive code: around 0, int64/uint64 edges, and far beyond (CBOR bignums).
EDGE_INTS = st.sampled_from(
    [
        0,
        1,
        -1,
        2**31 - 1,
        2**31,
        2**32,
        2**63 - 1,
        2**63,
        -(2**63),
        -(2**63) - 1,
        2**64 - 1,
        2**64,
        10**30,
        -(10**30),
    ]
)
INTS = st.one_of(st.integers(-5, 1000), EDGE_INTS, st.integers())

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=40),
)


def any_value(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any CBOR-encodable value: scalars, arrays and maps nested a few levels, unknown tags."""
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5),
            st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-3, 3)), inner, max_size=4),
            st.builds(cbor2.CBORTag, st.integers(0, 2**16), inner),
        ),
        max_leaves=max_leaves,
    )


def _tag_of(cls: type) -> int:
    return codec._by_type[cls][0]


def registered() -> list[type]:
    """Every registered shape (its codec tag is its wire identity)."""
    return list(codec._by_type)


def _for_type(tp: Any, depth: int) -> st.SearchStrategy[Any]:
    """A value of the annotated type: CBOR-ready (a nested shape becomes its tag)."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return st.one_of(*(_for_type(arg, depth) for arg in typing.get_args(tp)))
    if origin is tuple:
        args = typing.get_args(tp)
        item = _for_type(args[0], depth + 1) if args and args[-1] is Ellipsis else any_value(4)
        return st.lists(item, max_size=3)
    if tp is type(None):
        return st.none()
    if tp is bool:
        return st.booleans()
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        return st.one_of(st.sampled_from([int(m) for m in tp]), st.integers(-2, 40))
    if tp is int:
        return INTS
    if tp is bytes:
        return st.one_of(st.binary(max_size=24), st.sampled_from([b"", b"\x00", b"fuzz", b"fuzz\xff"]))
    if tp is str:
        return st.text(max_size=24)
    if isinstance(tp, type) and attrs.has(tp) and tp in codec._by_type and depth < 3:
        return shape(tp, depth + 1)
    return any_value(4)


def typed(cls: type, depth: int = 0) -> st.SearchStrategy[cbor2.CBORTag]:
    """The wire form of `cls` with every field of its declared type (nested shapes too)."""
    attrs.resolve_types(cls)
    fields = attrs.fields(cls)
    values = st.tuples(*(_for_type(f.type, depth) for f in fields)).map(list)
    return values.map(lambda v: cbor2.CBORTag(_tag_of(cls), v))


def shape(cls: type, depth: int = 0) -> st.SearchStrategy[cbor2.CBORTag]:
    """The wire form of `cls` (its tag around its field array). Half the examples have every field of its
    declared type (they reach the handlers); the others have some field of any type, or a field too many or
    too few (they try the checks)."""
    attrs.resolve_types(cls)
    fields = attrs.fields(cls)
    typed = st.tuples(*(_for_type(f.type, depth) for f in fields)).map(list)
    loose = st.tuples(*(st.one_of(_for_type(f.type, depth), any_value(3)) for f in fields)).map(list)
    odd = typed.flatmap(lambda v: st.sampled_from([v[:-1], [*v, None]]) if v else st.just([None]))
    return st.one_of(typed, loose, odd).map(lambda v: cbor2.CBORTag(_tag_of(cls), v))


def any_shape(classes: list[type] | None = None) -> st.SearchStrategy[cbor2.CBORTag]:
    return st.sampled_from(classes or registered()).flatmap(shape)


def dumps(value: Any) -> bytes:
    """CBOR bytes of a fuzz value (tags are written as given: no codec involved)."""
    return cbor2.dumps(value)
