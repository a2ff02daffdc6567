"""The OpenSPF RFC 7208 test suite through real DNS: every case of
tests/conformance/spf/rfc7208-tests.json is checked by `drover spf --dns 127.0.0.1@PORT`, the
real resolver (libunbound) asking dnsserver.py, which serves the case's zone on loopback.

The unit test test_auth_spf_conformance runs the same cases with the zones in memory; this run
proves the DNS half: TXT records of several strings, every MX and PTR record read from the
wire, CNAMEs, NXDOMAIN against NODATA, timeouts.

The zones are served as yaml2json.py normalised them, with two changes:

- A TXT record with no character-string at all (null.example.com's second record, which the
  suite itself calls illegal) is served as one empty string: unbound answers SERVFAIL to a
  zero-length TXT rdata, and the case is about SPF not crashing on it.
- TIMEOUT becomes dnsserver.py's "drop_missing": queries for the types the name has no
  records of are never answered, and the resolver's deadline (--timeout) turns them into
  temperror.

No zone name needs rewriting: the 2014.04 suite has none under the special-use names unbound
answers itself (.test, .invalid, .localhost, .onion, home.arpa); test_no_special_use_names
fails if a future suite adds some. The reverse zones of private and documentation addresses
(192.168.0.0/16, 2001:db8::/32, ...), which unbound would answer itself by default, reach the
server: the resolver hands them back to its forwarders (dns/resolver.c), so the PTR cases
(ptr-case-change, p-macro-ip4-valid, p-macro-multiple, bytes-bug) run through the wire too.
So does macro-mania-in-domain, whose target name holds spaces: a label may hold any octet.
Every case passes; none is skipped.
"""

import json
import subprocess
from pathlib import Path

import pytest

from conftest import SANITIZED, SANITIZER_MARKERS, deadline
from dnsserver import DNSServer

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "tests/conformance/spf/rfc7208-tests.json"

# The resolver's deadline per query: what a TIMEOUT case waits.
TIMEOUT_MS = 1500 * (5 if SANITIZED else 1)

# RFC 6761 names unbound answers itself (NXDOMAIN) without asking any forwarder.
SPECIAL_USE_TLDS = ("test", "invalid", "localhost", "onion", "home.arpa")


def octets(s):
    """A suite string (each character one octet) as bytes."""
    return s.encode("latin-1")


def load_suite():
    with open(SUITE) as f:
        return json.load(f)


def served_zone(zone):
    """The suite's normalised zone as a dnsserver.py zone."""
    records, drop_missing = {}, []
    for name, rr in zone.items():
        out = {}
        for rtype in ("A", "AAAA", "PTR"):
            if rr.get(rtype):
                out[rtype] = list(rr[rtype])
        if rr.get("MX"):
            out["MX"] = [[pref, host] for pref, host in rr["MX"]]
        if rr.get("TXT"):
            out["TXT"] = [[octets(s) for s in record] or [b""] for record in rr["TXT"]]
        if "CNAME" in rr:
            out["CNAME"] = rr["CNAME"]
        if rr.get("TIMEOUT"):
            drop_missing.append(name)
        if out:
            records[name] = out
    return {"ttl": 60, "negative_ttl": 60, "records": records, "drop_missing": drop_missing}


SUITE_DATA = load_suite()
CASES = [(i, sc, t) for i, sc in enumerate(SUITE_DATA["scenarios"]) for t in sc["tests"]]


@pytest.fixture(scope="module")
def drover_spf(drover_bin):
    """The drover binary, if it has the spf command (the lead wires spf_cli into main.c)."""
    r = subprocess.run([drover_bin, "spf", "--help"], capture_output=True, text=True,
                       timeout=deadline(10))
    if r.returncode != 0 or "drover spf" not in r.stdout:
        pytest.skip(f"{drover_bin} has no spf command yet")
    return drover_bin


@pytest.fixture(scope="module")
def dns():
    with DNSServer() as server:
        yield server


def test_no_special_use_names():
    for sc in SUITE_DATA["scenarios"]:
        for name in sc["zone"]:
            assert not any(name == t or name.endswith("." + t) for t in SPECIAL_USE_TLDS), \
                f"{name}: unbound answers this itself; rewrite it before serving"


def test_suite_is_complete():
    assert len(SUITE_DATA["scenarios"]) == 16
    assert len(CASES) == 203


@pytest.mark.parametrize("index,scenario,case", CASES,
                         ids=[f"{i:02d}-{t['name']}" for i, _, t in CASES])
def test_case(drover_spf, dns, index, scenario, case):
    zone = scenario["zone"]
    dns.set_zone(served_zone(zone))
    dns.clear_queries()
    cmd = [drover_spf, "spf", "--ip", case["host"], "--sender", octets(case["mailfrom"]),
           "--helo", octets(case["helo"]), "--scope", "mfrom", "--dns", dns.forwarder,
           "--timeout", str(TIMEOUT_MS)]
    r = subprocess.run(cmd, capture_output=True, timeout=deadline(30))
    stderr = r.stderr.decode(errors="replace")
    assert r.returncode == 0, stderr
    assert not any(m in stderr for m in SANITIZER_MARKERS), stderr
    lines = r.stdout.decode("latin-1").splitlines()
    result = lines[0]
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    problems = []
    if result not in case["result"]:
        problems.append(f"result {result}, want one of {case['result']}")
    want_exp = case.get("explanation")
    if want_exp is not None and result == "fail":
        got = fields.get("explanation")
        if want_exp == "DEFAULT":
            # ours: SPF_DEFAULT_EXPLANATION, "%{d} does not designate %{c} as permitted sender"
            if got is None or not got.endswith(" as permitted sender"):
                problems.append(f"explanation {got!r}, want the default one")
        elif got != want_exp:
            problems.append(f"explanation {got!r}, want {want_exp!r}")
    if not problems:
        return
    asked = {(n, t) for n, t, _ in dns.queries}
    pytest.fail(f"{case['name']}: {'; '.join(problems)}\n{r.stdout.decode('latin-1')}"
                f"queries: {sorted(asked)}")
