"""Streams end to end: transactional mail and bulk mail travel apart.

A receiver on 127.0.0.10 accepts slowly (a delay before each end-of-data reply) and records the
peer address and EHLO name of every transaction. Transactional mail leaves from source "tx"
(127.0.0.2) and bulk mail from source "bulk" (127.0.0.3); a classification rule files mail from
bulk.example under stream "bulk", a catch-all under "transactional".
"""

import json
import os
import subprocess
import time

import pytest

from conftest import SANITIZED, SMTP_SOURCE, deadline, message, smtp, wait_for
from receiver import Receiver, Script

RX_IP, TX_IP, BULK_IP = "127.0.0.10", "127.0.0.2", "127.0.0.3"
DEST = "slow.example"
BULK_SENDER, TX_SENDER = "news@bulk.example", "receipts@app.example"

ROUTING = """
source "tx" { address = "127.0.0.2" ehlo = "tx.drover.example" }
source "bulk" { address = "127.0.0.3" ehlo = "bulk.drover.example" }
pool "tx" { source "tx" { } }
pool "bulk" { source "bulk" { } }
stream "transactional" {
  priority = 100
  pool = "tx"
}
stream "bulk" {
  priority = 10
  pool = "bulk"
  lifetime = "3d"
}
classification {
  rule {
    mail_from_domain = { "bulk.example" }
    stream = "bulk"
  }
  rule {
    stream = "transactional"
  }
}
"""


def start(make_drover, rx_port, extra=ROUTING, **delivery):
    d = {"retry": ["1s"], "max_connections": 10}
    d.update(delivery)
    return make_drover(delivery=d, routes={DEST: [f"{RX_IP}:{rx_port}"]}, extra=extra)


def send(port, sender, count, rcpt=f"user@{DEST}"):
    with smtp(port) as s:
        for _ in range(count):
            assert s.mail(sender)[0] == 250
            assert s.rcpt(rcpt)[0] == 250
            code, text = s.data(message())
            assert code == 250, (code, text)


def by_sender(rx, sender):
    return [m for m in rx.messages() if m["mail_from"] == sender]


@pytest.mark.skipif(not os.access(SMTP_SOURCE, os.X_OK), reason="smtp-source (postfix) missing")
def test_bulk_backlog_does_not_delay_transactional(make_drover):
    """The issue's proof: 50,000 bulk messages queued for a destination that accepts slowly,
    then 100 transactional ones for the same destination: all 100 are delivered within
    seconds, while bulk goes on at its own pace. (5,000 under ASan, which spools five times
    slower; the mechanism is the same.)"""
    bulk_count = 5000 if SANITIZED else 50000
    with Receiver(Script(delays={"dot": 0.2}), hosts=(RX_IP,)) as rx:
        d = start(make_drover, rx.port)
        r = subprocess.run(
            [SMTP_SOURCE, "-s", "20", "-m", str(bulk_count), "-l", "512", "-f", BULK_SENDER,
             "-t", f"user@{DEST}", f"127.0.0.1:{d.port}"],
            capture_output=True, text=True, timeout=deadline(300))
        assert r.returncode == 0, r.stdout + r.stderr
        # Bulk is flowing, and far from done.
        wait_for(lambda: len(by_sender(rx, BULK_SENDER)) >= 20, deadline(30), interval=0.2,
                 what="bulk deliveries under way")
        t0 = time.monotonic()
        send(d.port, TX_SENDER, 100)
        wait_for(lambda: len(by_sender(rx, TX_SENDER)) >= 100, deadline(30), interval=0.1,
                 what="100 transactional deliveries")
        took = time.monotonic() - t0
        bulk_then = len(by_sender(rx, BULK_SENDER))
        print(f"100 transactional delivered in {took:.2f} s behind {bulk_count} bulk; "
              f"{bulk_then} bulk delivered by then")
        # "Within seconds": the receiver takes 0.2 s per message per connection; 100 messages
        # over the destination's connections. A tenth of the bulk backlog would take minutes.
        assert took < deadline(10)
        assert bulk_then < bulk_count / 2
        # Each stream left from its own pool's address, under its own name.
        tx = by_sender(rx, TX_SENDER)
        assert {(m["peer"], m["helo"]) for m in tx} == {(TX_IP, "tx.drover.example")}
        bulk = by_sender(rx, BULK_SENDER)
        assert {(m["peer"], m["helo"]) for m in bulk} == {(BULK_IP, "bulk.drover.example")}
        # Bulk carries on after transactional is done.
        wait_for(lambda: len(by_sender(rx, BULK_SENDER)) >= bulk_then + 20, deadline(30),
                 interval=0.2, what="bulk still moving")
        # The summary shows the two queues apart.
        r = d.cli("queue", "summary", "--config", str(d.config_path), "--json")
        assert r.returncode == 0, r.stderr
        rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        queues = {row["queue"]: row for row in rows if "queue" in row}
        assert rows[-1] == {"adaptive_actions": None}  # no control plane in this test
        assert f"bulk:bulk@{DEST}" in queues
        row = queues[f"bulk:bulk@{DEST}"]
        assert row["stream"] == "bulk" and row["pool"] == "bulk"
        assert row["destination"] == DEST
        assert row["messages"] > bulk_count / 4


