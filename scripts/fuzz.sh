#!/usr/bin/env bash
# Builds the libFuzzer harness (fuzz/Sources/KDFuzz over Sources/FuzzEntries, -sanitize=fuzzer,address,
# in .build-fuzz) and runs each parser target for SECONDS (default 30) starting from its committed seed
# corpus in fuzz/corpus/<target>. New inputs go to .build-fuzz/runs/<target>/corpus, a crashing, hanging
# or over-allocating input to .build-fuzz/runs/<target>/ (crash-*, timeout-*, oom-*, leak-*); the
# committed corpus is only read. Exits 1 when any target found a failure.
#   scripts/fuzz.sh [SECONDS]            all targets
#   FUZZ_TARGETS="pickle image" scripts/fuzz.sh 60
# Bounds (what "no input may hang or allocate beyond" means here): 10 s per input, 2048 MB resident,
# inputs up to 16 KiB, and one allocation at most 512 MB for image and recordio (an image at the
# 8192-per-side / 64 Mpixel decode limit needs 256 MiB as CMYK) and 64 MB for the other targets
# (their allocations follow the input's size).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
targets=${FUZZ_TARGETS:-"pickle recordio safetensors image config"}
build=(swift build -c release --build-path .build-fuzz --product KDFuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld)
echo "fuzz: building the harness ($(date -u +%H:%M:%S))"
KDTRAIN_FUZZ=1 "${build[@]}" 2>&1 | grep -v '^\[' || true
bin="$(KDTRAIN_FUZZ=1 "${build[@]}" --show-bin-path)/KDFuzz"
[ -x "$bin" ] || { echo "fuzz: build failed, no $bin"; exit 1; }
failed=()
for t in $targets; do
  [ -d "fuzz/corpus/$t" ] || { echo "fuzz: no corpus folder fuzz/corpus/$t"; exit 1; }
  work=".build-fuzz/runs/$t"; mkdir -p "$work/corpus"
  case $t in image|recordio) malloc_mb=512 ;; *) malloc_mb=64 ;; esac
  echo "fuzz: $t for ${secs}s ($(date -u +%H:%M:%S))"
  set +e
  SWIFT_BACKTRACE=enable=no KDTRAIN_FUZZ_TARGET=$t ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0} \
    "$bin" "$work/corpus" "fuzz/corpus/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=$malloc_mb -max_len=16384 -artifact_prefix="$work/" -print_final_stats=1 > "$work/log" 2>&1
  rc=$?
  set -e
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/log" | sed "s/^/  $t: /"
  if [ $rc != 0 ]; then
    failed+=("$t"); echo "fuzz: $t FAILED (rc $rc), last lines of $work/log:"; tail -40 "$work/log"
  fi
done
if [ ${#failed[@]} != 0 ]; then echo "fuzz: failures in ${failed[*]}"; exit 1; fi
echo "fuzz: all targets ran ${secs}s without a failure ($(date -u +%H:%M:%S))"
