"""HTTP injection, POST /api/v1/inject, end to end: raw and built content with per-recipient
substitutions arrive at a real receiver DKIM-signed (verified by dkimpy), multipart content
parses back with Python's email package, stream/tenant/campaign reach the Reception records,
a suppressed recipient fails with the reply SMTP gives, thousands of recipients in one
request are all delivered, and bad requests get a 400 or 401 that says why."""

import base64
import email
import email.policy
import json
import os
import urllib.error
import urllib.request

import pytest

from conftest import Client, deadline, free_port, wait_for
# The world of the DKIM signing tests: a DNS server with dest.example's MX and the keys, and
# a receiver on 127.0.0.2 (fixtures dns and rx).
from test_dkim_signing import dns, key_section, keygen, rx, verify_all  # noqa: F401

dkim = pytest.importorskip("dkim")
SANITIZED = bool(os.environ.get("DROVER_SANITIZED"))
ROUTING = """
stream "transactional" { }
tenant "acme" { }
"""


def inject(port, body, token=None, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/inject", data=data,
                                 method="POST", headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=deadline(120)) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture
def injector(make_drover, drover_bin, tmp_path, dns, rx):
    """Factory: a Drover with the control plane on, signing for sender.example, delivering
    to rx. Returns (drover, control port)."""

    def make(extra="", token=None, **conf):
        key = keygen(drover_bin, tmp_path, dns, "sender.example", "s1", "ed25519")
        port = free_port()
        d = make_drover(control=f"127.0.0.1:{port}", control_token=token or "",
                        delivery={"port": rx.port, "dns_forwarders": [dns.forwarder],
                                  "retry": ["1s"]},
                        extra=key_section("k", "sender.example", "s1", key) + ROUTING + extra,
                        **conf)
        return d, port

    return make


def wait_messages(rx, count, timeout=30):
    wait_for(lambda: len(rx.messages()) >= count, deadline(timeout),
             what=f"{count} message(s) at the receiver")
    return rx.messages()


def by_rcpt(messages):
    out = {}
    for m in messages:
        for r in m["rcpt_to"]:
            out[r] = m
    return out


def test_raw_content_with_substitutions_is_signed_and_delivered(injector, rx, dns):
    d, port = injector()
    raw = ("From: News <news@sender.example>\nTo: {{email}}\nSubject: Hello {{name}}\n\n"
           "Dear {{name}}, welcome to {{product}}.\n.\nA line with a dot above.\n")
    code, body = inject(port, {
        "envelope_sender": "bounces@sender.example",
        "recipients": [
            {"email": "ann@dest.example", "substitutions": {"name": "Ann", "email": "ann@dest.example"}},
            {"email": "bob@dest.example", "substitutions": {"name": "Bob", "email": "bob@dest.example"}},
        ],
        "substitutions": {"product": "Drover", "name": "nobody"},
        "content": raw,
    })
    assert code == 200, body
    assert body["success_count"] == 2 and body["failure_count"] == 0
    assert [r["recipient"] for r in body["results"]] == ["ann@dest.example", "bob@dest.example"]
    assert all(r["status"] == "queued" and r["id"] for r in body["results"])
    got = by_rcpt(wait_messages(rx, 2))
    for name in ("ann", "bob"):
        data = got[f"{name}@dest.example"]["data"].encode("latin-1")
        assert verify_all(data, dns) == ["sender.example"]
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert msg["Subject"] == f"Hello {name.title()}"
        assert msg["To"] == f"{name}@dest.example"
        assert msg.get_content().replace("\r\n", "\n") == (f"Dear {name.title()}, welcome to Drover.\n.\n"
                                     "A line with a dot above.\n")
        assert got[f"{name}@dest.example"]["mail_from"] == "bounces@sender.example"
        # The queue ids in the answer are those of the Reception records.
    recs = d.wait_events(lambda e: e["type"] == "Reception", count=2)
    assert {r["id"] for r in recs} == {r["id"] for r in body["results"]}
    assert all(r["listener"] == "api" and r["client_ip"] == "127.0.0.1" for r in recs)


