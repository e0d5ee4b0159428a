#!/usr/bin/env bash
# Splits the ORL faces (AT&T Laboratories Cambridge, formerly the Olivetti Research Laboratory;
# 40 people x 10 PGM images) into identity-disjoint training and verification folders made of
# symbolic links, so that verification pairs never show a training identity.
#   scripts/orl_split.sh [ORL_DIR] [OUT_DIR]   (defaults: ../shared/data/orl_faces, /tmp/kdtrain-orl)
# Result: OUT_DIR/train (s1..s20) and OUT_DIR/eval (s21..s40): 20 verification identities,
# the fewest that give 10 identity-disjoint folds of same and different pairs.
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/../../shared/data/orl_faces}" && pwd)
out=${2:-/tmp/kdtrain-orl}
[ -d "$src/s1" ] || { echo "orl_split.sh: $src does not look like the ORL faces (no s1/)" >&2; exit 1; }
rm -rf "$out"; mkdir -p "$out/train" "$out/eval"
for i in $(seq 1 40); do
  if [ "$i" -le 20 ]; then ln -s "$src/s$i" "$out/train/s$i"; else ln -s "$src/s$i" "$out/eval/s$i"; fi
done
echo "$out/train: 20 identities; $out/eval: 20 identities"
