#!/usr/bin/python3
"""receiver.py - a scriptable SMTP receiver on loopback, for testing Drover's SMTP client and
delivery engine against a real server that can also misbehave on purpose.

Run with Debian's python3 (no packages beyond the standard library are needed):

    /usr/bin/python3 tests/integration/receiver.py --record /tmp/r.jsonl [flags]

As a script it prints "port N" on standard output once it listens, then serves until SIGTERM
or SIGINT. From Python (pytest fixtures), in a thread of the test process or as a subprocess:

    from receiver import Receiver, Script, spawn
    with Receiver(Script(rcpt_replies={"bad@example.com": "550 5.1.1 no such user"})) as rx:
        rx.port; rx.messages(); rx.sessions(); rx.server.max_active (most sessions at once)
    with spawn(["--no-pipelining", "--size", "1000"]) as rx:   # receiver.py's flags
        rx.port; rx.messages()

Why not aiosmtpd: version 1.4 (Debian's) refuses the DSN parameters (NOTIFY, ORCPT, RET,
ENVID) with 555 and upper-cases the ones it keeps, has no BDAT, never announces PIPELINING,
and cannot be told to drop a connection in the middle of DATA or to stop reading. This
receiver is a plain asyncio server that does the protocol strictly and records exactly what
the client sent, so a test can check the client's bytes as well as its outcomes.

The flags (all optional; PHASE is one of greeting ehlo helo mail rcpt data content dot bdat
rset quit; "content" is DATA's content, once its first octets have arrived):

  --host ADDR            listen address, repeatable (default 127.0.0.1; "::1" for IPv6); all
                         share one port
  --port N               port (default 0: the kernel chooses; printed)
  --hostname NAME        name in the greeting and EHLO reply (default receiver.example)
  --record FILE          append a JSON line per transaction and per session (below)
  --greeting REPLY       the greeting (default "220 NAME ESMTP drover-test-receiver"); a 4xx or
                         5xx greeting answers every command but QUIT with 503 (RFC 5321 §3.1),
                         a 421 closes the connection at once
  --reply PHASE=REPLY    answer PHASE with REPLY instead of the normal reply, e.g.
                         --reply dot="451 4.3.0 try later"; "\\n" in REPLY separates the lines
                         of a multi-line reply: "550-5.7.1 first\\n550 5.7.1 second";
                         --reply content=... answers in the middle of the content (then reads
                         it to its end); --reply data="354 go" invites content even when no
                         recipient was accepted
  --times PHASE=N        the --reply for PHASE applies to its first N uses only (across all
                         connections), then the normal reply: "4xx then accept"
  --rcpt-reply ADDR=REPLY  the reply to RCPT for one address (case-insensitive), repeatable
  --stall PHASE          never answer PHASE (keep reading and ignoring input until the client
                         gives up); --stall content stops reading during DATA's content
  --drop PHASE           close the connection instead of answering PHASE; --drop content
                         closes it once the first content octets of DATA have arrived
  --no-ehlo              answer EHLO with 502 (the client must fall back to HELO)
  --no-pipelining --no-8bitmime --no-smtputf8 --no-dsn --no-enhancedstatuscodes
                         do not announce (and refuse the parameters of) that extension
  --size N               announce SIZE N and refuse larger SIZE= / content with 552 5.3.4
  --chunking             announce CHUNKING and BINARYMIME and accept BDAT
  --starttls             announce STARTTLS; without --tls-cert the command answers 454
  --tls-cert FILE --tls-key FILE
                         with --starttls: STARTTLS answers 220 and the session goes on in
                         TLS with this certificate (PEM, chain after it) and key; the state
                         is reset as RFC 3207 §4.2 says, and STARTTLS is announced no more
  --tls-break            with --starttls: STARTTLS answers 220, then the receiver reads the
                         client's first handshake bytes and answers with clear text and
                         closes (a handshake that fails, as with a broken TLS stack)
  --idle-close SECONDS   say 421 and close a connection idle this long
  --delay PHASE=SECONDS  wait this long before answering PHASE (a slow receiver), e.g.
                         --delay dot=0.5 accepts one message per half second per connection

Records (JSON lines, flushed as written):

  {"type": "message", "session": 1, "transaction": 1, "peer": "127.0.0.1", "local":
   "127.0.0.1", "local_port": 2525, "helo": "client.example", "esmtp": true,
   "mail_from": "a@example.com", "mail_params": ["SIZE=120", "BODY=8BITMIME"],
   "rcpt_to": ["b@example.com"], "rcpt_params": [["NOTIFY=FAILURE"]],
   "rcpt_refused": ["c@example.com"], "via": "DATA", "data": "...", "size": 120,
   "bare_lf": 0, "long_lines": 0, "pipelined": true, "accepted": true, "reply": "250 ...",
   "tls": {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "sni": "mx.example"}}
      one per transaction that reached the end of its content ("at": the wall-clock time
      of its end of data, time.time()); "data" is the content after
      unstuffing, decoded as Latin-1 (one character per octet: .encode("latin-1") gives the
      octets back); "pipelined": RCPT and DATA had arrived before MAIL was answered;
      "accepted": the final reply was 2xx; "tls": null when the session was in clear.
  {"type": "session", "session": 1, "peer": ..., "helo": ..., "commands": ["EHLO x", ...],
   "replies": ["220 ...", ...], "quit": true, "unexpected_pipelining": 0, "ended": "quit",
   "tls": null, "starttls": false}
      one per connection when it ends; "unexpected_pipelining" counts commands that arrived
      before the previous reply was sent while PIPELINING was not announced; "ended" is
      "quit", "client" (closed without QUIT), "drop", "idle", "greeting", "shutdown",
      "tls" (the handshake failed, or --tls-break); "starttls": the client said STARTTLS;
      "tls": as in messages, null when the session stayed in clear.
"""

