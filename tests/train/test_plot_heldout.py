"""The ablation picture averages what it says: seeds over splits, rows by run folder."""

from __future__ import annotations

import json
import math

from imkd_ros.train.plot_heldout import collect, main


def _res(nds: float, mAP: float) -> dict:
    return {"before_threshold": {"NDS": nds, "mAP": mAP}, "at_0.3": {"NDS": 0.0, "mAP": 0.0}}


def _write(path, results: dict) -> str:
    path.write_text(json.dumps(results))
    return str(path)


def test_seeds_average_over_splits_and_rows_drop_the_seed_suffix(tmp_path):
    a = _write(tmp_path / "a.json", {"runs/x/imkd_s0/student.pt": _res(0.40, 0.30),
                                     "runs/x/imkd_s1/student.pt": _res(0.44, 0.34),
                                     "runs/y/no_distill_s0/student.pt": _res(0.36, 0.22)})
    b = _write(tmp_path / "b.json", {"runs/x/imkd_s0/student.pt": _res(0.42, 0.32)})
    t = collect([a, b])
    assert set(t) == {"imkd", "no_distill"}
    assert math.isclose(t["imkd"][0]["NDS"], 0.41) and t["imkd"][0]["n_splits"] == 2
    assert math.isclose(t["imkd"][1]["mAP"], 0.34) and t["imkd"][1]["n_splits"] == 1
    assert t["no_distill"] == {0: {"NDS": 0.36, "mAP": 0.22, "n_splits": 1}}


def test_a_checkpoint_scored_twice_on_one_split_counts_once(tmp_path):
    first = {**_res(0.40, 0.30), "data": "runs/data/synth_val16"}
    again = _write(tmp_path / "again.json", {"r/imkd_s0/student.pt": first})
    second = {**_res(0.46, 0.36), "data": "runs/data/synth_val16b"}
    other = _write(tmp_path / "other.json", {"r/imkd_s0/student.pt": second})
    t = collect([_write(tmp_path / "one.json", {"r/imkd_s0/student.pt": first}), again, other])
    assert t["imkd"][0]["n_splits"] == 2 and math.isclose(t["imkd"][0]["NDS"], 0.43)


def test_the_command_writes_a_png_and_names_what_it_averaged(tmp_path, capsys):
    a = _write(tmp_path / "a.json", {"r/imkd_s0/student.pt": _res(0.40, 0.30), "r/imkd_s1/student.pt": _res(0.44, 0.34),
                                     "r/camera_only_s0/student.pt": _res(0.10, 0.01)})
    out = tmp_path / "img" / "ablation.png"
    assert main(["--json", a, "--out", str(out), "--rows", "camera_only", "imkd", "missing",
                 "--label", "imkd=full IMKD", "--mark-seed", "0"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "imkd: NDS 0.420 mAP 0.320 over seeds 0 (1 split), 1 (1 split)" in text
    assert "missing: no scores in the given files" in text
