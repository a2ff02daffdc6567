"""The SMTP server's TLS with real clients: STARTTLS (RFC 3207) through smtplib, openssl
s_client and swaks; certificates chosen by SNI; TLS 1.2 as the floor; the STARTTLS command
injection class of bugs; certificates reloaded on SIGHUP; the Received: field says so.
"""

import shutil
import signal
import smtplib
import socket
import ssl
import subprocess

import pytest

from conftest import Client, deadline, give, smtp, traversable, wait_for
from tlsutil import TestCA


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"))


def cert_sections(*pairs):
    out = []
    for i, (cert, key) in enumerate(pairs):
        out += [f'tls_certificate "c{i}" {{', f'  certificate = "{cert}"', f'  key = "{key}"',
                "}"]
    return "\n".join(out)


@pytest.fixture
def tls_drover(make_drover, ca):
    def make(*names_list, **conf):
        pairs = [ca.issue(*names) for names in (names_list or (("mta.example.com",),))]
        return make_drover(extra=cert_sections(*pairs), **conf)
    return make


def starttls(s, ctx, name):
    """smtplib's STARTTLS with SNI and the host name check for name (smtplib would use the
    address it connected to)."""
    s._host = name
    return s.starttls(context=ctx)


def client_context(ca, verify=True):
    ctx = ssl.create_default_context(cafile=str(ca.path))
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def peer_names(sock):
    cert = sock.getpeercert()
    return sorted(v for k, v in cert.get("subjectAltName", ()) if k == "DNS")


def test_starttls_offered_and_mail_accepted_over_tls(tls_drover, ca):
    d = tls_drover()
    with smtp(d.port) as s:
        assert s.has_extn("starttls")
        code, _ = starttls(s, client_context(ca), "mta.example.com")
        assert code == 220
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        s.ehlo()
        assert not s.has_extn("starttls")  # not offered twice
        s.sendmail("a@example.com", ["b@example.org"], b"Subject: tls\r\n\r\nHi.\r\n")
    qid = next(iter(d.queue_ids()))
    stored = d.queue_show(qid).decode("latin-1")
    assert "with ESMTPS id" in stored
    assert "(using TLSv1." in stored and "with cipher" in stored


def test_state_is_reset_and_ehlo_required_after_starttls(tls_drover, ca):
    d = tls_drover()
    c = Client(d.port)
    c.greet()
    c.ehlo()
    assert c.cmd("STARTTLS") == "220"
    c.sock = client_context(ca).wrap_socket(c.sock, server_hostname="mta.example.com")
    # MAIL before a new EHLO: the earlier EHLO is forgotten (RFC 3207 §4.2).
    assert c.cmd("MAIL FROM:<a@example.com>") == "503"
    assert c.cmd("EHLO client.example") == "250"
    assert c.cmd("STARTTLS") == "503"  # already active
    assert c.cmd("MAIL FROM:<a@example.com>") == "250"
    c.cmd("QUIT")


def test_commands_pipelined_after_starttls_are_discarded(tls_drover, ca):
    """The STARTTLS injection (CVE-2011-0411 class): what follows STARTTLS in the same packet
    must never be run under TLS."""
    d = tls_drover()
    c = Client(d.port)
    c.greet()
    c.ehlo()
    c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<x@example.org>\r\n")
    assert c.reply() == "220"
    c.sock = client_context(ca).wrap_socket(c.sock, server_hostname="mta.example.com")
    assert c.buf == b""
    # The first reply under TLS answers our EHLO, not the injected MAIL.
    r = c.cmd("EHLO client.example")
    assert r == "250", r
    assert c.cmd("RCPT TO:<x@example.org>") == "503"  # no transaction was opened
    c.cmd("QUIT")


def test_starttls_refusals(tls_drover, make_drover):
    d = tls_drover()
    c = Client(d.port)
    c.greet()
    assert c.cmd("STARTTLS") == "503"  # before EHLO
    c.ehlo()
    assert c.cmd("STARTTLS now") == "501"
    assert c.cmd("MAIL FROM:<a@example.com>") == "250"
    assert c.cmd("STARTTLS") == "503"  # inside a transaction
    c.cmd("QUIT")
    plain = make_drover()
    c = Client(plain.port)
    c.greet()
    r = c.ehlo()
    assert "STARTTLS" not in r.text
    assert c.cmd("STARTTLS") == "502"
    c.cmd("QUIT")
    off = tls_drover(listener={"starttls": False})
    c = Client(off.port)
    c.greet()
    assert "STARTTLS" not in c.ehlo().text
    c.cmd("QUIT")


