"""trikv: an etcd-class distributed key-value store on Trio. This package is the public client.

The client names are loaded lazily (PEP 562), so the server and storage layers, which import
`trikv.api`, and the CLI do not pay for importing trio and the WebSocket stack; `dir(trikv)` still lists
them (`__dir__`), and `__all__` names every public name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Nothing is imported eagerly: `trikv.api`'s own __init__ loads the codec before any shape module (so
# the rpc -> codec -> protocol -> rpc cycle never bites), and trikvctl can take SIGINT over before the
# shapes load.

__version__ = "0.1.0"

_CLIENT_NAMES = (
    "Client",
    "Txn",
    "connect",
    "create_revision",
    "delete_op",
    "get_op",
    "lease",
    "mod_revision",
    "put_op",
    "value",
    "version",
    "MessageTooLargeError",
    "DeadlineExceededError",
    "KeepaliveTimeoutError",
)

__all__ = [
    "Client",
    "DeadlineExceededError",
    "KeepaliveTimeoutError",
    "MessageTooLargeError",
    "Txn",
    "__version__",
    "connect",
    "create_revision",
    "delete_op",
    "errors",
    "get_op",
    "lease",
    "mod_revision",
    "put_op",
    "value",
    "version",
]

if TYPE_CHECKING:
    from trikv.api import errors
    from trikv.client import (
        Client,
        DeadlineExceededError,
        KeepaliveTimeoutError,
        MessageTooLargeError,
        Txn,
        connect,
        create_revision,
        delete_op,
        get_op,
        lease,
        mod_revision,
        put_op,
        value,
        version,
    )


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from trikv import client

        return getattr(client, name)
    if name == "errors":
        from trikv.api import errors

        return errors
    raise AttributeError(f"module 'trikv' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy names too, without importing them (so `dir(trikv)` shows `connect` and stays trio-free)."""
    return sorted(set(globals()) | set(__all__))
