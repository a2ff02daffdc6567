"""The DSNs Drover composes, read back by Python's email package through dsncheck.

The unit test binary test_bounce_dsn writes sample DSNs (built from fixed envelopes, so the
expectations below are exact) into $DROVER_DSN_SAMPLES; this test runs it from the build
directory, $DROVER_BUILD_DIR or else the directory of $DROVER_BIN, and is skipped when
neither holds it:

    DROVER_BUILD_DIR=build/release /usr/bin/python3 -m pytest -q tests/integration/test_dsn_format.py
"""

import os
import subprocess
from pathlib import Path

import pytest

from dsncheck import DsnError, parse_dsn

SAMPLES = [
    "failed-full", "failed-hdrs", "failed-large", "delayed", "delivered", "smtputf8-full",
    "smtputf8-hdrs", "postmaster", "long-diagnostic", "mixed",
]


def _build_dir():
    if os.environ.get("DROVER_BUILD_DIR"):
        return Path(os.environ["DROVER_BUILD_DIR"])
    if os.environ.get("DROVER_BIN"):
        return Path(os.environ["DROVER_BIN"]).resolve().parent
    return None


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    build = _build_dir()
    binary = build / "test_bounce_dsn" if build else None
    if binary is None or not os.access(binary, os.X_OK):
        pytest.skip("no test_bounce_dsn: set DROVER_BUILD_DIR (or DROVER_BIN) to a build")
    out = tmp_path_factory.mktemp("dsn")
    env = dict(os.environ, DROVER_DSN_SAMPLES=str(out))
    run = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    found = {p.stem: p.read_bytes() for p in out.glob("*.eml")}
    assert sorted(found) == sorted(SAMPLES)
    return found


@pytest.fixture(scope="module")
def dsn(samples):
    return {name: parse_dsn(raw) for name, raw in samples.items()}


def test_every_sample_is_a_well_formed_report(dsn):
    for name, d in dsn.items():
        assert d["per_message"]["reporting-mta"] == "dns; mta.example.net", name
        assert d["headers"]["auto-submitted"] == "auto-replied", name
        assert d["headers"]["from"] == "Mail Delivery System <MAILER-DAEMON@mta.example.net>"
        assert d["per_message"]["arrival-date"] == "Sat, 29 Nov 2025 07:06:40 +0000", name


def test_a_failure_returns_the_whole_message_with_envid_and_orcpt(dsn):
    d = dsn["failed-full"]
    assert d["headers"]["to"] == "alice@example.com"
    assert d["headers"]["subject"] == "Undelivered Mail Returned to Sender"
    assert d["report_type"] == "delivery-status" and not d["global"]
    assert d["per_message"]["original-envelope-id"] == "QQ+314159"  # xtext-decoded
    bob, carol = d["recipients"]
    assert bob["original-recipient"] == "rfc822; Bob+shop@example.org"
    assert bob["final-recipient"] == "rfc822; bob@example.org"
    assert (bob["action"], bob["status"]) == ("failed", "5.1.1")
    assert bob["remote-mta"] == "dns; mx1.example.org"
    assert bob["diagnostic-code"] == "smtp; 550 5.1.1 <bob@example.org>: user unknown"
    assert "last-attempt-date" in bob and "will-retry-until" not in bob
    assert "original-recipient" not in carol  # no ORCPT given: none (RFC 3461 §6.3(d))
    assert carol["final_address"] == "carol@example.org" and carol["status"] == "5.2.1"
    assert d["returned"] == "message" and d["returned_type"] == "message/rfc822"
    assert d["original_headers"]["subject"] == "Your receipt"
    assert "Thank you for your order." in d["original_body"]
    assert "<bob@example.org>: delivery failed (5.1.1)." in d["text"]
    assert "The original message is attached." in d["text"]


