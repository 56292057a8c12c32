#!/usr/bin/env bash
# CDAE AdaGrad: the authors' beta = 1 (default now) against torch's eps = 1e-10 (before), ML-100K
# strong generalization, seed 0. Usage: cdae_adagrad.sh OUTROOT [FOLDS_TO_STOP_AFTER]
# (the committed numbers stopped after 2 of the 5 folds; run again without the limit to finish).
OUT=${1:?out root}; N=${2:-5}
for v in 1 1e-10; do
  d=$OUT/cdae-adagrad_beta-$v
  nice aerec train cdae -d ml-100k -p strong --folds 5 --seed 0 --set adagrad_beta=$v --out "$d" --resume --json > "$d.json" 2> "$d.log" &
  pid=$!
  while kill -0 $pid 2>/dev/null; do
    [ "$(ls "$d"/fold-*/metrics.json 2>/dev/null | wc -l)" -ge "$N" ] && kill $pid
    sleep 5
  done
done
