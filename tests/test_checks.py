"""etcd's static request checks (trikv.api.checks): every rule, etcd's order, message and gRPC code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.storage.memory_pagefile import MemoryPageFile
from trikv.api import codec
from trikv.api.checks import DEFAULT_MAX_TXN_OPS, check_request, key_span
from trikv.api.errors import (
    DuplicateKeyError,
    EmptyKeyError,
    EtcdError,
    GrpcCode,
    InvalidRequestError,
    InvalidSortOptionError,
    KeyNotFoundError,
    LeaseProvidedError,
    RequestTooLargeError,
    TooManyOpsError,
    ValueProvidedError,
    from_wire,
    to_wire,
)
from trikv.api.protocol import StatusRequest
from trikv.api.rpc import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    SortOrder,
    SortTarget,
    TxnRequest,
)
from trikv.storage.mvcc import KVStore

EQ = CompareResult.EQUAL
VER = CompareTarget.VERSION


def cmp(key: bytes = b"k") -> Compare:
    return Compare(EQ, VER, key, 0)


def put(key: bytes = b"k", value: bytes = b"v", **kw: Any) -> PutRequest:
    return PutRequest(key, value, **kw)


def refused(req: Any, **kw: Any) -> EtcdError:
    with pytest.raises(EtcdError) as info:
        check_request(req, **kw)
    return info.value


# etcd's exact messages and codes (v3rpc/rpctypes), written out so a changed string fails here.
ETCD = {
    EmptyKeyError: "etcdserver: key is not provided",
    ValueProvidedError: "etcdserver: value is provided",
    LeaseProvidedError: "etcdserver: lease is provided",
    InvalidSortOptionError: "etcdserver: invalid sort option",
    TooManyOpsError: "etcdserver: too many operations in txn request",
    DuplicateKeyError: "etcdserver: duplicate key given in txn request",
    KeyNotFoundError: "etcdserver: key not found",
    RequestTooLargeError: "etcdserver: request is too large",
}


def assert_refused(req: Any, cls: type[EtcdError], **kw: Any) -> None:
    err = refused(req, **kw)
    assert type(err) is cls, (req, err)
    assert err.text == ETCD[cls]
    assert err.code == GrpcCode.INVALID_ARGUMENT
    assert to_wire(err) == {"code": 3, "message": ETCD[cls]}
    assert type(from_wire(to_wire(err))) is cls  # the client gets the same typed error back


# ------------------------------------------------------------------------------------- valid requests

VALID = [
    RangeRequest(b"k"),
    RangeRequest(b"a", b"\0", sort_order=SortOrder.DESCEND, sort_target=SortTarget.VALUE),
    PutRequest(b"k"),
    PutRequest(b"k", b"", ignore_value=True),
    PutRequest(b"k", b"v", lease=0, ignore_lease=True),
    PutRequest(b"k", b"", ignore_value=True, ignore_lease=True),
    DeleteRangeRequest(b"k", b"\0"),
    TxnRequest(),
    TxnRequest(compare=[cmp()], success=[put(b"a")], failure=[put(b"a")]),  # branches are separate
    CompactionRequest(5),
    StatusRequest(),
]


@pytest.mark.parametrize("req", VALID, ids=repr)
def test_valid_requests_pass(req: Any) -> None:
    check_request(req)
    check_request(req, max_request_bytes=1 << 20)


def test_enum_values_as_plain_ints_pass() -> None:
    """A decoder may hand over ints: 2 is DESCEND whether or not it is a SortOrder member."""
    check_request(RangeRequest(b"k", sort_order=2, sort_target=4))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- empty keys

EMPTY_KEY = [
    RangeRequest(b""),
    PutRequest(b"", b"v"),
    DeleteRangeRequest(b"", b"z"),
    TxnRequest(compare=[cmp(b"")]),
    TxnRequest(compare=[cmp(), cmp(b"")]),
    TxnRequest(success=[RangeRequest(b"")]),
    TxnRequest(success=[put(), PutRequest(b"")]),
    TxnRequest(failure=[DeleteRangeRequest(b"")]),
    TxnRequest(success=[TxnRequest(compare=[cmp(b"")])]),
    TxnRequest(failure=[TxnRequest(success=[TxnRequest(failure=[PutRequest(b"")])])]),
]


@pytest.mark.parametrize("req", EMPTY_KEY, ids=repr)
def test_empty_key_on_every_op_and_compare(req: Any) -> None:
    assert_refused(req, EmptyKeyError)


# ------------------------------------------------------------------------------------- put flags


@pytest.mark.parametrize(
    ("req", "cls"),
    [
        (PutRequest(b"k", b"x", ignore_value=True), ValueProvidedError),
        (PutRequest(b"k", b"", lease=7, ignore_lease=True), LeaseProvidedError),
        # etcd's order: key, then value, then lease
        (PutRequest(b"k", b"x", lease=7, ignore_value=True, ignore_lease=True), ValueProvidedError),
        (PutRequest(b"", b"x", lease=7, ignore_value=True, ignore_lease=True), EmptyKeyError),
        (TxnRequest(success=[PutRequest(b"k", b"x", ignore_value=True)]), ValueProvidedError),
        (TxnRequest(failure=[TxnRequest(success=[put(lease=1, ignore_lease=True)])]), LeaseProvidedError),
    ],
    ids=repr,
)
def test_put_flag_conflicts(req: Any, cls: type[EtcdError]) -> None:
    assert_refused(req, cls)


# ------------------------------------------------------------------------------------- sort options


@pytest.mark.parametrize(
    "req",
    [
        RangeRequest(b"k", sort_order=3),  # type: ignore[arg-type]
        RangeRequest(b"k", sort_order=-1),  # type: ignore[arg-type]
        RangeRequest(b"k", sort_target=5),  # type: ignore[arg-type]
        RangeRequest(b"k", sort_order=SortOrder.ASCEND, sort_target=99),  # type: ignore[arg-type]
        RangeRequest(b"k", sort_order="1"),  # type: ignore[arg-type]
        TxnRequest(success=[RangeRequest(b"k", sort_target=9)]),  # type: ignore[arg-type]
    ],
    ids=repr,
)
def test_invalid_sort_option(req: Any) -> None:
    assert_refused(req, InvalidSortOptionError)


def test_empty_key_before_sort_option() -> None:
    assert_refused(RangeRequest(b"", sort_order=9, sort_target=9), EmptyKeyError)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- duplicate keys


def txn(*success: Any, failure: tuple[Any, ...] = ()) -> TxnRequest:
    return TxnRequest(success=success, failure=failure)


def dele(key: bytes, end: bytes = b"") -> DeleteRangeRequest:
    return DeleteRangeRequest(key, end)


DUPLICATE = {
    "put twice": txn(put(b"a"), put(b"a")),
    "put twice in failure": TxnRequest(compare=[cmp()], failure=[put(b"a"), put(b"a")]),
    "put inside a deleted range": txn(put(b"b"), dele(b"a", b"c")),
    "delete first, then put": txn(dele(b"a", b"c"), put(b"a")),
    "put of a deleted single key": txn(put(b"a"), dele(b"a")),
    "put under a from-key delete": txn(dele(b"a", b"\0"), put(b"zz")),
    "put under a delete of everything": txn(dele(b"\0", b"\0"), put(b"zz")),
    "outer put, nested then put": txn(put(b"a"), txn(put(b"a"))),
    "outer put, nested else put": txn(put(b"a"), txn(failure=(put(b"a"),))),
    "nested then put, outer put later": txn(txn(put(b"a")), put(b"a")),
    "two sibling nested txns put": txn(txn(put(b"a")), txn(put(b"a"))),
    "sibling nested then and else": txn(txn(put(b"a")), txn(failure=(put(b"a"),))),
    "outer delete covers a nested put": txn(dele(b"a", b"b"), txn(put(b"a"))),
    "nested delete, outer put": txn(txn(dele(b"a")), put(b"a")),
    "nested else delete, outer put": txn(txn(failure=(dele(b"a", b"z"),)), put(b"q")),
    "earlier nested delete, later nested put": txn(txn(dele(b"a")), txn(put(b"a"))),
    "inside one nested branch": txn(txn(put(b"a"), put(b"a"))),
    "deep inside": txn(txn(failure=(txn(put(b"x"), dele(b"w", b"y")),))),
    "nested in the failure branch": TxnRequest(failure=[put(b"a"), txn(put(b"a"))]),
}

NOT_DUPLICATE = {
    "different keys": txn(put(b"a"), put(b"b")),
    "overlapping deletes": txn(dele(b"a", b"c"), dele(b"b", b"d"), dele(b"b")),
    "put at the exclusive end": txn(dele(b"a", b"c"), put(b"c")),
    "put before the start": txn(dele(b"b", b"c"), put(b"a")),
    "same key in success and failure": TxnRequest(success=[put(b"a")], failure=[put(b"a")]),
    "then and else of one nested txn": txn(txn(put(b"a"), failure=(put(b"a"),))),
    "nested then/else under an outer put": txn(txn(put(b"a"), failure=(put(b"a"),)), put(b"b")),
    "range and put of one key": txn(RangeRequest(b"a"), put(b"a")),
    "nested then put, nested else delete": txn(txn(put(b"a"), failure=(dele(b"a"),))),
    # etcd's checkIntervals quirk, kept: a nested delete only covers puts checked after it
    "earlier nested put, later nested delete": txn(txn(put(b"a")), txn(dele(b"a"))),
}


@pytest.mark.parametrize("req", DUPLICATE.values(), ids=DUPLICATE.keys())
def test_duplicate_keys(req: TxnRequest) -> None:
    assert_refused(req, DuplicateKeyError)


@pytest.mark.parametrize("req", NOT_DUPLICATE.values(), ids=NOT_DUPLICATE.keys())
def test_not_duplicate(req: TxnRequest) -> None:
    check_request(req)


def test_shape_errors_come_before_duplicates() -> None:
    """etcd runs checkIntervals only after checkTxnRequest passed the whole request."""
    assert_refused(TxnRequest(success=[put(b"a"), put(b"a")], failure=[PutRequest(b"")]), EmptyKeyError)
    assert_refused(TxnRequest(success=[put(b"a"), put(b"a")] * 65), TooManyOpsError)


def test_key_span_follows_range_end_rules() -> None:
    assert key_span(b"a", b"") == (b"a", b"a", True)
    assert key_span(b"a", b"\0") == (b"a", None, False)
    assert key_span(b"a", b"c") == (b"a", b"c", False)


# ------------------------------------------------------------------------------------- max txn ops


def puts(n: int, prefix: bytes = b"k") -> list[PutRequest]:
    return [put(prefix + str(i).encode()) for i in range(n)]


def cmps(n: int) -> list[Compare]:
    return [cmp(b"c" + str(i).encode()) for i in range(n)]


@pytest.mark.parametrize("field", ["compare", "success", "failure"])
def test_max_txn_ops_boundary(field: str) -> None:
    make = cmps if field == "compare" else puts
    assert DEFAULT_MAX_TXN_OPS == 128
    check_request(TxnRequest(**{field: make(128)}))
    assert_refused(TxnRequest(**{field: make(129)}), TooManyOpsError)


def test_max_txn_ops_bounds_the_longest_list_not_the_sum() -> None:
    check_request(TxnRequest(compare=cmps(128), success=puts(128), failure=puts(128)))
    assert_refused(TxnRequest(compare=cmps(1), success=puts(1), failure=puts(129)), TooManyOpsError)


def test_max_txn_ops_is_configurable_and_none_means_unbounded() -> None:
    check_request(TxnRequest(success=puts(3)), max_txn_ops=3)
    assert_refused(TxnRequest(success=puts(4)), TooManyOpsError, max_txn_ops=3)
    check_request(TxnRequest(success=puts(1000)), max_txn_ops=None)
    check_request(TxnRequest(success=[TxnRequest(success=puts(500))] * 1), max_txn_ops=None)


def test_too_many_ops_comes_before_compare_keys() -> None:
    assert_refused(TxnRequest(compare=[cmp(b"")], success=puts(129)), TooManyOpsError)


def test_nested_txn_gets_what_the_parent_leaves() -> None:
    """etcd's checkRequestOp(u, maxTxnOps-opc): the parent's longest list is taken off the budget."""
    check_request(TxnRequest(success=[TxnRequest(success=puts(127))]))
    assert_refused(TxnRequest(success=[TxnRequest(success=puts(128))]), TooManyOpsError)
    parent = [*puts(9, b"p"), TxnRequest(failure=puts(118))]  # opc 10 leaves 118
    check_request(TxnRequest(success=parent))
    assert_refused(TxnRequest(success=[*puts(9, b"p"), TxnRequest(failure=puts(119))]), TooManyOpsError)
    # the parent's compares count too, and a nested txn in the failure branch gets the same budget
    check_request(TxnRequest(compare=cmps(50), failure=[TxnRequest(compare=cmps(78))]))
    assert_refused(TxnRequest(compare=cmps(50), failure=[TxnRequest(compare=cmps(79))]), TooManyOpsError)


def test_nesting_depth_is_bounded_by_the_budget() -> None:
    def chain(depth: int) -> TxnRequest:
        req = TxnRequest(success=[put()])
        for _ in range(depth - 1):
            req = TxnRequest(success=[req])
        return req

    check_request(chain(3), max_txn_ops=3)  # budgets 3, 2, 1 for one op each
    assert_refused(chain(4), TooManyOpsError, max_txn_ops=3)
    check_request(chain(128))
    assert_refused(chain(129), TooManyOpsError)


# ------------------------------------------------------------------------------------- order and odd ops


def test_success_is_checked_before_failure() -> None:
    req = TxnRequest(success=[put(b"k", b"x", ignore_value=True)], failure=[PutRequest(b"")])
    assert_refused(req, ValueProvidedError)


def test_compares_are_checked_before_ops() -> None:
    assert_refused(
        TxnRequest(compare=[cmp(b"")], success=[put(b"k", b"x", ignore_value=True)]), EmptyKeyError
    )


def test_an_op_of_no_known_shape_is_etcds_empty_op() -> None:
    assert_refused(TxnRequest(success=[CompactionRequest(1)]), KeyNotFoundError)
    assert_refused(TxnRequest(failure=[txn(cmp())]), KeyNotFoundError)


def test_a_compare_of_the_wrong_shape_is_invalid() -> None:
    err = refused(TxnRequest(compare=[put()]))
    assert type(err) is InvalidRequestError and err.code == GrpcCode.INVALID_ARGUMENT
    assert "PutRequest" in err.text


# ------------------------------------------------------------------------------------- request size


@pytest.mark.parametrize(
    "make",
    [
        lambda n: PutRequest(b"big", b"x" * n),
        lambda n: TxnRequest(success=[PutRequest(b"big", b"x" * n)]),
        lambda n: RangeRequest(b"k" * n),
        lambda n: CompactionRequest(n),
    ],
    ids=["put", "txn", "range", "compaction"],
)
def test_request_size_boundary(make: Any) -> None:
    req = make(10_000)
    size = len(codec.encode(req))
    check_request(req, max_request_bytes=size)
    assert_refused(req, RequestTooLargeError, max_request_bytes=size - 1)
    check_request(req)  # no limit given: no size check


def test_etcd_figures_with_the_default_limit() -> None:
    """The reference run: 1,500,000 bytes accepted, 1,600,000 refused under 1.5 MiB."""
    limit = 1572864
    check_request(PutRequest(b"big", b"a" * 1_500_000), max_request_bytes=limit)
    assert_refused(PutRequest(b"big", b"a" * 1_600_000), RequestTooLargeError, max_request_bytes=limit)


def test_static_checks_come_before_the_size() -> None:
    assert_refused(PutRequest(b"", b"x" * 1000), EmptyKeyError, max_request_bytes=10)


def test_an_unencodable_request_is_invalid_not_a_crash() -> None:
    err = refused(RangeRequest(b"k", limit=object()), max_request_bytes=1000)  # type: ignore[arg-type]
    assert type(err) is InvalidRequestError


# ------------------------------------------------------------------------------------- at apply


@pytest.fixture
def store() -> Iterator[KVStore]:
    s = KVStore(MemoryPageFile())
    yield s
    s.close()


def test_the_store_runs_the_same_checks_at_apply(store: KVStore) -> None:
    bad: list[tuple[Any, type[EtcdError]]] = [
        (PutRequest(b""), EmptyKeyError),
        (PutRequest(b"k", b"x", ignore_value=True), ValueProvidedError),
        (DeleteRangeRequest(b""), EmptyKeyError),
        (TxnRequest(compare=[cmp(b"")]), EmptyKeyError),
        (txn(put(b"a"), txn(put(b"a"))), DuplicateKeyError),
        (TxnRequest(success=[RangeRequest(b"k", sort_target=7)]), InvalidSortOptionError),  # type: ignore[arg-type]
    ]
    with store.write() as b:
        for req, cls in bad:
            fn = (
                b.put
                if isinstance(req, PutRequest)
                else b.delete_range
                if isinstance(req, DeleteRangeRequest)
                else b.txn
            )
            with pytest.raises(cls):
                fn(req)
        with pytest.raises(InvalidSortOptionError):
            b.range(RangeRequest(b"k", sort_order=5))  # type: ignore[arg-type]
        b.commit()
    with pytest.raises(InvalidSortOptionError):
        store.range(RangeRequest(b"k", sort_order=5))  # type: ignore[arg-type]
    assert store.current_revision == 1


def test_the_store_does_not_apply_member_flags(store: KVStore) -> None:
    """max-txn-ops is a member's flag: an entry the leader accepted must apply alike everywhere."""
    with store.write() as b:
        resp = b.txn(TxnRequest(success=puts(300)))
        b.commit()
    assert len(resp.responses) == 300 and store.current_revision == 2
