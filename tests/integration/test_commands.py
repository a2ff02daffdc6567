"""The command set and the state machine: each command's reply, and 503 out of sequence."""

import pytest

from conftest import received_header


@pytest.fixture
def session(drover, connect):
    """A client past EHLO."""
    c = connect(drover.port)
    c.start()
    return c


def test_noop(session):
    assert session.cmd("NOOP") == "250 2.0.0"
    assert session.cmd("NOOP some argument") == "250 2.0.0"


def test_rset_drops_the_transaction(session):
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"
    assert session.cmd("RCPT TO:<b@dest.example>") == "250 2.1.5"
    assert session.cmd("RSET") == "250 2.0.0"
    assert session.cmd("RCPT TO:<b@dest.example>") == "503 5.5.1"
    assert session.cmd("DATA") == "503 5.5.1"
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"


def test_quit_says_221_and_closes(session):
    assert session.cmd("QUIT") == "221 2.0.0"
    assert session.replies_until_eof() == []


def test_quit_before_ehlo(drover, connect):
    c = connect(drover.port)
    c.greet()
    assert c.cmd("QUIT") == "221 2.0.0"
    assert c.replies_until_eof() == []


def test_vrfy_never_reveals(session):
    assert session.cmd("VRFY postmaster") == "252 2.5.0"


def test_expn_not_implemented(session):
    assert session.cmd("EXPN staff") == "502 5.5.1"


def test_help(session):
    r = session.cmd("HELP")
    assert r == "214 2.0.0", r


@pytest.mark.parametrize("verb", ["STARTTLS", "AUTH PLAIN"])
def test_tls_and_auth_not_offered_yet(session, verb):
    assert session.cmd(verb) == "502 5.5.1"


@pytest.mark.parametrize("line", ["FOO", "MAILX FROM:<a@b.example>", "HELLO x", "X"])
def test_unknown_command(session, line):
    assert session.cmd(line) == "500 5.5.2"
    assert session.cmd("NOOP") == "250 2.0.0"


def test_empty_line_is_an_unknown_command(session):
    assert session.cmd("").code == 500
    assert session.cmd("NOOP") == "250 2.0.0"


def test_verbs_are_case_insensitive(drover, connect):
    c = connect(drover.port)
    c.greet()
    assert c.cmd("ehlo client.test") == "250"
    assert c.cmd("mail from:<a@example.org>") == "250 2.1.0"
    assert c.cmd("Rcpt To:<b@dest.example>") == "250 2.1.5"
    assert c.cmd("data") == "354"
    c.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
    assert c.reply() == "250 2.0.0"


def test_space_after_colon_is_tolerated(session):
    assert session.cmd("MAIL FROM: <a@example.org>") == "250 2.1.0"
    assert session.cmd("RCPT TO: <b@dest.example>") == "250 2.1.5"


def test_rcpt_before_mail(session):
    assert session.cmd("RCPT TO:<b@dest.example>") == "503 5.5.1"


def test_data_before_mail(session):
    assert session.cmd("DATA") == "503 5.5.1"


def test_data_before_rcpt(session):
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"
    assert session.cmd("DATA") == "503 5.5.1"


def test_data_after_only_refused_rcpts(session):
    """docs/smtp.md: RCPTs given but all refused -> 554 5.5.1 no valid recipients."""
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"
    assert session.cmd("RCPT TO:<nodomain>").code == 553
    assert session.cmd("DATA") == "554 5.5.1"
    assert session.cmd("RSET") == "250 2.0.0"


def test_bdat_after_only_refused_rcpts_consumes_the_chunk(session):
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"
    assert session.cmd("RCPT TO:<nodomain>").code == 553
    session.send(b"BDAT 6 LAST\r\nRSET\r\nQUIT\r\n")
    replies = session.replies_until_eof()
    assert [r.code for r in replies] == [554, 221], replies
    assert replies[0] == "554 5.5.1"


def test_pipelined_transaction_with_every_rcpt_refused(drover, session):
    """RFC 2920 §3.1: the pipelining client learns at DATA that its transaction failed, and
    the data that follows is not taken for commands."""
    session.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<nodomain>\r\nDATA\r\n")
    replies = [session.reply() for _ in range(3)]
    assert [r.code for r in replies] == [250, 553, 554], replies
    assert session.cmd("NOOP") == "250 2.0.0"
    assert drover.queue_list() == []


def test_mail_before_ehlo(drover, connect):
    c = connect(drover.port)
    c.greet()
    assert c.cmd("MAIL FROM:<a@example.org>") == "503 5.5.1"
    assert c.cmd("RCPT TO:<b@dest.example>") == "503 5.5.1"
    assert c.cmd("EHLO client.test") == "250"
    assert c.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"


def test_nested_mail(session):
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"
    assert session.cmd("MAIL FROM:<a@example.org>") == "503 5.5.1"


def test_second_ehlo_resets_the_transaction(session):
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"
    assert session.cmd("RCPT TO:<b@dest.example>") == "250 2.1.5"
    assert session.ehlo() == "250"
    assert session.cmd("RCPT TO:<b@dest.example>") == "503 5.5.1"
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"


@pytest.mark.parametrize("line", [
    "MAIL FROM:a@example.org",
    "MAIL FROM:<a@example.org",
    "MAIL TO:<a@example.org>",
    "MAIL",
    "MAIL FROM:<a@example.org> SIZE",
    "MAIL FROM:<a@@example.org>",
    "MAIL FROM:<a@example..org>",
])
def test_mail_syntax_errors(session, line):
    r = session.cmd(line)
    assert r.code == 501 and r.status in ("5.5.4", "5.1.7", "5.5.2"), r
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"


@pytest.mark.parametrize("line", [
    "RCPT TO:b@dest.example",
    "RCPT TO:<b@dest.example",
    "RCPT FROM:<b@dest.example>",
    "RCPT TO:<b@dest..example>",
])
def test_rcpt_syntax_errors(session, line):
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"
    r = session.cmd(line)
    assert r.code == 501 and r.status in ("5.5.4", "5.1.3", "5.5.2"), r
    assert session.cmd("RCPT TO:<b@dest.example>") == "250 2.1.5"


def test_helo_session_refuses_esmtp_parameters(drover, connect):
    """RFC 1869: after HELO, MAIL/RCPT parameters are not available."""
    c = connect(drover.port)
    c.greet()
    assert c.cmd("HELO client.test") == "250"
    assert c.cmd("MAIL FROM:<a@example.org> SIZE=100") == "555 5.5.4"
    assert c.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"
    assert c.cmd("RCPT TO:<b@dest.example> NOTIFY=NEVER") == "555 5.5.4"
    assert c.cmd("RCPT TO:<b@dest.example>") == "250 2.1.5"
    r = c.send_data(b"Subject: helo\r\n\r\nhi\r\n")
    assert r == "250 2.0.0"


def test_helo_message_is_received_with_smtp(drover, connect):
    c = connect(drover.port)
    c.greet()
    c.cmd("HELO old.test")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    r = c.send_data(b"Subject: helo\r\n\r\nhi\r\n")
    assert r == "250 2.0.0"
    stored = drover.queue_show(r.queue_id)
    if stored is not None:
        header = received_header(stored)
        assert " with SMTP " in header, header
