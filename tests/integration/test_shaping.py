"""Shaping end to end (docs/shaping.md): a rules file of the test's own, receivers on loopback
that record when each message arrived and how many sessions were open at once.

Destinations are reached through routes (the receivers' addresses); the rules name them by
domain, so no DNS is needed.
"""

import signal
import subprocess
import time

import pytest

from conftest import SANITIZED, deadline, free_port, give, message, smtp, traversable, wait_for
from receiver import Receiver, Script

RX_IP = "127.0.0.10"
DEST = "shaped.example"
SENDER = "sender@app.example"


def rules_file(tmp_path, text):
    path = tmp_path / "shaping.conf"
    path.write_text(text)
    give(path)
    traversable(path)
    return path


def start(make_drover, tmp_path, rules, rx_port, control="", extra="", **delivery):
    d = {"retry": ["1s"], "shaping": str(rules_file(tmp_path, rules))}
    d.update(delivery)
    return make_drover(delivery=d, routes={DEST: [f"{RX_IP}:{rx_port}"]}, control=control,
                       extra=extra)


def send(port, count, rcpt=f"user@{DEST}"):
    with smtp(port) as s:
        for _ in range(count):
            assert s.mail(SENDER)[0] == 250
            assert s.rcpt(rcpt)[0] == 250
            code, text = s.data(message())
            assert code == 250, (code, text)


def adaptive_records(d):
    return [e for e in d.events() if e.get("type") == "AdaptiveAction"]


@pytest.mark.skipif(SANITIZED, reason="a minute of timing: measured on the release build; "
                    "the rate path runs under ASan in the other tests here")
def test_message_rate_holds_within_ten_percent_over_a_minute(make_drover, tmp_path):
    """300/min for the domain: over a minute of a backlog, arrivals stay within ±10 %."""
    rules = f'domain "{DEST}" {{\n  message_rate = "300/min"\n}}\n'
    with Receiver(hosts=(RX_IP,)) as rx:
        d = start(make_drover, tmp_path, rules, rx.port)
        send(d.port, 400)
        wait_for(lambda: len(rx.messages()) >= 5, deadline(20), interval=0.1,
                 what="deliveries start")
        t0 = time.time()
        time.sleep(60)
        window = [m for m in rx.messages() if t0 <= m["at"] < t0 + 60]
        print(f"{len(window)} messages in 60 s at 300/min")
        assert 270 <= len(window) <= 330


def test_concurrency_never_exceeds_its_limit(make_drover, tmp_path):
    rules = f'domain "{DEST}" {{\n  max_connections = 3\n  initial_connections = 3\n}}\n'
    with Receiver(Script(delays={"dot": 0.3}), hosts=(RX_IP,)) as rx:
        d = start(make_drover, tmp_path, rules, rx.port, max_connections=50,
                  max_messages_per_connection=5)
        send(d.port, 60)
        wait_for(lambda: len(rx.messages()) >= 60, deadline(60), interval=0.2,
                 what="60 deliveries")
        assert rx.server.max_active <= 3
        assert rx.server.max_active == 3  # and it was used


def test_ts01_deferral_suspends_then_delivery_resumes(make_drover, tmp_path):
    """A receiver answering 421 4.7.0 [TS01] triggers the suspension; no connection is made
    while it lasts; delivery resumes by itself after its duration, with start and end
    records."""
    rules = (
        f'domain "{DEST}" {{\n  max_connections = 1\n}}\n'
        'adaptive "ts01" {\n'
        f'  domain = "{DEST}"\n'
        '  code = "421"\n'
        '  text = "\\\\[TS01\\\\]"\n'
        '  trigger = "once"\n'
        '  action = "suspend-provider"\n'
        '  duration = "4s"\n'
        '}\n')
    script = Script(replies={"mail": "421 4.7.0 [TS01] Messages temporarily deferred"},
                    times={"mail": 1})
    with Receiver(script, hosts=(RX_IP,)) as rx:
        d = start(make_drover, tmp_path, rules, rx.port, control=f"127.0.0.1:{free_port()}")
        send(d.port, 3)
        start_rec = d.wait_events(lambda e: e.get("type") == "AdaptiveAction"
                                  and e.get("event") == "start", count=1,
                                  timeout=deadline(20))[0]
        assert start_rec["rule"] == "ts01" and start_rec["action"] == "suspend-provider"
        sessions_at_start = rx.server.sessions
        t_start = time.time()
        # The summary shows the suspension and the mail it holds.
        r = d.cli("queue", "summary", "--config", str(d.config_path))
        assert r.returncode == 0, r.stderr
        assert "1 adaptive action in force" in r.stdout, r.stdout
        assert "suspend-provider" in r.stdout and "rule ts01" in r.stdout
        # Nothing while suspended.
        time.sleep(2)
        assert rx.server.sessions == sessions_at_start
        assert rx.messages() == []
        wait_for(lambda: len(rx.messages()) >= 3, deadline(30), interval=0.1,
                 what="delivery after the suspension")
        resumed = min(m["at"] for m in rx.messages())
        assert resumed - t_start >= 3.0
        end = d.wait_events(lambda e: e.get("type") == "AdaptiveAction"
                            and e.get("event") == "end", count=1, timeout=deadline(10))[0]
        assert end["reason"] == "expired" and end["rule"] == "ts01"


