"""Executors: the same outputs byte for byte on serial, process, dask and Ray; retries; resume
across executors; worker caps; a node missing a plugin; third-party executors.

One dask LocalCluster and one local Ray serve the whole module (each costs seconds to start).
Both bind to 127.0.0.1, and while they run a guard refuses any connection this process opens
to another address.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fk.components import Component, ExecutorBackend, Port
from fk.engine.executors import ExecutorSettings, TaskFailed, make_executor
from fk.engine.executors.resources import (
    THREAD_ENV,
    WorkerCaps,
    cores,
    gpu_for_worker,
    local_workers,
    visible_gpus,
)
from fk.engine.runner import RunOptions, run_plan
from fk.errors import ExitCode, MissingError, TransientError
from fk.hookspecs import hookimpl
from fk.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]
ALIGN = ROOT / "recipes" / "align.yaml"
HERE = str(Path(__file__).resolve().parent)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def loopback_only():
    """Any connection this process opens while the module runs must stay on this machine."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host not in ("127.0.0.1", "::1", "localhost"):
                raise AssertionError(f"a test opened a connection to {address}")
        return real_connect(self, address)

    socket.socket.connect = guarded
    # workers import this module (for the components below) on Ray, which does not inherit sys.path
    old_pythonpath = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, old_pythonpath) if p)
    yield
    socket.socket.connect = real_connect
    if old_pythonpath is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old_pythonpath


@pytest.fixture(scope="module")
def dask_executor(loopback_only):
    pytest.importorskip("distributed")
    ex = make_executor("dask", ExecutorSettings(workers=2, retries=1))
    assert ex.client.scheduler.address.startswith("tcp://127.0.0.1:")
    yield ex
    ex.shutdown()


@pytest.fixture(scope="module")
def ray_executor(loopback_only):
    if importlib.util.find_spec("ray") is None:  # not importorskip: the executor must import Ray first
        pytest.skip("ray is not installed")
    ex = make_executor("ray", ExecutorSettings(workers=2, retries=1))
    assert {n["NodeManagerAddress"] for n in ex.ray.nodes()} == {"127.0.0.1"}
    yield ex
    ex.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """The astronaut (one face) and a blank image (no face: a recorded failure)."""
    from fk.testing import astronaut_path
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    Image.open(astronaut_path()).convert("RGB").save(folder / "astronaut.png")
    Image.new("RGB", (64, 64), (90, 90, 90)).save(folder / "blank.png")
    return folder


def outputs(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".fk" not in p.parts and p.name != "manifest.json"
    }


def run_align(photos: Path, out: Path, executor=None, **kw):
    plan = load_recipe(ALIGN, [f"inputs.photos={photos}"])
    return run_plan(plan, RunOptions(out, progress=False, **kw), executor=executor)


