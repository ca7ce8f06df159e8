"""The initial cluster: member names, each member's peer URLs, and this member's place among them.

Why apart from the rest of the checks: every founding member must derive the same member and cluster ids
from this one value (identity.py), so it is checked as a whole, with etcd's messages.
"""

from __future__ import annotations

from trikv.actors import identity
from trikv.actors.config_values import check_urls
from trikv.api.errors import ConfigError


def check_name(name: str) -> str:
    """A member name as etcd accepts it (empty keeps the default, as in an etcd file)."""
    name = name or "default"
    if any(c in name for c in ",=") or name != name.strip():
        raise ConfigError(
            f"invalid name {name!r}: a member name must not contain ',' or '=' or surrounding spaces"
        )
    return name


def initial_cluster(
    cluster_text: str, name: str, adv_peer: tuple[str, ...], token: str
) -> dict[str, tuple[str, ...]]:
    """{member name: peer URLs} from --initial-cluster (empty: this member alone at its advertised URLs)."""
    if cluster_text:
        raw_cluster = identity.parse_initial_cluster(cluster_text)
        cluster = {n: check_urls("initial-cluster", list(us), listen=False) for n, us in raw_cluster.items()}
    else:
        cluster = {name: adv_peer}
    owners: dict[str, str] = {}
    for member, member_urls in cluster.items():
        for u in member_urls:
            if u in owners:
                raise ConfigError(
                    f"initial cluster {cluster_text!r} has duplicate url {u} ({owners[u]} and {member})"
                )
            owners[u] = member
    if name not in cluster:
        raise ConfigError(f'couldn\'t find local name "{name}" in the initial cluster configuration')
    if sorted(cluster[name]) != sorted(adv_peer):
        mine = ",".join(f"{name}={u}" for u in cluster[name])
        raise ConfigError(
            f"--initial-cluster has {mine} but missing from --initial-advertise-peer-urls={','.join(adv_peer)} "
            "(the URL lists differ)"
        )
    identity.initial_member_ids(cluster, token)  # rejects two members with the same URLs
    return cluster
