#!/usr/bin/python3
"""dnsserver.py - a small authoritative DNS server on loopback for Drover's tests.

It answers from a zone given as a dict (or a JSON file), over UDP and TCP on one port, and
is what every test that needs DNS points Drover's resolver at (forwarder "127.0.0.1@PORT"):
MX and address lookups for delivery, TXT for SPF, DKIM and DMARC, TLSA for DANE.

Run with Debian's python3-dnslib:  /usr/bin/python3 tests/integration/dnsserver.py ZONE.json

As a script it prints "port N" on standard output once both sockets are bound, then serves
until SIGTERM or SIGINT. It re-reads the zone file when the file changes (checked on every
query: write a new file and rename it over the old one) and on SIGHUP.

From Python (pytest fixtures):

    from dnsserver import DNSServer
    with DNSServer({"records": {"example.com": {"MX": [[10, "mx.example.com"]]}}}) as dns:
        dns.forwarder          # "127.0.0.1@40123", for Drover's dns forwarders
        dns.set_rrset("example.com", "TXT", ["v=spf1 -all"], ttl=5)
        dns.queries            # [("example.com", "MX", "udp"), ...] as received

The zone (every key optional):

    {
      "ttl": 300,                  default TTL of records
      "negative_ttl": 60,          SOA minimum and TTL: how long NXDOMAIN/NODATA are cached
      "zones": ["example.com"],    apexes, owners of the SOA in negative answers (default ".")
      "records": {
        "example.com": {
          "MX":   [[10, "mx1.example.com"], [20, "mx2.example.com"]],
          "TXT":  ["v=spf1 ip4:192.0.2.0/24 -all",   one record per item; an item that is
                   ["part one ", "part two"]],       a list is one record of several
          "A":    ["192.0.2.1"],                     character-strings (longer text is
          "AAAA": ["2001:db8::1"]                    split at 255 octets)
        },
        "nullmx.example.com": {"MX": [[0, "."]]},                   RFC 7505 null MX
        "short.example.com":  {"A": {"ttl": 2, "data": ["192.0.2.7"]}},  a TTL of its own
        "alias.example.com":  {"CNAME": "example.com"},            followed within the zone
        "*.wild.example.com": {"A": ["192.0.2.9"]},      wildcard, for names that do not exist
        "_25._tcp.mx1.example.com": {"TLSA": ["3 1 1 0123abcd"]}   other types: zone syntax
      },
      "servfail": ["broken.example.com"],  answered SERVFAIL ("*.suffix": any subdomain)
      "refused":  ["closed.example.com"],  answered REFUSED
      "drop":     ["silent.example.com"],  never answered (timeouts)
      "drop_missing": ["half.example.com"],  never answered for a type the name has no
                                             records of (those it has are answered)
      "delay":    {"slow.example.com": 1.5},  answered after this many seconds
      "tcp_only": ["big.example.com"]      UDP answers truncated (TC): clients retry over TCP
    }

Use names under real-looking domains (example.com, example.net, *.example): unbound answers
the RFC 6761 special-use names .test, .invalid, .onion, .localhost and home.arpa itself
(NXDOMAIN) without asking any forwarder, so a zone under .test never reaches this server.

Names are case-insensitive, with or without the trailing dot. A name that is neither in
"records" nor the parent of one gets NXDOMAIN; a parent of one (an empty non-terminal), or a
name without the type asked, gets NOERROR with no answer (NODATA). Negative answers carry an
SOA so resolvers cache them for negative_ttl. UDP answers larger than the client's EDNS size
(512 without EDNS) are truncated.
"""

import argparse
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

from dnslib import (AAAA, CNAME, EDNS0, MX, NS, PTR, QTYPE, RCODE, RR, SOA, TXT, A, DNSHeader,
                    DNSLabel, DNSRecord)

__all__ = ["DNSServer", "Zone", "ZoneError"]

CNAME_CHAIN_MAX = 8
UDP_MAX = 4096
TCP_IDLE_SECONDS = 10


class ZoneError(ValueError):
    """A zone that cannot be served, with the name and type at fault."""


def _norm(name):
    # A DNSLabel's labels are raw octets (a space, a '%' from an SPF macro); its str() would
    # escape them ("\\032"), which no zone key spells.
    if isinstance(name, DNSLabel):
        name = ".".join(l.decode("latin-1") for l in name.label)
    name = str(name).strip().lower()
    if name.endswith(".") and name != ".":
        name = name[:-1]
    return name


def _matches(name, patterns):
    for p in patterns:
        p = _norm(p)
        if name == p or (p.startswith("*.") and name.endswith(p[1:])):
            return True
    return False


