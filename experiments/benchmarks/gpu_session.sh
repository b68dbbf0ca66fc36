#!/usr/bin/env bash
# The GPU session of issue 31, in one command, within a time limit, in this order: the Triton
# kernels' self-check verdicts (`gatlib doctor`); bench_gpu.py's GATConv and GATv2Conv against
# PyG in fp32 and bf16 at 1e6 edges; the GPU test groups natively on CUDA; a sweep of the
# kernels' block sizes (tile budgets); then 1e7 edges, the transformer layer and segment softmax.
#
# Run from the checkout's root on a machine with a CUDA GPU:
#
#     OUT=/some/folder bash experiments/benchmarks/gpu_session.sh     (8.5 minutes at most)
#     bash experiments/benchmarks/gpu_session.sh --dry-run            (the same steps on the CPU,
#                                 tiny, the Triton sweep under the interpreter: checks the script)
#
# It installs nothing and fetches nothing (the GPU machine has no network). It assumes, in the
# Python it runs (`$PYTHON`, default python3): torch with CUDA (2.11 was seen on the lent
# machines), triton (3.6 there), torch_geometric (2.8 there), numpy, scipy, networkx, pyyaml,
# matplotlib and pytest. gatlib itself is imported from the checkout (PYTHONPATH), not installed.
# Triton's compile cache and the self-check's verdicts go to a fresh folder under /tmp, so the
# verdicts are made in this session, not read from an earlier one.
#
# Time: every step has its own limit, and the whole session a budget ($GPU_SESSION_BUDGET,
# default 510 s): a step that would start after the budget is spent is skipped, one that would
# run past it is cut to what is left (`timeout`). Steps run in order of importance; each writes
# its results as soon as it ends (a benchmark after every subject), so a cut session still
# returns what finished. Give the command a limit of budget + 60 s (timeout_s=570).
#
# Output, all under $OUT (default results/gpu_session, git-ignored), at most 8 files:
#   summary.txt          the steps (exit status, seconds, limit), then the tail of each step's
#                        log: versions and the GPU, the doctor's table, pytest's summary line
#                        and failures, and each benchmark's Markdown table
#   gpu_session.tar.gz   every step's full log, the benchmarks' .md/.json/.png, the pytest
#                        JUnit XML and the self-check's verdict files (one JSON per family and
#                        dtype: key and errors)
# Expected when all is well:
#   steps rows 'gpu 0', 'env 0', 'doctor 0' (1: a self-check failed; the table says which family,
#   dtype and comparison), 'bench_layers 0', 'tests 0' (pytest's line: N passed, no failures),
#   'bench_sweep 0', 'bench_more 0' or 'timeout(124)' / 'skipped' (the budget ran out: its
#   rows so far are in the log and the .md/.json);
#   the doctor's table: every family in float32 and bfloat16 'runs on triton', 'self-check
#   passed (checked now, ... s)';
#   the benchmark tables: every row 'check ok', gatlib's speed-up and memory ratio against PyG
#   per layer and dtype (the issue's goal: >= 5x PyG's speed and <= 1/8 of its memory at 1e6+
#   edges), 'OOM' where PyG or the reference ran out of memory (not a failure of the run).
set -u

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; fi
PY=${PYTHON:-python3}
BUDGET=${GPU_SESSION_BUDGET:-$( [ "$DRY" = 1 ] && echo 1500 || echo 510 )}
OUT=${OUT:-results/gpu_session}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/gatlib-gpu-session-XXXXXX)
LOGS="$WORK/logs"
mkdir -p "$LOGS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export TRITON_CACHE_DIR="$WORK/triton/cache"
if [ "$DRY" = 1 ]; then
    export TRITON_INTERPRET=1          # the Triton kernels on the CPU, under the interpreter
else
    unset TRITON_INTERPRET
fi
START=$(date +%s)
END=$((START + BUDGET))
printf 'step\tstatus\tseconds\tlimit\n' > "$LOGS/steps.tsv"

# step NAME LIMIT COMMAND...: run COMMAND with at most LIMIT seconds (less when the session's
# budget is nearly spent), its output in $LOGS/NAME.log, a row in steps.tsv.
step() {
    local name=$1 limit=$2 left t0 rc
    shift 2
    if [ "$DRY" = 1 ]; then limit=$((limit * 3)); fi     # the interpreter is slow
    left=$((END - $(date +%s) - 5))
    if [ "$left" -lt 20 ]; then
        echo "skipped: the session's budget of ${BUDGET}s is spent" > "$LOGS/$name.log"
        printf '%s\tskipped\t0\t0\n' "$name" >> "$LOGS/steps.tsv"
        echo "== $name: skipped (budget spent)"
        return
    fi
    if [ "$limit" -gt "$left" ]; then limit=$left; fi
    echo "== $name (at most ${limit}s)"
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" > "$LOGS/$name.log" 2>&1
    rc=$?
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then rc="timeout($rc)"; fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$limit" >> "$LOGS/steps.tsv"
    tail -n 4 "$LOGS/$name.log"
}

