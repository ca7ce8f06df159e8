"""Session-wide test hygiene: sockets opened by the test process bind loopback only.

A listener on 0.0.0.0 (or any non-loopback address) in a test would expose the machine while the suite runs,
and hides a test that forgot its host. Every bind in this process (stdlib sockets, so trio's too) is checked;
a non-loopback one fails with an OSError naming the address. Members started as subprocesses are configured
by their tests (tools/localcluster.py uses 127.0.0.1).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

import pytest

_original_bind = socket.socket.bind


def is_loopback(host: object) -> bool:
    if host == "localhost":
        return True
    if not isinstance(host, str):
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # another host name, or "" (every interface)


def _loopback_bind(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
        raise OSError(errno.EADDRNOTAVAIL, f"tests may bind loopback only (127.0.0.1), not {address!r}")
    _original_bind(self, address)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.bind = _loopback_bind  # type: ignore[method-assign,assignment]


def pytest_unconfigure(config: pytest.Config) -> None:
    socket.socket.bind = _original_bind  # type: ignore[method-assign]
