"""ESMTP extensions: PIPELINING, SIZE, 8BITMIME, SMTPUTF8, CHUNKING (BDAT), DSN; dot-unstuffing."""

import pytest

from conftest import QUEUED_RE, message, smtp


@pytest.fixture
def session(drover, connect):
    c = connect(drover.port)
    c.start()
    return c


def queued(drover, qid):
    return {m["id"]: m for m in drover.queue_list()}[qid]


# ---------------------------------------------------------------- PIPELINING

def test_pipelined_transaction_replies_in_order(drover, session):
    session.send(b"MAIL FROM:<p@example.org>\r\nRCPT TO:<a@dest.example>\r\n"
                 b"RCPT TO:<b@dest.example>\r\nDATA\r\n")
    replies = [session.reply() for _ in range(4)]
    assert replies == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354"], replies
    session.send(b"Subject: pipelined\r\n\r\nhi\r\n.\r\n")
    r = session.reply()
    assert r == "250 2.0.0"
    assert queued(drover, r.queue_id)["recipients"] == ["a@dest.example", "b@dest.example"]


def test_pipelined_refusal_in_the_middle(drover, session):
    session.send(b"MAIL FROM:<p@example.org>\r\nRCPT TO:<a@dest.example>\r\n"
                 b"RCPT TO:<nodomain>\r\nRCPT TO:<c@dest.example>\r\nDATA\r\n")
    replies = [session.reply() for _ in range(5)]
    assert [r.code for r in replies] == [250, 250, 553, 250, 354], replies
    session.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
    r = session.reply()
    assert r == "250 2.0.0"
    assert queued(drover, r.queue_id)["recipients"] == ["a@dest.example", "c@dest.example"]


def test_pipelined_whole_session_in_one_write(drover, connect):
    c = connect(drover.port)
    c.greet()
    c.send(b"EHLO client.test\r\nMAIL FROM:<p@example.org>\r\nRCPT TO:<a@dest.example>\r\n"
           b"BDAT 18 LAST\r\nSubject: x\r\n\r\nhi\r\nQUIT\r\n")
    replies = c.replies_until_eof()
    assert [r.code for r in replies] == [250, 250, 250, 250, 221], replies
    assert replies[3].queue_id in drover.queue_ids()


def test_many_pipelined_commands(session):
    session.send(b"NOOP\r\n" * 500)
    for _ in range(500):
        assert session.reply() == "250 2.0.0"


# ---------------------------------------------------------------- SIZE

@pytest.fixture
def small(make_drover, connect):
    d = make_drover(smtp={"max_message_size": "100k"})
    c = connect(d.port)
    c.start()
    return d, c


def test_size_advertised(small):
    d, c = small
    r = c.ehlo()
    assert "SIZE 102400" in [line[4:] for line in r.lines]


def test_size_declared_too_big(small):
    d, c = small
    assert c.cmd("MAIL FROM:<a@example.org> SIZE=102401") == "552 5.3.4"
    assert c.cmd("MAIL FROM:<a@example.org> SIZE=102400") == "250 2.1.0"


def test_size_malformed(session):
    assert session.cmd("MAIL FROM:<a@example.org> SIZE=abc") == "501 5.5.4"
    assert session.cmd("MAIL FROM:<a@example.org> SIZE=") == "501 5.5.4"
    assert session.cmd("MAIL FROM:<a@example.org> SIZE=99999999999999999999999") in (
        "552 5.3.4", "501 5.5.4")


def test_data_too_big_is_refused_after_the_data(small):
    d, c = small
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    r = c.send_data(message(size=150 * 1024))
    assert r == "552 5.3.4", r
    assert d.queue_list() == []
    # The session goes on and a message within the limit passes.
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    assert c.send_data(message(size=50 * 1024)) == "250 2.0.0"


def test_bdat_too_big_is_refused(small):
    d, c = small
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    chunk = b"x" * 60000
    c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
    first = c.reply()
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    last = c.reply()
    assert first == "552 5.3.4" or last == "552 5.3.4", (first, last)
    assert d.queue_list() == []
    assert c.cmd("NOOP") == "250 2.0.0"  # the chunks were consumed, not taken as commands


# ---------------------------------------------------------------- 8BITMIME

EIGHT_BIT = "Subject: caf\u00e9\r\n\r\nna\u00efve r\u00e9sum\u00e9\r\n".encode()


def test_8bit_with_body_8bitmime(drover, session):
    assert session.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME") == "250 2.1.0"
    session.cmd("RCPT TO:<b@dest.example>")
    r = session.send_data(EIGHT_BIT)
    assert r == "250 2.0.0"
    assert r.queue_id in drover.queue_ids()


