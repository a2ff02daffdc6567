"""Webhooks end to end: a real `drover serve` POSTs its event records to HTTP receivers on
loopback (Python's http.server, in threads of this process) that answer as each test scripts:
2xx, 500, nothing (a port nobody listens on: connection refused), or not at all (a request
that hangs). The event log is the reference: a webhook must carry exactly its records.

Every wait is a deadline on a condition; retry_max is short where a test waits for a retry.
"""

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import SANITIZED, deadline, free_port, message, smtp, wait_for
from receiver import Receiver, Script

SENDER = "alice@sender.example"
DEST = "dest.example"


# ---------------------------------------------------------------- the webhook receiver

class HookReceiver:
    """An HTTP endpoint on 127.0.0.1 that records every POST. status(n) answers the n-th
    request (from 1); stall makes requests wait until release() (or 60 s). Not started, or
    stopped, its port refuses connections."""

    def __init__(self, status=None, stall=False):
        self.port = free_port()
        self.status = status or (lambda n: 200)
        self.stall = stall
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.requests = []  # dicts: n, path, headers, records (parsed), status
        self.started_requests = 0
        self.server = None
        self.thread = None

    def start(self):
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as curl uses it

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook.lock:
                    hook.started_requests += 1
                    n = hook.started_requests
                if hook.stall:
                    hook.released.wait(60)
                code = hook.status(n)
                with hook.lock:
                    hook.requests.append({"n": n, "path": self.path,
                                          "headers": dict(self.headers),
                                          "records": json.loads(body), "status": code})
                reply = b"ok\n"
                self.send_response(code)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.released.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)
            self.server = None

    def release(self):
        self.released.set()

    def answered(self, ok=True):
        """The requests answered 2xx (ok) or otherwise."""
        with self.lock:
            return [r for r in self.requests if (200 <= r["status"] < 300) == ok]

    def records(self):
        """Every record of the requests answered 2xx, in the order received."""
        return [rec for r in self.answered() for rec in r["records"]]

    def unique(self):
        """The acknowledged records, one per event_id (at least once: duplicates allowed)."""
        out = {}
        for rec in self.records():
            out.setdefault(rec["event_id"], rec)
        return out


@pytest.fixture
def hooks():
    """Factory: hooks(status=..., stall=..., start=True) -> HookReceiver; all stopped at the
    end."""
    made = []

    def make(start=True, **kw):
        h = HookReceiver(**kw)
        made.append(h)
        return h.start() if start else h

    yield make
    for h in made:
        h.stop()


# ---------------------------------------------------------------- helpers

def fmt(v):
    if isinstance(v, (list, tuple)):
        return "{ " + ", ".join(fmt(x) for x in v) + " }"
    if isinstance(v, int):
        return str(v)
    return json.dumps(v)


def webhook(name, port, **settings):
    lines = [f'webhook "{name}" {{', f'  url = "http://127.0.0.1:{port}/hook/{name}"']
    lines += [f"  {k} = {fmt(v)}" for k, v in settings.items()]
    return "\n".join(lines + ["}"])


def metrics(port):
    """The /metrics figures. The control port starts listening a moment after the SMTP port
    (which is what Drover.start() waits for): a refused connection is tried again."""
    end = time.monotonic() + deadline(10)
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                        timeout=deadline(10)) as r:
                text = r.read().decode()
            break
        except urllib.error.URLError as e:
            if not isinstance(e.reason, ConnectionRefusedError) or time.monotonic() > end:
                raise
            time.sleep(0.02)
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def hook_metric(port, what, name="crm"):
    return metrics(port)[f'drover_webhook_{what}{{webhook="{name}"}}']


def send(port, count, rcpt=lambda i: f"user{i}@{DEST}"):
    """count messages in one session; their queue ids, in order."""
    ids = []
    with smtp(port) as s:
        for i in range(count):
            assert s.mail(SENDER)[0] == 250
            assert s.rcpt(rcpt(i))[0] == 250
            code, text = s.data(message(subject=f"m{i}"))
            assert code == 250, (code, text)
            ids.append(text.decode().split()[-1])
    return ids


