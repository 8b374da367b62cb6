"""benchmarks/bench_synth.py runs and its per-stage split adds up (a smoke test, not a timing)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_synth_reports_every_stage(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_synth", ROOT / "benchmarks" / "bench_synth.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--scene-seconds", "1", "--image-scale", "0.25", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["keyframes"] == 2 and res["images"] == 2 * 36  # 6 key frames + 30 sweeps each
    assert set(res["per_keyframe_s"]) == {k for k in bench.STAGES}
    timed = sum(res["per_keyframe_s"].values()) * res["keyframes"] + res["setup_s"] + res["finish_s"]
    assert 0 < timed <= res["wall_s"] + 0.05  # the stages are disjoint parts of the run
    assert res["other_per_keyframe_s"] > -0.05
