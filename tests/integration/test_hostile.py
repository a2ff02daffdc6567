"""Hostile input: bare LF and CR, NUL bytes, SMTP smuggling, floods of garbage, huge messages.
The server answers each with its standard reply, never crashes, and keeps memory bounded."""

import os
import socket
import threading

import pytest

from conftest import SANITIZED, Client, RssSampler, deadline, message, send_one


@pytest.fixture
def session(drover, connect):
    c = connect(drover.port)
    c.start()
    return c


def open_transaction(c):
    assert c.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"
    assert c.cmd("RCPT TO:<b@dest.example>") == "250 2.1.5"


# ---------------------------------------------------------------- bare LF, CR, NUL

def test_bare_lf_ends_a_command_with_500(session):
    session.send(b"NOOP\n")
    assert session.reply() == "500 5.5.2"
    assert session.cmd("NOOP") == "250 2.0.0"


def test_bare_lf_inside_pipelined_commands(drover, session):
    """A MAIL ended by a bare LF is refused, whatever follows it."""
    session.send(b"MAIL FROM:<a@example.org>\nRCPT TO:<b@dest.example>\r\nDATA\r\nQUIT\r\n")
    replies = session.replies_until_eof()
    assert replies[0] == "500 5.5.2", replies
    assert replies[-1] == "221 2.0.0", replies
    assert not any(r.code in (250, 354) for r in replies), replies


@pytest.mark.parametrize("line", [b"NO\x00OP", b"NOOP\x00", b"\x00", b"MAIL FROM:<a\x00@example.org>",
                                  b"NOOP \x01\x02", b"HELP\x7f", b"NOOP\rNOOP"])
def test_control_bytes_in_a_command(session, line):
    assert session.cmd(line) == "500 5.5.2"
    assert session.cmd("NOOP") == "250 2.0.0"


@pytest.mark.parametrize("body", [
    b"Subject: lf\r\n\r\nline one\nline two\r\n",
    b"Subject: lf\nX: y\r\n\r\nbody\r\n",
    b"Subject: cr\r\n\r\nline one\rline two\r\n",
    b"Subject: lf\r\n\r\nends with a bare LF\n",
])
def test_bare_lf_or_cr_in_data(drover, session, body):
    open_transaction(session)
    assert session.send_data(body) == "550 5.5.2"
    assert drover.queue_list() == []
    open_transaction(session)
    assert session.send_data(b"Subject: fine\r\n\r\nok\r\n") == "250 2.0.0"


def test_nul_in_data(drover, session):
    open_transaction(session)
    assert session.send_data(b"Subject: nul\r\n\r\nbefore\x00after\r\n") == "554 5.6.0"
    assert drover.queue_list() == []
    assert session.cmd("NOOP") == "250 2.0.0"


def test_rejections_of_data_are_logged(drover, session):
    open_transaction(session)
    session.send_data(b"Subject: nul\r\n\r\nx\x00\r\n")
    (e,) = drover.wait_events(lambda e: e.get("type") == "Rejection")
    assert e["command"] in ("DATA", "BDAT"), e
    assert e["reply"].startswith("554 5.6.0"), e
    assert e["sender"] == "a@example.org"
    assert e["client_ip"] == "127.0.0.1"


# ---------------------------------------------------------------- SMTP smuggling

SMUGGLED = (b"MAIL FROM:<smuggler@evil.example>\r\nRCPT TO:<victim@dest.example>\r\nDATA\r\n"
            b"From: ceo@bank.example\r\nSubject: smuggled\r\n\r\nsend money\r\n")


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r",
                                      b"\r\n\x00.\r\n", b"\n..\n"])
def test_smuggling_never_yields_a_second_message(drover, session, fake_end):
    open_transaction(session)
    assert session.cmd("DATA") == "354"
    session.send(b"Subject: carrier\r\n\r\nhello" + fake_end + SMUGGLED + b"\r\n.\r\nQUIT\r\n")
    replies = session.replies_until_eof()
    # One verdict on the data (a refusal: bare LF/CR or NUL), then 221 for QUIT: nothing in
    # between, since the "commands" were data.
    assert [r.code for r in replies] in ([550, 221], [554, 221]), replies
    queued = drover.queue_list()
    assert not any(m["sender"] == "smuggler@evil.example" for m in queued), queued
    assert queued == []


def test_smuggling_with_pipelined_data_after_end(drover, session):
    """Data and the next transaction in one write (legitimate pipelining) yield exactly the
    two messages the client meant, each with its own sender."""
    open_transaction(session)
    assert session.cmd("DATA") == "354"
    session.send(b"Subject: one\r\n\r\nfirst\r\n.\r\n" + SMUGGLED + b".\r\n")
    replies = [session.reply() for _ in range(5)]
    assert [r.code for r in replies] == [250, 250, 250, 354, 250], replies
    senders = sorted(m["sender"] for m in drover.queue_list())
    assert senders == ["a@example.org", "smuggler@evil.example"]


# ---------------------------------------------------------------- floods

