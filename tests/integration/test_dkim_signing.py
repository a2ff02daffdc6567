"""DKIM signing at reception, end to end: messages submitted to `drover serve` come out at a
real SMTP receiver signed, and an independent verifier (dkimpy, Debian's python3-dkim)
verifies every signature against the keys published in a real DNS server on loopback
(dnsserver.py), asked through dnslib the way a mailbox provider's resolver would.

Keys are made by `drover dkim keygen` itself, and the TXT record it prints is what the DNS
server publishes.
"""

import re
import signal
import subprocess

import pytest

from conftest import Client, deadline, free_port, give, smtp, traversable, wait_for
from dnsserver import DNSServer
from receiver import Receiver, Script

dkim = pytest.importorskip("dkim")
dnslib = pytest.importorskip("dnslib")

DEST_IP = "127.0.0.2"
ZONE = {
    "dest.example": {"MX": [[10, "mx.dest.example"]]},
    "mx.dest.example": {"A": [DEST_IP]},
}


# ---------------------------------------------------------------- the world

@pytest.fixture
def dns():
    server = DNSServer({"records": dict(ZONE), "ttl": 1, "negative_ttl": 1}).start()
    yield server
    server.stop()


@pytest.fixture
def rx():
    r = Receiver(Script(), hosts=(DEST_IP,), port=free_port()).start()
    yield r
    r.stop()


