"""Signals, as docs/operations.md describes them: a graceful stop, and reopening the event log."""

import os
import signal

from conftest import deadline, listening_inodes, message, send_one, wait_for


def test_sigterm_tells_idle_sessions_and_exits_0(drover, connect):
    c = connect(drover.port)
    c.start()
    drover.send_signal(signal.SIGTERM)
    replies = c.replies_until_eof(timeout=deadline(15))
    assert replies == ["421 4.3.2"], replies
    assert drover.wait() == 0


def test_sigterm_lets_a_message_in_flight_finish(drover, connect):
    """A client in the middle of its data when the stop begins still gets its 250, and the
    message is in the queue after a restart."""
    c = connect(drover.port)
    c.start()
    c.cmd("MAIL FROM:<inflight@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    assert c.cmd("DATA") == "354"
    c.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    drover.send_signal(signal.SIGTERM)
    wait_for(lambda: not listening_inodes(drover.port), deadline(10),
             what="the listener to close after SIGTERM")
    c.send(b"second half\r\n.\r\n")
    r = c.reply(timeout=deadline(15))
    assert r == "250 2.0.0", r
    assert drover.wait() == 0
    drover.start()
    queued = {m["id"]: m for m in drover.queue_list()}
    assert queued[r.queue_id]["sender"] == "inflight@example.org"


def test_sighup_reopens_the_event_log(drover):
    send_one(drover.port, "before@example.org")
    drover.wait_events(lambda e: e.get("type") == "Reception")
    rotated = drover.event_log.with_name("events.jsonl.1")
    os.rename(drover.event_log, rotated)
    drover.send_signal(signal.SIGHUP)
    # Records written after the HUP land in a new file at the configured path; poll until
    # one does (the reopen is asynchronous).
    def logged_anew():
        send_one(drover.port, "after@example.org")
        return drover.event_log.exists() and any(
            e.get("sender") == "after@example.org" for e in drover.events())
    wait_for(logged_anew, deadline(10), interval=0.1, what="a record in the reopened event log")
    assert "before@example.org" in rotated.read_text()
    assert drover.alive()


def test_event_size_is_the_size_received(drover):
    msg = message(size=3000)
    qid, _ = send_one(drover.port, msg=msg)
    (e,) = drover.wait_events(lambda e: e.get("type") == "Reception")
    assert e["size"] == len(msg)
    (m,) = drover.queue_list()
    assert m["size"] > len(msg)  # the stored size has our Received: header too


def test_second_server_on_the_same_spool_refuses_to_start(drover, tmp_path):
    """Two daemons on one spool would recover each other's messages in transit."""
    import subprocess
    conf = tmp_path / "second.conf"
    # Same spool, another port: only the spool lock can stop it.
    text = drover.config_text().replace(f"127.0.0.1:{drover.port}", "127.0.0.1:1")
    conf.write_text(text)
    r = subprocess.run([drover.bin, "serve", "--config", str(conf)], capture_output=True,
                       text=True, timeout=deadline(10))
    assert r.returncode != 0
    assert "in use by another drover" in r.stderr
    qid, _ = send_one(drover.port)  # the first server is unharmed
    assert qid in drover.queue_ids()
