"""nucleus from Python: a sandbox per agent session, exec as a tool call, files in and out.

Standard library only; it drives the `nucleus` binary (``NUCLEUS_BIN`` or ``nucleus`` on
``PATH``, or ``binary=``) and maps its exit codes and JSON errors to exceptions.

    from nucleus_sdk import Sandbox

    with Sandbox.create(memory="512m", cpus="1", workspace="/srv/proj") as sb:
        r = sb.exec(["pytest", "-q"], timeout=60)
        print(r.exit_code, r.stdout)
        sb.write_file("/tmp/note.txt", b"hello")
        assert sb.read_file("/tmp/note.txt") == b"hello"
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO, Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

__all__ = [
    "Sandbox",
    "Result",
    "NucleusError",
    "ConfigError",
    "NotFoundError",
    "SandboxFailed",
    "TimeoutExpired",
]

#: nucleus's own failure (bad usage, configuration, a sandbox that could not be made).
EXIT_NUCLEUS = 125


class NucleusError(Exception):
    """A nucleus command failed: `kind` (usage, config, not_found, runtime), its message."""

    def __init__(self, message: str, kind: str = "runtime", code: int = EXIT_NUCLEUS):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.code = code


class ConfigError(NucleusError):
    """Bad input: a flag or value nucleus refused (the message names it)."""


class NotFoundError(NucleusError):
    """No such sandbox."""


class SandboxFailed(NucleusError):
    """The sandbox could not be set up or its command could not start."""


class TimeoutExpired(NucleusError):
    """A call's time limit ran out (its whole process tree was killed)."""


def _error(stderr: str, code: int) -> NucleusError:
    """The exception for a failed nucleus command (its --log-format json error line)."""
    for line in reversed(stderr.strip().splitlines()):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and e.get("level") == "error":
            kind = str(e.get("kind", "runtime"))
            msg = str(e.get("msg", e.get("message", line)))
            cls = {"config": ConfigError, "usage": ConfigError, "not_found": NotFoundError}.get(
                kind, SandboxFailed
            )
            return cls(msg, kind, code)
    return NucleusError(stderr.strip() or f"nucleus exited with {code}", "runtime", code)


