"""Server configuration (actors.config) and structured logging (actors.logsetup).

Nothing here opens a socket: configs that name 0.0.0.0 or 192.168.235.128 (the seed tutorial) are only parsed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from trikv.actors.config import (
    CONFIG_FILE_LOADED,
    DEFAULT_QUOTA_BYTES,
    HelpRequested,
    InfoRequested,
    ServerConfig,
    VersionRequested,
    config_from_file,
    load_config,
)
from trikv.actors.identity import format_id
from trikv.actors.logsetup import THIRD_PARTY_ENV, THIRD_PARTY_LOGGERS, get_logger, log, setup_logging
from trikv.actors.main import describe_failure, preflight
from trikv.api.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The seed tutorial's four etcd*.yaml blocks, and the files real etcd 3.4.23 ran with (copied from ../shared).
SEED_FILES = sorted((FIXTURES / "seed-configs").glob("etcd*.yaml"))
REFERENCE_FILES = sorted((FIXTURES / "etcd-configs").glob("*.yml"))
ETCD_SAMPLE = FIXTURES / "etcd.conf.yml.sample"  # etcd-io/etcd v3.4.23 etcd.conf.yml.sample, verbatim

# The seed tutorial's etcd0.yaml, verbatim (comments translated), including its broken last line.
SEED_ETCD0 = """\
# node name
name: "etcdnode0"
# data directory
data-dir: "/etcd-data/data"
# write-ahead log directory
wal-dir: "/etcd-data/wal"
listen-peer-urls: "http://0.0.0.0:2380"
listen-client-urls: "http://0.0.0.0:2379"
initial-advertise-peer-urls: "http://192.168.235.128:2380"
initial-cluster: "etcdnode0=http://192.168.235.128:2380,etcdnode1=http://192.168.235.128:12380,etcdnode2=http://192.168.235.128:22380"
initial-cluster-state: "new"
initial-cluster-token: "etcd-cluster"
advertise-client-urls: "http://192.168.235.128:2379"
logger: "zap"
# log level
log-level: "warn"
log-outputs:- "stderr"
"""

# /work/shared/reference/etcd-configs/etcdnode3.yml, verbatim: the file real etcd 3.4.23 ran with.
REFERENCE_NODE3 = """\
# etcd 3.4 config file (YAML), loaded with: etcd --config-file=etcdnode3.yml
name: 'etcdnode3'
data-dir: /tmp/etcdref/etcdnode3/data
wal-dir: /tmp/etcdref/etcdnode3/wal
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 0
listen-peer-urls: http://127.0.0.1:32380
listen-client-urls: http://127.0.0.1:32379
initial-advertise-peer-urls: http://127.0.0.1:32380
advertise-client-urls: http://127.0.0.1:32379
initial-cluster: 'etcdnode0=http://127.0.0.1:2380,etcdnode1=http://127.0.0.1:12380,etcdnode2=http://127.0.0.1:22380,etcdnode3=http://127.0.0.1:32380'
initial-cluster-token: 'etcd-cluster'
initial-cluster-state: 'existing'
strict-reconfig-check: true
enable-v2: false
enable-grpc-gateway: true
enable-pprof: false
logger: zap
log-outputs: [stderr]
log-level: info
"""

MINIMAL = 'name: "n1"\ninitial-cluster: "n1=http://127.0.0.1:2380"\n'


def write(tmp_path: Path, text: str, name: str = "conf.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def file_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as ei:
        config_from_file(write(tmp_path, text))
    msg = str(ei.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


def flag_error(argv: list[str], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as ei:
        load_config(argv, env or {})
    msg = str(ei.value)
    assert "\n" not in msg and msg
    return msg


# --------------------------------------------------------------------------- defaults


def test_defaults_are_etcds_on_loopback() -> None:
    c = load_config([], {})
    assert c.name == "default"
    assert c.data_dir == "default.trikv"
    assert c.listen_client_urls == ("http://127.0.0.1:2379",)
    assert c.listen_peer_urls == ("http://127.0.0.1:2380",)
    assert c.advertise_client_urls == ("http://127.0.0.1:2379",)
    assert c.initial_advertise_peer_urls == ("http://127.0.0.1:2380",)
    assert c.initial_cluster == {"default": ("http://127.0.0.1:2380",)}
    assert c.initial_cluster_state == "new"
    assert c.initial_cluster_token == "etcd-cluster"
    assert (c.heartbeat_interval_ms, c.election_timeout_ms) == (100, 1000)
    assert c.snapshot_count == 100000
    assert c.quota_bytes == DEFAULT_QUOTA_BYTES == 2 * 1024**3
    assert c.max_request_bytes == 1572864
    assert c.max_wals == 5
    assert c.max_txn_ops == 128
    assert c.wal_dir == Path("default.trikv/member/wal")
    assert c.snap_dir == Path("default.trikv/member/snap")
    assert c.db_path == Path("default.trikv/member/snap/db")
    assert (c.tick_ms, c.election_ticks, c.heartbeat_ticks) == (100, 10, 1)
    assert c.peer_listen == (("127.0.0.1", 2380),)
    assert c.client_listen == (("127.0.0.1", 2379),)
    assert c.log_level == "info" and c.log_outputs == ("default",) and c.logger == "zap"
    assert c.compaction_retention is None
    assert c.warnings == () and c.config_file is None


def test_name_drives_data_dir_and_initial_cluster() -> None:
    c = load_config(["--name", "infra1", "--initial-advertise-peer-urls", "http://127.0.0.1:12380"], {})
    assert c.data_dir == "infra1.trikv"
    assert c.initial_cluster == {"infra1": ("http://127.0.0.1:12380",)}
    assert c.member_id == c.initial_member_ids["infra1"]


# --------------------------------------------------------------------------- flags and environment


def test_flag_forms_and_bare_booleans() -> None:
    c = load_config(
        [
            "--name=n1",
            "-data-dir",
            "/x/d",
            "--wal-dir",
            "/x/w",
            "--heartbeat-interval=50",
            "--election-timeout",
            "500",
            "--strict-reconfig-check=false",
            "--enable-grpc-gateway",
            "--log-outputs=stderr,/tmp/never-opened.log",
            "--initial-cluster=n1=http://127.0.0.1:2380",
        ],
        {},
    )
    assert c.name == "n1" and c.data_dir == "/x/d" and c.wal_dir == Path("/x/w")
    assert (c.tick_ms, c.election_ticks) == (50, 10)
    assert c.strict_reconfig_check is False and c.enable_grpc_gateway is True
    assert c.log_outputs == ("stderr", "/tmp/never-opened.log")


def test_etcd_env_vars_flags_win_over_defaults() -> None:
    env = {
        "ETCD_NAME": "from-env",
        "ETCD_DATA_DIR": "/d",
        "TRIKV_SNAPSHOT_COUNT": "42",  # trikv's alias prefix
        "ETCD_LOG_LEVEL": "debug",
        "ETCD_INITIAL_CLUSTER": "from-env=http://127.0.0.1:2380",
        "ETCD_INITIAL_CLUSTER_STATE": "existing",
        "PATH": "/bin",
        "ETCDCTL_ENDPOINTS": "127.0.0.1:2379",  # etcdctl's, not ours: not "unrecognized"
        "TRIKV_DEBUG_THIRD_PARTY": "1",  # read by logsetup
    }
    c = load_config(["--heartbeat-interval=50"], env)
    assert (c.name, c.data_dir, c.snapshot_count, c.log_level) == ("from-env", "/d", 42, "debug")
    assert c.initial_cluster_state == "existing" and c.tick_ms == 50
    assert c.warnings == ()
    used = sorted(msg for level, msg, _ in c.notices if level == "info")
    assert "recognized and used environment variable ETCD_NAME=from-env" in used
    assert "recognized and used environment variable TRIKV_SNAPSHOT_COUNT=42" in used
    assert len(used) == 6


def test_env_var_shadowed_by_a_flag_is_refused_as_etcd_34_does() -> None:
    # etcd 3.4.23 pkg/flags verifyEnv: plog.Fatalf (exit 1), not the warning of etcd <= 3.3.
    msg = flag_error(["--name", "from-flag"], {"ETCD_NAME": "from-env"})
    assert msg == (
        'conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag '
        "(either unset environment variable or disable flag)"
    )
    assert "TRIKV_DATA_DIR" in flag_error(["--data-dir=/x"], {"TRIKV_DATA_DIR": "/y"})
    # empty still counts as given for the shadow check, as in etcd
    assert "shadowed" in flag_error(["--name", "a"], {"ETCD_NAME": ""})


def test_unknown_and_empty_env_vars_are_warned_about_as_etcd_words_it() -> None:
    c = load_config([], {"ETCD_FOO": "bar", "TRIKV_BAZ": "1", "ETCD_WAL_DIR": "", "ETCD_NAME": "n"})
    assert c.name == "n" and c.wal_dir_option == ""
    assert c.warnings == (
        "unrecognized environment variable ETCD_FOO=bar",
        "unrecognized environment variable ETCD_WAL_DIR=",  # etcd does not use an empty variable
        "unrecognized environment variable TRIKV_BAZ=1",
    )


def test_a_bad_env_value_names_the_variable() -> None:
    assert flag_error([], {"ETCD_HEARTBEAT_INTERVAL": "fast"}) == (
        'invalid value "fast" for ETCD_HEARTBEAT_INTERVAL: expected an integer'
    )
    assert flag_error([], {"TRIKV_ENABLE_GRPC_GATEWAY": "maybe"}) == (
        'invalid value "maybe" for TRIKV_ENABLE_GRPC_GATEWAY: expected true or false'
    )


def test_etcd_and_trikv_aliases_must_agree() -> None:
    assert load_config([], {"ETCD_NAME": "a", "TRIKV_NAME": "a"}).name == "a"
    msg = flag_error([], {"ETCD_NAME": "a", "TRIKV_NAME": "b"})
    assert "ETCD_NAME=a" in msg and "TRIKV_NAME=b" in msg


def test_unimplemented_etcd_flags_are_named_in_one_warning() -> None:
    c = load_config(["--enable-v2", "--max-snapshots", "3", "--cors=*", "--quota-backend-bytes=1024"], {})
    assert c.name == "default"  # "3" was consumed by --max-snapshots, not taken as an argument
    assert c.quota_backend_bytes == 1024  # implemented (actors/quota.py): not in the warning
    assert c.warnings == (
        "flags / environment variables accepted and ignored (not implemented by trikv yet): "
        "--enable-v2, --max-snapshots, --cors",
    )
    c = load_config(["--auto-compaction-mode=revision", "--auto-compaction-retention=10"], {})
    assert c.compaction_retention == ("revision", 10.0)
    assert c.warnings == ()  # auto-compaction is implemented (actors/autocompact.py)
    legacy = load_config(["-force", "--peer-heartbeat-interval"], {})
    assert 'flag "-force" is no longer supported - ignoring.' in legacy.warnings


def test_max_txn_ops_and_strict_reconfig_check_are_parsed_not_warned() -> None:
    c = load_config(["--max-txn-ops=7", "--strict-reconfig-check=false"], {})
    assert c.max_txn_ops == 7 and c.strict_reconfig_check is False and c.warnings == ()
    d = load_config([], {})
    assert d.max_txn_ops == 128 and d.strict_reconfig_check is True


def test_a_flag_given_twice_keeps_the_last_value() -> None:
    c = load_config(["--name", "a", "--name=b", "--snapshot-count=5", "-snapshot-count", "6"], {})
    assert (c.name, c.snapshot_count) == ("b", 6) and c.warnings == ()


def test_advertising_0000_port_0_is_accepted_as_etcd_does() -> None:
    c = load_config(["--advertise-client-urls", "http://0.0.0.0:0"], {})
    assert c.advertise_client_urls == ("http://0.0.0.0:0",)
    # a peer URL must stay reachable: it is the member's identity
    assert "needs a real port" in flag_error(["--initial-advertise-peer-urls", "http://127.0.0.1:0"])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--listen-client-urls=https://127.0.0.1:2379", "--advertise-client-urls=https://127.0.0.1:2379"],
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 "
            "with HTTPS scheme",
        ),
        (
            ["--listen-peer-urls=https://127.0.0.1:2380"],
            "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url "
            "https://127.0.0.1:2380 with HTTPS scheme",
        ),
        (
            [
                "--listen-peer-urls=https://127.0.0.1:2380",
                "--initial-advertise-peer-urls=https://127.0.0.1:2380",
                "--peer-auto-tls",
            ],
            "--peer-auto-tls is not supported: trikv does not implement TLS yet (use http:// URLs)",
        ),
        (["--auto-tls"], "--auto-tls is not supported: trikv does not implement TLS yet"),
        (
            ["--auto-tls=false", "--cert-file=/c.pem"],
            "TLS is not implemented in trikv yet: --cert-file cannot",
        ),
        (["--peer-key-file", "/k.pem"], "TLS is not implemented in trikv yet: --peer-key-file cannot"),
        (
            ["--advertise-client-urls=https://127.0.0.1:2379"],
            "https URL https://127.0.0.1:2379 in advertise-client-urls",
        ),
        (
            ["--listen-client-urls=unix://localhost:2379", "--advertise-client-urls=http://127.0.0.1:2379"],
            "unix socket URLs are not supported by trikv",
        ),
        (["--discovery=https://discovery.etcd.io/x"], "discovery is not implemented in trikv"),
        (["--force-new-cluster"], "--force-new-cluster is not implemented in trikv"),
        (["--proxy=on"], "proxy mode is not implemented in trikv"),
    ],
)
def test_what_cannot_be_ignored_safely_refuses_to_start(argv: list[str], expected: str) -> None:
    assert expected in flag_error(argv)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--bogus=1"], "flag provided but not defined: --bogus"),
        (["-bogus"], "flag provided but not defined: -bogus"),
        (["--client-transport-security=x"], "flag provided but not defined"),  # a file-only key
        (["positional"], "'positional' is not a valid flag"),
        (["--enable-v2", "false"], "'false' is not a valid flag"),  # Go's flag: a bare boolean takes no value
        (["--name"], "flag needs an argument: --name"),
        (["--heartbeat-interval", "fast"], "invalid value for heartbeat-interval: 'fast' is not an integer"),
        (["--strict-reconfig-check=maybe"], "expected true or false"),
        (["--max-wals=-1"], "below 0"),
    ],
)
def test_flag_errors(argv: list[str], needle: str) -> None:
    assert needle in flag_error(argv)


def test_help_and_version_are_requests_not_errors() -> None:
    with pytest.raises(HelpRequested) as h:
        load_config(["--name", "x", "--help"], {})
    assert "--listen-client-urls" in h.value.text and "TRIKV_" in h.value.text
    with pytest.raises(HelpRequested):
        load_config(["-h"], {})
    with pytest.raises(VersionRequested) as v:
        load_config(["--version"], {})
    assert re.match(r"trikv Version: \d+\.\d+", v.value.text)
    assert isinstance(v.value, InfoRequested) and not isinstance(v.value, ConfigError)


# --------------------------------------------------------------------------- config files


def test_reference_config_real_etcd_ran_with(tmp_path: Path) -> None:
    c = config_from_file(write(tmp_path, REFERENCE_NODE3))
    assert c.name == "etcdnode3" and c.initial_cluster_state == "existing"
    assert c.snapshot_count == 10000 and c.quota_bytes == DEFAULT_QUOTA_BYTES
    assert c.data_dir == "/tmp/etcdref/etcdnode3/data"
    assert c.wal_dir == Path("/tmp/etcdref/etcdnode3/wal")
    assert c.db_path == Path("/tmp/etcdref/etcdnode3/data/member/snap/db")
    assert list(c.initial_cluster) == ["etcdnode0", "etcdnode1", "etcdnode2", "etcdnode3"]
    assert c.enable_grpc_gateway is True and c.strict_reconfig_check is True
    # enable-v2, enable-pprof: accepted, named in one warning (quota-backend-bytes is implemented)
    assert c.warnings == (
        "config keys accepted and ignored (not implemented by trikv yet): enable-v2, enable-pprof",
    )
    assert c.config_file is not None


def test_etcd_34_sample_config_loads_naming_every_ignored_key() -> None:
    c = config_from_file(ETCD_SAMPLE)
    assert c.name == "default" and c.data_dir == "default.trikv" and c.wal_dir_option == ""
    assert c.listen_client_urls == ("http://localhost:2379",)
    assert c.initial_cluster == {"default": ("http://localhost:2380",)}
    assert (c.snapshot_count, c.max_wals, c.strict_reconfig_check) == (10000, 5, False)
    assert c.compaction_retention == ("periodic", 3600.0) and c.log_outputs == ("stderr",)
    [warning] = c.warnings
    ignored = warning.split(": ", 1)[1].split(", ")
    assert warning.startswith("config keys accepted and ignored")
    assert ignored == [
        "max-snapshots",
        "cors",
        "discovery",
        "discovery-fallback",
        "discovery-proxy",
        "discovery-srv",
        "enable-v2",
        "enable-pprof",
        "proxy",
        "proxy-failure-wait",
        "proxy-refresh-interval",
        "proxy-dial-timeout",
        "proxy-write-timeout",
        "proxy-read-timeout",
        "client-transport-security",
        "peer-transport-security",
        "debug",
        "force-new-cluster",
    ]
    assert c.notices == (("info", CONFIG_FILE_LOADED, {"path": str(ETCD_SAMPLE)}),)


@pytest.mark.parametrize("path", REFERENCE_FILES, ids=lambda p: p.name)
def test_every_shared_reference_config_parses(path: Path) -> None:
    c = config_from_file(path)
    assert c.name == path.stem
    assert c.initial_cluster[c.name] == c.initial_advertise_peer_urls


def test_reference_ids_match_real_etcd(tmp_path: Path) -> None:
    # real etcd 3.4.23 with configs/etcdnode0.yml printed member b71f75320dc06a6c in cluster 168321b71e5db409
    c = config_from_file(CONFIGS / "node0.yaml")
    assert format_id(c.member_id) == "b71f75320dc06a6c"
    assert format_id(c.cluster_id) == "168321b71e5db409"


@pytest.mark.parametrize("i", [0, 1, 2, 3])
def test_repo_configs(i: int) -> None:
    c = config_from_file(CONFIGS / f"node{i}.yaml")
    assert c.warnings == ()
    assert c.name == f"etcdnode{i}"
    port = 2379 + 10000 * i
    assert c.client_listen == (("127.0.0.1", port),)
    assert c.peer_listen == (("127.0.0.1", port + 1),)
    assert c.advertise_client_urls == (f"http://127.0.0.1:{port}",)
    assert c.data_dir == f"./data/etcdnode{i}/data"
    assert c.wal_dir == Path(f"./data/etcdnode{i}/wal")
    assert c.log_outputs == ("stderr",)
    assert c.initial_cluster_state == ("existing" if i == 3 else "new")
    assert len(c.initial_cluster) == (4 if i == 3 else 3)
    text = "\n".join(x for x in (CONFIGS / f"node{i}.yaml").read_text().splitlines() if not x.startswith("#"))
    assert "192.168." not in text and "0.0.0.0" not in text and "/tmp" not in text


def test_repo_configs_agree_on_the_founding_cluster() -> None:
    cs = [config_from_file(CONFIGS / f"node{i}.yaml") for i in range(4)]
    assert len({c.cluster_id for c in cs[:3]}) == 1
    assert {n: cs[0].initial_cluster[n] for n in cs[0].initial_cluster} == {
        n: cs[3].initial_cluster[n] for n in cs[0].initial_cluster
    }
    assert len({c.member_id for c in cs}) == 4


def test_every_seed_config_gives_the_clear_yaml_error_then_parses_when_fixed(tmp_path: Path) -> None:
    blocks = [f.read_text(encoding="utf-8").rstrip("\n") for f in SEED_FILES]
    assert len(blocks) == 4
    for n, block in enumerate(blocks):
        msg = file_error(tmp_path, block + "\n")
        assert "invalid YAML" in msg and "log-outputs" in msg and "line " in msg
        fixed = block.replace('log-outputs:- "stderr"', 'log-outputs: ["stderr"]')
        c = config_from_file(write(tmp_path, fixed + "\n"))
        assert c.name == f"etcdnode{n}"
        assert c.log_level == "warn" and c.log_outputs == ("stderr",)
        assert c.initial_cluster_state == ("existing" if n == 3 else "new")
        assert c.initial_advertise_peer_urls[0].startswith("http://192.168.235.128:")


def test_inline_seed_error_names_the_line(tmp_path: Path) -> None:
    msg = file_error(tmp_path, SEED_ETCD0)
    assert msg.startswith("invalid YAML in ") and " line 17: " in msg
    assert "'log-outputs:'" in msg
    c = config_from_file(write(tmp_path, SEED_ETCD0.replace(":- ", ":\n- ")))
    assert c.listen_client_urls == ("http://0.0.0.0:2379",)
    assert c.client_listen == (("0.0.0.0", 2379),)


def test_file_is_the_whole_configuration(tmp_path: Path) -> None:
    p = write(tmp_path, MINIMAL)
    # etcd 3.4: with a config file, flags and environment are ignored (logged), not an error
    c = load_config(["--name", "x", "--config-file", str(p), "--data-dir=/d"], {"ETCD_NAME": "y"})
    assert c.name == "n1" and c.data_dir == "n1.trikv"
    assert c.notices == (("info", CONFIG_FILE_LOADED, {"path": str(p)}),)
    assert c.warnings == (
        f"flags ignored because a config file is used ({p}): --name, --data-dir",
        f"environment variables ignored because a config file is used ({p}): ETCD_NAME",
    )
    c = load_config([], {"TRIKV_NAME": "ignored", "TRIKV_DATA_DIR": "/ignored", "ETCD_CONFIG_FILE": str(p)})
    assert c.name == "n1" and c.data_dir == "n1.trikv"
    assert any("TRIKV_DATA_DIR, TRIKV_NAME" in w for w in c.warnings)
    assert load_config([], {"TRIKV_CONFIG_FILE": str(p)}).name == "n1"
    # the flag wins over ETCD_CONFIG_FILE; the last --config-file wins
    other = write(tmp_path, 'name: "other"\n', "other.yaml")
    assert load_config(["--config-file", str(other)], {"ETCD_CONFIG_FILE": str(p)}).name == "other"
    assert load_config(["--config-file", str(p), "--config-file", str(other)], {}).name == "other"


def test_empty_file_and_null_values_keep_defaults(tmp_path: Path) -> None:
    assert config_from_file(write(tmp_path, "# nothing\n")).name == "default"
    c = config_from_file(write(tmp_path, MINIMAL + "wal-dir:\nheartbeat-interval:\n"))
    assert c.tick_ms == 100 and c.wal_dir == Path("n1.trikv/member/wal")


def test_duplicate_key_warns(tmp_path: Path) -> None:
    c = config_from_file(write(tmp_path, MINIMAL + "snapshot-count: 1\nsnapshot-count: 2\n"))
    assert c.snapshot_count == 2
    assert any("snapshot-count" in w and "twice" in w for w in c.warnings)


def test_nested_etcd_blocks_are_accepted_with_a_warning(tmp_path: Path) -> None:
    text = MINIMAL + "client-transport-security:\n  cert-file:\n  auto-tls: false\ncors: '*'\n"
    c = config_from_file(write(tmp_path, text))
    assert c.warnings == (
        "config keys accepted and ignored (not implemented by trikv yet): client-transport-security, cors",
    )


# --------------------------------------------------------------------------- the one-line errors

_H = "http://127.0.0.1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL + "heartbeat-interval: 300\n",
            "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]",
        ),
        (
            MINIMAL + "election-timeout: 60000\n",
            "--election-timeout[60000ms] is too long, and should be set less than 50000ms",
        ),
        (MINIMAL + "heartbeat-interval: 0\n", "--heartbeat-interval must be >0 (set to 0ms)"),
        (
            'name: "ghost"\ninitial-cluster: "n1=http://127.0.0.1:2380"\n',
            'couldn\'t find local name "ghost" in the initial cluster configuration',
        ),
        (
            MINIMAL + f"initial-advertise-peer-urls: {_H}:9999\n",
            f"--initial-cluster has n1={_H}:2380 but missing from --initial-advertise-peer-urls={_H}:9999",
        ),
        (MINIMAL + "initial-cluster-state: old\n", "unexpected clusterState 'old'"),
        (MINIMAL + "listen-peer-urls: ftp://127.0.0.1:2380\n", "URL scheme must be http or https"),
        (MINIMAL + "listen-peer-urls: http://127.0.0.1\n", 'does not have the form "host:port"'),
        (MINIMAL + "listen-peer-urls: 127.0.0.1:2380\n", "URL scheme must be http or https"),
        (MINIMAL + "listen-client-urls: http://127.0.0.1:99999\n", "invalid URL"),
        (MINIMAL + "advertise-client-urls: http://127.0.0.1:2379/v3\n", "URL must not contain a path"),
        (MINIMAL + "listen-client-urls: http://myhost:2379\n", "expected an IP address"),
        (MINIMAL + "initial-advertise-peer-urls: http://127.0.0.1:0\n", "needs a real port"),
        (
            MINIMAL + "client-transport-security:\n  cert-file: /x.pem\n",
            "TLS is not implemented in trikv yet: client-transport-security cert-file cannot be used",
        ),
        (
            MINIMAL + "peer-transport-security:\n  auto-tls: true\n",
            "peer-transport-security auto-tls is not supported: trikv does not implement TLS yet",
        ),
        (MINIMAL + "peer-transport-security:\n  cert-file: 5\n", "expected a string, got integer 5"),
        (
            MINIMAL + "peer-transport-security:\n  bogus: 1\n",
            "unknown key 'bogus' in peer-transport-security",
        ),
        (
            MINIMAL + "listen-peer-urls: https://127.0.0.1:2380\n",
            "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url",
        ),
        (MINIMAL + "discovery-srv: example.com\n", "DNS discovery is not implemented in trikv"),
        (
            'name: "a"\ninitial-cluster: "a=http://127.0.0.1:2380,b=http://127.0.0.1:2380"\n'
            "initial-advertise-peer-urls: http://127.0.0.1:2380\n",
            "duplicate url http://127.0.0.1:2380",
        ),
        (MINIMAL + "initial-cluster: 'n1'\n", "not of the form name=url"),
        (
            MINIMAL + "heartbeat-interval: '100'\n",
            "invalid value for heartbeat-interval: expected an integer, got string '100'",
        ),
        (
            MINIMAL + "snapshot-count: true\n",
            "invalid value for snapshot-count: expected an integer, got boolean True",
        ),
        (
            MINIMAL + "enable-grpc-gateway: 'yes'\n",
            "invalid value for enable-grpc-gateway: expected true or false",
        ),
        (
            MINIMAL + "log-outputs: 5\n",
            "invalid value for log-outputs: expected a list of strings, got integer 5",
        ),
        (MINIMAL + "name: [a, b]\n", "invalid value for name: expected a string, got list"),
        (MINIMAL + "bogus-key: 1\n", "unknown config key 'bogus-key'"),
        (MINIMAL + "peer-transport-security: on\n", "invalid value for peer-transport-security"),
        (MINIMAL + "cert-file: /x\n", "unknown config key 'cert-file'"),  # a flag, not a file key, in etcd
        (MINIMAL + "listen-client-urls: http://127.0.0.1:3000\n", "--advertise-client-urls is required"),
        (MINIMAL + "auto-compaction-mode: daily\n", "unknown auto-compaction-mode 'daily'"),
        (MINIMAL + "auto-compaction-retention: 'soon'\n", "invalid auto-compaction-retention 'soon'"),
        (
            MINIMAL + "auto-compaction-mode: revision\nauto-compaction-retention: 1h\n",
            "revision mode needs a number",
        ),
        (MINIMAL + "log-level: loud\n", "invalid log-level 'loud'"),
        (MINIMAL + "logger: logrus\n", "unknown logger option 'logrus'"),
        (MINIMAL + "name: 'a,b'\n", "must not contain"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("name: 'unterminated\n", "invalid YAML in "),
        ("name: a\n  bad-indent: b\n", "line 2"),
        ("a: [1, 2\n", "invalid YAML in "),
    ],
)
def test_config_file_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in file_error(tmp_path, text)


def test_unreadable_files(tmp_path: Path) -> None:
    assert "no such file" in flag_error(["--config-file", str(tmp_path / "missing.yaml")])
    assert "is a directory" in flag_error(["--config-file", str(tmp_path)])
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: \xe9\n")
    assert "not UTF-8" in flag_error(["--config-file", str(bad)])


def test_the_advertise_check_accepts_url_order_and_multi_url_members(tmp_path: Path) -> None:
    text = (
        'name: "a"\n'
        'initial-cluster: "a=http://127.0.0.1:2380,a=http://127.0.0.2:2380,b=http://127.0.0.1:3380"\n'
        "initial-advertise-peer-urls: http://127.0.0.2:2380,http://127.0.0.1:2380\n"
    )
    c = config_from_file(write(tmp_path, text))
    assert c.initial_cluster["a"] == ("http://127.0.0.1:2380", "http://127.0.0.2:2380")
    assert len(c.initial_member_ids) == 2


# --------------------------------------------------------------------------- derived values


def test_corrupt_check_time(tmp_path: Path) -> None:
    """etcd's experimental-corrupt-check-time: a Go duration, off ('0s') by default."""
    assert config_from_file(write(tmp_path, MINIMAL)).corrupt_check_time_ms == 0
    c = config_from_file(write(tmp_path, MINIMAL + "experimental-corrupt-check-time: 1m30s\n"))
    assert c.corrupt_check_time_ms == 90_000 and c.warnings == ()
    assert load_config(["--experimental-corrupt-check-time=250ms"], {}).corrupt_check_time_ms == 250
    with pytest.raises(ConfigError, match="invalid experimental-corrupt-check-time 'often'"):
        load_config(["--experimental-corrupt-check-time=often"], {})


