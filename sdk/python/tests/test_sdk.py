"""The SDK against the real binary (NUCLEUS_BIN; scripts/test.sh runs these as root)."""

import os
import tempfile

import pytest

from nucleus_sdk import ConfigError, NotFoundError, Result, Sandbox, TimeoutExpired


@pytest.fixture
def sb():
    with Sandbox.create(memory="256m", pids=256) as s:
        yield s


def test_exec_results(sb: Sandbox) -> None:
    r = sb.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert isinstance(r, Result)
    assert (r.exit_code, r.stdout, r.stderr, r.ok) == (3, "out\n", "err\n", False)
    r = sb.exec("echo $GREETING from $(pwd) as $(id -u)", env={"GREETING": "hi"}, cwd="/tmp", user=1000)
    assert r.stdout == "hi from /tmp as 1000\n", r
    assert sb.exec(["cat"], stdin=b"piped in").stdout == "piped in"
    r = sb.exec("sleep 100 & sleep 100", timeout=0.5)
    assert r.timed_out and r.exit_code == 124
    with pytest.raises(TimeoutExpired):
        r.check()
    r = sb.exec(["head", "-c", "100000", "/dev/zero"], capture_max=1000)
    assert r.stdout_truncated and len(r.stdout) == 1000
    assert sb.exec(["true"]).check().ok


def test_files(sb: Sandbox) -> None:
    data = bytes(range(256)) * 100
    sb.write_file("/tmp/blob.bin", data)
    assert sb.read_file("/tmp/blob.bin") == data
    assert sb.exec(["stat", "-c", "%s %a", "/tmp/blob.bin"]).stdout == f"{len(data)} 644\n"
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "tree")
        os.makedirs(os.path.join(src, "a/b"))
        with open(os.path.join(src, "a/b/c.txt"), "w") as f:
            f.write("deep\n")
        sb.upload(src, "/tmp/up")
        assert sb.exec(["cat", "/tmp/up/a/b/c.txt"]).stdout == "deep\n"
        out = os.path.join(d, "down")
        sb.download("/tmp/up", out)
        with open(os.path.join(out, "a/b/c.txt")) as f:
            assert f.read() == "deep\n"


def test_stats_and_events(sb: Sandbox) -> None:
    st = sb.stats()
    assert isinstance(st, dict) and st, st
    kinds = [e["event"] for e in sb.events()]
    assert "started" in kinds, kinds


def test_errors() -> None:
    with pytest.raises(ConfigError) as e:
        Sandbox.create(memory="lots")
    assert "--memory" in str(e.value)
    s = Sandbox.create()
    s.close()
    with pytest.raises(NotFoundError):
        s.exec(["true"])
    s.close()  # idempotent
