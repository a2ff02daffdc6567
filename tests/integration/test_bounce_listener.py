"""VERP return paths and the bounce listener, end to end (docs/feedback.md).

Mail that Drover delivers carries a return path per recipient, bounce+TOKEN@bounce-domain,
which this test decodes itself (the token format, written out in Python from the docs). What
comes back to the bounce domain reaches a listener of role "bounce": a DSN or a plain bounce
becomes an AsyncBounce record tied to the original message and recipient and, when the bounce
rules say so, a suppression for the token's tenant; an ARF complaint becomes a Feedback record
and a suppression; a forged token is refused at RCPT; reports that nothing ties to a message
are accepted and logged as unattributed. SIGHUP reloads the bounce rules for both the engine
and the listener, keeping the old ones when the new file is broken.

Reports are the samples of tests/data/feedback, with their tokens and recipients replaced by
ones made for this server.
"""

import base64
import hashlib
import hmac
import json
import re
import signal
import smtplib
import subprocess
import urllib.request

import pytest

from conftest import REPO, Client, deadline, free_port, give, traversable, wait_for
from receiver import Script
from test_delivery import (SENDER, SENDER_IP, DEST_IP, dns, net, submit,  # noqa: F401
                           wait_messages, wait_records)

BOUNCE_DOMAIN = "bounces.drover.example"
SECRET = "7f3c9a1e5b2d8c4f6a0e1d3b5c7a9f2e"
OLD_SECRET = "an-older-secret-still-accepted-01"
SAMPLES = REPO / "tests/data/feedback"
SAMPLE_TOKEN = re.compile(rb"bounce\+[a-z2-7]{48}@bounces\.example\.com", re.I)


# ---------------------------------------------------------------- the token, from the docs

def _mac(secret, context, data, n):
    return hmac.new(secret.encode(), context + b"\0" + data, hashlib.sha256).digest()[:n]


def verp_encode(qid, rcpt_index, address, tenant=None, secret=SECRET, prefix="bounce"):
    """docs/feedback.md, version 2: version | queue id | index | rcpt tag | tenant tag | MAC."""
    tok = bytes([2]) + bytes.fromhex(qid) + rcpt_index.to_bytes(3, "big")
    tok += _mac(secret, b"drover-verp-rcpt", address.lower().encode(), 4)
    tok += _mac(secret, b"drover-verp-tenant", (tenant or "").encode(), 5)
    tok += _mac(secret, b"drover-verp", tok, 10)
    return f"{prefix}+{base64.b32encode(tok).decode().lower()}@{BOUNCE_DOMAIN}"


def verp_decode(address, secret=SECRET):
    local, domain = address.rsplit("@", 1)
    prefix, token = local.split("+", 1)
    assert domain == BOUNCE_DOMAIN and prefix == "bounce" and len(local) <= 64, address
    tok = base64.b32decode(token.upper())
    assert len(tok) == 35 and tok[0] == 2, address
    assert hmac.compare_digest(_mac(secret, b"drover-verp", tok[:25], 10), tok[25:]), address
    return {"queue_id": tok[1:13].hex(), "rcpt": int.from_bytes(tok[13:16], "big"),
            "rcpt_tag": tok[16:20], "tenant_tag": tok[20:25]}


def tag_of(address, secret=SECRET):
    return _mac(secret, b"drover-verp-rcpt", address.lower().encode(), 4)


def tenant_tag_of(tenant, secret=SECRET):
    return _mac(secret, b"drover-verp-tenant", (tenant or "").encode(), 5)


def sample(name, verp, recipient, old_recipient):
    """A report of tests/data/feedback, its token replaced by verp, its recipient by ours."""
    data = (SAMPLES / name).read_bytes()
    data = SAMPLE_TOKEN.sub(verp.encode(), data)
    data = data.replace(old_recipient.encode(), recipient.encode())
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# ---------------------------------------------------------------- the server

