"""What one benchmark run does: the workload, its flags and the surface, as one picklable value.

Workers receive the Spec whole (multiprocessing spawn), so it holds only plain data; key and value
generation live here so every worker and the prefill make the same keys.
"""

from __future__ import annotations

import random

import attrs

WORKLOADS = ("put", "range", "txn-put", "txn-mixed", "watch", "watch-latency", "lease-keepalive")
SURFACES = ("cbor", "gateway", "grpc")
TARGETS = ("trikv", "etcd")
WATCH_WORKLOADS = ("watch", "watch-latency")
WATCH_PREFIX = b"/watchbench/"
LEASE_TTL = 600  # seconds: no lease may expire during a run


class UsageError(Exception):
    """Flags that do not make a runnable benchmark."""


@attrs.frozen
class Spec:
    """One run's parameters (etcd benchmark's flags, plus the surface and the process split)."""

    workload: str
    surface: str = "grpc"
    target: str = "trikv"
    clients: int = 1
    conns: int = 1
    procs: int = 1
    total: int = 10000
    duration: float = 0.0  # > 0: run this many seconds instead of --total ops
    key_size: int = 8
    val_size: int = 8
    sequential_keys: bool = False
    key_space_size: int = 1
    rate: float = 0.0  # ops/s over all clients (watch: puts/s); 0: as fast as possible
    range_key: bytes | None = None  # `range KEY`; None: random keys of the key space (prefilled)
    consistency: str = "l"
    txn_ops: int = 1
    rw_ratio: float = 1.0  # txn-mixed: reads per write
    watchers: int = 10
    leases: int = 0  # lease-keepalive: leases granted (0: one per client)

    @property
    def label(self) -> str:
        if self.workload == "range":
            return f"range-{self.consistency}"
        return self.workload

    @property
    def puts(self) -> int:
        """Watch workloads: puts written (--total counts delivered events, one per put and watcher)."""
        if self.duration > 0:
            return max(1, int(self.rate * self.duration))
        return self.total // self.watchers

    def key(self, n: int) -> bytes:
        return str(n % max(1, self.key_space_size)).zfill(self.key_size).encode()

    def value(self) -> bytes:
        return b"v" * self.val_size

    def key_source(self, seed: int) -> KeySource:
        return KeySource(self, seed)


class KeySource:
    """The keys one client uses: sequential (offset per client) or random over the key space."""

    def __init__(self, spec: Spec, seed: int) -> None:
        self._spec = spec
        self._rnd = random.Random(seed)
        self._next = seed

    def __call__(self) -> bytes:
        spec = self._spec
        if spec.sequential_keys:
            self._next += 1
            return spec.key(self._next)
        return spec.key(self._rnd.randrange(max(1, spec.key_space_size)))

    def coin(self, p: float) -> bool:
        return self._rnd.random() < p


def split(n: int, parts: int) -> list[int]:
    """n as `parts` near-equal shares (the first ones one larger)."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]
