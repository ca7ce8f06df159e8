"""The typed error hierarchy.

Server errors mirror etcd's `api/v3rpc/rpctypes`: each class carries the gRPC status code etcd uses and
etcd's exact message, so clients, the CLI and the JSON gateway print what etcd prints. Errors are raised
as these types inside the server and mapped to wire form once, at the edge (`to_wire` / `from_wire`).
Local errors (storage corruption, bad configuration) are typed too but never cross the wire.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class GrpcCode(enum.IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class TrikvError(Exception):
    """Base of every error trikv raises on purpose."""


# --------------------------------------------------------------------------- server (wire) errors


class EtcdError(TrikvError):
    """An error with etcd's gRPC code and message; these are the ones that cross the wire."""

    code: ClassVar[GrpcCode] = GrpcCode.UNKNOWN
    message: ClassVar[str] = "etcdserver: unknown error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)

    @property
    def text(self) -> str:
        return str(self.args[0])


_BY_MESSAGE: dict[str, type[EtcdError]] = {}


def _etcd(name: str, code: GrpcCode, message: str, base: type[EtcdError] = EtcdError) -> type[EtcdError]:
    cls = type(name, (base,), {"code": code, "message": message, "__doc__": message})
    _BY_MESSAGE[message] = cls
    return cls


class UnavailableError(EtcdError):
    """Errors a client may retry elsewhere (gRPC Unavailable)."""

    code = GrpcCode.UNAVAILABLE


