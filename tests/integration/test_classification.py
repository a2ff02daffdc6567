"""Classification at reception (docs/routing.md) against a real daemon: rules put mail in a
stream, a tenant and a campaign; a trusted client chooses with X-Drover-Stream and
X-Drover-Pool, an untrusted one cannot; both fields are gone from what is delivered; a
trusted field naming nothing is refused; the Reception record says what was decided; and a
recipient suppressed for the message's tenant is dropped while mail to the same address for
another tenant goes out.

Clients connect from different loopback addresses (127.0.0.1 untrusted, .13 trusted, .14
tenant acme, .15 tenant globex), and the client rules tell them apart. Mail is delivered
through the test DNS server to a receiver on 127.0.0.2 (test_delivery's world).
"""

import subprocess

from conftest import Client, deadline, wait_for
from test_delivery import (DEST_IP, dns, net, records, wait_messages,  # noqa: F401
                           wait_records)

UNTRUSTED, TRUSTED, ACME, GLOBEX = "127.0.0.1", "127.0.0.13", "127.0.0.14", "127.0.0.15"

ROUTING = f"""
source "lo" {{ address = "127.0.0.1" }}
pool "tx" {{ source "lo" {{ }} }}
pool "bulk-pool" {{ source "lo" {{ }} }}
stream "transactional" {{ priority = 100 }}
stream "bulk" {{ pool = "bulk-pool" }}
tenant "acme" {{ }}
tenant "globex" {{ }}
classification {{
  rule {{
    client = {{ "{TRUSTED}" }}
    trust_headers = true
  }}
  rule {{
    header = {{ "Precedence: ^(bulk|list|junk)$" }}
    stream = "bulk"
  }}
  rule {{ listener = {{ "smtp" }} client = {{ "{ACME}" }} tenant = "acme" }}
  rule {{ client = {{ "{GLOBEX}/32" }} tenant = "globex" }}
  rule {{ campaign_header = "X-Campaign-Id" }}
}}
"""


def make(make_drover, dns, net, extra="", **conf):  # noqa: F811
    d = {"port": net.port, "dns_forwarders": [dns.forwarder], "retry": ["1s"],
         "helo_name": "out.drover.example"}
    return make_drover(delivery=d, extra=ROUTING + extra, **conf)


def rule_lines(d):
    """The line of each "rule" of the configuration written, in order."""
    lines = d.config_path.read_text().splitlines()
    return [i + 1 for i, line in enumerate(lines) if line.strip().startswith("rule")]


def msg(headers="", body="Hello.\r\n", subject="test"):
    return (f"From: app@sender.example\r\nTo: bob@dest.example\r\nSubject: {subject}\r\n"
            f"{headers}\r\n{body}").encode()


def send(d, data, source=UNTRUSTED, rcpts=("bob@dest.example",), bdat=None):
    """One message from source; returns the reply to its end of data. bdat: chunk sizes to
    send it in with BDAT instead of DATA."""
    c = Client(d.port, source=source)
    try:
        c.start()
        assert c.cmd("MAIL FROM:<app@sender.example>") == "250"
        for r in rcpts:
            assert c.cmd(f"RCPT TO:<{r}>") == "250"
        if bdat is None:
            return c.send_data(data)
        off = 0
        for i, n in enumerate(bdat):
            chunk = data[off:off + n] if i + 1 < len(bdat) else data[off:]
            off += len(chunk)
            last = " LAST" if i + 1 == len(bdat) else ""
            c.send(b"BDAT %d%s\r\n" % (len(chunk), last.encode()) + chunk)
            r = c.reply()
            if last or r.code != 250:
                return r
    finally:
        c.close()


def reception(d, qid):
    return wait_records(d, "Reception", id=qid)[0]


def delivered(net, qid):  # noqa: F811
    rx = net.rx[DEST_IP]
    return wait_messages(rx, pred=lambda m: f"id {qid}" in m["data"].split("\r\n\r\n")[0])[0]