def test_built_content_multipart_with_attachment(injector, rx, dns):
    d, port = injector()
    blob = bytes(range(256)) * 40
    code, body = inject(port, {
        "envelope_sender": "bounces@sender.example",
        "recipients": [{"email": "ann@dest.example", "name": "Ann Müller",
                        "substitutions": {"name": "Ann"}},
                       {"email": "bob@dest.example", "substitutions": {"name": "Bob"}}],
        "content": {
            "from": {"email": "news@sender.example", "name": "Nouvelles é"},
            "reply_to": "help@sender.example",
            "subject": "Grüße, {{name}} ✓",
            "text_body": "Hallo {{name}},\nPreis: 10 €\n",
            "html_body": "<p>Hallo <b>{{name}}</b></p>",
            "headers": {"X-Campaign-Ref": "ref-{{name}}"},
            "attachments": [
                {"content_type": "application/octet-stream", "file_name": "blob.bin",
                 "data": base64.b64encode(blob).decode(), "base64": True},
                {"content_type": "text/plain", "file_name": "notes.txt", "data": "just text"},
            ],
        },
    })
    assert code == 200 and body["success_count"] == 2, body
    got = by_rcpt(wait_messages(rx, 2))
    for addr, name in (("ann@dest.example", "Ann"), ("bob@dest.example", "Bob")):
        data = got[addr]["data"].encode("latin-1")
        assert verify_all(data, dns) == ["sender.example"]
        assert all(b < 0x80 for b in data)  # built content is 7-bit
        assert all(len(line) <= 998 for line in data.split(b"\r\n"))
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert msg["Subject"] == f"Grüße, {name} ✓"
        assert msg["From"].addresses[0].display_name == "Nouvelles é"
        assert msg["X-Campaign-Ref"] == f"ref-{name}"
        assert msg["Message-ID"] and msg["Date"] and msg["MIME-Version"] == "1.0"
        assert "X-Drover" not in data.decode("latin-1")
        assert msg.get_content_type() == "multipart/mixed"
        alt, att1, att2 = msg.iter_parts()
        assert alt.get_content_type() == "multipart/alternative"
        text, html = alt.iter_parts()
        assert text.get_content().replace("\r\n", "\n") == f"Hallo {name},\nPreis: 10 €\n"
        assert html.get_content_type() == "text/html" and f"<b>{name}</b>" in html.get_content()
        assert att1.get_filename() == "blob.bin" and att1.get_payload(decode=True) == blob
        assert att2.get_filename() == "notes.txt" and att2.get_payload(decode=True) == b"just text"
    assert got["ann@dest.example"]["data"].count("Ann M=C3=BCller") == 0  # not QP in a header
    to = email.message_from_bytes(got["ann@dest.example"]["data"].encode("latin-1"),
                                  policy=email.policy.default)["To"]
    assert to.addresses[0].display_name == "Ann Müller"


def test_identical_content_shares_one_message(injector, rx):
    d, port = injector()
    rcpts = [f"u{i}@dest.example" for i in range(5)]
    code, body = inject(port, {"envelope_sender": "b@sender.example", "recipients": rcpts,
                               "content": {"from": "n@sender.example", "subject": "same",
                                           "text_body": "the same for all\n"}})
    assert code == 200 and body["success_count"] == 5, body
    assert len({r["id"] for r in body["results"]}) == 1
    got = wait_messages(rx, 1)
    assert sorted(got[0]["rcpt_to"]) == sorted(rcpts)
    assert "undisclosed-recipients" in got[0]["data"]


def test_drover_inject_command_posts_a_file(injector, rx, tmp_path):
    d, port = injector()
    request = tmp_path / "inject.json"
    request.write_text(json.dumps({
        "envelope_sender": "b@sender.example",
        "recipients": [{"email": "ann@dest.example", "substitutions": {"name": "Ann"}},
                       "not an address"],
        "content": {"from": "n@sender.example", "subject": "Hi {{name}}",
                    "text_body": "Hello {{name}}\n"}}))
    r = d.cli("inject", str(request), "--config", str(d.config_path))
    assert r.stdout.startswith("1 queued, 1 failed"), r.stdout
    assert "ann@dest.example" in r.stdout and "queued" in r.stdout
    got = wait_messages(rx, 1)
    assert "Subject: Hi Ann" in got[0]["data"]
    # --json prints the reply; a file that is not JSON is a usage error.
    request.write_text("{")
    r = d.cli("inject", str(request), "--config", str(d.config_path), check=False)
    assert r.returncode == 2 and "inject.json" in r.stderr, r.stderr