def test_sni_chooses_the_certificate(tls_drover, ca):
    d = tls_drover(("mta.example.com",), ("*.customer.example", "customer.example"))
    for name, expect in [("mta.example.com", ["mta.example.com"]),
                         ("mx.customer.example", ["*.customer.example", "customer.example"]),
                         ("customer.example", ["*.customer.example", "customer.example"]),
                         ("unknown.example", ["mta.example.com"])]:
        with smtp(d.port) as s:
            starttls(s, client_context(ca, verify=False), name)
            assert peer_names_of(s.sock) == expect, name


def peer_names_of(sock):
    der = sock.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-ext",
                          "subjectAltName"], input=der, capture_output=True, check=True,
                         timeout=30).stdout.decode()
    return sorted(p.strip()[4:] for p in out.splitlines()[-1].split(",") if "DNS:" in p)


def test_openssl_s_client_and_tls_floor(tls_drover):
    d = tls_drover()
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{d.port}", "-starttls",
                        "smtp", "-servername", "mta.example.com", "-brief"],
                       input=b"EHLO x\r\nQUIT\r\n", capture_output=True, timeout=30)
    err = r.stderr.decode()
    assert "Protocol version: TLSv1.3" in err, err
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{d.port}", "-starttls",
                        "smtp", "-tls1_1", "-brief"], input=b"", capture_output=True,
                       timeout=30)
    assert r.returncode != 0  # TLS 1.1 refused by default (RFC 8996)
    # The server is still there for the next client.
    with smtp(d.port) as s:
        assert s.noop()[0] == 250


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is installed by make test")
def test_swaks_sends_over_starttls(tls_drover):
    d = tls_drover()
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{d.port}", "--tls", "--to",
                        "b@example.org", "--from", "a@example.com"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "250 2.0.0 Ok: queued as" in r.stdout


def test_handshake_failures_and_garbage_do_not_hurt_the_server(tls_drover, ca):
    d = tls_drover()
    for junk in (b"\x16\x03\x01\x00\x05hello", b"GET / HTTP/1.0\r\n\r\n", b""):
        c = Client(d.port)
        c.greet()
        c.ehlo()
        assert c.cmd("STARTTLS") == "220"
        c.send(junk)
        c.sock.close()
    # A client that starts TLS and never finishes it is cut at the command timeout; another
    # is served meanwhile.
    stuck = socket.create_connection(("127.0.0.1", d.port))
    stuck.sendall(b"EHLO x\r\nSTARTTLS\r\n")
    with smtp(d.port) as s:
        starttls(s, client_context(ca), "mta.example.com")
        s.ehlo()
        assert s.noop()[0] == 250
    stuck.close()
    events = d.wait_events(lambda e: e["type"] == "Rejection" and e.get("command") == "STARTTLS",
                           count=2, timeout=deadline(10))
    assert all("handshake" in e["reply"] for e in events)


def test_check_config_and_reload_of_certificates(tls_drover, make_drover, ca, tmp_path,
                                                  drover_bin):
    cert, key = ca.issue("mta.example.com", stem="reload")
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(cert, live_cert)
    shutil.copy(key, live_key)
    # The server reads them again after it stopped being root.
    traversable(tmp_path)
    give(live_cert)
    give(live_key)
    d = make_drover(extra=cert_sections((live_cert, live_key)))
    with smtp(d.port) as s:
        starttls(s, client_context(ca, verify=False), "x")
        assert peer_names_of(s.sock) == ["mta.example.com"]
    # A new certificate in place, then HUP: new sessions get it.
    cert2, key2 = ca.issue("new.example.com", stem="reload2")
    shutil.copy(cert2, live_cert)
    shutil.copy(key2, live_key)
    d.send_signal(signal.SIGHUP)

    def renewed():
        with smtp(d.port) as s:
            starttls(s, client_context(ca, verify=False), "x")
            return peer_names_of(s.sock) == ["new.example.com"]

    wait_for(renewed, deadline(10), interval=0.1, what="the reloaded certificate")
    # A broken file and HUP: the old certificate stays, the error is logged.
    live_key.write_text("not a key\n")
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: "the certificates read before stay in use" in d.stderr_text(),
             deadline(10), what="the reload error")
    assert "tls_certificate" in d.stderr_text(), d.stderr_tail()
    assert renewed()
    # check-config names the file and line of the certificate setting.
    bad = make_drover(start=False, extra=cert_sections((tmp_path / "missing.pem", key)))
    from conftest import free_port
    bad.port = free_port()
    bad.write_config()
    r = subprocess.run([drover_bin, "check-config", str(bad.config_path)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    line = next(i for i, t in enumerate(bad.config_path.read_text().splitlines(), 1)
                if "missing.pem" in t)
    assert f'{bad.config_path}:{line}: tls_certificate "c0".certificate' in r.stderr, r.stderr