import argparse
import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PHASES = ("greeting", "ehlo", "helo", "mail", "rcpt", "data", "content", "dot", "bdat", "rset",
          "quit")
LINE_MAX = 4096  # a command line longer than this is refused (RFC 5321 says 512)
RECEIVER = Path(__file__).resolve()


@dataclass
class Script:
    """What the receiver does; the command-line flags map one to one onto these fields."""

    hostname: str = "receiver.example"
    greeting: str = ""  # "" = "220 <hostname> ESMTP drover-test-receiver"
    replies: dict = field(default_factory=dict)  # phase -> reply text
    times: dict = field(default_factory=dict)  # phase -> how many uses of replies[phase]
    rcpt_replies: dict = field(default_factory=dict)  # lower-case address -> reply
    stall: set = field(default_factory=set)
    drop: set = field(default_factory=set)
    ehlo: bool = True
    pipelining: bool = True
    eightbitmime: bool = True
    smtputf8: bool = True
    dsn: bool = True
    enhancedstatuscodes: bool = True
    size: int = 0
    chunking: bool = False
    starttls: bool = False
    tls_cert: str = ""  # with starttls: a real TLS session with this certificate chain
    tls_key: str = ""
    tls_break: bool = False  # with starttls: 220, then clear text instead of a handshake
    idle_close: float = 0.0
    delays: dict = field(default_factory=dict)  # phase -> seconds to wait before answering
    record: str = ""

    def check(self):
        for what in (self.replies, self.times, self.delays):
            for phase in what:
                if phase not in PHASES:
                    raise ValueError(f"unknown phase {phase!r}")
        for phase in self.stall | self.drop:
            if phase not in PHASES:
                raise ValueError(f"unknown phase {phase!r}")
        return self


class Recorder:
    """Appends JSON lines to a file (flushed per record) and keeps them in memory."""

    def __init__(self, path):
        self.path = path
        self.records = []
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8") if path else None

    def write(self, record):
        with self.lock:
            self.records.append(record)
            if self.file:
                self.file.write(json.dumps(record, ensure_ascii=True) + "\n")
                self.file.flush()

    def close(self):
        if self.file:
            self.file.close()
            self.file = None


class Dropped(Exception):
    """The script says: close the connection now."""