@pytest.fixture
def bounce_server(make_drover, dns, net, tmp_path):  # noqa: F811
    """Factory: a Drover delivering through the test DNS to net's receivers, with VERP on and
    a bounce listener on .bport; rules= a bounce rules file; control= a control port."""

    def make(rules=None, control=None, previous=False, extra=""):
        traversable(tmp_path)
        secret = tmp_path / "verp.secret"
        secret.write_text(SECRET + "\n")
        secret.chmod(0o600)
        old = tmp_path / "verp.old"
        old.write_text(OLD_SECRET)
        old.chmod(0o600)
        bport = free_port()
        d = {"port": net.port, "dns_forwarders": [dns.forwarder], "retry": ["1s"],
             "helo_name": "out.drover.example"}
        if rules is not None:
            d["bounce_rules"] = str(rules)
        text = (f'verp {{\n  domain = "{BOUNCE_DOMAIN}"\n  secret_file = "{secret}"\n'
                + (f'  previous_secret_file = "{old}"\n' if previous else "")
                + f'}}\nlistener "bounces" {{\n  address = "127.0.0.1:{bport}"\n'
                + '  role = "bounce"\n}\ntenant "acme" {\n}\n' + extra)
        conf = {"delivery": d, "extra": text}
        if control is not None:
            conf["control"] = f"127.0.0.1:{control}"
        srv = make_drover(**conf)
        srv.bport = bport
        return srv

    return make


def suppress_cli(drover_bin, d, *args):
    return subprocess.run([drover_bin, "suppress", *args, "--dir", str(d.spool / "suppress")],
                          capture_output=True, text=True, timeout=deadline(30))


def suppressed(drover_bin, d, tenant=None):
    """The list's entries ((tenant, address, reason) tuples) of a tenant, or all of them."""
    args = ["list", "--json"] + (["--tenant", tenant] if tenant is not None else [])
    r = suppress_cli(drover_bin, d, *args)
    if r.returncode != 0:  # no entry was ever added: the list does not exist yet
        return set()
    return {(e["tenant"], e["address"], e["reason"])
            for e in map(json.loads, r.stdout.splitlines())}


def report(d, rcpts, data, sender=""):
    """Sends a report to the bounce listener; returns the final reply (code, text)."""
    with smtplib.SMTP("127.0.0.1", d.bport, timeout=deadline(20)) as s:
        s.ehlo("mx.reporter.example")
        code, text = s.mail(sender)
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (r, code, text)
        return s.data(data)


def rcpt_reply(d, rcpt):
    with smtplib.SMTP("127.0.0.1", d.bport, timeout=deadline(20)) as s:
        s.ehlo("mx.reporter.example")
        assert s.mail("")[0] == 250
        code, text = s.rcpt(rcpt)
        return code, text.decode()


def events_of(d, type_, **match):
    return [e for e in d.events()
            if e["type"] == type_ and all(e.get(k) == v for k, v in match.items())]


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=deadline(10)) as r:
        text = r.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


# ---------------------------------------------------------------- outgoing mail