def test_each_stream_uses_its_pool_and_records_its_queue(make_drover):
    with Receiver(hosts=(RX_IP,)) as rx:
        d = start(make_drover, rx.port)
        send(d.port, TX_SENDER, 5)
        send(d.port, BULK_SENDER, 5)
        wait_for(lambda: len(rx.messages()) >= 10, deadline(20), interval=0.1,
                 what="10 deliveries")
        peers = {(m["mail_from"], m["peer"], m["helo"]) for m in rx.messages()}
        assert peers == {(TX_SENDER, TX_IP, "tx.drover.example"),
                         (BULK_SENDER, BULK_IP, "bulk.drover.example")}
        records = d.wait_events(lambda e: e.get("type") == "Delivery", count=10,
                                timeout=deadline(10))
        queues = {(e["sender"], e["queue"], e["stream"], e["pool"], e["source_ip"])
                  for e in records}
        assert queues == {
            (TX_SENDER, f"transactional:tx@{DEST}", "transactional", "tx", TX_IP),
            (BULK_SENDER, f"bulk:bulk@{DEST}", "bulk", "bulk", BULK_IP),
        }


def test_stream_retry_and_queue_summary(make_drover):
    """A deferred bulk message waits in its stream's queue, shown by `drover queue summary`
    with the reply that deferred it; `queue list --json` names the queue per recipient."""
    script = Script(replies={"rcpt": "451 4.7.0 [TS01] Messages temporarily deferred"})
    with Receiver(script, hosts=(RX_IP,)) as rx:
        d = start(make_drover, rx.port, retry=["1h"])
        send(d.port, BULK_SENDER, 3)
        send(d.port, TX_SENDER, 2)
        d.wait_events(lambda e: e.get("type") == "TransientFailure", count=5,
                      timeout=deadline(20))
        r = d.cli("queue", "summary", "--config", str(d.config_path))
        assert r.returncode == 0, r.stderr
        out = r.stdout
        assert "bulk" in out and "transactional" in out
        assert "[TS01]" in out
        assert "5 messages in 2 queues" in out
        listed = d.queue_list()
        lanes = {m["sender"]: {x["queue"] for x in m["delivery"]} for m in listed}
        assert lanes[BULK_SENDER] == {f"bulk:bulk@{DEST}"}
        assert lanes[TX_SENDER] == {f"transactional:tx@{DEST}"}
        assert {m["stream"] for m in listed} == {"bulk", "transactional"}
        assert rx.messages() == []


def test_unknown_pool_or_stream_is_a_config_error(drover_bin, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text('stream "bulk" {\n  pool = "nope"\n}\n')
    r = subprocess.run([drover_bin, "check-config", str(conf)], capture_output=True,
                       text=True, timeout=deadline(10))
    assert r.returncode != 0
    assert f"{conf}:2" in r.stderr and "nope" in r.stderr