class Session:
    """One SMTP connection: reads lines, answers them in order, records what it saw."""

    def __init__(self, server, reader, writer, number):
        self.server = server
        self.script = server.script
        self.reader = reader
        self.writer = writer
        self.number = number
        self.buf = b""
        peer = writer.get_extra_info("peername") or ("?", 0)
        local = writer.get_extra_info("sockname") or ("?", 0)
        self.peer, self.local, self.local_port = peer[0], local[0], local[1]
        self.helo = None
        self.esmtp = False
        self.commands = []
        self.replies = []
        self.quit = False
        self.unexpected_pipelining = 0
        self.refusing = False  # after a 4xx/5xx greeting
        self.transactions = 0
        self.tls = None  # {"version", "cipher"} once STARTTLS succeeded
        self.said_starttls = False
        self.reset()

    def reset(self):
        self.mail_from = None
        self.mail_params = []
        self.rcpt_to = []
        self.rcpt_params = []
        self.rcpt_refused = []
        self.pipelined = False
        self.bdat = b""

    # ---- I/O

    async def fill(self, timeout=None):
        """Reads more input into self.buf; raises EOFError at the end."""
        if timeout:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        else:
            data = await self.reader.read(65536)
        if not data:
            raise EOFError
        self.buf += data

    async def line(self):
        """The next line without its CRLF (a bare LF also ends a line)."""
        while b"\n" not in self.buf:
            if len(self.buf) > LINE_MAX:
                raise Dropped
            timeout = self.script.idle_close or None
            try:
                await self.fill(timeout)
            except asyncio.TimeoutError:
                await self.send("421 4.4.2 %s idle timeout" % self.script.hostname)
                raise Dropped("idle")
        raw, self.buf = self.buf.split(b"\n", 1)
        return raw[:-1] if raw.endswith(b"\r") else raw

    def buffered_lines(self):
        return self.buf.count(b"\n")

    async def send(self, reply):
        for text in reply.split("\n"):
            self.replies.append(text)
            self.writer.write(text.encode("utf-8", "surrogateescape") + b"\r\n")
        await self.writer.drain()

    async def ignore_forever(self):
        """A stall: read and ignore everything until the client gives up."""
        while True:
            await self.fill()
            self.buf = b""

    # ---- scripting

    def scripted(self, phase, normal):
        """The reply for phase: the script's, while its --times last, else normal."""
        if phase in self.script.replies:
            left = self.server.uses_left(phase)
            if left is None or left > 0:
                self.server.use(phase)
                return self.script.replies[phase]
        return normal

    async def answer(self, phase, normal):
        """Answers phase as scripted: stall, drop, a scripted reply or the normal one."""
        if phase in self.script.stall:
            await self.ignore_forever()
        if phase in self.script.drop:
            raise Dropped(phase)
        if phase in self.script.delays:
            await asyncio.sleep(self.script.delays[phase])
        reply = self.scripted(phase, normal)
        await self.send(reply)
        return reply

    def status(self, code_status):
        """Strips the enhanced status when ENHANCEDSTATUSCODES is not announced."""
        if self.script.enhancedstatuscodes:
            return code_status
        code, _, rest = code_status.partition(" ")
        parts = rest.split(" ", 1)
        if parts and parts[0].count(".") == 2 and parts[0][0] in "245":
            rest = parts[1] if len(parts) > 1 else ""
        return f"{code} {rest}".rstrip()

    # ---- the conversation

    async def run(self):
        ended = "client"
        try:
            greeting = self.script.greeting or (
                f"220 {self.script.hostname} ESMTP drover-test-receiver")
            reply = await self.answer("greeting", greeting)
            if reply.startswith("421"):
                ended = "greeting"
                return
            self.refusing = not reply.startswith("2")
            ended = await self.commands_loop()
        except Dropped as e:
            ended = str(e) if str(e) in ("idle", "tls") else "drop"
        except (EOFError, ConnectionError):
            ended = "client"
        except asyncio.CancelledError:
            ended = "shutdown"
            raise
        finally:
            self.server.recorder.write({
                "type": "session", "session": self.number, "peer": self.peer,
                "local": self.local, "local_port": self.local_port, "helo": self.helo,
                "esmtp": self.esmtp, "commands": self.commands, "replies": self.replies,
                "quit": self.quit, "unexpected_pipelining": self.unexpected_pipelining,
                "ended": ended, "tls": self.tls, "starttls": self.said_starttls,
            })
            try:
                self.writer.close()
            except Exception:
                pass

    async def commands_loop(self):
        while True:
            raw = await self.line()
            text = raw.decode("utf-8", "surrogateescape")
            self.commands.append(text)
            if not self.script.pipelining and self.buffered_lines() > 0:
                self.unexpected_pipelining += 1
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            if self.refusing and verb != "QUIT":
                await self.send("503 5.5.1 no service")
                continue
            handler = getattr(self, "cmd_" + verb, None)
            if handler is None:
                await self.send(self.status("500 5.5.2 command unrecognized"))
                continue
            if await handler(arg) == "quit":
                return "quit"

    async def cmd_EHLO(self, arg):
        if not self.script.ehlo:
            await self.answer("ehlo", "502 5.5.2 EHLO not implemented")
            return
        if not arg:
            await self.send("501 5.5.4 EHLO needs a domain")
            return
        lines = [self.script.hostname]
        s = self.script
        for on, keyword in ((s.pipelining, "PIPELINING"),
                            (s.size, f"SIZE {s.size}"),
                            (s.eightbitmime, "8BITMIME"),
                            (s.smtputf8, "SMTPUTF8"),
                            (s.dsn, "DSN"),
                            (s.enhancedstatuscodes, "ENHANCEDSTATUSCODES"),
                            (s.chunking, "CHUNKING"),
                            (s.chunking, "BINARYMIME"),
                            (s.starttls and not self.tls, "STARTTLS")):
            if on:
                lines.append(keyword)
        normal = "\n".join(f"250{'-' if i < len(lines) - 1 else ' '}{l}"
                           for i, l in enumerate(lines))
        reply = await self.answer("ehlo", normal)
        if reply.startswith("2"):
            self.helo, self.esmtp = arg, True
            self.reset()

    async def cmd_HELO(self, arg):
        if not arg:
            await self.send("501 5.5.4 HELO needs a domain")
            return
        reply = await self.answer("helo", f"250 {self.script.hostname}")
        if reply.startswith("2"):
            self.helo, self.esmtp = arg, False
            self.reset()

    def parse_path(self, arg, keyword):
        """("address", ["PARAM=value", ...]) from 'FROM:<a> P=v' or None."""
        if arg[:len(keyword)].upper() != keyword:
            return None
        rest = arg[len(keyword):].lstrip(" ")
        if not rest.startswith("<") or ">" not in rest:
            return None
        address, _, params = rest[1:].partition(">")
        if params and not params.startswith(" "):
            return None
        return address, params.split()

    def offered(self, param):
        key, _, value = param.partition("=")
        key = key.upper()
        s = self.script
        return {
            "SIZE": s.size > 0 or True,  # SIZE= is harmless; checked against the limit
            "BODY": (value.upper() == "8BITMIME" and s.eightbitmime)
            or (value.upper() == "BINARYMIME" and s.chunking) or value.upper() == "7BIT",
            "SMTPUTF8": s.smtputf8,
            "RET": s.dsn, "ENVID": s.dsn, "NOTIFY": s.dsn, "ORCPT": s.dsn,
        }.get(key, False)

    async def cmd_MAIL(self, arg):
        if self.helo is None:
            await self.send(self.status("503 5.5.1 EHLO or HELO first"))
            return
        if self.mail_from is not None:
            await self.send(self.status("503 5.5.1 nested MAIL command"))
            return
        parsed = self.parse_path(arg, "FROM:")
        if parsed is None:
            await self.send(self.status("501 5.5.4 syntax: MAIL FROM:<address>"))
            return
        address, params = parsed
        if params and not self.esmtp:
            await self.send(self.status("501 5.5.4 no parameters after HELO"))
            return
        for p in params:
            if not self.offered(p):
                await self.send(self.status(f"555 5.5.4 {p.split('=')[0]} not offered"))
                return
        utf8 = any(p.upper() == "SMTPUTF8" for p in params)
        if not address.isascii() and not utf8:
            await self.send(self.status("553 5.6.7 non-ASCII address without SMTPUTF8"))
            return
        for p in params:
            key, _, value = p.partition("=")
            if key.upper() == "SIZE" and self.script.size and int(value) > self.script.size:
                await self.send(self.status("552 5.3.4 message size exceeds fixed limit"))
                return
        self.pipelined = self.buffered_lines() > 0
        reply = await self.answer("mail", self.status("250 2.1.0 sender ok"))
        if reply.startswith("2"):
            self.mail_from, self.mail_params = address, params

    async def cmd_RCPT(self, arg):
        if self.mail_from is None:
            await self.send(self.status("503 5.5.1 MAIL first"))
            return
        parsed = self.parse_path(arg, "TO:")
        if parsed is None or not parsed[0]:
            await self.send(self.status("501 5.5.4 syntax: RCPT TO:<address>"))
            return
        address, params = parsed
        for p in params:
            if not self.offered(p):
                await self.send(self.status(f"555 5.5.4 {p.split('=')[0]} not offered"))
                return
        utf8 = any(p.upper() == "SMTPUTF8" for p in self.mail_params)
        if not address.isascii() and not utf8:
            await self.send(self.status("553 5.6.7 non-ASCII address without SMTPUTF8"))
            return
        normal = self.script.rcpt_replies.get(address.lower(),
                                              self.status("250 2.1.5 recipient ok"))
        reply = await self.answer("rcpt", normal)
        if reply.startswith("2"):
            self.rcpt_to.append(address)
            self.rcpt_params.append(params)
        else:
            self.rcpt_refused.append(address)

    async def cmd_DATA(self, arg):
        if self.mail_from is None:
            await self.send(self.status("503 5.5.1 MAIL first"))
            return
        # RFC 2920 §3.1: pipelined DATA after refused recipients gets 554; a scripted
        # "--reply data=354 ..." invites content anyway (the client must then send ".").
        normal = ("354 end data with <CR><LF>.<CR><LF>" if self.rcpt_to
                  else self.status("554 5.5.1 no valid recipients"))
        reply = await self.answer("data", normal)
        if not reply.startswith("354"):
            return
        data, bare_lf, long_lines = await self.read_content()
        if data is None:  # answered early (--reply content=...)
            self.reset()
            return
        if not self.rcpt_to:
            await self.send(self.status("554 5.5.1 no valid recipients"))
            self.reset()
            return
        await self.end_of_data("DATA", "dot", data, bare_lf, long_lines)

    async def read_content(self):
        """DATA's content up to the "." line, unstuffed; counts bare LFs and long lines."""
        lines, bare_lf, long_lines = [], 0, 0
        if "content" in self.script.stall:
            await asyncio.sleep(3600)  # stop reading: the client's writes stall
        if "content" in self.script.drop:
            while not self.buf:
                await self.fill()
            raise Dropped("content")  # mid-DATA: some content arrived, not its end
        early = None
        if "content" in self.script.replies:
            while not self.buf:
                await self.fill()
            early = self.scripted("content", None)
            if early is not None:  # answer now, then swallow the content up to "."
                await self.send(early)
        while True:
            while b"\n" not in self.buf:
                await self.fill()
            raw, self.buf = self.buf.split(b"\n", 1)
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            else:
                bare_lf += 1
            if raw == b".":
                break
            if raw.startswith(b"."):
                raw = raw[1:]
            if len(raw) > 998:
                long_lines += 1
            lines.append(raw)
        if early is not None:
            return None, bare_lf, long_lines
        data = b"".join(l + b"\r\n" for l in lines)
        return data, bare_lf, long_lines

    async def end_of_data(self, via, phase, data, bare_lf, long_lines):
        if self.script.size and len(data) > self.script.size:
            normal = self.status("552 5.3.4 message size exceeds fixed limit")
        else:
            self.transactions += 1
            normal = self.status(
                f"250 2.0.0 Ok: queued as S{self.number}T{self.transactions}")
        if phase in self.script.stall:
            await self.ignore_forever()
        if phase in self.script.drop:
            raise Dropped(phase)
        if phase in self.script.delays:
            await asyncio.sleep(self.script.delays[phase])
        reply = self.scripted(phase, normal)
        self.server.recorder.write({
            "type": "message", "session": self.number, "transaction": self.transactions,
            "at": time.time(),
            "peer": self.peer, "local": self.local, "local_port": self.local_port,
            "helo": self.helo, "esmtp": self.esmtp, "mail_from": self.mail_from,
            "mail_params": self.mail_params, "rcpt_to": self.rcpt_to,
            "rcpt_params": self.rcpt_params, "rcpt_refused": self.rcpt_refused, "via": via,
            "data": data.decode("latin-1"), "size": len(data), "bare_lf": bare_lf,
            "long_lines": long_lines, "pipelined": self.pipelined,
            "accepted": reply.startswith("2"), "reply": reply, "tls": self.tls,
        })
        await self.send(reply)
        self.reset()

    async def cmd_BDAT(self, arg):
        parts = arg.split()
        if not self.script.chunking:
            await self.send(self.status("502 5.5.2 BDAT not offered"))
            return
        if not parts or not parts[0].isdigit() or len(parts) > 2 or (
                len(parts) == 2 and parts[1].upper() != "LAST"):
            await self.send(self.status("501 5.5.4 syntax: BDAT size [LAST]"))
            return
        size = int(parts[0])
        while len(self.buf) < size:
            await self.fill()
        chunk, self.buf = self.buf[:size], self.buf[size:]
        if self.mail_from is None or not self.rcpt_to:
            await self.send(self.status("503 5.5.1 no valid transaction"))
            return
        self.bdat += chunk
        if len(parts) == 1:
            await self.answer("bdat", self.status(f"250 2.0.0 {size} octets received"))
            return
        data, self.bdat = self.bdat, b""
        await self.end_of_data("BDAT", "bdat", data, 0, 0)

    async def cmd_RSET(self, arg):
        reply = await self.answer("rset", self.status("250 2.0.0 reset"))
        if reply.startswith("2"):
            self.reset()

    async def cmd_NOOP(self, arg):
        await self.send(self.status("250 2.0.0 ok"))

    async def cmd_VRFY(self, arg):
        await self.send(self.status("252 2.5.2 cannot verify"))

    async def cmd_STARTTLS(self, arg):
        self.said_starttls = True
        if self.tls:
            await self.send(self.status("503 5.5.1 TLS already active"))
            return
        context = self.server.tls_context
        if not self.script.starttls or (context is None and not self.script.tls_break):
            await self.send(self.status("454 4.7.0 TLS not available"))
            return
        # RFC 3207 §4.2 on the server side too: nothing pipelined after STARTTLS is read.
        self.buf = b""
        await self.send(self.status("220 2.0.0 ready to start TLS"))
        if self.script.tls_break:
            try:
                await self.fill(timeout=10)  # the ClientHello
            except (asyncio.TimeoutError, EOFError):
                pass
            self.writer.write(b"this is not TLS\r\n")
            await self.writer.drain()
            raise Dropped("tls")
        try:
            await self.writer.start_tls(context, ssl_handshake_timeout=10)
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError):
            raise Dropped("tls")
        obj = self.writer.get_extra_info("ssl_object")
        self.tls = {"version": obj.version(), "cipher": obj.cipher()[0],
                    "sni": getattr(obj, "sni", None)}
        # Forget everything said in clear: the client must EHLO again.
        self.helo, self.esmtp = None, False
        self.reset()

    async def cmd_QUIT(self, arg):
        self.quit = True
        await self.answer("quit", self.status("221 2.0.0 bye"))
        return "quit"


