"""Delivery end to end: mail accepted by `drover serve` goes out through the delivery engine to
scripted SMTP receivers (receiver.py, in threads of this process) found through a real DNS
server (dnsserver.py) that Drover's resolver forwards to.

Every receiver listens on its own loopback address (127.0.0.2, .3, ... all reach loopback) and
the same port, which is Drover's delivery.port, so MX records choose the receiver as they would
on the Internet. The sender's domain has a receiver too, so DSNs are delivered like any mail,
and parsed back with dsncheck.

Retries are 1 s apart, timeouts short, and every wait is a deadline on a condition.
"""

import json
import signal
import socket
import smtplib
import subprocess

import pytest

from conftest import deadline, free_port, message, smtp, wait_for
from dnsserver import DNSServer
from dsncheck import parse_dsn
from receiver import Receiver, Script

SENDER = "alice@sender.example"
DEST_IP, SENDER_IP, DEST2_IP, OTHER_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"

# The usual world: dest.example and dest2.example each have a mail exchanger, and so has the
# sender's domain (for DSNs).
BASE_ZONE = {
    "dest.example": {"MX": [[10, "mx1.dest.example"]]},
    "mx1.dest.example": {"A": [DEST_IP]},
    "dest2.example": {"MX": [[10, "mx.dest2.example"]]},
    "mx.dest2.example": {"A": [DEST2_IP]},
    "sender.example": {"MX": [[10, "mx.sender.example"]]},
    "mx.sender.example": {"A": [SENDER_IP]},
}


# ---------------------------------------------------------------- the world around Drover

class Net:
    """Receivers, one per loopback address, all on one port."""

    def __init__(self):
        self.port = free_port()
        self.rx = {}

    def receiver(self, ip, script=None):
        """Starts (or replaces) the receiver on ip."""
        self.stop(ip)
        rx = Receiver(script or Script(), hosts=(ip,), port=self.port).start()
        self.rx[ip] = rx
        return rx

    def stop(self, ip):
        rx = self.rx.pop(ip, None)
        if rx is not None:
            rx.stop()

    def stop_all(self):
        for ip in list(self.rx):
            self.stop(ip)


@pytest.fixture
def net():
    n = Net()
    yield n
    n.stop_all()


@pytest.fixture
def dns():
    server = DNSServer({"records": BASE_ZONE, "negative_ttl": 1, "ttl": 1}).start()
    yield server
    server.stop()


def zone(**extra):
    """BASE_ZONE plus records (keys with '_' for '.', e.g. nomx_example)."""
    records = dict(BASE_ZONE)
    records.update({k.replace("_", "."): v for k, v in extra.items()})
    return {"records": records, "negative_ttl": 1, "ttl": 1}


@pytest.fixture
def deliverer(make_drover, dns, net):
    """Factory: a Drover that delivers through the test DNS server to net's port, retrying
    every second. delivery={...} adds or overrides settings."""

    def make(delivery=None, **conf):
        d = {"port": net.port, "dns_forwarders": [dns.forwarder], "retry": ["1s"],
             "helo_name": "out.drover.example"}
        d.update(delivery or {})
        return make_drover(delivery=d, **conf)

    return make


# ---------------------------------------------------------------- helpers

def submit(port, rcpts, sender=SENDER, msg=None, mail_options=(), rcpt_options=None):
    """Sends one message; rcpt_options maps a recipient to its RCPT parameters. Returns
    (queue id, message bytes)."""
    msg = msg if msg is not None else message()
    rcpt_options = rcpt_options or {}
    with smtp(port) as s:
        code, text = s.mail(sender, list(mail_options))
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = s.rcpt(r, list(rcpt_options.get(r, ())))
            assert code == 250, (code, text)
        code, text = s.data(msg)
        assert code == 250, (code, text)
        return text.decode().split()[-1], msg


def records(d, type_, **match):
    return [e for e in d.events()
            if e["type"] == type_ and all(e.get(k) == v for k, v in match.items())]


def wait_records(d, type_, count=1, timeout=20, **match):
    return d.wait_events(lambda e: e["type"] == type_ and all(e.get(k) == v
                                                              for k, v in match.items()),
                         count=count, timeout=deadline(timeout))


def wait_queue_empty(d, timeout=20):
    wait_for(lambda: not d.queue_list(), deadline(timeout), interval=0.1,
             what="an empty queue")


def wait_messages(rx, count=1, timeout=20, pred=lambda m: True):
    found = []

    def check():
        found[:] = [m for m in rx.messages() if pred(m)]
        return len(found) >= count

    wait_for(check, deadline(timeout), what=f"{count} message(s) at the receiver")
    return found


