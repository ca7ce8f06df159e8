"""Request building shared by both client transports, with no trio in sight.

The Trio client (`trikv.client`) and the blocking transport (`trikv.blocking`, what trikvctl's unary
commands use so they start without importing trio) build the same typed requests (`trikv.api.rpc`
shapes) with the same etcd rules for key ranges, and report the same client-side errors.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from trikv.api import errors, protocol, rpc

KeyLike = str | bytes

# The largest frame a client sends (etcd's client: max-request-bytes + 512 KiB = 2 MiB), and the
# largest it accepts (etcd's client: MaxInt32; a big range response must not kill the connection).
DEFAULT_MAX_SEND_BYTES = protocol.DEFAULT_MAX_REQUEST_BYTES + protocol.FRAME_OVERHEAD_BYTES
DEFAULT_MAX_RECV_BYTES = 2**31 - 1

# Errors that prove a write was not proposed: the server refused it at the door.
SAFE_WRITE_RETRY: tuple[type[errors.EtcdError], ...] = (
    errors.NoLeaderError,
    errors.NotCapableError,
    errors.NotSupportedForLearnerError,
)


class MessageTooLargeError(errors.ClientError):
    """A request larger than the transport's frame limit; refused locally, it never left (etcd wording)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            "rpc error: code = ResourceExhausted desc = "
            f"trying to send message larger than max ({size} vs. {limit})"
        )
        self.size = size
        self.limit = limit


class DeadlineExceededError(errors.ClientError):
    """The request deadline passed before an answer (and, for writes, before the request was sent)."""

    def __init__(self, message: str = "context deadline exceeded") -> None:
        super().__init__(message)


def to_bytes(data: KeyLike) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"expected str or bytes, got {type(data).__name__}")


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's GetPrefixRangeEnd: the first key after every key that starts with `prefix`."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    # Empty or all 0xff: no upper bound, i.e. "to the end of the key space".
    return b"\0"


def key_range(
    key: KeyLike, range_end: KeyLike | None = None, *, prefix: bool = False, from_key: bool = False
) -> tuple[bytes, bytes]:
    """(key, range_end) with etcdctl's rules for --prefix and --from-key (empty key means everything)."""
    k = to_bytes(key)
    if prefix and from_key:
        raise ValueError("prefix and from_key cannot both be set")
    if prefix or from_key:
        if range_end is not None:
            raise ValueError("range_end cannot be combined with prefix or from_key")
        if not k:
            return b"\0", b"\0"
        return k, (prefix_range_end(k) if prefix else b"\0")
    return k, (b"" if range_end is None else to_bytes(range_end))


def split_endpoint(endpoint: str) -> tuple[str, str, int]:
    """'host:port' or 'http://host:port' (etcdctl's forms) -> (WebSocket scheme, host, port)."""
    text = endpoint.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        port = None
        parts = None
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme if parts else "")
    if parts is None or scheme is None or not parts.hostname or port is None:
        raise errors.ConfigError(f"bad endpoint {endpoint!r}: expected host:port or http://host:port")
    return scheme, parts.hostname, port


def parse_endpoint(endpoint: str) -> str:
    """'host:port' or 'http://host:port' (etcdctl's forms) -> the WebSocket URL on the client port."""
    scheme, hostname, port = split_endpoint(endpoint)
    host = f"[{hostname}]" if ":" in hostname else hostname
    return f"{scheme}://{host}:{port}{protocol.WS_PATH}"


def array_header(n: int) -> bytes:
    """CBOR major type 4 (array) header, so a frame is built by concatenating pre-encoded items."""
    if n < 24:
        return bytes((0x80 | n,))
    if n < 0x100:
        return bytes((0x98, n))
    if n < 0x10000:
        return b"\x99" + n.to_bytes(2, "big")
    return b"\x9a" + n.to_bytes(4, "big")


def put_op(
    key: KeyLike,
    value: KeyLike = b"",
    *,
    lease: int = 0,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
) -> rpc.PutRequest:
    return rpc.PutRequest(to_bytes(key), to_bytes(value), lease, prev_kv, ignore_value, ignore_lease)


def get_op(
    key: KeyLike,
    range_end: KeyLike | None = None,
    *,
    prefix: bool = False,
    from_key: bool = False,
    revision: int = 0,
    limit: int = 0,
    serializable: bool = False,
    keys_only: bool = False,
    count_only: bool = False,
    sort_order: rpc.SortOrder = rpc.SortOrder.NONE,
    sort_target: rpc.SortTarget = rpc.SortTarget.KEY,
) -> rpc.RangeRequest:
    k, end = key_range(key, range_end, prefix=prefix, from_key=from_key)
    if sort_target == rpc.SortTarget.KEY and sort_order == rpc.SortOrder.ASCEND:
        # Keys come back ascending anyway; asking for the sort makes the server sort the whole range.
        sort_order = rpc.SortOrder.NONE
    return rpc.RangeRequest(
        k,
        end,
        limit=limit,
        revision=max(revision, 0),
        sort_order=sort_order,
        sort_target=sort_target,
        serializable=serializable,
        keys_only=keys_only,
        count_only=count_only,
    )


def delete_op(
    key: KeyLike,
    range_end: KeyLike | None = None,
    *,
    prefix: bool = False,
    from_key: bool = False,
    prev_kv: bool = False,
) -> rpc.DeleteRangeRequest:
    k, end = key_range(key, range_end, prefix=prefix, from_key=from_key)
    return rpc.DeleteRangeRequest(k, end, prev_kv)