def test_quota_and_compaction(tmp_path: Path) -> None:
    c = config_from_file(write(tmp_path, MINIMAL + "quota-backend-bytes: 1048576\n"))
    assert c.quota_bytes == 1048576
    assert config_from_file(write(tmp_path, MINIMAL + "quota-backend-bytes: -1\n")).quota_bytes is None
    big = config_from_file(write(tmp_path, MINIMAL + f"quota-backend-bytes: {16 * 1024**3}\n"))
    assert any("quota-backend-bytes" in w for w in big.warnings)
    for retention, expected in [("1", 3600.0), ("1h30m", 5400.0), ("90s", 90.0), ("0", None), ("0s", None)]:
        c = load_config([f"--auto-compaction-retention={retention}"], {})
        got = c.compaction_retention
        assert (got[1] if got else None) == expected
    c = config_from_file(
        write(tmp_path, MINIMAL + "auto-compaction-mode: revision\nauto-compaction-retention: 1000\n")
    )
    assert c.compaction_retention == ("revision", 1000.0)


def test_ipv6_listen_url() -> None:
    c = load_config(
        ["--listen-client-urls", "http://[::1]:2379", "--advertise-client-urls", "http://[::1]:2379"], {}
    )
    assert c.client_listen == (("::1", 2379),)


