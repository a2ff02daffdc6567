"""The admin API's write verbs end to end (docs/operations.md, "Control API"): suspend and
resume by destination, tenant and source (with and without a duration), bounce and delete by
filter, retry now; the `drover` CLI's verbs; and clear 400s for bad bodies.

Mail is delivered for real: routes send each test domain to a receiver on loopback."""

import json
import urllib.error
import urllib.request

import pytest

from conftest import control_api, deadline, free_port, message, smtp, wait_for
from receiver import Receiver, Script

SENDER = "alice@sender.example"
A_IP, B_IP, RX_IP = "127.0.0.2", "127.0.0.3", "127.0.0.10"


def api(port, path, body=None, method=None):
    """(status, JSON reply) of the control API."""
    return control_api(f"127.0.0.1:{port}", path,
                       method or ("POST" if body is not None else "GET"), body)


def metrics(d):
    with urllib.request.urlopen(f"http://127.0.0.1:{d.cport}/metrics",
                                timeout=deadline(10)) as r:
        return r.read().decode()


def submit(port, rcpts, sender=SENDER, headers=""):
    """One message; its queue id."""
    with smtp(port) as s:
        code, text = s.mail(sender)
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (code, text)
        code, text = s.data(message(extra_headers=headers))
        assert code == 250, (code, text)
        return text.decode().split()[-1]


def delivered_to(rx):
    return [r for m in rx.messages() for r in m["rcpt_to"]]


def wait_delivered(rx, rcpt, timeout=15):
    wait_for(lambda: rcpt in delivered_to(rx), deadline(timeout), interval=0.05,
             what=f"delivery to {rcpt}")


def records(d, type_):
    return [e for e in d.events() if e["type"] == type_]


@pytest.fixture
def rx():
    with Receiver(Script()) as r:
        yield r


@pytest.fixture
def server(make_drover, rx):
    """Factory: a Drover with its control API, routing a.example, b.example and
    sender.example to the receiver; retries every hour unless delivery says otherwise."""

    def make(delivery=None, extra="", routes=None, **conf):
        cport = free_port()
        host = [f"127.0.0.1:{rx.port}"]
        d = {"retry": ["1h"], "dead_after": 100}
        d.update(delivery or {})
        r = {"a.example": host, "b.example": host, "sender.example": host}
        r.update(routes or {})
        drv = make_drover(control=f"127.0.0.1:{cport}", delivery=d, routes=r, extra=extra,
                          **conf)
        drv.cport = cport
        return drv

    return make


# ---------------------------------------------------------------- suspend, resume

def test_suspend_destination_holds_its_mail_only_until_resumed(server, rx):
    d = server()
    code, s = api(d.cport, "/api/v1/suspend", {"destination": "a.example",
                                                "reason": "complaints"})
    assert code == 200, s
    assert s["selector"] == "destination" and s["value"] == "a.example"
    assert s["until"] is None and isinstance(s["id"], int)
    held = submit(d.port, ["x@a.example"])
    submit(d.port, ["y@b.example"])
    wait_delivered(rx, "y@b.example")
    # Its own mail waits: listed as suspended, holding it, and never attempted.
    code, lst = api(d.cport, "/api/v1/suspensions")
    assert code == 200
    [entry] = lst["suspensions"]
    assert entry["value"] == "a.example" and entry["held"] == 1
    assert entry["reason"] == "complaints" and entry["remaining_s"] is None
    assert "x@a.example" not in delivered_to(rx)
    assert not [e for e in d.events() if e["type"] in ("TransientFailure", "Delivery")
                and e["id"] == held]
    # The metrics count it (the engine publishes them once a second).
    wait_for(lambda: "drover_admin_suspensions_active 1\n" in metrics(d), deadline(10),
             what="the suspension in the metrics")
    code, r = api(d.cport, "/api/v1/resume", {"destination": "a.example"})
    assert code == 200 and r["id"] == s["id"]
    wait_delivered(rx, "x@a.example")
    [rec] = d.wait_events(lambda e: e["type"] == "Delivery" and e["id"] == held)
    assert rec["attempt"] == 1  # the suspension spent no attempt
    assert [e["selector"] for e in records(d, "AdminSuspend")] == ["destination"]
    [res] = records(d, "AdminResume")
    assert res["value"] == "a.example" and res["expired"] is False
    assert api(d.cport, "/api/v1/suspensions")[1] == {"suspensions": []}
    wait_for(lambda: "drover_admin_suspensions_active 0\n" in metrics(d), deadline(10),
             what="no suspension in the metrics")
    # Nothing left to resume.
    assert api(d.cport, "/api/v1/resume", {"destination": "a.example"})[0] == 404


