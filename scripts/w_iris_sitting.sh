#!/usr/bin/env bash
# One sitting of W-iris on this machine's adapter: interleaved rounds of
# taskgrad's general step (on a CPU adapter, run on the submitting thread
# as its size makes it choose: `CpuThreads`), the same with llvmpipe's
# worker threads (LP_NUM_THREADS = the cores, which wins over the choice),
# its one-workgroup step (TASKGRAD_MLP_STEP=1), Burn's wgpu backend (the
# prebuilt harness of ../shared/peers) with llvmpipe's default threads and
# with LP_NUM_THREADS=0, and PyTorch eager on the CPU
# (scripts/workloads_torch.py, where torch imports). One line per run.
#
#   cargo build --release --example workloads
#   BURN=/path/to/burn_mtl PEERS=../shared/peers PYTHON=python3 ROUNDS=3 bash scripts/w_iris_sitting.sh
set -uo pipefail
cd "$(dirname "$0")/.."
burn=${BURN:-}
peers=${PEERS:-../shared/peers}
python=${PYTHON:-python3}
rounds=${ROUNDS:-3}
cores=$(nproc)
rate() { grep -o "steps_per_s=[0-9.]*" | tail -1; }
for round in $(seq "$rounds"); do
    echo "round $round"
    echo "taskgrad general $(./target/release/examples/workloads W-iris 2>/dev/null | rate)"
    echo "taskgrad general, LP_NUM_THREADS=$cores $(LP_NUM_THREADS=$cores ./target/release/examples/workloads W-iris 2>/dev/null | rate)"
    echo "taskgrad one-workgroup $(TASKGRAD_MLP_STEP=1 ./target/release/examples/workloads W-iris 2>/dev/null | rate)"
    if [ -n "$burn" ]; then
        echo "burn wgpu $(IRIS_CSV="$peers/iris-numeric.csv" "$burn" W-iris wgpu 2>/dev/null | rate)"
        echo "burn wgpu, LP_NUM_THREADS=0 $(LP_NUM_THREADS=0 IRIS_CSV="$peers/iris-numeric.csv" "$burn" W-iris wgpu 2>/dev/null | rate)"
    fi
    if "$python" -c "import torch" 2>/dev/null; then
        echo "pytorch cpu $("$python" scripts/workloads_torch.py | rate)"
    fi
done
