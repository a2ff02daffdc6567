"""Egress sources and pools end to end: `drover serve` delivers from the loopback addresses
127.0.0.2, .3 and .4 (all on the machine) to receivers on 127.0.0.10 and .11, which record the
peer address and the EHLO name of every transaction.

A source on 192.0.2.1 (TEST-NET-1, never on a test machine) cannot be bound: bind() fails with
EADDRNOTAVAIL, so not a packet leaves for it.
"""

import collections
import concurrent.futures

import pytest

from conftest import deadline, message, smtp, wait_for
from dnsserver import DNSServer
from receiver import Receiver, Script, spawn

SENDER = "alice@sender.example"
RX_IP, RX2_IP = "127.0.0.10", "127.0.0.11"
A_IP, B_IP, C_IP, GONE_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "192.0.2.1"
# Destinations of the weight test: each its own round robin (weights hold per destination),
# all served by one receiver, so one message to all of them is that many transactions.
WEIGHT_DOMAINS = [f"w{i}.example" for i in range(10)]

ZONE = {
    "dest.example": {"MX": [[10, "mx.dest.example"]]},
    "other.example": {"MX": [[10, "mx.dest.example"]]},
    "mx.dest.example": {"A": [RX_IP]},
    "sender.example": {"MX": [[10, "mx.sender.example"]]},
    "mx.sender.example": {"A": [RX2_IP]},
}
for _d in WEIGHT_DOMAINS:
    ZONE[_d] = {"MX": [[10, "mx.dest.example"]]}

SOURCES = f"""
source "a" {{ address = "{A_IP}" ehlo = "mta-a.drover.example" }}
source "b" {{ address = "{B_IP}" ehlo = "mta-b.drover.example" }}
source "c" {{ address = "{C_IP}" }}
source "gone" {{ address = "{GONE_IP}" ehlo = "mta-gone.drover.example" }}
"""


@pytest.fixture
def dns():
    server = DNSServer({"records": ZONE, "negative_ttl": 1, "ttl": 1}).start()
    yield server
    server.stop()


@pytest.fixture
def port():
    from conftest import free_port
    return free_port()


@pytest.fixture
def egress(make_drover, dns, port):
    """Factory: a Drover with the sources above, the pools given as text, and delivery
    settings (delivery.pool among them)."""

    def make(pools, delivery=None, extra="", **conf):
        d = {"port": port, "dns_forwarders": [dns.forwarder], "retry": ["1s"],
             "helo_name": "default.drover.example"}
        d.update(delivery or {})
        return make_drover(delivery=d, extra=SOURCES + pools + extra, **conf)

    return make


def submit(drover_port, rcpts, count=1):
    """count messages to rcpts on one session; returns their queue ids."""
    ids = []
    with smtp(drover_port) as s:
        for _ in range(count):
            code, text = s.mail(SENDER)
            assert code == 250, (code, text)
            for r in rcpts:
                code, text = s.rcpt(r)
                assert code == 250, (code, text)
            code, text = s.data(message())
            assert code == 250, (code, text)
            ids.append(text.decode().split()[-1])
    return ids


def wait_messages(rx, count, timeout=20):
    found = []

    def check():
        found[:] = rx.messages()
        return len(found) >= count

    wait_for(check, deadline(timeout), interval=0.1, what=f"{count} messages")
    return found


def events(d, type_):
    return [e for e in d.events() if e["type"] == type_]


# ---------------------------------------------------------------- (a) weights

