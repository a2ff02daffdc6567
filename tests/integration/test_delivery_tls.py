"""Outbound TLS end to end: `drover serve` delivers to receivers (receiver.py, in threads of
this process) that offer STARTTLS with real certificates made here by the openssl command
line, under each TLS policy: opportunistic (the default), disabled, required and
required-verify (docs/delivery.md, "TLS").

The certificates (EC P-256, made once per module): a test CA, a valid certificate for the MX
host name mx1.dest.example, an expired one, and one for another name. Drover trusts the test
CA through delivery.tls_ca_file where a test needs a certificate to verify.

Every receiver listens on its own loopback address and one shared port, found through the
test DNS server as in test_delivery.py. Every wait is a deadline on a condition.
"""

import subprocess

import pytest

from conftest import deadline, free_port, wait_for
from dnsserver import DNSServer
from receiver import Receiver, Script
from test_delivery import (BASE_ZONE, DEST_IP, SENDER_IP, Net, records, submit,
                           wait_messages, wait_queue_empty, wait_records)

MX = "mx1.dest.example"


# ---------------------------------------------------------------- certificates

def openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True,
                   timeout=deadline(30))


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Paths: ca (the test CA), and (cert, key) pairs valid, expired, wrong_name."""
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(d, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Drover Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def leaf(name, dns_name, days):
        (d / f"{name}.ext").write_text(
            f"subjectAltName=DNS:{dns_name}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
        openssl(d, "req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={dns_name}")
        # -days -1: not after yesterday, i.e. expired.
        openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", str(days), "-out", f"{name}.pem", "-extfile",
                f"{name}.ext")
        return str(d / f"{name}.pem"), str(d / f"{name}.key")

    return {
        "ca": str(d / "ca.pem"),
        "valid": leaf("valid", MX, 2),
        "expired": leaf("expired", MX, -1),
        "wrong_name": leaf("wrong", "mx.other.example", 2),
    }


# ---------------------------------------------------------------- the world around Drover

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


@pytest.fixture
def deliverer(make_drover, dns, net):
    """Factory: a Drover delivering through the test DNS server to net's port, retrying every
    second; delivery={...} adds settings, domains={"dest.example": "required"} adds domain
    sections."""

    def make(delivery=None, domains=None, extra="", **conf):
        d = {"port": net.port, "dns_forwarders": [dns.forwarder], "retry": ["1s"],
             "helo_name": "out.drover.example"}
        d.update(delivery or {})
        text = "".join(f'domain "{k}" {{\n  tls = "{v}"\n}}\n'
                       for k, v in (domains or {}).items())
        return make_drover(delivery=d, extra=text + extra, **conf)

    return make


def tls_script(certs, which="valid", **kw):
    cert, key = certs[which]
    return Script(starttls=True, tls_cert=cert, tls_key=key, **kw)


def commands(session):
    return [c.split(" ")[0].upper() for c in session["commands"]]


def sessions_with_mail(rx):
    return [s for s in rx.sessions() if "MAIL" in commands(s)]


# ---------------------------------------------------------------- opportunistic (default)

def test_opportunistic_upgrades_when_offered_and_logs_version_and_cipher(deliverer, net, certs):
    rx = net.receiver(DEST_IP, tls_script(certs, rcpt_replies={
        "bad@dest.example": "550 5.1.1 no such user"}))
    net.receiver(SENDER_IP)  # for the DSN
    d = deliverer()
    qid, _ = submit(d.port, ["bob@dest.example", "bad@dest.example"])
    m = wait_messages(rx)[0]
    assert m["tls"] is not None, m
    assert m["tls"]["sni"] == MX  # SNI: the MX host name connected to

    ok = wait_records(d, "Delivery", id=qid)[0]
    assert ok["tls"] == {"version": m["tls"]["version"], "cipher": m["tls"]["cipher"],
                         "verified": False}, ok  # the test CA is not in the system store
    assert ok["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    bounce = wait_records(d, "Bounce", id=qid)[0]
    assert bounce["tls"] == ok["tls"]

    # RFC 3207 §4.2: EHLO again after the handshake, before anything else.
    wait_for(lambda: rx.sessions(), deadline(20), what="the session to end")
    s = rx.sessions()[0]
    assert commands(s)[:4] == ["EHLO", "STARTTLS", "EHLO", "MAIL"], s["commands"]
    assert s["tls"] is not None and s["starttls"]
    wait_queue_empty(d)


def test_opportunistic_verified_with_the_configured_ca(deliverer, net, certs):
    rx = net.receiver(DEST_IP, tls_script(certs))
    d = deliverer({"tls_ca_file": certs["ca"]})
    qid, _ = submit(d.port, ["bob@dest.example"])
    wait_messages(rx)
    assert wait_records(d, "Delivery", id=qid)[0]["tls"]["verified"] is True


def test_opportunistic_without_starttls_goes_in_clear(deliverer, net):
    rx = net.receiver(DEST_IP)
    d = deliverer()
    qid, _ = submit(d.port, ["bob@dest.example"])
    m = wait_messages(rx)[0]
    assert m["tls"] is None
    assert wait_records(d, "Delivery", id=qid)[0]["tls"] is None


def test_opportunistic_starttls_refused_goes_on_in_clear(deliverer, net):
    """A server that announces STARTTLS but answers 454: the same session goes on in clear."""
    rx = net.receiver(DEST_IP, Script(starttls=True))  # no certificate: 454
    d = deliverer()
    qid, _ = submit(d.port, ["bob@dest.example"])
    m = wait_messages(rx)[0]
    assert m["tls"] is None and m["session"] == 1
    assert wait_records(d, "Delivery", id=qid)[0]["tls"] is None


def test_opportunistic_handshake_failure_retried_in_clear_and_remembered(deliverer, net):
    rx = net.receiver(DEST_IP, Script(starttls=True, tls_break=True))
    d = deliverer({"idle_timeout": "1s"})
    qid, _ = submit(d.port, ["bob@dest.example"])
    m = wait_messages(rx)[0]
    assert m["tls"] is None
    # The failed handshake, then at once a new connection in clear, without STARTTLS.
    first = rx.sessions()[0]
    assert first["ended"] == "tls" and first["starttls"] and "MAIL" not in commands(first)
    assert m["session"] == 2
    ok = wait_records(d, "Delivery", id=qid)[0]
    assert ok["tls"] is None and ok["attempt"] == 1  # not a deferral: the same attempt
    assert not records(d, "TransientFailure", id=qid)
    assert "TLS handshake with mx1.dest.example[127.0.0.2]" in d.stderr_text()

    # Remembered: the next connection to it does not try STARTTLS at all.
    wait_for(lambda: len(rx.sessions()) == 2, deadline(20), what="the first connection to end")
    qid2, _ = submit(d.port, ["carol@dest.example"])
    wait_records(d, "Delivery", id=qid2)
    wait_for(lambda: len(rx.sessions()) == 3, deadline(20), what="the second connection to end")
    second = rx.sessions()[2]
    assert "STARTTLS" not in commands(second) and "MAIL" in commands(second), second
    assert len(rx.sessions()) == 3


def test_tls_failure_memory_zero_tries_starttls_every_time(deliverer, net):
    rx = net.receiver(DEST_IP, Script(starttls=True, tls_break=True))
    d = deliverer({"idle_timeout": "1s", "tls_failure_memory": 0})
    submit(d.port, ["bob@dest.example"])
    wait_messages(rx)
    wait_for(lambda: len(rx.sessions()) == 2, deadline(20), what="the first connections")
    qid2, _ = submit(d.port, ["carol@dest.example"])
    wait_records(d, "Delivery", id=qid2)
    wait_for(lambda: len(rx.sessions()) == 4, deadline(20), what="two more connections")
    assert [s["ended"] for s in rx.sessions()].count("tls") == 2


# ---------------------------------------------------------------- disabled

def test_disabled_sends_in_clear_even_when_offered(deliverer, net, certs):
    rx = net.receiver(DEST_IP, tls_script(certs))
    d = deliverer({"tls": "disabled"})
    qid, _ = submit(d.port, ["bob@dest.example"])
    m = wait_messages(rx)[0]
    assert m["tls"] is None
    assert wait_records(d, "Delivery", id=qid)[0]["tls"] is None
    wait_for(lambda: rx.sessions(), deadline(20), what="the session to end")
    assert not rx.sessions()[0]["starttls"]


# ---------------------------------------------------------------- required

def test_required_without_starttls_waits_then_delivers_when_offered(deliverer, net, certs):
    rx = net.receiver(DEST_IP)  # no STARTTLS
    d = deliverer(domains={"dest.example": "required"})
    qid, _ = submit(d.port, ["bob@dest.example"])
    tf = wait_records(d, "TransientFailure", id=qid)[0]
    assert tf["reply"] == ("451 4.7.4 TLS required but not offered by "
                           "mx1.dest.example[127.0.0.2]"), tf
    assert tf["status"] == "4.7.4" and tf["tls"] is None
    assert not rx.messages() and not sessions_with_mail(rx)  # never in clear
    assert [s["quit"] for s in rx.sessions()] == [True] * len(rx.sessions())

    # The receiver starts offering STARTTLS: the next retry goes, encrypted.
    rx = net.receiver(DEST_IP, tls_script(certs))
    m = wait_messages(rx)[0]
    assert m["tls"] is not None
    ok = wait_records(d, "Delivery", id=qid)[0]
    assert ok["tls"]["version"] == m["tls"]["version"] and ok["attempt"] >= 2
    wait_queue_empty(d)


def test_required_handshake_failure_waits_never_in_clear(deliverer, net):
    rx = net.receiver(DEST_IP, Script(starttls=True, tls_break=True))
    d = deliverer({"tls": "required"})
    qid, _ = submit(d.port, ["bob@dest.example"])
    tf = wait_records(d, "TransientFailure", count=2, id=qid)[0]
    assert tf["reply"].startswith("451 4.7.5 TLS handshake with mx1.dest.example[127.0.0.2] "
                                  "failed: "), tf
    assert not rx.messages() and not sessions_with_mail(rx)


def test_required_accepts_any_certificate(deliverer, net, certs):
    rx = net.receiver(DEST_IP, tls_script(certs, "expired"))
    d = deliverer(domains={"DEST.example": "required"})
    qid, _ = submit(d.port, ["bob@dest.example"])
    wait_messages(rx)
    assert wait_records(d, "Delivery", id=qid)[0]["tls"]["verified"] is False


# ---------------------------------------------------------------- required-verify

def test_required_verify_with_a_valid_certificate(deliverer, net, certs):
    rx = net.receiver(DEST_IP, tls_script(certs))
    d = deliverer({"tls_ca_file": certs["ca"]}, domains={"dest.example": "required-verify"})
    qid, _ = submit(d.port, ["bob@dest.example"])
    m = wait_messages(rx)[0]
    assert m["tls"] is not None and m["tls"]["sni"] == MX
    ok = wait_records(d, "Delivery", id=qid)[0]
    assert ok["tls"]["verified"] is True and ok["tls"]["cipher"] == m["tls"]["cipher"]


@pytest.mark.parametrize("which, reason", [("expired", "certificate has expired"),
                                           ("wrong_name", "hostname mismatch")])
def test_required_verify_refuses_a_bad_certificate(deliverer, net, certs, which, reason):
    rx = net.receiver(DEST_IP, tls_script(certs, which))
    d = deliverer({"tls_ca_file": certs["ca"]}, domains={"dest.example": "required-verify"})
    qid, _ = submit(d.port, ["bob@dest.example"])
    tf = wait_records(d, "TransientFailure", id=qid)[0]
    assert tf["reply"] == (f"451 4.7.5 TLS certificate of mx1.dest.example[127.0.0.2] not "
                           f"verified: {reason}"), tf
    assert tf["tls"] is None
    assert not rx.messages() and not sessions_with_mail(rx)
    # Deferred, not bounced: still queued for the next retry.
    assert qid in d.queue_ids()


def test_required_verify_without_the_ca_fails(deliverer, net, certs):
    """The system store does not know the test CA: nothing verifies, nothing is sent."""
    rx = net.receiver(DEST_IP, tls_script(certs))
    d = deliverer({"tls": "required-verify"})
    qid, _ = submit(d.port, ["bob@dest.example"])
    tf = wait_records(d, "TransientFailure", id=qid)[0]
    assert tf["status"] == "4.7.5" and "not verified" in tf["reply"], tf
    assert not rx.messages()


# ---------------------------------------------------------------- routes

def test_route_tls_overrides_the_domain_section(deliverer, net, certs):
    """route "x" { tls } describes its hosts: it wins over the domain's policy."""
    rx = net.receiver(DEST_IP)  # no STARTTLS
    d = deliverer(domains={"dest.example": "required-verify"},
                  extra=f'route "dest.example" {{\n  hosts = {{ "{DEST_IP}:{net.port}" }}\n'
                        f'  tls = "opportunistic"\n}}\n')
    qid, _ = submit(d.port, ["bob@dest.example"])
    m = wait_messages(rx)[0]
    assert m["tls"] is None
    assert wait_records(d, "Delivery", id=qid)[0]["tls"] is None


def test_bad_ca_file_stops_the_start(make_drover, tmp_path):
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("not a certificate\n")
    d = make_drover(start=False, delivery={"tls_ca_file": str(bad)})
    d.port = free_port()
    d.write_config()
    r = d.cli("serve", "--config", str(d.config_path), check=False, timeout=deadline(20))
    assert r.returncode != 0
    assert "delivery.tls_ca_file" in r.stderr and str(bad) in r.stderr, r.stderr