def body_of(m):
    """The content as received, minus the Received: header Drover added (first field)."""
    data = m["data"].encode("latin-1")
    lines = data.split(b"\r\n")
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\r\n".join(lines[i:])


def dsns(rx):
    return [m for m in rx.messages() if m["mail_from"] == ""]


def wait_dsn(rx, timeout=20):
    m = wait_messages(rx, 1, timeout, pred=lambda m: m["mail_from"] == "")[0]
    return m, parse_dsn(m["data"].encode("latin-1"))


# ---------------------------------------------------------------- delivered

def test_accepted_mail_is_delivered_and_leaves_the_queue(deliverer, net):
    rx = net.receiver(DEST_IP)
    d = deliverer()
    qid, msg = submit(d.port, ["bob@dest.example"])
    m = wait_messages(rx)[0]
    assert m["mail_from"] == SENDER and m["rcpt_to"] == ["bob@dest.example"]
    assert m["helo"] == "out.drover.example"
    assert m["data"].startswith("Received: from ") and f"id {qid}" in m["data"].split("\r\n\r\n")[0]
    assert body_of(m) == msg
    rec = wait_records(d, "Delivery", id=qid)[0]
    assert rec["recipient"] == "bob@dest.example" and rec["sender"] == SENDER
    assert rec["destination"] == "dest.example"
    assert (rec["mx"], rec["ip"], rec["port"]) == ("mx1.dest.example", DEST_IP, net.port)
    assert rec["reply"].startswith("250 2.0.0 Ok: queued as S1T1"), rec
    assert rec["status"] == "2.0.0" and rec["attempt"] == 1 and rec["reused"] is False
    assert rec["queue_time_s"] >= 0 and rec["elapsed_ms"] >= 0
    wait_queue_empty(d)


def test_4xx_then_accept_is_retried_then_delivered(deliverer, net):
    rx = net.receiver(DEST_IP, Script(replies={"rcpt": "451 4.3.0 greylisted, come back"},
                                      times={"rcpt": 1}))
    d = deliverer()
    qid, msg = submit(d.port, ["bob@dest.example"])
    tf = wait_records(d, "TransientFailure", id=qid)[0]
    assert tf["reply"] == "451 4.3.0 greylisted, come back" and tf["attempt"] == 1, tf
    assert tf["status"] == "4.3.0" and tf["mx"] == "mx1.dest.example"
    ok = wait_records(d, "Delivery", id=qid)[0]
    assert ok["attempt"] == 2
    assert len(rx.messages()) == 1 and body_of(rx.messages()[0]) == msg
    wait_queue_empty(d)


def test_queue_list_shows_where_each_recipient_stands(deliverer, net):
    """After a deferral an operator sees, per recipient: pending, attempts, the next attempt
    and the last reply; a recipient already delivered shows as delivered."""
    net.receiver(DEST_IP, Script(rcpt_replies={"bob@dest.example": "451 4.7.1 slow down"}))
    d = deliverer({"retry": ["1h"]})
    qid, _ = submit(d.port, ["alice@dest.example", "bob@dest.example"])
    wait_records(d, "TransientFailure", id=qid)

    def states():
        msg = [m for m in d.queue_list() if m["id"] == qid]
        return {r["address"]: r for r in msg[0]["delivery"]} if msg else {}

    wait_for(lambda: states().get("bob@dest.example", {}).get("attempts") == 1,
             deadline(20), what="the deferral recorded in the spool")
    st = states()
    assert st["alice@dest.example"]["state"] == "delivered"
    bob = st["bob@dest.example"]
    assert bob["state"] == "pending" and bob["attempts"] == 1
    assert bob["last_reply"].startswith("451 4.7.1"), bob
    assert bob["next_attempt"] is not None


