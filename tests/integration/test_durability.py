"""The spool: nothing that got its 250 is ever lost — kill -9, restarts, a full spool."""

import time

from conftest import Client, Load, deadline, message, send_one, wait_for


def assert_all_acked_queued(drover, acked):
    queued = {m["id"]: m for m in drover.queue_list()}
    missing = [qid for qid in acked if qid not in queued]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged messages lost: {missing[:5]}"
    for qid, (sender, rcpt) in acked.items():
        assert queued[qid]["sender"] == sender and queued[qid]["recipients"] == [rcpt], (
            queued[qid], sender, rcpt)
    return queued


def test_kill9_mid_load_loses_nothing(drover):
    for _ in range(2):  # and once more on the recovered spool
        t0 = time.monotonic()
        load = Load(drover.port, threads=8).start()
        wait_for(lambda: load.count() >= 200, deadline(30), what="200 acknowledged messages")
        # Let the load run for 1.5 s in all, so the kill lands among commits in flight.
        time.sleep(max(0.0, 1.5 - (time.monotonic() - t0)))
        drover.kill9()
        load.stop()
        acked = dict(load.acked)
        # The CLI reads the spool with no daemon running, then the daemon recovers it.
        assert_all_acked_queued(drover, acked)
        drover.start()
        assert_all_acked_queued(drover, acked)


def test_sigterm_mid_load_finishes_commits_and_exits_0(drover):
    load = Load(drover.port, threads=8).start()
    wait_for(lambda: load.count() >= 200, deadline(30), what="200 acknowledged messages")
    assert drover.stop() == 0
    load.stop()
    acked = dict(load.acked)
    drover.start()
    assert_all_acked_queued(drover, acked)


def test_restart_recovers_every_message(drover):
    ids = {send_one(drover.port, f"s{i}@example.org", [f"r{i}@dest.example"])[0]: i
           for i in range(20)}
    before = {m["id"]: m for m in drover.queue_list()}
    assert set(before) == set(ids)
    drover.restart()
    after = {m["id"]: m for m in drover.queue_list()}
    assert set(after) == set(ids)
    for qid, m in after.items():
        for field in ("sender", "recipients", "size", "received"):
            assert m[field] == before[qid][field], (field, m, before[qid])
    # And the restarted server takes new mail next to the old.
    qid, _ = send_one(drover.port)
    assert len(drover.queue_list()) == 21 and qid in drover.queue_ids()


def test_queue_list_while_the_daemon_runs_under_load(drover):
    first, _ = send_one(drover.port, "first@example.org")
    load = Load(drover.port, threads=4).start()
    try:
        wait_for(lambda: load.count() >= 50, deadline(30), what="50 acknowledged messages")
        during = drover.queue_list()
        assert first in {m["id"] for m in during}
        assert len(during) >= 51
    finally:
        load.stop()
    assert not load.errors, load.errors[:3]
    acked = dict(load.acked)
    queued = assert_all_acked_queued(drover, acked)
    assert len(queued) == len(acked) + 1


def test_ids_are_unique_and_in_arrival_order(drover):
    ids = [send_one(drover.port)[0] for _ in range(10)]
    assert len(set(ids)) == 10
    assert [m["id"] for m in drover.queue_list()] == ids


def test_spool_full_answers_452_and_loses_nothing(make_drover):
    d = make_drover(spool={"max_size": "2M"}, smtp={"max_message_size": "1M"})
    acked = {}
    full = None
    c = Client(d.port)
    c.start()
    try:
        for i in range(200):
            sender, rcpt = f"s{i}@example.org", f"r{i}@dest.example"
            assert c.cmd(f"MAIL FROM:<{sender}>") == "250 2.1.0"
            assert c.cmd(f"RCPT TO:<{rcpt}>") == "250 2.1.5"
            r = c.send_data(message(size=64 * 1024))
            if r.code == 250:
                acked[r.queue_id] = (sender, rcpt)
                continue
            full = r
            break
        assert full is not None, f"{len(acked)} messages of 64 KB fit in a 2 MB spool"
        assert full == "452 4.3.1", full
        # The session survives a full spool.
        assert c.cmd("NOOP") == "250 2.0.0"
        assert c.cmd("MAIL FROM:<again@example.org>") == "250 2.1.0"
    finally:
        c.close()
    assert acked, "not even one message fit"
    (e,) = d.wait_events(lambda e: e.get("type") == "Rejection" and e["reply"].startswith("452"))
    assert e["reply"].startswith("452 4.3.1")
    assert_all_acked_queued(d, acked)
    d.restart()
    assert_all_acked_queued(d, acked)
    d.kill9()
    d.start()
    queued = assert_all_acked_queued(d, acked)
    assert len(queued) == len(acked)


def test_kill9_under_smtp_source_loses_nothing(drover):
    """The issue's crash test as written: smtp-source load, kill -9 mid-load, restart, and
    every message smtp-source saw acknowledged ("250 ... queued as ID") is in the queue."""
    import re
    import subprocess
    cmd = ["/usr/sbin/smtp-source", "-v", "-s", "16", "-m", "100000", "-l", "4096",
           "-f", "sender@bench.example", "-t", "rcpt@dest.example", f"127.0.0.1:{drover.port}"]
    out = drover.dir / "smtp-source.out"
    with open(out, "wb") as f:
        src = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
    try:
        acked_re = re.compile(rb"<<< 250 2\.0\.0 Ok: queued as ([0-9a-f]{24})")
        wait_for(lambda: len(acked_re.findall(out.read_bytes())) >= 500, deadline(30),
                 what="500 messages acknowledged to smtp-source")
        time.sleep(0.5)  # mid-load: commits in flight
        drover.kill9()
        src.wait(deadline(30))  # it stops on its own once the server is gone
    finally:
        if src.poll() is None:
            src.kill()
            src.wait()
    acked = set(m.decode() for m in acked_re.findall(out.read_bytes()))
    assert len(acked) >= 500
    drover.start()
    queued = set(drover.queue_ids())
    missing = acked - queued
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged messages lost"
