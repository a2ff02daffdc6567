"""The admin API's read verbs and shaping overrides, and the `drover` commands over them
(docs/operations.md, "Control API"; docs/shaping.md, "Overrides"): queue summary by tenant,
campaign and destination, inspection of a message, the busiest destinations, the adaptive
state, and an override that visibly narrows a receiver's concurrency until it is removed or
ends.

Mail stays queued because the receiver defers every recipient (451); retries are an hour away.
"""

import json
import time

from conftest import control_api, deadline, free_port, give, smtp, traversable, wait_for
from receiver import Receiver, Script

RX_IP = "127.0.0.10"
SENDER = "app@sender.example"
DEFER = "451 4.7.1 [RL] Try again later"
TOKEN = "s3cret-token"

CLASSIFY = """
tenant "t1" { }
tenant "t2" { }
classification {
  rule { header = { "X-Tenant: ^t1$" } tenant = "t1" }
  rule { header = { "X-Tenant: ^t2$" } tenant = "t2" }
  rule { campaign_header = "X-Campaign-Id" }
}
"""


def api(d, path, method="GET", body=None, token=TOKEN):
    return control_api(d.control, path, method, body, token)


def cli(d, *args, check=True):
    return d.cli(*args, "--config", str(d.config_path), check=check)


def start(make_drover, routes, rules=None, tmp_path=None, **delivery):
    control = f"127.0.0.1:{free_port()}"
    dl = {"retry": ["1h"]}
    if rules is not None:
        path = tmp_path / "shaping.conf"
        path.write_text(rules)
        give(path)
        traversable(path)
        dl["shaping"] = str(path)
    dl.update(delivery)
    d = make_drover(delivery=dl, routes=routes, control=control, control_token=TOKEN,
                    extra=CLASSIFY)
    d.control = control
    return d


def send(port, rcpts, tenant=None, campaign=None, subject="test"):
    headers = ""
    if tenant:
        headers += f"X-Tenant: {tenant}\r\n"
    if campaign:
        headers += f"X-Campaign-Id: {campaign}\r\n"
    msg = (f"From: {SENDER}\r\nTo: someone\r\nSubject: {subject}\r\n{headers}\r\nHello.\r\n")
    with smtp(port) as s:
        assert s.mail(SENDER)[0] == 250
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        code, text = s.data(msg.encode())
        assert code == 250, (code, text)


def groups_by(summary, *keys):
    return {tuple(g[k] for k in keys): g for g in summary["groups"]}