def test_5xx_for_one_of_several_bounces_that_one_only(deliverer, net):
    rx = net.receiver(DEST_IP, Script(rcpt_replies={"bad@dest.example": "550 5.1.1 <bad@dest.example>: no such user"}))
    home = net.receiver(SENDER_IP)
    d = deliverer()
    qid, msg = submit(
        d.port, ["good1@dest.example", "bad@dest.example", "good2@dest.example"],
        mail_options=["RET=HDRS", "ENVID=order-4711"],
        rcpt_options={"bad@dest.example": ["NOTIFY=FAILURE", "ORCPT=rfc822;orig+2Bbad@orig.example"]})
    m = wait_messages(rx)[0]
    assert m["rcpt_to"] == ["good1@dest.example", "good2@dest.example"]
    assert m["rcpt_refused"] == ["bad@dest.example"]
    bounce = wait_records(d, "Bounce", id=qid)[0]
    assert bounce["recipient"] == "bad@dest.example" and bounce["status"] == "5.1.1"
    assert bounce["reply"] == "550 5.1.1 <bad@dest.example>: no such user"
    assert {r["recipient"] for r in records(d, "Delivery", id=qid)} == {
        "good1@dest.example", "good2@dest.example"}

    raw, dsn = wait_dsn(home)
    assert raw["rcpt_to"] == [SENDER]
    assert dsn["headers"]["to"] == f"<{SENDER}>" or SENDER in dsn["headers"]["to"]
    assert len(dsn["recipients"]) == 1, dsn["recipients"]
    r = dsn["recipients"][0]
    assert r["final_address"] == "bad@dest.example" and r["action"] == "failed"
    assert r["status"] == "5.1.1"
    assert r["diagnostic-code"] == "smtp; 550 5.1.1 <bad@dest.example>: no such user"
    assert r["remote-mta"] == "dns; mx1.dest.example"
    assert r["original_address"] == "orig+bad@orig.example"
    assert dsn["per_message"]["original-envelope-id"] == "order-4711"
    assert dsn["per_message"]["x-drover-queue-id"] == qid
    assert dsn["returned"] == "headers"  # RET=HDRS
    assert dsn["original_headers"]["message-id"] in msg.decode()
    dq = wait_records(d, "DsnQueued", original_id=qid)[0]
    assert dq["recipient"] == SENDER and dq["reported"] == ["bad@dest.example"]
    wait_queue_empty(d)  # the original (all done) and the DSN (delivered)
    assert len(dsns(home)) == 1


def test_bounce_returns_the_whole_message_by_default_and_never_when_notify_never(deliverer, net):
    net.receiver(DEST_IP, Script(rcpt_replies={"bad@dest.example": "550 5.1.1 unknown",
                                               "quiet@dest.example": "550 5.1.1 unknown"}))
    home = net.receiver(SENDER_IP)
    d = deliverer()
    quiet, _ = submit(d.port, ["quiet@dest.example"],
                      rcpt_options={"quiet@dest.example": ["NOTIFY=NEVER"]})
    qid, msg = submit(d.port, ["bad@dest.example"])
    wait_records(d, "Bounce", id=quiet)
    raw, dsn = wait_dsn(home)
    assert dsn["returned"] == "message"
    assert dsn["original_body"].replace("\r\n", "\n") == msg.split(b"\r\n\r\n", 1)[1].decode().replace("\r\n", "\n")
    assert "original-envelope-id" not in dsn["per_message"]
    assert "original_address" not in dsn["recipients"][0]
    wait_queue_empty(d)
    assert len(dsns(home)) == 1  # none for NOTIFY=NEVER
    assert not records(d, "DsnQueued", original_id=quiet)


def test_null_sender_failure_goes_to_the_postmaster(deliverer, net):
    net.receiver(DEST_IP, Script(rcpt_replies={"bad@dest.example": "550 5.1.1 unknown"}))
    home = net.receiver(SENDER_IP)
    d = deliverer({"postmaster": "postmaster@sender.example"})
    qid, _ = submit(d.port, ["bad@dest.example"], sender="")
    raw, dsn = wait_dsn(home)
    assert raw["rcpt_to"] == ["postmaster@sender.example"]
    assert dsn["recipients"][0]["final_address"] == "bad@dest.example"
    assert "postmaster" in dsn["headers"]["subject"].lower()
    wait_queue_empty(d)
    assert len(dsns(home)) == 1


def test_recipients_are_split_by_domain_and_by_transaction_size(deliverer, net):
    a = net.receiver(DEST_IP)
    b = net.receiver(DEST2_IP)
    d = deliverer({"max_recipients_per_transaction": 2})
    rcpts = [f"r{i}@dest.example" for i in range(5)] + ["x@dest2.example", "y@DEST2.example"]
    qid, msg = submit(d.port, rcpts)
    got_a = wait_messages(a, 3)
    got_b = wait_messages(b, 1)
    assert [m["rcpt_to"] for m in got_a] == [rcpts[0:2], rcpts[2:4], rcpts[4:5]]
    assert len({m["session"] for m in got_a}) == 1  # one connection, three transactions
    assert got_b[0]["rcpt_to"] == ["x@dest2.example", "y@DEST2.example"]
    assert all(body_of(m) == msg for m in got_a + got_b)
    wait_records(d, "Delivery", count=7, id=qid)
    wait_queue_empty(d)


