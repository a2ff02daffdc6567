"""`drover suppress ...`: the suppression list as an operator drives it from the shell - add,
check, remove, list, import, export, sweep - with the exit statuses scripts rely on (check: 0
suppressed, 1 not; 2 for usage and store errors).

Every test uses a list of its own (--dir under tmp_path); no server runs.
"""

import csv
import io
import json
import subprocess
import time

import pytest

from conftest import SANITIZER_MARKERS, deadline


@pytest.fixture(scope="module")
def wired(drover_bin):
    """Skips the module if this drover has no `suppress` command yet (the dispatch line in
    src/main.c)."""
    r = subprocess.run([drover_bin, "suppress", "help"], capture_output=True, text=True,
                       timeout=deadline(30))
    if r.returncode != 0 or "drover suppress" not in r.stdout:
        pytest.skip("`drover suppress` is not a command of this drover yet (src/main.c must "
                    "dispatch it to suppress_cli()): " + (r.stderr.strip().splitlines() or
                                                          ["no output"])[0])
    return drover_bin


@pytest.fixture
def sup(wired, tmp_path):
    """Runs `drover suppress ACTION --dir <a list of this test's> ARGS`; returns the
    process."""
    store = tmp_path / "suppress"

    def run(*args, stdin=None, store_dir=None, check_rc=None, timeout=60):
        # --dir right after the action: what a test puts last stays last.
        argv = [*args[:1], "--dir", str(store_dir or store), *args[1:]] if args else []
        r = subprocess.run([wired, "suppress", *argv],
                           input=stdin, capture_output=True, text=True,
                           timeout=deadline(timeout))
        for marker in SANITIZER_MARKERS:
            assert marker not in r.stderr, r.stderr
        if check_rc is not None:
            assert r.returncode == check_rc, (args, r.returncode, r.stdout, r.stderr)
        return r

    run.store = store
    return run


def test_add_check_remove(sup):
    # Nothing was ever added: reading is an error (no list), not an empty answer.
    r = sup("check", "bob@example.com")
    assert r.returncode == 2 and "nothing was ever added" in r.stderr

    r = sup("add", "Bob@Example.COM", "--reason", "hard-bounce", "--source",
            "550 5.1.1 user unknown", check_rc=0)
    assert "bob@example.com" in r.stdout

    r = sup("check", "bob@example.com", check_rc=0)
    assert r.stdout.startswith("suppressed: bob@example.com")
    assert "hard-bounce" in r.stdout and "550 5.1.1 user unknown" in r.stdout
    sup("check", "BOB@example.com", check_rc=0)  # local parts compare case-insensitively
    r = sup("check", "alice@example.com", check_rc=1)
    assert r.stdout.startswith("not suppressed")

    sup("remove", "bob@EXAMPLE.com", check_rc=0)
    sup("check", "bob@example.com", check_rc=1)
    r = sup("remove", "bob@example.com", check_rc=1)
    assert "not in the list" in r.stdout


def test_tenants_and_domains(sup):
    sup("add", "ann@example.com", "--tenant", "acme", "--reason", "unsubscribe", check_rc=0)
    sup("add", "@dead.example", check_rc=0)  # global, whole domain

    sup("check", "ann@example.com", "--tenant", "acme", check_rc=0)
    sup("check", "ann@example.com", "--tenant", "globex", check_rc=1)
    sup("check", "ann@example.com", check_rc=1)

    r = sup("check", "anyone@DEAD.example", "--tenant", "globex", check_rc=0)
    assert "by @dead.example" in r.stdout and "global" in r.stdout
    sup("check", "anyone@sub.dead.example", check_rc=1)  # exactly the domain

    sup("remove", "ann@example.com", check_rc=1)  # not a global entry
    sup("remove", "ann@example.com", "--tenant", "acme", check_rc=0)


def test_list_and_json(sup):
    sup("add", "b@example.com", "--tenant", "acme", check_rc=0)
    sup("add", "a@example.com", "--reason", "complaint", "--source", 'FBL, "abuse"',
        check_rc=0)

    r = sup("list", check_rc=0)
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["TENANT", "ADDRESS", "REASON"]
    assert lines[-1] == "2 entries"
    assert lines[1].split()[:3] == ["-", "a@example.com", "complaint"]  # global first
    assert lines[2].split()[:3] == ["acme", "b@example.com", "manual"]

    r = sup("list", "--json", check_rc=0)
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["tenant"], x["address"], x["reason"]) for x in records] == [
        ("", "a@example.com", "complaint"), ("acme", "b@example.com", "manual")]
    assert records[0]["source"] == 'FBL, "abuse"' and records[0]["expires"] is None
    assert records[0]["added"].endswith("Z")

    r = sup("list", "--tenant", "acme", "--json", check_rc=0)
    assert [json.loads(x)["address"] for x in r.stdout.splitlines()] == ["b@example.com"]
    r = sup("list", "--tenant", "", "--json", check_rc=0)  # the global entries only
    assert [json.loads(x)["address"] for x in r.stdout.splitlines()] == ["a@example.com"]