def test_8bit_without_body_8bitmime(drover, session):
    session.cmd("MAIL FROM:<a@example.org>")
    session.cmd("RCPT TO:<b@dest.example>")
    assert session.send_data(EIGHT_BIT) == "554 5.6.0"
    assert drover.queue_list() == []
    assert session.cmd("NOOP") == "250 2.0.0"


def test_8bit_with_body_7bit(drover, session):
    assert session.cmd("MAIL FROM:<a@example.org> BODY=7BIT") == "250 2.1.0"
    session.cmd("RCPT TO:<b@dest.example>")
    assert session.send_data(EIGHT_BIT) == "554 5.6.0"


def test_8bit_allowed_when_not_enforced(make_drover, connect):
    d = make_drover(smtp={"reject_8bit_without_8bitmime": False})
    c = connect(d.port)
    c.start()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    assert c.send_data(EIGHT_BIT) == "250 2.0.0"


def test_body_parameter_malformed(session):
    r = session.cmd("MAIL FROM:<a@example.org> BODY=FOO")
    assert r.code in (501, 555) and r.status == "5.5.4", r


def test_8bit_via_smtplib(drover):
    with smtp(drover.port) as s:
        s.mail("a@example.org", ["BODY=8BITMIME"])
        s.rcpt("b@dest.example")
        code, text = s.data(EIGHT_BIT)
        assert code == 250, text


# ---------------------------------------------------------------- SMTPUTF8

def test_utf8_addresses_with_smtputf8(drover, session):
    assert session.cmd("MAIL FROM:<j\u00f6rg@b\u00fccher.example> SMTPUTF8".encode()) == "250 2.1.0"
    assert session.cmd("RCPT TO:<\u7528\u6237@\u4f8b\u5b50.example>".encode()) == "250 2.1.5"
    r = session.send_data("Subject: \u00fcber\r\n\r\nhi\r\n".encode())
    assert r == "250 2.0.0", r
    m = queued(drover, r.queue_id)
    assert m["sender"] == "j\u00f6rg@b\u00fccher.example"
    assert m["recipients"] == ["\u7528\u6237@\u4f8b\u5b50.example"]


def test_utf8_sender_without_smtputf8(session):
    assert session.cmd("MAIL FROM:<j\u00f6rg@b\u00fccher.example>".encode()) == "553 5.6.7"


def test_utf8_recipient_without_smtputf8(session):
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"
    assert session.cmd("RCPT TO:<\u00fc@b\u00fccher.example>".encode()) == "553 5.6.7"
    assert session.cmd("RCPT TO:<u@example.org>") == "250 2.1.5"


def test_invalid_utf8_address_refused(session):
    r = session.cmd(b"MAIL FROM:<\xff\xfe@example.org> SMTPUTF8")
    assert r.code in (501, 553), r


def test_smtputf8_via_smtplib(drover):
    with smtp(drover.port) as s:
        assert s.has_extn("smtputf8")
        s.sendmail("j\u00f6rg@b\u00fccher.example", ["\u00fc@example.org"],
                   "Subject: \u00fcber\r\n\r\nhi\r\n".encode(), mail_options=["SMTPUTF8"])
    (m,) = drover.queue_list()
    assert m["sender"] == "j\u00f6rg@b\u00fccher.example"


# ---------------------------------------------------------------- CHUNKING / BDAT

def test_bdat_in_chunks(drover, session):
    session.cmd("MAIL FROM:<a@example.org>")
    session.cmd("RCPT TO:<b@dest.example>")
    parts = [b"Subject: chunks\r\n", b"\r\nfirst part\r\n", b"second part\r\n"]
    for p in parts[:-1]:
        session.send(b"BDAT %d\r\n" % len(p) + p)
        r = session.reply()
        assert r == "250 2.0.0" and f"{len(p)} octets" in r.text, r
    session.send(b"BDAT %d LAST\r\n" % len(parts[-1]) + parts[-1])
    r = session.reply()
    assert r == "250 2.0.0" and r.queue_id, r
    m = queued(drover, r.queue_id)
    assert m["size"] > sum(map(len, parts))
    stored = drover.queue_show(r.queue_id)
    if stored is not None:
        assert stored.endswith(b"".join(parts))