def test_each_recipient_gets_its_own_verp_and_dsns_keep_the_null_sender(bounce_server,
                                                                         net):  # noqa: F811
    rx_sender = net.receiver(SENDER_IP)
    rx = net.receiver(DEST_IP, Script(rcpt_replies={
        "gone@dest.example": "550 5.1.1 <gone@dest.example>: Recipient address rejected: "
                             "User unknown in virtual mailbox table"}))
    d = bounce_server()
    rcpts = ["ann@dest.example", "Bob@Dest.Example", "gone@dest.example"]
    qid, _ = submit(d.port, rcpts)
    got = wait_messages(rx, 2)
    # One transaction per recipient, each with the return path made for it.
    assert sorted(len(m["rcpt_to"]) for m in got) == [1, 1]
    for m in got:
        (rcpt,) = m["rcpt_to"]
        v = verp_decode(m["mail_from"])
        assert v["queue_id"] == qid
        assert rcpts[v["rcpt"]] == rcpt
        assert v["rcpt_tag"] == tag_of(rcpt)
        rec = wait_records(d, "Reception", id=qid)[0]
        assert v["tenant_tag"] == tenant_tag_of(rec.get("tenant"))
    assert len({m["mail_from"] for m in got}) == 2
    # The refused one was tried with its own return path too, and its bounce has a category.
    b = wait_records(d, "Bounce", recipient="gone@dest.example")[0]
    assert b["category"] == "bad-mailbox" and b["decision"] == "suppress"
    # (the receiver records a session once it is closed: after Drover's idle timeout)
    sessions = wait_for(lambda: [s for s in rx.sessions()
                                 if any("gone@dest.example" in c for c in s["commands"])],
                        deadline(20), what="the session record")
    mails = [c for s in sessions for c in s["commands"] if c.startswith("MAIL FROM:")]
    assert len(mails) == 3
    assert any(verp_decode(re.search(r"<(.*?)>", c).group(1))["rcpt"] == 2 for c in mails)
    # The DSN to the sender keeps the null sender, and the sender address of the message.
    dsn = wait_messages(rx_sender, 1, pred=lambda m: m["mail_from"] == "")[0]
    assert dsn["rcpt_to"] == [SENDER]
    assert all(e["sender"] == SENDER for e in events_of(d, "Delivery", id=qid))


# ---------------------------------------------------------------- bounces

def test_dsn_for_a_delivered_message_is_attributed_and_suppresses(bounce_server, net,
                                                                   drover_bin):  # noqa: F811
    net.receiver(SENDER_IP)
    rx = net.receiver(DEST_IP)
    cport = free_port()
    d = bounce_server(control=cport)
    qid, _ = submit(d.port, ["bob@dest.example"])
    verp = wait_messages(rx, 1)[0]["mail_from"]
    assert verp_decode(verp)["queue_id"] == qid
    tenant = wait_records(d, "Reception", id=qid)[0].get("tenant")

    dsn = sample("postfix-user-unknown.eml", verp, "bob@dest.example", "bob@example.org")
    code, text = report(d, [verp], dsn)
    assert code == 250, text
    ab = wait_records(d, "AsyncBounce", id=qid)[0]
    assert ab["attributed"] is True and ab["verp_source"] == "rcpt-to"
    assert ab["recipient"] == "bob@dest.example" and ab["recipient_verified"] is True
    assert ab["rcpt_index"] == 0 and ab["tenant"] == tenant
    assert ab["kind"] == "dsn" and ab["action"] == "failed" and ab["status"] == "5.1.1"
    assert "does not exist" in ab["diagnostic"]
    assert ab["category"] == "bad-mailbox" and ab["decision"] == "suppress"
    assert ab["suppressed"] is True and ab["client_ip"] == "127.0.0.1"
    # The 250 came after the list committed: the entry is there now.
    assert suppressed(drover_bin, d) == {(tenant or "", "bob@dest.example", "hard-bounce")}
    r = suppress_cli(drover_bin, d, "list", "--json")
    assert "5.1.1" in json.loads(r.stdout.splitlines()[0])["source"]
    # Never queued for delivery.
    assert d.queue_ids() == set()
    m = metrics(cport)
    assert m['drover_bounces_total{category="bad-mailbox",kind="async"}'] == 1
    assert m['drover_bounces_total{category="bad-mailbox",kind="delivery"}'] == 0
    assert m["drover_reports_unattributed_total"] == 0