def _qtype(name):
    name = str(name).upper()
    if name.startswith("TYPE") and name[4:].isdigit():
        return int(name[4:])
    try:
        return getattr(QTYPE, name)
    except AttributeError:
        raise ZoneError(f"unknown record type {name!r}") from None


def _qtype_name(qtype):
    return QTYPE.get(qtype, f"TYPE{qtype}")


def _txt_strings(text):
    data = text.encode() if isinstance(text, str) else bytes(text)
    # RFC 1035 §3.3: a character-string holds at most 255 octets; longer text (DKIM keys) is
    # split, as zone files and providers' consoles do.
    return [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]


def _rdata(name, rtype, value, ttl):
    """One record's rdata object from its JSON form."""
    if rtype == "MX":
        if isinstance(value, str):
            pref, host = value.split(None, 1)
        else:
            pref, host = value
        return MX(DNSLabel(host if host.endswith(".") else host + "."), int(pref))
    if rtype == "TXT":
        if isinstance(value, list):
            strings = [s.encode() if isinstance(s, str) else bytes(s) for s in value]
            for s in strings:
                if len(s) > 255:
                    raise ZoneError(f"{name} TXT: a character-string is over 255 octets")
            return TXT(strings)
        return TXT(_txt_strings(value))
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    simple = {"CNAME": CNAME, "NS": NS, "PTR": PTR}
    if rtype in simple:
        return simple[rtype](DNSLabel(value if value.endswith(".") else value + "."))
    # Anything else in zone-file syntax (names fully qualified, with the trailing dot).
    rrs = RR.fromZone(f"{name}. {ttl} IN {rtype} {value}")
    if len(rrs) != 1:
        raise ZoneError(f"{name} {rtype}: expected one record in {value!r}")
    return rrs[0].rdata


class Zone:
    """A parsed zone: what to answer for a (name, type)."""

    KEYS = {"ttl", "negative_ttl", "zones", "records", "servfail", "refused", "drop", "delay",
            "tcp_only", "drop_missing"}

    def __init__(self, spec=None):
        spec = dict(spec or {})
        unknown = set(spec) - self.KEYS
        if unknown:
            raise ZoneError(f"unknown zone keys {sorted(unknown)} (known: {sorted(self.KEYS)})")
        self.ttl = int(spec.get("ttl", 300))
        self.negative_ttl = int(spec.get("negative_ttl", 60))
        self.zones = sorted((_norm(z) for z in spec.get("zones", [])), key=len, reverse=True)
        self.servfail = list(spec.get("servfail", []))
        self.refused = list(spec.get("refused", []))
        self.drop = list(spec.get("drop", []))
        self.drop_missing = list(spec.get("drop_missing", []))
        self.delay = {_norm(k): float(v) for k, v in spec.get("delay", {}).items()}
        self.tcp_only = list(spec.get("tcp_only", []))
        self.records = {}  # name -> {qtype: (ttl, [rdata])}
        for name, rrsets in spec.get("records", {}).items():
            for rtype, value in rrsets.items():
                self._add(name, rtype, value)
        self._index_parents()

    def _add(self, name, rtype, value):
        name, rtype = _norm(name), str(rtype).upper()
        ttl = self.ttl
        if isinstance(value, dict):
            ttl = int(value.get("ttl", ttl))
            value = value.get("data", [])
        if not isinstance(value, list) or (rtype == "MX" and value and
                                           not isinstance(value[0], (list, str))):
            value = [value]  # one record given alone
        try:
            rdata = [_rdata(name, rtype, v, ttl) for v in value]
        except ZoneError:
            raise
        except Exception as e:  # dnslib's own parse errors, bad addresses
            raise ZoneError(f"{name} {rtype} {value!r}: {e}") from e
        self.records.setdefault(name, {})[_qtype(rtype)] = (ttl, rdata)

    def _index_parents(self):
        self.parents = set()
        for name in self.records:
            labels = name.split(".")
            for i in range(1, len(labels)):
                self.parents.add(".".join(labels[i:]))

    def set_rrset(self, name, rtype, value, ttl=None):
        """Replaces (value a list) or removes (value None) one name's records of a type."""
        name = _norm(name)
        if value is None:
            self.records.get(name, {}).pop(_qtype(rtype), None)
            if name in self.records and not self.records[name]:
                del self.records[name]
        else:
            self._add(name, rtype, {"ttl": self.ttl if ttl is None else ttl, "data": value})
        self._index_parents()

    def has_rrset(self, name, qtype):
        """Whether the name itself has records of the type (or a CNAME to follow)."""
        rrsets = self.records.get(_norm(name), {})
        return qtype in rrsets or QTYPE.CNAME in rrsets

    def _soa(self, name):
        apex = next((z for z in self.zones if name == z or name.endswith("." + z)), ".")
        owner = "." if apex == "." else apex + "."
        base = "invalid." if apex == "." else owner
        times = (1, 3600, 600, 86400, self.negative_ttl)
        return RR(owner, QTYPE.SOA, ttl=self.negative_ttl,
                  rdata=SOA("ns." + base, "hostmaster." + base, times))

    def _lookup_name(self, name):
        """The name's rrsets (a wildcard's if the name itself does not exist), or None."""
        if name in self.records:
            return self.records[name]
        if name in self.parents:
            return {}
        labels = name.split(".")
        for i in range(1, len(labels)):
            wild = "*." + ".".join(labels[i:])
            if wild in self.records:
                return self.records[wild]
        return None

    def answer(self, qname, qtype):
        """(rcode, answer RRs, authority RRs) for a question; qname keeps the asker's case."""
        answers, owner = [], qname
        for _ in range(CNAME_CHAIN_MAX):
            rrsets = self._lookup_name(_norm(owner))
            if rrsets is None:
                rcode = RCODE.NXDOMAIN
                break
            if qtype == QTYPE.ANY:
                for t, (ttl, rdata) in rrsets.items():
                    answers += [RR(owner, t, ttl=ttl, rdata=r) for r in rdata]
            elif qtype in rrsets:
                ttl, rdata = rrsets[qtype]
                answers += [RR(owner, qtype, ttl=ttl, rdata=r) for r in rdata]
            elif QTYPE.CNAME in rrsets:
                ttl, rdata = rrsets[QTYPE.CNAME]
                answers.append(RR(owner, QTYPE.CNAME, ttl=ttl, rdata=rdata[0]))
                owner = str(rdata[0].label)
                continue
            rcode = RCODE.NOERROR
            break
        else:
            return RCODE.SERVFAIL, [], []  # a CNAME loop
        if rcode == RCODE.NXDOMAIN or not answers or answers[-1].rtype == QTYPE.CNAME:
            # Negative (RFC 6604: the rcode is the last name's, the CNAMEs stay): the SOA
            # tells resolvers how long to remember it.
            return rcode, answers, [self._soa(_norm(owner))]
        return rcode, answers, []


