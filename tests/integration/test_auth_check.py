"""`drover auth check` (preflight) against a real DNS server on loopback: SPF, DKIM and DMARC
as a mailbox provider would find them, with the record to publish when something is wrong;
and the same check run by the server at start-up for its signing domains.

The --source addresses (192.0.2.0/24, 198.51.100.0/24) are only evaluated against SPF
records; nothing is ever sent to them.
"""

import re
import subprocess

import pytest

from conftest import deadline, wait_for
from dnsserver import DNSServer


def keygen(drover_bin, path, domain, selector, algorithm="ed25519"):
    out = subprocess.run([drover_bin, "dkim", "keygen", "--domain", domain, "--selector",
                          selector, "--algorithm", algorithm, "--key", str(path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return re.search(r"^\s*value: (.*)$", out, re.M).group(1)


@pytest.fixture
def world(tmp_path, drover_bin):
    """sender.example is set up right (SPF for 192.0.2.0/24, its key published, p=reject);
    stale.example publishes an old key; nodmarc.example has no policy; a config signs both
    with their keys, and the rest with a platform fallback key."""
    keys = {}
    records = {}
    for domain, sel in [("sender.example", "s1"), ("stale.example", "s1"),
                        ("nodmarc.example", "s1"), ("platform.example", "p1")]:
        path = tmp_path / f"{domain}.pem"
        keys[domain] = path
        records[f"{sel}._domainkey.{domain}"] = keygen(drover_bin, path, domain, sel)
    old = keygen(drover_bin, tmp_path / "old.pem", "stale.example", "s1")
    zone = {
        "sender.example": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
        "_dmarc.sender.example": {"TXT": ["v=DMARC1; p=reject; rua=mailto:d@sender.example"]},
        "mta.sender.example": {"A": ["192.0.2.25"]},
        "stale.example": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
        "s1._domainkey.stale.example": {"TXT": [old]},
        "_dmarc.stale.example": {"TXT": ["v=DMARC1; p=quarantine"]},
        "nodmarc.example": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
        "customer.example": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
        "_dmarc.customer.example": {"TXT": ["v=DMARC1; p=reject"]},
    }
    for name, rec in records.items():
        if not name.endswith("stale.example"):
            zone[name] = {"TXT": [rec]}
    dns = DNSServer({"records": zone, "ttl": 1, "negative_ttl": 1}).start()
    conf = tmp_path / "drover.conf"
    sections = [f'delivery {{\n  dns_forwarders = {{ "{dns.forwarder}" }}\n}}']
    for domain, sel in [("sender.example", "s1"), ("stale.example", "s1"),
                        ("nodmarc.example", "s1")]:
        sections.append(f'dkim_key "{domain}" {{\n  domain = "{domain}"\n  selector = "{sel}"\n'
                        f'  key = "{keys[domain]}"\n}}')
    sections.append(f'dkim_key "platform" {{\n  domain = "platform.example"\n  selector = "p1"\n'
                    f'  key = "{keys["platform.example"]}"\n  sign_for = {{ "*" }}\n'
                    f'  fallback = true\n}}')
    conf.write_text("\n".join(sections) + "\n")
    yield conf, dns
    dns.stop()


def check(drover_bin, conf, *args):
    r = subprocess.run([drover_bin, "auth", "check", "--config", str(conf), *args],
                       capture_output=True, text=True, timeout=60)
    findings = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^  (SPF|DKIM|DMARC)\s+(pass|warn|FAIL)\s+(.*)$", line)
        if m:
            findings.setdefault(m.group(1), []).append((m.group(2), m.group(3)))
    return r, findings


def test_a_domain_set_up_right_passes(drover_bin, world):
    conf, _ = world
    r, f = check(drover_bin, conf, "--from", "alice@sender.example", "--source", "192.0.2.7")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [v for v, _ in f["SPF"]] == ["pass"]
    assert [v for v, _ in f["DKIM"]] == ["pass"]
    assert [v for v, _ in f["DMARC"]] == ["pass"]
    assert "aligned by DKIM d=sender.example and SPF" in f["DMARC"][0][1]
    assert r.stdout.rstrip().endswith("pass: 0 failed, 0 warnings")


def test_source_by_name_and_unauthorized_source_gets_the_record_to_publish(drover_bin, world):
    conf, _ = world
    r, f = check(drover_bin, conf, "--from", "alice@sender.example", "--source",
                 "mta.sender.example")
    assert r.returncode == 0, r.stdout
    assert "sent from 192.0.2.25" in r.stdout
    r, f = check(drover_bin, conf, "--from", "alice@sender.example", "--source", "198.51.100.9")
    assert r.returncode == 1
    assert f["SPF"][0][0] == "FAIL"
    assert ('fix: change TXT sender.example to "v=spf1 ip4:198.51.100.9 ip4:192.0.2.0/24 -all"'
            in r.stdout), r.stdout
    # DKIM still aligns: DMARC passes.
    assert f["DMARC"][0][0] == "pass"


def test_stale_key_and_missing_policy_are_named_with_their_fix(drover_bin, world):
    conf, _ = world
    r, f = check(drover_bin, conf, "--from", "x@stale.example", "--source", "192.0.2.7")
    assert r.returncode == 1
    assert f["DKIM"][0][0] == "FAIL"
    assert "publishes a different key" in f["DKIM"][0][1]
    assert "fix: publish s1._domainkey.stale.example. IN TXT" in r.stdout
    r, f = check(drover_bin, conf, "--from", "x@nodmarc.example", "--source", "192.0.2.7")
    assert r.returncode == 1
    assert f["DKIM"][0][0] == "pass"
    assert f["DMARC"][0][0] == "FAIL"
    assert 'fix: publish TXT _dmarc.nodmarc.example "v=DMARC1; p=none;' in r.stdout


def test_only_the_platform_fallback_key_does_not_align(drover_bin, world):
    conf, _ = world
    # With an unauthorized source, nothing aligns: the platform's d= is another domain.
    r, f = check(drover_bin, conf, "--from", "x@customer.example", "--source", "198.51.100.9")
    assert r.returncode == 1
    assert [v for v, _ in f["DKIM"]] == ["pass"]   # the platform key is published
    assert "key platform" in f["DKIM"][0][1]
    assert f["DMARC"][0][0] == "FAIL"
    assert "whose domain is customer.example" in r.stdout


def test_no_source_checks_the_record_only_and_bad_input_is_a_usage_error(drover_bin, world):
    conf, _ = world
    r, f = check(drover_bin, conf, "--from", "sender.example")
    assert f["SPF"][0][0] == "warn"
    assert "v=spf1 ip4:192.0.2.0/24 -all" in f["SPF"][0][1]
    assert r.returncode == 0
    r, _ = check(drover_bin, conf, "--from", "not a domain")
    assert r.returncode == 2
    assert "not a mail address or domain" in r.stderr
    r, _ = check(drover_bin, conf)
    assert r.returncode == 2 and "usage" in r.stderr


def test_server_checks_its_signing_domains_at_start(make_drover, world):
    conf, dns = world
    # Reuse the world's dkim_key sections; the fixture's own delivery section carries the DNS.
    text = conf.read_text()
    keys_only = text[text.index("dkim_key"):]
    d = make_drover(delivery={"dns_forwarders": [dns.forwarder], "enabled": False},
                    extra=keys_only)
    # One line per domain, in no promised order: wait for all three.
    lines = ("preflight stale.example: DKIM:", "preflight nodmarc.example: DMARC:",
             "preflight sender.example: DKIM")
    wait_for(lambda: all(x in d.stderr_text() for x in lines), deadline(20),
             what="the start-up preflight lines")
    err = d.stderr_text()
    assert "publishes a different key" in err
    assert "preflight nodmarc.example: DMARC: no DMARC policy" in err
    assert "preflight sender.example: DKIM pass" in err
