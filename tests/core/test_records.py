"""Streamed run records: totals without the records, and a manifest written entry by entry."""

from __future__ import annotations

import json

from fk.engine.records import RunRecords, write_json_streaming, write_record


def test_streamed_json_is_the_text_json_dumps_gives(tmp_path):
    head = {"fk_version": "0.1", "counts": {"items": 2}, "plan": {"steps": [{"id": "a", "params": {}}]}}
    items = {"x": {"outputs": [{"path": "a/x.png", "sha256": "00"}], "messages": []}, "y": {"outputs": []}}
    tail = {"run_outputs": [], "timings": {"a": {"seconds": 1.5}}, "failures": []}
    path = write_json_streaming(tmp_path / "m.json", head, "items", iter(items.items()), tail)
    assert path.read_text() == json.dumps({**head, "items": items, **tail}, indent=2) + "\n"
    empty = write_json_streaming(tmp_path / "e.json", {}, "items", iter(()), {})
    assert empty.read_text() == json.dumps({"items": {}}, indent=2) + "\n"


def test_run_records_keep_totals_and_read_records_back_from_disk(tmp_path):
    recs = [{"key": k, "source": f"{k}.png", "status": s, "outputs": [], "failures": f, "filtered": [],
             "timings": {"crop": [0.5, 1]}, "leaves": {k: {"status": s, "values": {"crop.n": 1}}}}
            for k, s, f in [("b", "failed", [{"item": "b", "step": "crop", "error": "no face"}]),
                            ("a", "ok", [])]]
    records = RunRecords(tmp_path, keep_leaves=False)
    for rec in recs:
        write_record(tmp_path, rec)
        records.add(rec)
    records.add(recs[0])  # the same item reported twice (a retried task) counts once
    assert (len(records), records.succeeded) == (2, 1)
    assert records.failures() == [{"item": "b", "step": "crop", "error": "no face"}]
    assert records.timing_summary()["crop"] == {"seconds": 1.0, "count": 2, "mean_seconds": 0.5}
    assert records.leaves == {}  # nothing kept unless a run-scope step reads it
    assert [k for k, _ in records.iter_records()] == ["a", "b"]
    assert next(records.iter_records())[1]["source"] == "a.png"


def test_cpu_seconds_are_summed_per_step_and_records_without_them_still_count(tmp_path):
    old = {"key": "a", "status": "ok", "timings": {"crop": [0.5, 1]}}  # written before CPU was kept
    new = {"key": "b", "status": "ok", "timings": {"crop": [0.25, 1]}, "cpu_seconds": {"crop": 0.125}}
    records = RunRecords(tmp_path)
    records.add(old)
    records.add(new)
    summary = records.timing_summary()["crop"]
    assert (summary["seconds"], summary["count"], summary["cpu_seconds"]) == (0.75, 2, 0.125)