class DNSServer:
    """The server: a zone, a UDP and a TCP socket on one loopback port, and a thread each."""

    def __init__(self, zone=None, zone_file=None, host="127.0.0.1", port=0):
        self.host = host
        self.zone_file = zone_file
        self._lock = threading.RLock()  # reload() runs under it, from respond()
        self._zone_stamp = None
        self.zone = Zone(zone) if zone is not None else Zone()
        if zone_file is not None and not self.reload():
            raise ZoneError(f"{zone_file}: cannot serve it (see above)")
        self.queries = []  # (name, type, "udp"/"tcp"), in arrival order
        self._requested_port = port
        self._stopping = threading.Event()
        self._threads = []
        self.udp = self.tcp = None
        self.port = None

    # ------------------------------------------------------------------ zone

    def reload(self):
        """Re-reads zone_file. A broken file keeps the previous zone (and says why)."""
        with self._lock:
            try:
                st = os.stat(self.zone_file)
                # Remembered even if the file is broken: one complaint per change of it.
                self._zone_stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                with open(self.zone_file) as f:
                    self.zone = Zone(json.load(f))
            except (OSError, ValueError) as e:
                print(f"dnsserver: {self.zone_file}: {e}; keeping the previous zone",
                      file=sys.stderr, flush=True)
                return False
        return True

    def _reload_if_changed(self):
        if self.zone_file is None:
            return
        try:
            st = os.stat(self.zone_file)
        except OSError:
            return
        if (st.st_ino, st.st_mtime_ns, st.st_size) != self._zone_stamp:
            self.reload()

    def set_zone(self, spec):
        """Replaces the whole zone (a dict in the format above)."""
        zone = Zone(spec)
        with self._lock:
            self.zone = zone

    def set_rrset(self, name, rtype, value, ttl=None):
        """Replaces one name's records of one type; value None removes them."""
        with self._lock:
            self.zone.set_rrset(name, rtype, value, ttl)

    def clear_queries(self):
        with self._lock:
            self.queries.clear()

    @property
    def forwarder(self):
        """The resolver's forwarder syntax, "127.0.0.1@PORT" (unbound's, and Drover's)."""
        return f"{self.host}@{self.port}"

    # ------------------------------------------------------------------ answering

    def respond(self, data, proto):
        """(reply bytes or None to stay silent, delay in seconds) for a query's bytes."""
        try:
            request = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - anything unparsable from the network
            if len(data) < 2:
                return None, 0
            header = DNSHeader(id=struct.unpack("!H", data[:2])[0], qr=1, rcode=RCODE.FORMERR)
            return DNSRecord(header).pack(), 0
        reply = request.reply(ra=1, aa=1)
        if request.header.opcode != 0 or len(request.questions) != 1:
            reply.header.rcode = RCODE.NOTIMP if request.header.opcode else RCODE.FORMERR
            return reply.pack(), 0
        q = request.q
        name = _norm(q.qname)
        with self._lock:
            self._reload_if_changed()
            zone = self.zone
            self.queries.append((name, _qtype_name(q.qtype), proto))
        if _matches(name, zone.drop):
            return None, 0
        # The OpenSPF suite's TIMEOUT: a name answers for the types it has and times out for
        # the others (a "braindead" server that drops queries for types it does not know).
        if _matches(name, zone.drop_missing) and not zone.has_rrset(name, q.qtype):
            return None, 0
        if _matches(name, zone.servfail):
            reply.header.rcode = RCODE.SERVFAIL
        elif _matches(name, zone.refused):
            reply.header.rcode = RCODE.REFUSED
        else:
            rcode, answers, authority = zone.answer(q.qname, q.qtype)
            reply.header.rcode = rcode
            for rr in answers:
                reply.add_answer(rr)
            for rr in authority:
                reply.add_auth(rr)
        edns = [rr for rr in request.ar if rr.rtype == QTYPE.OPT]
        if edns:
            reply.add_ar(EDNS0(udp_len=UDP_MAX))
        wire = reply.pack()
        if proto == "udp":
            limit = max(512, min(edns[0].edns_len, UDP_MAX)) if edns else 512
            if len(wire) > limit or _matches(name, zone.tcp_only):
                reply.rr, reply.auth, reply.ar = [], [], []
                reply.header.tc = 1
                wire = reply.pack()
        return wire, zone.delay.get(name, 0)

    # ------------------------------------------------------------------ sockets

    def _bind(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(100):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                udp.bind((self.host, self._requested_port))
                tcp.bind((self.host, udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                if self._requested_port:
                    raise
                continue  # the UDP port's TCP twin is taken: another free port
            tcp.listen(16)
            return udp, tcp
        raise OSError("no port free for both UDP and TCP")

    def start(self):
        self.udp, self.tcp = self._bind()
        self.port = self.udp.getsockname()[1]
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        for target in (self._serve_udp, self._serve_tcp):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stopping.set()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        for s in (self.udp, self.tcp):
            if s is not None:
                s.close()

    def __enter__(self):
        return self.start() if self.port is None else self

    def __exit__(self, *exc):
        self.stop()

    def _send_udp(self, wire, peer):
        try:
            self.udp.sendto(wire, peer)
        except OSError:
            pass  # the client went away; UDP has nobody to tell

    def _serve_udp(self):
        while not self._stopping.is_set():
            try:
                data, peer = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            wire, delay = self.respond(data, "udp")
            if wire is None:
                continue
            if delay:
                threading.Timer(delay, self._send_udp, (wire, peer)).start()
            else:
                self._send_udp(wire, peer)

    def _serve_tcp(self):
        while not self._stopping.is_set():
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_session, args=(conn,), daemon=True).start()

    def _tcp_session(self, conn):
        """RFC 7766: several length-prefixed queries per connection, answered in order."""
        conn.settimeout(TCP_IDLE_SECONDS)
        with conn:
            try:
                while not self._stopping.is_set():
                    head = self._recv_exact(conn, 2)
                    if head is None:
                        return
                    data = self._recv_exact(conn, struct.unpack("!H", head)[0])
                    if data is None:
                        return
                    wire, delay = self.respond(data, "tcp")
                    if wire is None:
                        continue
                    if delay:
                        time.sleep(delay)
                    conn.sendall(struct.pack("!H", len(wire)) + wire)
            except OSError:
                return

    @staticmethod
    def _recv_exact(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf


def main(argv=None):
    ap = argparse.ArgumentParser(description="Authoritative test DNS server (UDP and TCP).")
    ap.add_argument("zone", nargs="?", help="zone JSON file (re-read when it changes)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 (default): pick a free one")
    args = ap.parse_args(argv)

    server = DNSServer(zone_file=args.zone, host=args.host, port=args.port).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    if args.zone:
        signal.signal(signal.SIGHUP, lambda *_: server.reload())
    print(f"port {server.port}", flush=True)
    while not done.wait(1):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
