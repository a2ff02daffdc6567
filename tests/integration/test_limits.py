"""Every limit answers with its reply code and enhanced status, and the session goes on (or
closes) as docs/smtp.md says."""

import time

from conftest import deadline, message, wait_for


# ---------------------------------------------------------------- line lengths

def test_command_line_at_the_limit_passes(make_drover, connect):
    d = make_drover(smtp={"command_line_max": 1024})
    c = connect(d.port)
    c.start()
    line = b"NOOP " + b"x" * (1024 - 2 - 5)  # 1024 octets with the CRLF
    assert c.cmd(line) == "250 2.0.0"


def test_command_line_over_the_limit(make_drover, connect):
    d = make_drover(smtp={"command_line_max": 1024})
    c = connect(d.port)
    c.start()
    assert c.cmd(b"NOOP " + b"x" * (1025 - 2 - 5)) == "500 5.5.2"
    assert c.cmd("NOOP") == "250 2.0.0"
    assert c.cmd(b"MAIL FROM:<" + b"a" * 2000 + b"@example.org>") == "500 5.5.2"
    assert c.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"


def test_megabyte_command_line_is_discarded(drover, connect):
    c = connect(drover.port)
    c.start()
    c.send(b"NOOP " + b"y" * (1 << 20) + b"\r\nNOOP\r\n")
    assert c.reply() == "500 5.5.2"
    assert c.reply() == "250 2.0.0"


def test_data_line_at_the_limit_passes(make_drover, connect):
    d = make_drover(smtp={"data_line_max": 1000})
    c = connect(d.port)
    c.start()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    body = b"Subject: long\r\n\r\n" + b"x" * 998 + b"\r\n"
    assert c.send_data(body) == "250 2.0.0"


def test_data_line_over_the_limit(make_drover, connect):
    d = make_drover(smtp={"data_line_max": 1000})
    c = connect(d.port)
    c.start()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    body = b"Subject: long\r\n\r\n" + b"x" * 999 + b"\r\nmore\r\n"
    assert c.send_data(body) == "500 5.5.2"
    assert d.queue_list() == []
    # The session goes on.
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    assert c.send_data(b"Subject: short\r\n\r\nok\r\n") == "250 2.0.0"


def test_data_line_limit_counts_stuffed_dot_once(make_drover, connect):
    """RFC 5321 §4.5.3.1.6: 1000 octets with the CRLF, "not counting the leading dot duplicated
    for transparency": a 998-octet line starting with a dot travels as 999 and passes."""
    d = make_drover(smtp={"data_line_max": 1000})
    c = connect(d.port)
    c.start()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    body = b"Subject: dot\r\n\r\n." + b"." + b"x" * 997 + b"\r\n"
    assert c.send_data(body) == "250 2.0.0"


# ---------------------------------------------------------------- recipients

def test_too_many_recipients(make_drover, connect):
    d = make_drover(smtp={"max_recipients": 5})
    c = connect(d.port)
    c.start()
    c.cmd("MAIL FROM:<a@example.org>")
    for i in range(5):
        assert c.cmd(f"RCPT TO:<r{i}@dest.example>") == "250 2.1.5"
    assert c.cmd("RCPT TO:<r5@dest.example>") == "452 4.5.3"
    assert c.cmd("RCPT TO:<r6@dest.example>") == "452 4.5.3"
    r = c.send_data(message())
    assert r == "250 2.0.0"
    (m,) = d.queue_list()
    assert m["recipients"] == [f"r{i}@dest.example" for i in range(5)]
    # The next transaction takes the rest.
    c.cmd("MAIL FROM:<a@example.org>")
    assert c.cmd("RCPT TO:<r5@dest.example>") == "250 2.1.5"


# ---------------------------------------------------------------- sessions

def open_sessions(connect, port, n, source=None):
    out = []
    for _ in range(n):
        c = connect(port, source=source)
        c.greet()
        out.append(c)
    return out


def refused_at_connect(c):
    r = c.reply()
    assert r == "421 4.7.0", r
    assert c.replies_until_eof() == []


def test_sessions_per_ip(make_drover, connect):
    d = make_drover(smtp={"max_sessions_per_ip": 3})
    held = open_sessions(connect, d.port, 3)
    refused_at_connect(connect(d.port))
    # Another client address is not affected.
    other = connect(d.port, source="127.0.0.2")
    other.greet()
    # Once one session ends, the address may connect again.
    held[0].cmd("QUIT")
    held[0].replies_until_eof()

    def admitted():
        c = connect(d.port)
        r = c.reply()
        return r.code == 220
    wait_for(admitted, deadline(5), interval=0.05, what="a session slot to free up")


def test_sessions_in_total(make_drover, connect):
    d = make_drover(smtp={"max_sessions": 3, "max_sessions_per_ip": 2})
    held = open_sessions(connect, d.port, 2, source="127.0.0.1")
    held += open_sessions(connect, d.port, 1, source="127.0.0.2")
    refused_at_connect(connect(d.port, source="127.0.0.3"))
    held[-1].close()

    def admitted():
        c = connect(d.port, source="127.0.0.3")
        return c.reply().code == 220
    wait_for(admitted, deadline(5), interval=0.05, what="a session slot to free up")


