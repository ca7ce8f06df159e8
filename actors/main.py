"""`trikv`: start a member from flags, env vars or an etcd-style YAML config file.

Bad configuration is one line on stderr and exit code 1, never a traceback. SIGTERM / SIGINT stop the
member cleanly; a leader first tries to hand leadership over.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence

import trio

from trikv.actors import config as config_mod
from trikv.actors.logsetup import setup_logging
from trikv.api.errors import ConfigError, LockedError, StorageError

log = logging.getLogger("trikv.main")


async def _serve(cfg: config_mod.ServerConfig) -> None:
    from trikv.actors.node import Node

    node = Node(cfg)
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
    except config_mod.InfoRequested as req:  # --help / --version
        print(req.text)
        return 0
    except ConfigError as exc:
        print(f"trikv: {exc}", file=sys.stderr)
        return 1
    setup_logging(cfg.log_level, list(cfg.log_outputs), cfg.logger)
    for warning in cfg.warnings:
        log.warning("%s", warning)
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
        print(f"trikv: {cause}", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