def test_report_in_bdat_chunks_and_several_per_session(bounce_server, drover_bin):
    """CHUNKING works on the bounce listener (each chunk kept, the report read at LAST), and
    one session may carry several reports."""
    d = bounce_server()
    c = Client(d.bport)
    c.greet()
    c.ehlo("mx.reporter.example")
    for n in range(2):
        qid = f"0190a1b2c3d4e5f6000000c{n}"
        verp = verp_encode(qid, n, f"chunk{n}@dest.example")
        dsn = sample("postfix-user-unknown.eml", verp, f"chunk{n}@dest.example",
                     "bob@example.org")
        assert c.cmd("MAIL FROM:<>") == "250"
        assert c.cmd(f"RCPT TO:<{verp}>") == "250"
        half = len(dsn) // 2
        c.send(f"BDAT {half}\r\n".encode() + dsn[:half])
        assert c.reply() == "250"
        c.send(f"BDAT {len(dsn) - half} LAST\r\n".encode() + dsn[half:])
        r = c.reply()
        assert r.text.startswith("250 2.0.0 Ok: report received"), r
        ab = wait_records(d, "AsyncBounce", id=qid)[0]
        assert ab["recipient"] == f"chunk{n}@dest.example" and ab["suppressed"] is True
        assert ab["diagnostic"].startswith("user unknown"), ab
    c.cmd("QUIT")
    assert {a for _, a, _ in suppressed(drover_bin, d)} == {"chunk0@dest.example",
                                                           "chunk1@dest.example"}


def test_token_carries_the_tenant(bounce_server, drover_bin):
    """The listener finds the tenant a token names among the tenant sections, and suppresses
    for that tenant only; the previous secret is still accepted."""
    d = bounce_server(previous=True)
    qid = "0190a1b2c3d4e5f6000000aa"
    verp = verp_encode(qid, 3, "carol@dest.example", tenant="acme", secret=OLD_SECRET)
    dsn = sample("exim-failed.eml", verp, "carol@dest.example", "frank@mail.example.net")
    if b"carol@dest.example" not in dsn:
        pytest.fail("sample exim-failed.eml no longer names frank@mail.example.net")
    code, text = report(d, [verp], dsn)
    assert code == 250, text
    ab = wait_records(d, "AsyncBounce", id=qid)[0]
    assert ab["tenant"] == "acme" and ab["rcpt_index"] == 3 and ab["suppressed"] is True, ab
    assert suppressed(drover_bin, d, "acme") == {("acme", "carol@dest.example", "hard-bounce")}
    assert suppressed(drover_bin, d, "") == set()
    # A token for a tenant that no section names: attributed, logged, nothing suppressed.
    verp = verp_encode("0190a1b2c3d4e5f6000000ab", 0, "dan@dest.example", tenant="gone")
    dsn = sample("exim-failed.eml", verp, "dan@dest.example", "frank@mail.example.net")
    assert report(d, [verp], dsn)[0] == 250
    ab = wait_records(d, "AsyncBounce", id="0190a1b2c3d4e5f6000000ab")[0]
    assert ab["attributed"] is True and ab["tenant_unknown"] is True
    assert ab["suppressed"] is False
    assert ("gone", "dan@dest.example", "hard-bounce") not in suppressed(drover_bin, d)


def test_only_the_address_the_token_vouches_for_is_suppressed(bounce_server, drover_bin):
    """A valid token does not make every address its report names suppressible: only the one
    whose tag is in the token (here the Original-Recipient, after a forwarder rewrote the
    Final-Recipient), never one the report merely states."""
    d = bounce_server()
    qid = "0190a1b2c3d4e5f6000000d1"
    verp = verp_encode(qid, 0, "fay@dest.example")
    dsn = sample("postfix-user-unknown.eml", verp, "fay@dest.example", "bob@example.org")
    dsn = dsn.replace(b"Final-Recipient: rfc822; fay@dest.example",
                      b"Final-Recipient: rfc822; fay.forwarded@elsewhere.example")
    assert b"fay.forwarded@elsewhere.example" in dsn
    assert report(d, [verp], dsn)[0] == 250
    ab = wait_records(d, "AsyncBounce", id=qid)[0]
    assert ab["recipient"] == "fay@dest.example" and ab["recipient_verified"] is True, ab
    assert ab["suppressed"] is True
    # Someone else's address in a report carrying our own valid token: logged, not acted on.
    qid = "0190a1b2c3d4e5f6000000d2"
    verp = verp_encode(qid, 0, "mine@dest.example")
    dsn = sample("postfix-user-unknown.eml", verp, "victim@dest.example", "bob@example.org")
    assert report(d, [verp], dsn)[0] == 250
    ab = wait_records(d, "AsyncBounce", id=qid)[0]
    assert ab["attributed"] is True and ab["recipient"] == "victim@dest.example"
    assert ab["recipient_verified"] is False and ab["suppressed"] is False
    assert suppressed(drover_bin, d) == {("", "fay@dest.example", "hard-bounce")}


