"""`trikv`: start a member from flags, env vars or an etcd-style YAML config file.

Bad configuration is one line on stderr and exit code 1, never a traceback. Before anything touches the disk
the member checks what it can (the data and WAL directories are writable, every listen address is free), so
a refused start names the path or address and the fix, and leaves no half-initialised data dir behind.
SIGTERM / SIGINT stop the member cleanly; a leader first tries to hand leadership over.
"""

from __future__ import annotations

import errno
import getpass
import importlib
import logging
import os
import signal
import socket
import stat
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import trio

from trikv.actors import config as config_mod
from trikv.actors.logsetup import log as log_fields
from trikv.actors.logsetup import setup_logging
from trikv.api.errors import ConfigError, LockedError, StorageError

log = logging.getLogger("trikv.main")


async def _serve(cfg: config_mod.ServerConfig) -> None:
    from trikv.actors.node import Node
    from trikv.actors.upkeep import UpkeepSettings

    node = Node(cfg, upkeep=UpkeepSettings.from_environ(os.environ))
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:

            async def run_node() -> None:
                await node.run()
                nursery.cancel_scope.cancel()  # the node stopped on its own (removed from the cluster)

            nursery.start_soon(run_node)
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                with trio.move_on_after(10):
                    await node.shutdown()
                nursery.cancel_scope.cancel()
                break


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = config_mod.load_config(args, os.environ)
        setup_logging(cfg.log_level, list(cfg.log_outputs), cfg.logger)
    except config_mod.InfoRequested as req:  # --help / --version
        try:
            print(req.text, flush=True)
        except BrokenPipeError:  # `trikv --help | head`: the reader left, nothing to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ConfigError as exc:
        print(f"trikv: {exc}", file=sys.stderr)
        return 1
    for level, msg, fields in cfg.notices:
        log_fields(log, level, msg, **fields)
    for warning in cfg.warnings:
        log.warning("%s", warning)
    try:
        preflight(cfg)
        load_test_plugin(os.environ)
    except ConfigError as exc:
        print(f"trikv: {exc}", file=sys.stderr)
        return 1
    try:
        trio.run(_serve, cfg)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        # Startup problems (bad or foreign data, a taken port, a locked data dir) arrive wrapped in the
        # nursery's exception group: one clear line, exit 1. Anything else is a bug: let it show.
        cause = _expected_failure(exc)
        if cause is None:
            raise
        print(f"trikv: {describe_failure(cause, cfg)}", file=sys.stderr)
        return 1
    return 0


def _expected_failure(exc: BaseException) -> BaseException | None:
    if isinstance(exc, (ConfigError, LockedError, StorageError, OSError)):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _expected_failure(sub)
            if found is not None:
                return found
    return None


TEST_PLUGIN_ENV = "TRIKV_TEST_PLUGIN"


def load_test_plugin(environ: Mapping[str, str]) -> None:
    """The test-only fault plugin (storage/faults.py), only when TRIKV_TEST_PLUGIN names its module: imported
    and installed before the node starts. Production never sets the variable, so nothing else loads it."""
    name = environ.get(TEST_PLUGIN_ENV, "").strip()
    if not name:
        return
    try:
        module = importlib.import_module(name)
        install = getattr(module, "install", None)
        if not callable(install):
            raise ConfigError(f"{TEST_PLUGIN_ENV}={name}: the module has no install()")
        install()
    except ConfigError:
        raise
    except Exception as exc:  # a bad name or a plugin that refuses its settings: one line, exit 1
        raise ConfigError(f"cannot load {TEST_PLUGIN_ENV}={name}: {exc}") from None


# --------------------------------------------------------------------------- one line per failure


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): the uid is all there is
        return str(os.geteuid())


def _permission_denied(path: str, option: str, configured: str) -> str:
    user = _user()
    return (
        f"cannot use {option} {configured}: permission denied on {path} (user {user} cannot write there); "
        f"make it writable (e.g. chown -R {user} {path}) or choose another {option}"
    )


