"""gRPC statuses at the edge: every error a gRPC call can end with, as (grpc-status, grpc-message).

trikv's typed errors (trikv.api.errors) already carry etcd's gRPC code and exact message, so the table is
the errors module itself: `status_of` maps any exception once, here, and nothing else in the gRPC layer
formats an error. etcd's clients act on the code (clientv3 retries immutable requests on Unavailable) and
etcdctl prints the message verbatim, so both must be etcd's. Transport-level statuses (unknown method,
oversized message, deadline) are `GrpcStatus` raised by the server itself, worded as grpc-go words them.
"""

from __future__ import annotations

import logging

from trikv.api import errors
from trikv.api.errors import GrpcCode

log = logging.getLogger("trikv.grpc")


class GrpcStatus(Exception):
    """A status the gRPC transport answers by itself (not one of etcd's errors)."""

    def __init__(self, code: GrpcCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def unimplemented_method(service: str, method: str) -> GrpcStatus:
    return GrpcStatus(GrpcCode.UNIMPLEMENTED, f"unknown method {method} for service {service}")


def unknown_service(service: str) -> GrpcStatus:
    return GrpcStatus(GrpcCode.UNIMPLEMENTED, f"unknown service {service}")


def too_large(size: int, limit: int) -> GrpcStatus:
    """etcd's MaxRecvMsgSize (max-request-bytes + 512 KiB) exceeded: grpc-go's own words."""
    return GrpcStatus(
        GrpcCode.RESOURCE_EXHAUSTED, f"grpc: received message larger than max ({size} vs. {limit})"
    )


DEADLINE_EXCEEDED = GrpcStatus(GrpcCode.DEADLINE_EXCEEDED, "context deadline exceeded")
CANCELLED = GrpcStatus(GrpcCode.CANCELLED, "context canceled")


def status_of(exc: BaseException) -> tuple[int, str]:
    """(grpc-status, grpc-message) for an exception raised while serving a call."""
    if isinstance(exc, BaseExceptionGroup):  # a streaming handler's nursery: its first typed error wins
        group, _ = exc.split((GrpcStatus, errors.EtcdError))
        leaf: BaseException | None = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        if leaf is not None:
            return status_of(leaf)
    if isinstance(exc, GrpcStatus):
        return int(exc.code), exc.message
    if isinstance(exc, errors.EtcdError):
        return int(exc.code), exc.text
    log.error("gRPC call failed", exc_info=exc)  # a bug: the traceback stays in the server's log
    err = errors.InternalError()
    return int(err.code), err.text


def percent_encode(message: str) -> str:
    """grpc-message encoding (gRPC's HTTP/2 spec): UTF-8, bytes outside 0x20-0x7E and '%' as %XX."""
    out = []
    for b in message.encode("utf-8"):
        if 0x20 <= b <= 0x7E and b != 0x25:
            out.append(chr(b))
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def percent_decode(text: str) -> str:
    """The inverse of percent_encode (for tests and clients); malformed escapes stay as they are."""
    raw = text.encode("ascii", "replace")
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw):
            try:
                out.append(int(raw[i + 1 : i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    return out.decode("utf-8", "replace")


__all__ = [
    "CANCELLED",
    "DEADLINE_EXCEEDED",
    "GrpcStatus",
    "percent_decode",
    "percent_encode",
    "status_of",
    "too_large",
    "unimplemented_method",
    "unknown_service",
]
