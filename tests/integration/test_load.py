"""Load smoke test with Postfix's smtp-source: every message accepted and queued."""

import os
import subprocess

import pytest

from conftest import SMTP_SOURCE, deadline


@pytest.mark.skipif(not os.access(SMTP_SOURCE, os.X_OK), reason="smtp-source (postfix) missing")
def test_smtp_source_2000_messages_16_sessions(drover):
    r = subprocess.run(
        [SMTP_SOURCE, "-s", "16", "-m", "2000", "-l", "4096", "-f", "s@bench.example",
         "-t", "r@dest.example", f"127.0.0.1:{drover.port}"],
        capture_output=True, text=True, timeout=deadline(120))
    assert r.returncode == 0, r.stdout + r.stderr
    queued = drover.queue_list()
    assert len(queued) == 2000
    assert {m["sender"] for m in queued} == {"s@bench.example"}
    assert all(m["size"] > 4096 for m in queued)
    receptions = drover.wait_events(lambda e: e.get("type") == "Reception", count=2000,
                                    timeout=deadline(30))
    assert {e["id"] for e in receptions} == {m["id"] for m in queued}


@pytest.mark.skipif(not os.access(SMTP_SOURCE, os.X_OK), reason="smtp-source (postfix) missing")
def test_smtp_source_reused_connections(drover):
    r = subprocess.run(
        [SMTP_SOURCE, "-d", "-s", "4", "-m", "400", "-r", "3", "-l", "1024",
         "-f", "s@bench.example", "-t", "r@dest.example", f"127.0.0.1:{drover.port}"],
        capture_output=True, text=True, timeout=deadline(120))
    assert r.returncode == 0, r.stdout + r.stderr
    queued = drover.queue_list()
    assert len(queued) == 400
    assert all(len(m["recipients"]) == 3 for m in queued)
