"""Greeting, EHLO/HELO, a first message with smtplib and swaks, the queue and the event log."""

import datetime
import re
import signal
import subprocess

import pytest

from conftest import (SWAKS, deadline, listening_inodes, message, received_header,
                      send_one, smtp, wait_for)

EXTENSIONS = ("PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN")


def test_greeting_is_220_with_hostname(drover, connect):
    c = connect(drover.port)
    r = c.reply()
    assert r.code == 220
    assert r.lines[0].startswith("220 drover.test"), r
    assert "ESMTP" in r.text


def test_ehlo_lists_every_extension(make_drover, connect):
    d = make_drover(smtp={"max_message_size": "25M"})
    c = connect(d.port)
    c.greet()
    r = c.cmd("EHLO client.test")
    assert r.code == 250
    assert r.lines[0].startswith("250-drover.test"), r
    keywords = [line[4:].split()[0].upper() for line in r.lines[1:]]
    for ext in EXTENSIONS:
        assert ext in keywords, f"{ext} missing from {r.lines}"
    size = [line for line in r.lines if line[4:].upper().startswith("SIZE")]
    assert size and size[0][4:].split()[1] == str(25 * 1024 * 1024), r


def test_ehlo_greets_the_client_by_name_and_address(drover, connect):
    """docs/smtp.md: 250-<hostname> Hello client.example [127.0.0.1]"""
    c = connect(drover.port)
    c.greet()
    r = c.cmd("EHLO client.test")
    assert r.lines[0] == "250-drover.test Hello client.test [127.0.0.1]", r


def test_helo_answers_without_extensions(drover, connect):
    c = connect(drover.port)
    c.greet()
    r = c.cmd("HELO client.test")
    assert r.code == 250 and len(r.lines) == 1, r
    assert r.lines[0] == "250 drover.test Hello client.test [127.0.0.1]", r


def test_ehlo_and_helo_need_an_argument(drover, connect):
    c = connect(drover.port)
    c.greet()
    assert c.cmd("EHLO") == "501 5.5.4"
    assert c.cmd("HELO") == "501 5.5.4"
    assert c.cmd("EHLO client.test") == "250"


def test_message_via_smtplib_is_queued_with_its_envelope(drover):
    msg = message(subject="smtplib")
    qid, text = send_one(drover.port, "alice@example.org", ["bob@dest.example", "carol@dest.example"],
                         msg)
    assert re.match(r"2\.0\.0 Ok: queued as \S+", text), text
    queued = {m["id"]: m for m in drover.queue_list()}
    assert qid in queued, queued
    m = queued[qid]
    assert m["sender"] == "alice@example.org"
    assert m["recipients"] == ["bob@dest.example", "carol@dest.example"]
    # Stored = what was sent plus the Received: header Drover prepends.
    received = "Received: from client.test ([127.0.0.1]) by drover.test"
    assert m["size"] >= len(msg) + len(received), (m["size"], len(msg))


def test_queue_list_json_fields(drover):
    qid, _ = send_one(drover.port)
    (m,) = drover.queue_list()
    assert set(m) >= {"id", "sender", "recipients", "size", "received", "age_s"}, m
    assert m["id"] == qid
    assert isinstance(m["size"], int) and isinstance(m["recipients"], list)
    received = datetime.datetime.fromisoformat(m["received"].replace("Z", "+00:00"))
    assert received.tzinfo is not None
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - received).total_seconds()) < deadline(60)
    assert 0 <= m["age_s"] < deadline(60)


def test_queue_list_text_table(drover):
    qid, _ = send_one(drover.port, "table@example.org", ["t1@dest.example"])
    r = drover.cli("queue", "list", "--config", str(drover.config_path))
    assert qid in r.stdout
    assert "table@example.org" in r.stdout and "t1@dest.example" in r.stdout


def test_message_via_swaks_is_queued(drover):
    r = subprocess.run(
        [SWAKS, "--server", f"127.0.0.1:{drover.port}", "--from", "swaks@example.org",
         "--to", "rcpt@dest.example", "--helo", "swaks.test", "--header", "Subject: swaks",
         "--timeout", str(deadline(20))],
        capture_output=True, text=True, timeout=deadline(60))
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"<-\s+250 2\.0\.0 Ok: queued as (\S+)", r.stdout)
    assert m, r.stdout
    queued = {q["id"]: q for q in drover.queue_list()}
    assert queued[m.group(1)]["sender"] == "swaks@example.org"
    assert queued[m.group(1)]["recipients"] == ["rcpt@dest.example"]


def test_swaks_pipelining(drover):
    r = subprocess.run(
        [SWAKS, "--server", f"127.0.0.1:{drover.port}", "--from", "pipe@example.org",
         "--to", "a@dest.example,b@dest.example", "--pipeline", "--timeout", str(deadline(20))],
        capture_output=True, text=True, timeout=deadline(60))
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"queued as (\S+)", r.stdout)
    assert m, r.stdout
    queued = {q["id"]: q for q in drover.queue_list()}
    assert queued[m.group(1)]["recipients"] == ["a@dest.example", "b@dest.example"]


