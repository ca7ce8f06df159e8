"""Fuzz target: the config loader (actors/config*.py) from flag lists, environment dicts and YAML files.

`load_config(argv, environ)` is what `trikv` runs first. Whatever it is given (etcd's keys with values of
every type, unknown and legacy flags, odd spellings, YAML of any shape, a real config file's text cut and
spliced), it returns a ServerConfig, asks for --help/--version, or raises ConfigError with one non-empty
line naming the problem (main.py prints `trikv: <it>` and exits 1). Never another exception, never a hang.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import event, example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import budget, watchdog
from trikv.actors.config import InfoRequested, ServerConfig, load_config
from trikv.actors.config_keys import OPTS, Kind
from trikv.api.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs"
SAMPLE = (CONFIGS / "node0.yaml").read_text()
KEYS = sorted(OPTS)

urls = st.one_of(
    st.sampled_from(["http://127.0.0.1:2379", "https://127.0.0.1:2380", "http://localhost:0", "unix://x",
                     "http://[::1]:2379", "http://127.0.0.1", "http://127.0.0.1:99999", "http://:1", "http://a b:1",
                     "127.0.0.1:2379", "http://127.0.0.1:2379/path", ""]),
    st.text(max_size=20),
)  # fmt: skip
by_kind = {
    Kind.STR: st.one_of(
        st.text(max_size=20), st.sampled_from(["new", "existing", "zap", "x=http://127.0.0.1:2380"])
    ),
    Kind.INT: st.one_of(st.integers(), st.sampled_from([0, -1, 2**63, 10**30])).map(str),
    Kind.BOOL: st.sampled_from(["true", "false", "1", "0", "yes", "", "TRUE", "t"]),
    Kind.URLS: st.lists(urls, max_size=3).map(",".join),
    Kind.LIST: st.lists(st.text(max_size=8), max_size=3).map(",".join),
    Kind.ANY: st.text(max_size=20),
}


@st.composite
def flag_lists(draw: st.DrawFn) -> list[str]:
    argv: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        key = draw(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)))
        value = draw(by_kind.get(OPTS[key].kind, st.text()) if key in OPTS else st.text(max_size=10))
        form = draw(st.sampled_from(["--k=v", "--k v", "-k=v", "--k", "v"]))
        if form == "--k v":
            argv += [f"--{key}", value]
        elif form == "--k":
            argv.append(f"--{key}")
        elif form == "v":
            argv.append(value)
        else:
            argv.append(form.replace("k", key, 1).replace("=v", "=" + value))
    return argv


env_names = st.sampled_from(KEYS).flatmap(
    lambda k: st.sampled_from([f"ETCD_{k.upper().replace('-', '_')}", f"TRIKV_{k.upper().replace('-', '_')}"])
)
envs = st.dictionaries(st.one_of(env_names, st.just("ETCD_BOGUS")), st.text(max_size=20), max_size=4)

yaml_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=15), urls
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
yaml_docs = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), yaml_values, max_size=8).map(
        lambda d: yaml.safe_dump(d, allow_unicode=True)
    ),
    yaml_values.map(yaml.safe_dump),
    st.text(max_size=200),  # any text at all
    st.tuples(st.integers(0, len(SAMPLE)), st.integers(0, len(SAMPLE)), st.text(max_size=30)).map(
        lambda t: SAMPLE[: t[0]] + t[2] + SAMPLE[t[1] :]  # the real file, a piece replaced
    ),
)


def check(argv: list[str], env: dict[str, str]) -> None:
    with watchdog(10):
        try:
            cfg = load_config(argv, env)
        except InfoRequested:
            event("help/version")
        except ConfigError as exc:
            text = str(exc)
            assert text and "\n" not in text, repr(text)
            event("ConfigError")
        else:
            assert isinstance(cfg, ServerConfig)
            event("config")


@budget(examples=300, deadline_ms=5_000)
@given(argv=flag_lists(), env=envs)
@example(argv=["--", "\n"], env={})  # bug: the message quoting the value was two lines
@example(argv=["--heartbeat-interval=99999999999999999999999"], env={})
@example(argv=["--listen-client-urls=http://127.0.0.1:99999"], env={})
@example(argv=[], env={"ETCD_INITIAL_CLUSTER": "=,=="})
def test_config_flags_and_env(argv: list[str], env: dict[str, str]) -> None:
    check(argv, env)


@budget(examples=300, deadline_ms=5_000)
@given(text=yaml_docs, env=envs)
@example(text="\x1f", env={})  # bug: yaml's ReaderError escaped as a traceback
@example(text="name: [1, 2]\n", env={})
@example(text="heartbeat-interval: 1e400\n", env={})
@example(text="&a [*a]", env={})
@example(text="{" * 100, env={})
def test_config_file(text: str, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="trikv-fuzz-cfg-") as tmp:
        path = Path(tmp) / "trikv.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        check(["--config-file", str(path)], env)