def test_several_messages_share_one_connection(deliverer, net):
    rx = net.receiver(DEST_IP)
    d = deliverer({"max_connections": 1, "initial_connections": 1, "idle_timeout": "10s"})
    ids = {submit(d.port, [f"m{i}@dest.example"])[0] for i in range(5)}
    wait_records(d, "Delivery", count=5)
    got = rx.messages()
    assert len(got) == 5
    assert len({m["session"] for m in got}) == 1, [m["session"] for m in got]
    recs = records(d, "Delivery")
    assert {r["id"] for r in recs} == ids
    assert sum(1 for r in recs if r["reused"]) == 4
    wait_queue_empty(d)


def test_many_messages_each_end_delivered_or_bounced_once(deliverer, net):
    """Concurrency: windows, prefetch, reuse and DSNs at once; nothing lost or doubled."""
    bad = {f"bad{i}@dest.example" for i in range(0, 60, 7)}
    a = net.receiver(DEST_IP, Script(rcpt_replies={r: "550 5.1.1 unknown" for r in bad},
                                     replies={"rcpt": "451 4.3.0 later"}, times={"rcpt": 10}))
    b = net.receiver(DEST2_IP)
    home = net.receiver(SENDER_IP)
    d = deliverer({"max_messages_per_connection": 7, "max_connections": 4})
    want = {}
    for i in range(60):
        first = f"bad{i}@dest.example" if f"bad{i}@dest.example" in bad else f"r{i}@dest.example"
        rcpts = [first, f"s{i}@dest2.example"]
        qid, msg = submit(d.port, rcpts, msg=message(subject=f"load {i}"))
        want[qid] = (rcpts, msg)
    wait_queue_empty(d, timeout=60)
    got = {}
    for m in a.messages() + b.messages():
        for r in m["rcpt_to"]:
            got.setdefault(r, []).append(body_of(m))
    expected = {r: [msg] for q, (rs, msg) in want.items() for r in rs if r not in bad}
    assert got == expected
    reported = [parse_dsn(m["data"].encode("latin-1"))["recipients"][0]["final_address"]
                for m in dsns(home)]
    assert sorted(reported) == sorted(bad)
    assert len(records(d, "TransientFailure")) == 10


# ---------------------------------------------------------------- broken connections

def test_unreachable_destination_is_held_back_then_delivered(deliverer, net):
    d = deliverer({"dead_after": 2, "dead_cooldown": "2s", "connect_timeout": "2s"})
    ids = [submit(d.port, [f"m{i}@dest.example"])[0] for i in range(3)]
    wait_for(lambda: "connections keep failing" in d.stderr_text(), deadline(20),
             what="the destination to be held back")
    rx = net.receiver(DEST_IP)
    wait_records(d, "Delivery", count=3, timeout=30)
    assert sorted(m["rcpt_to"][0] for m in rx.messages()) == [f"m{i}@dest.example"
                                                              for i in range(3)]
    wait_queue_empty(d)
    assert {e["id"] for e in records(d, "Delivery")} == set(ids)


def test_drop_mid_data_is_deferred_then_delivered_once(deliverer, net):
    net.receiver(DEST_IP, Script(drop={"content"}))
    d = deliverer()
    qid, msg = submit(d.port, ["bob@dest.example"])
    tf = wait_records(d, "TransientFailure", id=qid)[0]
    assert tf["reply"].startswith("451 4.4.2"), tf
    rx = net.receiver(DEST_IP)  # the receiver recovers
    wait_records(d, "Delivery", id=qid)
    wait_queue_empty(d)
    assert [body_of(m) for m in rx.messages()] == [msg]


def test_stall_past_the_timeout_is_deferred(deliverer, net):
    net.receiver(DEST_IP, Script(stall={"dot"}))
    d = deliverer({"dot_timeout": "1s"})
    qid, msg = submit(d.port, ["bob@dest.example"])
    tf = wait_records(d, "TransientFailure", id=qid)[0]
    assert tf["reply"].startswith("451 4.4.2") and "timed out" in tf["reply"], tf
    assert tf["elapsed_ms"] >= 1000
    assert qid in d.queue_ids()
    rx = net.receiver(DEST_IP)
    wait_records(d, "Delivery", id=qid)
    assert [body_of(m) for m in rx.messages()] == [msg]


def test_421_greeting_at_the_first_mx_the_second_accepts(deliverer, net, dns):
    dns.set_zone(zone(dest_example={"MX": [[10, "mx1.dest.example"], [20, "mx2.dest.example"]]},
                      mx2_dest_example={"A": [OTHER_IP]}))
    first = net.receiver(DEST_IP, Script(greeting="421 4.3.2 too busy"))
    second = net.receiver(OTHER_IP)
    d = deliverer()
    qid, msg = submit(d.port, ["bob@dest.example"])
    rec = wait_records(d, "Delivery", id=qid)[0]
    assert (rec["mx"], rec["ip"], rec["attempt"]) == ("mx2.dest.example", OTHER_IP, 1)
    assert [body_of(m) for m in second.messages()] == [msg]
    assert not first.messages()
    wait_for(lambda: first.sessions(), deadline(5), what="the first MX's session record")
    assert first.sessions()[0]["ended"] == "greeting"