@pytest.fixture(scope="module")
def serial_align(photos, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("serial") / "run"
    summary = run_align(photos, out)
    assert (summary.succeeded, summary.failed) == (1, 1)
    files = outputs(out)
    assert any(k.startswith("ffhq/") for k in files)
    assert any(k.startswith("eg3d/") for k in files)
    return files


@pytest.mark.parametrize("name", ["process", "dask", "ray"])
def test_align_gives_the_serial_bytes_on_every_executor(name, photos, serial_align, tmp_path, request):
    out = tmp_path / "run"
    if name == "process":
        summary = run_align(photos, out, workers=2, executor=None)
    else:
        summary = run_align(photos, out, executor=request.getfixturevalue(f"{name}_executor"))
    assert summary.exit_code == ExitCode.ITEM_FAILURES
    assert outputs(out) == serial_align  # crops, overlays, labels and failures.json, byte for byte
    manifest = json.loads((out / "manifest.json").read_text())
    assert {k: v["status"] for k, v in manifest["items"].items()} == {"astronaut": "ok", "blank": "failed"}
    assert not [p for p in out.rglob("*.part")]


# --------------------------------------------------------------------- retries
class FailOnce:
    """Raises TransientError the first time it sees an item (a marker file remembers), then works."""

    def __init__(self, markers: str = ""):
        self.markers = Path(markers)

    def __call__(self, inputs, ctx):
        marker = self.markers / f"{ctx.key}.tried"
        ctx.write_text(f"{ctx.key}.partial.txt", "written before the failure\n")
        if not marker.exists():
            marker.write_text(socket.gethostname())
            raise TransientError(f"{ctx.key}: the shared disk blinked")
        ctx.write_text(f"{ctx.key}.txt", Path(inputs["file"]).name + "\n")
        return {"done": True}


class FlakyPlugin:
    __name__ = "flaky"

    @hookimpl
    def fk_evaluate(self):
        from fk.components import Param

        yield Component(
            "evaluate",
            "fail-once",
            "fails the first attempt of each item",
            FailOnce,
            params=(Param("markers", "path", ""),),
            inputs=(Port("file", "path"),),
            outputs=(Port("done", "any"),),
        )


def flaky_plan(tmp_path: Path, n: int = 3):
    from fk.testing import isolated_plugin_manager

    files = tmp_path / "files"
    files.mkdir()
    for i in range(n):
        (files / f"f{i}.txt").write_text(f"item {i}\n")
    markers = tmp_path / "markers"
    markers.mkdir()
    recipe = tmp_path / "flaky.yaml"
    recipe.write_text(f"""fk: 1
name: flaky
inputs:
  files: {{type: files, path: {files}}}
steps:
  - id: check
    use: evaluate:fail-once
    in: {{file: inputs.files}}
    with: {{markers: {markers}}}
""")
    with isolated_plugin_manager(FlakyPlugin()):
        return load_recipe(recipe)


@pytest.mark.parametrize("name", ["serial", "process", "dask", "ray"])
def test_a_task_that_fails_once_succeeds_on_retry(name, tmp_path, request):
    plan = flaky_plan(tmp_path)
    out = tmp_path / "run"
    if name in ("dask", "ray"):
        summary = run_plan(
            plan, RunOptions(out, progress=False), executor=request.getfixturevalue(f"{name}_executor")
        )
    else:
        summary = run_plan(plan, RunOptions(out, progress=False, executor=name, workers=2, retries=1))
    assert (summary.succeeded, summary.failed) == (3, 0), summary.failures
    assert sorted(p.name for p in (out / "check").iterdir()) == [
        "f0.partial.txt",
        "f0.txt",
        "f1.partial.txt",
        "f1.txt",
        "f2.partial.txt",
        "f2.txt",
    ]
    assert len(list((tmp_path / "markers").iterdir())) == 3  # every item really failed once


def test_without_retries_the_failure_is_recorded_with_the_node_and_reason(tmp_path):
    plan = flaky_plan(tmp_path, n=2)
    out = tmp_path / "run"
    summary = run_plan(plan, RunOptions(out, progress=False, retries=0))
    assert summary.exit_code == ExitCode.ITEM_FAILURES
    failures = json.loads((out / "failures.json").read_text())
    assert [(f["item"], f["step"]) for f in failures] == [("f0", "(task)"), ("f1", "(task)")]
    assert failures[0]["error"] == f"node {socket.gethostname()}: f0: the shared disk blinked"
    assert failures[0]["type"] == "TransientError"
    # the next run resumes them (and they now succeed: their first attempt is spent)
    again = run_plan(plan, RunOptions(out, progress=False, resume=True))
    assert (again.succeeded, again.failed) == (2, 0)


# --------------------------------------------------------------------- resume across executors
def test_killed_under_dask_then_resumed_under_serial_completes(photos, serial_align, tmp_path):
    pytest.importorskip("distributed")
    many = tmp_path / "photos"
    many.mkdir()
    for i in range(6):  # enough items that Ctrl-C lands mid-run
        (many / f"astronaut{i}.png").write_bytes((photos / "astronaut.png").read_bytes())
    out = tmp_path / "run"
    cmd = [
        str(Path(sys.executable).parent / "fk"),
        "run",
        str(ALIGN),
        "--set",
        f"inputs.photos={many}",
        "--out",
        str(out),
        "--executor",
        "dask",
        "--workers",
        "2",
        "-q",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    records = out / ".fk" / "items"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and len(list(records.glob("*.json"))) < 1:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group, workers included
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.INTERRUPTED, err.decode()[-2000:]
    done = len(list(records.glob("*.json")))
    assert 1 <= done < 6
    summary = run_plan(
        load_recipe(ALIGN, [f"inputs.photos={many}"]), RunOptions(out, progress=False, resume=True)
    )
    assert summary.skipped == done
    assert summary.succeeded == 6
    want = serial_align["ffhq/astronaut_00.png"]
    assert all((out / "ffhq" / f"astronaut{i}_00.png").read_bytes() == want for i in range(6))


# --------------------------------------------------------------------- nodes, caps, registry
@pytest.mark.parametrize("name", ["serial", "dask", "ray"])
def test_a_node_without_the_plugin_stops_the_run_with_one_line(name, tmp_path, photos, request):
    from dataclasses import replace

    plan = load_recipe(ALIGN, [f"inputs.photos={photos}"])
    broken = replace(plan.steps[1].component, factory="fk_not_installed.crops:Ffhq")
    plan.steps[1] = replace(plan.steps[1], component=broken)
    executor = None if name == "serial" else request.getfixturevalue(f"{name}_executor")
    with pytest.raises(MissingError) as err:
        run_plan(plan, RunOptions(tmp_path / "run", progress=False), executor=executor)
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(f"node {socket.gethostname()}: crop:ffhq cannot load")
    assert "fk_not_installed" in line


def _thread_env(_):
    import numpy  # noqa: F401  (its OpenBLAS, loaded or not before the caps, is capped too)
    import torch
    from fk.engine.executors.resources import thread_share
    from threadpoolctl import threadpool_info

    return {
        **{k: os.environ.get(k) for k in THREAD_ENV},
        "share": thread_share(),
        "torch": torch.get_num_threads(),
        "blas": sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}),
        "pid": os.getpid(),
    }


