"""A warm fk process that answers ``fk run`` (``fk serve start``): imports and models loaded once, each run
forked from it.

Why: a fresh ``fk run`` spends ~3 CPU-s importing torch, numba's compiled kernels and scipy and loading dlib's
models before it touches a photo (``docs/performance.md``); that is most of the demo's wall time on a
2-core machine. The server pays it once. Each ``fk run`` then connects to it over a Unix socket in
``$FK_HOME/serve/`` and hands over its stdin, stdout and stderr (``SCM_RIGHTS``), its working directory,
environment and arguments; the server forks a child that runs exactly ``fk run ...`` with them, writing to
the caller's terminal (bars and colours included), and reports the child's exit status back. Ctrl-C and
SIGTERM are passed on to the child; a caller that disappears gets its child terminated.

A run is served only when it would compute the same thing as a fresh process: the same Python executable
and ``sys.path``, the same values of the environment variables read at import time (``FK_*``, ``NUMBA_*``,
``OMP_*``, ...: :data:`IMPORT_ENV_PREFIXES`), and the same fk code (no installed plugin added or removed,
no fk source file changed since the server started). Otherwise ``fk run`` runs in its own process as
before; a server whose code changed restarts itself. ``FK_NO_SERVER=1`` (or no server) runs in-process.

Fork safety: a fork copies no thread, so the server never keeps one: model loads run on threads that are
joined before it serves, torch runs single-threaded in the server (each child restores its thread count
before its first parallel region), and numba's parallel kernels use the ``workqueue`` threading layer
there (GNU OpenMP refuses to run in a child forked after it started). Linux only (``SO_PEERCRED``, fork
without exec); elsewhere ``fk serve start`` says so.

The client half of this module (:func:`try_served`) imports nothing but the standard library (and
``fk.assets``): it runs before ``fk``'s CLI is imported.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

NO_SERVER_ENV = "FK_NO_SERVER"
SERVED_ENV = "FK_SERVED"  # set in a served child's environment (a run can tell; pools fork from it)
# Environment variables read when a module is imported (fk's settings, numba's and OpenMP's, BLAS thread
# counts, CUDA's devices, Python's own): a run whose values differ from the server's is not served.
IMPORT_ENV_PREFIXES = ("FK_", "NUMBA_", "OMP_", "MKL_", "OPENBLAS_", "VECLIB_", "NUMEXPR_", "KMP_", "GOMP_",
                       "CUDA_", "TORCH_", "PYTORCH_", "PYTHON", "LD_", "NVIDIA_")
# ... except these, which fk sets per process or which only name this request
_PER_RUN_ENV = frozenset({SERVED_ENV, NO_SERVER_ENV, "FK_DEBUG", "PYTHONUNBUFFERED"})
_CONNECT_TIMEOUT_S = 2.0
# the server answers after a fork (milliseconds), or after warming the previous run's recipe (seconds)
_REPLY_TIMEOUT_S = 60.0
MAX_WARM_PLANS = 8  # recipes (with their --set values) a server keeps loaded


def serve_dir() -> Path:
    """``$FK_HOME/serve`` (the socket, the server's log), private to this user."""
    from fk.assets import fk_home  # standard library only

    return fk_home() / "serve"


def socket_path() -> Path:
    return serve_dir() / "fk.sock"


def _import_path() -> list[str]:
    """``sys.path`` without its first entry, the script's own folder (the server starts with ``-P``, none)."""
    return list(sys.path[1:]) if sys.path and not sys.flags.safe_path else list(sys.path)


def import_env(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """The environment variables that can change what an import does (see :data:`IMPORT_ENV_PREFIXES`)."""
    return {k: v for k, v in environ.items() if k.startswith(IMPORT_ENV_PREFIXES) and k not in _PER_RUN_ENV}


# ----------------------------------------------------------------------------------------------- client
def _send_json(conn: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode() + b"\n"
    if fds:
        socket.send_fds(conn, [data], fds)
    else:
        conn.sendall(data)


class _Lines:
    """JSON lines read from a socket (the first may carry file descriptors)."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""

    def read(self, want_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
        fds: list[int] = []
        while b"\n" not in self.buffer:
            if want_fds and not fds:
                chunk, fds, _flags, _addr = socket.recv_fds(self.conn, 1 << 16, want_fds)
            else:
                chunk = self.conn.recv(1 << 16)
            if not chunk:
                return None, fds
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line), fds


def _connect() -> socket.socket | None:
    path = socket_path()
    if not sys.platform.startswith("linux") or not path.exists():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(_CONNECT_TIMEOUT_S)
    try:
        conn.connect(str(path))
    except OSError:  # a socket file left by a server that died: run in-process
        conn.close()
        return None
    conn.settimeout(_REPLY_TIMEOUT_S)
    return conn


def request(message: dict[str, Any]) -> dict[str, Any] | None:
    """One control request (``status``, ``stop``) to the running server; None when none answers."""
    conn = _connect()
    if conn is None:
        return None
    with conn:
        try:
            _send_json(conn, message)
            reply, _ = _Lines(conn).read()
        except OSError:
            return None
    return reply


def try_served(argv: list[str]) -> int | None:
    """Run ``fk <argv>`` in the warm server; its exit status, or None when no server can serve it (then the
    caller runs it in-process). Only ``fk run`` is served."""
    if not argv or argv[0] != "run" or os.environ.get(NO_SERVER_ENV) or os.environ.get(SERVED_ENV):
        return None
    conn = _connect()
    if conn is None:
        return None
    with conn:
        try:
            _send_json(conn, {"run": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                              "executable": sys.executable, "path": _import_path()}, fds=[0, 1, 2])
            lines = _Lines(conn)
            reply, _ = lines.read()
        except OSError:
            return None
        if reply is None or "pid" not in reply:
            if reply and reply.get("notice"):
                print(f"fk server: {reply['notice']}", file=sys.stderr)
            return None
        pid = int(reply["pid"])
        conn.settimeout(None)

        def forward(signum: int, _frame: Any) -> None:
            try:
                os.kill(pid, signum)
            except OSError:
                pass

        saved = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            done, _ = lines.read()  # the child's exit status, sent by the server once it reaped the child
        except OSError:
            done = None
        finally:
            for s, handler in saved.items():
                signal.signal(s, handler)
    if done is None:
        print("fk server: the server went away before the run's exit status arrived; its output folder "
              "keeps what finished (rerun with --resume)", file=sys.stderr)
        return 1
    return int(done.get("exit", 1))


# ----------------------------------------------------------------------------------------------- server
def _code_fingerprint() -> dict[str, Any]:
    """What a served run must share with a fresh process: fk's installed plugins (entry points) and the
    size and modification time of every fk source file the server imported."""
    from importlib.metadata import entry_points

    roots = tuple({str(Path(m.__file__).parent) + os.sep for name, m in list(sys.modules.items())
                   if (name == "fk" or name.startswith("fk_")) and "." not in name
                   and getattr(m, "__file__", None)})
    files = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.startswith(roots):
            try:
                st = os.stat(path)
            except OSError:
                files[path] = None
                continue
            files[path] = (st.st_mtime_ns, st.st_size)
    plugins = sorted(f"{ep.name}={ep.value}" for ep in entry_points(group="fk.plugins"))
    return {"plugins": plugins, "files": files}


def _with_new_files(before: dict[str, Any]) -> dict[str, Any]:
    """``before`` plus the fk source files imported since (a warmed recipe's plugin modules): a file already
    in it keeps its old stamp, so a change made meanwhile is still seen."""
    now = _code_fingerprint()
    return {"plugins": before["plugins"], "files": {**now["files"], **before["files"]}}


def _fingerprint_change(before: dict[str, Any], now: dict[str, Any]) -> str | None:
    if before["plugins"] != now["plugins"]:
        return "the installed fk plugins changed"
    for path, stamp in before["files"].items():
        if now["files"].get(path) != stamp:
            return f"{path} changed"
    return None


def _cuda_initialized() -> bool:
    """Whether this process made a CUDA context: a child forked after that cannot use CUDA at all."""
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


def _recipe_of(argv: list[str]) -> tuple[str, list[str]] | None:
    """The recipe and ``--set`` values of ``fk run ...``, read with the ``run`` command's own option table."""
    import typer.main

    from fk.cli.main import app

    command = typer.main.get_command(app).commands.get("run")  # type: ignore[attr-defined]
    if command is None or not argv or argv[0] != "run":
        return None
    takes_value = {opt for p in command.params
                   if p.param_type_name == "option" and not getattr(p, "is_flag", False) for opt in p.opts}
    recipe, overrides, args = None, [], iter(argv[1:])
    for arg in args:
        name, eq, value = arg.partition("=")
        if name in takes_value:
            value = value if eq else next(args, "")
            if name == "--set":
                overrides.append(value)
        elif not arg.startswith("-") and recipe is None:
            recipe = arg
    return (recipe, overrides) if recipe else None


class Server:
    """The warm process: ``warm`` recipes, then ``serve`` until stopped or idle for ``idle_s``."""

    def __init__(self, recipes: list[str], overrides: list[str], idle_s: float, argv: list[str]) -> None:
        self.recipes = recipes
        self.overrides = overrides
        self.idle_s = idle_s
        self.argv = argv  # to restart itself with, when its code changed
        self.started = time.time()
        self.warmed: list[str] = []
        self.warmed_digests: set[str] = set()
        self.to_learn: list[dict[str, Any]] = []
        self.cli_warm = False
        self.served = 0
        self.children: dict[int, tuple[socket.socket, dict[str, Any]]] = {}
        self.path_at_start = _import_path()
        self.env_at_start = import_env(os.environ)
        self.torch_threads: int | None = None
        self.fingerprint: dict[str, Any] = {}

    # -- warming
    def warm(self) -> None:
        """Import what every run needs and warm the recipes given at start, leaving no thread and no OpenMP
        team behind."""
        os.environ["NUMBA_THREADING_LAYER"] = "workqueue"  # GNU OpenMP cannot be used again in a fork
        import torch

        self.torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)  # no OpenMP team in the server: each child sizes its own
        import fk.cli.main  # typer, rich, the commands: a child only calls main()

        fk.cli.main._mount_extensions()  # the plugins' commands

        for recipe in self.recipes:
            self.warm_plan(Path(recipe), self.overrides)
        self.fingerprint = _code_fingerprint()

    def _warm_cli(self, recipe: Path, overrides: list[str]) -> None:
        """Once: ``fk run RECIPE --dry-run`` here, output discarded, so the modules a run's command line
        imports on its first call (~100: the recipe loader's, rich's tables) are imported before any
        fork instead of in every child (0.1 s each)."""
        if self.cli_warm:
            return
        import contextlib
        import io

        import fk.cli.main
        import fk.engine.runner  # noqa: F401  (the run's engine, records and manifest)

        self.cli_warm = True
        sets = [arg for value in overrides for arg in ("--set", value)]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            fk.cli.main.main(["run", str(recipe), *sets, "--dry-run", "--out", str(serve_dir() / "dry-run")])

    def warm_plan(self, recipe: Path, overrides: list[str]) -> bool:
        """Build a recipe's runners and load what they need (models, compiled kernels) in this process, where
        every later child finds them; True when it was not warm yet."""
        import gc
        import threading

        from fk.engine.executors.resources import SHARE_ENV
        from fk.engine.runner import warm_runners
        from fk.recipe import load_recipe

        plan = load_recipe(recipe, overrides)
        if plan.digest() in self.warmed_digests:
            return False
        saved = os.environ.get(SHARE_ENV)
        os.environ[SHARE_ENV] = "1"  # runners load in this process (dlib: no helper process to share)
        try:
            warm_runners(plan)
        finally:
            if saved is None:
                os.environ.pop(SHARE_ENV, None)
            else:
                os.environ[SHARE_ENV] = saved
        for thread in threading.enumerate():  # background loads (dlib's models) finish before any fork
            if thread is not threading.main_thread():
                thread.join()
        self.warmed_digests.add(plan.digest())
        self.warmed.append(f"{plan.name} ({recipe})")
        self._warm_cli(recipe, overrides)
        gc.collect()
        gc.freeze()  # a child's collections then skip the server's objects instead of copying their pages
        return True

    def learn(self, message: dict[str, Any]) -> None:
        """After a served run: warm its recipe, with its ``--set`` values, for the next such run."""
        if len(self.warmed_digests) >= MAX_WARM_PLANS:
            return
        parsed = _recipe_of(message.get("run") or [])
        if parsed is None:
            return
        recipe = Path(message.get("cwd") or ".", parsed[0])
        try:
            if self.warm_plan(recipe, parsed[1]):
                self.fingerprint = _with_new_files(self.fingerprint)
                print(f"fk server: warmed {recipe} for the next runs", flush=True)
        except Exception as exc:  # noqa: BLE001 - the run itself reported it to its caller
            print(f"fk server: did not warm {recipe}: {exc}", flush=True)

    # -- serving
    def refusal(self, message: dict[str, Any]) -> tuple[str | None, bool]:
        """(why this run cannot be served, or None; whether the server must restart)."""
        if _cuda_initialized():
            return ("the server holds a CUDA context (a warmed recipe's device or renderer made one), "
                    "which a forked run cannot use: running in this process; `fk serve stop`, then start "
                    "it with recipes that run on the CPU"), False
        if message.get("executable") != sys.executable or message.get("path") != self.path_at_start:
            return "another Python or sys.path than the server's: running in this process", False
        env = import_env(message.get("env") or {})
        if env != self.env_at_start:
            names = sorted(k for k in set(env) | set(self.env_at_start)
                           if env.get(k) != self.env_at_start.get(k))
            return (f"environment differs from the server's ({', '.join(names[:4])}): "
                    "running in this process", False)
        change = _fingerprint_change(self.fingerprint, _code_fingerprint())
        if change:
            return f"{change} since it started: running in this process; the server restarts", True
        return None, False

    def serve(self) -> None:
        import selectors

        path = socket_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            listener.bind(str(path))
        finally:
            os.umask(old_umask)
        listener.listen(16)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector through the wakeup fd
        stop = {"now": False}

        def stop_now(*_: Any) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, stop_now)
        signal.signal(signal.SIGINT, stop_now)
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ, "listen")
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        last_active = time.monotonic()
        restart = False
        print(f"fk server {os.getpid()} ready at {path} (warmed: {', '.join(self.warmed) or 'nothing'})",
              flush=True)
        try:
            while not stop["now"] and not restart:
                timeout = None if self.children else max(0.0, self.idle_s - (time.monotonic() - last_active))
                if not self.children and timeout == 0.0:
                    print("fk server: idle, stopping", flush=True)
                    break
                for key, _ in sel.select(timeout):
                    if key.data == "wake":
                        os.read(wake_r, 4096)
                    elif key.data == "listen":
                        conn, _ = listener.accept()
                        restart = self._handle(conn, listener, sel, stop) or restart
                    else:  # a caller's connection readable while its run is going: it went away
                        pid = key.data
                        try:
                            gone = key.fileobj.recv(1) == b""
                        except OSError:
                            gone = True
                        if gone:
                            sel.unregister(key.fileobj)
                            self._signal(pid, signal.SIGTERM)
                self._reap(sel)
                while self.to_learn:  # after the caller has its exit status
                    self.learn(self.to_learn.pop(0))
                if self.children:
                    last_active = time.monotonic()
        finally:
            sel.close()
            listener.close()
            if path.exists():
                path.unlink(missing_ok=True)
            for pid in list(self.children):
                self._signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while self.children and time.monotonic() < deadline:
                self._reap(None, block=True)
        if restart:
            print("fk server: code changed, restarting", flush=True)
            os.execv(sys.executable, [sys.executable, "-P", "-m", "fk.serve", *self.argv])

    def _signal(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    def _reap(self, sel: Any, block: bool = False) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            conn, message = child
            code = os.waitstatus_to_exitcode(status)
            if code < 0:  # killed by a signal: the shell's convention
                code = 128 - code
            if code in (0, 5):  # it ran (5: some items failed): its recipe is worth keeping warm
                self.to_learn.append(message)
            if sel is not None:
                try:
                    sel.unregister(conn)
                except (KeyError, ValueError):
                    pass
            try:
                _send_json(conn, {"exit": code})
            except OSError:
                pass
            conn.close()
            if block:
                return

    def _handle(self, conn: socket.socket, listener: socket.socket, sel: Any, stop: dict[str, bool]) -> bool:
        """Answer one connection; True when the server must restart (its code changed)."""
        import selectors
        import struct

        conn.settimeout(_CONNECT_TIMEOUT_S)
        try:
            peer_uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                           struct.calcsize("3i")))[1]
            message, fds = _Lines(conn).read(want_fds=3)
        except (OSError, ValueError):
            conn.close()
            return False
        try:
            if peer_uid != os.getuid() or message is None:
                return False
            if message.get("status") or message.get("stop"):
                _send_json(conn, {"pid": os.getpid(), "socket": str(socket_path()), "started": self.started,
                                  "warmed": self.warmed, "served": self.served, "running": len(self.children),
                                  "idle_s": self.idle_s, "python": sys.executable,
                                  "cuda_context": _cuda_initialized()})
                if message.get("stop"):
                    stop["now"] = True
                return False
            if "run" not in message or len(fds) != 3:
                return False
            why, restart = self.refusal(message)
            if why:
                _send_json(conn, {"notice": why})
                return restart
            pid = os.fork()
            if pid == 0:  # the child: never returns
                sel.close()
                listener.close()
                self._run_child(conn, fds, message)
            self.served += 1
            self.children[pid] = (conn, message)
            _send_json(conn, {"pid": pid})
            conn.settimeout(None)
            sel.register(conn, selectors.EVENT_READ, pid)
            conn = None  # kept until the child's exit status is sent
            return False
        except OSError:
            return False
        finally:
            for fd in fds:
                os.close(fd)
            if conn is not None:
                conn.close()

    def _run_child(self, conn: socket.socket, fds: list[int], message: dict[str, Any]) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for s in (signal.SIGCHLD, signal.SIGTERM):
                signal.signal(s, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            conn.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            encoding = "utf-8"
            sys.stdin = open(0, encoding=encoding, closefd=False)  # noqa: SIM115 - the process's own streams
            sys.stdout = open(1, "w", encoding=encoding, buffering=1 if os.isatty(1) else -1,  # noqa: SIM115
                              closefd=False)
            sys.stderr = open(2, "w", encoding=encoding, errors="backslashreplace", buffering=1,  # noqa: SIM115
                              closefd=False)
            os.chdir(message["cwd"])
            os.environ.clear()
            os.environ.update(message["env"])
            os.environ[SERVED_ENV] = "1"
            sys.argv = ["fk", *message["run"]]
            import torch

            threads = os.environ.get("OMP_NUM_THREADS", "")  # what torch would start with in a fresh process
            torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0
                                  else self.torch_threads)
            from fk.cli.main import main

            code = main(list(message["run"]))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - reported on the caller's terminal, then the child ends
            import traceback

            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001, S110
                    pass
            os._exit(code)


def _parse(argv: list[str]) -> tuple[list[str], list[str], float]:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fk.serve", description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--idle-minutes", type=float, default=60.0)
    args = parser.parse_args(argv)
    return [str(Path(r).resolve()) for r in args.recipes], args.overrides, 60.0 * args.idle_minutes


def main(argv: list[str] | None = None) -> None:
    """``python -m fk.serve [RECIPE ...] [--set K=V] [--idle-minutes M]``: warm, then serve (foreground)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    recipes, overrides, idle_s = _parse(argv)
    server = Server(recipes, overrides, idle_s, argv)
    t0 = time.perf_counter()
    server.warm()
    print(f"fk server: warmed in {time.perf_counter() - t0:.1f} s", flush=True)
    server.serve()


if __name__ == "__main__":
    main()