def test_rcpt_checks_forged_malformed_and_other_domains(bounce_server, drover_bin):
    d = bounce_server()
    forged = verp_encode("0190a1b2c3d4e5f600000001", 0, "eve@dest.example",
                         secret="somebody-elses-secret-value")
    code, text = rcpt_reply(d, forged)
    assert code == 550 and text.startswith("5.7.1") and "forged" in text, text
    rej = d.wait_events(lambda e: e["type"] == "Rejection" and e.get("command") == "RCPT"
                        and "forged" in e.get("reply", ""))[0]
    assert rej["listener"] == "bounces"
    code, text = rcpt_reply(d, f"bounce+notatoken@{BOUNCE_DOMAIN}")
    assert code == 550 and text.startswith("5.1.1"), text
    code, text = rcpt_reply(d, "someone@dest.example")
    assert code == 550 and text.startswith("5.7.1") and "relaying denied" in text, text
    # Report mailboxes at the bounce domain are taken.
    assert rcpt_reply(d, f"fbl@{BOUNCE_DOMAIN}")[0] == 250
    assert rcpt_reply(d, f"Postmaster@{BOUNCE_DOMAIN.upper()}")[0] == 250
    # A report naming the forged token elsewhere (its To, its original's Return-Path) is
    # logged unattributed and suppresses nothing.
    dsn = sample("postfix-user-unknown.eml", forged, "eve@dest.example", "bob@example.org")
    assert report(d, [f"postmaster@{BOUNCE_DOMAIN}"], dsn)[0] == 250
    ab = d.wait_events(lambda e: e["type"] == "AsyncBounce"
                       and e.get("recipient") == "eve@dest.example")[0]
    assert ab["attributed"] is False and ab["verp_status"] == "forged" and ab["id"] is None
    assert ab["suppressed"] is False
    assert suppressed(drover_bin, d) == set()


def test_arf_complaint_is_a_feedback_record_and_suppresses(bounce_server, drover_bin):
    d = bounce_server()
    qid = "0190a1b2c3d4e5f60000001e"
    verp = verp_encode(qid, 0, "abby@mail.dest.example")
    arf = sample("arf-yahoo.eml", verp, "abby@mail.dest.example", "abby@yahoo-like.example")
    # Sent to the feedback-loop address; the token is in the original's Return-Path.
    assert report(d, [f"fbl@{BOUNCE_DOMAIN}"], arf,
                  sender="feedback@arf.example")[0] == 250
    fb = wait_records(d, "Feedback", id=qid)[0]
    assert fb["attributed"] is True and fb["feedback_type"] == "abuse"
    assert fb["recipient"] == "abby@mail.dest.example" and fb["recipient_verified"] is True
    assert fb["user_agent"].startswith("Yahoo!-Mail-Feedback") and fb["source_ip"]
    assert fb["message_id"] == "<sale-2025-spring.a1@news.shop.example.com>"
    assert fb["suppressed"] is True
    assert suppressed(drover_bin, d) == {("", "abby@mail.dest.example", "complaint")}


