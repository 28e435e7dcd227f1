"""The run engine: items, fan-out, failures, atomic outputs, resume, manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fk.engine.runner import Interrupted, RunOptions, run_plan
from fk.errors import ExitCode
from fk.recipe import load_recipe


def _run(recipe: Path, out: Path, **kw):
    plan = load_recipe(recipe, kw.pop("overrides", []))
    return run_plan(plan, RunOptions(out, progress=False, **kw))


def _outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and ".fk" not in p.parts and p.name not in ("manifest.json",)}


def test_fan_out_names_children_and_computes_real_values(toy_pm, toy_recipe, photo_dir, tmp_path):
    out = tmp_path / "run"
    summary = _run(toy_recipe, out)
    # a.png is red in both halves; the right half carries noise, so the halves differ
    left = json.loads((out / "colour" / "a_00.json").read_text())["mean"]
    right = json.loads((out / "colour" / "a_01.json").read_text())["mean"]
    from PIL import Image

    arr = np.asarray(Image.open(photo_dir / "a.png"), float)
    assert left == pytest.approx(arr[:, :24].reshape(-1, 3).mean(0).tolist())
    assert right == pytest.approx(arr[:, 24:].reshape(-1, 3).mean(0).tolist())
    assert summary.items == 4 and summary.succeeded == 3 and summary.failed == 1
    report = json.loads((out / "summary" / "summary.json").read_text())
    assert sorted(report["means"]) == ["a_00", "a_01", "b_00", "b_01", "c_00", "c_01"]


def test_bad_item_is_recorded_and_the_batch_goes_on(toy_pm, toy_recipe, tmp_path):
    out = tmp_path / "run"
    summary = _run(toy_recipe, out)
    assert summary.exit_code == ExitCode.ITEM_FAILURES
    failures = json.loads((out / "failures.json").read_text())
    assert [(f["item"], f["step"]) for f in failures] == [("broken", "tiles")]
    assert "broken.jpg" in failures[0]["error"] and "\n" not in failures[0]["error"]
    assert not list((out / "colour").glob("broken*")), "nothing is written for a failed item"


def test_failure_inside_one_child_keeps_its_sibling(toy_pm, toy_recipe, tmp_path):
    out = tmp_path / "run"
    summary = _run(toy_recipe, out, overrides=["colour.fail_on=b_01"])
    items = {(f["item"], f["step"]) for f in summary.failures}
    assert ("b_01", "colour") in items
    assert (out / "colour" / "b_00.json").exists() and not (out / "colour" / "b_01.json").exists()


def test_no_partial_files_are_left(toy_pm, toy_recipe, tmp_path):
    out = tmp_path / "run"
    _run(toy_recipe, out)
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


def test_resume_skips_finished_items_and_gives_identical_outputs(toy_pm, toy_recipe, tmp_path):
    full = tmp_path / "full"
    _run(toy_recipe, full)
    part = tmp_path / "part"
    _run(toy_recipe, part)
    # simulate a kill after item "a": drop b and c's records and outputs
    for key in ("b", "c"):
        (part / ".fk" / "items" / f"{key}.json").unlink()
        for p in (part / "colour").glob(f"{key}_*"):
            p.unlink()
    summary = _run(toy_recipe, part, resume=True)
    assert summary.skipped == 1  # only a; the failed 'broken' item is retried, b and c re-run
    assert _outputs(part) == _outputs(full)


def test_resume_reruns_when_the_recipe_changes(toy_pm, toy_recipe, tmp_path):
    out = tmp_path / "run"
    _run(toy_recipe, out)
    summary = _run(toy_recipe, out, resume=True, overrides=["tiles.n=3"])
    assert summary.skipped == 0
    assert (out / "colour" / "a_02.json").exists()


def test_manifest_records_components_params_digests_and_timings(toy_pm, toy_recipe, tmp_path):
    out = tmp_path / "run"
    _run(toy_recipe, out)
    manifest = json.loads((out / "manifest.json").read_text())
    steps = {s["id"]: s for s in manifest["plan"]["steps"]}
    assert steps["tiles"]["use"] == "crop:tiles" and steps["tiles"]["with"] == {"n": 2}
    assert manifest["timings"]["colour"]["count"] == 6
    # CPU seconds beside wall seconds, per step, summed from the item records
    recorded = [json.loads(p.read_text()) for p in sorted((out / ".fk" / "items").glob("*.json"))]
    assert all(set(r["cpu_seconds"]) == set(r["timings"]) for r in recorded)
    assert manifest["timings"]["colour"]["cpu_seconds"] == pytest.approx(
        sum(r["cpu_seconds"].get("colour", 0.0) for r in recorded))
    assert manifest["timings"]["colour"]["cpu_seconds"] > 0
    assert [o["path"] for o in manifest["run_outputs"]] == ["summary/summary.json"]
    item = manifest["items"]["a"]
    import hashlib

    written = item["outputs"][0]
    assert hashlib.sha256((out / written["path"]).read_bytes()).hexdigest() == written["sha256"]
    assert item["source_sha256"] == hashlib.sha256(Path(item["source"]).read_bytes()).hexdigest()
    assert manifest["counts"] == {"items": 4, "succeeded": 3, "failed": 1, "skipped_by_resume": 0,
                                  "filtered": 0}


def test_interrupt_keeps_finished_items_and_resume_completes(toy_pm, toy_recipe, tmp_path, monkeypatch):
    full = tmp_path / "full"
    _run(toy_recipe, full)
    out = tmp_path / "run"
    monkeypatch.setenv("TOY_INTERRUPT_ON", "c_00")
    with pytest.raises(Interrupted, match="finished") as err:
        _run(toy_recipe, out)
    monkeypatch.delenv("TOY_INTERRUPT_ON")
    assert "--resume" in err.value.hint
    assert err.value.exit_code == ExitCode.INTERRUPTED
    assert (out / "colour" / "b_01.json").exists(), "items finished before Ctrl-C are kept"
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    summary = _run(toy_recipe, out, resume=True)
    assert summary.skipped == 2
    assert _outputs(out) == _outputs(full)


def test_unwritable_output_folder_is_one_clear_error(toy_pm, toy_recipe, tmp_path):
    from fk.errors import FkError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FkError, match="not writable.*--out|not writable") as err:
        _run(toy_recipe, blocker / "sub")
    assert "--out" in err.value.hint


def test_a_failing_run_scope_step_is_exit_code_one_and_items_are_kept(toy_pm, toy_recipe, tmp_path):
    plan = load_recipe(toy_recipe)
    summary_step = plan.steps[-1]
    summary_step.component = type(summary_step.component)(
        **{**summary_step.component.__dict__, "factory": lambda: (lambda inputs, ctx: 1 / 0)})
    result = run_plan(plan, RunOptions(tmp_path / "out", progress=False))
    assert result.exit_code == ExitCode.STEP_FAILED
    assert any(f["item"] == "_run" and "ZeroDivisionError" in f["error"] for f in result.failures)
    assert (tmp_path / "out" / "colour" / "a_00.json").exists()


def test_filtered_items_stop_quietly_and_are_audited(toy_pm, toy_recipe, tmp_path):
    out = tmp_path / "run"
    summary = _run(toy_recipe, out, overrides=["colour.drop=c_00"])
    assert summary.filtered == 1
    assert [f["item"] for f in summary.failures] == ["broken"], "a filtered item is not a failure"
    report = json.loads((out / "summary" / "summary.json").read_text())
    assert report["means"]["c_00"] == "filtered", "run steps still see the decision's outputs"
    assert not (out / "colour" / "c_00.json").exists() and (out / "colour" / "c_01.json").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["items"]["c"]["filtered"] == [
        {"item": "c_00", "step": "colour", "reason": "too dull to keep", "score": 0.25}]
    assert manifest["items"]["c"]["status"] == "ok"


def test_run_scope_steps_see_the_item_failures(toy_pm, toy_recipe, tmp_path):
    plan = load_recipe(toy_recipe)
    summary_step = plan.steps[-1]
    seen: list[list[dict]] = []
    summary_step.component = type(summary_step.component)(
        **{**summary_step.component.__dict__,
           "factory": lambda: (lambda inputs, ctx: seen.append(ctx.failures) or {"report": ""})})
    result = run_plan(plan, RunOptions(tmp_path / "out", progress=False))
    assert [(f["item"], f["step"]) for f in seen[0]] == [("broken", "tiles")]
    assert seen[0][0]["error"] == result.failures[0]["error"]


def test_manifest_times_run_scope_steps_too(toy_pm, toy_recipe, tmp_path):
    out = tmp_path / "run"
    _run(toy_recipe, out)
    timings = json.loads((out / "manifest.json").read_text())["timings"]
    assert timings["summary"]["count"] == 1 and timings["summary"]["seconds"] >= 0
    assert timings["colour"]["count"] == 6  # per item step: once per tile
