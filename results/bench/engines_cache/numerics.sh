#!/bin/bash
# usage: numerics.sh TREE OUT — the same runs on one tree; outputs under OUT (compared afterwards)
set -e
tree=$1; out=$2; rm -rf $out; mkdir -p $out
cd $tree
E="env PYTHONPATH=$tree /work/main/.venv/bin/emergence"
FX=tests/fixtures/sweep/benchmarks
$E sweep run configs/sweeps/tiny.yaml out=$out/tiny > $out/tiny.log 2>&1
$E results $out/tiny --format csv > $out/tiny.csv
for m in lora full; do
  $E finetune tests/fixtures/tiny_llama/gqa_tied --task cola --budget 32 --method $m --lora-dropout 0.1 --steps 4 \
     --eval-every 2 --eval-limit 12 --data-dir $FX --out $out/ft_$m --lr 1e-3 > $out/ft_$m.log 2>&1
  $E eval tests/fixtures/tiny_llama/gqa_tied --task cola --adapter $out/ft_$m --limit 12 --data-dir $FX \
     --out $out/eval_$m.jsonl --json > $out/eval_$m.json 2>/dev/null
done
$E sweep run configs/sweeps/smollm2_cola_small.yaml out=$out/smol > $out/smol.log 2>&1
$E results $out/smol --format csv > $out/smol.csv
echo done > $out/DONE
