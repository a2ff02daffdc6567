"""The metrics an operator graphs (docs/operations.md, "Metrics"), after real work: mail
received on a listener that checks SPF, signed with a DKIM key, committed to the spool,
looked up in a real DNS server (MX, then the exchanger's addresses), held by an adaptive
suspension, paced by a message rate, and delivered to a receiver on loopback.

Every scrape is parsed by a strict reader of the Prometheus text format 0.0.4 (below):
every line a # HELP or # TYPE comment or a sample; valid names; HELP then TYPE once per
family, before its samples; no series twice; histograms with ascending bounds, cumulative
buckets and +Inf equal to _count.
"""

import json
import math
import re
import socket
import subprocess
import urllib.request

import pytest

from conftest import deadline, free_port, give, message, smtp, traversable, wait_for
from dnsserver import DNSServer
from receiver import Receiver, Script

SENDER = "alice@sender.example"
DEST = "dest.example"
DEST_IP = "127.0.0.2"
MESSAGES = 5

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
SAMPLE_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


# ---------------------------------------------------------------- a strict exposition reader

def parse_labels(text):
    """'{a="x",b="y\\"z"}' -> (("a", "x"), ("b", 'y"z')), strictly."""
    assert text[0] == "{" and text[-1] == "}", text
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        m = LABEL_NAME_RE.match(body, i)
        assert m, f"bad label name at {body[i:]!r}"
        name, i = m.group(0), m.end()
        assert body[i:i + 2] == '="', f"expected =\" after {name} in {text!r}"
        i += 2
        value = []
        while body[i] != '"':
            if body[i] == "\\":
                esc = body[i + 1]
                assert esc in '\\"n', f"bad escape \\{esc} in {text!r}"
                value.append("\n" if esc == "n" else esc)
                i += 2
            else:
                value.append(body[i])
                i += 1
        i += 1
        assert name not in dict(out), f"label {name} twice in {text!r}"
        out.append((name, "".join(value)))
        if i < len(body):
            assert body[i] == ",", f"expected , at {body[i:]!r}"
            i += 1
    return tuple(out)


def parse_float(s):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf"))
    return float(s)


class Exposition:
    """The families of one scrape: .types[name], .samples[(sample name, labels)] = value."""

    def __init__(self, text):
        self.types, self.helps, self.samples = {}, {}, {}
        assert text.endswith("\n"), "the text ends with a newline"
        current = None
        for line in text[:-1].split("\n"):
            assert line, "no empty line"
            if line.startswith("#"):
                parts = line.split(" ", 3)
                assert parts[0] == "#" and parts[1] in ("HELP", "TYPE"), line
                name = parts[2]
                assert NAME_RE.match(name), f"bad name {name!r}"
                if parts[1] == "HELP":
                    assert name not in self.helps, f"HELP twice for {name}"
                    assert len(parts) == 4 and parts[3], f"empty HELP for {name}"
                    self.helps[name] = parts[3]
                else:
                    assert name not in self.types, f"TYPE twice for {name}"
                    assert name in self.helps, f"TYPE before HELP for {name}"
                    assert parts[3] in TYPES, line
                    self.types[name] = parts[3]
                    current = name
                continue
            m = SAMPLE_RE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, labels, value = m.group(1), parse_labels(m.group(2) or "{}") if m.group(2) \
                else (), parse_float(m.group(3))
            assert current is not None and self.family_of(name) == current, \
                f"{name} outside its family's block (in {current})"
            key = (name, labels)
            assert key not in self.samples, f"series twice: {line!r}"
            self.samples[key] = value
        for name, type_ in self.types.items():
            if type_ == "histogram":
                self._check_histogram(name)

    def family_of(self, name):
        if name in self.types:
            return name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and self.types.get(base) == "histogram":
                return base
        return None

    def _check_histogram(self, name):
        series = {}
        for (n, labels), v in self.samples.items():
            if n == name + "_bucket":
                d = dict(labels)
                le = d.pop("le")
                series.setdefault(tuple(sorted(d.items())), []).append((parse_float(le), v))
        assert series, f"histogram {name} has no buckets"
        for labels, buckets in series.items():
            bounds = [b for b, _ in buckets]
            assert bounds == sorted(bounds) and bounds[-1] == math.inf, (name, labels)
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), f"{name}{labels}: buckets not cumulative"
            count = self.get(name + "_count", **dict(labels))
            assert counts[-1] == count, f"{name}{labels}: +Inf {counts[-1]} != count {count}"
            assert self.get(name + "_sum", **dict(labels)) >= 0

    def get(self, name, **labels):
        """The value of one series; its labels in any order (le included for a bucket)."""
        want = sorted(labels.items())
        for (n, ls), v in self.samples.items():
            if n == name and sorted(ls) == want:
                return v
        raise KeyError(f"{name}{labels}")

    def series(self, name):
        return {ls: v for (n, ls), v in self.samples.items() if n == name}


