"""The real CLI in processes of its own, started warm: what ``python -m portfolio_cli ARGS`` does, at a
fraction of its start-up cost.

A test that kills the CLI, runs it beside another, or fills its disk needs the command in a process
of its own; most of such a process's time is importing the libraries (ccxt, sqlite-utils, typer,
pydantic, pandas) and the package before the command starts. Here one server process per test
worker imports them once and forks a child per command. The child imports the command line
(``portfolio_cli.cli``, whose consoles look at the terminal) afresh, as a new interpreter would,
takes the caller's arguments, environment, working directory, resource limits and standard streams,
runs the package's ``__main__`` and exits the way an interpreter does (``atexit``, then the
interpreter's own shutdown). It is a real process: it can be killed with SIGKILL at any moment, its
writes go to the real files, it runs beside others.

Used only where a process of its own is what the test needs; the packaging tests, which check what a
cold start imports, still start plain interpreters.

    run(["init"], timeout=60)                       # like subprocess.run(..., capture_output=True, text=True)
    process = popen(["open", "BTC/USDT", "--qty", "1"])   # like subprocess.Popen; .poll() .wait() .kill()
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import resource
import runpy
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# What a command imports before it starts, besides the package itself (see ``_preload_the_package``).
PRELOAD = ("typer", "rich.console", "rich.table", "pydantic", "sqlite_utils", "ccxt", "pandas")
# A numeric library's thread pool would make the server multi-threaded, and forking one is unsafe.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# The server (``python warm.py SOCKET``), started by the first ``popen`` of a test process.


def _serve(path: str):
    """Accept commands until the caller's end of stdin closes. Returns, in a forked child only, the
    command that child is to run."""
    for name in PRELOAD:
        importlib.import_module(name)
    _preload_the_package()
    gc.freeze()  # what is loaded now stays out of every child's collections (and its pages shared)
    if threading.active_count() != 1:
        raise SystemExit("warm server: a preloaded library started a thread; forking it is unsafe")
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    running: dict[int, socket.socket] = {}  # child pid → its caller's connection
    callers: dict[socket.socket, int] = {}
    while True:
        readable, _, _ = select.select([sys.stdin, listener, wake_r, *callers], [], [])
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1024):
            for pid in running:  # the test process is gone: so are its commands
                os.kill(pid, signal.SIGKILL)
            return None
        if wake_r in readable:
            os.read(wake_r, 4096)
            while running:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
                if pid == 0:
                    break
                caller = running.pop(pid)
                callers.pop(caller, None)
                _send(caller, {"code": os.waitstatus_to_exitcode(status), "cpu": usage.ru_utime + usage.ru_stime})
                caller.close()
        for caller in [c for c in readable if c in callers]:
            message = caller.recv(1024)
            pid = callers[caller]
            if not message:  # the caller went away without waiting: end its command
                os.kill(pid, signal.SIGKILL)
                callers.pop(caller)
            else:
                for line in message.decode().splitlines():
                    os.kill(pid, int(json.loads(line)["signal"]))  # not yet reaped, so still this child
        if listener in readable:
            caller, _ = listener.accept()
            data, fds, _, _ = socket.recv_fds(caller, 1 << 16, 3)
            while not data.endswith(b"\n"):  # a long environment may come in parts
                data += caller.recv(1 << 16)
            request = json.loads(data)
            pid = os.fork()
            if pid == 0:  # the child: drop the server's state and run the command
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for s in (listener, caller, *callers):
                    s.close()
                for fd in (wake_r, wake_w):
                    os.close(fd)
                return request, fds
            for fd in fds:
                os.close(fd)
            running[pid], callers[caller] = caller, pid
            _send(caller, {"pid": pid})


def _preload_the_package() -> None:
    """Import the whole package, then forget its command line (``portfolio_cli.cli``), which each
    child imports afresh: its consoles read the terminal and the environment when they are made.
    Nothing outside ``cli`` imports it, and the rest keeps no state from being imported."""
    import portfolio_cli.cli

    portfolio_cli.cli._app(None)  # every command's module, and all they import
    command_line = ("portfolio_cli.cli", "portfolio_cli.__main__")
    for name in [m for m in sys.modules if m in command_line or m.startswith("portfolio_cli.cli.")]:
        del sys.modules[name]
    del sys.modules["portfolio_cli"].cli
    import rich

    if rich._console is not None:
        raise SystemExit("warm server: rich's console was made while preloading; a child would inherit it")


def _send(caller: socket.socket, message: dict) -> None:
    with contextlib.suppress(OSError):  # the caller is gone
        caller.sendall((json.dumps(message) + "\n").encode())


def _run_command(request: dict, fds: list[int]) -> None:
    """In the child: become ``python -m portfolio_cli ARGS`` with the caller's streams, environment
    and directory; exits as an interpreter does."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    for name, (soft, hard) in request.get("limits", {}).items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = request["cwd"]  # as ``python -m`` sets it
    sys.argv = ["portfolio_cli", *request["args"]]
    runpy.run_module("portfolio_cli", run_name="__main__", alter_sys=True)


