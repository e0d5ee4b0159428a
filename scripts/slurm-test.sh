#!/usr/bin/env bash
# The Slurm test: cluster/kdtrain.sbatch on a real single-node Slurm (scripts/slurm-local.sh).
# Run by Tests/LauncherTests/SlurmTests.swift; runnable alone:
#
#   scripts/slurm-test.sh [WORKDIR]        (default: a new directory under /tmp)
#
# Two jobs of the same tiny configuration, 2 ranks each, submitted with sbatch:
#   plain    runs uninterrupted; must end COMPLETED with a final student checkpoint, report.md and
#            eval/results.json.
#   resumed  is interrupted twice while the student trains:
#              1. `scancel --signal=USR1 --batch` (exactly what --signal=B:USR1@N delivers before the
#                 time limit): the script's trap forwards it, kdtrain checkpoints and exits 0, the
#                 script requeues the job itself;
#              2. `scontrol requeue` (SIGTERM from Slurm, as for preemption): kdtrain checkpoints,
#                 Slurm requeues the job;
#            each time the job restarts in the same run directory with --resume auto and must end
#            COMPLETED after 2 restarts, with 2 "interrupted" records in its metrics.
# Then the final student checkpoints of both jobs are compared byte for byte, every tensor (the Swift
# test compares them again, with the metadata).
#
# Writes WORKDIR/final-checkpoints.txt (two lines: plain, resumed) for the Swift test.
# Exit status: 0 passed; 1 failed (reason on stderr, with the job logs); 77 Slurm cannot run on
# this machine (only when the environment variable CI is unset; when CI is set, even empty, 1).
# Every wait is bounded; the whole test is bounded by KDTRAIN_SLURM_TEST_BUDGET_S (default 660 s).
# Jobs left in the queue are cancelled on exit; a Slurm started by this test is stopped again
# unless KDTRAIN_SLURM_KEEP=1.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d /tmp/kdtrain-slurm-test.XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
KDTRAIN_BIN=${KDTRAIN_BIN:-$REPO/.build/release/kdtrain}
BUDGET_S=${KDTRAIN_SLURM_TEST_BUDGET_S:-660}
T0=$SECONDS

# The configuration: 160 synthetic images, global batch 16 => 10 steps per epoch; teacher 5 steps,
# student 30 steps with a checkpoint every 3 (so an interruption usually lands between two).
IDS=20 IMAGES=8 BATCH=16 STUDENT_EPOCHS=3
STUDENT_STEPS=$((STUDENT_EPOCHS * IDS * IMAGES / BATCH))
FINAL=$(printf 'step-%08d.safetensors' "$STUDENT_STEPS")
KD_ARGS=(--set "data.train=synthetic:ids=$IDS,images=$IMAGES" --set data.eval=synthetic:pairs=100,verify-ids=40
         --set teacher.epochs=0.5 --set "student.epochs=$STUDENT_EPOCHS" --set "optim.batch=$BATCH"
         --set checkpoints.every=3 --set checkpoints.average=2 --set checkpoints.bnBatches=2 --set logEvery=2
         --set "eval.factors=[1]")

say() { echo "slurm-test[$((SECONDS - T0))s]: $*"; }
JOBS=()
dump_logs() {
  local f
  for f in "$WORK"/*.out; do [ -f "$f" ] && { echo "----- $f (last 40 lines)"; tail -n 40 "$f"; }; done >&2
}
fail() { echo "slurm-test: FAIL: $*" >&2; dump_logs; exit 1; }

STARTED_SLURM=""
cleanup() {
  local j
  [ "${#JOBS[@]}" -gt 0 ] && [ -n "${SLURM_CONF:-}" ] || JOBS=()
  for j in "${JOBS[@]}"; do timeout 10 scancel "$j" >/dev/null 2>&1 || true; done
  # Let cancelled jobs end (SIGTERM, then SIGKILL after KillWait) before slurmd goes away.
  local end=$((SECONDS + 45))
  while [ "${#JOBS[@]}" -gt 0 ] && [ "$SECONDS" -lt "$end" ] \
        && [ -n "$(timeout 10 squeue -h -j "$(IFS=,; echo "${JOBS[*]}")" 2>/dev/null)" ]; do sleep 1; done
  if [ -n "$STARTED_SLURM" ] && [ "${KDTRAIN_SLURM_KEEP:-0}" != 1 ]; then
    "$REPO/scripts/slurm-local.sh" stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'fail "interrupted by a signal"' TERM INT

left() { echo $((BUDGET_S - (SECONDS - T0))); }

# ---- Slurm
[ -x "$KDTRAIN_BIN" ] || fail "no kdtrain binary at $KDTRAIN_BIN (swift build -c release)"
if ! "$REPO/scripts/slurm-local.sh" status >/dev/null 2>&1; then
  STARTED_SLURM=1
  if ! out=$("$REPO/scripts/slurm-local.sh" start 2>&1); then
    echo "$out" >&2
    if [ -n "${CI+set}" ]; then fail "Slurm must run in CI but could not start (above)"; fi
    echo "slurm-test: SKIP: Slurm cannot run on this machine (above); set CI=1 to make this a failure" >&2
    exit 77
  fi
  echo "$out"
fi
eval "$("$REPO/scripts/slurm-local.sh" env)"
export SLURM_CONF
# A job submitted from inside another Slurm job would inherit that job's variables.
for v in $(env | sed -n 's/^\(SLURM_[A-Za-z0-9_]*\)=.*/\1/p'); do [ "$v" = SLURM_CONF ] || unset "$v"; done

# ---- helpers over `scontrol show job`
field() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<" $1"; }
job_info() { timeout 10 scontrol -o show job "$1" 2>/dev/null || true; }