@pytest.mark.parametrize("name", ["process", "dask", "ray"])
def test_workers_get_their_share_of_the_cores_in_every_pool(name, request):
    if name == "process":
        ex = make_executor("process", ExecutorSettings(workers=2))
    else:
        ex = request.getfixturevalue(f"{name}_executor")
    try:
        seen = list(ex.map_unordered(_thread_env, range(4)))
    finally:
        if name == "process":
            ex.shutdown()
    share = str(max(1, cores() // local_workers(2)))
    for env in seen:
        assert env["NUMBA_NUM_THREADS"] == env["OMP_NUM_THREADS"] == share
        assert env["torch"] == int(share)
        assert env["blas"] == [int(share)]
        assert env["share"] == int(share)  # what a step reads before adding a thread or a helper process


def test_workers_never_exceed_the_cores_and_gpus_go_one_per_worker():
    assert local_workers(64, available=2) == 2
    assert local_workers(1, available=2) == 1
    caps = WorkerCaps(3, ("0", "1"))
    assert caps.env(0)["NUMBA_NUM_THREADS"] == "3"
    assert caps.env(0)["OMP_NUM_THREADS"] == "3"
    assert [caps.env(i)["CUDA_VISIBLE_DEVICES"] for i in range(3)] == ["0", "1", "0"]
    assert "CUDA_VISIBLE_DEVICES" not in WorkerCaps(1, ("0",)).env(0)  # one GPU: left as it is
    assert gpu_for_worker(1, ["4", "6"]) == "6"
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


class ListExecutor:
    """A third party's executor: runs tasks in reverse order and keeps their keys."""

    seen: list[str] = []

    def __init__(self, settings):
        self.settings = settings

    def map_unordered(self, fn, tasks):
        for task in reversed(list(tasks)):
            ListExecutor.seen.append(task.key)
            yield fn(task)

    def shutdown(self):
        pass


class ReversePlugin:
    __name__ = "reverse"

    @hookimpl
    def fk_executors(self):
        yield ExecutorBackend("reverse", f"{__name__}:ListExecutor", lambda: (True, "always"), summary="test")


def test_a_plugin_executor_is_chosen_by_name(tmp_path):
    from fk.testing import isolated_plugin_manager

    files = tmp_path / "files"
    files.mkdir()
    for name in ("a", "b"):
        (files / f"{name}.txt").write_text(name)
    recipe = tmp_path / "copy.yaml"
    recipe.write_text(
        f"fk: 1\nname: copy\ninputs:\n  files: {{type: files, path: {files}}}\nsteps:\n"
        "  - {id: copy, use: export:copy, in: {file: inputs.files}}\n"
    )
    with isolated_plugin_manager(ReversePlugin()):
        summary = run_plan(
            load_recipe(recipe), RunOptions(tmp_path / "run", progress=False, executor="reverse")
        )
    assert ListExecutor.seen == ["b", "a"]
    assert summary.succeeded == 2
    assert (tmp_path / "run" / "copy" / "b.txt").read_text() == "b"


def test_a_missing_extra_exits_4_with_the_install_line(tmp_path, photos, monkeypatch, capsys):
    from fk.cli.main import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    rc = main(
        [
            "run",
            str(ALIGN),
            "--set",
            f"inputs.photos={photos}",
            "--out",
            str(tmp_path / "r"),
            "--executor",
            "ray",
            "-q",
        ]
    )
    assert rc == ExitCode.MISSING
    assert "pip install 'fk-core[ray]'" in capsys.readouterr().err


def test_task_failed_is_what_executors_yield_after_retries():
    ex = make_executor("serial", ExecutorSettings(retries=2))
    calls = []

    def boom(x):
        calls.append(x)
        raise OSError("disk gone")

    (failed,) = list(ex.map_unordered(boom, [1]))
    assert isinstance(failed, TaskFailed)
    assert failed.attempts == 3
    assert len(calls) == 3
    assert failed.error.endswith("OSError: disk gone")


_PROBE = '''
import os
import numpy  # noqa: F401  (its OpenBLAS starts its threads at load unless capped)

IMPORTED_IN = os.getpid()
THREADS_AT_IMPORT = len(os.listdir("/proc/self/task"))


def where(_):
    return IMPORTED_IN, THREADS_AT_IMPORT, os.getpid(), os.environ.get("FK_PROBE_ENV")
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is used on Linux only")
def test_pool_workers_fork_from_one_server_that_imported_the_plans_modules(tmp_path):
    """The workers share one import of the step modules, made by a single-threaded fork server with the
    workers' thread caps; a preloaded module that fails to import is left to the worker that needs it; a
    later pool's workers see the parent's environment as it is then, not the server's."""
    (tmp_path / "fk_preload_probe.py").write_text(_PROBE)
    (tmp_path / "fk_preload_broken.py").write_text("raise RuntimeError('broken at import')\n")
    code = (
        "import os\n"
        "from fk.engine.executors import ExecutorSettings, make_executor\n"
        "from fk_preload_probe import where\n"
        "preload = ('fk_preload_broken', 'fk_preload_probe')\n"
        "ex = make_executor('process', ExecutorSettings(workers=2, preload=preload))\n"
        "try:\n"
        "    first = sorted(ex.map_unordered(where, range(4)))\n"
        "finally:\n"
        "    ex.shutdown()\n"
        "os.environ['FK_PROBE_ENV'] = 'set later'\n"
        "ex = make_executor('process', ExecutorSettings(workers=2, preload=preload))\n"
        "try:\n"
        "    print(first + sorted(ex.map_unordered(where, range(4))), os.getpid())\n"
        "finally:\n"
        "    ex.shutdown()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    results, parent = got.stdout.rsplit(" ", 1)
    results = eval(results)  # noqa: S307 - our own printout of tuples of ints
    assert len(results) == 8
    assert [r[3] for r in results] == [None] * 4 + ["set later"] * 4
    imported_in = {r[0] for r in results}
    workers = {r[2] for r in results}
    assert len(imported_in) == 1, "imported once, before the workers were forked"
    assert imported_in.isdisjoint(workers | {int(parent)})
    assert {r[1] for r in results} == {1}, "the fork server stayed one thread (OpenBLAS capped)"
