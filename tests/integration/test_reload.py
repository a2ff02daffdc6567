"""Live reload (issue 9): SIGHUP, POST /api/v1/reload and `drover reload` read the whole
configuration again; a mistake changes nothing and names file:line; otherwise new sessions
and delivery connections use the new configuration while smtp-source keeps pushing mail:
no connection refused or reset, no message lost."""

import os
import signal
import socket
import subprocess

import pytest

from conftest import (SANITIZED, SMTP_SOURCE, control_api, deadline, free_port, give, send_one, smtp,
                      traversable, wait_for)
from receiver import Receiver

DEST = "dest.example"


def greeting(port):
    with socket.create_connection(("127.0.0.1", port), timeout=deadline(10)) as s:
        return s.recv(512).decode()


def reload_api(d):
    return control_api(f"127.0.0.1:{d.control_port}", "/api/v1/reload", "POST")


@pytest.fixture
def two_receivers():
    with Receiver() as a, Receiver() as b:
        yield a, b


def shaping_rules(tmp_path, max_connections):
    path = tmp_path / "shaping.conf"
    path.write_text(f'domain "{DEST}" {{\n  max_connections = {max_connections}\n}}\n')
    give(path)
    traversable(tmp_path)
    return path


def start_server(make_drover, rx_port, shaping=None, **extra):
    control_port = free_port()
    delivery = {"max_connections": 4}
    if shaping is not None:
        delivery["shaping"] = str(shaping)
    d = make_drover(control=f"127.0.0.1:{control_port}", routes={DEST: [f"127.0.0.1:{rx_port}"]},
                    delivery=delivery, **extra)
    d.control_port = control_port
    return d


def test_reload_reports_changes_and_a_new_listener_accepts(make_drover, two_receivers):
    a, _ = two_receivers
    d = start_server(make_drover, a.port)
    status, rep = reload_api(d)
    assert status == 200, rep
    assert rep["reloaded"] is True and rep["changes"] == [] and rep["restart_required"] == []

    new_port = free_port()
    d.conf["extra"] = (f'listener "second" {{\n  address = "127.0.0.1:{new_port}"\n}}\n'
                       "threads = 3\n")
    d.conf["smtp"] = {"max_recipients": 2}
    d.write_config()
    status, rep = reload_api(d)
    assert status == 200, rep
    changes = {(c["what"], c["change"], c["applied"]) for c in rep["changes"]}
    assert ('listener "second"', "added", True) in changes
    assert ("smtp", "changed", True) in changes
    assert ("threads", "changed", False) in changes
    assert rep["restart_required"] == ["threads"]
    # The new listener answers, the old one still does.
    assert greeting(new_port).startswith("220 ")
    assert greeting(d.port).startswith("220 ")
    # The new limit is in force for new sessions.
    with smtp(new_port) as s:
        s.mail("a@example.org")
        assert s.rcpt(f"r1@{DEST}")[0] == 250
        assert s.rcpt(f"r2@{DEST}")[0] == 250
        code, text = s.rcpt(f"r3@{DEST}")
        assert code == 452, (code, text)

    # Removed again: its port stops answering, the first listener carries on.
    d.conf["extra"] = ""
    d.write_config()
    status, rep = reload_api(d)
    assert status == 200, rep
    assert ('listener "second"', "removed", True) in {
        (c["what"], c["change"], c["applied"]) for c in rep["changes"]}
    with pytest.raises(OSError):
        greeting(new_port)
    assert greeting(d.port).startswith("220 ")


def test_invalid_configuration_changes_nothing_and_names_file_and_line(make_drover,
                                                                         two_receivers):
    a, _ = two_receivers
    d = start_server(make_drover, a.port)
    good = d.config_path.read_text()
    bad_port = free_port()
    d.config_path.write_text(good + f'listener "bad" {{\n  address = "127.0.0.1:{bad_port}"\n'
                             '  max_message_size = "lots"\n}\n')
    line = len(good.splitlines()) + 3
    status, rep = reload_api(d)
    assert status == 422, rep
    assert rep["reloaded"] is False
    assert f"{d.config_path}:{line}:" in rep["error"], rep["error"]
    assert "reload refused, the running configuration stays" in d.stderr_text()
    with pytest.raises(OSError):
        greeting(bad_port)
    # A listener whose address is taken: refused before anything changes.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        d.config_path.write_text(good + 'listener "taken" {\n  address = '
                                 f'"127.0.0.1:{taken.getsockname()[1]}"\n}}\n')
        status, rep = reload_api(d)
        assert status == 422 and "cannot listen" in rep["error"], rep
        # The `drover reload` command says the same, with exit status 1.
        r = d.cli("reload", "--config", str(d.config_path), check=False)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "cannot listen" in r.stderr, r.stderr
    finally:
        taken.close()
    # SIGHUP with the mistake: logged, the server runs on.
    d.config_path.write_text(good + "threads = many\n")
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: d.stderr_text().count("reload refused") >= 4, deadline(10),
             what="the SIGHUP reload refused")
    assert d.alive()
    send_one(d.port)  # fails on any refusal
    d.config_path.write_text(good)
    r = d.cli("reload", "--config", str(d.config_path))
    assert "in force" in r.stdout or "no change" in r.stdout, r.stdout