def test_weights_three_to_one_over_10000_transactions(egress, port):
    """10,000 transactions (1,000 messages, each to 10 destinations that share a receiver)
    from a pool a:3, b:1: each destination's round robin gives a 3/4 of its mail; the test
    allows ±5% of each share, as the issue asks (the algorithm itself is exact per round)."""
    rx = spawn(["--host", RX_IP, "--port", str(port)])
    try:
        d = egress('pool "main" { source "a" { weight = 3 } source "b" { weight = 1 } }',
                   delivery={"pool": "main", "max_connections": 20,
                             "max_messages_per_connection": 1000})
        rcpts = [f"u@{dom}" for dom in WEIGHT_DOMAINS]
        # Eight sessions of 125 messages: submission is not what this test measures.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: submit(d.port, rcpts, 125), range(8)))
        got = wait_messages(rx, 10000, timeout=50)
        assert len(got) == 10000
        by_peer = collections.Counter(m["peer"] for m in got)
        print("weight split:", dict(by_peer))
        assert set(by_peer) == {A_IP, B_IP}
        assert 7500 * 0.95 <= by_peer[A_IP] <= 7500 * 1.05
        assert 2500 * 0.95 <= by_peer[B_IP] <= 2500 * 1.05
        # Per destination too: the round robin is per destination.
        for dom in WEIGHT_DOMAINS:
            c = collections.Counter(m["peer"] for m in got if m["rcpt_to"][0].endswith(dom))
            assert 750 * 0.95 <= c[A_IP] <= 750 * 1.05, (dom, c)
        # (b) Each source announces its own EHLO name, on every transaction.
        helo = {A_IP: "mta-a.drover.example", B_IP: "mta-b.drover.example"}
        assert all(m["helo"] == helo[m["peer"]] for m in got)
        # Records name the source.
        wait_for(lambda: len(events(d, "Delivery")) >= 10000, deadline(20), interval=0.2,
                 what="10000 Delivery records")
        recs = events(d, "Delivery")
        assert {(r["source"], r["source_ip"]) for r in recs} == {("a", A_IP), ("b", B_IP)}
    finally:
        rx.stop()


# ---------------------------------------------------------------- (b) EHLO, default name

def test_ehlo_per_source_and_default(egress, port):
    """A source with ehlo announces it; one without announces delivery.helo_name."""
    with Receiver(Script(), hosts=(RX_IP,), port=port) as rx:
        d = egress('pool "p" { source "b" { } source "c" { } }', delivery={"pool": "p"})
        submit(d.port, ["u@dest.example"], count=6)
        got = wait_messages(rx, 6)
        assert {(m["peer"], m["helo"]) for m in got} == {
            (B_IP, "mta-b.drover.example"), (C_IP, "default.drover.example")}
        assert collections.Counter(m["peer"] for m in got) == {B_IP: 3, C_IP: 3}


# ---------------------------------------------------------------- (c) a source down

def test_source_not_on_machine_is_marked_down_and_skipped(egress, port):
    with Receiver(Script(), hosts=(RX_IP,), port=port) as rx:
        d = egress('pool "p" { source "gone" { weight = 5 } source "a" { } }',
                   delivery={"pool": "p"})
        submit(d.port, ["u@dest.example"], count=20)
        got = wait_messages(rx, 20)
        assert {m["peer"] for m in got} == {A_IP}
        assert {m["helo"] for m in got} == {"mta-a.drover.example"}
        # The event log is written by its own thread a moment later: wait for the records
        # (it writes in order, so with the 20 Delivery records comes the earlier SourceDown).
        wait_for(lambda: len(events(d, "Delivery")) >= 20, deadline(10), interval=0.05,
                 what="20 Delivery records")
        down = events(d, "SourceDown")
        assert len(down) == 1, down
        assert down[0]["source"] == "gone" and down[0]["source_ip"] == GONE_IP
        assert down[0]["retry_s"] == 60
        assert "Cannot assign requested address" in down[0]["error"]
        assert 'source "gone" (192.0.2.1) is down' in d.stderr_text()
        # Nothing failed because of it: no attempt was counted for the mail.
        assert not events(d, "TransientFailure")
        assert {r["source"] for r in events(d, "Delivery")} == {"a"}


# ---------------------------------------------------------------- (d) a pool with all down