def test_relocated_rewrites_every_url_consistently(tmp_path: Path) -> None:
    cs = [config_from_file(CONFIGS / f"node{i}.yaml") for i in range(3)]
    ports = {2379: 40001, 2380: 40002, 12379: 40011, 12380: 40012, 22379: 40021, 22380: 40022}
    moved = [c.relocated(data_root=tmp_path, ports=ports, heartbeat_interval_ms=20) for c in cs]
    m0 = moved[0]
    assert m0.client_listen == (("127.0.0.1", 40001),) and m0.peer_listen == (("127.0.0.1", 40002),)
    assert m0.initial_cluster["etcdnode1"] == ("http://127.0.0.1:40012",)
    assert m0.initial_cluster[m0.name] == m0.initial_advertise_peer_urls
    assert m0.data_dir == str(tmp_path / "etcdnode0" / "data")
    assert m0.wal_dir == tmp_path / "etcdnode0" / "wal"
    assert m0.tick_ms == 20 and m0.election_ticks == 50
    assert len({m.cluster_id for m in moved}) == 1
    assert m0.cluster_id != cs[0].cluster_id  # ids follow the URLs
    assert isinstance(m0, ServerConfig) and cs[0].client_listen == (
        ("127.0.0.1", 2379),
    )  # original untouched