# wait_state JOB STATE MIN_RESTARTS SECONDS: until the job is in STATE with Restarts >= MIN_RESTARTS.
# Fails at once on a final state other than the one awaited.
wait_state() {
  local job=$1 want=$2 restarts=$3 limit=$4 info state r end=$((SECONDS + $4))
  while :; do
    info=$(job_info "$job"); state=$(field "$info" JobState); r=$(field "$info" Restarts)
    [ "$state" = "$want" ] && [ "${r:-0}" -ge "$restarts" ] && return 0
    case "$state" in
      FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
        fail "job $job ended $state (reason $(field "$info" Reason), exit $(field "$info" ExitCode)) while waiting for $want" ;;
      COMPLETED) [ "$want" = COMPLETED ] || fail "job $job COMPLETED while waiting for $want (restarts ${r:-0}): the interruption came too late" ;;
    esac
    [ "$SECONDS" -lt "$end" ] && [ "$(left)" -gt 0 ] || fail "job $job: not $want (restarts >= $restarts) within $limit s (now ${state:-unknown}, restarts ${r:-?})"
    sleep 0.5
  done
}

# A requeued job waits ~120 s (BeginTime) before it may start again: start it now. Not too soon:
# slurmd rejects a credential issued in the same second as the revocation of the job's previous
# start ("Job credential revoked", the job then FAILS), so wait until the node is idle, then 2 s.
release_now() {
  wait_state "$1" PENDING "$2" 60
  local end=$((SECONDS + 60))
  until [ "$(timeout 10 sinfo -h -N -o %T 2>/dev/null | head -n1)" = idle ]; do
    [ "$SECONDS" -lt "$end" ] || fail "node not idle within 60 s after job $1 was requeued"
    sleep 0.5
  done
  sleep 2
  timeout 10 scontrol update JobId="$1" StartTime=now || fail "scontrol update JobId=$1 StartTime=now failed"
  say "job $1 requeued (restart $2), released"
}

