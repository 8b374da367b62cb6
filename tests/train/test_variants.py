"""Ablation variants switch exactly the model config parts they name; the CLI is registered."""

from __future__ import annotations

import pytest

from imkd_ros.cli import build_parser
from imkd_ros.model.config import load_config
from imkd_ros.train.ablation import ROWS, _fmt, ensure_data, parse_args, train_cmd
from imkd_ros.train.trainer import VARIANTS, TrainConfig, apply_overrides, model_config, uses_distillation


def test_rows_are_variants():
    assert [r for r, _ in ROWS][:6] == ["teacher", "camera_only", "no_distill", "l1", "l1_l2", "imkd"]
    assert all(r in VARIANTS for r, _ in ROWS)


def test_variant_switches():
    c = {v: model_config(TrainConfig(variant=v)) for v in VARIANTS if v != "teacher"}
    assert not uses_distillation(c["no_distill"]) and not c["no_distill"].fusion.radar_gate
    assert not c["camera_only"].depth.radar_prior and VARIANTS["camera_only"]["_drop_radar"]
    assert c["l1"].distill.level1 and not c["l1"].distill.level2 and not c["l1"].fusion.radar_gate
    assert c["l1_l2"].distill.level2 and c["l1_l2"].distill.response and not c["l1_l2"].fusion.radar_gate
    assert c["imkd"].fusion.radar_gate and c["imkd"].distill.level1 and c["imkd"].distill.level2
    # only the named keys change
    base = load_config("cpu")
    assert c["imkd"].backbone == base.backbone and c["imkd"].grid == base.grid


def test_overrides_reject_typos():
    with pytest.raises(KeyError):
        apply_overrides(load_config("cpu"), {"distill.levle1": False})


def test_cli_has_train():
    args = build_parser().parse_args(["train", "--variant", "l1", "--data", "simple:4:0", "--epochs", "1"])
    assert args.variant == "l1" and callable(args.func)


def test_mean_spread_format():
    assert _fmt([0.1, 0.3]) == "0.200 ± 0.141"
    assert _fmt([None]) == "-"


def test_ablation_uses_given_dataroots_and_shared_cache(tmp_path):
    """An ablation on data made elsewhere trains on that dataroot with the shared frame cache and
    never regenerates it; a path that is not a dataroot is refused by name."""
    root = tmp_path / "train96"
    (root / "v1.0-synth").mkdir(parents=True)
    (root / "v1.0-synth" / "sample.json").write_text("[]")
    args = parse_args(["--out", str(tmp_path / "abl"), "--train-root", str(root), "--cache-dir", "shared/cache"])
    assert ensure_data(args, "synth_train", 96, 1, args.train_root) == root
    cmd = train_cmd(args, "no_distill", 0, root, root, None)
    assert cmd[cmd.index("--cache-dir") + 1] == "shared/cache" and cmd[cmd.index("--data") + 1] == str(root)
    assert "--teacher" not in cmd
    with pytest.raises(SystemExit, match="not a dataroot"):
        ensure_data(args, "synth_val", 4, 2, str(tmp_path / "missing"))
    default = parse_args(["--out", str(tmp_path / "abl")])
    cmd = train_cmd(default, "imkd", 1, root, root, tmp_path / "t.pt")
    assert cmd[cmd.index("--cache-dir") + 1] == str(tmp_path / "abl" / "cache")
    assert cmd[cmd.index("--teacher") + 1] == str(tmp_path / "t.pt")


def test_bev_flip_reaches_the_training_config(tmp_path):
    """`--bev-flip left-right` travels ablation -> imkd train -> the BEV augmentation config."""
    root = tmp_path / "train96"
    (root / "v1.0-synth").mkdir(parents=True)
    (root / "v1.0-synth" / "sample.json").write_text("[]")
    args = parse_args(["--out", str(tmp_path / "abl"), "--train-root", str(root), "--bev-flip", "left-right"])
    cmd = train_cmd(args, "no_distill", 0, root, root, None)
    train_args = build_parser().parse_args(cmd[cmd.index("train"):])
    assert train_args.bev_flip == "left-right"
    default = build_parser().parse_args(["train", "--data", "simple:4:0"])
    assert default.bev_flip == "left-right"