# --------------------------------------------------------------------------- logging


@pytest.fixture
def clean_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    before_handlers, before_level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in before_handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(before_level)


def test_logging_writes_zap_like_json_lines(tmp_path: Path, clean_root_logging: None) -> None:
    out = tmp_path / "server.log"
    setup_logging("info", [str(out)], "zap")
    lg = get_logger("actors.test").bind(local_member_id="8e9e05c52164694d")
    lg.info("added member", peer_urls=["http://127.0.0.1:2380"], raw=b"\xffab", msg="shadow")
    lg.debug("not shown")
    log("actors.test", "warn", "slow fdatasync", took=1.5)
    logging.getLogger("plain").error("stdlib %s", "works")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["msg"] for x in lines] == ["added member", "slow fdatasync", "stdlib works"]
    first = lines[0]
    assert list(first)[:4] == ["level", "ts", "caller", "msg"]
    assert first["level"] == "info"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first["caller"].startswith("tests/test_config.py:")
    assert first["local_member_id"] == "8e9e05c52164694d"
    assert first["peer_urls"] == ["http://127.0.0.1:2380"]
    assert first["field.msg"] == "shadow" and first["raw"] == "\\xffab"
    assert lines[1]["level"] == "warn" and lines[1]["took"] == 1.5
    assert lines[1]["caller"].startswith("tests/test_config.py:")
    assert lines[2]["level"] == "error"


