"""Member and cluster ids must equal real etcd's for the same configuration (values from etcd docs and the
etcd 3.4.23 reference run recorded in the project's etcd 3.4 reference)."""

from __future__ import annotations

import pytest

from trikv.actors.identity import (
    cluster_id,
    format_id,
    initial_member_ids,
    member_id,
    parse_id,
    parse_initial_cluster,
)
from trikv.api.errors import ConfigError

SEED_CLUSTER = (
    "etcdnode0=http://127.0.0.1:2380,etcdnode1=http://127.0.0.1:12380,etcdnode2=http://127.0.0.1:22380"
)


def test_default_single_node_id_matches_etcd_docs() -> None:
    assert format_id(member_id(["http://localhost:2380"], "etcd-cluster")) == "8e9e05c52164694d"


def test_reference_three_node_cluster_ids() -> None:
    ids = initial_member_ids(parse_initial_cluster(SEED_CLUSTER), "etcd-cluster")
    assert {n: format_id(i) for n, i in ids.items()} == {
        "etcdnode0": "b71f75320dc06a6c",
        "etcdnode1": "ddd67b312462fd7b",
        "etcdnode2": "9e737febb6b99eee",
    }
    # etcdctl -w json prints the decimal forms
    assert ids["etcdnode0"] == 13195394291058371180
    assert cluster_id(ids.values()) == 1622177361155699721
    assert format_id(cluster_id(ids.values())) == "168321b71e5db409"


def test_reference_restored_single_node() -> None:
    mid = member_id(["http://127.0.0.1:42380"], "etcd-cluster-restored")
    assert format_id(mid) == "40793b7364d73e11"
    assert mid == 4645809857408482833
    assert format_id(cluster_id([mid])) == "d95508c9606929f4"


def test_member_id_is_deterministic_and_url_order_independent() -> None:
    a = member_id(["http://127.0.0.1:2380", "http://10.0.0.1:2380"], "t")
    b = member_id(["http://10.0.0.1:2380", "http://127.0.0.1:2380"], "t")
    assert a == b
    assert a != member_id(["http://127.0.0.1:2380"], "t")
    assert 0 < a < 1 << 64


def test_token_changes_member_and_cluster_ids() -> None:
    c = parse_initial_cluster(SEED_CLUSTER)
    one = initial_member_ids(c, "etcd-cluster")
    two = initial_member_ids(c, "another-token")
    assert all(one[n] != two[n] for n in c)
    assert cluster_id(one.values()) != cluster_id(two.values())


def test_member_add_time_makes_a_fresh_but_deterministic_id() -> None:
    urls = ["http://127.0.0.1:32380"]
    plain = member_id(urls, "etcd-cluster")
    at = member_id(urls, "etcd-cluster", now=1795772520.9)
    assert at != plain
    assert at == member_id(urls, "etcd-cluster", now=1795772520)  # whole seconds, like Go's Unix()
    assert at != member_id(urls, "etcd-cluster", now=1795772521)


def test_cluster_id_is_order_independent_and_checks_input() -> None:
    ids = [0xB71F75320DC06A6C, 0xDDD67B312462FD7B, 0x9E737FEBB6B99EEE]
    assert cluster_id(ids) == cluster_id(reversed(ids)) == cluster_id(sorted(ids))
    assert cluster_id(ids) != cluster_id(ids[:2])
    with pytest.raises(ConfigError):
        cluster_id([])
    with pytest.raises(ConfigError):
        cluster_id([0])


def test_format_and_parse_id() -> None:
    assert format_id(0x628170C800DBCEE) == "628170c800dbcee"  # no zero padding, as etcd prints
    assert format_id(1) == "1"
    assert parse_id("628170c800dbcee") == 0x628170C800DBCEE
    assert parse_id(format_id(2**64 - 1)) == 2**64 - 1
    for bad in ("xyz", "", "0", "1" + "0" * 16):
        with pytest.raises(ConfigError):
            parse_id(bad)
    with pytest.raises(ValueError):
        format_id(-1)


def test_parse_initial_cluster_shapes() -> None:
    assert parse_initial_cluster("a=http://h:1,b=http://h:2,a=http://h:3") == {
        "a": ("http://h:1", "http://h:3"),
        "b": ("http://h:2",),
    }
    assert parse_initial_cluster(" a = http://h:1 ") == {"a": ("http://h:1",)}
    for bad, needle in [
        ("", "empty"),
        ("a=http://h:1,,b=http://h:2", "empty entry"),
        ("a", "name=url"),
        ("=http://h:1", "name=url"),
        ("a=", "name=url"),
        ("a=http://h:1,a=http://h:1", "twice"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            parse_initial_cluster(bad)


def test_two_members_with_the_same_urls_are_rejected() -> None:
    with pytest.raises(ConfigError, match="same peer URLs"):
        initial_member_ids({"a": ("http://h:1",), "b": ("http://h:1",)}, "t")
    with pytest.raises(ConfigError):
        member_id([], "t")
