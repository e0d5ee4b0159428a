#!/usr/bin/env bash
# The ablation (paper Table 1 shape) as Slurm jobs: one teacher, then four students in a job array
# that starts only when the teacher succeeded, then one evaluation of all five models.
#
#   cluster/ablation.sh [kdtrain arguments]      e.g. cluster/ablation.sh --config paper.json
#
#   job 1   kdtrain train-teacher                 RUN/teacher            (cluster/kdtrain.sbatch)
#   job 2   array 0-3, --dependency=afterok:1     RUN/student-0..3       (cluster/kdtrain.sbatch distill)
#             0 basic: no distillation  1 + logit KD  2 + attention KD  3 + both
#   job 3   --dependency=afterok:2 (all tasks)    RUN/summary/eval/evaluate.{md,json,svg} (cluster/ablation-evaluate.sbatch)
#
# RUN is $KDTRAIN_RUN_ROOT/<name> (KDTRAIN_RUN_ROOT default ./runs, name default ablation-<date>-<time>,
# or KDTRAIN_ABLATION_NAME). The same kdtrain arguments go to every job, so teacher and students
# share data and configuration; each student finds the teacher through RUN/student-i/teacher, a
# link to RUN/teacher/teacher (distill uses the latest checkpoint there). Every job requeues and
# resumes like any kdtrain.sbatch job. Extra sbatch options for all jobs: KDTRAIN_SBATCH_ARGS
# (e.g. "--partition=cpu --account=me --time=12:00:00").
#
# `kdtrain ablation` does the same in one job, one student after the other; this way the four
# students train at the same time on four allocations.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${KDTRAIN_RUN_ROOT:-$PWD/runs}
NAME=${KDTRAIN_ABLATION_NAME:-ablation-$(date +%Y%m%d-%H%M%S)}
BASE=$ROOT/$NAME
read -r -a EXTRA <<<"${KDTRAIN_SBATCH_ARGS:-}"
# One entry per array index; ';' separates them (cluster/kdtrain.sbatch, KDTRAIN_ARRAY_ARGS).
VARIANTS="--set loss.kd=0 --set loss.attention=none;--set loss.kd=1 --set loss.attention=none;--set loss.kd=0 --set loss.attention=askd;--set loss.kd=1 --set loss.attention=askd"

[ ! -e "$BASE" ] || { echo "ablation.sh: $BASE exists; choose another KDTRAIN_ABLATION_NAME" >&2; exit 2; }
mkdir -p "$BASE/teacher/teacher" "$BASE/summary"
for i in 0 1 2 3; do
  mkdir -p "$BASE/student-$i"
  ln -s ../teacher/teacher "$BASE/student-$i/teacher"
done

teacher=$(KDTRAIN_RUN_DIR=$BASE/teacher sbatch --parsable "${EXTRA[@]}" --job-name="$NAME-teacher" \
  "$HERE/kdtrain.sbatch" train-teacher "$@" | cut -d';' -f1)
students=$(KDTRAIN_RUN_DIR="$BASE/student-%a" KDTRAIN_ARRAY_ARGS=$VARIANTS sbatch --parsable "${EXTRA[@]}" \
  --job-name="$NAME-student" --array=0-3 --dependency="afterok:$teacher" --kill-on-invalid-dep=yes \
  "$HERE/kdtrain.sbatch" distill "$@" | cut -d';' -f1)
evaluation=$(sbatch --parsable "${EXTRA[@]}" --job-name="$NAME-eval" --dependency="afterok:$students" --kill-on-invalid-dep=yes \
  "$HERE/ablation-evaluate.sbatch" "$BASE" "$@" | cut -d';' -f1)
echo "ablation.sh: $BASE"
echo "  teacher    job $teacher"
echo "  students   job array ${students}_[0-3] (after $teacher)"
echo "  evaluation job $evaluation (after all students): $BASE/summary/eval/evaluate.md"