def test_stream_tenant_campaign_in_reception_records(injector, rx):
    d, port = injector()
    code, body = inject(port, {"envelope_sender": "b@sender.example",
                               "recipients": ["a@dest.example"],
                               "stream": "transactional", "tenant": "acme",
                               "campaign": "welcome-2026",
                               "content": {"from": "n@sender.example", "text_body": "x"}})
    assert code == 200 and body["success_count"] == 1, body
    rec = d.wait_events(lambda e: e["type"] == "Reception")[0]
    assert (rec["stream"], rec["tenant"], rec["campaign"]) == ("transactional", "acme",
                                                               "welcome-2026")
    data = wait_messages(rx, 1)[0]["data"]
    assert "X-Drover" not in data
    # An unknown stream is the pipeline's refusal, per recipient.
    code, body = inject(port, {"envelope_sender": "b@sender.example",
                               "recipients": ["a@dest.example", "b@dest.example"],
                               "stream": "nosuch",
                               "content": {"from": "n@sender.example", "text_body": "x"}})
    assert code == 200 and body["failure_count"] == 2, body
    assert all(r["status"] == "failed" and r["code"] == 550 and "names no stream" in r["reply"]
               for r in body["results"])


def test_suppressed_recipient_fails_as_smtp_says(injector, rx, drover_bin):
    import subprocess
    d, port = injector()
    subprocess.run([drover_bin, "suppress", "add", "gone@dest.example", "--reason", "manual",
                    "--dir", str(d.spool / "suppress")], check=True, capture_output=True)
    c = Client(d.port)
    c.start()
    assert c.cmd("MAIL FROM:<b@sender.example>") == "250"
    smtp_reply = c.cmd("RCPT TO:<gone@dest.example>")
    c.cmd("QUIT")
    code, body = inject(port, {"envelope_sender": "b@sender.example",
                               "recipients": ["ok@dest.example", "gone@dest.example",
                                              "bad address"],
                               "content": {"from": "n@sender.example", "text_body": "x"}})
    assert code == 200, body
    ok, gone, bad = body["results"]
    assert ok["status"] == "queued"
    assert gone["status"] == "failed" and gone["code"] == smtp_reply.code
    assert f"{gone['code']} {gone['reply']}" == smtp_reply.text
    assert bad["status"] == "failed" and bad["code"] == 501
    assert (body["success_count"], body["failure_count"]) == (1, 2)
    assert [m["rcpt_to"] for m in wait_messages(rx, 1)] == [["ok@dest.example"]]


def test_thousands_of_recipients_in_one_request(injector, rx):
    d, port = injector()
    n = 300 if SANITIZED else 2000
    rcpts = [{"email": f"user{i}@dest.example", "substitutions": {"i": str(i)}}
             for i in range(n)]
    code, body = inject(port, {"envelope_sender": "b@sender.example", "recipients": rcpts,
                               "content": {"from": "n@sender.example", "subject": "n{{i}}",
                                           "text_body": "number {{i}}\n"}})
    assert code == 200 and body["success_count"] == n, body["results"][:3]
    assert [r["recipient"] for r in body["results"]] == [r["email"] for r in rcpts]
    got = wait_messages(rx, n, timeout=120)
    assert len(got) == n
    for m in got[:50]:
        i = m["rcpt_to"][0][4:].split("@")[0]
        assert f"number {i}\r\n" in m["data"]


@pytest.mark.parametrize("body, why", [
    (None, "not JSON"),
    ({"recipients": ["a@dest.example"], "content": "x"}, "envelope_sender"),
    ({"envelope_sender": "b@sender.example", "content": "x"}, "recipients"),
    ({"envelope_sender": "b@sender.example", "recipients": ["a@dest.example"]}, "content"),
    ({"envelope_sender": "b@sender.example", "recipients": ["a@dest.example"],
      "content": {"text_body": "x", "headers": {"X-A": "1\r\nBcc: evil@dest.example"}}},
     "X-A"),
    ({"envelope_sender": "b@sender.example",
      "recipients": [{"email": "a@dest.example", "substitutions": {"s": "x\nBcc: e@x.example"}}],
      "content": {"text_body": "x", "subject": "{{s}}"}}, "CR or LF"),
])
def test_bad_requests(injector, rx, body, why):
    d, port = injector()
    code, answer = inject(port, body, raw=b"{not json" if body is None else None)
    assert code == 400 and why in answer["error"], answer
    assert not rx.messages()


def test_token_required_when_configured(injector, rx):
    d, port = injector(token="s3cret")
    req = {"envelope_sender": "b@sender.example", "recipients": ["a@dest.example"],
           "content": {"from": "n@sender.example", "text_body": "x"}}
    code, answer = inject(port, req)
    assert code == 401 and answer["error"]
    code, answer = inject(port, req, token="s3cret")
    assert code == 200 and answer["success_count"] == 1
