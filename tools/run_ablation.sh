#!/usr/bin/env bash
# The IMKD ablation with recipe v2 (docs/ablation.md, issue #14), end to end and resumable:
# synthesises the train (seed 1, 24 scenes) / held-out (seed 2, 4 scenes) worlds if missing, trains
# the v2 LiDAR teacher (0.8 m grid, 10 sweeps / 40k points), then the students: camera+radar without
# distillation and full IMKD on 3 seeds, the other rows on one seed. Finished runs are skipped,
# killed runs resume from last.pt. SHIP=1 then copies the seed-0 teacher and full-IMKD student to
# models/ (only do that when they beat the shipped ones on the held-out split: see MODEL_CARD.md).
# The v1 tables of docs/ablation.md were made with models/cpu_v1.yaml (MODEL=cpu_v1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-cpu}
OUT=${OUT:-runs/ablation_v2}
EPOCHS=${EPOCHS:-10}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-16}
COMMON=(--out "$OUT" --model "$MODEL" --epochs "$EPOCHS" --teacher-epochs "$TEACHER_EPOCHS" --jobs "${JOBS:-1}")
"$PY" -m imkd_ros.train.ablation "${COMMON[@]}" --seeds 0 1 2 --rows teacher no_distill imkd
"$PY" -m imkd_ros.train.ablation "${COMMON[@]}" --seeds 0 --teacher-run "$OUT/teacher_s0" \
  --rows camera_only l1 l1_l2 imkd_label --table "$OUT/table_rows.md"
[[ "${SHIP:-0}" == 1 ]] || exit 0
"$PY" -m imkd_ros.train.ship --teacher-run "$OUT/teacher_s0" --student-run "$OUT/imkd_s0"
