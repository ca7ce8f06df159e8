"""The one CBOR codec: every byte that leaves a process (WAL records, page-file values, peer and client
frames) goes through `encode` / `decode`.

attrs classes registered here travel as CBOR tag `tag` around an array of their field values in
declaration order, which is compact and fast to build. IntEnum fields are restored by the registered
field converters. Unknown tags and malformed input raise `CodecError`, never anything else.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cbor2

T = TypeVar("T")

# Tags from the CBOR "first come first served" range, well away from registered ones.
TAG_BASE = 27000


class CodecError(ValueError):
    """Bytes that are not a valid encoding of a registered shape."""


_by_type: dict[type, tuple[int, tuple[str, ...]]] = {}
_by_tag: dict[int, Callable[[Any], Any]] = {}
_fields_of: dict[type, tuple[int, Callable[[Any], tuple[Any, ...]]]] = {}  # what the encoder writes, by type


def _field_tuple(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """An instance's field values in declaration order, as one C call (operator.attrgetter)."""
    if len(names) > 1:
        return operator.attrgetter(*names)
    if names:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


def register(tag_offset: int) -> Callable[[type[T]], type[T]]:
    """Class decorator: give an attrs class a stable wire tag (TAG_BASE + offset). Never reuse a tag."""

    def deco(cls: type[T]) -> type[T]:
        _register(cls, TAG_BASE + tag_offset)
        return cls

    return deco


def _register(cls: type, tag: int) -> None:
    if tag in _by_tag:
        raise ValueError(f"codec tag {tag} registered twice")
    names = tuple(f.name for f in attrs.fields(cls))
    _by_type[cls] = (tag, names)
    _fields_of[cls] = (tag, _field_tuple(names))

    def first_build(value: Any) -> Any:
        # Types are resolved on first decode, when every forward reference exists.
        build = _make_builder(cls)
        _by_tag[tag] = build
        return build(value)

    _by_tag[tag] = first_build


def _make_builder(cls: type) -> Callable[[Any], Any]:
    attrs.resolve_types(cls)
    fields = attrs.fields(cls)
    n = len(fields)
    converters: list[tuple[int, Callable[[Any], Any]]] = [
        (i, f.type)
        for i, f in enumerate(fields)
        if isinstance(f.type, type) and issubclass(f.type, enum.IntEnum)
    ]
    name = cls.__name__

    def build(value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or len(value) != n:
            raise CodecError(f"{name}: expected {n} fields")
        if converters:
            value = list(value)
            for i, conv in converters:
                value[i] = conv(value[i])
        try:
            return cls(*value)
        except (TypeError, ValueError) as exc:
            raise CodecError(f"{name}: {exc}") from exc

    return build


_encoders: dict[type, Callable[[Any], bytes | None]] = {}


def register_encoder(cls: type, encode: Callable[[Any], bytes | None]) -> None:
    """A faster encoder for a registered shape sent often (a watch response to many watchers): it returns
    the shape's exact encoding (built around cached parts) or None for the generic one. The bytes on the
    wire are the same either way, so decoders never know."""
    _encoders[cls] = encode


def _default(encoder: Any, obj: Any) -> None:
    fast = _encoders.get(type(obj))
    if fast is not None:
        data = fast(obj)
        if data is not None:
            encoder.write(data)
            return
    entry = _fields_of.get(type(obj))
    if entry is None:
        raise CodecError(f"cannot encode {type(obj).__name__}")
    tag, fields = entry
    encoder.encode(cbor2.CBORTag(tag, fields(obj)))  # a tuple: the same CBOR array a list makes


def _tag_hook(*args: Any) -> Any:
    # cbor2 has passed (decoder, tag) and (tag, immutable) across versions; accept both.
    tag = args[0] if isinstance(args[0], cbor2.CBORTag) else args[1]
    build = _by_tag.get(tag.tag)
    if build is None:
        raise CodecError(f"unknown tag {tag.tag}")
    return build(tag.value)


def encode(obj: Any) -> bytes:
    try:
        return cbor2.dumps(obj, default=_default)
    except CodecError:
        raise
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise CodecError(str(exc)) from exc


def decode(data: bytes | bytearray | memoryview, max_depth: int = 64) -> Any:
    try:
        return cbor2.loads(data, tag_hook=_tag_hook, max_depth=max_depth)
    except CodecError:
        raise
    except Exception as exc:  # cbor2 raises a zoo of types on garbage; name one.
        cause = exc.__cause__ if isinstance(exc.__cause__, CodecError) else None
        if cause is not None:
            raise cause from None
        raise CodecError(f"malformed CBOR: {exc}") from exc


def _register_builtin_shapes() -> None:
    from trikv.api import records

    for offset, cls in enumerate(
        (
            records.Entry,
            records.HardState,
            records.ConfState,
            records.SnapshotMeta,
            records.ConfChange,
            records.WalMetadata,
        )
    ):
        _register(cls, TAG_BASE + offset)


_register_builtin_shapes()