def test_strict_reader_refuses_what_prometheus_would():
    """The reader itself: each of these is wrong in one way."""
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
    Exposition(good)
    for bad in (
            "a_total 1\n",                                          # no TYPE
            "# TYPE a_total counter\na_total 1\n",                  # TYPE before HELP
            good + "a_total{x=\"1\"} 3\n",                          # series twice
            good.replace("{x=\"1\"}", "{x=1}"),                     # unquoted value
            good.replace("a_total{", "1a{"),                        # bad name
            good + "# HELP b B.\n# TYPE b gauge\na_total{x=\"2\"} 1\n",  # outside its block
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
            "h_sum 1\nh_count 1\n",                                 # not cumulative
    ):
        with pytest.raises(AssertionError):
            Exposition(bad)


# ---------------------------------------------------------------- the server and its world

def scrape(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=deadline(10)) as r:
        assert r.status == 200
        return r.read().decode()


# One connection at a time: the one that meets [TS01] is the only one, so that nothing is
# delivered during the suspension by a second connection opened just before it.
RULES = (
    f'domain "{DEST}" {{\n  message_rate = "10/s"\n  max_connections = 1\n}}\n'
    'adaptive "ts01" {\n'
    f'  domain = "{DEST}"\n'
    '  code = "421"\n'
    '  text = "\\\\[TS01\\\\]"\n'
    '  trigger = "once"\n'
    '  action = "suspend-provider"\n'
    '  duration = "4s"\n'
    '}\n')

FAMILIES = {
    "drover_messages_received_total": "counter",
    "drover_delivered_total": "counter",
    "drover_deferred_total": "counter",
    "drover_bounces_total": "counter",
    "drover_queue_items": "gauge",
    "drover_queue_state_items": "gauge",
    "drover_queue_site_items": "gauge",
    "drover_queue_destinations": "gauge",
    "drover_sites_held": "gauge",
    "drover_shaping_actions_active": "gauge",
    "drover_throttle_waits_total": "counter",
    "drover_smtp_sessions_open": "gauge",
    "drover_smtp_sessions_total": "counter",
    "drover_smtp_connections_refused_total": "counter",
    "drover_connections_out_total": "counter",
    "drover_connections_out_open": "gauge",
    "drover_dns_query_seconds": "histogram",
    "drover_spool_commit_seconds": "histogram",
    "drover_spool_commit_batch_size": "histogram",
    "drover_dkim_sign_seconds": "histogram",
    "drover_dkim_sign_final_seconds": "histogram",
}


@pytest.fixture
def world(make_drover, drover_bin, tmp_path):
    zone = {
        DEST: {"MX": [[10, f"mx1.{DEST}"]]},
        f"mx1.{DEST}": {"A": [DEST_IP]},
        "sender.example": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"]},
    }
    dns = DNSServer({"records": zone, "ttl": 1, "negative_ttl": 1}).start()
    # The first MAIL is answered [TS01]: the provider is suspended for 4 s.
    script = Script(replies={"mail": "421 4.7.0 [TS01] Messages temporarily deferred"},
                    times={"mail": 1})
    rx = Receiver(script, hosts=(DEST_IP,), port=free_port()).start()
    key = tmp_path / "example.org.pem"
    subprocess.run([drover_bin, "dkim", "keygen", "--domain", "example.org", "--selector",
                    "s1", "--algorithm", "ed25519", "--key", str(key)], capture_output=True,
                   timeout=deadline(60), check=True)
    rules = tmp_path / "shaping.conf"
    rules.write_text(RULES)
    for p in (key, rules):
        give(p)
        traversable(p)
    control = free_port()
    d = make_drover(
        control=f"127.0.0.1:{control}",
        delivery={"port": rx.port, "dns_forwarders": [dns.forwarder], "retry": ["1s"],
                  "shaping": str(rules)},
        listener={"verify": ["spf"]},
        smtp={"max_sessions_per_ip": 3},
        extra=f'dkim_key "org" {{\n  domain = "example.org"\n  selector = "s1"\n'
              f'  key = "{key}"\n}}\n')
    yield d, control, rx
    rx.stop()
    dns.stop()