def test_summary_inspect_top_and_their_commands(make_drover):
    with Receiver(Script(replies={"rcpt": DEFER}), hosts=(RX_IP,)) as rx:
        d = start(make_drover, {"a.example": [f"{RX_IP}:{rx.port}"],
                                "b.example": [f"{RX_IP}:{rx.port}"]})
        send(d.port, ["x@a.example"], "t1", "c1", subject="first")
        t_first = time.time()
        for _ in range(2):
            send(d.port, ["y@a.example"], "t1", "c1")
        for _ in range(2):
            send(d.port, ["z@b.example"], "t1", "c2")
        send(d.port, ["w@a.example", "w@b.example"], "t2", "c1")
        d.wait_events(lambda e: e.get("type") == "TransientFailure", count=7,
                      timeout=deadline(30))

        # By tenant and campaign: counts, the deferral's reply, the oldest message's age.
        wait_for(lambda: time.time() - t_first >= 2, deadline(5), what="two seconds of age")
        status, s = api(d, "/api/v1/queue/summary?by=tenant,campaign")
        assert status == 200, s
        assert s["by"] == ["tenant", "campaign"]
        assert s["messages"] == 6 and s["recipients"] == 7
        g = groups_by(s, "tenant", "campaign")
        assert set(g) == {("t1", "c1"), ("t1", "c2"), ("t2", "c1")}
        assert (g["t1", "c1"]["messages"], g["t1", "c1"]["recipients"]) == (3, 3)
        assert (g["t1", "c2"]["messages"], g["t1", "c2"]["recipients"]) == (2, 2)
        assert (g["t2", "c1"]["messages"], g["t2", "c1"]["recipients"]) == (1, 2)
        assert all(x["last_error"] == DEFER for x in s["groups"])
        assert g["t1", "c1"]["oldest_age_s"] >= 2
        assert g["t1", "c1"]["oldest_age_s"] >= g["t2", "c1"]["oldest_age_s"]
        assert s["groups"][0]["messages"] == 3  # most messages first

        # By destination (the default).
        status, s = api(d, "/api/v1/queue/summary")
        assert status == 200 and s["by"] == ["destination"]
        g = groups_by(s, "destination")
        assert (g[("a.example",)]["messages"], g[("b.example",)]["messages"]) == (4, 3)
        status, err = api(d, "/api/v1/queue/summary?by=tenant,color")
        assert status == 400 and "color" in err["error"]
        # The token is required on every endpoint.
        status, err = api(d, "/api/v1/queue/summary", token="")
        assert status == 401

        # Inspect one message.
        first = next(m for m in d.queue_list() if m["tenant"] == "t2")
        status, m = api(d, f"/api/v1/messages/{first['id']}")
        assert status == 200, m
        assert m["sender"] == SENDER and (m["tenant"], m["campaign"]) == ("t2", "c1")
        assert sorted(m["queues"]) == ["default@a.example", "default@b.example"]
        assert [(r["address"], r["state"], r["attempts"], r["last_reply"])
                for r in m["recipients"]] == [("w@a.example", "pending", 1, DEFER),
                                              ("w@b.example", "pending", 1, DEFER)]
        assert all(r["next_attempt"] for r in m["recipients"])
        assert "Subject: test\r\n" in m["headers"] and "Hello." not in m["headers"]
        assert m["headers_truncated"] is False and m["age_s"] >= 0
        assert api(d, "/api/v1/messages/" + "0" * 24)[0] == 404
        assert api(d, "/api/v1/messages/nonsense")[0] == 404

        # The busiest destinations, from the engine's memory.
        status, top = api(d, "/api/v1/top?limit=1")
        assert status == 200, top
        assert top["by"] == "destination" and top["total"] == 2
        assert [(x["name"], x["pending"]) for x in top["groups"]] == [("a.example", 4)]
        assert top["groups"][0]["scheduled"] == 4 and top["groups"][0]["deferred"] >= 4
        assert api(d, "/api/v1/top?by=color")[0] == 400
        assert api(d, "/api/v1/top?limit=x")[0] == 400

        # The commands: tables by default, the API's JSON with --json.
        r = cli(d, "queue", "summary", "--by", "tenant,campaign")
        assert "TENANT" in r.stdout and "CAMPAIGN" in r.stdout
        line = next(x for x in r.stdout.splitlines() if x.startswith("t2 "))
        assert line.split()[:4] == ["t2", "c1", "1", "2"] and "[RL]" in line
        assert "6 messages in 3 groups" in r.stdout
        assert "0 adaptive actions in force" in r.stdout
        r = cli(d, "queue", "summary", "--json")
        rows = [json.loads(x) for x in r.stdout.splitlines()]
        assert rows[-1] == {"adaptive_actions": []}
        assert {x["queue"] for x in rows[:-1]} == {"default@a.example", "default@b.example"}
        r = cli(d, "inspect", first["id"])
        assert "w@b.example" in r.stdout and "pending" in r.stdout and "Subject: test" in r.stdout
        r = cli(d, "inspect", first["id"], "--json")
        assert json.loads(r.stdout)["id"] == first["id"]
        r = cli(d, "inspect", "0" * 24, check=False)
        assert r.returncode == 1 and "HTTP 404" in r.stderr
        r = cli(d, "top", "--json")
        assert [x["name"] for x in json.loads(r.stdout)["groups"]] == ["a.example", "b.example"]
        r = cli(d, "top", "--limit", "1")
        assert "DESTINATION" in r.stdout and "a.example" in r.stdout and "b.example" not in r.stdout
        r = cli(d, "top", "--colour", "red", check=False)
        assert r.returncode == 2 and "unknown option --colour" in r.stderr
        r = cli(d, "inspect", check=False)
        assert r.returncode == 2 and "usage: drover inspect" in r.stderr

        # Without the server: the summary reads the spool itself, and says so.
        d.stop()
        r = cli(d, "queue", "summary", "--by", "destination")
        assert "reading the spool" in r.stderr
        assert "a.example" in r.stdout and "7 messages" not in r.stdout
        assert "adaptive actions: unknown" in r.stdout
        r = cli(d, "top", check=False)
        assert r.returncode == 1 and "connection refused" in r.stderr


DEST = "shaped.example"
WIDE = f'domain "{DEST}" {{\n  max_connections = 6\n  initial_connections = 6\n}}\n'


def test_override_narrows_concurrency_until_it_ends(make_drover, tmp_path):
    """max_connections 6 by the rules; an override of 2 for a few seconds holds the receiver
    at 2 sessions at once; when it ends (ShapingOverride expire), more open again."""
    with Receiver(Script(delays={"dot": 0.3}), hosts=(RX_IP,)) as rx:
        d = start(make_drover, {DEST: [f"{RX_IP}:{rx.port}"]}, WIDE, tmp_path,
                  max_connections=50, max_messages_per_connection=2)
        r = cli(d, "override", "set", "--domain", DEST, "--max-connections", "2", "--for", "5s")
        assert "override 1 in force" in r.stdout, r.stdout
        status, lst = api(d, "/api/v1/shaping/overrides")
        assert status == 200 and len(lst["overrides"]) == 1
        o = lst["overrides"][0]
        assert (o["domain"], o["set"], o["source"]) == (DEST, {"max_connections": "2"}, None)
        assert o["ends"] is not None
        for _ in range(8):
            send(d.port, [f"u@{DEST}"] * 1)
        with smtp(d.port) as s:
            for _ in range(52):
                assert s.mail(SENDER)[0] == 250
                assert s.rcpt(f"v@{DEST}")[0] == 250
                assert s.data(b"Subject: x\r\n\r\nHi.\r\n")[0] == 250
        wait_for(lambda: len(rx.messages()) >= 8, deadline(20), interval=0.1,
                 what="deliveries under the override")
        status, ad = api(d, "/api/v1/adaptive")
        site = next(s for s in ad["sites"] if s["domain"] == DEST)
        assert (site["max_connections"], site["max_connections_from"]) == (2, "override")
        end = d.wait_events(lambda e: e.get("type") == "ShapingOverride"
                            and e.get("event") == "expire", timeout=deadline(20))[0]
        assert end["id"] == 1 and end["domain"] == DEST
        assert rx.server.max_active <= 2
        wait_for(lambda: rx.server.max_active > 2, deadline(20), interval=0.1,
                 what="more sessions once the override ended")
        assert [e["event"] for e in d.events() if e.get("type") == "ShapingOverride"] == \
            ["set", "expire"]