@dataclass
class Result:
    """What a call into a sandbox gave (`nucleus exec --json --capture`)."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    signal: Optional[int] = None
    timed_out: bool = False
    oom_killed: bool = False
    duration_ms: float = 0.0
    cpu_usec: Optional[int] = None
    peak_memory_bytes: Optional[int] = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    error: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self) -> "Result":
        """This result, or TimeoutExpired / NucleusError when the call did not succeed."""
        if self.timed_out:
            raise TimeoutExpired("the call timed out", "runtime", self.exit_code)
        if self.exit_code != 0:
            raise NucleusError(
                f"exit {self.exit_code}: {self.stderr.strip()[:500]}", "runtime", self.exit_code
            )
        return self


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _flags(options: Mapping[str, Any]) -> List[str]:
    """`run` flags from keywords: True -> --flag, lists repeat, None/False are left out."""
    out: List[str] = []
    for k, v in options.items():
        if v is None or v is False:
            continue
        if v is True:
            out.append(_flag(k))
        elif isinstance(v, (list, tuple)):
            for item in v:
                out += [_flag(k), str(item)]
        elif isinstance(v, Mapping):
            for a, b in v.items():
                out += [_flag(k), f"{a}={b}"]
        else:
            out += [_flag(k), str(v)]
    return out


class Sandbox:
    """One sandbox (`nucleus run -d`), removed by `close()` or the `with` block's end."""

    def __init__(self, sandbox_id: str, binary: str, root: Optional[str] = None,
                 events_path: Optional[str] = None):
        self.id = sandbox_id
        self._bin = binary
        self._root = root
        self._events = events_path
        self._closed = False

    # -- making one -----------------------------------------------------------------------

    @staticmethod
    def _binary(binary: Optional[str]) -> str:
        b = binary or os.environ.get("NUCLEUS_BIN") or shutil.which("nucleus")
        if not b:
            raise NucleusError("no nucleus binary: set NUCLEUS_BIN or put nucleus on PATH")
        return b

    @classmethod
    def create(cls, command: Sequence[str] = ("sleep", "infinity"), *, binary: Optional[str] = None,
               root: Optional[str] = None, **options: Any) -> "Sandbox":
        """A new sandbox running `command` (by default one that waits), made with `nucleus run
        -d` and the run flags given as keywords (``memory="512m"``, ``cpus="1"``,
        ``workspace="/srv/p"``, ``egress_domain=["pypi.org"]``, ``env={"K": "V"}``, …)."""
        b = cls._binary(binary)
        events = tempfile.NamedTemporaryFile(prefix="nucleus-sdk-", suffix=".jsonl", delete=False)
        events.close()
        args = [b, "--log-format", "json"]
        if root:
            args += ["--root", root]
        args += ["run", "-d", "--events-jsonl", events.name] + _flags(options) + ["--", *command]
        p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if p.returncode != 0:
            os.unlink(events.name)
            raise _error(p.stderr, p.returncode)
        return cls(p.stdout.strip(), b, root, events.name)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop and remove the sandbox (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._run(["rm", "-f", self.id], check=False)
        if self._events:
            try:
                os.unlink(self._events)
            except OSError:
                pass

    # -- the binary -----------------------------------------------------------------------

    def _argv(self, args: Sequence[str]) -> List[str]:
        a = [self._bin, "--log-format", "json"]
        if self._root:
            a += ["--root", self._root]
        return a + list(args)

    def _run(self, args: Sequence[str], *, check: bool = True, stdin: Optional[bytes] = None,
             timeout: Optional[float] = None) -> subprocess.CompletedProcess:
        p = subprocess.run(self._argv(args), input=stdin,
                           stdin=None if stdin is not None else subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
        if check and p.returncode != 0:
            raise _error(p.stderr.decode(errors="replace"), p.returncode)
        return p

    # -- calls ----------------------------------------------------------------------------

    def exec(self, cmd: Union[str, Sequence[str]], *, timeout: Optional[float] = None,
             env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
             user: Optional[Union[str, int]] = None, stdin: Optional[bytes] = None,
             capture_max: Optional[int] = None) -> Result:
        """Run `cmd` (a list, or a string for /bin/sh -c) in the sandbox; its whole process
        tree is killed at `timeout` seconds. Never raises for the command's own failure: see
        `Result.check()`."""
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        args = ["exec", "--json", "--capture"]
        if timeout is not None:
            args += ["--timeout", f"{timeout}"]
        if capture_max is not None:
            args += ["--capture-max", str(capture_max)]
        for k, v in (env or {}).items():
            args += ["-e", f"{k}={v}"]
        if cwd:
            args += ["-w", cwd]
        if user is not None:
            args += ["-u", str(user)]
        tmp = None
        try:
            if stdin is not None:
                tmp = tempfile.NamedTemporaryFile(prefix="nucleus-sdk-in-", delete=False)
                tmp.write(stdin)
                tmp.close()
                args += ["--stdin-file", tmp.name]
            p = self._run(args + [self.id, "--", *argv], check=False)
        finally:
            if tmp is not None:
                os.unlink(tmp.name)
        lines = p.stdout.decode(errors="replace").strip().splitlines()
        try:
            v = json.loads(lines[-1]) if lines else None
        except ValueError:
            v = None
        if not isinstance(v, dict):
            raise _error(p.stderr.decode(errors="replace"), p.returncode)
        return Result(
            exit_code=int(v.get("exit_code", p.returncode)),
            stdout=v.get("stdout", ""), stderr=v.get("stderr", ""),
            signal=v.get("signal"), timed_out=bool(v.get("timed_out")),
            oom_killed=bool(v.get("oom_killed")), duration_ms=float(v.get("duration_ms", 0.0)),
            cpu_usec=v.get("cpu_usec"), peak_memory_bytes=v.get("peak_memory_bytes"),
            stdout_truncated=bool(v.get("stdout_truncated")),
            stderr_truncated=bool(v.get("stderr_truncated")), error=v.get("error"), raw=v,
        )

    # -- files ----------------------------------------------------------------------------

    def write_file(self, path: str, data: Union[bytes, str], mode: int = 0o644) -> None:
        """Write `data` to `path` in the sandbox (its directory must exist), as the workload."""
        if isinstance(data, str):
            data = data.encode()
        d, name = os.path.split(path.rstrip("/"))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            t.addfile(info, io.BytesIO(data))
        self._run(["cp", "-", f"{self.id}:{d or '/'}"], stdin=buf.getvalue())

    def read_file(self, path: str) -> bytes:
        """The contents of the file at `path` in the sandbox."""
        p = self._run(["cp", f"{self.id}:{path}", "-"])
        with tarfile.open(fileobj=io.BytesIO(p.stdout), mode="r") as t:
            for m in t.getmembers():
                if m.isfile():
                    f = t.extractfile(m)
                    if f is not None:
                        return f.read()
        raise NucleusError(f"{path}: not a regular file", "runtime")

    def upload(self, src: str, dst: str) -> None:
        """Copy a host file or directory into the sandbox (docker cp's rules)."""
        self._run(["cp", src, f"{self.id}:{dst}"])

    def download(self, src: str, dst: str) -> None:
        """Copy a file or directory of the sandbox to the host (docker cp's rules)."""
        self._run(["cp", f"{self.id}:{src}", dst])

    # -- state ----------------------------------------------------------------------------

    def stats(self) -> Dict[str, Any]:
        """Resource usage now (`nucleus stats --format json`)."""
        p = self._run(["stats", "--format", "json", self.id])
        lines = p.stdout.decode().strip().splitlines()
        return json.loads(lines[-1]) if lines else {}

    def events(self, follow: bool = False, poll: float = 0.1) -> Iterator[Dict[str, Any]]:
        """The sandbox's JSON events so far (with `follow`: and as they come, until it is
        removed)."""
        if not self._events:
            return
        with open(self._events, encoding="utf-8") as f:
            while True:
                line = f.readline()
                if line:
                    if line.strip():
                        yield json.loads(line)
                    continue
                if not follow or self._closed:
                    return
                time.sleep(poll)
