"""Acceptance: the member a watcher is connected to is cut off from its peers (the test plugin's peer hooks,
TRIKV_TEST_PLUGIN=trikv.testing.plugin): its require-leader watch streams end with "etcdserver: no leader"
within the require-leader bound, and the Python client's watch resumes on another member with no gap and
no duplicate across the whole write sequence, which goes on through the other two members meanwhile."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trio

import trikv
from tests.cluster.test_cluster import find_leader
from trikv.api import errors
from trikv.api.watch import Event, WatchCreateRequest, WatchRequest
from trikv.tools.localcluster import Cluster, Member

pytestmark = pytest.mark.slow

PREFIX = b"iso/"
ISOLATE = {"peers": {"out": {"*": {"drop": 1.0}}, "in": {"*": {"drop": 1.0}}}}
ELECTION = 1.0  # configs/node*.yaml: etcd's default election timeout
# Noticing the loss (a follower's randomized election timeout, up to 2 x) + 3 election timeouts without a
# leader (etcd's monitorLeader) + slack for a loaded 2-core machine.
NO_LEADER_BOUND = 2 * ELECTION + 3 * ELECTION + 4.0


def set_faults(m: Member, doc: dict[str, object] | None) -> None:
    """The control file is replaced atomically (tmp + rename), as the plugin expects."""
    path = Path(m.env["TRIKV_TEST_FAULTS"])
    if doc is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


async def test_a_cut_off_member_ends_its_watch_streams_and_the_watch_resumes_elsewhere(
    tmp_path: Path,
) -> None:
    c = Cluster(tmp_path)
    for m in c.members:
        m.env = {
            "TRIKV_TEST_PLUGIN": "trikv.testing.plugin",
            "TRIKV_TEST_FAULTS": str(tmp_path / f"{m.name}.f"),
        }
    c.start()
    try:
        lead = await find_leader(c)
        x = c.members[(lead + 1) % 3]  # a follower: the others keep their leader and take the writes
        others = [m for m in c.members if m is not x]
        acked: dict[int, tuple[bytes, bytes]] = {}  # revision -> (key, value) of acknowledged puts
        in_doubt: set[bytes] = set()  # values of puts whose outcome the client could not know
        seen: list[Event] = []
        stop_writing = trio.Event()

        async def writer(cl: trikv.Client) -> None:
            i = 0
            while not stop_writing.is_set():
                key, value = PREFIX + b"%02d" % (i % 17), b"v%05d" % i
                try:
                    acked[(await cl.put(key, value)).header.revision] = (key, value)
                except errors.OutcomeUnknownError:
                    in_doubt.add(value)
                i += 1
                await trio.sleep(0.02)

        async with (
            trikv.connect(x.endpoint) as first,
            trikv.connect([x.endpoint] + [m.endpoint for m in others]) as watch_cl,
            trikv.connect([m.endpoint for m in others], request_timeout=10) as write_cl,
        ):
            start = (await first.put(PREFIX + b"start", b"0")).header.revision + 1
            create = WatchCreateRequest(PREFIX, PREFIX[:-1] + b"0", start_revision=start)
            opening = WatchRequest(create_request=create, require_leader=True)
            async with (
                watch_cl.watch(PREFIX, prefix=True, start_revision=start) as events,
                first.stream("watch", opening, x.endpoint) as raw,  # the same stream, observed directly
                trio.open_nursery() as nursery,
            ):
                assert (await raw.receive()).created

                async def read() -> None:
                    async for ev in events:
                        seen.append(ev)

                nursery.start_soon(read)
                nursery.start_soon(writer, write_cl)
                with trio.fail_after(30):
                    while len(seen) < 20:  # the watch is live on x (its first endpoint)
                        await trio.sleep(0.05)
                assert events.resumes == 0

                set_faults(x, ISOLATE)
                cut, rev_cut = trio.current_time(), max(acked)
                with pytest.raises(errors.NoLeaderError) as ended, trio.fail_after(NO_LEADER_BOUND):
                    while True:
                        await raw.receive()
                assert str(ended.value) == "etcdserver: no leader"
                took = trio.current_time() - cut
                assert took >= 3 * ELECTION  # not before 3 election timeouts without a leader

                with trio.fail_after(30):
                    while events.resumes == 0 or len(seen) < len(acked):
                        await trio.sleep(0.05)  # resumed elsewhere and caught up meanwhile
                set_faults(x, None)  # heal; writing goes on across it
                rev_heal = max(acked)
                await trio.sleep(2.0)
                stop_writing.set()
                await trio.sleep(0.1)
                final = max(acked)
                with trio.fail_after(30):
                    while not seen or seen[-1].kv.mod_revision < final:
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()

        revs = [ev.kv.mod_revision for ev in seen]
        assert revs == sorted(set(revs)), "events out of order or delivered twice"
        got = {ev.kv.mod_revision: (ev.kv.key, ev.kv.value) for ev in seen}
        missing = sorted(set(acked) - set(got))
        assert not missing, f"acknowledged puts never delivered: revisions {missing[:10]}"
        assert all(got[r] == acked[r] for r in acked), "an event differs from its acknowledged put"
        extra = [got[r] for r in got if r not in acked]
        assert all(value in in_doubt for _, value in extra), f"events of no write: {extra[:5]}"
        assert revs == list(range(start, start + len(revs))), "a revision is missing from the sequence"
        assert events.resumes >= 1
        assert any(rev_cut < r <= rev_heal for r in acked), "no write while the member was cut off"
        assert any(r > rev_heal for r in acked), "no write after the heal"
    finally:
        c.stop()