# Highest step among the checkpoints of a phase directory (0 when none).
last_step() {
  local f
  f=$(ls "$1" 2>/dev/null | grep -E '^step-[0-9]{8}\.safetensors$' | tail -n 1) || true
  [ -n "$f" ] && echo $((10#${f:5:8})) || echo 0
}
wait_checkpoint_after() {   # DIR STEP SECONDS: until a checkpoint newer than STEP exists
  local end=$((SECONDS + $3))
  until [ "$(last_step "$1")" -gt "$2" ]; do
    [ "$SECONDS" -lt "$end" ] || fail "no checkpoint after step $2 in $1 within $3 s"
    sleep 0.2
  done
}

submit() {   # NAME: prints the job id
  KDTRAIN_BIN=$KDTRAIN_BIN KDTRAIN_RUN_ROOT=$WORK/runs timeout 30 \
    sbatch --parsable --job-name="$1" --time=15 --output="$WORK/%x-%j.out" "$REPO/cluster/kdtrain.sbatch" "${KD_ARGS[@]}" \
    | cut -d';' -f1
}

count() { grep -c "$1" "$2" 2>/dev/null || true; }

# ---- 1. an uninterrupted job
PLAIN_JOB=$(submit kd-plain) || fail "sbatch failed"
JOBS+=("$PLAIN_JOB")
PLAIN=$WORK/runs/kd-plain-$PLAIN_JOB
say "submitted plain job $PLAIN_JOB ($PLAIN)"
wait_state "$PLAIN_JOB" COMPLETED 0 "$(left)"
info=$(job_info "$PLAIN_JOB")
[ "$(field "$info" ExitCode)" = 0:0 ] || fail "plain job exit code $(field "$info" ExitCode)"
[ "$(field "$info" Restarts)" = 0 ] || fail "plain job restarted $(field "$info" Restarts) time(s)"
[ -s "$PLAIN/student/$FINAL" ] || fail "plain job: no final student checkpoint $PLAIN/student/$FINAL"
[ -s "$PLAIN/report.md" ] || fail "plain job: no $PLAIN/report.md"
grep -q '"student, last"' "$PLAIN/eval/results.json" 2>/dev/null || fail "plain job: $PLAIN/eval/results.json missing or without the student"
[ "$(count '"event":"interrupted"' "$PLAIN/metrics.jsonl")" = 0 ] || fail "plain job was interrupted"
say "plain job completed: $PLAIN/student/$FINAL, report.md, eval/results.json"

# ---- 2. the same job, interrupted twice, requeued and resumed
RES_JOB=$(submit kd-resumed) || fail "sbatch failed"
JOBS+=("$RES_JOB")
RES=$WORK/runs/kd-resumed-$RES_JOB
LOG=$WORK/kd-resumed-$RES_JOB.out
say "submitted job $RES_JOB ($RES)"
wait_state "$RES_JOB" RUNNING 0 120
wait_checkpoint_after "$RES/student" 0 240
step=$(last_step "$RES/student")
[ "$step" -lt "$STUDENT_STEPS" ] || fail "the student finished before the first interruption: lengthen the run"
say "student checkpoint at step $step: sending USR1 to the batch shell (the time-limit warning)"
timeout 10 scancel --signal=USR1 --batch "$RES_JOB" || fail "scancel --signal=USR1 --batch failed"
release_now "$RES_JOB" 1
[ "$(count '"event":"interrupted"' "$RES/metrics.jsonl")" = 1 ] || fail "no 'interrupted' record after USR1 in $RES/metrics.jsonl"
grep -q "requeueing job $RES_JOB" "$LOG" || fail "the batch script did not requeue itself after USR1"
first=$(last_step "$RES/student")

wait_state "$RES_JOB" RUNNING 1 120
wait_checkpoint_after "$RES/student" "$first" 240
step=$(last_step "$RES/student")
[ "$step" -lt "$STUDENT_STEPS" ] || fail "the student finished before the second interruption: lengthen the run"
say "resumed from step $first; checkpoint at step $step: scontrol requeue (SIGTERM)"
timeout 10 scontrol requeue "$RES_JOB" || fail "scontrol requeue $RES_JOB failed"
release_now "$RES_JOB" 2
[ "$(count '"event":"interrupted"' "$RES/metrics.jsonl")" = 2 ] || fail "no second 'interrupted' record after scontrol requeue in $RES/metrics.jsonl"

wait_state "$RES_JOB" COMPLETED 2 "$(left)"
info=$(job_info "$RES_JOB")
[ "$(field "$info" ExitCode)" = 0:0 ] || fail "resumed job exit code $(field "$info" ExitCode)"
[ "$(count 'resuming at step' "$LOG")" -ge 2 ] || fail "the job log shows fewer than 2 resumed phases ('resuming at step')"
[ -s "$RES/report.md" ] || fail "resumed job: no $RES/report.md"
[ -s "$RES/student/$FINAL" ] || fail "resumed job: no final student checkpoint $RES/student/$FINAL"
say "resumed job completed after 2 restarts: $(grep -o 'resuming at step [0-9]*' "$LOG" | tr '\n' ';')"

# ---- 3. same final student weights
# Tensors of a safetensors file as "name absolute-offset bytes" lines (header: 8-byte little-endian
# length, then JSON whose tensor entries kdtrain writes as "name":{"data_offsets":[a,b],...}).
tensors() {
  local n
  n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
  head -c $((8 + n)) "$1" | tail -c "$n" | grep -oE '"[^"]+":\{"data_offsets":\[[0-9]+,[0-9]+\]' \
    | sed -E 's/^"([^"]+)":\{"data_offsets":\[([0-9]+),([0-9]+)\]$/\1 \2 \3/' \
    | awk -v base=$((8 + n)) '{ print $1, $2 + base, $3 - $2 }' | sort
}
A=$PLAIN/student/$FINAL B=$RES/student/$FINAL
printf '%s\n%s\n' "$A" "$B" >"$WORK/final-checkpoints.txt"
tensors "$A" >"$WORK/tensors-plain.txt"; tensors "$B" >"$WORK/tensors-resumed.txt"
[ "$(cut -d' ' -f1,3 "$WORK/tensors-plain.txt")" = "$(cut -d' ' -f1,3 "$WORK/tensors-resumed.txt")" ] \
  || fail "the final student checkpoints hold different tensors ($WORK/tensors-plain.txt, tensors-resumed.txt)"
exact=0 momentum=0 stats=0
while read -r name off_a len && read -r _ off_b _ <&3; do
  [[ $name == *.running_mean || $name == *.running_var ]] && stats=$((stats + 1))
  cmp -s -n "$len" -i "$off_a:$off_b" "$A" "$B" || fail "tensor $name differs between $A and $B (every tensor must be bit-identical)"
  exact=$((exact + 1)); [[ $name == optimizer.momentum.* ]] && momentum=$((momentum + 1))
done <"$WORK/tensors-plain.txt" 3<"$WORK/tensors-resumed.txt"
[ "$exact" -gt 0 ] && [ "$momentum" -gt 0 ] || fail "no parameters or no momentum compared ($exact tensors, $momentum momentum)"
say "final student ($FINAL): $exact tensors bit-identical ($momentum momentum, $stats batch-norm running statistics)"
say "PASS in $((SECONDS - T0)) s"