def test_bdat_is_not_unstuffed(drover, session):
    """BDAT carries octets as they are: a line '..' stays '..' (compare with DATA, below)."""
    body = b"Subject: b\r\n\r\n" + b"..\r\n" * 10
    session.cmd("MAIL FROM:<a@example.org>")
    session.cmd("RCPT TO:<b@dest.example>")
    session.send(b"BDAT %d LAST\r\n" % len(body) + body)
    r1 = session.reply()
    assert r1 == "250 2.0.0"
    session.cmd("MAIL FROM:<a@example.org>")
    session.cmd("RCPT TO:<b@dest.example>")
    r2 = session.send_data(body)  # unstuffed: each line becomes "."
    assert r2 == "250 2.0.0"
    sizes = {m["id"]: m["size"] for m in drover.queue_list()}
    assert sizes[r1.queue_id] - sizes[r2.queue_id] == 10


def test_bdat_0_last_ends_the_message(drover, session):
    session.cmd("MAIL FROM:<a@example.org>")
    session.cmd("RCPT TO:<b@dest.example>")
    body = b"Subject: z\r\n\r\nhi\r\n"
    session.send(b"BDAT %d\r\n" % len(body) + body)
    assert session.reply() == "250 2.0.0"
    r = session.cmd("BDAT 0 LAST")
    assert r == "250 2.0.0" and r.queue_id in drover.queue_ids(), r


def test_data_after_bdat_is_out_of_sequence(drover, session):
    session.cmd("MAIL FROM:<a@example.org>")
    session.cmd("RCPT TO:<b@dest.example>")
    session.send(b"BDAT 5\r\nhello")
    assert session.reply() == "250 2.0.0"
    assert session.cmd("DATA") == "503 5.5.1"
    r = session.cmd("BDAT 0 LAST")
    assert r == "250 2.0.0" and r.queue_id


def test_bdat_without_rcpt_consumes_the_chunk(drover, session):
    """The chunk is read whatever the verdict: here it holds a command that must not run."""
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"
    session.send(b"BDAT 6\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    replies = session.replies_until_eof()
    assert [r.code for r in replies] == [503, 250, 221], replies
    assert replies[0].status == "5.5.1"
    assert drover.queue_list() == []


def test_bdat_without_mail_consumes_the_chunk(session):
    session.send(b"BDAT 6 LAST\r\nRSET\r\nQUIT\r\n")
    replies = session.replies_until_eof()
    assert [r.code for r in replies] == [503, 221], replies


# Only sizes that cannot be read: with a readable size the chunk would be consumed.
@pytest.mark.parametrize("line", ["BDAT", "BDAT abc", "BDAT -1", "BDAT LAST"])
def test_bdat_malformed(session, line):
    session.cmd("MAIL FROM:<a@example.org>")
    session.cmd("RCPT TO:<b@dest.example>")
    r = session.cmd(line)
    assert r.code == 501 and r.status == "5.5.4", r
    assert session.cmd("NOOP") == "250 2.0.0"


def test_bdat_pipelined_chunks(drover, session):
    session.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@dest.example>\r\n"
                 b"BDAT 3\r\nabcBDAT 3\r\ndefBDAT 3 LAST\r\nghi")
    replies = [session.reply() for _ in range(5)]
    assert [r.code for r in replies] == [250] * 5, replies
    assert replies[-1].queue_id in drover.queue_ids()


def test_rset_after_bdat_discards(drover, session):
    session.cmd("MAIL FROM:<a@example.org>")
    session.cmd("RCPT TO:<b@dest.example>")
    session.send(b"BDAT 5\r\nhello")
    assert session.reply() == "250 2.0.0"
    assert session.cmd("RSET") == "250 2.0.0"
    assert drover.queue_list() == []
    session.cmd("MAIL FROM:<a@example.org>")
    session.cmd("RCPT TO:<b@dest.example>")
    assert session.send_data(b"Subject: after\r\n\r\nx\r\n") == "250 2.0.0"


# ---------------------------------------------------------------- DSN

def test_dsn_parameters_accepted(drover, session):
    assert session.cmd("MAIL FROM:<a@example.org> RET=HDRS ENVID=QQ314159+2Bx") == "250 2.1.0"
    assert session.cmd("RCPT TO:<b@dest.example> NOTIFY=SUCCESS,FAILURE,DELAY "
                       "ORCPT=rfc822;b@dest.example") == "250 2.1.5"
    assert session.cmd("RCPT TO:<c@dest.example> NOTIFY=NEVER") == "250 2.1.5"
    assert session.cmd("RCPT TO:<d@dest.example> ORCPT=rfc822;d+2Bx@dest.example") == "250 2.1.5"
    r = session.send_data(b"Subject: dsn\r\n\r\nhi\r\n")
    assert r == "250 2.0.0"
    msg = queued(drover, r.queue_id)
    assert msg["recipients"] == ["b@dest.example", "c@dest.example", "d@dest.example"]
    # Kept with the message, as received, for the DSNs sent later (RFC 3461).
    assert msg["dsn"]["ret"] == "HDRS"
    assert msg["dsn"]["envid"] == "QQ314159+2Bx"
    assert msg["dsn"]["recipients"] == [
        {"address": "b@dest.example", "notify": ["SUCCESS", "FAILURE", "DELAY"],
         "orcpt": "rfc822;b@dest.example"},
        {"address": "c@dest.example", "notify": ["NEVER"], "orcpt": None},
        {"address": "d@dest.example", "notify": [], "orcpt": "rfc822;d+2Bx@dest.example"},
    ]


