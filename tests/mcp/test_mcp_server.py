"""`nucleus mcp` driven by the official MCP Python SDK's client (PyPI `mcp`), as root, against the
real binary (NUCLEUS_BIN). scripts/test.sh runs these in target/sdk-venv.

Each test gives its server its own state root, so what a session leaves behind is visible."""

import base64
import json
import os
import subprocess
import time

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

BIN = os.environ.get("NUCLEUS_BIN", "nucleus")


def server(root, *flags):
    return StdioServerParameters(command=BIN, args=["--root", str(root), "mcp", *flags])


def sandboxes(root):
    out = subprocess.run([BIN, "--root", str(root), "ps", "-a", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def host_procs(marker):
    """Host processes whose command line holds `marker` (every pid namespace is visible here)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv:
            found.append(int(pid))
    return found


async def wait_gone(marker, secs=10.0):
    """(Awaits, so that the client's loop can send what it has queued: a cancellation.)"""
    deadline = time.monotonic() + secs
    while host_procs(marker) and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    return host_procs(marker)


def run(c, **args):
    return c.call_tool("run_command", args)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_each_tool_in_both_protocol_eras(tmp_path, mode):
    async def main():
        async with Client(server(tmp_path), mode=mode) as c:
            # auto: the 2026-07-28 per-request envelope (server/discover); legacy: initialize.
            assert c.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
            assert c.server_info.name == "nucleus"
            names = [t.name for t in (await c.list_tools()).tools]
            assert names == ["run_command", "read_file", "write_file", "list_directory"]
            assert not sandboxes(tmp_path), "made at the first tool call, not before"

            r = await run(c, command="echo out; echo err >&2; exit 3")
            assert not r.is_error
            s = r.structured_content
            assert (s["exit_code"], s["stdout"], s["stderr"], s["timed_out"]) == (3, "out\n", "err\n", False)
            assert "exit code 3" in r.content[0].text
            r = await run(c, argv=["sh", "-c", "echo $A:$(pwd):$(cat)"], env={"A": "x"}, cwd="/tmp", stdin="in")
            assert r.structured_content["stdout"] == "x:/tmp:in\n"
            [sb] = sandboxes(tmp_path)
            assert sb["name"].startswith("mcp-")

            r = await c.call_tool("write_file", {"path": "/tmp/f.txt", "content": "hello\n", "mode": "0600"})
            assert not r.is_error, r
            r = await c.call_tool("read_file", {"path": "/tmp/f.txt"})
            assert r.content[0].text == "hello\n"
            blob = bytes(range(256))
            r = await c.call_tool("write_file", {"path": "/tmp/b.bin", "content": base64.b64encode(blob).decode(),
                                                 "encoding": "base64"})
            assert not r.is_error, r
            r = await c.call_tool("read_file", {"path": "/tmp/b.bin"})
            assert base64.b64decode(r.content[1].resource.blob) == blob
            r = await c.call_tool("list_directory", {"path": "/tmp"})
            entries = {e["name"]: e for e in r.structured_content["entries"]}
            assert entries["f.txt"]["mode"] == "0600" and entries["f.txt"]["size"] == 6
            assert entries["b.bin"]["type"] == "file"
            r = await run(c, command="stat -c %a:%s /tmp/f.txt")
            assert r.structured_content["stdout"] == "600:6\n"

            # A directory is not a file; a missing path says so; no `..`.
            r = await c.call_tool("read_file", {"path": "/tmp"})
            assert r.is_error and "directory" in r.content[0].text
            r = await c.call_tool("read_file", {"path": "/nonexistent"})
            assert r.is_error and "nonexistent" in r.content[0].text
            r = await c.call_tool("read_file", {"path": "/tmp/../etc/passwd"})
            assert r.is_error and ".." in r.content[0].text
            # The model's mistakes are tool errors it can read; an unknown tool is a protocol error.
            r = await run(c, command="true", privileged=True)
            assert r.is_error and "unknown argument" in r.content[0].text
            with pytest.raises(MCPError):
                await c.call_tool("mount_host", {})
        assert not sandboxes(tmp_path), "removed when the session ended"

    anyio.run(main)


def test_time_limit_output_limit_and_oom_are_results(tmp_path):
    marker = f"31{os.getpid() % 1000:03d}"

    async def main():
        async with Client(server(tmp_path, "--memory", "64m", "--output-max", "64K",
                                 "--call-timeout-max", "2s")) as c:
            t = time.monotonic()
            r = await run(c, command=f"sleep {marker} & sleep {marker}; echo never", timeout_s=600)
            assert time.monotonic() - t < 10, "the operator's maximum (2 s) bounds the model's 600 s"
            s = r.structured_content
            assert (s["timed_out"], s["exit_code"], s["stdout"]) == (True, 124, "")
            assert not await wait_gone(marker), "the background child died with the call"

            r = await run(c, command="head -c 5000000 /dev/zero | tr '\\0' a")
            s = r.structured_content
            assert (s["stdout_truncated"], s["stdout_bytes"], len(s["stdout"])) == (True, 5000000, 65536)

            r = await run(c, argv=["python3", "-c", "b = bytearray(512 << 20)"])
            assert r.structured_content["oom_killed"], r.structured_content
            # The session goes on after each.
            assert (await run(c, command="echo ok")).structured_content["stdout"] == "ok\n"

    anyio.run(main)


def test_cancelled_call_kills_its_process_tree(tmp_path):
    marker = f"32{os.getpid() % 1000:03d}"

    async def main():
        async with Client(server(tmp_path)) as c:
            await run(c, command="true")
            with anyio.move_on_after(1.5) as scope:
                await run(c, command=f"sleep {marker} & sleep {marker}; wait")
            assert scope.cancelled_caught
            assert not await wait_gone(marker), "a cancelled call leaves nothing running"
            assert (await run(c, command="echo still here")).structured_content["stdout"] == "still here\n"

    anyio.run(main)


def test_two_sessions_in_parallel_are_isolated(tmp_path):
    results = {}

    async def session(tag):
        async with Client(server(tmp_path)) as c:
            await c.call_tool("write_file", {"path": "/tmp/mine", "content": tag})
            t = time.monotonic()
            r = await run(c, command="sleep 1; cat /tmp/mine; echo; hostname")
            results[tag] = (r.structured_content["stdout"], time.monotonic() - t)
            r = await c.call_tool("read_file", {"path": "/tmp/other"})
            assert r.is_error
            await c.call_tool("write_file", {"path": "/tmp/other", "content": tag})

    async def main():
        t = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(session, "a")
            tg.start_soon(session, "b")
        return time.monotonic() - t

    anyio.run(main)
    (out_a, _), (out_b, _) = results["a"], results["b"]
    assert out_a.startswith("a\n") and out_b.startswith("b\n"), results
    assert out_a != out_b, "two sandboxes, two hostnames"
    assert not sandboxes(tmp_path)


def test_operator_flags_cannot_be_loosened_by_the_model(tmp_path):
    async def main():
        async with Client(server(tmp_path, "--network", "none", "--pids", "64")) as c:
            # An argv that looks like a flag is a program name after `--`, nothing more.
            r = await run(c, argv=["--privileged"])
            assert r.is_error and r.structured_content["exit_code"] == 127, r
            assert "--privileged: command not found" in r.structured_content["error"]
            r = await run(c, command="cat /proc/net/dev | wc -l; id -u")
            assert r.structured_content["stdout"].split() == ["3", "0"], "only lo: no network"
            r = await run(c, command="for i in $(seq 100); do sleep 9 & done")
            assert "fork" in r.structured_content["stderr"], "--pids 64 holds"

    anyio.run(main)


def test_refused_flags_fail_before_serving(tmp_path):
    for flags, says in [(["--name", "x"], "--name"), (["-d"], "--detach"), (["--memory", "lots"], "--memory"),
                        (["--call-timeout", "20m"], "--call-timeout")]:
        p = subprocess.run([BIN, "--root", str(tmp_path), "mcp", *flags], input="", capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 125, (flags, p)
        assert says in p.stderr and len(p.stderr.strip().splitlines()) == 1, (flags, p.stderr)
        assert p.stdout == ""
    assert not sandboxes(tmp_path)
