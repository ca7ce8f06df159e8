"""etcd's static request checks (v3rpc key.go): what can be refused without looking at any state.

One entry point::

    check_request(req, *, max_txn_ops=128, max_request_bytes=None) -> None

It returns None for a request that may be proposed and raises the typed etcd error (trikv.api.errors:
exact message and gRPC code) otherwise. Request handlers call it BEFORE proposing, so nothing it refuses
ever enters the Raft log; pass the member's `max-txn-ops` and `max-request-bytes`. Any request object is
accepted: the KV shapes (range, put, delete range, txn) get etcd's checks, every request gets the size
check when `max_request_bytes` is given, other shapes (compaction, status, ...) pass otherwise.

What it checks, in etcd's order:
- range / put / delete range: empty key -> EmptyKeyError ("etcdserver: key is not provided");
- put: a value with ignore_value -> ValueProvidedError; a lease with ignore_lease -> LeaseProvidedError;
- range: a sort order or target that is not one of etcd's -> InvalidSortOptionError (etcd >= 3.5's
  check; etcd 3.4 has none and fails at apply, which a Raft log must never do);
- txn: the longest of compare / success / failure above `max_txn_ops` -> TooManyOpsError; a nested txn
  gets what its parent's longest list leaves of the budget (etcd's checkRequestOp(u, maxTxnOps-opc));
  then every compare's key, then every op of success and failure, recursively; an op that is none of
  the four shapes -> KeyNotFoundError (etcd's answer to an empty RequestOp);
- txn, after all of the above (etcd runs checkIntervals last, so a huge request is refused before the
  quadratic part): a key put twice, or put inside a deleted range, in one branch -> DuplicateKeyError.
  Nested txns count with their branches: then/else of one nested txn exclude each other;
- size: the request's CBOR encoding (trikv.api.codec) longer than `max_request_bytes` ->
  RequestTooLargeError. etcd measures the marshalled Raft request, so the boundary is close, not equal.

The store (trikv.storage.mvcc) runs the same checks again at apply as deterministic defense in depth,
with `max_txn_ops=None` (no bound) and no size limit: both are member configuration, and an applied
entry must have the same outcome on every member whatever its flags.

Pure: imports only trikv.api, no I/O, no trio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trikv.api import codec
from trikv.api.errors import (
    DuplicateKeyError,
    EmptyKeyError,
    InvalidRequestError,
    InvalidSortOptionError,
    KeyNotFoundError,
    LeaseProvidedError,
    RequestTooLargeError,
    TooManyOpsError,
    ValueProvidedError,
)
from trikv.api.rpc import (
    Compare,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    SortOrder,
    SortTarget,
    TxnRequest,
)

DEFAULT_MAX_TXN_OPS = 128  # etcd's --max-txn-ops default

# IntEnum members hash and compare as their ints, so a plain int from a decoder is found too.
_SORT_ORDERS = frozenset(SortOrder)
_SORT_TARGETS = frozenset(SortTarget)

Span = tuple[bytes, bytes | None, bool]


def check_request(
    req: Any, *, max_txn_ops: int | None = DEFAULT_MAX_TXN_OPS, max_request_bytes: int | None = None
) -> None:
    """Raise the etcd error for a request that must not be proposed; see the module docstring.

    `max_txn_ops=None` means no bound (the apply path); `max_request_bytes=None` skips the size check
    (e.g. when the caller already knows the frame that carried the request is smaller).
    """
    if isinstance(req, TxnRequest):
        _check_txn(req, max_txn_ops)
        _txn_writes(req.success)
        _txn_writes(req.failure)
    elif isinstance(req, (RangeRequest, PutRequest, DeleteRangeRequest)):
        _check_op(req, max_txn_ops)
    if max_request_bytes is not None:
        try:
            size = len(codec.encode(req))
        except codec.CodecError as exc:
            raise InvalidRequestError(f"etcdserver: request cannot be encoded: {exc}") from exc
        if size > max_request_bytes:
            raise RequestTooLargeError()


def _check_op(op: Any, max_txn_ops: int | None) -> None:
    """etcd's checkRequestOp: one op of a txn branch (or a top-level request), nested txns included."""
    if isinstance(op, RangeRequest):
        if not op.key:
            raise EmptyKeyError()
        if op.sort_order not in _SORT_ORDERS or op.sort_target not in _SORT_TARGETS:
            raise InvalidSortOptionError()
    elif isinstance(op, PutRequest):
        if not op.key:
            raise EmptyKeyError()
        if op.ignore_value and op.value:
            raise ValueProvidedError()
        if op.ignore_lease and op.lease:
            raise LeaseProvidedError()
    elif isinstance(op, DeleteRangeRequest):
        if not op.key:
            raise EmptyKeyError()
    elif isinstance(op, TxnRequest):
        _check_txn(op, max_txn_ops)
    else:
        raise KeyNotFoundError()


def _check_txn(req: TxnRequest, max_txn_ops: int | None) -> None:
    """etcd's checkTxnRequest: the ops bound, compare keys, then each op with what is left of the bound."""
    opc = max(len(req.compare), len(req.success), len(req.failure))
    if max_txn_ops is not None and opc > max_txn_ops:
        raise TooManyOpsError()
    for c in req.compare:
        if not isinstance(c, Compare):
            raise InvalidRequestError(f"etcdserver: a txn compare is a {type(c).__name__}, not a Compare")
        if not c.key:
            raise EmptyKeyError()
    left = None if max_txn_ops is None else max_txn_ops - opc
    for op in req.success:
        _check_op(op, left)
    for op in req.failure:
        _check_op(op, left)


def key_span(key: bytes, range_end: bytes) -> Span:
    """(start, end or None for 'to the end', single key?) under etcd's range_end rules."""
    if not range_end:
        return key, key, True
    if range_end == b"\0":
        return key, None, False
    return key, range_end, False


def _in_dels(key: bytes, dels: list[Span]) -> bool:
    for start, end, single in dels:
        if single:
            if key == start:
                return True
        elif key >= start and (end is None or key < end):
            return True
    return False


def _txn_writes(ops: Sequence[Any]) -> tuple[set[bytes], list[Span]]:
    """(puts, delete spans) of one branch; DuplicateKeyError when a key is put twice or put and deleted.

    etcd's checkIntervals. Overlapping deletes are fine (as in etcd); then/else of a nested txn exclude
    each other. Call it after the shape checks: it assumes every op is one of the four shapes.
    One deliberate difference: a delete with range_end "\\0" covers every key from its start here; etcd's
    interval tree reads "\\0" literally (an empty interval), so etcd lets such a txn also put a key in it.
    """
    dels = [key_span(op.key, op.range_end) for op in ops if isinstance(op, DeleteRangeRequest)]
    puts: set[bytes] = set()
    for op in ops:
        if not isinstance(op, TxnRequest):
            continue
        puts_then, dels_then = _txn_writes(op.success)
        puts_else, dels_else = _txn_writes(op.failure)
        for k in puts_then:
            if k in puts or _in_dels(k, dels):
                raise DuplicateKeyError()
            puts.add(k)
        for k in puts_else:
            if (k in puts and k not in puts_then) or _in_dels(k, dels):
                raise DuplicateKeyError()
            puts.add(k)
        dels.extend(dels_then)
        dels.extend(dels_else)
    for op in ops:
        if isinstance(op, PutRequest):
            if op.key in puts or _in_dels(op.key, dels):
                raise DuplicateKeyError()
            puts.add(op.key)
    return puts, dels


__all__ = ["DEFAULT_MAX_TXN_OPS", "check_request", "key_span"]