def test_pool_with_every_source_down_holds_its_mail(egress, port):
    with Receiver(Script(), hosts=(RX_IP,), port=port) as rx:
        d = egress('pool "dead" { source "gone" { } }', delivery={"pool": "dead"})
        (qid,) = submit(d.port, ["u@dest.example"])
        wait_for(lambda: len(events(d, "TransientFailure")) >= 2, deadline(20), interval=0.1,
                 what="two TransientFailure records")
        tf = events(d, "TransientFailure")[0]
        assert tf["status"] == "4.4.0"
        assert 'no source of pool "dead" is up' in tf["reply"]
        assert tf["source"] is None
        assert qid in d.queue_ids()
        # Nothing went out, from any address.
        assert rx.messages() == [] and rx.sessions() == []
        assert len(events(d, "SourceDown")) == 1


# ---------------------------------------------------------------- (e) overrides

def test_route_and_domain_choose_their_pool(egress, port):
    with Receiver(Script(), hosts=(RX_IP,), port=port) as rx, \
            Receiver(Script(), hosts=(RX2_IP,), port=port) as rx2:
        d = egress('pool "pa" { source "a" { } }\npool "pb" { source "b" { } }\n'
                   'pool "pc" { source "c" { } }\n',
                   delivery={"pool": "pa"},
                   extra=f'domain "other.example" {{ pool = "pb" }}\n'
                         f'route "routed.example" {{ hosts = {{ "{RX2_IP}" }} '
                         f'pool = "pc" }}\n')
        submit(d.port, ["u@dest.example", "u@other.example", "u@routed.example"])
        got = wait_messages(rx, 2)
        got2 = wait_messages(rx2, 1)
        peers = {m["rcpt_to"][0]: m["peer"] for m in got + got2}
        assert peers == {"u@dest.example": A_IP, "u@other.example": B_IP,
                         "u@routed.example": C_IP}


def test_no_pool_is_todays_behaviour(egress, port):
    """Without delivery.pool (sources and pools defined but unused): the system's address
    (loopback reaches 127.0.0.1) and delivery.helo_name."""
    with Receiver(Script(), hosts=(RX_IP,), port=port) as rx:
        d = egress('pool "p" { source "a" { } }')
        submit(d.port, ["u@dest.example"])
        (m,) = wait_messages(rx, 1)
        assert m["peer"] == "127.0.0.1" and m["helo"] == "default.drover.example"
        wait_for(lambda: events(d, "Delivery"), deadline(10), what="a Delivery record")
        assert events(d, "Delivery")[0]["source"] is None


def test_config_errors_name_file_and_line(drover_bin, tmp_path):
    import subprocess
    conf = tmp_path / "drover.conf"
    conf.write_text('source "a" { address = "127.0.0.2" }\n'          # 1
                    'source "b" { address = "127.0.0.2" }\n'          # 2
                    'source "c" { address = "mta.example.com" }\n'    # 3
                    'pool "p" {\n'                                    # 4
                    '  source "a" { weight = 0 }\n'                   # 5
                    '  source "x" { }\n'                              # 6
                    '}\n'                                             # 7
                    'pool "empty" { }\n'                              # 8
                    'delivery { pool = "nope" }\n')                   # 9
    r = subprocess.run([drover_bin, "check-config", str(conf)], capture_output=True,
                       text=True)
    assert r.returncode != 0
    out = r.stderr + r.stdout
    for want in (f'{conf}:2: source "b".address: the same address as source "a"',
                 f'{conf}:3: source "c".address: "mta.example.com": not an IP address',
                 f'{conf}:5: source "a".weight: "0": must be from 1 to 1000',
                 f'{conf}:6: pool "p": no source "x" is defined',
                 f'{conf}:8: pool "empty": no sources',
                 f'{conf}:9: delivery.pool: no pool "nope" is defined'):
        assert want in out, (want, out)