def test_every_family_is_there_before_any_work(world):
    d, control, _ = world
    x = Exposition(scrape(control))
    for name, type_ in FAMILIES.items():
        assert x.types.get(name) == type_, name
    assert x.get("drover_messages_received_total") == 0
    assert x.get("drover_spool_commit_seconds_count") == 0
    assert x.get("drover_dns_query_seconds_count", user="delivery", type="MX") == 0
    assert x.get("drover_dns_query_seconds_count", user="verify", type="TXT") == 0
    assert x.get("drover_shaping_actions_active", action="suspend-provider") == 0
    assert x.get("drover_smtp_connections_refused_total", limit="max_sessions_per_ip") == 0
    # The JSON status has the same figures.
    status = json.loads(scrape(control, "/api/v1/status"))
    assert status["messages_received_total"] == 0
    assert status["spool_commit_seconds"]["count"] == 0
    assert {(e["user"], e["type"]) for e in status["dns_query_seconds"]} >= {
        ("delivery", "MX"), ("delivery", "A"), ("verify", "TXT")}


def test_metrics_after_real_work(world):
    d, control, rx = world
    with smtp(d.port) as s:
        for _ in range(MESSAGES):
            s.sendmail(SENDER, [f"user@{DEST}"], message())

    # The [TS01] reply suspends the provider: the queue holds the five items at the site,
    # lanes and the site are held, and the action shows while it lasts.
    d.wait_events(lambda e: e.get("type") == "AdaptiveAction" and e.get("event") == "start",
                  timeout=deadline(20))

    def suspended():
        x = Exposition(scrape(control))
        if not x.series("drover_queue_site_items"):
            return None  # the engine's snapshot (once a second) has not caught up yet
        return (x.get("drover_shaping_actions_active", action="suspend-provider") == 1
                and x.get("drover_sites_held") >= 1
                and x.get("drover_queue_destinations", state="held") >= 1
                and x.get("drover_queue_site_items", stream="default", site=DEST) == MESSAGES
                and x) or None
    x = wait_for(suspended, deadline(4), interval=0.2, what="the suspension in the metrics")
    assert sum(x.series("drover_queue_state_items").values()) == MESSAGES

    # Then delivery resumes by itself, paced by the message rate.
    wait_for(lambda: len(rx.messages()) >= MESSAGES, deadline(30), interval=0.2,
             what="every message delivered")

    def settled():
        x = Exposition(scrape(control))
        done = (x.get("drover_delivered_total") == MESSAGES
                and x.get("drover_queue_items") == 0
                and sum(x.series("drover_queue_state_items").values()) == 0
                and x.get("drover_shaping_actions_active", action="suspend-provider") == 0
                and x.get("drover_spool_commit_batch_size_count")
                == x.get("drover_spool_commits_total"))
        return x if done else None
    x = wait_for(settled, deadline(15), interval=0.2, what="the metrics to settle")

    # Exact where the work is known.
    assert x.get("drover_messages_received_total") == MESSAGES
    assert x.get("drover_spool_commit_seconds_count") == MESSAGES  # no DSN, no notice
    assert x.get("drover_dkim_sign_seconds_count") == MESSAGES
    assert x.get("drover_dkim_sign_final_seconds_count") == MESSAGES
    assert x.get("drover_deferred_total") >= 1
    assert x.series("drover_queue_site_items") == {}
    # Sensible where it is measured.
    assert 0 < x.get("drover_spool_commit_seconds_sum") < MESSAGES * 10
    assert x.get("drover_spool_commit_batch_size_sum") >= x.get("drover_spool_commits_total")
    assert x.get("drover_dkim_sign_final_seconds_sum") <= x.get("drover_dkim_sign_seconds_sum")
    assert x.get("drover_dkim_sign_seconds_sum") > 0
    assert x.get("drover_dns_query_seconds_count", user="delivery", type="MX") >= 1
    assert x.get("drover_dns_query_seconds_count", user="delivery", type="A") >= 1
    assert x.get("drover_dns_query_seconds_count", user="verify", type="TXT") >= 1
    assert x.get("drover_dns_query_seconds_sum", user="delivery", type="MX") < 10
    assert x.get("drover_throttle_waits_total", kind="message") >= 1
    assert x.get("drover_connections_out_total") >= 2
    assert x.get("drover_connections_out_ok_total") >= 1
    assert x.get("drover_smtp_sessions_total") >= 1

    # Over smtp.max_sessions_per_ip (3): the fourth connection is refused and counted.
    held = [socket.create_connection(("127.0.0.1", d.port), timeout=deadline(10))
            for _ in range(3)]
    try:
        for c in held:
            assert c.recv(512).startswith(b"220")
        with socket.create_connection(("127.0.0.1", d.port), timeout=deadline(10)) as c:
            assert c.recv(512).startswith(b"421")
        x = Exposition(scrape(control))
        assert x.get("drover_smtp_connections_refused_total", limit="max_sessions_per_ip") == 1
        assert x.get("drover_smtp_connections_refused_total", limit="max_sessions") == 0
        assert x.get("drover_smtp_sessions_open") == 3
    finally:
        for c in held:
            c.close()