def test_ret_hdrs_returns_headers_only(dsn):
    d = dsn["failed-hdrs"]
    assert d["returned"] == "headers" and d["returned_type"] == "text/rfc822-headers"
    assert d["original_headers"]["message-id"] == "<r-1@example.com>"
    assert d["original_body"] is None
    assert "RET=HDRS" in d["text"]


def test_a_message_over_the_limit_returns_headers_and_says_so(dsn):
    d = dsn["failed-large"]
    assert d["returned_type"] == "text/rfc822-headers"
    assert "larger than the 64 octets" in " ".join(d["text"].split())


def test_delay_notice(dsn):
    d = dsn["delayed"]
    assert d["headers"]["subject"] == "Delayed Mail (still being retried)"
    assert "original-envelope-id" not in d["per_message"]
    (carol,) = d["recipients"]
    assert (carol["action"], carol["status"]) == ("delayed", "4.4.1")
    assert carol["will-retry-until"] == "Thu, 4 Dec 2025 07:06:40 +0000"
    assert carol["diagnostic-code"] == "X-Drover; connect to mx2.example.org: timed out"
    assert d["returned_type"] == "text/rfc822-headers"  # never the body in a delay notice


def test_success_report(dsn):
    d = dsn["delivered"]
    assert d["headers"]["subject"] == "Successful Mail Delivery Report"
    (bob,) = d["recipients"]
    assert (bob["action"], bob["status"]) == ("delivered", "2.0.0")
    assert d["returned_type"] == "text/rfc822-headers"


def test_smtputf8_mail_gets_the_rfc6533_types(dsn):
    d = dsn["smtputf8-full"]
    assert d["global"] and d["report_type"] == "global-delivery-status"
    assert d["headers"]["to"] == "álvaro@example.com"
    (r,) = d["recipients"]
    assert (r["final_type"], r["final_address"]) == ("utf-8", "usuário@exemplo.br")
    assert r["original-recipient"] == "utf-8; usu\\x{E1}rio@exemplo.br"
    assert r["diagnostic-code"] == "smtp; 550 5.1.1 usuário desconhecido"
    assert d["returned_type"] == "message/global"
    assert "usuário@exemplo.br" in d["text"]
    h = dsn["smtputf8-hdrs"]
    assert h["global"] and h["returned_type"] == "message/global-headers"


def test_a_bounce_that_bounces_goes_to_the_postmaster(dsn):
    d = dsn["postmaster"]
    assert d["headers"]["to"] == "postmaster@mta.example.net"
    assert d["headers"]["subject"] == "Postmaster Notice: Undelivered Mail"
    assert "postmaster" in d["text"]


def test_a_long_diagnostic_is_folded_and_cut(dsn, samples):
    d = dsn["long-diagnostic"]
    diag = d["recipients"][0]["diagnostic-code"]
    assert diag.startswith("smtp; abcdefghij") and diag.endswith("...")
    assert max(len(line) for line in samples["long-diagnostic"].split(b"\r\n")) <= 998


def test_a_mixed_report_lists_each_recipient_with_its_action(dsn):
    d = dsn["mixed"]
    assert [r["action"] for r in d["recipients"]] == ["failed", "delayed"]
    assert "will-retry-until" in d["recipients"][1]
    assert d["headers"]["subject"] == "Undelivered Mail Returned to Sender"


def test_the_checker_refuses_broken_reports(samples):
    raw = samples["failed-full"]
    for broken, what in [
        (raw.replace(b"Reporting-MTA: dns; mta.example.net\r\n", b""), "Reporting-MTA"),
        (raw.replace(b"Action: failed", b"Action: bounced", 1), "Action"),
        (raw.replace(b"Status: 5.1.1", b"Status: 5.1", 1), "Status"),
        (raw.replace(b"report-type=delivery-status", b"report-type=disposition"), "report-type"),
        (raw.replace(b"\r\n", b"\n"), "CR"),
        (raw.replace(b"Auto-Submitted: auto-replied\r\n", b""), "Auto-Submitted"),
    ]:
        with pytest.raises(DsnError, match=what):
            parse_dsn(broken)