def test_refusal_at_connect_is_logged(make_drover, connect):
    d = make_drover(smtp={"max_sessions_per_ip": 1})
    open_sessions(connect, d.port, 1)
    refused_at_connect(connect(d.port))
    (e,) = d.wait_events(lambda e: e.get("type") == "Rejection" and e.get("command") == "CONNECT")
    assert e["client_ip"] == "127.0.0.1"
    assert e["reply"].startswith("421 4.7.0")


# ---------------------------------------------------------------- errors per session

def test_too_many_errors_closes(make_drover, connect):
    d = make_drover(smtp={"max_errors": 3})
    c = connect(d.port)
    c.start()
    for i in range(3):
        assert c.cmd(f"BOGUS{i}") == "500 5.5.2"
    c.send(b"BOGUS3\r\n")
    replies = c.replies_until_eof()
    assert replies and replies[-1] == "421 4.7.0", replies


def test_sequence_errors_count_too(make_drover, connect):
    d = make_drover(smtp={"max_errors": 3})
    c = connect(d.port)
    c.start()
    for _ in range(3):
        assert c.cmd("RCPT TO:<a@dest.example>") == "503 5.5.1"
    c.send(b"DATA\r\n")
    replies = c.replies_until_eof()
    assert replies and replies[-1] == "421 4.7.0", replies


def test_refused_message_data_does_not_count(make_drover, connect):
    """docs/smtp.md: every 5xx counts "except to the message data itself"."""
    d = make_drover(smtp={"max_errors": 3})
    c = connect(d.port)
    c.start()
    for _ in range(5):
        c.cmd("MAIL FROM:<a@example.org>")
        c.cmd("RCPT TO:<b@dest.example>")
        assert c.send_data(b"Subject: nul\r\n\r\n\x00\r\n") == "554 5.6.0"
    assert c.cmd("NOOP") == "250 2.0.0"


def test_good_commands_do_not_count(make_drover, connect):
    d = make_drover(smtp={"max_errors": 3})
    c = connect(d.port)
    c.start()
    for _ in range(2):
        assert c.cmd("BOGUS") == "500 5.5.2"
    for _ in range(50):
        assert c.cmd("NOOP") == "250 2.0.0"
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    assert c.send_data(message()) == "250 2.0.0"


# ---------------------------------------------------------------- timeouts

def test_command_timeout(make_drover, connect):
    d = make_drover(smtp={"command_timeout": "2s"})
    c = connect(d.port, timeout=deadline(15))
    c.start()
    t0 = time.monotonic()
    r = c.reply(timeout=deadline(15))
    waited = time.monotonic() - t0
    assert r == "421 4.4.2", r
    assert waited >= 1.0, f"timed out after {waited:.1f}s, configured 2s"
    assert c.replies_until_eof() == []


def test_command_timeout_resets_with_each_command(make_drover, connect):
    d = make_drover(smtp={"command_timeout": "2s"})
    c = connect(d.port, timeout=deadline(15))
    c.start()
    end = time.monotonic() + 3
    while time.monotonic() < end:  # busy for longer than the timeout, never idle for it
        assert c.cmd("NOOP") == "250 2.0.0"
        time.sleep(0.5)


def test_data_timeout(make_drover, connect):
    d = make_drover(smtp={"command_timeout": "60s", "data_timeout": "2s"})
    c = connect(d.port, timeout=deadline(15))
    c.start()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    assert c.cmd("DATA") == "354"
    c.send(b"Subject: slow\r\n\r\npart of a body\r\n")
    t0 = time.monotonic()
    r = c.reply(timeout=deadline(15))
    waited = time.monotonic() - t0
    assert r == "421 4.4.2", r
    assert waited >= 1.0, f"timed out after {waited:.1f}s, configured 2s"
    assert c.replies_until_eof() == []
    assert d.queue_list() == []


def test_bdat_timeout(make_drover, connect):
    d = make_drover(smtp={"command_timeout": "60s", "data_timeout": "2s"})
    c = connect(d.port, timeout=deadline(15))
    c.start()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    c.send(b"BDAT 100 LAST\r\nonly ten..")
    r = c.reply(timeout=deadline(15))
    assert r == "421 4.4.2", r
    assert c.replies_until_eof() == []
    assert d.queue_list() == []


def test_timeout_leaves_other_sessions_alone(make_drover, connect):
    d = make_drover(smtp={"command_timeout": "2s"})
    idle = connect(d.port, timeout=deadline(15))
    idle.start()
    busy = connect(d.port, timeout=deadline(15))
    busy.start()
    end = time.monotonic() + deadline(15)
    while True:
        assert busy.cmd("NOOP") == "250 2.0.0"
        try:
            r = idle.reply(timeout=0.5)
            break
        except TimeoutError:
            assert time.monotonic() < end, "the idle session never timed out"
    assert r == "421 4.4.2", r
    assert busy.cmd("NOOP") == "250 2.0.0"
