"""The control plane over HTTP: Prometheus metrics and the status API follow what the server
does; a bearer token is enforced when set and required off loopback; bad requests get clear
answers."""

import json
import subprocess
import urllib.error
import urllib.request

from conftest import deadline, free_port, message, smtp


def get(port, path, token=None, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=deadline(10)) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def metrics(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_and_status_follow_receptions(make_drover):
    port = free_port()
    d = make_drover(control=f"127.0.0.1:{port}")
    code, headers, text = get(port, "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE drover_messages_received_total counter" in text
    assert metrics(text)["drover_messages_received_total"] == 0
    with smtp(d.port) as s:
        for _ in range(3):
            s.sendmail("a@example.com", ["b@example.org"], message())
    m = metrics(get(port, "/metrics")[2])
    assert m["drover_messages_received_total"] == 3
    assert m["drover_spool_messages"] == 3
    assert m["drover_spool_commits_total"] >= 1
    assert m["drover_smtp_sessions_total"] >= 1
    code, _, body = get(port, "/api/v1/status")
    status = json.loads(body)
    assert code == 200 and status["messages_received_total"] == 3 and status["version"]


def test_unknown_paths_and_methods(make_drover):
    port = free_port()
    make_drover(control=f"127.0.0.1:{port}")
    code, _, body = get(port, "/nothing")
    assert code == 404 and json.loads(body)["error"]
    code, headers, _ = get(port, "/metrics", method="POST")
    assert code == 405 and headers["Allow"] == "GET"


def test_bearer_token_is_enforced(make_drover):
    port = free_port()
    make_drover(control=f"127.0.0.1:{port}", control_token="s3cret")
    code, headers, _ = get(port, "/metrics")
    assert code == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert get(port, "/metrics", token="wrong")[0] == 401
    assert get(port, "/metrics", token="s3cre")[0] == 401
    assert get(port, "/metrics", token="s3cret")[0] == 200


def test_token_required_off_loopback_and_port_in_use(make_drover, drover_bin):
    d = make_drover(start=False, control="0.0.0.0:8025")
    d.port = free_port()
    d.write_config()
    r = subprocess.run([drover_bin, "check-config", str(d.config_path)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    assert "control.address: 0.0.0.0:8025 is not a loopback address" in r.stderr, r.stderr
    # A control port already taken: the server says so and does not start.
    port = free_port()
    make_drover(control=f"127.0.0.1:{port}")
    clash = make_drover(start=False, control=f"127.0.0.1:{port}")
    clash.port = free_port()
    clash.write_config()
    r = subprocess.run([drover_bin, "serve", "--config", str(clash.config_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert f"control.address 127.0.0.1:{port}: cannot listen there" in r.stderr, r.stderr
