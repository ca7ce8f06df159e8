"""Member and cluster identities, computed exactly as etcd computes them.

Using etcd's derivation (not random ids) matters for two reasons: every founding member computes the same
ids from the same `initial-cluster` + token without talking to anybody, and `member list` / `endpoint status`
print the ids a real etcd cluster with the same configuration would print (e.g. 8e9e05c52164694d for the
default single node), so transcripts stay comparable.

- member id: sha1(sorted peer URLs concatenated + cluster token [+ unix seconds for `member add`]), first 8
  bytes big-endian.
- cluster id: sha1(the sorted member ids, 8 bytes big-endian each), first 8 bytes big-endian.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from trikv.api.errors import ConfigError

__all__ = [
    "cluster_id",
    "format_id",
    "initial_member_ids",
    "member_id",
    "parse_id",
    "parse_initial_cluster",
]

_U64 = (1 << 64) - 1


def _first_u64(data: bytes) -> int:
    return int.from_bytes(hashlib.sha1(data).digest()[:8], "big")


def member_id(peer_urls: Iterable[str], token: str, now: float | None = None) -> int:
    """etcd's member id for a member with these peer URLs in the cluster named by `token`.

    `now` (unix time, seconds; truncated like Go's `time.Unix()`) is given only by `member add`, so that a
    member re-added with the same URLs gets a fresh id.
    """
    urls = sorted(peer_urls)
    if not urls:
        raise ConfigError("a member needs at least one peer URL")
    data = "".join(urls).encode() + token.encode()
    if now is not None:
        data += str(int(now)).encode()
    return _first_u64(data)


def cluster_id(member_ids: Iterable[int]) -> int:
    """etcd's cluster id: a hash of the founding member ids (order-independent); never 0."""
    ids = sorted(member_ids)
    if not ids:
        raise ConfigError("a cluster needs at least one member")
    for i in ids:
        if not 0 < i <= _U64:
            raise ConfigError(f"member id {i} is not a non-zero 64-bit unsigned integer")
    cid = _first_u64(b"".join(i.to_bytes(8, "big") for i in ids))
    # 0 means "no cluster yet" on the wire; sha1 making 0 is astronomically unlikely, but keep the promise.
    return cid or 1


def format_id(value: int) -> str:
    """Lower-case hex without padding, as etcd prints ids (types.ID.String)."""
    if not 0 <= value <= _U64:
        raise ValueError(f"id {value} does not fit in 64 bits")
    return format(value, "x")


def parse_id(text: str) -> int:
    """Parse a hex id as `etcdctl member remove <id>` takes it."""
    try:
        value = int(text, 16)
    except ValueError:
        raise ConfigError(f"invalid member id {text!r}: not a hexadecimal number") from None
    if not 0 < value <= _U64:
        raise ConfigError(f"invalid member id {text!r}: out of range")
    return value


def parse_initial_cluster(text: str) -> dict[str, tuple[str, ...]]:
    """Parse `name1=url1,name1=url2,name2=url3` into {name: urls}, keeping first-seen order.

    A name may repeat (one member with several peer URLs). Only the shape is checked here; URL syntax is
    checked by the configuration loader, which knows which key the string came from.
    """
    out: dict[str, list[str]] = {}
    if not text.strip():
        raise ConfigError("initial-cluster is empty")
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise ConfigError(f"initial-cluster {text!r} has an empty entry")
        name, sep, url = item.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not name or not url:
            raise ConfigError(f"initial-cluster entry {item!r} is not of the form name=url")
        urls = out.setdefault(name, [])
        if url in urls:
            raise ConfigError(f"initial-cluster lists {name}={url} twice")
        urls.append(url)
    return {name: tuple(urls) for name, urls in out.items()}


def initial_member_ids(cluster: Mapping[str, Iterable[str]], token: str) -> dict[str, int]:
    """The ids every founding member derives for {name: peer urls}; rejects two members with one id.

    Two names sharing identical peer URLs would collide; etcd refuses that cluster too.
    """
    ids: dict[str, int] = {}
    seen: dict[int, str] = {}
    for name, urls in cluster.items():
        mid = member_id(urls, token)
        if mid in seen:
            raise ConfigError(
                f"initial-cluster members {seen[mid]!r} and {name!r} have the same peer URLs (same member id)"
            )
        seen[mid] = name
        ids[name] = mid
    return ids


def valid_peer_url(url: str) -> bool:
    """A member URL as etcd accepts it in `member add/update`: http(s)://host:port, nothing more."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and port is not None
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
    )
