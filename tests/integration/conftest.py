"""Fixtures for Drover's integration tests: a real `drover serve` on loopback, real clients.

Run:  DROVER_BIN=build/release/drover /usr/bin/python3 -m pytest -q tests/integration
With an ASan+UBSan binary also set DROVER_SANITIZED=1: deadlines grow, memory-size checks are
skipped (ASan's quarantine and redzones make RSS meaningless) and any sanitizer report on the
server's stderr fails the test.

Every wait has a deadline and polls for the condition (no fixed sleeps); every process a test
starts is stopped by a finalizer: SIGTERM, then SIGKILL if it has not exited by the deadline.
"""

import json
import os
import random
import re
import signal
import smtplib
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Started as root (as in CI), drover serve becomes this user once set up (its `user`
# setting); scripts/deps.sh creates it. Files a test wants the server to read after start-up
# (a key or certificate to reload) must be readable by it: give() them.
RUN_USER = "drover"


def run_user_ids():
    """(uid, gid) of RUN_USER when the tests run as root, else None."""
    if os.geteuid() != 0:
        return None
    import pwd
    try:
        pw = pwd.getpwnam(RUN_USER)
    except KeyError:
        pytest.exit(f"no user {RUN_USER}: run scripts/deps.sh test (it creates it)",
                    returncode=2)
    return pw.pw_uid, pw.pw_gid


def give(path):
    """Makes path the run user's (when running as root), so that the server can read it
    again after it stopped being root."""
    ids = run_user_ids()
    if ids is not None:
        os.chown(path, *ids)


def traversable(path):
    """Lets the run user reach path: pytest makes its temporary directories 0700."""
    if run_user_ids() is None:
        return
    p = Path(path).resolve()
    for d in [p, *p.parents]:
        if str(d) in ("/", "/tmp"):
            break
        st = os.stat(d)
        if not st.st_mode & 0o001:
            os.chmod(d, st.st_mode | 0o011)
SANITIZED = os.environ.get("DROVER_SANITIZED", "") not in ("", "0")
SLOW = 5 if SANITIZED else 1  # ASan+UBSan builds run several times slower
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
QUEUED_RE = re.compile(r"queued as ([0-9A-Za-z]+)")
SWAKS = "/usr/bin/swaks"
SMTP_SOURCE = "/usr/sbin/smtp-source"


def deadline(seconds):
    """A deadline in seconds, stretched for sanitizer builds."""
    return seconds * SLOW


def wait_for(predicate, timeout, interval=0.02, what="condition"):
    """Polls predicate until it returns a true value (returned) or timeout passes (fails)."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- ports and processes

_handed_out = set()


def free_port():
    """A loopback TCP port nobody listens on, outside the kernel's ephemeral range (so our own
    client connections never take it) and never handed out twice in this run."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(1000):
        port = rng.randrange(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port")


def listening_inodes(port):
    """Socket inodes listening on 127.0.0.1:port or 0.0.0.0:port (from /proc/net/tcp)."""
    inodes = set()
    for local in (f"0100007F:{port:04X}", f"00000000:{port:04X}"):
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1] == local and fields[3] == "0A":
                    inodes.add(fields[9])
    return inodes


def pid_owns_socket(pid, inodes):
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    except OSError:
        pass
    return False


