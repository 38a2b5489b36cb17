#!/bin/bash
# usage: alternate.sh CONFIG TAG ROUNDS; before = a worktree of e5a11a9, after = a worktree of b1a52ee (paths below)
cfg=$1; tag=$2; rounds=$3
for r in $(seq 1 $rounds); do
  for side in base new; do
    if [ $side = base ]; then dir=/work/wt/engines-base; else dir=/work/wt/engines-new; fi
    echo "== $side round $r $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >> /tmp/eng/$tag.log
    (cd $dir && PYTHONPATH=$dir /work/main/.venv/bin/python scripts/bench_sweep.py --config $cfg --repeats 2) >> /tmp/eng/$tag.log 2>&1
  done
done
echo DONE >> /tmp/eng/$tag.log