def test_server_without_pipelining_gets_one_command_at_a_time(deliverer, net):
    rx = net.receiver(DEST_IP, Script(pipelining=False))
    d = deliverer({"idle_timeout": "1s"})  # the session record comes after the QUIT
    qid, msg = submit(d.port, ["a@dest.example", "b@dest.example"])
    m = wait_messages(rx)[0]
    assert m["rcpt_to"] == ["a@dest.example", "b@dest.example"] and not m["pipelined"]
    wait_queue_empty(d)
    wait_for(lambda: rx.sessions(), deadline(15), what="the session record")
    assert rx.sessions()[0]["unexpected_pipelining"] == 0


# ---------------------------------------------------------------- DNS

def test_domain_without_mx_gets_its_a_record(deliverer, net, dns):
    dns.set_zone(zone(nomx_example={"A": [DEST2_IP]}))
    rx = net.receiver(DEST2_IP)
    d = deliverer()
    qid, msg = submit(d.port, ["bob@nomx.example"])
    rec = wait_records(d, "Delivery", id=qid)[0]
    assert (rec["mx"], rec["ip"]) == ("nomx.example", DEST2_IP)
    assert [body_of(m) for m in rx.messages()] == [msg]


def test_null_mx_bounces_5_1_10(deliverer, net, dns):
    dns.set_zone(zone(nullmx_example={"MX": [[0, "."]]}))
    home = net.receiver(SENDER_IP)
    d = deliverer()
    qid, _ = submit(d.port, ["bob@nullmx.example"])
    rec = wait_records(d, "Bounce", id=qid)[0]
    assert rec["status"] == "5.1.10" and rec["mx"] is None
    assert rec["reply"].startswith("550 5.1.10") and "null MX" in rec["reply"]
    _, dsn = wait_dsn(home)
    r = dsn["recipients"][0]
    assert (r["final_address"], r["action"], r["status"]) == ("bob@nullmx.example", "failed",
                                                              "5.1.10")
    assert r["diagnostic-code"].lower().startswith("x-drover; 550 5.1.10")
    wait_queue_empty(d)


def test_nxdomain_bounces_5_1_2(deliverer, net):
    home = net.receiver(SENDER_IP)
    d = deliverer()
    qid, _ = submit(d.port, ["bob@nowhere.example"])
    rec = wait_records(d, "Bounce", id=qid)[0]
    assert rec["status"] == "5.1.2" and rec["reply"].startswith("550 5.1.2")
    _, dsn = wait_dsn(home)
    assert dsn["recipients"][0]["status"] == "5.1.2"
    assert dsn["recipients"][0]["final_address"] == "bob@nowhere.example"
    wait_queue_empty(d)


def test_servfail_stays_queued_and_is_retried(deliverer, net, dns):
    spec = zone()
    spec["servfail"] = ["broken.example"]
    dns.set_zone(spec)
    d = deliverer()
    qid, msg = submit(d.port, ["bob@broken.example"])
    recs = wait_records(d, "TransientFailure", count=2, id=qid)
    assert [r["attempt"] for r in recs[:2]] == [1, 2]
    assert all(r["reply"].startswith("451 4.4.3") for r in recs)
    assert qid in d.queue_ids()
    assert not records(d, "Bounce")
    # The zone is repaired: the next retry delivers.
    rx = net.receiver(OTHER_IP)
    dns.set_zone(zone(broken_example={"MX": [[5, "mx.broken.example"]]},
                      mx_broken_example={"A": [OTHER_IP]}))
    wait_records(d, "Delivery", id=qid)
    assert [body_of(m) for m in rx.messages()] == [msg]
    wait_queue_empty(d)


# ---------------------------------------------------------------- routes and smarthost

