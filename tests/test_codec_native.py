"""cbor2's compiled extension must be what the codec runs on: a pure-Python fallback is several times slower
per frame and would pass every other test silently (cbor2 5.x falls back when its extension fails to load)."""

from __future__ import annotations

import sys
import types

import cbor2

from trikv.api import codec

# cbor2 5.x ships the extension as top-level `_cbor2`; 6.x as `cbor2._cbor2` (and no Python fallback).
NATIVE_MODULES = {"_cbor2", "cbor2._cbor2"}


def test_cbor2_runs_its_compiled_extension() -> None:
    for fn in (cbor2.dumps, cbor2.loads):
        assert isinstance(fn, types.BuiltinFunctionType), f"cbor2.{fn.__name__} is pure Python"
        assert fn.__module__ in NATIVE_MODULES
    native = [sys.modules[m] for m in NATIVE_MODULES if m in sys.modules]
    assert native, "cbor2's extension module is not loaded"
    assert cbor2.CBORTag in [getattr(m, "CBORTag", None) for m in native]


def test_the_codec_calls_the_compiled_functions() -> None:
    # The codec looks its functions up on the cbor2 module at call time: the compiled ones above.
    assert codec.cbor2 is cbor2
    assert codec.decode(codec.encode([1, b"x", "y"])) == [1, b"x", "y"]