C = GrpcCode
EmptyKeyError = _etcd("EmptyKeyError", C.INVALID_ARGUMENT, "etcdserver: key is not provided")
KeyNotFoundError = _etcd("KeyNotFoundError", C.INVALID_ARGUMENT, "etcdserver: key not found")
ValueProvidedError = _etcd("ValueProvidedError", C.INVALID_ARGUMENT, "etcdserver: value is provided")
LeaseProvidedError = _etcd("LeaseProvidedError", C.INVALID_ARGUMENT, "etcdserver: lease is provided")
TTLZeroError = _etcd("TTLZeroError", C.INVALID_ARGUMENT, "etcdserver: ttl is 0")
InvalidSortOptionError = _etcd(
    "InvalidSortOptionError", C.INVALID_ARGUMENT, "etcdserver: invalid sort option"
)  # etcd >= 3.5's answer; etcd 3.4 has no check and fails at apply
TooManyOpsError = _etcd(
    "TooManyOpsError", C.INVALID_ARGUMENT, "etcdserver: too many operations in txn request"
)
DuplicateKeyError = _etcd(
    "DuplicateKeyError", C.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request"
)
CompactedError = _etcd(
    "CompactedError", C.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"
)
FutureRevError = _etcd(
    "FutureRevError", C.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"
)
NoSpaceError = _etcd("NoSpaceError", C.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")

LeaseNotFoundError = _etcd("LeaseNotFoundError", C.NOT_FOUND, "etcdserver: requested lease not found")
LeaseExistError = _etcd("LeaseExistError", C.FAILED_PRECONDITION, "etcdserver: lease already exists")
LeaseTTLTooLargeError = _etcd("LeaseTTLTooLargeError", C.OUT_OF_RANGE, "etcdserver: too large lease TTL")

MemberExistError = _etcd("MemberExistError", C.FAILED_PRECONDITION, "etcdserver: member ID already exist")
PeerURLExistError = _etcd("PeerURLExistError", C.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists")
MemberNotEnoughStartedError = _etcd(
    "MemberNotEnoughStartedError",
    C.FAILED_PRECONDITION,
    "etcdserver: re-configuration failed due to not enough started members",
)
MemberBadURLsError = _etcd(
    "MemberBadURLsError", C.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid"
)
MemberNotFoundError = _etcd("MemberNotFoundError", C.NOT_FOUND, "etcdserver: member not found")
MemberNotLearnerError = _etcd(
    "MemberNotLearnerError", C.FAILED_PRECONDITION, "etcdserver: can only promote a learner member"
)
LearnerNotReadyError = _etcd(
    "LearnerNotReadyError",
    C.FAILED_PRECONDITION,
    "etcdserver: can only promote a learner member which is in sync with leader",
)
TooManyLearnersError = _etcd(
    "TooManyLearnersError", C.FAILED_PRECONDITION, "etcdserver: too many learner members in cluster"
)
RequestTooLargeError = _etcd("RequestTooLargeError", C.INVALID_ARGUMENT, "etcdserver: request is too large")
TooManyRequestsError = _etcd("TooManyRequestsError", C.RESOURCE_EXHAUSTED, "etcdserver: too many requests")

NoLeaderError = _etcd("NoLeaderError", C.UNAVAILABLE, "etcdserver: no leader", UnavailableError)
NotLeaderError = _etcd("NotLeaderError", C.FAILED_PRECONDITION, "etcdserver: not leader")
LeaderChangedError = _etcd(
    "LeaderChangedError", C.UNAVAILABLE, "etcdserver: leader changed", UnavailableError
)
NotCapableError = _etcd("NotCapableError", C.UNAVAILABLE, "etcdserver: not capable", UnavailableError)
StoppedError = _etcd("StoppedError", C.UNAVAILABLE, "etcdserver: server stopped", UnavailableError)
TimeoutError_ = _etcd("TimeoutError_", C.UNAVAILABLE, "etcdserver: request timed out", UnavailableError)
TimeoutDueToLeaderFailError = _etcd(
    "TimeoutDueToLeaderFailError",
    C.UNAVAILABLE,
    "etcdserver: request timed out, possibly due to previous leader failure",
    UnavailableError,
)
TimeoutDueToConnectionLostError = _etcd(
    "TimeoutDueToConnectionLostError",
    C.UNAVAILABLE,
    "etcdserver: request timed out, possibly due to connection lost",
    UnavailableError,
)
UnhealthyError = _etcd("UnhealthyError", C.UNAVAILABLE, "etcdserver: unhealthy cluster", UnavailableError)
CorruptError = _etcd("CorruptError", C.DATA_LOSS, "etcdserver: corrupt cluster")
NotSupportedForLearnerError = _etcd(
    "NotSupportedForLearnerError",
    C.UNAVAILABLE,
    "etcdserver: rpc not supported for learner",
    UnavailableError,
)
LeaderTransferTimeoutError = _etcd(
    "LeaderTransferTimeoutError",
    C.UNAVAILABLE,
    "etcdserver: request timed out, leader transfer took too long",
    UnavailableError,
)
BadLeaderTransfereeError = _etcd(
    "BadLeaderTransfereeError", C.FAILED_PRECONDITION, "etcdserver: bad leader transferee"
)
PermissionDeniedError = _etcd("PermissionDeniedError", C.PERMISSION_DENIED, "etcdserver: permission denied")
del C


class InternalError(EtcdError):
    """A server bug surfaced to the client (gRPC Internal); the traceback is in the server's log."""

    code = GrpcCode.INTERNAL
    message = "etcdserver: internal error"


class InvalidRequestError(EtcdError):
    """A malformed request (bad frame, wrong field types); the message names the problem."""

    code = GrpcCode.INVALID_ARGUMENT
    message = "etcdserver: invalid request"


class ClusterIdMismatchError(EtcdError):
    """A peer or client from another cluster (different token); message carries both ids."""

    code = GrpcCode.FAILED_PRECONDITION
    message = "etcdserver: cluster ID mismatch"


def to_wire(err: EtcdError) -> dict[str, object]:
    return {"code": int(err.code), "message": err.text}


def from_wire(payload: dict[str, object]) -> EtcdError:
    """Rebuild the typed error from its wire form; unknown messages keep their text and code."""
    message = str(payload.get("message", ""))
    cls = _BY_MESSAGE.get(message)
    if cls is not None:
        return cls()
    try:
        code = GrpcCode(int(payload.get("code", GrpcCode.UNKNOWN)))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        code = GrpcCode.UNKNOWN
    base: type[EtcdError] = UnavailableError if code == GrpcCode.UNAVAILABLE else EtcdError
    err = type("RemoteError", (base,), {"code": code})(message)
    return err


# --------------------------------------------------------------------------- client-side errors


class ClientError(TrikvError):
    """Raised by the client library itself, not by a server."""


class OutcomeUnknownError(ClientError):
    """The request may or may not have been applied: the connection broke after it was sent."""


class NoEndpointsError(ClientError):
    """None of the endpoints could be reached."""


# --------------------------------------------------------------------------- local errors


class StorageError(TrikvError):
    """Base for errors of the storage layer."""


class CorruptionError(StorageError):
    """A file holds data that fails its checksum or structure where a torn tail cannot explain it."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path}: corrupt at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class LockedError(StorageError):
    """Another process holds the data directory."""


class ConfigError(TrikvError):
    """A bad configuration: the message names the key and the problem."""

    def __init__(self, message: str) -> None:
        # One line whatever it quotes: a newline in a flag, variable or YAML value starts no second line.
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))