def without_id(rec):
    r = dict(rec)
    del r["event_id"]
    return r


def seq(rec):
    """The record's number in its webhook's backlog (event_id is "<epoch>-<n>")."""
    epoch, n = rec["event_id"].split("-")
    assert re.fullmatch(r"[0-9a-f]{16}", epoch), rec["event_id"]
    return int(n)


# ---------------------------------------------------------------- tests

def test_batches_carry_the_configured_events_once_in_order(make_drover, hooks):
    """A healthy receiver gets exactly the event log's Delivery and Bounce records (no
    Reception, no DsnQueued), each once, in the order written, in batches of at most
    batch_max, with the configured header, the JSON content type and Drover's user agent."""
    hook = hooks()
    cport = free_port()
    bad = {f"bad{i}@{DEST}": "550 5.1.1 no such user" for i in range(3)}
    with Receiver(Script(rcpt_replies=bad)) as rx:
        route = [f"127.0.0.1:{rx.port}"]
        d = make_drover(delivery={"retry": ["1s"]}, routes={DEST: route, "sender.example": route},
                        control=f"127.0.0.1:{cport}",
                        extra=webhook("crm", hook.port, events=["Delivery", "Bounce"], batch_max=5,
                                      header=["Authorization: Bearer t0ken"]))
        send(d.port, 12, rcpt=lambda i: f"bad{i // 4}@{DEST}" if i % 4 == 3 else f"u{i}@{DEST}")
        # 9 deliveries, 3 bounces, and the 3 DSNs delivered to the sender's domain.
        d.wait_events(lambda e: e["type"] == "Delivery", count=12, timeout=deadline(30))
        wait_for(lambda: not d.queue_list(), deadline(30), interval=0.1, what="an empty queue")
        want = [e for e in d.events() if e["type"] in ("Delivery", "Bounce")]
        assert len(want) == 15 and sum(e["type"] == "Bounce" for e in want) == 3
        wait_for(lambda: len(hook.records()) >= len(want), deadline(20),
                 what=f"{len(want)} records at the webhook")
        got = hook.records()
        assert [without_id(r) for r in got] == want
        assert [seq(r) for r in got] == list(range(1, len(want) + 1))
        assert not hook.answered(ok=False)
        for r in hook.requests:
            assert 1 <= len(r["records"]) <= 5
            assert r["path"] == "/hook/crm"
            assert r["headers"]["Content-Type"] == "application/json"
            assert r["headers"]["User-Agent"].startswith("drover/")
            assert r["headers"]["Authorization"] == "Bearer t0ken"
        # The receiver records a request before it answers: the counters follow the answer.
        wait_for(lambda: hook_metric(cport, "records_sent_total") == len(want), deadline(10),
                 what="records_sent_total")
        m = metrics(cport)
        assert m['drover_webhook_batches_sent_total{webhook="crm"}'] == len(hook.requests)
        assert m['drover_webhook_backlog_records{webhook="crm"}'] == 0
        assert m['drover_webhook_failing{webhook="crm"}'] == 0