def test_reception_is_in_the_event_log(drover):
    msg = message()
    qid, text = send_one(drover.port, "ev@example.org", ["r1@dest.example", "r2@dest.example"],
                         msg, helo="evhelo.test")
    (e,) = drover.wait_events(lambda e: e.get("type") == "Reception")
    assert e["id"] == qid
    assert e["client_ip"] == "127.0.0.1"
    assert e["helo"] == "evhelo.test"
    assert e["listener"] == "smtp"
    assert e["sender"] == "ev@example.org"
    assert e["recipients"] == ["r1@dest.example", "r2@dest.example"]
    assert e["size"] == len(msg)  # as received, before our Received: header
    assert e["reply"].startswith("250 2.0.0") and qid in e["reply"]
    assert "time" in e


def test_every_event_has_time_and_type(drover, connect):
    send_one(drover.port)
    c = connect(drover.port)
    c.start()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<nodomain>")
    drover.wait_events(lambda e: e.get("type") == "Rejection")
    for e in drover.events():
        assert "time" in e and "type" in e, e


def test_null_sender_is_accepted(drover):
    qid, _ = send_one(drover.port, "", ["bounce@dest.example"])
    queued = {q["id"]: q for q in drover.queue_list()}
    assert queued[qid]["sender"] == ""


def test_received_header_is_prepended(drover):
    """The stored message is longer than what was sent by a Received: header naming the
    client, the server and the queue id (checked byte for byte if `queue show` exists)."""
    msg = message()
    qid, _ = send_one(drover.port, rcpts=["only@dest.example"], msg=msg, helo="rcvd.test")
    (m,) = drover.queue_list()
    minimum = len(f"Received: from rcvd.test ([127.0.0.1]) by drover.test (Drover) with ESMTP "
                  f"id {qid} for <only@dest.example>; Thu, 1 Jan 2025 00:00:00 +0000\r\n")
    assert m["size"] - len(msg) >= minimum - 10, (m["size"], len(msg))
    stored = drover.queue_show(qid)
    if stored is not None:
        header = received_header(stored)
        assert re.match(r"Received: from rcvd\.test \(\[127\.0\.0\.1\]\) by drover\.test \(Drover\) "
                        rf"with ESMTP id {qid} for <only@dest\.example>; \w{{3}}, \d{{1,2}} \w{{3}} "
                        r"\d{4} \d\d:\d\d:\d\d [+-]\d{4}", header), header
        assert stored.endswith(msg)
        assert len(stored) == m["size"]


def test_received_header_names_no_recipient_when_there_are_several(drover):
    qid, _ = send_one(drover.port, rcpts=["a@dest.example", "b@dest.example"])
    stored = drover.queue_show(qid)
    if stored is None:
        pytest.skip("no `drover queue show`")
    header = received_header(stored)
    assert header.startswith("Received: from client.test ([127.0.0.1]) by drover.test (Drover) "
                             f"with ESMTP id {qid}; "), header
    assert " for " not in header


def test_mail_refusal_is_logged(drover, connect):
    c = connect(drover.port)
    c.start("refused.test")
    assert c.cmd("MAIL FROM:<nodomain>") == "553 5.1.7"
    (e,) = drover.wait_events(lambda e: e.get("type") == "Rejection")
    assert e["command"] == "MAIL"
    assert e["reply"].startswith("553 5.1.7")
    assert e["client_ip"] == "127.0.0.1" and e["helo"] == "refused.test"


def test_several_messages_in_one_session(drover):
    ids = []
    with smtp(drover.port) as s:
        for i in range(5):
            s.mail(f"m{i}@example.org")
            s.rcpt("r@dest.example")
            code, text = s.data(message(subject=str(i)))
            assert code == 250
            ids.append(text.decode().split()[-1])
    assert len(set(ids)) == 5
    assert set(ids) <= drover.queue_ids()


def test_help_lists_subcommands(drover_bin):
    r = subprocess.run([drover_bin, "help"], capture_output=True, text=True, timeout=deadline(10))
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for sub in ("serve", "check-config", "queue"):
        assert sub in out, out


def test_sigterm_stops_with_status_0(drover, connect):
    c = connect(drover.port)
    c.start()
    assert drover.stop() == 0
    assert not listening_inodes(drover.port)


def test_sigint_stops_with_status_0(drover):
    assert drover.stop(signal.SIGINT) == 0


def test_embedded_defaults(drover_bin, tmp_path, connect):
    """No --config: SMTP on 127.0.0.1:2525, spool under ./var/spool, relaying from loopback."""
    if listening_inodes(2525):
        pytest.skip("127.0.0.1:2525 is in use on this machine")
    proc = subprocess.Popen([drover_bin, "serve"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr", "wb"))
    try:
        wait_for(lambda: listening_inodes(2525) or proc.poll() is not None, deadline(10),
                 what="drover on its default port 2525")
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        c = connect(2525)
        c.start()
        assert c.cmd("MAIL FROM:<d@example.org>") == "250 2.1.0"
        assert c.cmd("RCPT TO:<r@dest.example>") == "250 2.1.5"
        r = c.send_data(message())
        assert r == "250 2.0.0", r
        c.cmd("QUIT")
        assert (tmp_path / "var" / "spool").is_dir()
        q = subprocess.run([drover_bin, "queue", "list", "--json"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=deadline(30))
        assert q.returncode == 0, q.stderr
        assert r.queue_id in q.stdout
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(deadline(15))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0
    err = (tmp_path / "stderr").read_text(errors="replace")
    assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err
