"""Checking incoming mail on a listener (verify = { "spf", "dkim", "dmarc" }): SPF, DKIM and
DMARC answered from a real DNS server on loopback, the verdict in an Authentication-Results
field (RFC 8601) on top of the message that reaches a real receiver.

The messages are signed by an independent signer (dkimpy, Debian's python3-dkim) with keys
whose records the DNS server publishes; the field is parsed back here.
"""

import re
import subprocess

import pytest

from conftest import Client, deadline, free_port, smtp, wait_for
from dnsserver import DNSServer
from receiver import Receiver, Script

dkim = pytest.importorskip("dkim")

DEST_IP = "127.0.0.2"
ZONE = {
    "dest.example": {"MX": [[10, "mx.dest.example"]]},
    "mx.dest.example": {"A": [DEST_IP]},
    # Passes SPF from loopback, publishes p=reject with a quarantine for subdomains.
    "sender.example": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"]},
    "_dmarc.sender.example": {"TXT": ["v=DMARC1; p=reject; sp=quarantine; adkim=s"]},
    "bounces.sender.example": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"]},
    # Does not let loopback send.
    "forged.example": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
    "_dmarc.forged.example": {"TXT": ["v=DMARC1; p=reject"]},
    "broken.example": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"]},
}


@pytest.fixture
def dns():
    z = {"records": dict(ZONE), "ttl": 1, "negative_ttl": 1,
         "servfail": ["_dmarc.broken.example"]}
    server = DNSServer(z).start()
    yield server
    server.stop()


@pytest.fixture
def rx():
    r = Receiver(Script(), hosts=(DEST_IP,), port=free_port()).start()
    yield r
    r.stop()


