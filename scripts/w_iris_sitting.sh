#!/usr/bin/env bash
# One sitting of W-iris on this machine's adapter: three interleaved rounds
# of taskgrad's general step, its one-workgroup step (TASKGRAD_MLP_STEP=1),
# Burn's wgpu backend (the prebuilt harness of ../shared/peers) and PyTorch
# eager on the CPU (scripts/workloads_torch.py). One line per run.
#
#   cargo build --release --example workloads
#   BURN=/path/to/burn_mtl PEERS=../shared/peers PYTHON=python3 bash scripts/w_iris_sitting.sh
set -uo pipefail
cd "$(dirname "$0")/.."
burn=${BURN:-}
peers=${PEERS:-../shared/peers}
python=${PYTHON:-python3}
for round in 1 2 3; do
    echo "round $round"
    ./target/release/examples/workloads W-iris 2>/dev/null | tail -1 \
        | grep -o "steps_per_s=[0-9.]*" | sed 's/^/taskgrad general /'
    TASKGRAD_MLP_STEP=1 ./target/release/examples/workloads W-iris 2>/dev/null | tail -1 \
        | grep -o "steps_per_s=[0-9.]*" | sed 's/^/taskgrad one-workgroup /'
    if [ -n "$burn" ]; then
        IRIS_CSV="$peers/iris-numeric.csv" "$burn" W-iris wgpu 2>/dev/null \
            | grep -o "steps_per_s=[0-9.]*" | sed 's/^/burn wgpu /'
    fi
    "$python" scripts/workloads_torch.py | grep -o "steps_per_s=[0-9.]*" | sed 's/^/pytorch cpu /'
done
