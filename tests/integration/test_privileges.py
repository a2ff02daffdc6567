"""Started as root, drover serve binds its ports and reads its keys, then becomes `user` for
good; it refuses a user that does not exist or is root. (Skipped when the tests do not run
as root: there is nothing to drop.)"""

import os
import subprocess

import pytest

from conftest import RUN_USER, deadline, free_port, message, smtp, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")


def ids(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("Uid:", "Gid:")):
                out[line[:3]] = [int(x) for x in line.split()[1:]]
    return out


def test_runs_as_the_configured_user_and_still_works(make_drover):
    import pwd
    pw = pwd.getpwnam(RUN_USER)
    d = make_drover()
    # Listening comes first; the user changes once everything is set up.
    wait_for(lambda: f"running as user {RUN_USER}" in d.stderr_text(), deadline(10),
             what="the change of user")
    st = ids(d.pid)
    # real, effective, saved and filesystem ids: all the user's, none root.
    assert st["Uid"] == [pw.pw_uid] * 4, st
    assert st["Gid"] == [pw.pw_gid] * 4, st
    assert f"running as user {RUN_USER}" in d.stderr_text()
    with smtp(d.port) as s:
        s.sendmail("a@example.com", ["b@example.org"], message())
    assert len(d.queue_ids()) == 1  # the spool, opened as root, is written as the user


@pytest.mark.parametrize("user,why", [("no-such-user-here", "no such user"),
                                      ("root", "is root"), ("", "user is empty")])
def test_refuses_a_missing_or_root_user(make_drover, drover_bin, user, why):
    d = make_drover(start=False, user=user)
    d.port = free_port()
    d.write_config()
    r = subprocess.run([drover_bin, "serve", "--config", str(d.config_path)],
                       capture_output=True, text=True, timeout=deadline(30))
    assert r.returncode != 0
    assert why in r.stderr, r.stderr
    assert not (d.dir / "spool").exists() or not any((d.dir / "spool").iterdir())