def test_logging_is_idempotent_and_levels_filter(
    capsys: pytest.CaptureFixture[str], clean_root_logging: None
) -> None:
    setup_logging("error", ["stdout"])
    setup_logging("warn", ["stdout"])  # replaces, does not add a second handler
    lg = get_logger("x")
    lg.info("hidden")
    lg.warning("visible")
    try:
        raise ValueError("bad thing")
    except ValueError:
        lg.exception("failed")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    warn, err = (json.loads(x) for x in out)
    assert warn["msg"] == "visible" and warn["level"] == "warn"
    assert err["error"] == "bad thing" and "ValueError" in err["stacktrace"]


def test_logging_errors(tmp_path: Path, clean_root_logging: None) -> None:
    with pytest.raises(ConfigError, match="cannot open log output"):
        setup_logging("info", [str(tmp_path / "no-such-dir" / "x.log")])
    with pytest.raises(ConfigError, match="invalid log-level"):
        setup_logging("loud", ["stderr"])
    with pytest.raises(ConfigError, match="unknown logger"):
        setup_logging("info", ["stderr"], "logrus")


def test_election_timeout_bounds_are_inclusive() -> None:
    ok = load_config(["--heartbeat-interval=200", "--election-timeout=1000"], {})
    assert ok.election_ticks == 5
    assert "should be at least as 5 times" in flag_error(
        ["--heartbeat-interval=201", "--election-timeout=1000"]
    )
    assert load_config(["--election-timeout=50000"], {}).election_ticks == 500
    assert "is too long" in flag_error(["--election-timeout=50001"])


