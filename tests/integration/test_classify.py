"""Bounce categories in the delivery engine: each failure's reply is classified by the rules
(built in from etc/bounce-rules.conf, or delivery.bounce_rules) into a category in its
Bounce / TransientFailure record, and the rules' decision can turn it (a 5xx rate limit is
retried; a 4xx the rules call permanent bounces at once)."""

import subprocess

import pytest

from conftest import deadline, free_port
from test_delivery import (SENDER, dns, net, records, submit, wait_records,  # noqa: F401
                           zone, DEST_IP, SENDER_IP)
from receiver import Script


@pytest.fixture
def classifier(make_drover, dns, net):  # noqa: F811
    def make(delivery=None, **conf):
        d = {"port": net.port, "dns_forwarders": [dns.forwarder], "retry": ["1s"],
             "helo_name": "out.drover.example"}
        d.update(delivery or {})
        return make_drover(delivery=d, **conf)
    return make


def test_failures_get_categories_and_decisions(classifier, net):  # noqa: F811
    net.receiver(SENDER_IP)
    net.receiver(DEST_IP, Script(rcpt_replies={
        "gone@dest.example": "550 5.1.1 <gone@dest.example>: Recipient address rejected: "
                             "User unknown in virtual mailbox table",
        "full@dest.example": "452 4.2.2 <full@dest.example>: Mailbox full",
        "fast@dest.example": "550 5.7.1 too many messages, slow down",
    }))
    d = classifier()
    submit(d.port, ["gone@dest.example", "full@dest.example", "fast@dest.example"])
    bounce = wait_records(d, "Bounce", recipient="gone@dest.example")[0]
    assert bounce["category"] == "bad-mailbox" and bounce["decision"] == "suppress"
    assert bounce["rule_line"] > 0
    full = wait_records(d, "TransientFailure", recipient="full@dest.example")[0]
    assert full["category"] == "quota-issues" and full["decision"] == "transient"
    # A 5xx that only says "slow down" is retried, not bounced.
    fast = wait_records(d, "TransientFailure", recipient="fast@dest.example")[0]
    assert fast["category"] == "rate-limited" and fast["decision"] == "transient"
    assert fast["status"] == "5.7.1"
    assert not records(d, "Bounce", recipient="fast@dest.example")


def test_own_rules_file_turns_a_4xx_into_a_bounce(classifier, net, tmp_path):  # noqa: F811
    rules = tmp_path / "rules.conf"
    rules.write_text("# this receiver soft-fails unknown users\n"
                     "rule bad-mailbox code 4xx text no such user here\n"
                     "decide bad-mailbox 4xx permanent\n")
    from conftest import give, traversable
    traversable(tmp_path)
    give(rules)
    rx_sender = net.receiver(SENDER_IP)
    net.receiver(DEST_IP, Script(rcpt_replies={
        "x@dest.example": "450 4.1.1 <x@dest.example>: no such user here"}))
    d = classifier(delivery={"bounce_rules": str(rules)})
    submit(d.port, ["x@dest.example"])
    b = wait_records(d, "Bounce", recipient="x@dest.example")[0]
    assert b["category"] == "bad-mailbox" and b["decision"] == "permanent"
    assert b["attempt"] == 1
    # The sender gets its DSN for it.
    from test_delivery import wait_dsn
    _, dsn = wait_dsn(rx_sender)
    assert dsn


def test_a_bad_rules_file_is_refused_with_its_line(classifier, make_drover, drover_bin,
                                                   tmp_path, dns):  # noqa: F811
    rules = tmp_path / "bad.conf"
    rules.write_text("rule bad-mailbox text (unclosed\n")
    d = make_drover(start=False, delivery={"bounce_rules": str(rules),
                                           "dns_forwarders": [dns.forwarder]})
    d.port = free_port()
    d.write_config()
    for cmd in (["check-config", str(d.config_path)],
                ["serve", "--config", str(d.config_path)]):
        r = subprocess.run([drover_bin, *cmd], capture_output=True, text=True,
                           timeout=deadline(30))
        assert r.returncode != 0
        assert f"{rules}:1:" in r.stderr and "regex" in r.stderr, r.stderr