# The caller's side.


class _Server:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="warm-")
        self.path = os.path.join(self.dir, "socket")
        self.process = subprocess.Popen(
            [sys.executable, __file__, self.path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, **SINGLE_THREADED},
        )  # fmt: skip
        if self.process.stdout is None or self.process.stdout.readline() != b"ready\n":
            raise RuntimeError("the warm server did not start")
        atexit.register(self.close)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)
        Path(self.path).unlink(missing_ok=True)
        os.rmdir(self.dir)


_server: _Server | None = None
_lock = threading.Lock()


def _the_server() -> _Server:
    global _server
    with _lock:
        if _server is None:
            _server = _Server()
        return _server


class Process:
    """A command running in a warm child: ``subprocess.Popen``'s ``pid``, ``returncode``, ``poll``,
    ``wait``, ``send_signal``, ``kill`` and ``communicate``. Its output goes to temporary files (or
    to /dev/null), so it never blocks on a full pipe."""

    def __init__(
        self, args: list[str], env: dict | None = None, cwd: str | Path | None = None,
        capture: bool = True, stdin: bytes | None = None, limits: dict[str, tuple[int, int]] | None = None,
    ) -> None:  # fmt: skip
        self.args = args
        self.returncode: int | None = None
        self.cpu: float | None = None  # CPU seconds it took, once it has ended
        # Kept until the output is read; closed with this object.
        self._files = [tempfile.TemporaryFile() for _ in range(3 if capture else 1)]  # noqa: SIM115
        if stdin:
            self._files[0].write(stdin)
            self._files[0].seek(0)
        null = os.open(os.devnull, os.O_RDWR)
        fds = [self._files[0].fileno() if stdin else null]
        fds += [f.fileno() for f in self._files[1:]] if capture else [null, null]
        request = {
            "args": list(args),
            "env": dict(os.environ if env is None else env),
            "cwd": str(cwd or os.getcwd()),
            "limits": limits or {},  # resource limits by name, e.g. {"RLIMIT_FSIZE": (soft, hard)}
        }
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._conn.connect(_the_server().path)
            socket.send_fds(self._conn, [json.dumps(request).encode() + b"\n"], fds)
        finally:
            os.close(null)
        self._buffer = b""
        self.pid: int = self._receive(None)["pid"]

    def _receive(self, timeout: float | None) -> dict:
        while b"\n" not in self._buffer:
            self._conn.settimeout(timeout)
            chunk = self._conn.recv(1024)
            if not chunk:
                raise RuntimeError("the warm server went away")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self._ended(self._receive(0))
            except (BlockingIOError, TimeoutError):
                return None
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                self._ended(self._receive(timeout))
            except TimeoutError:
                raise subprocess.TimeoutExpired(self.args, timeout) from None
        assert self.returncode is not None
        return self.returncode

    def _ended(self, message: dict) -> None:
        self.returncode, self.cpu = message["code"], message["cpu"]
        self._conn.close()

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            self._conn.sendall((json.dumps({"signal": int(signum)}) + "\n").encode())

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self.output()

    def output(self) -> tuple[str, str]:
        """What it wrote to stdout and stderr, as text (empty when not captured)."""
        texts = []
        for stream in self._files[1:]:
            stream.seek(0)
            texts.append(stream.read().decode("utf-8", errors="replace"))
        return (texts[0], texts[1]) if texts else ("", "")

    def __del__(self) -> None:
        for stream in getattr(self, "_files", []):
            stream.close()


def popen(args: list[str], env: dict | None = None, cwd: str | Path | None = None, capture: bool = True) -> Process:
    """``python -m portfolio_cli ARGS`` started; by default in this process's environment and directory."""
    return Process(args, env, cwd, capture)


def run(
    args: list[str], timeout: float | None = None, env: dict | None = None, cwd: str | Path | None = None,
    input: str | None = None, limits: dict[str, tuple[int, int]] | None = None,
) -> subprocess.CompletedProcess:  # fmt: skip
    """``subprocess.run([sys.executable, "-m", "portfolio_cli", *args], capture_output=True, text=True)``;
    ``limits`` are set in the child before the command starts (``RLIMIT_FSIZE`` and the like)."""
    process = Process(args, env, cwd, True, input.encode() if input else None, limits)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    out, err = process.output()
    return subprocess.CompletedProcess(["portfolio", *args], process.returncode, out, err)


if __name__ == "__main__":
    child = _serve(sys.argv[1])
    if child is not None:
        _run_command(*child)
