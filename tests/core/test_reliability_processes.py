"""Issue 11 with real processes: kill -9 then --resume gives the same bytes, SIGTERM and Ctrl-C
keep what finished (and count it right), a second run on a locked folder exits 6, progress
goes to stderr as plain lines off a terminal, and a plugin calling sys.exit() breaks nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fk.testing import output_digests, wait_for

TOY_FK = Path(__file__).with_name("toy_fk.py")


def _toy(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(TOY_FK), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **kw,
    )



def _records(out: Path) -> list[str]:
    folder = out / ".fk" / "items"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []



def test_kill_9_mid_run_then_resume_writes_the_same_bytes_as_an_uninterrupted_run(toy_recipe, tmp_path):
    full = tmp_path / "full"
    done = _toy("run", str(toy_recipe), "--out", str(full), "-q")
    assert done.wait(120) == 5, done.stderr.read()  # broken.jpg fails on purpose
    out = tmp_path / "killed"
    proc = _toy("run", str(toy_recipe), "--out", str(out), "-q", env={"TOY_SLEEP": "1"})
    wait_for(lambda: len(_records(out)) >= 2, "two finished items")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert len(_records(out)) < 4, "killed before the end"
    resumed = _toy("run", str(toy_recipe), "--out", str(out), "--resume", "-q")
    assert resumed.wait(120) == 5, resumed.stderr.read()
    assert output_digests(out) == output_digests(full)
    assert len(output_digests(full)) == 14  # 6 strips x (json, png) + summary + failures.json


def test_sigterm_is_handled_like_ctrl_c_with_manifest_and_resume_hint(toy_recipe, tmp_path):
    out = tmp_path / "run"
    proc = _toy("run", str(toy_recipe), "--out", str(out), env={"TOY_SLEEP": "1"})
    wait_for(lambda: len(_records(out)) >= 1, "a finished item")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143
    err = proc.stderr.read()
    kept = len(_records(out))
    assert f"terminated (SIGTERM): {kept} finished item(s)" in err and "--resume" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and len(manifest["items"]) == kept


def test_ctrl_c_with_two_workers_counts_every_item_the_workers_finished(toy_recipe, tmp_path):
    out = tmp_path / "run"
    proc = _toy(
        "run",
        str(toy_recipe),
        "--out",
        str(out),
        "--workers",
        "2",
        env={"TOY_SLEEP": "1"},
        start_new_session=True,
    )
    wait_for(lambda: len(_records(out)) >= 2, "two items finished by the workers")
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    assert proc.wait(60) == 130
    err = proc.stderr.read()
    kept = len(_records(out))
    assert f"interrupted: {kept} finished item(s)" in err, err
    assert "Traceback" not in err
    assert len(json.loads((out / "manifest.json").read_text())["items"]) == kept


def test_a_second_run_on_the_same_out_exits_6_while_the_first_holds_it(toy_recipe, tmp_path):
    out = tmp_path / "run"
    first = _toy("run", str(toy_recipe), "--out", str(out), "-q", env={"TOY_SLEEP": "30"})  # stopped below
    wait_for(
        lambda: (out / ".fk" / "lock").exists() and (out / ".fk" / "lock").read_text().strip(), "the lock"
    )
    second = _toy("run", str(toy_recipe), "--out", str(out), "--resume", "--json")
    assert second.wait(60) == 6
    doc = json.loads(second.stdout.read())
    assert doc["ok"] is False and doc["error"]["exit_code"] == 6
    assert f"another fk run (pid {first.pid}) is writing to {out}" in doc["error"]["message"]
    first.send_signal(signal.SIGTERM)  # ends at the next Python instruction, sleep included
    assert first.wait(60) == 143


def test_progress_lines_off_a_terminal_a_bar_on_one_and_quiet_silences_both(toy_recipe, tmp_path):
    plain = _toy("run", str(toy_recipe), "--out", str(tmp_path / "a"))
    assert plain.wait(120) == 5
    err = plain.stderr.read()
    assert "fk: 4 item(s) to run" in err and "fk: item 4/4" in err and "ETA" in err
    quiet = _toy("run", str(toy_recipe), "--out", str(tmp_path / "b"), "--quiet")
    assert quiet.wait(120) == 5
    assert quiet.stderr.read() == ""
    import pty

    primary, secondary = pty.openpty()
    tty = subprocess.Popen(
        [sys.executable, str(TOY_FK), "run", str(toy_recipe), "--out", str(tmp_path / "c")],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        env=os.environ.copy(),
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert tty.wait(120) == 5
    text = seen.decode(errors="replace")
    assert "colour" in text and "━" in text and "fk: item" not in text  # rich's bar, no plain lines


# -- 13. a plugin that calls sys.exit() at import ---------------------------------------------------
def _fake_dist(site: Path, name: str, module_source: str) -> None:
    """An installed distribution (dist-info + module) that importlib.metadata finds on PYTHONPATH."""
    (site / f"{name}.py").write_text(module_source)
    info = site / f"fk_plugin_{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fk-plugin-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[fk]\n{name} = {name}\n")


def test_a_plugin_that_calls_sys_exit_at_import_is_listed_broken_and_fk_still_works(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _fake_dist(site, "quitter", "import sys\nsys.exit(3)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    fk = [sys.executable, "-m", "fk.cli.main"]
    helped = subprocess.run([*fk, "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert helped.returncode == 0 and "run" in helped.stdout
    listed = subprocess.run(
        [*fk, "plugins", "list", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["quitter"]["status"] == "broken"
    assert "sys.exit(3)" in rows["quitter"]["error"]
    assert rows["core"]["status"] == "ok"


@pytest.mark.parametrize("group", ["", "plugins", "components", "recipe", "models", "datasets", "deep3d"])
def test_a_bare_group_prints_its_help_with_rc_0(group):
    import importlib.util

    if group in ("datasets", "deep3d") and importlib.util.find_spec(f"fk_{group}") is None:
        pytest.skip(f"fk-plugin-{group} is not installed")
    res = subprocess.run(
        [sys.executable, "-m", "fk.cli.main", *([group] if group else [])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "Usage: fk" in res.stdout and "Commands" in res.stdout
    assert "internal error" not in res.stdout + res.stderr
