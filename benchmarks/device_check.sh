#!/usr/bin/env bash
# The GPU session's checks (BENCHMARKS.md: "Training on a GPU through Ray",
# "Zero-cost proxies", the predictor grid runs listed under "All figures"), as run on the
# lent GPU machine (one H200, 16 cores, no network) from the repository root:
#   .whl/         wheels of what that machine's image lacks (optuna and its
#                 SQL stack, jsonschema for Ray), fetched with `pip download`
#   .devdata/     ray-trim.tar.xz (the Ray wheel without its Java jars,
#                 dashboard build, rllib, serve, data and llm) and data/ (the
#                 tables used: nasbench201, nasbench101, cifar10-mini)
# Everything it makes goes to $OUT/results.tar.gz. Usage: bash benchmarks/device_check.sh [SECONDS]
set -uo pipefail
BUDGET=${1:-420}                       # wall seconds for the whole script
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
RES=/tmp/results; mkdir -p $RES/grid $RES/proxies
exec > >(tee $RES/device_check.log) 2>&1

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
tar xJf .devdata/ray-trim.tar.xz -C /tmp/site && chmod -R +x /tmp/site/ray/core/src || exit 1   # zipfile -e drops exec bits
export PYTHONPATH=/tmp/site:$PWD FLOWNAS_DATA=$PWD/.devdata/data RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 \
       OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, ray, optuna; print('torch', torch.__version__, torch.cuda.is_available(), 'ray', ray.__version__, 'optuna', optuna.__version__)" || exit 1
echo "setup done at $(( $(date +%s) - START )) s"

# predictor grid runs on 10 of the CPU cores, meanwhile (one torch thread each)
python3 - > $RES/grid/jobs.txt <<'EOF'
import sys; sys.path.insert(0, "benchmarks")
from bench_predictors import command
cells = []
for seed in (1, 2, 3, 4):
    cells += [("nb201", "tagates", "A", 156, seed), ("nb201", "tagates", "B", 156, seed),
              ("nb201", "narformer_v2", "A", 156, seed), ("nb201", "narformer_v2", "B", 156, seed)]
for seed in (1, 2, 3, 4):
    cells += [("nb201", "tagates", "A", 781, seed), ("nb201", "tagates", "B", 781, seed)]
for seed in range(5):
    for recipe in ("gcn", "mlp", "gbt"):
        cells += [("nb201", recipe, "A", 78, seed), ("nb201", recipe, "B", 1563, seed), ("nb101", recipe, "B", 424, seed)]
for seed in (1, 2, 3, 4):
    cells += [("nb201", "narformer_v2", "A", 781, seed), ("nb201", "narformer_v2", "B", 781, seed)]
for space, recipe, protocol, n, seed in cells:
    name = f"{space}-{protocol}-{n}-{recipe}-s{seed}"
    print(" ".join(command(space, recipe, protocol, n, f"{seed},", f"/tmp/results/grid/{name}.json")[1:]))
EOF
GRID_END=$(( START + BUDGET - 25 ))
( xargs -P 10 < $RES/grid/jobs.txt -I{} bash -c 'l=$(( '$GRID_END' - $(date +%s) )); [ $l -gt 20 ] && timeout $l python3 {} >/dev/null 2>>/tmp/results/grid/errors.log' ) &
GRID=$!

# 1. Ray on the GPU: four candidates trained at once on one GPU, then a search, then the CPU
timeout $(( $(left) - 200 )) python3 benchmarks/bench_gpu.py --json $RES/gpu.json --cpu-threads 4 \
  || timeout $(( $(left) - 200 )) python3 benchmarks/bench_gpu.py --json $RES/gpu.json --cpu-threads 4 --local-gpus 1
echo "gpu check done at $(( $(date +%s) - START )) s"

# 2. zero-cost proxies of the 1,104 NB201 cells on the GPU, four processes
for k in 0 1 2 3; do
  timeout $(( $(left) - 30 )) python3 benchmarks/bench_proxies.py --device cuda --shard $k/4 --out $RES/proxies/cache.jsonl 2>>$RES/proxies/log &
done
wait $(jobs -p | grep -v "^$GRID$") 2>/dev/null
echo "proxies: $(wc -l < $RES/proxies/cache.jsonl) archs at $(( $(date +%s) - START )) s"
wait $GRID
echo "grid: $(ls $RES/grid/*.json 2>/dev/null | wc -l) runs at $(( $(date +%s) - START )) s"
tar czf "$OUT/results.tar.gz" -C /tmp results