def test_import_export_round_trip(sup, tmp_path):
    src = tmp_path / "list.txt"
    src.write_text("# bounces from the old MTA\n"
                   "one@example.com\n"
                   "two@example.com,hard-bounce,\"550 5.1.1, no such user\"\n"
                   "not-an-address\n"
                   "@closed.example,manual\n")
    r = sup("import", str(src), "--tenant", "acme", "--reason", "unsubscribe")
    assert r.returncode == 1, r  # a line was refused; the rest is in
    assert f"{src}:4: " in r.stderr and "no '@'" in r.stderr
    assert "imported 3 entries" in r.stdout

    sup("check", "one@example.com", "--tenant", "acme", check_rc=0)
    sup("check", "x@closed.example", "--tenant", "acme", check_rc=0)

    exported = sup("export", check_rc=0).stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["address"] for r in rows] == ["@closed.example", "one@example.com",
                                            "two@example.com"]
    assert rows[1]["reason"] == "unsubscribe" and rows[1]["tenant"] == "acme"
    assert rows[2]["reason"] == "hard-bounce"
    assert rows[2]["source"] == "550 5.1.1, no such user"

    # The export imports as it is, into another list: the same entries, times included.
    other = tmp_path / "other"
    copy = tmp_path / "export.csv"
    copy.write_text(exported)
    sup("import", str(copy), store_dir=other, check_rc=0)
    assert sup("export", store_dir=other, check_rc=0).stdout == exported


def test_import_stdin_and_scale(sup):
    n = 100_000
    text = "".join(f"user{i}@domain{i % 500}.example\n" for i in range(n))
    start = time.monotonic()
    r = sup("import", "-", stdin=text, check_rc=0, timeout=120)
    took = time.monotonic() - start
    assert f"imported {n} entries from (stdin)" in r.stdout
    assert took < deadline(10), f"{n} addresses took {took:.1f} s"
    sup("check", f"user{n - 1}@domain{(n - 1) % 500}.example", check_rc=0)
    sup("check", f"user{n}@domain0.example", check_rc=1)
    assert sup("list", check_rc=0).stdout.splitlines()[-1] == f"{n} entries"


def test_expiry_and_sweep(sup):
    sup("add", "temp@example.com", "--expires", "1s", check_rc=0)
    sup("add", "keep@example.com", "--expires", "30d", check_rc=0)
    sup("check", "temp@example.com", check_rc=0)
    time.sleep(1.2)
    sup("check", "temp@example.com", check_rc=1)  # expired: no longer suppresses
    assert "temp@example.com" not in sup("list", check_rc=0).stdout
    assert "temp@example.com" in sup("list", "--expired", check_rc=0).stdout
    assert "1 expired entry removed" in sup("sweep", check_rc=0).stdout
    assert "temp@example.com" not in sup("list", "--expired", check_rc=0).stdout
    sup("check", "keep@example.com", check_rc=0)


@pytest.mark.parametrize("args, says", [
    ([], "an action is needed"),
    (["frobnicate"], "unknown action"),
    (["add"], "missing ADDRESS"),
    (["add", "a@example.com", "b@example.com"], "unexpected argument"),
    (["add", "a@example.com", "--colour", "red"], "unknown option --colour"),
    (["add", "a@example.com", "--json"], "--json does not apply"),
    (["add", "a@example.com", "--reason", "grumpy"], "--reason \"grumpy\""),
    (["add", "a@example.com", "--expires", "30"], "--expires \"30\""),
    (["add", "a@example.com", "--tenant"], "--tenant needs a value"),
    (["add", "no-domain"], "no '@'"),
    (["add", "a@example.com", "--tenant", "two words"], "tenant"),
    (["check", "postmaster"], "no '@'"),
    (["import"], "missing FILE"),
])
def test_usage_errors(sup, args, says):
    r = sup(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert says in r.stderr, r.stderr


def test_help(wired):
    r = subprocess.run([wired, "suppress", "help"], capture_output=True, text=True,
                       timeout=deadline(30))
    assert r.returncode == 0
    for action in ("add", "remove", "check", "list", "import", "export", "sweep"):
        assert f"  {action}" in r.stdout
