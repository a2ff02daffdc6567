"""Drover's DKIM checked against an independent implementation: dkimpy (Debian's python3-dkim).

Both directions, with the keys served by dkimpy's dnsfunc hook from a table (no DNS server
needed; tests/unit/test_auth_dkim_dns.c covers the lookups through a real one):

- every message the unit test binary test_auth_dkim_interop signs (DROVER_DKIM_SAMPLES=dir:
  RSA 1024/2048/4096 and Ed25519, the four canonicalizations, 8-bit and UTF-8 bodies, long
  and folded headers, empty bodies, no body, bodies without a final CRLF, repeated fields,
  four signatures on one message) verifies with dkimpy, every signature of it;
- messages dkimpy signs with the same keys (and some it signs, then someone tampers with)
  get the results expected from Drover's verifier (DROVER_DKIM_VERIFY=dir).

The binary is found in $DROVER_BUILD_DIR or else the directory of $DROVER_BIN; the test is
skipped when neither holds it:

    DROVER_BUILD_DIR=build/release /usr/bin/python3 -m pytest -q tests/integration/test_dkim_dkimpy.py
"""

import base64
import os
import subprocess
from pathlib import Path

import pytest

dkim = pytest.importorskip("dkim")

KEYS = ["rsa1024", "rsa2048", "rsa4096", "ed25519"]
CANONS = ["simple-simple", "simple-relaxed", "relaxed-simple", "relaxed-relaxed"]
MESSAGES = ["plain", "8bit", "utf8", "long-folded", "empty-body", "no-body", "no-final-crlf",
            "repeated", "whitespace", "dots"]


def _build_dir():
    if os.environ.get("DROVER_BUILD_DIR"):
        return Path(os.environ["DROVER_BUILD_DIR"])
    if os.environ.get("DROVER_BIN"):
        return Path(os.environ["DROVER_BIN"]).resolve().parent
    return None


@pytest.fixture(scope="module")
def binary():
    build = _build_dir()
    path = build / "test_auth_dkim_interop" if build else None
    if path is None or not os.access(path, os.X_OK):
        pytest.skip("no test_auth_dkim_interop: set DROVER_BUILD_DIR (or DROVER_BIN) to a build")
    return path