class Server:
    """The listening sockets and the state shared by all sessions (--times counters)."""

    def __init__(self, script, hosts=("127.0.0.1",), port=0):
        self.script = script.check()
        self.hosts = list(hosts)
        self.port = port
        self.recorder = Recorder(script.record)
        self.tls_context = None
        if script.tls_cert:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(script.tls_cert, script.tls_key or None)

            def note_sni(obj, name, context):  # the name the client asked for (RFC 6066)
                obj.sni = name

            self.tls_context.sni_callback = note_sni
        self.used = {}
        self.sessions = 0
        self.active = 0  # sessions open now, and the most ever open at once
        self.max_active = 0
        self.servers = []
        self.tasks = set()

    def uses_left(self, phase):
        if phase not in self.script.times:
            return None
        return self.script.times[phase] - self.used.get(phase, 0)

    def use(self, phase):
        self.used[phase] = self.used.get(phase, 0) + 1

    async def handle(self, reader, writer):
        self.sessions += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            await Session(self, reader, writer, self.sessions).run()
        except asyncio.CancelledError:
            pass
        finally:
            self.active -= 1
            self.tasks.discard(task)

    async def start(self):
        for host in self.hosts:
            srv = await asyncio.start_server(self.handle, host, self.port,
                                             reuse_address=True)
            self.servers.append(srv)
            self.port = srv.sockets[0].getsockname()[1]
        return self.port

    async def stop(self):
        for srv in self.servers:
            srv.close()
        for task in list(self.tasks):
            task.cancel()
        for srv in self.servers:
            await srv.wait_closed()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)
        self.recorder.close()