def test_precedence_bulk_lands_in_stream_bulk(make_drover, dns, net):  # noqa: F811
    net.receiver(DEST_IP)
    d = make(make_drover, dns, net)
    r = send(d, msg("Precedence: bulk\r\n"))
    assert r == "250 2.0.0", r
    rec = reception(d, r.queue_id)
    assert rec["stream"] == "bulk"
    assert rec["rule"] == [rule_lines(d)[1]]
    assert rec["tenant"] is None and rec["campaign"] is None and rec["pool"] is None
    # Its mail leaves from the stream's pool (config_message_pool()).
    rec = wait_records(d, "Delivery", id=r.queue_id)[0]
    assert (rec["stream"], rec["pool"]) == ("bulk", "bulk-pool")
    # Mail no rule classifies is in the default stream.
    r = send(d, msg("Precedence: first-class\r\n"))
    rec = reception(d, r.queue_id)
    assert rec["stream"] == "default" and rec["rule"] == []
    for key in ("tenant", "campaign", "pool"):
        assert key in rec and rec[key] is None


def test_listener_and_client_rule_assigns_tenant(make_drover, dns, net):  # noqa: F811
    net.receiver(DEST_IP)
    d = make(make_drover, dns, net)
    r = send(d, msg(), source=ACME)
    rec = reception(d, r.queue_id)
    assert rec["tenant"] == "acme" and rec["stream"] == "default"
    assert rec["rule"] == [rule_lines(d)[2]]
    r = send(d, msg("List-Id: x\r\nPrecedence: list\r\n"), source=GLOBEX)
    rec = reception(d, r.queue_id)
    assert (rec["tenant"], rec["stream"]) == ("globex", "bulk")
    assert rec["rule"] == [rule_lines(d)[1], rule_lines(d)[3]]
    assert reception(d, send(d, msg(), source=UNTRUSTED).queue_id)["tenant"] is None


def test_campaign_from_a_header(make_drover, dns, net):  # noqa: F811
    net.receiver(DEST_IP)
    d = make(make_drover, dns, net)
    r = send(d, msg("X-Campaign-Id:  spring-2026\r\n"))
    rec = reception(d, r.queue_id)
    assert rec["campaign"] == "spring-2026"
    assert rec["rule"] == [rule_lines(d)[4]]
    # Not a campaign (more than 64 octets): none.
    r = send(d, msg("X-Campaign-Id: " + "x" * 65 + "\r\n"))
    assert reception(d, r.queue_id)["campaign"] is None


DROVER_FIELDS = "X-Drover-Stream: transactional\r\nx-drover-pool : tx\r\n"


def assert_no_drover_fields(m):
    head = m["data"].split("\r\n\r\n")[0].lower()
    assert "x-drover-stream" not in head and "x-drover-pool" not in head, head
    assert "subject: test" in head  # the rest is there


def test_untrusted_fields_are_ignored_and_removed(make_drover, dns, net):  # noqa: F811
    net.receiver(DEST_IP)
    d = make(make_drover, dns, net)
    r = send(d, msg(DROVER_FIELDS + "Precedence: bulk\r\n"), source=UNTRUSTED)
    assert r == "250 2.0.0", r
    rec = reception(d, r.queue_id)
    assert (rec["stream"], rec["pool"]) == ("bulk", None)
    assert_no_drover_fields(delivered(net, r.queue_id))
    # A name that exists nowhere, from a client nobody trusts: ignored, not refused.
    r = send(d, msg("X-Drover-Pool: nope\r\n"), source=ACME)
    assert r == "250 2.0.0", r
    assert_no_drover_fields(delivered(net, r.queue_id))


def test_trusted_fields_are_honoured_and_removed(make_drover, dns, net):  # noqa: F811
    net.receiver(DEST_IP)
    d = make(make_drover, dns, net)
    r = send(d, msg(DROVER_FIELDS + "Precedence: bulk\r\n"), source=TRUSTED)
    assert r == "250 2.0.0", r
    rec = reception(d, r.queue_id)
    assert (rec["stream"], rec["pool"]) == ("transactional", "tx")
    assert rec["rule"] == [rule_lines(d)[0]]  # the rule that trusts the client decided
    m = delivered(net, r.queue_id)
    assert_no_drover_fields(m)
    assert "Precedence: bulk" in m["data"]
    # The delivery engine takes the envelope's stream and pool.
    rec = wait_records(d, "Delivery", id=r.queue_id)[0]
    assert (rec["stream"], rec["pool"]) == ("transactional", "tx")
    # Folded, and in BDAT chunks that cut the header section in the middle of a field.
    data = msg("X-Drover-Stream:\r\n bulk\r\nX-Campaign-Id: c1\r\n", subject="chunked")
    cut = data.index(b"Stream") + 3
    r = send(d, data, source=TRUSTED, bdat=[cut, 10, len(data)])
    assert r == "250 2.0.0", r
    rec = reception(d, r.queue_id)
    assert (rec["stream"], rec["campaign"]) == ("bulk", "c1")
    m = delivered(net, r.queue_id)
    assert "x-drover" not in m["data"].lower() and "Subject: chunked" in m["data"]


