"""The key index alone: generations, history lookups, compaction's keep rule, undo marks."""

from __future__ import annotations

from trikv.storage.keyindex import KeyIndex, bound, main_of, pack


def build(*events: tuple[str, int]) -> KeyIndex:
    """('p', main) puts and ('t', main) tombstones, in order, as the store would append them."""
    ki = KeyIndex()
    for kind, main in events:
        if kind == "p":
            cur = ki.latest()
            ki.put(pack(main, 0), cur[1] if cur else main, cur[2] + 1 if cur else 1)
        else:
            ki.tombstone(pack(main, 0))
    return ki


def at(ki: KeyIndex, main: int) -> tuple[int, int, int] | None:
    hit = ki.get(bound(main))
    return None if hit is None else (main_of(hit[0]), hit[1], hit[2])


def test_get_walks_generations() -> None:
    # gen 1: 2, 4, tomb 6; gen 2: 8, 9, tomb 10; gen 3: 12
    ki = build(("p", 2), ("p", 4), ("t", 6), ("p", 8), ("p", 9), ("t", 10), ("p", 12))
    assert at(ki, 1) is None
    assert at(ki, 2) == (2, 2, 1)
    assert at(ki, 5) == (4, 2, 2)
    assert at(ki, 6) is None and at(ki, 7) is None
    assert at(ki, 8) == (8, 8, 1)
    assert at(ki, 9) == (9, 8, 2)
    assert at(ki, 10) is None and at(ki, 11) is None
    assert at(ki, 12) == (12, 12, 1) == at(ki, 99)


def test_compact_keeps_the_latest_live_rev_at_or_below() -> None:
    ki = build(("p", 2), ("p", 4), ("t", 6), ("p", 8), ("p", 9), ("t", 10), ("p", 12))
    assert not ki.compact(bound(5))
    assert not ki.has(pack(2, 0)) and ki.has(pack(4, 0))
    assert at(ki, 5) == (4, 2, 2)  # version and create revision survive the dropped rev 2
    assert not ki.compact(bound(6))  # the tombstone at the compact revision takes its generation
    assert not ki.has(pack(4, 0)) and not ki.has(pack(6, 0))
    assert at(ki, 9) == (9, 8, 2)
    assert not ki.compact(bound(11))
    assert [g.revs for g in ki.gens] == [[pack(12, 0)]]
    assert at(ki, 12) == (12, 12, 1)


def test_compact_keeps_a_put_below_a_later_tombstone() -> None:
    ki = build(("p", 1), ("p", 3), ("t", 7))
    assert not ki.compact(bound(5))
    assert ki.has(pack(3, 0)) and ki.has(pack(7, 0)) and not ki.has(pack(1, 0))
    assert at(ki, 5) == (3, 1, 2) and at(ki, 7) is None
    assert ki.compact(bound(7))  # nothing left: the key leaves the index


def test_undo_mark_restores_appends() -> None:
    ki = build(("p", 1), ("p", 2))
    mark = ki.mark()
    ki.tombstone(pack(3, 0))
    ki.put(pack(4, 0), 4, 1)
    ki.undo(mark)
    assert at(ki, 9) == (2, 1, 2) and len(ki.gens) == 1