def test_failing_receiver_gets_every_record_and_mail_is_not_slowed(make_drover, hooks):
    """The receiver is down (connection refused) while mail flows, then answers 500 three
    times, then recovers: every record arrives (at least once: counted by event_id), the
    mail was delivered meanwhile at its own pace, and the failure is recorded once (one
    WebhookFailing, one WebhookRecovered), not once per retry."""
    hook = hooks(start=False, status=lambda n: 500 if n <= 3 else 200)
    cport = free_port()
    with Receiver(Script()) as rx:
        d = make_drover(delivery={"retry": ["1s"]}, routes={DEST: [f"127.0.0.1:{rx.port}"]},
                        control=f"127.0.0.1:{cport}",
                        extra=webhook("crm", hook.port, events=["Reception", "Delivery"],
                                      batch_max=10, retry_max="2s"))
        ids = send(d.port, 30)
        # Delivery does not wait for the webhook: all 30 go while it still fails.
        d.wait_events(lambda e: e["type"] == "Delivery", count=30, timeout=deadline(20))
        assert len(rx.messages()) == 30
        wait_for(lambda: hook_metric(cport, "batches_failed_total") >= 3, deadline(20),
                 what="three failed attempts")
        assert hook_metric(cport, "failing") == 1
        wait_for(lambda: hook_metric(cport, "backlog_records") == 60, deadline(10),
                 what="60 records in the backlog")
        assert len([e for e in d.events() if e["type"] == "WebhookFailing"]) == 1

        hook.start()  # 500, 500, 500, then 200
        wait_for(lambda: len(hook.unique()) >= 60, deadline(40), what="60 unique records")
        want = {(e["type"], e["id"], e.get("recipient")) for e in d.events()
                if e["type"] in ("Reception", "Delivery")}
        got = {(r["type"], r["id"], r.get("recipient")) for r in hook.unique().values()}
        assert got == want and len(want) == 60
        assert {e[1] for e in got} == set(ids)
        # What the 500s carried was sent again, the same records under the same ids.
        failed = hook.answered(ok=False)
        assert len(failed) == 3
        for r in failed:
            for rec in r["records"]:
                assert hook.unique()[rec["event_id"]] == rec
        events = d.wait_events(lambda e: e["type"] == "WebhookRecovered", count=1)
        assert events[0]["webhook"] == "crm" and events[0]["failed_attempts"] >= 4
        assert len([e for e in d.events() if e["type"] == "WebhookFailing"]) == 1
        wait_for(lambda: hook_metric(cport, "backlog_records") == 0
                 and hook_metric(cport, "failing") == 0, deadline(10),
                 what="an empty backlog, the webhook not failing")
        assert hook_metric(cport, "records_dropped_total") == 0
        # Records about webhooks went to none (not asked for).
        assert not [r for r in hook.records() if r["type"].startswith("Webhook")]


def test_restart_while_receiver_down_sends_everything_after(make_drover, hooks):
    """The receiver is down across a graceful restart and a kill -9: the records wait on
    disk and all arrive once it is back."""
    hook = hooks(start=False)
    cport = free_port()
    d = make_drover(control=f"127.0.0.1:{cport}",
                    extra=webhook("crm", hook.port, events=["Reception"], retry_max="1s"))
    ids = send(d.port, 10)
    wait_for(lambda: hook_metric(cport, "backlog_records") == 10
             and hook_metric(cport, "batches_failed_total") >= 1, deadline(20),
             what="10 records waiting, an attempt failed")
    d.restart()
    wait_for(lambda: hook_metric(cport, "backlog_records") == 10, deadline(10),
             what="the backlog after the restart")
    ids += send(d.port, 5)
    wait_for(lambda: hook_metric(cport, "backlog_records") == 15, deadline(10),
             what="15 records in the backlog")
    d.kill9()
    d.start()
    hook.start()
    wait_for(lambda: len(hook.unique()) >= 15, deadline(30), what="15 records")
    got = [r["id"] for r in hook.unique().values()]
    assert sorted(got) == sorted(ids)
    # In order: the backlog's numbers follow the order the records were written.
    assert [r["id"] for r in sorted(hook.unique().values(), key=seq)] == ids
    wait_for(lambda: hook_metric(cport, "backlog_records") == 0, deadline(10),
             what="an empty backlog")