def run(binary, **env):
    r = subprocess.run([str(binary)], env=dict(os.environ, **env), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def read_keys(path):
    keys = {}
    for line in path.read_text().splitlines():
        name, record = line.split("\t", 1)
        keys[name.lower()] = record.encode()
    return keys


def dnsfunc_for(keys):
    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return keys.get(name.rstrip(".").lower())
    return dnsfunc


@pytest.fixture(scope="module")
def samples(binary, tmp_path_factory):
    out = tmp_path_factory.mktemp("drover-signed")
    run(binary, DROVER_DKIM_SAMPLES=str(out))
    return out, read_keys(out / "keys.txt"), {p.stem: p.read_bytes() for p in out.glob("*.eml")}


def signatures(msg):
    return sum(1 for line in msg.split(b"\r\n") if line.lower().startswith(b"dkim-signature:"))


def test_samples_cover_what_the_issue_asks(samples):
    _, keys, msgs = samples
    expected = {f"{m}-{k}-{c}" for m in MESSAGES for k in KEYS for c in CANONS}
    expected |= {f"multi-{m}" for m in MESSAGES}
    assert set(msgs) == expected
    assert len(keys) == 8  # four keys, two domains
    assert keys["ed25519._domainkey.example.com"].startswith(b"v=DKIM1; k=ed25519; p=")
    assert all(signatures(msgs[f"multi-{m}"]) == 4 for m in MESSAGES)
    # The inputs are what they claim to be.
    assert not msgs["no-final-crlf-rsa2048-simple-simple"].endswith(b"\r\n")
    assert b"\r\n\r\n" not in msgs["no-body-ed25519-relaxed-relaxed"]
    assert msgs["empty-body-ed25519-simple-simple"].endswith(b"\r\n\r\n")
    assert b"\xff" in msgs["8bit-rsa1024-relaxed-simple"]
    assert "Grüße".encode() in msgs["utf8-rsa4096-simple-relaxed"]


def test_every_drover_signature_verifies_with_dkimpy(samples):
    _, keys, msgs = samples
    dnsfunc = dnsfunc_for(keys)
    failed = []
    for name, msg in sorted(msgs.items()):
        d = dkim.DKIM(msg, minkey=1024)
        for idx in range(signatures(msg)):
            if not d.verify(idx=idx, dnsfunc=dnsfunc):
                failed.append(f"{name}#{idx}")
    assert failed == []


def test_dkimpy_notices_tampering_with_drover_signatures(samples):
    _, keys, msgs = samples
    dnsfunc = dnsfunc_for(keys)
    msg = msgs["plain-rsa2048-relaxed-relaxed"]
    assert dkim.verify(msg, dnsfunc=dnsfunc)
    assert not dkim.verify(msg.replace(b"Thank you", b"Thank You"), dnsfunc=dnsfunc)
    # From is over-signed: a second one cannot be slipped in.
    assert not dkim.verify(b"From: mallory@attacker.example\r\n" + msg, dnsfunc=dnsfunc)


# ---- The other way: dkimpy signs, Drover verifies ----

BODIES = {
    "plain": b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hi\r\n"
             b"Date: Sat, 29 Nov 2025 07:06:40 +0000\r\nMessage-ID: <p-1@example.com>\r\n\r\n"
             b"Hello Bob.\r\n",
    "8bit": b"From: shop@example.com\r\nSubject: Facture\r\n\r\nMontant : 42 \xa4\r\n\xff\xfe\r\n",
    "utf8": "From: zürich@example.com\r\nSubject: Grüße — 你好\r\n\r\nGrüße aus Zürich  \t\r\n"
            .encode(),
    "long-folded": b"From: news@example.com\r\nTo: a@example.org,\r\n b@example.org,\r\n"
                   b"\tc@example.org\r\nSubject: a subject long enough to need folding, so\r\n"
                   b"  folded   it is\t\r\n\r\nbody\r\n",
    "empty-body": b"From: alice@example.com\r\nSubject: empty\r\n\r\n",
    "no-final-crlf": b"From: alice@example.com\r\nSubject: cut\r\n\r\nno end",
    "repeated": b"Received: from b by c\r\nReceived: from a by b\r\nFrom: alice@example.com\r\n"
                b"To: one@example.org\r\nTo: two@example.org\r\nTo: three@example.org\r\n"
                b"Subject: many\r\n\r\nbody\r\n",
    "whitespace": b"From: alice@example.com\r\nSubject:   x  \r\n\r\n  a  \r\n\t\r\n\r\n \r\n",
}


def private_key(samples_dir, name):
    pem = (samples_dir / "keys" / f"{name}.pem").read_bytes()
    if name != "ed25519":
        return pem  # dkimpy reads PKCS#8 PEM for RSA
    # dkimpy wants the raw Ed25519 seed in base64: the last 32 octets of the PKCS#8 DER.
    der = base64.b64decode(b"".join(l for l in pem.splitlines() if not l.startswith(b"-----")))
    return base64.b64encode(der[-32:])


def sign(samples_dir, msg, key, canon="relaxed/relaxed", domain=b"example.com", **kw):
    algo = b"ed25519-sha256" if key == "ed25519" else b"rsa-sha256"
    return dkim.sign(msg, key.encode(), domain, private_key(samples_dir, key),
                     canonicalize=tuple(canon.encode().split(b"/")),
                     signature_algorithm=algo, **kw)


@pytest.fixture(scope="module")
def dkimpy_results(samples, binary, tmp_path_factory):
    samples_dir, keys, _ = samples
    out = tmp_path_factory.mktemp("dkimpy-signed")
    expect = {}

    def write(name, msg, results):
        (out / f"{name}.eml").write_bytes(msg)
        expect[f"{name}.eml"] = results

    for body_name, msg in BODIES.items():
        for key in KEYS:
            for canon in ("simple/simple", "simple/relaxed", "relaxed/simple",
                          "relaxed/relaxed"):
                sig = sign(samples_dir, msg, key, canon)
                write(f"{body_name}-{key}-{canon.replace('/', '-')}", sig + msg, ["pass"])

    msg = BODIES["plain"]
    # Two signatures, by two domains.
    sigs = sign(samples_dir, msg, "rsa2048") + sign(samples_dir, msg, "ed25519", "simple/simple",
                                                    domain=b"platform.example")
    write("multi", sigs + msg, ["pass", "pass"])
    # l=: what is appended after signing is not covered, and still passes.
    sig = sign(samples_dir, msg, "ed25519", length=True)
    write("length", sig + msg + b"-- \r\nappended by a list\r\n", ["pass"])
    # Repeated fields, each instance signed (dkimpy lists a name once per instance).
    rep = BODIES["repeated"]
    sig = sign(samples_dir, rep, "rsa2048", "simple/simple",
               include_headers=[b"from", b"to", b"to", b"to", b"subject"])
    write("repeated-listed", sig + rep, ["pass"])
    write("repeated-tampered", sig + rep.replace(b"To: two", b"To: TWO"), ["fail"])
    # Tampering.
    sig = sign(samples_dir, msg, "rsa2048")
    write("tampered-body", sig + msg.replace(b"Hello", b"Hullo"), ["fail"])
    write("tampered-header", sig + msg.replace(b"Subject: hi", b"Subject: HI"), ["fail"])
    sig = sign(samples_dir, msg, "ed25519", domain=b"unknown.example")
    write("no-key", sig + msg, ["permerror"])
    write("unsigned", msg, ["none"])

    (out / "keys.txt").write_bytes((samples_dir / "keys.txt").read_bytes())
    run(binary, DROVER_DKIM_VERIFY=str(out))
    got = {}
    for line in (out / "results.txt").read_text().splitlines():
        name, _idx, result, reason = line.split("\t")
        got.setdefault(name, []).append((result, reason))
    return expect, got


def test_dkimpy_signatures_verify_with_drover(dkimpy_results):
    expect, got = dkimpy_results
    assert sorted(got) == sorted(expect)
    wrong = {name: got[name] for name in expect
             if [result for result, _ in got[name]] != expect[name]}
    assert wrong == {}


def test_drover_says_why(dkimpy_results):
    _, got = dkimpy_results
    assert got["tampered-body.eml"] == [("fail", "body hash did not verify")]
    assert got["tampered-header.eml"] == [("fail", "signature did not verify")]
    assert got["repeated-tampered.eml"] == [("fail", "signature did not verify")]
    assert got["no-key.eml"] == [("permerror", "no key at ed25519._domainkey.unknown.example")]