def test_trusted_field_naming_nothing_is_refused(make_drover, dns, net):  # noqa: F811
    d = make(make_drover, dns, net)
    r = send(d, msg("X-Drover-Pool: nope\r\n"), source=TRUSTED)
    assert r.text == '550 5.7.1 Error: X-Drover-Pool names no pool "nope"', r
    rej = wait_records(d, "Rejection", command="DATA")[0]
    assert rej["reply"] == r.text and rej["client_ip"] == TRUSTED
    r = send(d, msg("X-Drover-Stream: bluk\r\n"), source=TRUSTED, bdat=[40, 1000])
    assert r.text == '550 5.7.1 Error: X-Drover-Stream names no stream "bluk"', r
    assert wait_records(d, "Rejection", command="BDAT")[0]["reply"] == r.text
    assert not d.queue_ids()
    assert not records(d, "Reception")


def test_long_header_section_is_held_until_complete(make_drover, dns, net):  # noqa: F811
    """A header section longer than a spool chunk (256 KiB) is held in memory until it ends,
    so an X-Drover field at its bottom is removed too; past 1 MiB the message is refused."""
    net.receiver(DEST_IP)
    d = make(make_drover, dns, net)
    fields = "".join(f"X-Filler-{i:05d}: {'f' * 80}\r\n" for i in range(4000))  # ~390 KiB
    r = send(d, msg(fields + "X-Drover-Stream: transactional\r\n"), source=TRUSTED)
    assert r == "250 2.0.0", r
    assert reception(d, r.queue_id)["stream"] == "transactional"
    m = delivered(net, r.queue_id)
    assert "x-drover" not in m["data"].lower() and "X-Filler-03999" in m["data"]
    fields = "".join(f"X-Filler-{i:05d}: {'f' * 80}\r\n" for i in range(11000))  # ~1.07 MiB
    r = send(d, msg(fields))
    assert r.text == "552 5.3.4 Error: message header section exceeds 1048576 octets", r


def test_suppressed_for_the_tenant_is_dropped(make_drover, drover_bin, dns, net):  # noqa: F811
    rx = net.receiver(DEST_IP)
    d = make(make_drover, dns, net)
    r = subprocess.run([drover_bin, "suppress", "add", "carol@dest.example", "--tenant", "acme",
                        "--reason", "unsubscribe", "--dir", str(d.spool / "suppress")],
                       capture_output=True, text=True, timeout=deadline(30))
    assert r.returncode == 0, r.stderr
    # RCPT cannot know the tenant: carol is accepted, then dropped at the end of data.
    r = send(d, msg(subject="acme"), source=ACME,
             rcpts=("carol@dest.example", "bob@dest.example"))
    assert r == "250 2.0.0", r
    sup = wait_records(d, "Suppressed", recipient="carol@dest.example")[0]
    assert sup["tenant"] == "acme" and sup["reason"] == "unsubscribe"
    assert sup["client_ip"] == ACME and sup["sender"] == "app@sender.example"
    assert reception(d, r.queue_id)["recipients"] == ["bob@dest.example"]
    m = delivered(net, r.queue_id)
    assert m["rcpt_to"] == ["bob@dest.example"]
    # The same address for another tenant is delivered.
    r = send(d, msg(subject="globex"), source=GLOBEX, rcpts=("carol@dest.example",))
    assert r == "250 2.0.0", r
    assert delivered(net, r.queue_id)["rcpt_to"] == ["carol@dest.example"]
    # Every recipient dropped: nothing is stored.
    r = send(d, msg(subject="acme only"), source=ACME, rcpts=("carol@dest.example",))
    assert r.text.startswith("250 2.0.0 Ok: dropped"), r
    wait_records(d, "Suppressed", count=2, recipient="carol@dest.example")
    assert len(records(d, "Reception")) == 2
    wait_for(lambda: len(rx.messages()) >= 2, deadline(10), what="both deliveries")
    assert not [m for m in rx.messages() if "acme only" in m["data"]]