def test_third_party_loggers_stay_at_warn_unless_asked(
    capsys: pytest.CaptureFixture[str], clean_root_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(THIRD_PARTY_ENV, raising=False)
    chatty = logging.getLogger("trio-websocket")
    before = {name: logging.getLogger(name).level for name in THIRD_PARTY_LOGGERS}
    try:
        setup_logging("debug", ["stdout"])
        chatty.debug("frame sent")
        chatty.warning("connection reset")
        get_logger("trikv.ours").debug("ours at debug")
        msgs = [json.loads(x)["msg"] for x in capsys.readouterr().out.splitlines()]
        assert msgs == ["connection reset", "ours at debug"]
        monkeypatch.setenv(THIRD_PARTY_ENV, "1")
        setup_logging("debug", ["stdout"])
        chatty.debug("frame sent")
        assert [json.loads(x)["msg"] for x in capsys.readouterr().out.splitlines()] == ["frame sent"]
        setup_logging("debug", ["stdout"], third_party=False)  # the argument wins over the environment
        chatty.debug("frame sent")
        assert capsys.readouterr().out == ""
        setup_logging("error", ["stdout"])  # never more verbose than the member's own level
        chatty.warning("connection reset")
        assert capsys.readouterr().out == ""
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


# --------------------------------------------------------------------------- startup failures (actors.main)


def test_permission_errors_name_the_path_and_the_fix(tmp_path: Path) -> None:
    c = load_config(["--data-dir", str(tmp_path / "d"), "--wal-dir", str(tmp_path / "w")], {})
    msg = describe_failure(PermissionError(13, "Permission denied", str(tmp_path / "d" / "member")), c)
    assert msg.startswith(
        f"cannot use --data-dir {tmp_path / 'd'}: permission denied on {tmp_path / 'd' / 'member'}"
    )
    assert "chown" in msg and "choose another --data-dir" in msg and "Errno" not in msg
    msg = describe_failure(PermissionError(13, "Permission denied", str(tmp_path / "w" / "0.wal")), c)
    assert msg.startswith(f"cannot use --wal-dir {tmp_path / 'w'}:") and "choose another --wal-dir" in msg
    busy = describe_failure(OSError(98, "Address already in use"), c)
    assert busy.startswith("address already in use: one of http://127.0.0.1:2379, http://127.0.0.1:2380")


def test_preflight_refuses_a_file_in_the_way_and_touches_nothing(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    c = load_config(["--data-dir", str(tmp_path / "file" / "data")], {})
    with pytest.raises(ConfigError, match=r"file is not a directory \(choose another --data-dir\)"):
        preflight(c)
    ok = load_config(
        [
            "--data-dir",
            str(tmp_path / "new" / "data"),
            "--listen-peer-urls=http://127.0.0.1:0",
            "--listen-client-urls=http://127.0.0.1:0",
            "--advertise-client-urls=http://127.0.0.1:1",
        ],
        {},
    )
    preflight(ok)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # the probe left nothing behind
