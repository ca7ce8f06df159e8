"""The one apply path: committed Raft entries become effects on the page file.

Used for live entries and for WAL replay alike (etcd's rule): an entry at or below the page file's
consistent index already had its effect durably, so only its conf change (if any) reaches Raft again;
every other entry is applied, and its index is stored with its effect in the same page-file transaction.
A request that fails at apply (future revision, duplicate key, ...) is still a consumed entry: its error is
the answer and the consistent index advances past it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs

from trikv.actors.alarmstore import AlarmStore
from trikv.actors.lease_apply import LEASE_APPLY, apply_with_leases
from trikv.actors.lessor import Lessor
from trikv.api import codec, errors, rpc
from trikv.api.internal import MemberAttributes, RaftRequest
from trikv.api.maintenance import AlarmRequest
from trikv.api.protocol import Member
from trikv.api.records import ConfChange, ConfChangeType, ConfState, Entry, EntryType
from trikv.storage import faults
from trikv.storage.mvcc import ApplyBatch, KVStore

log = logging.getLogger("trikv.apply")

MEMBERS_BUCKET = b"members"
REMOVED_BUCKET = b"members_removed"
CONF_STATE_KEY = b"conf_state"
REAPPLIED = 5  # entries a planted "reapply_after_restart" applies twice


T = TypeVar("T")

# The one table from a request's type to its effect on the key space.
_KV_APPLY: dict[type, Callable[[ApplyBatch, Any], Any]] = {
    rpc.PutRequest: ApplyBatch.put,
    rpc.DeleteRangeRequest: ApplyBatch.delete_range,
    rpc.TxnRequest: ApplyBatch.txn,
    rpc.RangeRequest: ApplyBatch.range,
    rpc.CompactionRequest: ApplyBatch.compact,
}


def _decode_as(e: Entry, shape: type[T]) -> T | None:
    """A committed entry that is not what its type says must not stop the apply loop on every member and
    every restart (a poison pill): it is logged and consumed as a no-op."""
    try:
        value = codec.decode(e.data) if isinstance(e.data, bytes) else None
    except codec.CodecError:
        value = None
    if not isinstance(value, shape):
        log.error("skipping malformed %s entry at index %d (term %d)", e.type.name, e.index, e.term)
        return None
    return value


def member_key(member_id: int) -> bytes:
    return member_id.to_bytes(8, "big")


@attrs.define
class Applied:
    """One applied NORMAL entry: who proposed it and what to answer."""

    request: RaftRequest
    response: Any  # a response shape, or an EtcdError instance


@attrs.define
class ApplyOutcome:
    applied: list[Applied] = attrs.Factory(list)
    conf_changed: bool = False
    conf_change_ids: list[int] = attrs.Factory(list)  # ConfChange.id of each applied change (the proposer's)
    removed_self: bool = False
    last_index: int = 0
    last_term: int = 0


class Applier:
    """Applies batches of committed entries in one page-file transaction each."""

    def __init__(self, kv: KVStore, self_id: int) -> None:
        self.kv = kv
        self.self_id = self_id
        self.members: dict[int, Member] = {}
        self.removed: set[int] = set()
        self.alarms = AlarmStore.load(kv)  # from the page file: alarms survive restarts and installs
        self.lessor: Lessor | None = None  # set by the Node: lease entries and puts naming a lease go there
        self._load_members()
        if faults.ACTIVE is not None and faults.ACTIVE.plant("reapply_after_restart"):
            self._plant_reapply(kv.consistent_index)

    def _plant_reapply(self, ci: int) -> None:
        """PLANTED BUG (test plugin only, "reapply_after_restart"): the last REAPPLIED entries at or below the
        page file's consistent index apply once more when the WAL replays them after a (re)start: the bug
        etcd's consistent index exists to prevent (tests/actors/broken.py has the in-process twin)."""
        window = range(max(1, ci - REAPPLIED + 1), ci + 1) if ci else range(0)
        done: set[int] = set()
        normal = self.already_applied

        def already_applied(index: int, consistent_index: int) -> bool:
            if index in window and index not in done:
                done.add(index)
                return False
            return normal(index, consistent_index)

        self.already_applied = already_applied  # type: ignore[method-assign]

    def _load_members(self) -> None:
        with self.kv.write() as batch:
            for k, v in batch.bucket_range(MEMBERS_BUCKET):
                member = codec.decode(v)
                self.members[int.from_bytes(k, "big")] = member
            for k, _ in batch.bucket_range(REMOVED_BUCKET):
                self.removed.add(int.from_bytes(k, "big"))

    def already_applied(self, index: int, consistent_index: int) -> bool:
        """etcd's exactly-once rule: the page file's consistent index says what already took effect."""
        return index <= consistent_index

    def is_learner(self, member_id: int) -> bool:
        m = self.members.get(member_id)
        return bool(m and m.is_learner)

    def conf_state(self) -> ConfState | None:
        raw = self.kv.meta_get(CONF_STATE_KEY)
        return None if raw is None else codec.decode(raw)

    def apply(
        self,
        batch: ApplyBatch,
        entries: Sequence[Entry],
        apply_conf_change: Callable[[ConfChange], ConfState],
    ) -> ApplyOutcome:
        """Apply into `batch`, an open page-file transaction the caller commits (etcd's backend batches:
        the WAL already holds these entries durably, so the page file may lag and be committed in bulk)."""
        out = ApplyOutcome()
        if not entries:
            return out
        ci = self.kv.consistent_index
        for e in entries:
            out.last_index, out.last_term = e.index, e.term
            if e.type == EntryType.CONF_CHANGE:
                cc = _decode_as(e, ConfChange)
                if cc is None:  # never proposed by a member of ours: consumed, no effect
                    if e.index > ci:
                        batch.set_consistent_index(e.index, e.term)
                    continue
                cs = apply_conf_change(cc)
                out.conf_changed = True
                out.conf_change_ids.append(cc.id)
                if self.already_applied(e.index, ci):
                    continue
                self._apply_conf_change(batch, cc, cs)
                if cc.type == ConfChangeType.REMOVE_NODE and cc.node_id == self.self_id:
                    out.removed_self = True
            elif self.already_applied(e.index, ci):
                continue  # its effect is already in the page file (replay after a restart)
            elif e.type == EntryType.NORMAL and e.data:
                req = _decode_as(e, RaftRequest)
                if req is not None:
                    out.applied.append(Applied(req, self._apply_request(batch, req)))
            batch.set_consistent_index(e.index, e.term)
        return out

    # ------------------------------------------------------------------ requests

    def _apply_request(self, batch: ApplyBatch, req: RaftRequest) -> Any:
        p = req.payload
        try:
            if isinstance(p, MemberAttributes):
                return self._publish(batch, p)
            if isinstance(p, AlarmRequest):
                return self.alarms.apply(batch, p)
            refused = self.alarms.refuse(p)  # NOSPACE / CORRUPT (etcd's capped and corrupt appliers)
            if refused is not None:
                return refused
            if self.lessor is not None and type(p) in LEASE_APPLY:
                return apply_with_leases(self.lessor, batch, p)
            apply = _KV_APPLY.get(type(p))
            if apply is None:
                return errors.InvalidRequestError(f"etcdserver: unknown request {type(p).__name__}")
            return apply(batch, p)
        except errors.EtcdError as exc:
            log.warning("failed to apply request: %s (%s)", exc, type(p).__name__)
            return exc

    def _publish(self, batch: ApplyBatch, attrs_: MemberAttributes) -> None:
        old = self.members.get(attrs_.member_id)
        if old is None:  # a removed member's late publish
            return None
        new = attrs.evolve(old, name=attrs_.name, client_urls=attrs_.client_urls)
        self._store_member(batch, new)
        return None

    # ------------------------------------------------------------------ membership

    def _store_member(self, batch: ApplyBatch, m: Member) -> None:
        self.members[m.id] = m
        batch.bucket_put(MEMBERS_BUCKET, member_key(m.id), codec.encode(m))

    def _apply_conf_change(self, batch: ApplyBatch, cc: ConfChange, cs: ConfState) -> None:
        batch.meta_put(CONF_STATE_KEY, codec.encode(cs))
        if cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER):
            m = codec.decode(cc.context) if cc.context else Member(cc.node_id)
            is_learner = cc.type == ConfChangeType.ADD_LEARNER
            old = self.members.get(cc.node_id)
            if old is not None and cc.type == ConfChangeType.ADD_NODE:
                self._store_member(batch, attrs.evolve(old, is_learner=False))  # a promotion
            else:
                self._store_member(batch, attrs.evolve(m, id=cc.node_id, is_learner=is_learner))
        elif cc.type == ConfChangeType.PROMOTE_LEARNER:
            old = self.members.get(cc.node_id)
            if old is not None:
                self._store_member(batch, attrs.evolve(old, is_learner=False))
        elif cc.type == ConfChangeType.UPDATE_NODE:
            old = self.members.get(cc.node_id)
            upd: Member = codec.decode(cc.context) if cc.context else Member(cc.node_id)
            if old is not None:
                self._store_member(batch, attrs.evolve(old, peer_urls=upd.peer_urls))
        elif cc.type == ConfChangeType.REMOVE_NODE:
            self.members.pop(cc.node_id, None)
            self.removed.add(cc.node_id)
            batch.bucket_delete(MEMBERS_BUCKET, member_key(cc.node_id))
            batch.bucket_put(REMOVED_BUCKET, member_key(cc.node_id), b"")