def test_override_api_set_list_remove_and_errors(make_drover, tmp_path):
    with Receiver(Script(replies={"rcpt": DEFER}), hosts=(RX_IP,)) as rx:
        d = start(make_drover, {DEST: [f"{RX_IP}:{rx.port}"]}, WIDE, tmp_path)
        status, o = api(d, "/api/v1/shaping/overrides", "POST",
                        {"domain": DEST, "set": {"max_connections": 1,
                                                 "message_rate": "100/min"}})
        assert status == 201, o
        assert o["ends"] is None  # no duration: until removed
        assert o["set"] == {"max_connections": "1", "message_rate": "100/min"}
        bad = [({"set": {"max_connections": 1}}, "provider"),
               ({"domain": DEST, "set": {}}, "set"),
               ({"domain": DEST, "set": {"max_connections": 0}}, "must be from 1 to 1000"),
               ({"domain": DEST, "set": {"max_conns": 2}}, "no such shaping setting"),
               ({"domain": DEST, "set": {"message_rate": "fast"}}, "message_rate"),
               ({"provider": "nope", "set": {"max_connections": 2}}, "no such provider"),
               ({"domain": DEST, "source": "nope", "set": {"max_connections": 2}},
                "no such source"),
               ({"domain": DEST, "set": {"max_connections": 2}, "duration": "soon"},
                "duration")]
        for body, why in bad:
            status, err = api(d, "/api/v1/shaping/overrides", "POST", body)
            assert status == 400 and why in err["error"], (body, err)
        r = cli(d, "override", "list")
        assert "1 shaping override" in r.stdout and "until removed" in r.stdout
        assert "max_connections=1" in r.stdout
        # A reload of the rules keeps it.
        d.proc.send_signal(1)
        wait_for(lambda: "reload" in d.stderr_text().lower(), deadline(10),
                 what="the reload logged")
        assert len(api(d, "/api/v1/shaping/overrides")[1]["overrides"]) == 1
        r = cli(d, "override", "remove", str(o["id"]))
        assert f"override {o['id']} removed" in r.stdout
        assert api(d, "/api/v1/shaping/overrides")[1] == {"overrides": []}
        assert api(d, f"/api/v1/shaping/overrides/{o['id']}", "DELETE")[0] == 404
        r = cli(d, "override", "remove", "77", check=False)
        assert r.returncode == 1 and "no override 77" in r.stderr
        r = cli(d, "override", "set", "--domain", DEST, check=False)
        assert r.returncode == 2
        events = d.wait_events(lambda e: e.get("type") == "ShapingOverride", count=2)
        assert [e["event"] for e in events] == ["set", "remove"]


def test_adaptive_state_shows_an_action(make_drover, tmp_path):
    rules = WIDE + (
        'adaptive "ts01" {\n'
        f'  domain = "{DEST}"\n'
        '  code = "421"\n'
        '  text = "\\\\[TS01\\\\]"\n'
        '  action = "suspend-provider"\n'
        '  duration = "1h"\n'
        '}\n')
    script = Script(replies={"mail": "421 4.7.0 [TS01] Messages temporarily deferred"})
    with Receiver(script, hosts=(RX_IP,)) as rx:
        d = start(make_drover, {DEST: [f"{RX_IP}:{rx.port}"]}, rules, tmp_path)
        status, ad = api(d, "/api/v1/adaptive")
        assert status == 200 and ad["actions"] == [] and ad["shaping"] is True
        send(d.port, [f"u@{DEST}"])
        d.wait_events(lambda e: e.get("type") == "AdaptiveAction", timeout=deadline(20))
        status, ad = api(d, "/api/v1/adaptive")
        assert [(a["rule"], a["action"], a["dest"]) for a in ad["actions"]] == \
            [("ts01", "suspend-provider", DEST)]
        site = next(s for s in ad["sites"] if s["domain"] == DEST)
        assert site["suspended"] is True and site["max_connections"] == 6
        assert site["message_rate"] == "unlimited"
        r = cli(d, "adaptive")
        assert "1 adaptive action in force" in r.stdout and "suspend-provider" in r.stdout
        assert DEST in r.stdout
        r = cli(d, "adaptive", "--json")
        assert json.loads(r.stdout)["actions"][0]["rule"] == "ts01"