def test_backlog_max_bounds_the_disk_and_counts_drops(make_drover, hooks):
    """With the receiver down, backlog_max (64k) bounds the files on disk: the oldest records
    are dropped, counted in /metrics and logged; the receiver later gets the rest, and
    received + dropped == written."""
    hook = hooks(start=False)
    cport = free_port()
    total = 400  # ~130 KB of Reception records: twice the bound
    d = make_drover(control=f"127.0.0.1:{cport}",
                    extra=webhook("crm", hook.port, events=["Reception"], backlog_max="64k",
                                  batch_max=10, retry_max="1s"))
    ids = send(d.port, total)

    def settled():
        m = metrics(cport)
        dropped = m['drover_webhook_records_dropped_total{webhook="crm"}']
        waiting = m['drover_webhook_backlog_records{webhook="crm"}']
        return dropped > 0 and dropped + waiting == total

    wait_for(settled, deadline(20), what="every record kept or dropped")
    files = list((d.spool / "webhooks" / "crm").glob("*.jsonl"))
    assert files and sum(f.stat().st_size for f in files) <= 64 * 1024
    assert hook_metric(cport, "backlog_bytes") <= 64 * 1024
    dropped = int(hook_metric(cport, "records_dropped_total"))
    wait_for(lambda: "records dropped (backlog_max reached" in d.stderr_text(), deadline(5),
             what="the drop in the log")

    hook.start()
    wait_for(lambda: hook_metric(cport, "backlog_records") == 0, deadline(30),
             what="an empty backlog")
    got = {r["id"] for r in hook.unique().values()}
    assert len(got) + dropped == total
    # The oldest went: what arrived is the batch that was in flight (the first ones, kept in
    # memory) and then everything after the dropped ones.
    kept = [i in got for i in ids]
    first = kept.index(False)
    assert first <= 10 and kept == [True] * first + [False] * dropped + [True] * (
        total - first - dropped)


def test_stop_aborts_a_request_in_flight(make_drover, hooks):
    """A request that hangs (timeout 5m) does not hold up a stop; its batch was not
    acknowledged, so the next run sends it again."""
    hook = hooks(stall=True)
    d = make_drover(extra=webhook("crm", hook.port, events=["Reception"], timeout="5m",
                                  batch_wait=0))
    ids = send(d.port, 1)
    wait_for(lambda: hook.started_requests >= 1, deadline(10), what="a request in flight")
    started = time.monotonic()
    assert d.stop(timeout=deadline(20)) == 0
    assert time.monotonic() - started < deadline(5)
    hook.release()
    hook.stall = False
    d.start()
    wait_for(lambda: ids[0] in {r["id"] for r in hook.records()
                                if r["type"] == "Reception"} and
             len(hook.requests) >= 2, deadline(20), what="the batch sent again")


def test_webhooks_are_independent_and_never_told_of_themselves(make_drover, hooks):
    """Three webhooks: "slow" hangs, "down" refuses connections, "ops" is healthy. ops gets
    every record at once, and the WebhookFailing record about "down"; when "down" comes
    back it gets its records, but not the record of its own failure."""
    slow, down, ops = hooks(stall=True), hooks(start=False), hooks()
    cport = free_port()
    events = ["Reception", "WebhookFailing", "WebhookRecovered"]
    d = make_drover(control=f"127.0.0.1:{cport}", extra="\n".join([
        webhook("slow", slow.port, events=events, timeout="5m", batch_wait=0),
        webhook("down", down.port, events=events, retry_max="1s", batch_wait=0),
        webhook("ops", ops.port, events=events, batch_wait=0)]))
    ids = send(d.port, 5)
    wait_for(lambda: {r["id"] for r in ops.records() if r["type"] == "Reception"} == set(ids),
             deadline(10), what="ops' records while slow hangs")
    wait_for(lambda: [r for r in ops.records() if r["type"] == "WebhookFailing"],
             deadline(10), what="the failure of down, told to ops")
    failing = [r for r in ops.records() if r["type"] == "WebhookFailing"]
    assert [r["webhook"] for r in failing] == ["down"]
    assert slow.started_requests >= 1 and not slow.requests  # still hanging

    down.start()
    wait_for(lambda: {r["id"] for r in down.records() if r["type"] == "Reception"} == set(ids),
             deadline(20), what="down's records once it is back")
    wait_for(lambda: [r for r in ops.records() if r["type"] == "WebhookRecovered"],
             deadline(10), what="the recovery of down, told to ops")
    assert not [r for r in down.records() if r.get("webhook") == "down"]
    assert hook_metric(cport, "failing", "down") == 0
    slow.release()
