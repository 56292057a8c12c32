#!/usr/bin/env bash
# Reference vs scaled schedules, 5 folds, seed 0 (issue 13). Usage: run.sh OUTROOT [MODEL...]
# Each run dir keeps config, history and metrics; copy.sh keeps only the small files in git.
set -u
OUT=${1:?out root}; shift
MODELS=${*:-"multvae recvae deeprec ract svae lambdanet"}
# EXTRA: more --set options for every run (none in the committed runs: each model its defaults).
# SCHEDULES: which schedules to run (default both; "scaled" alone where the paper suite's per-fold
# reference values on the same folds already exist, as for RecVAE, DeepRec and WARP).
# STOP_AFTER_FOLDS: stop a run once that many folds are done (CPU budget). A run cut short keeps
# its finished folds (fold-*/metrics.json); the same command without it (--resume) completes it.
AEREC=${AEREC:-aerec}
for m in $MODELS; do
  case $m in
    deeprec) P="-p ratings-kfold" ;;
    svae) P="-p temporal --protocol-set mode=user" ;;
    *) P="-p strong" ;;
  esac
  for s in ${SCHEDULES:-reference scaled}; do
    d=$OUT/$m-$s
    [ -f "$d/metrics.json" ] && continue
    echo "$(date -u +%H:%M:%S) $m $s" >&2
    nice $AEREC train $m -d ${DATASET:-ml-100k} $P --folds 5 --seed 0 --set schedule=$s ${EXTRA:-} --out "$d" --resume --json > "$d.json" 2> "$d.log" &
    pid=$!
    while kill -0 $pid 2>/dev/null; do
      if [ -n "${STOP_AFTER_FOLDS:-}" ] && [ "$(ls "$d"/fold-*/metrics.json 2>/dev/null | wc -l)" -ge "$STOP_AFTER_FOLDS" ]; then
        kill $pid; echo "stopped $m $s after $STOP_AFTER_FOLDS folds" >&2
      fi
      sleep 5
    done
  done
done