def proc_status(pid, field):
    """A kB field of /proc/PID/status (VmRSS, RssAnon, VmHWM), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Samples the anonymous resident memory (heap, not the LMDB file mapping) of a process
    while a block runs; .baseline and .peak are in kB."""

    def __init__(self, pid, field="RssAnon"):
        self.pid, self.field = pid, field
        self.baseline = self.peak = proc_status(pid, field) or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            v = proc_status(self.pid, self.field)
            if v is not None:
                self.peak = max(self.peak, v)
            self._stop.wait(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        v = proc_status(self.pid, self.field)
        if v is not None:
            self.peak = max(self.peak, v)

    @property
    def growth_mb(self):
        return (self.peak - self.baseline) / 1024


def fmt_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "{ " + ", ".join(fmt_value(x) for x in v) + " }"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Drover:
    """One `drover serve` with its own config, spool, event log and port.

    Config knobs (keyword arguments): hostname, threads, relay_networks (list), spool (dict of
    settings of spool { }), smtp (dict of settings of smtp { }), delivery (dict of settings of
    delivery { }; by default there is none, and with no route either, delivery is off
    (delivery.enabled = auto): accepted mail stays queued, as the tests of reception expect), routes (dict: domain -> list of
    hosts, one route "domain" { hosts = ... } each), listener (dict of settings of the listener
    "smtp" { } besides its address), control (control.address, "" by default: off), control_token, extra
    (raw text appended).
    """

    def __init__(self, binary, workdir, **conf):
        self.bin = os.path.abspath(binary)
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        # The server's own directory is its user's, as an operator would set it up: the event
        # log can then be rotated (a new file created there) after it stopped being root.
        traversable(self.dir)
        give(self.dir)
        self.spool = self.dir / "spool"
        self.event_log = self.dir / "events.jsonl"
        self.config_path = self.dir / "drover.conf"
        self.conf = conf
        self.port = None
        self.proc = None
        self.stderr_paths = []
        self.problems = []  # found while stopping; reported by the fixture
        self._stopped_by_us = False

    # -- config

    def config_text(self):
        c = self.conf
        out = [
            f'hostname = {fmt_value(c.get("hostname", "drover.test"))}',
            f'user = {fmt_value(c.get("user", RUN_USER))}',
            f'threads = {c.get("threads", 2)}',
            f"event_log = {fmt_value(str(self.event_log))}",
            f'relay_networks = {fmt_value(c.get("relay_networks", ["127.0.0.0/8", "::1"]))}',
            "spool {",
            f"  directory = {fmt_value(str(self.spool))}",
        ]
        out += [f"  {k} = {fmt_value(v)}" for k, v in c.get("spool", {}).items()]
        out += ["}", 'listener "smtp" {', f'  address = "127.0.0.1:{self.port}"']
        out += [f"  {k} = {fmt_value(v)}" for k, v in c.get("listener", {}).items()]
        out.append("}")
        if c.get("smtp"):
            out.append("smtp {")
            out += [f"  {k} = {fmt_value(v)}" for k, v in c["smtp"].items()]
            out.append("}")
        delivery = c.get("delivery")
        if delivery:
            out.append("delivery {")
            out += [f"  {k} = {fmt_value(v)}" for k, v in delivery.items()]
            out.append("}")
        for domain, hosts in c.get("routes", {}).items():
            out += [f"route {fmt_value(domain)} {{", f"  hosts = {fmt_value(hosts)}", "}"]
        # The control plane's default port would clash between the servers of a test run.
        out += ["control {", f'  address = {fmt_value(c.get("control", ""))}',
                f'  token = {fmt_value(c.get("control_token", ""))}', "}"]
        if c.get("extra"):
            out.append(c["extra"])
        return "\n".join(out) + "\n"

    def write_config(self):
        self.config_path.write_text(self.config_text())

    # -- lifecycle

    def start(self):
        """Starts the daemon and returns once it listens; a port taken meanwhile by someone
        else is retried on another port."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._stopped_by_us = False
        for _ in range(5):
            if self.port is None:
                self.port = free_port()
            self.write_config()
            n = len(self.stderr_paths)
            err = self.dir / f"stderr.{n}"
            self.stderr_paths.append(err)
            with open(err, "wb") as ef, open(self.dir / f"stdout.{n}", "wb") as of:
                self.proc = subprocess.Popen(
                    [self.bin, "serve", "--config", str(self.config_path)],
                    stdin=subprocess.DEVNULL, stdout=of, stderr=ef, cwd=self.dir,
                    start_new_session=True)
            if self._wait_listening(deadline(10)):
                return self
            if self.proc.poll() is None:
                self._kill()
                pytest.fail(f"drover did not listen on 127.0.0.1:{self.port} within "
                            f"{deadline(10)}s:\n{self.stderr_tail()}")
            text = err.read_text(errors="replace")
            if "in use" in text.lower():
                self.port = None  # lost a race for the port: try another
                continue
            pytest.fail(f"drover serve exited with {self.proc.returncode} at start:\n{text}")
        pytest.fail("could not find a free port for drover")

    def _wait_listening(self, timeout):
        """The SMTP port, and the control plane's when one is configured: it is bound after
        the SMTP listeners, so a test that talks to it at once would race the start."""
        end = time.monotonic() + timeout
        ports = [self.port]
        control = self.conf.get("control", "")
        if control and control.rsplit(":", 1)[-1].isdigit():
            ports.append(int(control.rsplit(":", 1)[-1]))
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            if all(self._owns_listening(p) for p in ports):
                return True
            time.sleep(0.01)
        return False

    def _owns_listening(self, port):
        inodes = listening_inodes(port)
        return bool(inodes) and pid_owns_socket(self.proc.pid, inodes)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _kill(self):
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def kill9(self):
        """kill -9: what a crash or power loss looks like to the spool."""
        self._kill()

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Graceful stop; returns the exit status. A daemon that ignores the signal past the
        deadline is killed and recorded as a problem."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        timeout = timeout or deadline(15)
        self._stopped_by_us = True
        os.kill(self.proc.pid, sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            self.problems.append(f"drover did not exit within {timeout}s of {sig.name}")
            return None
        if rc != 0:
            self.problems.append(f"drover exited {rc} on {sig.name} (want 0)")
        return rc

    def send_signal(self, sig):
        """Sends sig; after SIGTERM/SIGINT the test checks the exit itself (wait())."""
        if sig in (signal.SIGTERM, signal.SIGINT):
            self._stopped_by_us = True
        os.kill(self.proc.pid, sig)

    def wait(self, timeout=None):
        """Waits for the daemon to exit; returns its status."""
        return self.proc.wait(timeout or deadline(15))

    def restart(self):
        self.stop()
        return self.start()

    # -- what the server said

    def stderr_text(self):
        return "".join(p.read_text(errors="replace") for p in self.stderr_paths if p.exists())

    def stderr_tail(self, n=40):
        return "\n".join(self.stderr_text().splitlines()[-n:])

    def sanitizer_reports(self):
        text = self.stderr_text()
        return [m for m in SANITIZER_MARKERS if m in text]

    def events(self):
        """Every complete record of the event log so far."""
        try:
            data = self.event_log.read_bytes()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n")[:-1]:  # the last piece is partial (or empty)
            if line.strip():
                out.append(json.loads(line))
        return out

    def wait_events(self, pred, count=1, timeout=None):
        timeout = timeout or deadline(10)
        found = []

        def check():
            found[:] = [e for e in self.events() if pred(e)]
            return len(found) >= count

        wait_for(check, timeout, what=f"{count} matching event(s) in {self.event_log}")
        return found

    def rss_kb(self, field="RssAnon"):
        return proc_status(self.pid, field)

    # -- the CLI

    def cli(self, *args, check=True, timeout=None):
        r = subprocess.run([self.bin, *args], capture_output=True, text=True,
                           timeout=timeout or deadline(60), cwd=self.dir)
        for m in SANITIZER_MARKERS:
            if m in r.stderr:
                pytest.fail(f"`drover {' '.join(args)}`: {m}\n{r.stderr}")
        if check and r.returncode != 0:
            pytest.fail(f"`drover {' '.join(args)}` exited {r.returncode}:\n{r.stderr}")
        return r

    def queue_list(self):
        """`drover queue list --json`: one dict per queued message."""
        r = self.cli("queue", "list", "--config", str(self.config_path), "--json")
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def queue_ids(self):
        return {m["id"] for m in self.queue_list()}

    def queue_show(self, qid):
        """The stored message (bytes) if this build has `drover queue show ID`, else None."""
        r = subprocess.run([self.bin, "queue", "show", "--config", str(self.config_path), qid],
                           capture_output=True, timeout=deadline(30), cwd=self.dir)
        if r.returncode != 0 or not r.stdout:
            return None
        # "X-Drover-Queue-Id: …\nX-Drover-Sender: …\n…\n\n" then the message as stored.
        if r.stdout.startswith(b"X-Drover-"):
            return r.stdout.split(b"\n\n", 1)[1]
        return r.stdout

    # -- teardown

    def finish(self):
        """Stops the daemon (if running) and returns the list of problems seen: a crash, a
        non-zero exit on SIGTERM, a sanitizer report."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.stop()
            elif not self._stopped_by_us and self.proc.returncode != -signal.SIGKILL:
                self.problems.append(f"drover died by itself with status {self.proc.returncode}")
        for m in self.sanitizer_reports():
            self.problems.append(f"server stderr contains {m!r}")
        return self.problems


@pytest.fixture(scope="session")
def drover_bin():
    path = os.environ.get("DROVER_BIN") or str(REPO / "build/release/drover")
    if not os.access(path, os.X_OK):
        pytest.exit(f"no drover binary at {path}: build it and set DROVER_BIN", returncode=2)
    return os.path.abspath(path)


@pytest.fixture
def make_drover(drover_bin, tmp_path):
    """Factory: make_drover(**conf) -> a started Drover. All are stopped at teardown, and the
    test fails if one crashed, exited non-zero on SIGTERM or reported a sanitizer error."""
    made = []

    def make(start=True, **conf):
        d = Drover(drover_bin, tmp_path / f"drover{len(made)}", **conf)
        made.append(d)
        if start:
            d.start()
        return d

    yield make
    problems = []
    for d in made:
        for p in d.finish():
            problems.append(f"{p}\n--- stderr tail ({d.dir}) ---\n{d.stderr_tail()}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def drover(make_drover):
    """A running Drover on its test defaults."""
    return make_drover()


# ---------------------------------------------------------------- clients

class Reply:
    def __init__(self, lines):
        self.lines = lines  # decoded text lines without CRLF
        self.code = int(lines[-1][:3])
        rest = lines[0][4:]
        m = re.match(r"([245]\.\d{1,3}\.\d{1,3})(?:\s|$)", rest)
        self.status = m.group(1) if m else None

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def queue_id(self):
        m = QUEUED_RE.search(self.text)
        return m.group(1) if m else None

    def __str__(self):
        return self.text

    __repr__ = __str__

    def __eq__(self, other):
        """Reply == "250 2.1.0" compares the code and (if given) the enhanced status."""
        if isinstance(other, str):
            parts = other.split()
            if str(self.code) != parts[0]:
                return False
            return len(parts) < 2 or self.status == parts[1]
        return NotImplemented


class Client:
    """A raw SMTP client: sends exact bytes, reads replies. For hostile input and for checking
    the exact reply code and enhanced status of each step."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=None):
        self.timeout = timeout or deadline(10)
        self.sock = socket.create_connection(
            (host, port), timeout=self.timeout,
            source_address=(source, 0) if source else None)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        return self.sock.recv(65536)

    def _line(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete reply line within {timeout}s (have {self.buf!r})")
            try:
                data = self._recv(left)
            except socket.timeout:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                raise EOFError(f"connection closed (pending {self.buf!r})")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self, timeout=None):
        """Reads one (possibly multi-line) reply."""
        timeout = timeout or self.timeout
        lines = []
        while True:
            line = self._line(timeout)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return Reply(lines)

    def cmd(self, line, timeout=None):
        self.send((line if isinstance(line, bytes) else line.encode()) + b"\r\n")
        return self.reply(timeout)

    def greet(self):
        r = self.reply()
        assert r == "220", r
        return r

    def ehlo(self, name="client.test"):
        r = self.cmd(f"EHLO {name}")
        assert r == "250", r
        return r

    def start(self, name="client.test"):
        """Greeting + EHLO."""
        self.greet()
        return self.ehlo(name)

    def replies_until_eof(self, timeout=None):
        """Every reply until the server closes; fails if it does not close in time."""
        timeout = timeout or self.timeout
        end = time.monotonic() + timeout
        out = []
        while True:
            try:
                out.append(self.reply(max(0.01, end - time.monotonic())))
            except EOFError:
                return out
            except TimeoutError:
                pytest.fail(f"server did not close the connection within {timeout}s "
                            f"(replies so far: {out})")

    def send_data(self, body, end=None):
        """DATA with body sent verbatim (no stuffing, no line-ending fixes), then the end of
        data (".\r\n" after a final CRLF, else "\r\n.\r\n"); returns the reply to it."""
        r = self.cmd("DATA")
        assert r == "354", r
        if end is None:
            end = b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n"
        self.send(body + end)
        return self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


@pytest.fixture
def connect():
    """Factory: connect(port, source=None) -> Client; all closed at teardown."""
    made = []

    def make(port, **kw):
        c = Client(port, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def smtp(port, helo="client.test"):
    """An smtplib client (EHLO done)."""
    s = smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=deadline(20))
    s.ehlo()
    return s


def control_api(address, path, method="GET", body=None, token=None, timeout=30):
    """(HTTP status, JSON reply) of the control API at address ("127.0.0.1:PORT")."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{address}{path}", data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=deadline(timeout)) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def message(subject="test", body="Hello.\r\n", size=None, extra_headers=""):
    """A small RFC 5322 message (bytes, CRLF); size pads the body to about that many octets."""
    head = (f"From: sender@example.org\r\nTo: rcpt@dest.example\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.monotonic_ns()}@client.test>\r\n{extra_headers}\r\n")
    msg = (head + body).encode()
    if size and len(msg) < size:
        line = b"x" * 76 + b"\r\n"
        msg += line * ((size - len(msg)) // len(line))
    return msg


def received_header(stored):
    """The first header field of a stored message, unfolded (the Received: Drover added)."""
    lines = stored.split(b"\r\n")
    field = lines[0]
    for line in lines[1:]:
        if not line[:1] in (b" ", b"\t"):
            break
        field += b" " + line.strip()
    return field.decode("utf-8", "replace")


def send_one(port, sender="sender@example.org", rcpts=("rcpt@dest.example",), msg=None,
             mail_options=(), rcpt_options=(), helo="client.test"):
    """Sends one message with smtplib; returns (queue_id, reply text). Fails on any refusal."""
    msg = msg if msg is not None else message()
    with smtp(port, helo) as s:
        code, text = s.mail(sender, list(mail_options))
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = s.rcpt(r, list(rcpt_options))
            assert code == 250, (code, text)
        code, text = s.data(msg)
        text = text.decode()
        assert code == 250, (code, text)
        m = QUEUED_RE.search(text)
        assert m, text
        assert text.startswith("2.0.0"), text
        return m.group(1), text


class Load:
    """A load generator that remembers what the server acknowledged: `threads` sessions, each
    sending messages back to back; acked maps queue id -> (sender, recipient)."""

    def __init__(self, port, threads=8, size=2048):
        self.port, self.nthreads, self.size = port, threads, size
        self.acked = {}
        self.errors = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []

    def _run(self, n):
        body = message(size=self.size)
        i = 0
        c = None
        try:
            c = Client(self.port, timeout=deadline(20))
            c.start("load.test")
            while not self.stopping.is_set():
                sender, rcpt = f"s{n}-{i}@load.example", f"r{n}-{i}@dest.example"
                i += 1
                # MAIL, RCPT and DATA pipelined in one write, as real senders do.
                c.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n")
                replies = [c.reply() for _ in range(3)]
                if [r.code for r in replies] != [250, 250, 354]:
                    raise AssertionError(f"unexpected replies {replies}")
                c.send(body + b".\r\n")
                r = c.reply()
                if r.code != 250 or not r.queue_id:
                    raise AssertionError(f"unexpected reply to data: {r}")
                with self.lock:
                    self.acked[r.queue_id] = (sender, rcpt)
        except Exception as e:  # the server going away ends the thread
            if not self.stopping.is_set():
                with self.lock:
                    self.errors.append(repr(e))
        finally:
            if c:
                c.close()

    def start(self):
        for n in range(self.nthreads):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def count(self):
        with self.lock:
            return len(self.acked)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(deadline(30))
