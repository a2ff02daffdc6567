"""Authenticated submission: AUTH PLAIN and LOGIN (RFC 4954) against a users file made with
`drover user add`, only under TLS; the submission (587) and submissions (465) roles; relay
only for users and relay_networks; sender domains per user (MAIL FROM and header From);
failed attempts delayed, counted and blocked; message rates per user and per client.
"""

import base64
import smtplib
import ssl
import subprocess
import time

import pytest

from conftest import Client, deadline, free_port, wait_for
from tlsutil import TestCA


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def users(tmp_path, drover_bin):
    """alice (yescrypt) may send as example.com and its subdomains; bob (bcrypt) as anyone."""
    lines = []
    for name, pw, method, domains in [("alice", "alice-pw", "yescrypt", "example.com"),
                                      ("bob", "bob-pw", "bcrypt", None)]:
        args = [drover_bin, "user", "add", name, "--method", method]
        if domains:
            args += ["--domains", domains]
        r = subprocess.run(args, input=pw + "\n", capture_output=True, text=True, timeout=60,
                           check=True)
        lines.append(r.stdout.strip())
    path = tmp_path / "users"
    path.write_text("# test users\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture
def submitter(make_drover, ca, users):
    def make(role="submission", auth=None, **conf):
        cert, key = ca.issue("mta.example.com")
        a = {"users_file": str(users), **(auth or {})}
        extra = "\n".join([f'tls_certificate "mta" {{\n  certificate = "{cert}"\n'
                           f'  key = "{key}"\n}}',
                           "auth {"] + [f'  {k} = "{v}"' for k, v in a.items()] + ["}"])
        conf.setdefault("relay_networks", ["192.0.2.0/24"])  # not loopback: AUTH decides
        return make_drover(listener={"role": role, **conf.pop("listener", {})}, extra=extra,
                           **conf)
    return make


def tls_ctx(ca):
    ctx = ssl.create_default_context(cafile=str(ca.path))
    return ctx


def plain(user, pw):
    return base64.b64encode(f"\0{user}\0{pw}".encode()).decode()


def starttls(c, ca):
    assert c.cmd("STARTTLS") == "220"
    c.sock = tls_ctx(ca).wrap_socket(c.sock, server_hostname="mta.example.com")
    return c.cmd("EHLO client.example")


def test_auth_only_under_tls_and_required_before_mail(submitter, ca):
    d = submitter()
    c = Client(d.port)
    c.greet()
    r = c.ehlo()
    assert "AUTH" not in r.text and "STARTTLS" in r.text
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-pw")).text.startswith("538 5.7.11")
    assert c.cmd("MAIL FROM:<alice@example.com>").text.startswith("530 5.7.0")
    r = starttls(c, ca)
    assert "250-AUTH PLAIN LOGIN" in r.text
    assert c.cmd("MAIL FROM:<alice@example.com>").text.startswith("530 5.7.0")
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-pw"), timeout=deadline(30)) == "235"
    assert "AUTH" not in c.cmd("EHLO again.example").text  # not offered twice
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-pw")) == "503"
    assert c.cmd("MAIL FROM:<alice@news.example.com>") == "250"
    assert c.cmd("RCPT TO:<someone@elsewhere.example>") == "250"  # relay for users
    assert c.cmd("DATA") == "354"
    r = c.cmd("From: Alice <alice@example.com>\r\nSubject: hi\r\n\r\nHello.\r\n.")
    assert r == "250", r
    c.cmd("QUIT")
    qid = next(iter(d.queue_ids()))
    assert "with ESMTPSA id" in d.queue_show(qid).decode("latin-1")
    ev = d.wait_events(lambda e: e["type"] == "Authentication", timeout=deadline(10))
    assert ev[0]["user"] == "alice" and ev[0]["result"] == "ok" and ev[0]["tls"] is True
    assert ev[0]["mechanism"] == "PLAIN"


def test_smtplib_login_and_plain_and_sender_domains(submitter, ca):
    d = submitter()
    for mech, user, pw in [("LOGIN", "bob", "bob-pw"), ("PLAIN", "alice", "alice-pw")]:
        s = smtplib.SMTP("127.0.0.1", d.port, timeout=deadline(30))
        s._host = "mta.example.com"
        s.starttls(context=tls_ctx(ca))
        s.ehlo()
        s.login(user, pw, initial_response_ok=(mech == "PLAIN")) if mech == "PLAIN" else \
            s.auth("LOGIN", lambda challenge=None: (user if challenge == b"Username:" else pw),
                   initial_response_ok=False)
        if user == "alice":
            code, text = s.mail("alice@other.example")
            assert code == 553 and b"5.7.1" in text
            s.rset()
            code, _ = s.mail("alice@example.com")
            assert code == 250
            s.rcpt("x@elsewhere.example")
            code, text = s.data(b"From: <boss@other.example>\r\nSubject: x\r\n\r\nHi.\r\n")
            assert code == 553 and b"header From" in text, text
        else:
            s.sendmail("anyone@anywhere.example", ["x@elsewhere.example"],
                       b"From: <anyone@anywhere.example>\r\n\r\nHi.\r\n")
        s.quit()
    assert len(d.queue_ids()) == 1  # bob's only


def test_wrong_password_is_delayed_counted_and_blocks(submitter, ca):
    d = submitter(auth={"failures_max": "3"})
    c = Client(d.port)
    c.greet()
    c.ehlo()
    starttls(c, ca)
    t0 = time.monotonic()
    assert c.cmd("AUTH PLAIN " + plain("alice", "wrong"), timeout=deadline(30)) == "535"
    assert time.monotonic() - t0 >= 0.9  # the first failure waits a second
    # LOGIN with an unknown user: the same answer, after a longer delay.
    assert c.cmd("AUTH LOGIN").text == "334 VXNlcm5hbWU6"
    assert c.cmd(base64.b64encode(b"nobody").decode()).text == "334 UGFzc3dvcmQ6"
    assert c.cmd(base64.b64encode(b"x").decode(), timeout=deadline(30)) == "535"
    r = c.cmd("AUTH PLAIN " + plain("bob", "nope"), timeout=deadline(30))
    assert r.text.startswith("421 4.7.0"), r
    # Blocked: the next connection from this address is turned away at once.
    c2 = Client(d.port)
    assert c2.reply().text.startswith("421 4.7.0")
    ev = d.wait_events(lambda e: e["type"] == "Authentication", count=3,
                       timeout=deadline(10))
    assert [e["result"] for e in ev] == ["bad", "no-user", "bad"], ev


def test_sasl_errors(submitter, ca):
    d = submitter()
    c = Client(d.port)
    c.greet()
    c.ehlo()
    starttls(c, ca)
    assert c.cmd("AUTH CRAM-MD5") == "504"
    assert c.cmd("AUTH") == "501"
    assert c.cmd("AUTH PLAIN").text == "334 "  # an empty challenge (RFC 4954 §4)
    assert c.cmd("*") == "501"  # cancelled
    assert c.cmd("AUTH PLAIN not*base64") == "501"
    authz = base64.b64encode(b"bob\0alice\0alice-pw").decode()
    assert c.cmd("AUTH PLAIN " + authz) == "535"  # acting as another user
    assert c.cmd("MAIL FROM:<a@example.com>") == "530"
    assert c.cmd("NOOP") == "250"
    c.cmd("QUIT")


def test_relay_refused_without_auth_on_mx_and_allowed_with_it(submitter, ca):
    d = submitter(role="mx")
    c = Client(d.port)
    c.greet()
    c.ehlo()
    assert c.cmd("MAIL FROM:<x@example.com>") == "250"  # mx: MAIL without AUTH is fine
    assert c.cmd("RCPT TO:<y@elsewhere.example>").text.startswith("554 5.7.1")
    c.cmd("RSET")
    starttls(c, ca)
    assert c.cmd("AUTH PLAIN " + plain("bob", "bob-pw"), timeout=deadline(30)) == "235"
    assert c.cmd("MAIL FROM:<x@example.com>") == "250"
    assert c.cmd("RCPT TO:<y@elsewhere.example>") == "250"
    c.cmd("QUIT")


def test_message_rates_per_client_and_per_user(submitter, ca):
    d = submitter(role="mx", relay_networks=["127.0.0.0/8"],
                  auth={"client_rate": "2/h", "user_rate": "1/h"})
    c = Client(d.port)
    c.greet()
    c.ehlo()
    for _ in range(2):
        assert c.cmd("MAIL FROM:<x@example.com>") == "250"
        c.cmd("RSET")
    r = c.cmd("MAIL FROM:<x@example.com>")
    assert r.text.startswith("450 4.7.1") and "rate limit of [127.0.0.1]" in r.text, r
    c.cmd("QUIT")
    d2 = submitter(auth={"user_rate": "1/h"})
    c = Client(d2.port)
    c.greet()
    c.ehlo()
    starttls(c, ca)
    assert c.cmd("AUTH PLAIN " + plain("bob", "bob-pw"), timeout=deadline(30)) == "235"
    assert c.cmd("MAIL FROM:<x@example.com>") == "250"
    c.cmd("RSET")
    r = c.cmd("MAIL FROM:<x@example.com>")
    assert r.text.startswith("450 4.7.1") and "user bob" in r.text, r


def test_submissions_is_tls_from_the_first_octet(submitter, ca):
    d = submitter(role="submissions")
    s = smtplib.SMTP_SSL("127.0.0.1", d.port, context=ssl._create_unverified_context(),
                         timeout=deadline(30))
    assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
    s.ehlo()
    assert s.has_extn("auth") and not s.has_extn("starttls")
    s.login("bob", "bob-pw")
    s.sendmail("bob@example.org", ["x@elsewhere.example"], b"Subject: s\r\n\r\nHi.\r\n")
    s.quit()
    assert len(d.queue_ids()) == 1


def test_check_config_reports_the_users_file(make_drover, drover_bin, tmp_path):
    bad = tmp_path / "users"
    bad.write_text("alice:$1$md5$notallowed\n")
    d = make_drover(start=False, extra=f'auth {{\n  users_file = "{bad}"\n}}')
    d.port = free_port()
    d.write_config()
    r = subprocess.run([drover_bin, "check-config", str(d.config_path)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    line = next(i for i, t in enumerate(d.config_path.read_text().splitlines(), 1)
                if "users_file" in t)
    assert f"{d.config_path}:{line}: auth.users_file:" in r.stderr, r.stderr
    assert f"{bad}:1:" in r.stderr


RELAY_BATTERY = [
    "<user@dest.example>", "<USER@DEST.EXAMPLE>", "<user@dest.example.>",
    "<user%dest.example@relay.example>", "<USER%DEST.EXAMPLE@RELAY.EXAMPLE>",
    "<dest.example!user@relay.example>", "<@relay.example:user@dest.example>",
    "<\"user@dest.example\"@relay.example>", "<\"user%dest.example\"@relay.example>",
    "<user@[192.0.2.1]>", "<user@[IPv6:2001:db8::1]>", "<user@[127.0.0.1]>",
    "<user>", "<\"user\">", "<postmaster@dest.example>", "<user@localhost>",
]


def test_open_relay_battery_is_refused_every_time(submitter):
    """A client outside relay_networks, not authenticated, on an mx listener: no recipient
    anywhere is accepted, however it is written."""
    d = submitter(role="mx", smtp={"max_errors": 100})
    c = Client(d.port)
    c.greet()
    c.ehlo()
    for rcpt in RELAY_BATTERY:
        assert c.cmd("MAIL FROM:<x@example.com>") == "250"
        r = c.cmd(f"RCPT TO:{rcpt}")
        assert r.text[0] == "5" and r.text[4:7] in ("5.7", "5.1"), (rcpt, r)
        c.cmd("RSET")
    c.cmd("QUIT")
    assert not d.queue_ids()