def test_malformed_and_foreign_reports_are_accepted_and_logged(bounce_server, drover_bin):
    d = bounce_server()
    # Junk that is still valid SMTP data (8-bit, CRLF lines, no NUL): the listener's data
    # rules are every listener's, but 8-bit text needs no BODY=8BITMIME there.
    junk = b"".join(bytes((i * 7 + j) % 224 + 32 for j in range(70)) + b"\r\n"
                    for i in range(40))
    datas = [junk] + [(SAMPLES / n).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                      for n in ("malformed-truncated.eml", "malformed-no-boundary.eml",
                                "not-report-out-of-office.eml", "qmail-bounce.eml")]
    for data in datas:
        code, text = report(d, [f"postmaster@{BOUNCE_DOMAIN}"], data)
        assert code == 250, (data[:60], text)
    wait_for(lambda: len([e for e in d.events() if e["type"] in
                          ("AsyncBounce", "NotAReport", "AsyncNotice")]) >= len(datas),
             deadline(10), what="a record per report")
    recs = [e for e in d.events() if e["type"] in ("AsyncBounce", "NotAReport", "AsyncNotice")]
    # The samples' tokens were made with another secret: nothing is attributed.
    assert all(e["attributed"] is False and e["id"] is None for e in recs), recs
    assert {"NotAReport", "AsyncBounce"} <= {e["type"] for e in recs}
    assert all(e["suppressed"] is False for e in recs)
    assert suppressed(drover_bin, d) == set()
    assert d.queue_ids() == set()


# ---------------------------------------------------------------- reloading the rules

def test_sighup_reloads_the_rules_for_listener_and_engine(bounce_server, net, tmp_path,
                                                          drover_bin):  # noqa: F811
    rules = tmp_path / "rules.conf"
    rules.write_text("rule bad-mailbox text user unknown|does not exist\n")
    give(rules)
    net.receiver(SENDER_IP)
    net.receiver(DEST_IP, Script(rcpt_replies={
        f"u{i}@dest.example": f"550 5.1.1 <u{i}@dest.example>: user unknown" for i in range(3)}))
    d = bounce_server(rules=rules)

    def bounce_of(n, qid):
        verp = verp_encode(qid, 0, f"r{n}@dest.example")
        dsn = sample("postfix-user-unknown.eml", verp, f"r{n}@dest.example", "bob@example.org")
        assert report(d, [verp], dsn)[0] == 250
        return wait_records(d, "AsyncBounce", id=qid)[0]

    ab = bounce_of(1, "0190a1b2c3d4e5f600000101")
    assert ab["category"] == "bad-mailbox" and ab["rule_line"] == 1 and ab["suppressed"]

    # A broken file: the old rules stay, and the log names the file and line.
    rules.write_text("# comment\nrule bad-mailbx text user unknown\n")
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in d.stderr_text(), deadline(10),
             what="the reload refused")
    line = [ln for ln in d.stderr_text().splitlines() if "reload refused" in ln][0]
    assert "delivery.bounce_rules" in line, line
    assert f"{rules}:2:" in line and "bad-mailbx" in line, line
    ab = bounce_of(2, "0190a1b2c3d4e5f600000102")
    assert ab["category"] == "bad-mailbox" and ab["suppressed"]
    submit(d.port, ["u1@dest.example"])
    assert wait_records(d, "Bounce", recipient="u1@dest.example")[0]["category"] == "bad-mailbox"

    # Fixed: the new rules take over in both places.
    rules.write_text("# user unknown means full here\n"
                     "rule quota-issues text user unknown|does not exist\n")
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload: configuration from" in d.stderr_text(), deadline(10),
             what="the reload")
    ab = bounce_of(3, "0190a1b2c3d4e5f600000103")
    assert ab["category"] == "quota-issues" and ab["decision"] == "permanent"
    assert ab["rule_line"] == 2 and ab["suppressed"] is False
    submit(d.port, ["u2@dest.example"])
    b = wait_records(d, "Bounce", recipient="u2@dest.example")[0]
    assert b["category"] == "quota-issues" and b["decision"] == "permanent"
    assert ("", "r3@dest.example", "hard-bounce") not in suppressed(drover_bin, d)