# ---------------------------------------------------------------- for pytest

def read_records(path, kind=None):
    """The JSON records in a --record file, optionally only those of one type."""
    try:
        with open(path, encoding="utf-8") as f:
            records = [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []
    return [r for r in records if kind is None or r["type"] == kind]


class Receiver:
    """A receiver in a thread of the calling process (its own event loop)."""

    def __init__(self, script=None, hosts=("127.0.0.1",), port=0):
        self.server = Server(script or Script(), hosts, port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = None

    def start(self):
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop)
        self.port = fut.result(timeout=10)
        return self

    def stop(self):
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)

    def messages(self):
        return [r for r in self.server.recorder.records if r["type"] == "message"]

    def sessions(self):
        return [r for r in self.server.recorder.records if r["type"] == "session"]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class ReceiverProcess:
    """receiver.py as a subprocess, with the script's flags; records in a temporary file."""

    def __init__(self, args, record, timeout=10):
        self.record = str(record)
        self.proc = subprocess.Popen(
            [sys.executable if sys.executable else "/usr/bin/python3", str(RECEIVER),
             "--record", self.record] + list(args),
            stdout=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:  # readline blocks; the process prints at once
            line = self.proc.stdout.readline()
            if line.startswith("port ") or not line:
                break
        if not line.startswith("port "):
            self.stop()
            raise RuntimeError(f"receiver.py did not start (said {line!r})")
        self.port = int(line.split()[1])

    def messages(self):
        return read_records(self.record, "message")

    def sessions(self):
        return read_records(self.record, "session")

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def spawn(args, record=None):
    """Starts receiver.py with these flags; record defaults to a fresh temporary file."""
    if record is None:
        import tempfile
        fd, record = tempfile.mkstemp(prefix="receiver-", suffix=".jsonl")
        os.close(fd)
    return ReceiverProcess(args, record)


# ---------------------------------------------------------------- command line

def script_from_args(argv):
    p = argparse.ArgumentParser(description="Scriptable SMTP receiver for Drover's tests.")
    p.add_argument("--host", action="append", default=[])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--hostname", default="receiver.example")
    p.add_argument("--record", default="")
    p.add_argument("--greeting", default="")
    p.add_argument("--reply", action="append", default=[], metavar="PHASE=REPLY")
    p.add_argument("--times", action="append", default=[], metavar="PHASE=N")
    p.add_argument("--rcpt-reply", action="append", default=[], metavar="ADDR=REPLY")
    p.add_argument("--stall", action="append", default=[], metavar="PHASE")
    p.add_argument("--drop", action="append", default=[], metavar="PHASE")
    p.add_argument("--no-ehlo", action="store_true")
    p.add_argument("--no-pipelining", action="store_true")
    p.add_argument("--no-8bitmime", action="store_true")
    p.add_argument("--no-smtputf8", action="store_true")
    p.add_argument("--no-dsn", action="store_true")
    p.add_argument("--no-enhancedstatuscodes", action="store_true")
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--chunking", action="store_true")
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--tls-cert", default="")
    p.add_argument("--tls-key", default="")
    p.add_argument("--tls-break", action="store_true")
    p.add_argument("--idle-close", type=float, default=0.0)
    p.add_argument("--delay", action="append", default=[], metavar="PHASE=SECONDS")
    a = p.parse_args(argv)

    def pairs(items, what):
        out = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep:
                p.error(f"{what}: expected KEY=VALUE, got {item!r}")
            out[key.strip().lower()] = value.replace("\\n", "\n")
        return out

    script = Script(
        hostname=a.hostname, greeting=a.greeting.replace("\\n", "\n"),
        replies=pairs(a.reply, "--reply"),
        times={k: int(v) for k, v in pairs(a.times, "--times").items()},
        rcpt_replies=pairs(a.rcpt_reply, "--rcpt-reply"),
        stall=set(a.stall), drop=set(a.drop), ehlo=not a.no_ehlo,
        pipelining=not a.no_pipelining, eightbitmime=not a.no_8bitmime,
        smtputf8=not a.no_smtputf8, dsn=not a.no_dsn,
        enhancedstatuscodes=not a.no_enhancedstatuscodes, size=a.size,
        chunking=a.chunking, starttls=a.starttls, tls_cert=a.tls_cert, tls_key=a.tls_key,
        tls_break=a.tls_break, idle_close=a.idle_close,
        delays={k: float(v) for k, v in pairs(a.delay, "--delay").items()}, record=a.record)
    try:
        script.check()
    except ValueError as e:
        p.error(str(e))
    return script, a.host or ["127.0.0.1"], a.port


async def main_async(argv):
    script, hosts, port = script_from_args(argv)
    server = Server(script, hosts, port)
    await server.start()
    print(f"port {server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main():
    asyncio.run(main_async(sys.argv[1:]))


if __name__ == "__main__":
    main()