@pytest.mark.skipif(not os.access(SMTP_SOURCE, os.X_OK), reason="smtp-source (postfix) missing")
def test_reload_under_load_loses_nothing_and_the_new_route_is_in_force(make_drover, tmp_path,
                                                                          two_receivers):
    """smtp-source pushes mail while the configuration is reloaded again and again — the same
    file, a file with a mistake, a new listener, a route to another receiver with a shaping
    rule of one connection: every message is accepted (smtp-source reports no refused or reset
    connection), every one is delivered, and once the route changed, new mail goes to the
    second receiver over one connection at a time."""
    a, b = two_receivers
    d = start_server(make_drover, a.port, shaping=shaping_rules(tmp_path, 4))
    count = 1500 if SANITIZED else 6000
    good = d.config_path.read_text()
    out = d.dir / "smtp-source.out"
    with open(out, "w") as f:
        load = subprocess.Popen(
            [SMTP_SOURCE, "-s", "8", "-m", str(count), "-l", "1024", "-f", "load@example.org",
             "-t", f"rcpt@{DEST}", f"127.0.0.1:{d.port}"],
            stdout=f, stderr=subprocess.STDOUT)
    reloads = {"ok": 0, "refused": 0}
    try:
        wait_for(lambda: len(a.messages()) >= 50, deadline(60), interval=0.05,
                 what="mail flowing to the first receiver")
        for i in range(6):
            if i % 3 == 1:
                d.config_path.write_text(good + "smtp {\n  max_sessions = -1\n}\n")
                status, rep = reload_api(d)
                assert status == 422, rep
                reloads["refused"] += 1
            else:
                extra = f'listener "l{i}" {{\n  address = "127.0.0.1:{free_port()}"\n}}\n'
                d.config_path.write_text(good + extra)
                if i % 2:
                    d.send_signal(signal.SIGHUP)
                    wait_for(lambda: d.stderr_text().count("reload: configuration from") >=
                             reloads["ok"] + 1, deadline(10), what="the SIGHUP reload")
                else:
                    status, rep = reload_api(d)
                    assert status == 200, rep
                reloads["ok"] += 1
        # The route changes: new delivery attempts go to the second receiver, one connection
        # at a time (the shaping rule changed in the same reload).
        shaping_rules(tmp_path, 1)
        d.config_path.write_text(good.replace(f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"))
        status, rep = reload_api(d)
        assert status == 200, rep
        assert (f'route "{DEST}"', "changed", True) in {
            (c["what"], c["change"], c["applied"]) for c in rep["changes"]}
        assert load.wait(deadline(300)) == 0, out.read_text()[-2000:]
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    text = out.read_text()
    assert "fatal" not in text and "reset" not in text.lower(), text[-2000:]
    # Every message is delivered exactly where the route said at the time.
    wait_for(lambda: len(a.messages()) + len(b.messages()) >= count, deadline(120),
             interval=0.2, what=f"{count} deliveries")
    assert len(b.messages()) > 0, "the new route was not used"
    assert b.server.max_active == 1, b.server.max_active
    assert a.server.max_active > 1  # the old rule allowed more
    receptions = d.wait_events(lambda e: e.get("type") == "Reception", count=count)
    assert len(receptions) == count
    wait_for(lambda: d.queue_list() == [], deadline(60), what="an empty queue")
    # After the route changed, nothing more went to the first receiver.
    n_a = len(a.messages())
    send_one(d.port)
    wait_for(lambda: len(b.messages()) + n_a >= count + 1, deadline(30), what="one more")
    assert len(a.messages()) == n_a


def test_reload_changes_the_control_token(make_drover, two_receivers):
    a, _ = two_receivers
    d = start_server(make_drover, a.port)
    address = f"127.0.0.1:{d.control_port}"
    d.conf["control_token"] = "s3cret-token-for-the-test"
    d.write_config()
    status, rep = reload_api(d)
    assert status == 200 and ("control", "changed", True) in {
        (c["what"], c["change"], c["applied"]) for c in rep["changes"]}, rep

    def refused_without_token():
        return control_api(address, "/api/v1/status")[0] == 401

    wait_for(refused_without_token, deadline(10), what="the token in force")
    status, _ = control_api(address, "/api/v1/status", token="s3cret-token-for-the-test")
    assert status == 200
