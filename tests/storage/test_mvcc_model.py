"""MVCC against a simple model: every revision's full state as a dict, over random op sequences.

The model keeps one dict per revision (so history reads are trivial), applies etcd's rules directly and
knows nothing of generations, page keys or the key index. Batches commit or are abandoned; the store is
reopened and compacted (physically, step by step) at random. After every batch every readable revision is
compared in full. The one piece shared with the code under test is the static request check (empty keys,
duplicate writes in a txn), which has its own hand-written etcd cases in test_mvcc.py.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.storage.memory_pagefile import Backend, backend_kinds
from trikv.api.errors import (
    CompactedError,
    EtcdError,
    FutureRevError,
    KeyNotFoundError,
    LeaseProvidedError,
    ValueProvidedError,
)
from trikv.api.rpc import (
    CompactionRequest,
    CompactionResponse,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    ResponseHeader,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)
from trikv.storage.mvcc import KVStore, _check_static

KEYS = [b"a", b"ab", b"b", b"c", b"d"]
ENDS = [b"", b"", b"\0", b"b", b"c", b"ac", b"zz", b"a"]
VALUES = [b"", b"x", b"y", b"zz"]

State = dict[bytes, KeyValue]


# ------------------------------------------------------------------------------------------- the model


def in_span(key: bytes, start: bytes, end: bytes) -> bool:
    if end == b"":
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


def model_range(state: State, view: int, req: RangeRequest) -> RangeResponse:
    kvs = [state[k] for k in sorted(state) if in_span(k, req.key, req.range_end)]
    count = len(kvs)
    if req.count_only:
        return RangeResponse(header=ResponseHeader(revision=view), count=count)
    kvs = [
        kv
        for kv in kvs
        if (not req.min_mod_revision or kv.mod_revision >= req.min_mod_revision)
        and (not req.max_mod_revision or kv.mod_revision <= req.max_mod_revision)
        and (not req.min_create_revision or kv.create_revision >= req.min_create_revision)
        and (not req.max_create_revision or kv.create_revision <= req.max_create_revision)
    ]
    order = req.sort_order
    if order == SortOrder.NONE and req.sort_target != SortTarget.KEY:
        order = SortOrder.ASCEND
    if order != SortOrder.NONE:
        field = {
            SortTarget.KEY: "key",
            SortTarget.VERSION: "version",
            SortTarget.CREATE: "create_revision",
            SortTarget.MOD: "mod_revision",
            SortTarget.VALUE: "value",
        }[req.sort_target]
        kvs.sort(key=lambda kv: getattr(kv, field), reverse=order == SortOrder.DESCEND)
    more = False
    if req.limit and len(kvs) > req.limit:
        kvs, more = kvs[: req.limit], True
    if req.keys_only:
        kvs = [attrs.evolve(kv, value=b"") for kv in kvs]
    return RangeResponse(header=ResponseHeader(revision=view), kvs=kvs, more=more, count=count)


FIRST_REV = 1  # etcd: an empty store is at revision 1, the first write gets 2 (written here, not imported)


class Model:
    def __init__(self) -> None:
        self.revs: list[State] = [{}]  # revs[i] is the state at revision FIRST_REV + i
        self.compacted = 0  # 0: never compacted
        self.ci = (0, 0)

    @property
    def rev(self) -> int:
        return FIRST_REV + len(self.revs) - 1

    def at(self, rev: int) -> State:
        assert rev >= FIRST_REV
        return self.revs[rev - FIRST_REV]

    def copy(self) -> Model:
        m = Model()
        m.revs, m.compacted, m.ci = list(self.revs), self.compacted, self.ci
        return m

    def read(self, req: RangeRequest, view: int, work: State) -> RangeResponse:
        if req.revision <= 0:
            return model_range(work, view, req)
        if req.revision > view:
            raise FutureRevError()
        if req.revision < self.compacted:
            raise CompactedError()
        return model_range(self.at(req.revision), view, req)

    def range(self, req: RangeRequest) -> RangeResponse:
        _check_static(req)
        return self.read(req, self.rev, self.revs[-1])

    def _put(self, work: State, req: PutRequest, rev: int) -> PutResponse:
        old = work.get(req.key)
        value = old.value if req.ignore_value and old else req.value
        lease = old.lease if req.ignore_lease and old else req.lease
        work[req.key] = KeyValue(
            req.key, old.create_revision if old else rev, rev, old.version + 1 if old else 1, value, lease
        )
        return PutResponse(header=ResponseHeader(revision=rev), prev_kv=old if req.prev_kv else None)

    def _delete(self, work: State, req: DeleteRangeRequest) -> list[KeyValue]:
        gone = [work.pop(k) for k in sorted(work) if in_span(k, req.key, req.range_end)]
        return gone

    def _check_put(self, req: PutRequest) -> None:
        if req.ignore_value and req.value:
            raise ValueProvidedError()
        if req.ignore_lease and req.lease:
            raise LeaseProvidedError()
        if (req.ignore_value or req.ignore_lease) and req.key not in self.revs[-1]:
            raise KeyNotFoundError()

    def put(self, req: PutRequest) -> PutResponse:
        _check_static(req)
        self._check_put(req)
        work = dict(self.revs[-1])
        resp = self._put(work, req, self.rev + 1)
        self.revs.append(work)
        return resp

    def delete_range(self, req: DeleteRangeRequest) -> DeleteRangeResponse:
        _check_static(req)
        work = dict(self.revs[-1])
        gone = self._delete(work, req)
        if gone:
            self.revs.append(work)
        return DeleteRangeResponse(
            header=ResponseHeader(revision=self.rev), deleted=len(gone), prev_kvs=gone if req.prev_kv else []
        )

    def _holds(self, c: Compare) -> bool:
        state = self.revs[-1]
        kvs = [state[k] for k in sorted(state) if in_span(k, c.key, c.range_end)]
        if not kvs:
            if c.target == CompareTarget.VALUE:
                return False
            kvs = [KeyValue(c.key)]
        for kv in kvs:
            have = {
                CompareTarget.VERSION: kv.version,
                CompareTarget.CREATE: kv.create_revision,
                CompareTarget.MOD: kv.mod_revision,
                CompareTarget.VALUE: kv.value,
                CompareTarget.LEASE: kv.lease,
            }[c.target]
            want = c.target_value
            ok = {
                CompareResult.EQUAL: have == want,
                CompareResult.NOT_EQUAL: have != want,
                CompareResult.GREATER: have > want,  # type: ignore[operator]
                CompareResult.LESS: have < want,  # type: ignore[operator]
            }[c.result]
            if not ok:
                return False
        return True

    def _precheck(self, req: TxnRequest) -> None:
        ops = req.success if all(self._holds(c) for c in req.compare) else req.failure
        for op in ops:
            if isinstance(op, TxnRequest):
                self._precheck(op)
            elif isinstance(op, PutRequest):
                self._check_put(op)
            elif isinstance(op, RangeRequest) and op.revision > 0:
                self.read(op, self.rev, self.revs[-1])

    def txn(self, req: TxnRequest) -> TxnResponse:
        _check_static(req)
        self._precheck(req)
        work = dict(self.revs[-1])
        changed = [False]
        resp = self._txn(req, work, changed)
        if changed[0]:
            self.revs.append(work)
        return attrs.evolve(resp, header=ResponseHeader(revision=self.rev))

    def _txn(self, req: TxnRequest, work: State, changed: list[bool]) -> TxnResponse:
        ok = all(self._holds(c) for c in req.compare)  # compares all see the state before the txn
        out: list[Any] = []
        new = self.rev + 1
        for op in req.success if ok else req.failure:
            if isinstance(op, RangeRequest):
                out.append(self.read(op, new if changed[0] else self.rev, work))
            elif isinstance(op, PutRequest):
                changed[0] = True
                out.append(self._put(work, op, new))
            elif isinstance(op, DeleteRangeRequest):
                gone = self._delete(work, op)
                changed[0] = changed[0] or bool(gone)
                hdr = ResponseHeader(revision=new if changed[0] else self.rev)
                out.append(
                    DeleteRangeResponse(header=hdr, deleted=len(gone), prev_kvs=gone if op.prev_kv else [])
                )
            else:
                sub = self._txn(op, work, changed)
                out.append(attrs.evolve(sub, header=ResponseHeader(revision=new if changed[0] else self.rev)))
        return TxnResponse(header=ResponseHeader(), succeeded=ok, responses=out)

    def compact(self, req: CompactionRequest) -> CompactionResponse:
        if req.revision <= self.compacted:
            raise CompactedError()
        if req.revision > self.rev:
            raise FutureRevError()
        self.compacted = req.revision
        return CompactionResponse(header=ResponseHeader(revision=self.rev))


# ------------------------------------------------------------------------------------------- strategies

keys = st.sampled_from(KEYS)
ends = st.sampled_from(ENDS)
small = st.integers(0, 3)


@st.composite
def put_requests(draw: Any) -> PutRequest:
    ignore_value = draw(st.sampled_from([False, False, False, True]))
    ignore_lease = draw(st.sampled_from([False, False, False, True]))
    # mostly well-formed: an ignored field is usually left empty (else Value/LeaseProvidedError)
    value = b"" if ignore_value and draw(st.integers(0, 4)) else draw(st.sampled_from(VALUES))
    lease = 0 if ignore_lease and draw(st.integers(0, 4)) else draw(st.sampled_from([0, 0, 5, 7]))
    return PutRequest(draw(keys), value, lease, draw(st.booleans()), ignore_value, ignore_lease)


puts = put_requests()
deletes = st.builds(DeleteRangeRequest, key=keys, range_end=ends, prev_kv=st.booleans())
ranges = st.builds(
    RangeRequest,
    key=keys,
    range_end=ends,
    limit=st.sampled_from([0, 0, 1, 2]),
    revision=st.sampled_from([0, 0, 0]) | st.integers(1, 12),
    sort_order=st.sampled_from(list(SortOrder)),
    sort_target=st.sampled_from(list(SortTarget)),
    keys_only=st.booleans(),
    count_only=st.sampled_from([False, False, True]),
    min_mod_revision=st.sampled_from([0, 0, 3]),
    max_mod_revision=st.sampled_from([0, 0, 8]),
    min_create_revision=st.sampled_from([0, 0, 2]),
    max_create_revision=st.sampled_from([0, 0, 6]),
)


@st.composite
def compares(draw: Any) -> Compare:
    target = draw(st.sampled_from(list(CompareTarget)))
    value = draw(st.sampled_from(VALUES)) if target == CompareTarget.VALUE else draw(st.integers(0, 8))
    return Compare(draw(st.sampled_from(list(CompareResult))), target, draw(keys), value, draw(ends))


def txns(children: Any) -> Any:
    return st.builds(
        TxnRequest,
        compare=st.lists(compares(), max_size=2),
        success=st.lists(children, max_size=3),
        failure=st.lists(children, max_size=3),
    )


ranges_in_txn = ranges.map(lambda r: attrs.evolve(r, revision=r.revision % 3 if r.revision % 4 == 0 else 0))
ops_in_txn = st.recursive(puts | deletes | ranges_in_txn, txns, max_leaves=6)
requests = st.one_of(
    puts,
    puts,
    puts,
    deletes,
    ranges,
    txns(ops_in_txn),
    st.builds(CompactionRequest, revision=st.integers(1, 12)),
)
batches = st.lists(
    st.tuples(
        st.lists(requests, min_size=1, max_size=8),
        st.sampled_from(["commit", "commit", "commit", "abandon", "reopen", "step"]),
    ),
    min_size=2,
    max_size=10,
)


# ------------------------------------------------------------------------------------------- the test


def call(target: Any, req: Any) -> Any:
    name = {
        PutRequest: "put",
        DeleteRangeRequest: "delete_range",
        TxnRequest: "txn",
        RangeRequest: "range",
        CompactionRequest: "compact",
    }[type(req)]
    try:
        return getattr(target, name)(req)
    except EtcdError as exc:
        return type(exc)


def fit(req: Any, rev: int) -> Any:
    """Fold a drawn revision into [1, rev + 1] so most history reads/compactions are valid, some future."""
    if isinstance(req, (RangeRequest, CompactionRequest)) and req.revision > 0:
        return attrs.evolve(
            req, revision=rev + 1 if req.revision == 12 else 1 + (req.revision - 1) % max(rev, 1)
        )
    return req


def check_history(kv: KVStore, model: Model) -> None:
    assert kv.current_revision == model.rev
    assert kv.compact_revision == model.compacted
    everything = RangeRequest(b"\0", b"\0")
    for rev in range(max(model.compacted, FIRST_REV), model.rev + 1):
        got = kv.range(attrs.evolve(everything, revision=rev))
        assert got.header.revision == model.rev
        assert list(got.kvs) == [model.at(rev)[k] for k in sorted(model.at(rev))], rev
    if model.compacted > FIRST_REV:
        with pytest.raises(CompactedError):
            kv.range(attrs.evolve(everything, revision=model.compacted - 1))
    with pytest.raises(FutureRevError):
        kv.range(attrs.evolve(everything, revision=model.rev + 1))


@pytest.mark.parametrize("kind", backend_kinds())
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=batches)
def test_mvcc_matches_model(kind: str, plan: list[tuple[list[Any], str]]) -> None:
    backend = Backend(kind)
    kv = backend.open()
    model = Model()
    applied = 0
    try:
        for reqs, end in plan:
            trial = model.copy()
            with kv.write() as b:
                for req in reqs:
                    req = fit(req, trial.rev)
                    expect = call(trial, req)
                    got = call(b, req)
                    assert got == expect, req
                if end != "abandon":
                    applied += 1
                    b.set_consistent_index(applied, 1)
                    b.commit()
                    model = trial
            assert kv.consistent_index == applied
            if end == "reopen":
                kv = backend.reopen(kv)
                assert kv.consistent_index == applied
            elif end == "step":
                while not kv.compact_step(limit=2):
                    pass
            check_history(kv, model)
        kv = backend.reopen(kv)
        check_history(kv, model)
    finally:
        kv.close()