def flood(port, payload_fn, total, prefix=b""):
    """Streams `total` octets at the server from one connection while reading whatever it
    answers; returns (octets the server took, replies text)."""
    c = Client(port, timeout=deadline(30))
    c.greet()
    if prefix:
        c.send(prefix)
    received = []
    sent = 0

    def reader():
        c.sock.settimeout(deadline(60))
        try:
            while True:
                data = c.sock.recv(65536)
                if not data:
                    return
                received.append(data)
        except OSError:
            return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        while sent < total:
            chunk = payload_fn(min(1 << 16, total - sent))
            c.sock.sendall(chunk)
            sent += len(chunk)
        c.sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server hung up on us: allowed
    t.join(deadline(60))
    alive = t.is_alive()
    c.close()
    assert not alive, "the server neither answered nor closed after the flood"
    return sent, b"".join(received)


FLOOD = 50 * 1024 * 1024


def random_bytes(n):
    return os.urandom(n)


def no_newlines(n):
    return b"A" * n


def printable_lines(n):
    line = b"GARBAGE " + b"z" * 90 + b"\r\n"
    return (line * (n // len(line) + 1))[:n]


@pytest.mark.parametrize("payload_fn,prefix", [
    (random_bytes, b""),
    (no_newlines, b""),
    (printable_lines, b""),
    (random_bytes, b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@dest.example>\r\nDATA\r\n"),
    (no_newlines, b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@dest.example>\r\nDATA\r\n"),
], ids=["random", "one-endless-line", "garbage-commands", "random-data", "endless-data-line"])
def test_50mb_of_garbage(drover, payload_fn, prefix):
    with RssSampler(drover.pid) as rss:
        flood(drover.port, payload_fn, FLOOD, prefix)
    assert drover.alive()
    # Still serving, and it accepts mail.
    qid, _ = send_one(drover.port)
    assert qid in drover.queue_ids()
    if not SANITIZED:
        assert rss.growth_mb < 100, f"anonymous RSS grew by {rss.growth_mb:.0f} MB"


def test_garbage_from_many_connections(drover):
    threads = [threading.Thread(target=flood, args=(drover.port, random_bytes, 4 << 20))
               for _ in range(8)]
    with RssSampler(drover.pid) as rss:
        for t in threads:
            t.start()
        for t in threads:
            t.join(deadline(120))
    assert drover.alive()
    send_one(drover.port)
    if not SANITIZED:
        assert rss.growth_mb < 100, f"anonymous RSS grew by {rss.growth_mb:.0f} MB"


def test_client_vanishing_mid_data_leaves_nothing(drover, connect):
    c = connect(drover.port)
    c.start()
    open_transaction(c)
    assert c.cmd("DATA") == "354"
    c.send(message(size=300 * 1024))
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # RST
    send_one(drover.port)
    assert len(drover.queue_list()) == 1
    assert drover.alive()


# ---------------------------------------------------------------- a large message is streamed

def test_30mb_message_is_streamed(make_drover, connect):
    size = 30 * 1024 * 1024
    d = make_drover(smtp={"max_message_size": "50M"})
    c = connect(d.port, timeout=deadline(60))
    c.start()
    assert c.cmd(f"MAIL FROM:<big@example.org> BODY=8BITMIME SIZE={size}") == "250 2.1.0"
    assert c.cmd("RCPT TO:<b@dest.example>") == "250 2.1.5"
    assert c.cmd("DATA") == "354"
    line = "8-bit: caf\u00e9 na\u00efve \u00fcber ".encode() + b"x" * 60 + b"\r\n"
    block = line * (256 * 1024 // len(line))
    with RssSampler(d.pid) as rss:
        c.send(b"Subject: big\r\n\r\n")
        sent = 0
        while sent < size:
            c.send(block)
            sent += len(block)
        c.send(b".\r\n")
        r = c.reply(timeout=deadline(60))
    assert r == "250 2.0.0", r
    (m,) = d.queue_list()
    assert m["size"] > sent
    if not SANITIZED:
        # Streamed to the spool in chunks: far less memory than the message.
        assert rss.growth_mb < 16, f"anonymous RSS grew by {rss.growth_mb:.0f} MB for 30 MB"


def test_30mb_bdat_chunk_is_streamed(make_drover, connect):
    size = 30 * 1024 * 1024
    d = make_drover(smtp={"max_message_size": "50M"})
    c = connect(d.port, timeout=deadline(60))
    c.start()
    c.cmd("MAIL FROM:<big@example.org> BODY=8BITMIME")
    c.cmd("RCPT TO:<b@dest.example>")
    block = (b"y" * 78 + b"\r\n") * (256 * 1024 // 80)
    n = size // len(block)
    with RssSampler(d.pid) as rss:
        c.send(b"BDAT %d LAST\r\n" % (n * len(block)))
        for _ in range(n):
            c.send(block)
        r = c.reply(timeout=deadline(60))
    assert r == "250 2.0.0", r
    if not SANITIZED:
        assert rss.growth_mb < 16, f"anonymous RSS grew by {rss.growth_mb:.0f} MB for 30 MB"
