#!/usr/bin/env bash
# The IMKD ablation (docs/ablation.md) and the shipped CPU checkpoints (models/MODEL_CARD.md), end
# to end and resumable: synthesises the train / held-out worlds if missing; the short table
# (3-epoch students, runs/ablation) and the main table (10-epoch students, 16-epoch teacher,
# runs/ablation_long); finished runs are skipped, killed runs resume from last.pt. Then the
# main table's seed-0 teacher and full-IMKD student are copied to models/ with MODEL_CARD.md and
# held-out renders in docs/images/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m imkd_ros.train.ablation --out runs/ablation --jobs 2 \
  --rows teacher camera_only no_distill l1 l1_l2 imkd imkd_dens
"$PY" -m imkd_ros.train.ablation --out runs/ablation_long --epochs 10 --teacher-epochs 16 --jobs 3 --seeds 0 1 2 \
  --rows camera_only no_distill l1 l1_l2 imkd
[[ "${SHIP:-1}" == 1 ]] || exit 0
"$PY" -m imkd_ros.train.ship --teacher-run runs/ablation_long/teacher_s0 --student-run runs/ablation_long/imkd_s0