def test_route_and_smarthost_take_precedence_over_mx(deliverer, net, dns, make_drover):
    routed = Receiver(Script(hostname="routed.example"), hosts=(OTHER_IP,), port=free_port())
    routed.start()
    try:
        dns.set_zone(zone(smart_example={"A": [DEST2_IP]}))
        smart = net.receiver(DEST2_IP)
        mx = net.receiver(DEST_IP)  # dest.example's MX: must not be used
        d = deliverer({"smarthost": ["smart.example"]},
                      routes={"Routed.example": [f"{OTHER_IP}:{routed.port}"]})
        q1, m1 = submit(d.port, ["a@routed.example"])
        q2, m2 = submit(d.port, ["b@dest.example"])
        r1 = wait_records(d, "Delivery", id=q1)[0]
        r2 = wait_records(d, "Delivery", id=q2)[0]
        assert (r1["mx"], r1["ip"], r1["port"]) == (OTHER_IP, OTHER_IP, routed.port)
        assert (r2["mx"], r2["ip"], r2["port"]) == ("smart.example", DEST2_IP, net.port)
        assert [body_of(m) for m in routed.messages()] == [m1]
        assert [body_of(m) for m in smart.messages()] == [m2]
        assert not mx.messages()
    finally:
        routed.stop()


# ---------------------------------------------------------------- lifetime and restarts

def shortest_lifetime(drover_bin, tmp_path):
    """3 s if the configuration allows it, else its minimum (60 s): expiry takes that long."""
    conf = tmp_path / "lifetime.conf"
    conf.write_text('delivery {\n  queue_lifetime = "3s"\n}\n')
    r = subprocess.run([drover_bin, "check-config", str(conf)], capture_output=True, text=True,
                       timeout=deadline(30))
    return 3 if r.returncode == 0 else 60


def test_queue_lifetime_expires_and_bounces(deliverer, net, drover_bin, tmp_path):
    lifetime = shortest_lifetime(drover_bin, tmp_path)
    net.receiver(DEST_IP, Script(replies={"rcpt": "452 4.2.2 mailbox full"}))
    home = net.receiver(SENDER_IP)
    d = deliverer({"queue_lifetime": f"{lifetime}s"})
    qid, _ = submit(d.port, ["bob@dest.example"])
    wait_records(d, "TransientFailure", id=qid)
    rec = wait_records(d, "Expiration", id=qid, timeout=lifetime + 20)[0]
    assert rec["status"] == "4.4.7" and rec["reply"] == "452 4.2.2 mailbox full", rec
    assert rec["queue_time_s"] <= lifetime + 1
    _, dsn = wait_dsn(home)
    r = dsn["recipients"][0]
    assert (r["final_address"], r["action"], r["status"]) == ("bob@dest.example", "failed",
                                                              "4.4.7")
    assert r["diagnostic-code"] == "smtp; 452 4.2.2 mailbox full"
    wait_queue_empty(d)


def test_kill9_mid_queue_then_restart_delivers_everything_once(deliverer, net):
    net.receiver(DEST_IP, Script(replies={"rcpt": "451 4.3.0 not now"}))
    net.receiver(DEST2_IP, Script(replies={"rcpt": "451 4.3.0 not now"}))
    d = deliverer()
    sent = {}
    for i in range(8):
        rcpts = [f"u{i}@dest.example"] + ([f"v{i}@dest2.example"] if i % 2 else [])
        qid, msg = submit(d.port, rcpts, msg=message(subject=f"restart {i}"))
        sent[qid] = (rcpts, msg)
    wanted = {(q, r) for q, (rs, _) in sent.items() for r in rs}
    wait_for(lambda: wanted <= {(e["id"], e["recipient"]) for e in records(d, "TransientFailure")},
             deadline(20), what="a deferral of every recipient")
    d.kill9()
    queued = {m["id"]: m for m in d.queue_list()}
    assert set(queued) == set(sent)
    a = net.receiver(DEST_IP)  # the receivers accept from now on
    b = net.receiver(DEST2_IP)
    d.start()
    wait_queue_empty(d)
    got = {}
    for m in a.messages() + b.messages():
        for r in m["rcpt_to"]:
            got.setdefault(r, []).append(body_of(m))
    want = {r: [msg] for q, (rs, msg) in sent.items() for r in rs}
    assert got == want  # every recipient got its message, exactly once, as sent
    after = wait_records(d, "Delivery", count=len(wanted))  # the event log lags the spool
    assert {(e["id"], e["recipient"]) for e in after} == wanted
    assert all(e["attempt"] >= 2 for e in after)  # the attempts survived the restart


def test_sigterm_during_a_delivery_leaves_it_queued(deliverer, net):
    stalled = net.receiver(DEST_IP, Script(stall={"dot"}))
    d = deliverer()
    qid, msg = submit(d.port, ["bob@dest.example"])
    wait_for(lambda: stalled.server.sessions >= 1, deadline(10), what="a connection")
    assert d.stop() == 0  # QUIT after the message in flight: it never ends, the grace does
    assert not records(d, "Delivery")
    assert qid in d.queue_ids()
    rx = net.receiver(DEST_IP)
    d.start()
    wait_records(d, "Delivery", id=qid)
    assert [body_of(m) for m in rx.messages()] == [msg]