@pytest.fixture
def key(tmp_path, drover_bin, dns):
    """An RSA key for sel._domainkey.sender.example, published; its PEM bytes."""
    path = tmp_path / "sender.pem"
    out = subprocess.run([drover_bin, "dkim", "keygen", "--domain", "sender.example",
                          "--selector", "sel", "--key", str(path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    record = re.search(r"^\s*value: (.*)$", out, re.M).group(1)
    dns.set_rrset("sel._domainkey.sender.example", "TXT", [record], ttl=60)
    return path.read_bytes()


@pytest.fixture
def checker(make_drover, dns, rx):
    def make(verify=("dmarc",)):
        return make_drover(delivery={"port": rx.port, "dns_forwarders": [dns.forwarder],
                                     "retry": ["1s"]},
                           listener={"verify": list(verify)})
    return make


def signed(pem, from_addr="alice@sender.example", d="sender.example", body=b"Hello.\r\n"):
    msg = (f"From: {from_addr}\r\nTo: bob@dest.example\r\nSubject: check\r\n"
           f"Message-ID: <{free_port()}@sender.example>\r\n\r\n").encode() + body
    sig = dkim.sign(msg, b"sel", d.encode(), pem, include_headers=[b"from", b"to", b"subject"])
    return sig + msg


def send(port, msg, sender="alice@sender.example"):
    with smtp(port) as s:
        code, text = s.mail(sender)
        assert code == 250, (code, text)
        assert s.rcpt("bob@dest.example")[0] == 250
        code, text = s.data(msg)
        assert code == 250, (code, text)
        return text.decode().split()[-1]


def auth_results(data):
    """The Authentication-Results field Drover added: (authserv-id, {method: [resinfo]})."""
    head = data.split("\r\n\r\n", 1)[0]
    unfolded = re.sub(r"\r\n[ \t]+", " ", head)
    fields = [f for f in unfolded.split("\r\n")
              if f.lower().startswith("authentication-results:")]
    assert len(fields) == 1, fields
    value = fields[0].split(":", 1)[1].strip()
    parts = [p.strip() for p in value.split(";")]
    found = {}
    for p in parts[1:]:
        method = p.split("=", 1)[0]
        found.setdefault(method, []).append(p)
    return parts[0], found


def delivered(rx, count):
    wait_for(lambda: len(rx.messages()) >= count, deadline(20),
             what=f"{count} message(s) at the receiver")
    return rx.messages()


def test_aligned_spf_and_dkim_pass_dmarc(checker, key, rx):
    d = checker()
    send(d.port, signed(key))
    m = delivered(rx, 1)[0]
    authserv, r = auth_results(m["data"])
    assert authserv == "drover.test"
    assert r["spf"] == ["spf=pass smtp.mailfrom=alice@sender.example"]
    assert len(r["dkim"]) == 1 and r["dkim"][0].startswith("dkim=pass")
    assert "header.d=sender.example" in r["dkim"][0]
    assert r["dmarc"][0].startswith("dmarc=pass")
    assert "header.from=sender.example" in r["dmarc"][0]
    # The field is on top, above Drover's Received: field.
    assert m["data"].lower().startswith("authentication-results: drover.test;")
    # It is in the Reception event too.
    ev = d.wait_events(lambda e: e["type"] == "Reception", timeout=deadline(10))
    assert "dmarc=pass" in ev[0]["authentication_results"]


def test_tampered_body_and_forged_sender_fail(checker, key, rx):
    d = checker()
    msg = signed(key).replace(b"Hello.", b"Hellp.")
    send(d.port, msg, sender="bounce@forged.example")
    m = delivered(rx, 1)[0]
    _, r = auth_results(m["data"])
    assert r["spf"][0].startswith("spf=fail smtp.mailfrom=bounce@forged.example")
    assert r["dkim"][0].startswith("dkim=fail")
    assert r["dmarc"][0].startswith("dmarc=fail")
    assert "p=reject" in r["dmarc"][0]


def test_strict_dkim_alignment_and_subdomain_policy(checker, key, rx):
    """From news.sender.example: adkim=s, so d=sender.example does not align; the MAIL FROM
    bounces.sender.example passes SPF and aligns relaxed (aspf default): pass. Without SPF
    alignment the subdomain's sp=quarantine applies."""
    d = checker()
    send(d.port, signed(key, from_addr="news@news.sender.example"),
         sender="x@bounces.sender.example")
    send(d.port, signed(key, from_addr="news@news.sender.example"),
         sender="x@forged.example")
    got = delivered(rx, 2)
    by_sender = {m["mail_from"]: auth_results(m["data"])[1] for m in got}
    r1 = by_sender["x@bounces.sender.example"]
    assert r1["dkim"][0].startswith("dkim=pass")
    assert r1["dmarc"][0].startswith("dmarc=pass")
    r2 = by_sender["x@forged.example"]
    assert r2["dmarc"][0].startswith("dmarc=fail")
    assert "quarantine" in r2["dmarc"][0]


def test_nothing_published_is_none_and_dns_failure_is_temperror(checker, key, rx):
    d = checker()
    plain = (b"From: someone@nothing.example\r\nTo: bob@dest.example\r\nSubject: x\r\n\r\n"
             b"Hi.\r\n")
    send(d.port, plain, sender="someone@nothing.example")
    send(d.port, plain.replace(b"nothing.example", b"broken.example"),
         sender="someone@broken.example")
    got = delivered(rx, 2)
    by_sender = {m["mail_from"]: auth_results(m["data"])[1] for m in got}
    r1 = by_sender["someone@nothing.example"]
    assert r1["spf"][0].startswith("spf=none")
    assert r1["dkim"] == ["dkim=none"]
    assert r1["dmarc"][0].startswith("dmarc=none")
    r2 = by_sender["someone@broken.example"]
    assert r2["spf"][0].startswith("spf=pass")
    assert r2["dmarc"][0].startswith("dmarc=temperror")


def test_message_without_from_is_permerror_and_dkim_only_listener(checker, key, rx):
    d = checker()
    send(d.port, b"To: bob@dest.example\r\nSubject: no from\r\n\r\nHi.\r\n")
    m = delivered(rx, 1)[0]
    _, r = auth_results(m["data"])
    assert r["dmarc"][0].startswith("dmarc=permerror")
    d.stop()
    d2 = checker(verify=("dkim",))
    send(d2.port, signed(key))
    m = delivered(rx, 2)[1]
    _, r = auth_results(m["data"])
    assert set(r) == {"dkim"}
    assert r["dkim"][0].startswith("dkim=pass")


def test_pipelined_messages_are_each_checked_in_order(checker, key, rx):
    """Several messages on one connection: each waits for its checks, none is mixed up."""
    d = checker()
    with smtp(d.port) as s:
        for i in range(5):
            body = f"Message {i}.\r\n".encode()
            assert s.mail("alice@sender.example")[0] == 250
            assert s.rcpt("bob@dest.example")[0] == 250
            assert s.data(signed(key, body=body))[0] == 250
    got = delivered(rx, 5)
    for m in got:
        _, r = auth_results(m["data"])
        assert r["dkim"][0].startswith("dkim=pass"), m["data"][:400]
        assert r["dmarc"][0].startswith("dmarc=pass")


def test_client_leaving_while_checks_run_loses_nothing_accepted(make_drover, dns, rx, key):
    """The DMARC lookup for slow.example takes 2 s: a client that leaves meanwhile never got
    a 250, so nothing is queued and nothing is delivered; one that waits gets its 250."""
    dns.set_rrset("slow.example", "TXT", ["v=spf1 ip4:127.0.0.0/8 -all"], ttl=1)
    dns.zone.delay["_dmarc.slow.example"] = 2.0
    d = make_drover(delivery={"port": rx.port, "dns_forwarders": [dns.forwarder],
                              "retry": ["1s"], "dns_timeout": 10},
                    listener={"verify": ["dmarc"]})
    msg = b"From: a@slow.example\r\nTo: bob@dest.example\r\nSubject: slow\r\n\r\nHi.\r\n"
    c = Client(d.port)
    c.greet()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@slow.example>") == "250"
    assert c.cmd("RCPT TO:<bob@dest.example>") == "250"
    assert c.cmd("DATA") == "354"
    c.send(msg + b".\r\n")
    c.sock.close()
    # The one who waits gets the message through, checked.
    send(d.port, msg, sender="a@slow.example")
    got = delivered(rx, 1)
    assert len(got) == 1
    assert "dmarc=none" in auth_results(got[0]["data"])[1]["dmarc"][0]
    wait_for(lambda: not d.queue_list(), deadline(10), what="an empty queue")
    assert len(rx.messages()) == 1
