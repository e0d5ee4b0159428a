#!/usr/bin/env bash
# kdtrain with plain mpirun and a hostfile, for machines without a scheduler.
#
#   cluster/mpirun.sh HOSTFILE RANKS_PER_NODE [kdtrain arguments]
#   cluster/mpirun.sh cluster/hostfile.example 2 --run-dir runs/exp1 --config my.json
#   cluster/mpirun.sh cluster/hostfile.example 2 --run-dir runs/exp1 --resume auto      # continue after a stop
#
# HOSTFILE lists the nodes, one per line with its slots (cluster/hostfile.example); every node
# needs the same kdtrain binary and data at the same paths (a shared file system), and
# passwordless ssh from this node to the others. The job gets RANKS_PER_NODE ranks on every
# listed node; each rank gets CORES/RANKS_PER_NODE cores, is bound to them, and runs that many
# OpenBLAS threads (CORES: KDTRAIN_CORES_PER_NODE, default the cores of this node).
#
# The flags that matter on CPU nodes:
#   --map-by ppr:R:node:PE=T  R ranks per node, each on T consecutive cores ("processing elements")
#   --bind-to core            pin each rank (and its threads) to its T cores: no migration, local memory
#   -x OPENBLAS_NUM_THREADS   T threads per rank: more threads than cores makes OpenBLAS spin and slow down
#   -x OMP_NUM_THREADS        the same for OpenMP builds of OpenBLAS
#   --report-bindings         prints where each rank landed (stderr), to check the layout once
# Stop: SIGTERM or SIGUSR1 to mpirun (kill -USR1 <mpirun pid>; Ctrl-C is not a stop request).
# mpirun forwards both to every rank; kdtrain writes a checkpoint and exits 0. Continue with the
# same command plus --resume auto.
set -euo pipefail
HOSTFILE=${1:?"usage: $0 HOSTFILE RANKS_PER_NODE [kdtrain arguments]"}
PER_NODE=${2:?"usage: $0 HOSTFILE RANKS_PER_NODE [kdtrain arguments]"}
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
KDTRAIN=${KDTRAIN_BIN:-$(command -v kdtrain || echo "$HERE/../.build/release/kdtrain")}
CORES=${KDTRAIN_CORES_PER_NODE:-$(nproc --all)}
THREADS=$(( CORES / PER_NODE )); [ "$THREADS" -ge 1 ] || THREADS=1
NODES=$(grep -cvE '^[[:space:]]*(#|$)' "$HOSTFILE")
RANKS=$(( NODES * PER_NODE ))
export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS
# OpenMPI refuses to start as root without these (containers); harmless otherwise.
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
OVERSUB=()
if [ "$PER_NODE" -gt "$CORES" ]; then
  # More ranks than cores (testing only): no binding, and mpirun must be told.
  OVERSUB=(--oversubscribe); BIND=(--bind-to none --map-by "ppr:$PER_NODE:node")
else
  BIND=(--map-by "ppr:$PER_NODE:node:PE=$THREADS" --bind-to core)
fi
PASS_ENV=(-x OPENBLAS_NUM_THREADS -x OMP_NUM_THREADS -x PATH)
[ -n "${LD_LIBRARY_PATH:-}" ] && PASS_ENV+=(-x LD_LIBRARY_PATH)
echo "mpirun.sh: $NODES node(s) x $PER_NODE rank(s) = $RANKS ranks, $THREADS OpenBLAS thread(s) per rank" >&2
set -x
exec mpirun --hostfile "$HOSTFILE" -n "$RANKS" "${BIND[@]}" "${OVERSUB[@]}" "${PASS_ENV[@]}" "$KDTRAIN" "$@"