# Pack what the steps wrote into $OUT (run after every step: a session cut by the caller's own
# limit still leaves the steps that finished).
pack() {
    local verdicts="$WORK/triton/gatlib-selfcheck"
    {
        echo "gpu_session.sh $( [ "$DRY" = 1 ] && echo '--dry-run ')on $(hostname), $(date -u +%FT%TZ), budget ${BUDGET}s"
        column -t -s $'\t' "$LOGS/steps.tsv" 2>/dev/null || cat "$LOGS/steps.tsv"
        for f in "$LOGS"/*.log; do
            [ -e "$f" ] || continue
            echo
            echo "==================== $(basename "$f" .log)"
            case "$(basename "$f")" in
                doctor.log|env.log) cat "$f" ;;
                tests.log) grep -E '^(FAILED|ERROR)|[0-9]+ (passed|failed)|^E  ' "$f" | head -n 60 ;;
                bench_*.log) grep -E '^device|self-check|: check |Error' "$f" | head -n 60
                             sed -n '/^| subject/,$p' "$f" ;;
                *) tail -n 30 "$f" ;;
            esac
        done
    } > "$OUT/summary.txt"
    mkdir -p "$LOGS/verdicts"
    [ -d "$verdicts" ] && cp "$verdicts"/*.json "$LOGS/verdicts/" 2>/dev/null
    tar -czf "$OUT/gpu_session.tar.gz" -C "$WORK" logs
}

# bench_gpu.py writing bench_gpu_<device>_<tag>.{md,json,png} into $LOGS (`timeout` runs
# commands, not shell functions: an array).
BENCH_PY=("$PY" experiments/benchmarks/bench_gpu.py --out-dir "$LOGS")

if [ "$DRY" = 1 ]; then
    # Tiny and on the CPU: the layers on the CPU backend, the sweep on the Triton kernels under
    # the interpreter (slow: a few seconds per call).
    DEVICE=(--device cpu)
    BENCH=(--dry-run --no-products --repeats 1 --warmup 1)
    SWEEP=(--backend triton --sizes 200)
    SIZES_1E6=(--sizes 300)
    SIZES_MORE=(--sizes 600)
    TESTS=(tests/ops/test_selfcheck.py -k "not triton_kernels_pass and not broken_triton")
else
    DEVICE=(--device cuda)
    BENCH=(--no-products --repeats 5 --warmup 2 --timeout 60)
    SWEEP=(--sizes 1e6)
    SIZES_1E6=(--sizes 1e6)
    SIZES_MORE=(--sizes 1e7)
    TESTS=(tests/ops/test_selfcheck.py tests/ops/test_triton.py tests/graph/test_patterns.py)
fi

cat > "$WORK/env.py" <<'PYEOF'
import sys
import torch, triton, torch_geometric, gatlib
print("python", sys.version.split()[0], "torch", torch.__version__, "triton", triton.__version__,
      "torch_geometric", torch_geometric.__version__, "gatlib from", gatlib.__file__)
print("cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "-")
PYEOF
step gpu 15 nvidia-smi
step env 60 "$PY" "$WORK/env.py"
pack
# 1. The self-check's verdicts: every kernel family in fp32 and bf16 (exit 1 when one fails).
step doctor 150 "$PY" -m gatlib.cli doctor "${DEVICE[@]}" --dtypes float32,bfloat16
pack
# 2. The issue's figure: GATConv and GATv2Conv against PyG, fp32 and bf16, at 1e6 edges.
step bench_layers 180 "${BENCH_PY[@]}" --tag layers "${BENCH[@]}" "${SIZES_1E6[@]}" \
    --subjects gat,gatv2 --dtypes float32,bfloat16
pack
# 3. The GPU test groups, natively (the Triton tests run on CUDA when TRITON_INTERPRET is unset).
step tests 150 "$PY" -m pytest -q -p no:cacheprovider -rfE --junitxml="$LOGS/tests.xml" "${TESTS[@]}"
pack
# 4. The kernels' block sizes: gatlib alone at three more tile budgets (default 2048).
step bench_sweep 60 "${BENCH_PY[@]}" --tag sweep "${BENCH[@]}" "${SWEEP[@]}" \
    --subjects gat,softmax --impls gatlib --tile-budgets 1024,4096,8192
pack
# 5. Larger graphs and the other subjects, while time is left.
step bench_more 100 "${BENCH_PY[@]}" --tag more "${BENCH[@]}" "${SIZES_MORE[@]}" \
    --subjects gat,gatv2,transformer,softmax
pack
echo "== done in $(( $(date +%s) - START ))s; $OUT/summary.txt and $OUT/gpu_session.tar.gz"
cat "$LOGS/steps.tsv"
rm -rf "$WORK"
