"""The in-memory history of one key: its generations of revisions (etcd's keyIndex, our own take).

A revision is packed into one int, `main << 32 | sub`, so comparisons and bisects are plain int work and a
million keys rebuild fast. A key is written at most once per main revision, so within one key the packed
revisions are strictly increasing in main order.

A generation runs from a create to a delete: `revs` ascending; when the generation is closed (a later one
exists) its last rev is the tombstone. `ver` is the version of the generation's last rev (tombstones count,
as in etcd), kept absolute so compaction may drop early revs without changing the versions of later ones.
"""

from __future__ import annotations

from bisect import bisect_left

SUB_BITS = 32


def pack(main: int, sub: int) -> int:
    return (main << SUB_BITS) | sub


def main_of(rev: int) -> int:
    return rev >> SUB_BITS


def bound(main: int) -> int:
    """Exclusive packed bound for 'every revision at or below `main`'."""
    return (main + 1) << SUB_BITS


class Generation:
    __slots__ = ("created", "revs", "ver")

    def __init__(self, created: int = 0, ver: int = 0, revs: list[int] | None = None) -> None:
        self.created = created  # main revision of the create
        self.ver = ver
        self.revs: list[int] = revs if revs is not None else []


class KeyIndex:
    """All live-or-historic revisions of one key, oldest generation first; the last one is open."""

    __slots__ = ("gens",)

    def __init__(self, gens: list[Generation] | None = None) -> None:
        self.gens: list[Generation] = gens if gens is not None else [Generation()]

    # --- mutation (appends only, except compact) ---------------------------------------------------
    def put(self, rev: int, created_main: int, ver: int) -> None:
        g = self.gens[-1]
        if not g.revs:
            g.created = created_main
        g.revs.append(rev)
        g.ver = ver

    def tombstone(self, rev: int) -> None:
        g = self.gens[-1]
        g.revs.append(rev)
        g.ver += 1
        self.gens.append(Generation())

    def mark(self) -> tuple[int, int, int, int]:
        """An undo point; only valid while nothing but appends happen after it."""
        g = self.gens[-1]
        return (len(self.gens), len(g.revs), g.ver, g.created)

    def undo(self, mark: tuple[int, int, int, int]) -> None:
        ngens, nrevs, ver, created = mark
        del self.gens[ngens:]
        g = self.gens[-1]
        del g.revs[nrevs:]
        g.ver = ver
        g.created = created

    # --- queries -----------------------------------------------------------------------------------
    def get(self, upto: int) -> tuple[int, int, int] | None:
        """(packed mod rev, create main, version) of the key as seen with revisions < `upto`; None if absent."""
        gens = self.gens
        last = len(gens) - 1
        g = gens[last]
        revs = g.revs
        if revs and revs[-1] < upto:  # fast path: the current state
            return revs[-1], g.created, g.ver
        for i in range(last, -1, -1):
            g = gens[i]
            revs = g.revs
            if not revs or revs[0] >= upto:
                continue
            j = bisect_left(revs, upto)
            if i != last and j == len(revs):
                return None  # the newest visible rev is this generation's tombstone
            return revs[j - 1], g.created, g.ver - (len(revs) - j)
        return None

    def latest(self) -> tuple[int, int, int] | None:
        g = self.gens[-1]
        if not g.revs:
            return None
        return g.revs[-1], g.created, g.ver

    def has(self, rev: int) -> bool:
        for g in self.gens:
            revs = g.revs
            if revs and revs[0] <= rev <= revs[-1]:
                j = bisect_left(revs, rev)
                return revs[j] == rev
        return False

    def compact(self, upto: int) -> bool:
        """Drop history below `upto` except the newest live rev below it. True when nothing is left."""
        gens = self.gens
        i = 0
        while i < len(gens) - 1 and gens[i].revs[-1] < upto:
            i += 1  # a closed generation whose tombstone is below the bound goes whole
        if i:
            del gens[:i]
        g = gens[0]
        j = bisect_left(g.revs, upto)
        if j > 1:
            del g.revs[: j - 1]
        return len(gens) == 1 and not gens[0].revs

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "KeyIndex(" + ", ".join(f"{g.created}/{g.ver}:{g.revs}" for g in self.gens) + ")"