def test_suspension_with_a_duration_ends_by_itself(server, rx):
    d = server()
    code, s = api(d.cport, "/api/v1/suspend", {"destination": "a.example", "duration": "2s"})
    assert code == 200 and s["until"] is not None
    submit(d.port, ["x@a.example"])
    # Held now, delivered once the two seconds are over.
    assert "x@a.example" not in delivered_to(rx)
    wait_delivered(rx, "x@a.example", timeout=10)
    [res] = d.wait_events(lambda e: e["type"] == "AdminResume")
    assert res["expired"] is True


def test_tenant_suspension_holds_that_tenants_mail(server, rx):
    rules = """
tenant "acme" { }
classification {
  rule { mail_from_domain = { "acme.example" } tenant = "acme" }
}
"""
    d = server(extra=rules)
    assert api(d.cport, "/api/v1/suspend", {"tenant": "acme"})[0] == 200
    acme = submit(d.port, ["t@a.example"], sender="news@acme.example")
    submit(d.port, ["o@a.example"])
    wait_delivered(rx, "o@a.example")
    # The tenant's message went back untried: no connection carried it, no attempt counted.
    wait_for(lambda: api(d.cport, "/api/v1/suspensions")[1]["suspensions"][0]["held"] == 1,
             deadline(5), what="the tenant's message held")
    assert "t@a.example" not in delivered_to(rx)
    assert not [e for e in d.events() if e.get("id") == acme and e["type"] != "Reception"]
    assert api(d.cport, "/api/v1/resume", {"tenant": "acme"})[0] == 200
    wait_delivered(rx, "t@a.example")
    [rec] = d.wait_events(lambda e: e["type"] == "Delivery" and e["id"] == acme)
    assert rec["attempt"] == 1 and rec["tenant"] == "acme"


def test_source_suspension_leaves_from_the_other_source(server, rx):
    pools = f"""
source "one" {{ address = "{A_IP}" }}
source "two" {{ address = "{B_IP}" }}
pool "p" {{ source "one" {{ }} source "two" {{ }} }}
"""
    d = server(delivery={"pool": "p"}, extra=pools)
    assert api(d.cport, "/api/v1/suspend", {"source": "one"})[0] == 200
    for i in range(6):
        submit(d.port, [f"s{i}@a.example"])
    wait_for(lambda: len(rx.messages()) >= 6, deadline(15), interval=0.05, what="6 messages")
    assert {m["peer"] for m in rx.messages()} == {B_IP}
    # Both suspended: the pool's lanes wait; resumed, mail leaves again.
    assert api(d.cport, "/api/v1/suspend", {"source": "two"})[0] == 200
    submit(d.port, ["late@a.example"])
    assert "late@a.example" not in delivered_to(rx)
    assert api(d.cport, "/api/v1/resume", {"source": "one"})[0] == 200
    wait_delivered(rx, "late@a.example")
    assert [m["peer"] for m in rx.messages() if m["rcpt_to"] == ["late@a.example"]] == [A_IP]
    # A source the configuration does not have is an error, not a silent no-op.
    code, r = api(d.cport, "/api/v1/suspend", {"source": "three"})
    assert code == 404 and "three" in r["error"]


# ---------------------------------------------------------------- bounce, delete, retry

def test_bounce_by_filter_sends_a_dsn(server, rx):
    d = server()
    api(d.cport, "/api/v1/suspend", {"destination": "a.example"})
    qid = submit(d.port, ["x@a.example", "y@b.example"], sender="owner@sender.example")
    other = submit(d.port, ["z@a.example"], sender="someone@else.example")
    wait_delivered(rx, "y@b.example")
    code, r = api(d.cport, "/api/v1/bounce", {"domain": "a.example",
                                               "sender": "@sender.example",
                                               "reason": "recalled by the sender"})
    assert code == 200, r
    assert r == {"matched_messages": 1, "recipients": 1, "in_flight": 0}
    # The DSN goes to the sender (its domain routes to the same receiver).
    wait_delivered(rx, "owner@sender.example")
    [dsn] = [m for m in rx.messages() if m["rcpt_to"] == ["owner@sender.example"]]
    assert dsn["mail_from"] == "" and "x@a.example" in dsn["data"]
    assert "recalled by the sender" in dsn["data"]
    [b] = d.wait_events(lambda e: e["type"] == "Bounce" and e["id"] == qid)
    assert b["recipient"] == "x@a.example" and b["status"] == "5.0.0"
    # The other message stays queued, the bounced one is gone.
    ids = d.queue_ids()
    assert other in ids and qid not in ids


