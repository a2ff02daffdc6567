"""The suppression list in the server: a hard bounce the rules say to suppress puts the
recipient on the list; later mail to it is refused at RCPT (550 5.7.1), or accepted and
dropped with a Suppressed record; `drover suppress` sees and edits the same list."""

import json
import subprocess

from conftest import Client, deadline, wait_for
from receiver import Script
from test_delivery import (DEST_IP, SENDER, SENDER_IP, dns, net, submit,  # noqa: F401
                           wait_records)


def make(make_drover, dns, net, **conf):  # noqa: F811
    d = {"port": net.port, "dns_forwarders": [dns.forwarder], "retry": ["1s"],
         "helo_name": "out.drover.example"}
    return make_drover(delivery=d, **conf)


def cli(drover_bin, d, *args):
    return subprocess.run([drover_bin, "suppress", *args, "--dir", str(d.spool / "suppress")],
                          capture_output=True, text=True, timeout=deadline(30))


def test_hard_bounce_suppresses_and_reception_refuses(make_drover, drover_bin, dns,
                                                      net):  # noqa: F811
    net.receiver(SENDER_IP)
    net.receiver(DEST_IP, Script(rcpt_replies={
        "gone@dest.example": "550 5.1.1 <gone@dest.example>: Recipient address rejected: "
                             "User unknown in virtual mailbox table"}))
    d = make(make_drover, dns, net)
    submit(d.port, ["gone@dest.example"])
    b = wait_records(d, "Bounce", recipient="gone@dest.example")[0]
    assert b["decision"] == "suppress"

    def listed():
        r = cli(drover_bin, d, "check", "gone@dest.example")
        return r.returncode == 0
    wait_for(listed, deadline(10), interval=0.1, what="the address on the list")
    r = cli(drover_bin, d, "list", "--json")
    entry = json.loads(r.stdout.splitlines()[0])
    assert entry["reason"] == "hard-bounce" and "User unknown" in entry["source"]
    c = Client(d.port)
    c.greet()
    c.ehlo()
    assert c.cmd(f"MAIL FROM:<{SENDER}>") == "250"
    r = c.cmd("RCPT TO:<Gone@Dest.Example>")
    assert r.text.startswith("550 5.7.1") and "suppressed (hard-bounce)" in r.text, r
    assert c.cmd("RCPT TO:<other@dest.example>") == "250"
    c.cmd("QUIT")
    # Removed by the operator: accepted again.
    assert cli(drover_bin, d, "remove", "gone@dest.example").returncode == 0
    c = Client(d.port)
    c.greet()
    c.ehlo()
    assert c.cmd(f"MAIL FROM:<{SENDER}>") == "250"
    assert c.cmd("RCPT TO:<gone@dest.example>") == "250"
    c.cmd("QUIT")


def test_drop_mode_accepts_and_drops(make_drover, drover_bin, dns, net):  # noqa: F811
    d = make(make_drover, dns, net, extra='suppression {\n  at_reception = "drop"\n}')
    assert cli(drover_bin, d, "add", "@blocked.example", "--reason", "manual").returncode == 0
    rx = net.receiver(DEST_IP)
    c = Client(d.port)
    c.greet()
    c.ehlo()
    assert c.cmd(f"MAIL FROM:<{SENDER}>") == "250"
    assert c.cmd("RCPT TO:<anyone@blocked.example>") == "250"
    assert c.cmd("DATA") == "354"
    r = c.cmd("Subject: x\r\n\r\nHi.\r\n.")
    assert r.text.startswith("250 2.0.0 Ok: dropped"), r
    c.cmd("QUIT")
    ev = d.wait_events(lambda e: e["type"] == "Suppressed", timeout=deadline(10))
    assert ev[0]["recipient"] == "anyone@blocked.example" and ev[0]["reason"] == "manual"
    assert not d.queue_ids()
    assert not rx.messages()
