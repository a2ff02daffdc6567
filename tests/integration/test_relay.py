"""Relay control: no open relay, and only plain user@domain addresses."""

import pytest

from conftest import message


@pytest.fixture
def session(drover, connect):
    c = connect(drover.port)
    c.start()
    return c


def test_client_outside_relay_networks_is_refused_at_rcpt(make_drover, connect):
    d = make_drover(relay_networks=["10.0.0.0/8"])
    c = connect(d.port)
    c.start()
    assert c.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0"
    assert c.cmd("RCPT TO:<b@dest.example>") == "554 5.7.1"
    assert c.cmd("DATA") == "554 5.5.1"  # RCPTs were given, every one refused
    assert d.queue_list() == []


def test_relay_networks_match_by_client_address(make_drover, connect):
    d = make_drover(relay_networks=["127.0.0.2/32"])
    outside = connect(d.port, source="127.0.0.1")
    outside.start()
    outside.cmd("MAIL FROM:<a@example.org>")
    assert outside.cmd("RCPT TO:<b@dest.example>") == "554 5.7.1"
    inside = connect(d.port, source="127.0.0.2")
    inside.start()
    inside.cmd("MAIL FROM:<a@example.org>")
    assert inside.cmd("RCPT TO:<b@dest.example>") == "250 2.1.5"
    assert inside.send_data(message()) == "250 2.0.0"


def test_relay_refusal_is_logged(make_drover, connect):
    d = make_drover(relay_networks=["10.0.0.0/8"])
    c = connect(d.port)
    c.start("outsider.test")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@dest.example>")
    (e,) = d.wait_events(lambda e: e.get("type") == "Rejection")
    assert e["command"] == "RCPT"
    assert e["reply"].startswith("554 5.7.1")
    assert e["client_ip"] == "127.0.0.1"
    assert e["helo"] == "outsider.test"
    assert e["sender"] == "a@example.org"
    assert e["recipient"] == "b@dest.example"


def test_relay_refusal_counts_as_an_error(make_drover, connect):
    d = make_drover(relay_networks=["10.0.0.0/8"], smtp={"max_errors": 3})
    c = connect(d.port)
    c.start()
    c.cmd("MAIL FROM:<a@example.org>")
    for i in range(3):
        assert c.cmd(f"RCPT TO:<b{i}@dest.example>") == "554 5.7.1"
    c.send(b"RCPT TO:<b@dest.example>\r\n")
    replies = c.replies_until_eof()
    assert replies[-1] == "421 4.7.0", replies


def test_sender_without_domain(session):
    assert session.cmd("MAIL FROM:<user>") == "553 5.1.7"


def test_recipient_without_domain(session):
    session.cmd("MAIL FROM:<a@example.org>")
    assert session.cmd("RCPT TO:<user>") == "553 5.1.3"


@pytest.mark.parametrize("rcpt", [
    "<@relay.example:user@dest.example>",
    "<@a.example,@b.example:user@dest.example>",
    "<user%dest.example@relay.example>",
    "<dest.example!user@relay.example>",
    "<a!b@relay.example>",
    "<a%b@relay.example>",
])
def test_routing_tricks_are_refused(session, rcpt):
    session.cmd("MAIL FROM:<a@example.org>")
    assert session.cmd(f"RCPT TO:{rcpt}") == "553 5.7.1"
    assert session.cmd("RCPT TO:<b@dest.example>") == "250 2.1.5"


def test_quoted_local_part_with_percent_is_still_refused(session):
    session.cmd("MAIL FROM:<a@example.org>")
    assert session.cmd('RCPT TO:<"a%b"@relay.example>') == "553 5.7.1"


def test_plain_addresses_pass(session):
    assert session.cmd("MAIL FROM:<first.last+tag@sub.example.org>") == "250 2.1.0"
    assert session.cmd('RCPT TO:<"quoted local"@dest.example>') == "250 2.1.5"
    assert session.cmd("RCPT TO:<o'brien@dest.example>") == "250 2.1.5"