def keygen(drover_bin, tmp_path, dns, domain, selector, algorithm, path=None):
    """A key made by `drover dkim keygen`, its record published in the DNS server."""
    path = path or tmp_path / f"{domain}.{selector}.pem"
    out = subprocess.run([drover_bin, "dkim", "keygen", "--domain", domain, "--selector",
                          selector, "--algorithm", algorithm, "--key", str(path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    record = re.search(r"^\s*value: (.*)$", out, re.M).group(1)
    dns.set_rrset(f"{selector}._domainkey.{domain}", "TXT", [record], ttl=60)
    return path


def key_section(name, domain, selector, path, **more):
    from conftest import fmt_value
    lines = [f'dkim_key "{name}" {{', f'  domain = "{domain}"', f'  selector = "{selector}"',
             f'  key = {fmt_value(str(path))}']
    lines += [f"  {k} = {fmt_value(v)}" for k, v in more.items()]
    return "\n".join(lines + ["}"])


def dnsfunc_of(dns):
    """dkimpy's key lookup, through the test DNS server over UDP (TCP when truncated)."""
    host, port = dns.forwarder.split("@")

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        q = dnslib.DNSRecord.question(name.rstrip("."), "TXT")
        a = dnslib.DNSRecord.parse(q.send(host, int(port), tcp=True, timeout=timeout))
        for rr in a.rr:
            if rr.rtype == dnslib.QTYPE.TXT:
                return b"".join(rr.rdata.data)
        return None

    return dnsfunc


def signature_domains(data):
    """d= of each DKIM-Signature field, top to bottom."""
    head = data.split(b"\r\n\r\n", 1)[0]
    unfolded = re.sub(rb"\r\n[ \t]", b" ", head)
    return [re.search(rb"\bd=([^;\s]+)", f).group(1).decode()
            for f in unfolded.split(b"\r\n") if f.lower().startswith(b"dkim-signature:")]


def verify_all(data, dns):
    """Every signature verifies with dkimpy; returns their d= values."""
    domains = signature_domains(data)
    d = dkim.DKIM(data)
    for i in range(len(domains)):
        assert d.verify(idx=i, dnsfunc=dnsfunc_of(dns)), (i, domains, d.logger)
    return domains


def wait_messages(rx, count, timeout=20):
    wait_for(lambda: len(rx.messages()) >= count, deadline(timeout),
             what=f"{count} message(s) at the receiver")
    return rx.messages()


@pytest.fixture
def signer(make_drover, drover_bin, tmp_path, dns, rx):
    """Factory: a Drover delivering to rx with the given dkim_key sections."""

    def make(keys, start=True, dkim=None, listener=None):
        extra = "\n".join(keys)
        if dkim:
            extra += "\ndkim {\n" + "\n".join(f'  {k} = "{v}"' for k, v in dkim.items()) + "\n}"
        return make_drover(start=start, delivery={"port": rx.port,
                                                  "dns_forwarders": [dns.forwarder],
                                                  "retry": ["1s"]},
                           listener=listener or {}, extra=extra)

    return make


def send(port, msg, sender="alice@sender.example", rcpt="bob@dest.example", options=()):
    with smtp(port) as s:
        code, text = s.mail(sender, list(options))
        assert code == 250, (code, text)
        code, text = s.rcpt(rcpt)
        assert code == 250, (code, text)
        code, text = s.data(msg)
        return code, text.decode()


def author_message(body=b"Hello.\r\n", headers=b"", sender=b"alice@sender.example"):
    return (b"From: Alice <" + sender + b">\r\nTo: bob@dest.example\r\nSubject: signed\r\n"
            b"Date: Sun, 06 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@sender.example>\r\n" +
            headers + b"\r\n" + body)


# ---------------------------------------------------------------- signing

# Each sample is sent as it is; the ones that need them use BODY=8BITMIME or SMTPUTF8.
SAMPLES = {
    "plain": (author_message(), ()),
    "8bit": (author_message(b"Gr\xfc\xdfe aus K\xf6ln\r\n\xe9t\xe9\r\n"), ("BODY=8BITMIME",)),
    "utf8": (author_message("Grüße, 日本語 ✓\r\n".encode(),
                            "Subject-Extra: Привет мир\r\n".encode()), ("SMTPUTF8",)),
    "long-folded": (author_message(headers=b"X-Long: " + b" ".join([b"word"] * 60) + b"\r\n"
                                   b"X-Folded: first line\r\n\tsecond line\r\n  third\r\n"), ()),
    "empty-body": (author_message(b""), ()),
    "repeated": (author_message(headers=b"To: second@dest.example\r\nTo: third@dest.example\r\n"
                                b"Cc: a@dest.example\r\nCc: b@dest.example\r\n"), ()),
    "whitespace": (author_message(b"trailing   \r\n\r\n\r\n  lead\t tab \r\n\r\n"), ()),
}


def test_every_sample_is_signed_by_author_and_platform_keys_and_verifies(
        signer, drover_bin, tmp_path, dns, rx):
    rsa = keygen(drover_bin, tmp_path, dns, "sender.example", "s2048", "rsa2048")
    ed = keygen(drover_bin, tmp_path, dns, "platform.example", "ed1", "ed25519")
    d = signer([key_section("author", "sender.example", "s2048", rsa),
                key_section("platform", "platform.example", "ed1", ed, sign_for=["*"])])
    for name, (msg, options) in SAMPLES.items():
        code, text = send(d.port, msg, options=options)
        assert code == 250, (name, code, text)
    got = wait_messages(rx, len(SAMPLES))
    assert len(got) == len(SAMPLES)
    for m in got:
        data = m["data"].encode("latin-1")
        assert verify_all(data, dns) == ["sender.example", "platform.example"], data[:600]
        # The signatures are on top, above Drover's Received: field, folded to 78 columns.
        assert data.lower().startswith(b"dkim-signature:")
        head = data.split(b"\r\n\r\n", 1)[0]
        assert all(len(line) <= 78 for line in head.split(b"\r\n")
                   if not line.startswith((b"X-Long", b"Received"))), head


def test_body_without_final_crlf_and_a_large_body_are_signed(signer, drover_bin, tmp_path,
                                                             dns, rx):
    """BDAT carries a body that does not end in CRLF; a 700 KB body crosses spool chunks."""
    ed = keygen(drover_bin, tmp_path, dns, "sender.example", "e1", "ed25519")
    d = signer([key_section("author", "sender.example", "e1", ed,
                            canonicalization="simple/simple")])
    msg = author_message(b"no final line end")
    c = Client(d.port)
    c.greet()
    c.ehlo()
    assert c.cmd("MAIL FROM:<alice@sender.example>") == "250"
    assert c.cmd("RCPT TO:<bob@dest.example>") == "250"
    c.send(f"BDAT {len(msg)} LAST\r\n".encode() + msg)
    assert c.reply() == "250"
    c.cmd("QUIT")
    big = author_message(b"".join(b"%06d " % i + b"x" * 70 + b"\r\n" for i in range(9000)))
    assert len(big) > 3 * 256 * 1024 // 2
    assert send(d.port, big)[0] == 250
    got = wait_messages(rx, 2)
    for m in got:
        data = m["data"].encode("latin-1")
        assert verify_all(data, dns) == ["sender.example"]
    # DATA to the receiver must end the last line; the signature covers the body either way
    # (RFC 6376 §3.4.3: canonicalization ends a body with one CRLF).
    assert any(m["data"].endswith("\r\nno final line end\r\n") for m in got)


def test_key_chosen_by_from_domain_with_subdomains_and_fallback(signer, drover_bin, tmp_path,
                                                                dns, rx):
    a = keygen(drover_bin, tmp_path, dns, "sender.example", "a", "ed25519")
    b = keygen(drover_bin, tmp_path, dns, "other.example", "b", "ed25519")
    fb = keygen(drover_bin, tmp_path, dns, "platform.example", "fb", "rsa1024")
    d = signer([key_section("a", "sender.example", "a", a),
                key_section("b", "other.example", "b", b, sign_for=["other.example",
                                                                   "partner.example"]),
                key_section("fallback", "platform.example", "fb", fb, sign_for=["*"],
                            fallback=True)])
    cases = [(b"alice@sender.example", ["sender.example"]),
             (b"news@mail.sender.example", ["sender.example"]),   # subdomain
             (b"x@partner.example", ["other.example"]),           # sign_for
             (b"x@unrelated.example", ["platform.example"]),      # only the fallback
             (b"x@notsender.example", ["platform.example"])]      # not a subdomain
    for sender, _ in cases:
        assert send(d.port, author_message(sender=sender))[0] == 250
    got = wait_messages(rx, len(cases))
    by_from = {re.search(r"^From: Alice <([^>]+)>", m["data"], re.M).group(1): m for m in got}
    for sender, expect in cases:
        data = by_from[sender.decode()]["data"].encode("latin-1")
        assert verify_all(data, dns) == expect, sender


def test_no_matching_key_and_listener_off_send_unsigned(signer, drover_bin, tmp_path, dns,
                                                        rx):
    a = keygen(drover_bin, tmp_path, dns, "sender.example", "a", "ed25519")
    d = signer([key_section("a", "sender.example", "a", a)])
    assert send(d.port, author_message(sender=b"x@elsewhere.example"))[0] == 250
    got = wait_messages(rx, 1)
    assert signature_domains(got[0]["data"].encode("latin-1")) == []
    d.stop()
    d2 = signer([key_section("a", "sender.example", "a", a)], listener={"dkim_sign": False})
    assert send(d2.port, author_message())[0] == 250
    got = wait_messages(rx, 2)
    assert signature_domains(got[1]["data"].encode("latin-1")) == []


def test_unreadable_key_check_config_names_the_line_and_policy_decides(
        signer, drover_bin, tmp_path, dns, rx):
    missing = tmp_path / "missing.pem"
    ok = keygen(drover_bin, tmp_path, dns, "platform.example", "p", "ed25519")
    keys = [key_section("author", "sender.example", "s1", missing),
            key_section("platform", "platform.example", "p", ok, sign_for=["*"])]

    # check-config: the error names the file and line of the key setting.
    d = signer(keys, start=False)
    d.port = free_port()
    d.write_config()
    r = subprocess.run([drover_bin, "check-config", str(d.config_path)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0
    text = d.config_path.read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if str(missing) in t)
    assert f"{d.config_path}:{line}: dkim_key \"author\".key:" in r.stderr, r.stderr
    assert "No such file" in r.stderr, r.stderr

    # defer (the default): the message is refused for now, with 451 4.3.5.
    d.start()
    code, text = send(d.port, author_message())
    assert (code, text[:5]) == (451, "4.3.5"), (code, text)
    # A message the broken key does not sign is signed by the other and accepted.
    assert send(d.port, author_message(sender=b"x@elsewhere.example"))[0] == 250

    # The key appears; SIGHUP reads it again; the same message now goes out signed twice.
    keygen(drover_bin, tmp_path, dns, "sender.example", "s1", "ed25519", path=missing)
    give(missing)  # the server is no longer root
    traversable(missing.parent)
    d.send_signal(signal.SIGHUP)

    def accepted():
        return send(d.port, author_message())[0] == 250

    wait_for(accepted, deadline(10), interval=0.1, what="a 250 after the key was read")
    got = wait_messages(rx, 2)
    assert sorted(len(signature_domains(m["data"].encode("latin-1"))) for m in got) == [1, 2]
    for m in got:
        verify_all(m["data"].encode("latin-1"), dns)
    d.stop()

    # unsigned: accepted, and sent with only the signatures that could be made.
    missing.unlink()
    d2 = signer(keys, dkim={"on_key_error": "unsigned"})
    assert send(d2.port, author_message())[0] == 250
    got = wait_messages(rx, 3)
    data = got[2]["data"].encode("latin-1")
    assert verify_all(data, dns) == ["platform.example"]


def test_bad_dkim_settings_are_reported_with_file_and_line(make_drover, drover_bin):
    d = make_drover(start=False, extra="\n".join([
        'dkim_key "k" {', '  domain = "not a domain"', '  selector = "bad selector"',
        '  canonicalization = "relaxed/loose"', '  sign_for = { "*.*" }',
        '  headers = { "Bad:Name" }', '  expire = "10m"', "}",
        'dkim_key "nokey" {', '  domain = "example.com"', '  selector = "s"', "}",
        "dkim {", '  on_key_error = "maybe"', "}"]))
    d.write_config()
    r = subprocess.run([drover_bin, "check-config", str(d.config_path)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0
    lines = d.config_path.read_text().splitlines()

    def at(needle):
        return next(i for i, t in enumerate(lines, 1) if needle in t)

    for needle, setting in [("not a domain", 'dkim_key "k".domain'),
                            ("bad selector", 'dkim_key "k".selector'),
                            ("relaxed/loose", 'dkim_key "k".canonicalization'),
                            ('"*.*"', 'dkim_key "k".sign_for'),
                            ("Bad:Name", 'dkim_key "k".headers'),
                            ('"10m"', 'dkim_key "k".expire'),
                            ('"maybe"', "dkim.on_key_error")]:
        assert f"{d.config_path}:{at(needle)}: {setting}:" in r.stderr, (setting, r.stderr)
    assert 'dkim_key "nokey".key: required' in r.stderr, r.stderr


def test_expiry_and_signed_field_list_are_as_configured(signer, drover_bin, tmp_path, dns, rx):
    ed = keygen(drover_bin, tmp_path, dns, "sender.example", "x1", "ed25519")
    d = signer([key_section("author", "sender.example", "x1", ed, expire="2h",
                            headers=["From", "Subject", "List-Unsubscribe"],
                            canonicalization="relaxed/simple")])
    assert send(d.port, author_message(headers=b"List-Unsubscribe: <mailto:u@sender.example>"
                                               b"\r\n"))[0] == 250
    data = wait_messages(rx, 1)[0]["data"].encode("latin-1")
    assert verify_all(data, dns) == ["sender.example"]
    field = re.sub(rb"\r\n[ \t]", b" ", data.split(b"\r\n\r\n")[0]).split(b"\r\n")[0]
    tags = {k.strip(): v.strip() for k, v in
            (t.split(b"=", 1) for t in field.split(b":", 1)[1].split(b";") if b"=" in t)}
    assert int(tags[b"x"]) == int(tags[b"t"]) + 7200
    assert tags[b"c"] == b"relaxed/simple"
    # The configured fields, each present one signed, From over-signed; To is not listed.
    names = [n.strip().lower() for n in re.sub(rb"\s", b"", tags[b"h"]).split(b":")]
    assert names == [b"from", b"subject", b"list-unsubscribe", b"from"], names