def test_delete_by_campaign_without_dsn(server, rx):
    rules = """
classification {
  rule { header = { "X-Campaign-Id:" } campaign_header = "X-Campaign-Id" }
}
"""
    d = server(extra=rules)
    api(d.cport, "/api/v1/suspend", {"destination": "a.example"})
    gone = submit(d.port, ["x@a.example"], headers="X-Campaign-Id: spring\r\n")
    kept = submit(d.port, ["y@a.example"], headers="X-Campaign-Id: fall\r\n")
    code, r = api(d.cport, "/api/v1/delete", {"campaign": "spring"})
    assert code == 200 and r == {"matched_messages": 1, "recipients": 1, "in_flight": 0}
    [rec] = d.wait_events(lambda e: e["type"] == "AdminDelete")
    assert rec["id"] == gone and rec["recipients"] == ["x@a.example"]
    assert rec["filter"] == {"campaign": "spring"}
    wait_for(lambda: gone not in d.queue_ids(), deadline(10), what="the message deleted")
    assert kept in d.queue_ids()
    # No DSN, no bounce: the sender hears nothing.
    api(d.cport, "/api/v1/resume", {"destination": "a.example"})
    wait_delivered(rx, "y@a.example")
    assert not records(d, "Bounce") and not records(d, "DsnQueued")
    assert SENDER not in delivered_to(rx)


def test_retry_delivers_a_deferred_message_now(server, rx):
    d = server()
    rx.server.script.rcpt_replies["x@a.example"] = "451 4.3.0 try later"
    qid = submit(d.port, ["x@a.example"])
    d.wait_events(lambda e: e["type"] == "TransientFailure" and e["id"] == qid)
    # Next attempt in an hour; the receiver accepts now, and a retry makes it due at once.
    del rx.server.script.rcpt_replies["x@a.example"]
    code, r = api(d.cport, "/api/v1/retry", {"domain": "a.example"})
    assert code == 200 and r == {"items": 1}
    wait_delivered(rx, "x@a.example", timeout=10)
    [rec] = d.wait_events(lambda e: e["type"] == "Delivery" and e["id"] == qid)
    assert rec["attempt"] == 2
    # An empty filter is everything, for retry only.
    assert api(d.cport, "/api/v1/retry", {}) == (200, {"items": 0})


# ---------------------------------------------------------------- bad requests

@pytest.mark.parametrize("path,body,why", [
    ("/api/v1/suspend", {"color": "red"}, "unknown field \"color\""),
    ("/api/v1/suspend", {"destination": "a.example", "tenant": "t"}, "exactly one selector"),
    ("/api/v1/suspend", {"destination": "a.example", "duration": "two hours"}, "duration"),
    ("/api/v1/suspend", {}, "a selector is required"),
    ("/api/v1/resume", {"id": "x"}, "id"),
    ("/api/v1/bounce", {}, "empty filter"),
    ("/api/v1/delete", {"reason": "x"}, "unknown field \"reason\""),
    ("/api/v1/bounce", {"older_than": "soon"}, "duration"),
    ("/api/v1/retry", {"id": "123"}, "queue id"),
])
def test_bad_bodies_get_400_with_the_reason(server, path, body, why):
    d = server()
    code, r = api(d.cport, path, body)
    assert code == 400, r
    assert why in r["error"]


def test_not_json_is_400(server):
    d = server()
    req = urllib.request.Request(f"http://127.0.0.1:{d.cport}/api/v1/suspend", data=b"{",
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=deadline(10))
    assert e.value.code == 400


# ---------------------------------------------------------------- the CLI

def test_cli_verbs(server, rx):
    d = server()
    conf = ["--config", str(d.config_path)]
    r = d.cli("suspend", "destination", "a.example", "--for", "1h", "--reason", "test", *conf)
    assert "destination a.example suspended until" in r.stdout
    qid = submit(d.port, ["x@a.example"])
    r = d.cli("suspensions", *conf)
    assert "a.example" in r.stdout and "test" in r.stdout
    r = d.cli("suspensions", "--json", *conf)
    [s] = json.loads(r.stdout)["suspensions"]
    assert s["selector"] == "destination" and s["held"] == 1
    r = d.cli("retry", "--domain", "a.example", "--json", *conf)
    assert json.loads(r.stdout) == {"items": 0}  # due already: held by the suspension
    r = d.cli("resume", "--id", str(s["id"]), *conf)
    assert "resumed" in r.stdout
    wait_delivered(rx, "x@a.example")
    api(d.cport, "/api/v1/suspend", {"destination": "b.example"})
    qid = submit(d.port, ["y@b.example"])
    r = d.cli("delete", "--id", qid, *conf)
    assert "deleted 1 message (1 recipient)" in r.stdout
    # Errors: 1 with the server's reason, 2 for a usage mistake.
    r = d.cli("bounce", *conf, check=False)
    assert r.returncode == 1 and "empty filter" in r.stderr
    r = d.cli("resume", "--id", "999", *conf, check=False)
    assert r.returncode == 1 and "no such suspension" in r.stderr
    r = d.cli("suspend", "colour", "red", *conf, check=False)
    assert r.returncode == 2 and "usage: drover suspend" in r.stderr