def test_dsn_ret_full_and_combined_with_size_and_body(session):
    assert session.cmd("MAIL FROM:<a@example.org> RET=FULL SIZE=100 BODY=8BITMIME") == "250 2.1.0"


@pytest.mark.parametrize("params", [
    "RET=FOO", "RET=", "RET=FULL RET=HDRS", "ENVID=" + "a" * 101, "ENVID=a+ZZ", "ENVID=a+4",
    "ENVID=a ENVID=b",
])
def test_dsn_mail_parameter_malformed(session, params):
    assert session.cmd(f"MAIL FROM:<a@example.org> {params}") == "501 5.5.4"
    assert session.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"


@pytest.mark.parametrize("params", [
    "NOTIFY=NEVER,SUCCESS", "NOTIFY=BOGUS", "NOTIFY=", "NOTIFY=SUCCESS NOTIFY=FAILURE",
    "ORCPT=foo", "ORCPT=rfc822;a+ZZ@b", "ORCPT=;a@b",
    "ORCPT=rfc822;a@b ORCPT=rfc822;c@d",
])
def test_dsn_rcpt_parameter_malformed(session, params):
    session.cmd("MAIL FROM:<a@example.org>")
    assert session.cmd(f"RCPT TO:<b@dest.example> {params}") == "501 5.5.4"
    assert session.cmd("RCPT TO:<b@dest.example>") == "250 2.1.5"


def test_envid_of_100_octets_is_accepted(session):
    assert session.cmd("MAIL FROM:<a@example.org> ENVID=" + "a" * 100) == "250 2.1.0"


@pytest.mark.parametrize("cmd", [
    "MAIL FROM:<a@example.org> FOO=bar", "MAIL FROM:<a@example.org> AUTH=<>",
    "MAIL FROM:<a@example.org> XYZ",
])
def test_unknown_mail_parameter(session, cmd):
    assert session.cmd(cmd) == "555 5.5.4"


def test_unknown_rcpt_parameter(session):
    session.cmd("MAIL FROM:<a@example.org>")
    assert session.cmd("RCPT TO:<b@dest.example> FOO=bar") == "555 5.5.4"


def test_dsn_via_smtplib(drover):
    with smtp(drover.port) as s:
        s.sendmail("a@example.org", ["b@dest.example"], message(),
                   mail_options=["RET=HDRS", "ENVID=abc"],
                   rcpt_options=["NOTIFY=FAILURE", "ORCPT=rfc822;b@dest.example"])
    assert len(drover.queue_list()) == 1


# ---------------------------------------------------------------- dot-unstuffing

def test_dot_unstuffing(drover, session):
    """A line sent as '..' arrives as '.': with ten such lines the stored message is exactly
    as long as one where each of those lines is a single 'x'."""
    stuffed = b"Subject: dots\r\n\r\n" + b"..\r\n" * 10 + b"..leading dot\r\n"
    plain = b"Subject: dots\r\n\r\n" + b"x\r\n" * 10 + b"xleading dot\r\n"
    ids = []
    for body in (stuffed, plain):
        session.cmd("MAIL FROM:<a@example.org>")
        session.cmd("RCPT TO:<b@dest.example>")
        r = session.send_data(body)
        assert r == "250 2.0.0"
        ids.append(r.queue_id)
    sizes = {m["id"]: m["size"] for m in drover.queue_list()}
    assert sizes[ids[0]] == sizes[ids[1]], sizes
    stored = drover.queue_show(ids[0])
    if stored is not None:
        assert stored.endswith(b"\r\n\r\n" + b".\r\n" * 10 + b".leading dot\r\n")


def test_smtplib_stuffs_and_drover_unstuffs(drover):
    body = b"Subject: s\r\n\r\n.\r\n..\r\n.x\r\n"
    with smtp(drover.port) as s:
        s.mail("a@example.org")
        s.rcpt("b@dest.example")
        code, text = s.data(body)
    assert code == 250
    qid = QUEUED_RE.search(text.decode()).group(1)
    stored = drover.queue_show(qid)
    if stored is not None:
        assert stored.endswith(body)
    (m,) = drover.queue_list()
    assert m["size"] > len(body)
