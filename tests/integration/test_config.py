"""`drover check-config`, and `drover serve` refusing a bad file."""

import subprocess

import pytest

from conftest import Drover, deadline

VALID = """\
hostname = "drover.test"
threads = 2
event_log = "{dir}/events.jsonl"
relay_networks = {{ "127.0.0.0/8", "::1" }}
spool {{
  directory = "{dir}/spool"
  max_size = "4G"
  batch_max = 256
}}
listener "smtp" {{
  address = "127.0.0.1:2599"
}}
smtp {{
  max_sessions = 1000
  max_sessions_per_ip = 100
  max_message_size = "25M"
  max_recipients = 1000
  max_errors = 20
  command_line_max = 1024
  data_line_max = 1000
  command_timeout = "5m"
  data_timeout = "5m"
  reject_8bit_without_8bitmime = true
}}
"""


def check_config(drover_bin, path):
    return subprocess.run([drover_bin, "check-config", str(path)], capture_output=True, text=True,
                          timeout=deadline(20))


def line_of(text, needle):
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_valid_file(drover_bin, tmp_path):
    path = tmp_path / "drover.conf"
    path.write_text(VALID.format(dir=tmp_path))
    r = check_config(drover_bin, path)
    assert r.returncode == 0, r.stderr


def test_the_fixture_config_is_valid(drover_bin, tmp_path):
    d = Drover(drover_bin, tmp_path, smtp={"max_errors": 3, "max_message_size": "1M"},
               spool={"max_size": "2M"})
    d.port = 2599
    d.write_config()
    r = check_config(drover_bin, d.config_path)
    assert r.returncode == 0, r.stderr


def test_unknown_setting(drover_bin, tmp_path):
    text = VALID.format(dir=tmp_path).replace("  max_errors = 20\n",
                                              "  max_errors = 20\n  max_bogosity = 7\n")
    path = tmp_path / "drover.conf"
    path.write_text(text)
    r = check_config(drover_bin, path)
    assert r.returncode != 0
    assert f"{path}:{line_of(text, 'max_bogosity')}:" in r.stderr, r.stderr
    assert "max_bogosity" in r.stderr


def test_unknown_top_level_setting(drover_bin, tmp_path):
    text = VALID.format(dir=tmp_path) + "frobnicate = yes\n"
    path = tmp_path / "drover.conf"
    path.write_text(text)
    r = check_config(drover_bin, path)
    assert r.returncode != 0
    assert f"{path}:{line_of(text, 'frobnicate')}:" in r.stderr, r.stderr
    assert "frobnicate" in r.stderr


@pytest.mark.parametrize("old,new,setting", [
    ('max_message_size = "25M"', 'max_message_size = "abc"', "max_message_size"),
    ('command_timeout = "5m"', 'command_timeout = "soon"', "command_timeout"),
    ('max_size = "4G"', 'max_size = "-1"', "max_size"),
    ('"127.0.0.0/8", "::1"', '"127.0.0.0/8", "300.1.2.3/8"', "relay_networks"),
    ('address = "127.0.0.1:2599"', 'address = "127.0.0.1:99999"', "address"),
])
def test_bad_value_names_file_line_and_setting(drover_bin, tmp_path, old, new, setting):
    text = VALID.format(dir=tmp_path).replace(old, new)
    assert new in text
    path = tmp_path / "drover.conf"
    path.write_text(text)
    r = check_config(drover_bin, path)
    assert r.returncode != 0
    assert f"{path}:{line_of(text, new)}:" in r.stderr, r.stderr
    assert setting in r.stderr, r.stderr


def test_syntax_error(drover_bin, tmp_path):
    text = VALID.format(dir=tmp_path).replace("threads = 2", "threads = = 2")
    path = tmp_path / "drover.conf"
    path.write_text(text)
    r = check_config(drover_bin, path)
    assert r.returncode != 0
    assert str(path) in r.stderr, r.stderr


def test_missing_file(drover_bin, tmp_path):
    r = check_config(drover_bin, tmp_path / "nope.conf")
    assert r.returncode != 0
    assert "nope.conf" in r.stderr


def test_every_error_is_reported(drover_bin, tmp_path):
    text = (VALID.format(dir=tmp_path)
            .replace('max_message_size = "25M"', 'max_message_size = "abc"')
            .replace("  max_errors = 20\n", "  max_errors = 20\n  max_bogosity = 7\n"))
    path = tmp_path / "drover.conf"
    path.write_text(text)
    r = check_config(drover_bin, path)
    assert r.returncode != 0
    assert "max_message_size" in r.stderr and "max_bogosity" in r.stderr, r.stderr


def test_serve_refuses_a_bad_file(drover_bin, tmp_path):
    text = VALID.format(dir=tmp_path) + "frobnicate = 1\n"
    path = tmp_path / "drover.conf"
    path.write_text(text)
    r = subprocess.run([drover_bin, "serve", "--config", str(path)], capture_output=True,
                       text=True, timeout=deadline(20), stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert "frobnicate" in r.stderr


def test_unknown_subcommand(drover_bin):
    r = subprocess.run([drover_bin, "frobnicate"], capture_output=True, text=True,
                       timeout=deadline(20))
    assert r.returncode != 0
    assert r.stderr