# ---------------------------------------------------------------- delay notices

DEFER = "451 4.7.1 try again later"


def deferrals(d, recipient):
    return len(records(d, "TransientFailure", recipient=recipient))


def test_delay_notice_once_per_message_and_recipient(deliverer, net):
    """Past delay_notice_after, one delay DSN reports every recipient still deferred, at every
    destination of the message, that asked for one (NOTIFY absent or with DELAY). Later
    deferrals, and a restart, send no second one; the final delivery sends nothing more."""
    net.receiver(DEST_IP, Script(replies={"rcpt": DEFER}))
    net.receiver(DEST2_IP, Script(replies={"rcpt": DEFER}))
    home = net.receiver(SENDER_IP)
    d = deliverer({"delay_notice_after": "2s"})
    rcpts = ["bob@dest.example", "never@dest.example", "fail@dest.example",
             "delay@dest.example", "x@dest2.example"]
    qid, msg = submit(d.port, rcpts, mail_options=["ENVID=order-99"], rcpt_options={
        "never@dest.example": ["NOTIFY=NEVER"],
        "fail@dest.example": ["NOTIFY=FAILURE"],
        "delay@dest.example": ["NOTIFY=DELAY", "ORCPT=rfc822;delay@orig.example"]})
    told = {"bob@dest.example", "delay@dest.example", "x@dest2.example"}

    raw, dsn = wait_dsn(home, timeout=30)
    assert raw["rcpt_to"] == [SENDER] and raw["mail_from"] == ""
    assert "delayed" in dsn["headers"]["subject"].lower()
    assert {r["final_address"] for r in dsn["recipients"]} == told
    for r in dsn["recipients"]:
        assert r["action"] == "delayed" and r["status"] == "4.7.1", r
        assert "will-retry-until" in r, r
        assert r["diagnostic-code"] == f"smtp; {DEFER}", r
    # The deferral that crossed the threshold names its server; the other destination's
    # recipients come with the reply the spool kept.
    mta = {r["final_address"]: r.get("remote-mta") for r in dsn["recipients"]}
    assert (mta["bob@dest.example"] == mta["delay@dest.example"] == "dns; mx1.dest.example"
            or mta["x@dest2.example"] == "dns; mx.dest2.example"), mta
    delay = next(r for r in dsn["recipients"] if r["final_address"] == "delay@dest.example")
    assert delay["original_address"] == "delay@orig.example"
    assert dsn["per_message"]["original-envelope-id"] == "order-99"
    assert dsn["returned"] == "headers"  # never the whole message in a delay notice

    notices = wait_records(d, "DelayNotice", count=3, id=qid)
    assert {n["recipient"] for n in notices} == told
    assert all(n["queue_time_s"] >= 2 and n["sender"] == SENDER for n in notices)
    dq = wait_records(d, "DsnQueued", original_id=qid, action="delayed")[0]
    assert set(dq["reported"]) == told and dq["recipient"] == SENDER
    assert {n["dsn_id"] for n in notices} == {dq["id"]}

    # More deferrals of every recipient: nothing more to tell.
    base = {r: deferrals(d, r) for r in rcpts}
    wait_for(lambda: all(deferrals(d, r) >= base[r] + 2 for r in rcpts), deadline(30),
             what="two more deferrals of every recipient")
    # Across a restart too: the spool remembers who was told.
    d.restart()
    base = {r: deferrals(d, r) for r in rcpts}
    wait_for(lambda: all(deferrals(d, r) >= base[r] + 2 for r in rcpts), deadline(30),
             what="two more deferrals of every recipient after the restart")
    assert len(dsns(home)) == 1
    assert len(records(d, "DelayNotice")) == 3

    # The receivers recover: delivered, and no other DSN.
    a = net.receiver(DEST_IP)
    b = net.receiver(DEST2_IP)
    wait_queue_empty(d, timeout=30)
    assert sorted(r for m in a.messages() + b.messages() for r in m["rcpt_to"]) == sorted(rcpts)
    assert len(dsns(home)) == 1


