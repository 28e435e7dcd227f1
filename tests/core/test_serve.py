"""The warm server (``fk serve``, :mod:`fk.serve`) with real processes: a served run writes the bytes and
exit code an in-process run does (one worker or two), Ctrl-C reaches it, a run the server cannot reproduce
runs in its own process with a notice, bad connections change nothing, and ``stop`` stops it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fk import serve
from fk.testing import output_digests, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fk serve is Linux-only")

HERE = Path(__file__).resolve().parent
TOY_FK = HERE / "toy_fk.py"
TOY_SERVE = HERE / "toy_serve.py"


def _env(fk_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != serve.NO_SERVER_ENV}
    return {**env, "FK_HOME": str(fk_home), **extra}




def _start_toy_server(fk_home: Path, *recipes: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-P", str(TOY_SERVE), *map(str, recipes), "--idle-minutes",
                             "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(fk_home))
    wait_for(lambda: proc.poll() is not None or serve.request({"status": True}) is not None, "the server")
    assert proc.poll() is None, proc.stdout.read()
    return proc


def _stop(proc: subprocess.Popen) -> None:
    serve.request({"stop": True})
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture
def toy_server(toy_recipe: Path, fk_home: Path):
    """A warm toy server under a fresh FK_HOME (the fk_home fixture sets it for this process too)."""
    proc = _start_toy_server(fk_home, toy_recipe)
    yield proc
    _stop(proc)


def _client(*args: str, env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(TOY_FK), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _served() -> int:
    return serve.request({"status": True})["served"]


def test_a_served_run_writes_the_bytes_and_exit_code_of_an_in_process_run(toy_server, toy_recipe, fk_home,
                                                                          tmp_path):
    env = _env(fk_home)
    for workers in ("1", "2"):
        served = _client("run", str(toy_recipe), "--out", str(tmp_path / f"served{workers}"),
                         "--workers", workers, env=env)
        out, err = served.communicate(timeout=120)
        assert served.returncode == 5, err  # the photos hold one corrupt file: "finished with item failures"
        assert "item(s) finished" in out  # the run's own stdout reached this caller's pipe
        assert "fk: " in err  # and its progress lines this caller's stderr
    assert _served() == 2
    alone = _client("run", str(toy_recipe), "--out", str(tmp_path / "alone"),
                    env={**env, serve.NO_SERVER_ENV: "1"})
    assert alone.wait(120) == 5
    assert _served() == 2
    expected = output_digests(tmp_path / "alone")
    assert expected
    assert output_digests(tmp_path / "served1") == expected == output_digests(tmp_path / "served2")

    # a step failing on some items too: exit 5 and the same failures.json either way
    failing = toy_recipe.with_name("failing.yaml")
    failing.write_text(toy_recipe.read_text().replace("use: evaluate:mean-colour",
                                                      "use: evaluate:mean-colour\n    with: {fail_on: _01}"))
    codes = {}
    for name, extra in (("served_fail", {}), ("alone_fail", {serve.NO_SERVER_ENV: "1"})):
        proc = _client("run", str(failing), "--out", str(tmp_path / name), "-q", env={**env, **extra})
        codes[name] = proc.wait(120)
    assert codes == {"served_fail": 5, "alone_fail": 5}
    assert _served() == 3
    failures = [json.loads((tmp_path / name / "failures.json").read_text())
                for name in ("served_fail", "alone_fail")]
    assert failures[0] == failures[1]
    assert failures[0]


def test_ctrl_c_on_the_caller_reaches_the_served_run(toy_server, toy_recipe, fk_home, tmp_path):
    out = tmp_path / "run"
    proc = _client("run", str(toy_recipe), "--out", str(out), env=_env(fk_home, TOY_SLEEP="1"))
    wait_for(lambda: (out / ".fk" / "items").is_dir() and any((out / ".fk" / "items").glob("*.json")),
              "a finished item")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    assert "interrupted" in proc.stderr.read()
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    assert _served() == 1


def test_a_run_the_server_cannot_reproduce_runs_in_its_own_process_with_a_notice(toy_server, toy_recipe,
                                                                                  fk_home, tmp_path):
    # FK_* variables are read at import time: a value the server did not start with is not served
    proc = _client("run", str(toy_recipe), "--out", str(tmp_path / "run"), "-q",
                   env=_env(fk_home, FK_RENDER_NO_NUMBA="1"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 5  # the corrupt photo, as always
    assert "fk server: environment differs from the server's (FK_RENDER_NO_NUMBA)" in err
    assert (tmp_path / "run" / "manifest.json").is_file()
    assert _served() == 0


def test_bad_connections_change_nothing_and_stop_stops_the_server(toy_server, fk_home):
    path = serve.socket_path()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    for payload in (b"not json at all\n", b'{"run": ["run", "x.yaml"]}\n', b""):  # no terminals passed
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(path))
            conn.sendall(payload)
    info = serve.request({"status": True})
    assert info is not None
    assert info["served"] == 0
    assert info["pid"] == toy_server.pid
    assert serve.request({"stop": True})["pid"] == toy_server.pid
    assert toy_server.wait(30) == 0
    assert not path.exists()
    assert serve.request({"status": True}) is None


def test_a_changed_source_file_or_plugin_set_is_seen(tmp_path, monkeypatch):
    module_file = tmp_path / "fk_fingerprint_probe.py"
    module_file.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import fk_fingerprint_probe  # noqa: F401  (an fk_* top-level module: counted as fk code)

    before = serve._code_fingerprint()
    assert str(module_file) in before["files"]
    assert serve._fingerprint_change(before, serve._code_fingerprint()) is None
    os.utime(module_file, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert serve._fingerprint_change(before, serve._code_fingerprint()) == f"{module_file} changed"
    assert serve._fingerprint_change(before, {**before, "plugins": [*before["plugins"], "x=y:z"]}) == \
        "the installed fk plugins changed"
    # a module imported later (a recipe warmed after a run) joins with its stamp of now; an old one keeps
    # the stamp from before, so its change is still seen
    (tmp_path / "fk_fingerprint_later.py").write_text("Y = 2\n")
    import fk_fingerprint_later  # noqa: F401

    extended = serve._with_new_files(before)
    assert str(tmp_path / "fk_fingerprint_later.py") in extended["files"]
    assert extended["files"][str(module_file)] == before["files"][str(module_file)]
    assert serve._fingerprint_change(extended, serve._code_fingerprint()) == f"{module_file} changed"


def test_fk_serve_status_and_start_without_a_server(fk_home, tmp_path):
    env = _env(fk_home)
    status = subprocess.run([sys.executable, "-m", "fk.cli.main", "serve", "status"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert status.returncode == 1
    assert "no fk server is running" in status.stdout
    start = subprocess.run([sys.executable, "-m", "fk.cli.main", "serve", "start",
                            str(tmp_path / "nope.yaml")], capture_output=True, text=True, env=env, timeout=60)
    # the recipe's one-line error, and no server started
    assert start.returncode != 0
    assert "nope.yaml" in start.stderr
    assert not serve.socket_path().exists()


def test_a_server_started_bare_warms_each_recipe_after_its_first_served_run(toy_recipe, fk_home, tmp_path):
    proc = _start_toy_server(fk_home)
    try:
        assert serve.request({"status": True})["warmed"] == []
        env = _env(fk_home)
        for name in ("first", "second"):
            run = _client("run", str(toy_recipe.name), "--out", str(tmp_path / name), "-q", env=env,
                          cwd=toy_recipe.parent)  # a relative recipe: the server resolves it in the run's cwd
            _, err = run.communicate(timeout=120)
            assert run.returncode == 5, err
            assert "fk server:" not in err  # served, not refused
        info = serve.request({"status": True})
        assert info["served"] == 2
        assert info["warmed"] == [f"toy ({toy_recipe})"]
        assert output_digests(tmp_path / "first") == output_digests(tmp_path / "second")
    finally:
        _stop(proc)


def test_the_recipe_and_set_values_of_a_run_command_line():
    argv = ["run", "r.yaml", "--set", "fit.iterations=5", "--out", "o", "-q", "--workers=2", "--set=a=b"]
    assert serve._recipe_of(argv) == ("r.yaml", ["fit.iterations=5", "a=b"])
    assert serve._recipe_of(["run", "--out", "r.yaml", "s.yaml"]) == ("s.yaml", [])  # --out takes a value
    assert serve._recipe_of(["run", "--json"]) is None
    assert serve._recipe_of(["doctor"]) is None


def test_a_server_holding_a_cuda_context_serves_nothing(monkeypatch):
    """A CUDA context does not survive a fork: once warming made one, every run runs in its own process."""
    import torch

    server = serve.Server([], [], 60.0, [])
    message = {"run": ["run", "r.yaml"], "executable": sys.executable, "path": serve._import_path(),
               "env": dict(os.environ)}
    server.fingerprint = serve._code_fingerprint()
    assert server.refusal(message) == (None, False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    why, restart = server.refusal(message)
    assert "CUDA context" in why
    assert not restart


def test_fk_serve_start_status_stop_from_the_command_line(fk_home):
    """The real commands: `start` returns once the detached server answers, `status` shows it, `stop`
    ends it."""
    env = _env(fk_home)
    fk = [sys.executable, "-m", "fk.cli.main", "serve"]
    started = subprocess.run([*fk, "start", "--idle-minutes", "5", "--json"], capture_output=True, text=True,
                             env=env, timeout=300)
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    try:
        assert info["ok"] is True
        assert info["warmed"] == []
        status = subprocess.run([*fk, "status"], capture_output=True, text=True, env=env, timeout=60)
        assert status.returncode == 0
        assert str(info["pid"]) in status.stdout
        again = subprocess.run([*fk, "start"], capture_output=True, text=True, env=env, timeout=60)
        assert again.returncode == 2
        assert "already running" in again.stderr
    finally:
        stopped = subprocess.run([*fk, "stop", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert json.loads(stopped.stdout)["stopped"] is True
    assert not serve.socket_path().exists()  # `stop` returns once the server has left
    assert (fk_home / "serve" / "server.log").read_text().count("ready at") == 1