def test_suspension_stops_every_connection_to_the_provider(make_drover, tmp_path):
    """Three connections are open when one of them gets [TS01]: the suspension is of the
    provider, so the other two stop after the message they carry, and nothing more goes
    until it ends."""
    rules = (
        f'domain "{DEST}" {{\n  max_connections = 3\n  initial_connections = 3\n}}\n'
        'adaptive "ts01" {\n'
        f'  domain = "{DEST}"\n'
        '  code = "421"\n'
        '  text = "\\\\[TS01\\\\]"\n'
        '  trigger = "once"\n'
        '  action = "suspend-provider"\n'
        '  duration = "5s"\n'
        '}\n')
    script = Script(replies={"mail": "421 4.7.0 [TS01] Messages temporarily deferred"},
                    times={"mail": 1}, delays={"dot": 0.3})
    with Receiver(script, hosts=(RX_IP,)) as rx:
        d = start(make_drover, tmp_path, rules, rx.port, max_messages_per_connection=100)
        # Enough that every connection would go on for seconds.
        send(d.port, 30)
        start_rec = d.wait_events(lambda e: e.get("type") == "AdaptiveAction"
                                  and e.get("event") == "start", count=1,
                                  timeout=deadline(20))[0]
        assert start_rec["action"] == "suspend-provider"
        t_start = time.time()
        wait_for(lambda: len(rx.messages()) >= 30, deadline(60), interval=0.1,
                 what="delivery after the suspension")
        # At most the message each connection had in flight (0.3 s at the receiver) went
        # after the suspension began, then nothing until it ended (5 s).
        during = [m for m in rx.messages() if t_start + 1.0 <= m["at"] < t_start + 4.0]
        assert during == [], [m["at"] - t_start for m in during]


def test_warmup_cap_holds(make_drover, tmp_path):
    """A source in warm-up sends today's cap and no more; the rest waits."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    rules = (f'warmup "new" {{\n  sources = {{ "fresh" }}\n  start = "{today}"\n'
             '  schedule = { 5, 10 }\n}\n')
    extra = ('source "fresh" { address = "127.0.0.2" ehlo = "fresh.drover.example" }\n'
             'pool "p" { source "fresh" { } }\n')
    with Receiver(hosts=(RX_IP,)) as rx:
        path = rules_file(tmp_path, rules)
        d = make_drover(delivery={"retry": ["1s"], "shaping": str(path), "pool": "p"},
                        routes={DEST: [f"{RX_IP}:{rx.port}"]}, extra=extra)
        send(d.port, 12)
        wait_for(lambda: len(rx.messages()) >= 5, deadline(20), interval=0.1,
                 what="today's five")
        time.sleep(3)
        assert len(rx.messages()) == 5
        assert {m["peer"] for m in rx.messages()} == {"127.0.0.2"}
        queued = d.queue_list()
        assert len(queued) == 7


def test_shaping_file_errors_name_file_and_line(drover_bin, tmp_path):
    rules = tmp_path / "bad-shaping.conf"
    rules.write_text('domain "x.example" {\n  message_rate = "300/mn"\n}\n')
    conf = tmp_path / "drover.conf"
    conf.write_text(f'delivery {{\n  shaping = "{rules}"\n}}\n')
    r = subprocess.run([drover_bin, "check-config", str(conf)], capture_output=True,
                       text=True, timeout=deadline(10))
    assert r.returncode != 0
    assert f"{rules}:2" in r.stderr, r.stderr


def test_sighup_reloads_the_rules_and_keeps_them_when_broken(make_drover, tmp_path):
    """A rate of 1/min holds mail back; a broken file on SIGHUP changes nothing (with its
    file:line in the log); a fixed one lifts the limit for the mail still queued."""
    slow = f'domain "{DEST}" {{\n  message_rate = "1/min"\n}}\n'

    def reload(rate, says):
        path.write_text(f'domain "{DEST}" {{\n  message_rate = "{rate}"\n}}\n')
        d.send_signal(signal.SIGHUP)
        wait_for(lambda: says in d.stderr_text(), deadline(10), what=says)
        return [ln for ln in d.stderr_text().splitlines() if says in ln][0]

    with Receiver(hosts=(RX_IP,)) as rx:
        d = start(make_drover, tmp_path, slow, rx.port)
        path = tmp_path / "shaping.conf"
        send(d.port, 4)
        wait_for(lambda: len(rx.messages()) >= 1, deadline(20), interval=0.1,
                 what="the first message")
        time.sleep(1)
        assert len(rx.messages()) == 1
        line = reload("fast", "reload refused")
        assert "delivery.shaping" in line and f"{path}:2" in line, line
        time.sleep(1)
        assert len(rx.messages()) == 1
        reload("100/s", "reload: configuration from")
        # Held mail asks the new rules at once.
        wait_for(lambda: len(rx.messages()) >= 4, deadline(20), interval=0.2,
                 what="the rest after the reload")