def test_no_delay_notice_for_a_null_sender_nor_by_default(deliverer, net, make_drover, dns):
    """A null sender (a DSN, usually) never gets a delay notice, nor does the postmaster for
    it; and without delay_notice_after nobody gets one."""
    net.receiver(DEST_IP, Script(replies={"rcpt": DEFER}))
    home = net.receiver(SENDER_IP)
    d = deliverer({"delay_notice_after": "1s", "postmaster": "postmaster@sender.example"})
    qid, _ = submit(d.port, ["bob@dest.example"], sender="")
    off = deliverer()
    other, _ = submit(off.port, ["carol@dest.example"])
    wait_for(lambda: len(records(d, "TransientFailure", id=qid)) >= 4 and
             len(records(off, "TransientFailure", id=other)) >= 3,
             deadline(30), what="several deferrals past a second")
    assert not records(d, "DelayNotice") and not records(off, "DelayNotice")
    assert not dsns(home)


# ---------------------------------------------------------------- internationalized domains

def test_utf8_domain_is_routed_by_its_a_label(deliverer, net, dns, make_drover):
    """user@bücher.example (SMTPUTF8): the MX of xn--bcher-kva.example is looked up, and the
    receiver gets the address as the sender wrote it. A route is matched by A-label too."""
    routed = Receiver(Script(hostname="routed.example"), hosts=(OTHER_IP,), port=free_port())
    routed.start()
    try:
        dns.set_zone(zone(**{"xn--bcher-kva_example": {"MX": [[10, "mx.xn--bcher-kva.example"]]},
                             "mx_xn--bcher-kva_example": {"A": [DEST2_IP]}}))
        rx = net.receiver(DEST2_IP)
        d = deliverer(routes={"xn--mnchen-3ya.example": [f"{OTHER_IP}:{routed.port}"]})
        qid, msg = submit(d.port, ["user@b\u00fccher.example", "Ann@B\u00dcCHER.example"],
                          mail_options=["SMTPUTF8"])
        q2, m2 = submit(d.port, ["u@m\u00fcnchen.example"], mail_options=["SMTPUTF8"])
        m = wait_messages(rx)[0]
        assert m["rcpt_to"] == ["user@b\u00fccher.example", "Ann@B\u00dcCHER.example"]
        assert "SMTPUTF8" in m["mail_params"]
        assert body_of(m) == msg
        recs = wait_records(d, "Delivery", count=2, id=qid)
        assert {r["destination"] for r in recs} == {"xn--bcher-kva.example"}
        assert {r["mx"] for r in recs} == {"mx.xn--bcher-kva.example"}
        r2 = wait_records(d, "Delivery", id=q2)[0]
        assert (r2["destination"], r2["port"]) == ("xn--mnchen-3ya.example", routed.port)
        assert [x["rcpt_to"] for x in routed.messages()] == [["u@m\u00fcnchen.example"]]
        wait_queue_empty(d)
    finally:
        routed.stop()


def test_utf8_domain_without_a_label_bounces_5_1_2(deliverer, net):
    home = net.receiver(SENDER_IP)
    d = deliverer()
    qid, _ = submit(d.port, ["user@\u2603.example"], mail_options=["SMTPUTF8"])
    rec = wait_records(d, "Bounce", id=qid)[0]
    assert rec["status"] == "5.1.2" and rec["mx"] is None, rec
    assert rec["reply"].startswith("550 5.1.2") and "IDNA2008" in rec["reply"], rec
    _, dsn = wait_dsn(home)
    r = dsn["recipients"][0]
    assert (r["final_address"], r["action"], r["status"]) == ("user@\u2603.example", "failed",
                                                              "5.1.2")
    wait_queue_empty(d)


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_mail_exchanger_and_ip_version(deliverer, net, dns):
    """An MX with only an AAAA record is reached over IPv6; with both, IPv6 comes first
    (ip_version any); ip_version = ipv4 takes the A record."""
    dns.set_zone(zone(v6_example={"MX": [[10, "mx.v6.example"]]},
                      mx_v6_example={"AAAA": ["::1"]},
                      both_example={"MX": [[10, "mx.both.example"]]},
                      mx_both_example={"A": [OTHER_IP], "AAAA": ["::1"]}))
    rx6 = net.receiver("::1")
    rx4 = net.receiver(OTHER_IP)
    d = deliverer()
    qid, msg = submit(d.port, ["bob@v6.example"])
    rec = wait_records(d, "Delivery", id=qid)[0]
    assert (rec["mx"], rec["ip"]) == ("mx.v6.example", "::1")
    qid2, _ = submit(d.port, ["carol@both.example"])
    assert wait_records(d, "Delivery", id=qid2)[0]["ip"] == "::1"
    assert [body_of(m) for m in rx6.messages()][0] == msg
    d.stop()
    d4 = deliverer(delivery={"ip_version": "ipv4"})
    qid3, _ = submit(d4.port, ["dave@both.example"])
    assert wait_records(d4, "Delivery", id=qid3)[0]["ip"] == OTHER_IP
    assert len(rx4.messages()) == 1