def describe_failure(exc: BaseException, cfg: config_mod.ServerConfig) -> str:
    """One line for a startup failure: never a bare "[Errno 13]"; the path or address and the fix."""
    if isinstance(exc, PermissionError) or (
        isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    ):
        path = str(exc.filename) if exc.filename is not None else cfg.data_dir
        what = "--wal-dir" if cfg.wal_dir_option and path.startswith(cfg.wal_dir_option) else "--data-dir"
        configured = cfg.wal_dir_option if what == "--wal-dir" else cfg.data_dir
        return _permission_denied(path, what, configured)
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        urls = ", ".join((*cfg.listen_client_urls, *cfg.listen_peer_urls))
        return f"address already in use: one of {urls} is taken by another process (stop it or choose other URLs)"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename is not None else ""
        return f"{exc.strerror.lower()}{where}"
    return str(exc)


# --------------------------------------------------------------------------- checks before any side effect


def preflight(cfg: config_mod.ServerConfig) -> None:
    """Refuse with ConfigError (one line) what would fail half-way through initialising the data dir."""
    _check_writable(cfg.data_dir, "--data-dir", cfg.data_dir)
    if cfg.wal_dir_option:
        _check_writable(cfg.wal_dir_option, "--wal-dir", cfg.wal_dir_option)
    for inner in (cfg.member_dir, cfg.snap_dir, cfg.wal_dir, cfg.db_path):
        _check_existing_entry(inner, cfg)
    for option, urls in (
        ("--listen-peer-urls", cfg.listen_peer_urls),
        ("--listen-client-urls", cfg.listen_client_urls),
    ):
        for url in urls:
            _check_bindable(url, option)


def _check_writable(configured: str, option: str, shown: str) -> None:
    """The directory, or its nearest existing ancestor (which it would be created in), must be writable."""
    probe = Path(configured)
    while True:
        try:
            st = os.stat(probe)
        except (FileNotFoundError, NotADirectoryError):
            if probe.parent == probe:
                return
            probe = probe.parent
            continue
        except PermissionError:
            raise ConfigError(_permission_denied(str(probe.parent), option, shown)) from None
        break
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(
            f"cannot use {option} {shown}: {probe} is not a directory (choose another {option})"
        )
    try:
        # A real probe, not os.access: root passes os.access on read-only mounts and /sys.
        os.rmdir(tempfile.mkdtemp(prefix=".trikv-probe-", dir=probe))
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise ConfigError(_permission_denied(str(probe), option, shown)) from None
        raise ConfigError(
            f"cannot use {option} {shown}: {(exc.strerror or str(exc)).lower()} in {probe}"
        ) from None


def _check_existing_entry(path: Path, cfg: config_mod.ServerConfig) -> None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    except PermissionError:
        raise ConfigError(_permission_denied(str(path.parent), "--data-dir", cfg.data_dir)) from None
    mode = os.W_OK | (os.X_OK if stat.S_ISDIR(st.st_mode) else os.R_OK)
    if not os.access(path, mode):
        in_wal = cfg.wal_dir_option and str(path).startswith(cfg.wal_dir_option)
        option, shown = ("--wal-dir", cfg.wal_dir_option) if in_wal else ("--data-dir", cfg.data_dir)
        raise ConfigError(_permission_denied(str(path), option, shown))


def _check_bindable(url: str, option: str) -> None:
    """Bind and release the address (as the server will, with SO_REUSEADDR): a taken port is named now."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 0
    if port == 0:
        return
    bind_host = "127.0.0.1" if host == "localhost" else host
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind_host, port))
        except OSError as exc:
            # etcd: "listen tcp 127.0.0.1:2379: bind: address already in use"
            reason = (exc.strerror or str(exc)).lower()
            fix = (
                "another process is listening there: stop it or choose another " + option
                if exc.errno == errno.EADDRINUSE
                else "choose another " + option
            )
            raise ConfigError(f"listen tcp {parts.netloc}: bind: {reason} ({fix})") from None


if __name__ == "__main__":
    sys.exit(main())
