"""Issue 11, run folders: writes stay in --out, resume notices changes, modes honour the umask,
a used folder is not mixed into, and the same inputs give the same bytes (in-process runs)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fk import atomic
from fk.engine.runner import RunOptions, run_plan
from fk.errors import ExitCode, FkError, RecipeError, UsageError
from fk.recipe import load_recipe


def _run(recipe: Path, out: Path, **kw):
    plan = load_recipe(recipe, kw.pop("overrides", []))
    return run_plan(plan, RunOptions(out, progress=False, **kw))


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


# -- 1. confinement -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_dir", ["../../escaped", "/tmp/fk-escaped", "~/fk-escaped", "pages/../../x"])
def test_a_step_folder_outside_out_is_a_located_validation_error(toy_pm, toy_recipe, bad_dir):
    text = toy_recipe.read_text().replace("    with: {n: 2}\n", f"    with: {{n: 2}}\n    dir: {bad_dir}\n")
    toy_recipe.write_text(text)
    with pytest.raises(RecipeError) as err:
        load_recipe(toy_recipe)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.strip().startswith("dir:"))
    assert f"{toy_recipe}:{line}:10: steps[0].dir: dir {bad_dir!r}" in str(err.value)
    assert "inside --out" in str(err.value)


def test_a_symlink_inside_out_that_leaves_it_is_never_written_through(toy_pm, toy_recipe, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "index.html").write_text("keep me")
    out = tmp_path / "run"
    out.mkdir()
    (out / "colour").symlink_to(outside, target_is_directory=True)
    summary = _run(toy_recipe, out, overwrite=True)
    assert summary.exit_code == ExitCode.ITEM_FAILURES
    errors = {f["error"] for f in summary.failures if f["step"] == "colour"}
    assert errors and all("outside the run folder" in e for e in errors), errors
    assert sorted(p.name for p in outside.iterdir()) == ["index.html"]
    assert (outside / "index.html").read_text() == "keep me"


def test_a_component_asking_for_dotdot_or_an_absolute_path_is_refused(tmp_path):
    from fk.engine.context import ItemContext, OutsideRunFolderError

    run = tmp_path / "run"
    ctx = ItemContext("a", None, "s", run, run / "s")
    assert ctx.write_text("ok/inside.txt", "x").read_text() == "x"
    for bad in ("../../x.txt", str(tmp_path / "x.txt")):
        with pytest.raises(OutsideRunFolderError, match="outside the run folder"):
            ctx.write_text(bad, "x")
    assert not (tmp_path / "x.txt").exists()


# -- 2. resume notices changed inputs ---------------------------------------------------------------
def test_resume_recomputes_an_item_whose_photo_changed_and_records_the_new_hash(
    toy_pm, toy_recipe, photo_dir, tmp_path
):
    out = tmp_path / "run"
    _run(toy_recipe, out)
    before = json.loads((out / "colour" / "b_00.json").read_text())["mean"]
    arr = np.zeros((32, 48, 3), np.uint8)
    arr[..., 2] = 250  # same name, new content
    Image.fromarray(arr).save(photo_dir / "b.png")
    summary = _run(toy_recipe, out, resume=True)
    assert summary.recomputed == [
        {"item": "b", "reason": "its input file changed"},
        {"item": "broken", "reason": "it failed last time"},
    ]
    assert summary.skipped == 2
    after = json.loads((out / "colour" / "b_00.json").read_text())["mean"]
    assert after != before and after[2] == pytest.approx(250.0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["items"]["b"]["source_sha256"] == atomic.sha256_file(photo_dir / "b.png")


def test_resume_recomputes_when_another_file_input_changes(toy_pm, toy_recipe, tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text("{}")
    text = toy_recipe.read_text().replace("inputs:\n", f"inputs:\n  labels: {{type: file, path: {labels}}}\n")
    toy_recipe.write_text(text)
    out = tmp_path / "run"
    _run(toy_recipe, out)
    labels.write_text('{"changed": true}')
    summary = _run(toy_recipe, out, resume=True)
    assert {r["item"]: r["reason"] for r in summary.recomputed}["a"] == "input labels changed"
    assert summary.skipped == 0


# -- 3. file modes -------------------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_mode_open_would_give_them(toy_pm, toy_recipe, tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        out = tmp_path / "run"
        _run(toy_recipe, out)
        with atomic.atomic_path(tmp_path / "mesh.obj") as tmp:
            tmp.write_text("v 0 0 0\n")
        made = [p for p in out.rglob("*") if p.is_file() and p.name != "lock"] + [tmp_path / "mesh.obj"]
        with open(tmp_path / "by-open.txt", "w"):
            pass
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "by-open.txt").stat().st_mode) == mode
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in made} == {p.name: oct(mode) for p in made}


# -- 4. a used folder is not mixed into -------------------------------------------------------------
def test_a_new_run_into_a_used_folder_asks_for_resume_or_overwrite(toy_pm, toy_recipe, tmp_path):
    out = tmp_path / "run"
    _run(toy_recipe, out, overrides=["tiles.n=3"])
    assert (out / "colour" / "a_02.json").exists()
    with pytest.raises(UsageError, match="already holds a run") as err:
        _run(toy_recipe, out)
    assert "--resume" in err.value.hint and "--overwrite" in err.value.hint
    (out / "notes.txt").write_text("mine")  # not fk's: --overwrite leaves it
    summary = _run(toy_recipe, out, overwrite=True)  # n=2 now: the third strips must go
    assert summary.succeeded == 3
    assert not (out / "colour" / "a_02.json").exists()
    assert (out / "colour" / "a_01.json").exists() and (out / "notes.txt").read_text() == "mine"


def test_a_folder_that_holds_other_files_is_not_used_without_overwrite(toy_pm, toy_recipe, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        _run(toy_recipe, out)
    assert _files(out) == {"thesis.tex"}


def test_a_second_run_on_a_locked_folder_exits_6_at_once(toy_pm, toy_recipe, tmp_path):
    from fk.engine.runner import RunFolderBusy, run_folder_lock

    out = tmp_path / "run"
    out.mkdir()
    with run_folder_lock(out):
        with pytest.raises(RunFolderBusy, match=f"pid {os.getpid()}") as err:
            _run(toy_recipe, out)
    assert err.value.exit_code == ExitCode.BUSY == 6
    assert not (out / "colour").exists()
    assert _run(toy_recipe, out).succeeded == 3  # released with the run that held it


# -- 5. same inputs, same bytes -------------------------------------------------------------------
def test_every_item_and_step_is_seeded_so_order_and_process_do_not_matter(
    toy_pm, toy_recipe, photo_dir, tmp_path
):
    full = tmp_path / "full"
    _run(toy_recipe, full)
    part = tmp_path / "part"
    (photo_dir / "a.png").rename(tmp_path / "a.png")  # run b, c first, then a alone with --resume
    _run(toy_recipe, part)
    (tmp_path / "a.png").rename(photo_dir / "a.png")
    np.random.seed(12345)  # whatever state the process is in
    _run(toy_recipe, part, resume=True)
    sample = json.loads((full / "colour" / "a_00.json").read_text())["sample"]
    assert 0.0 < sample < 1.0
    for name in ("a_00", "a_01", "b_00", "c_01"):
        assert (full / "colour" / f"{name}.json").read_bytes() == (
            part / "colour" / f"{name}.json"
        ).read_bytes()


def test_mat_files_carry_no_time_stamp(monkeypatch):
    import time

    from fk.io.matfile import savemat_bytes
    from scipy.io import loadmat

    arrays = {"id": np.arange(6, dtype=np.float32).reshape(1, 6)}
    monkeypatch.setattr(time, "asctime", lambda *a: "Mon Jan  1 00:00:00 2001")
    first = savemat_bytes(arrays)
    monkeypatch.setattr(time, "asctime", lambda *a: "Tue Feb  2 11:11:11 2022")
    assert savemat_bytes(arrays) == first
    assert b"Created by: fk" in first[:116] and b"2001" not in first
    import io

    assert np.array_equal(loadmat(io.BytesIO(first))["id"], arrays["id"])


def test_leftover_temporary_files_of_a_killed_writer_are_removed_on_resume(toy_pm, toy_recipe, tmp_path):
    out = tmp_path / "run"
    _run(toy_recipe, out)
    left = [out / "colour" / ".a_00.json.k2j3h4q_.part", out / "colour" / ".a_00.png.abcdefgh.part.png"]
    for p in left:
        p.write_bytes(b"half")
    (out / "colour" / ".keep.part").write_text("not ours")  # not an fk temp name
    _run(toy_recipe, out, resume=True)
    assert not any(p.exists() for p in left)
    assert (out / "colour" / ".keep.part").exists()


def test_unwritable_record_names_the_file_not_the_temporary(tmp_path, monkeypatch):
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OSError) as err:
        atomic.write_json(tmp_path / "manifest.json", {})
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "manifest.json")
    assert list(tmp_path.iterdir()) == []


def test_progress_prints_plain_lines_when_stderr_is_not_a_terminal(toy_pm, toy_recipe, tmp_path, capsys):
    plan = load_recipe(toy_recipe)
    run_plan(plan, RunOptions(tmp_path / "run", progress=True))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("fk: ")]
    assert lines[0].startswith("fk: 4 item(s) to run")
    assert any(ln.startswith("fk: item 1/4 ") and "ETA" in ln for ln in lines)
    assert any(ln.startswith("fk: item 4/4 ") for ln in lines)
    assert any(ln.startswith("fk: summary (once per run) done") for ln in lines)
    run_plan(plan, RunOptions(tmp_path / "quiet", progress=False))
    assert capsys.readouterr().err == ""


def test_fk_error_base_is_used_for_confinement():
    from fk.engine.context import OutsideRunFolderError

    assert issubclass(OutsideRunFolderError, FkError)
