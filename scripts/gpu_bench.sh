#!/usr/bin/env bash
# Run taskgrad's reference workloads and matmul benchmark on a machine with a
# real GPU, from binaries built elsewhere (no Rust toolchain needed there).
#
# Build here:   cargo build --release --examples --benches
#               cargo build --release --bin taskgrad
#               mkdir -p .bin && strip -o .bin/workloads target/release/examples/workloads \
#                 && strip -o .bin/taskgrad target/release/taskgrad \
#                 && cp "$(ls -t target/release/deps/kernels-* | grep -v '\.d$' | head -1)" .bin/kernels-bench
# Vulkan loader (where the GPU machine lacks one), once, in the repo root:
#   mkdir -p .gl && (cd .gl && apt-get download libvulkan1)
# W-iris reads data/iris.csv at the path fixed at build time: copy data/ there
# first (e.g. mkdir -p /work/main && cp -r data /work/main/).
# There:        bash scripts/gpu_bench.sh [.bin]  [OUT_DIR]
#
# Prints one table: workload, steps/s or GFLOP/s, adapter. With an NVIDIA
# driver but no ICD file on the default path, set
#   VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
set -uo pipefail
bin=${1:-.bin}
out=${2:-${OUT:-/tmp}}
if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export TASKGRAD_BACKEND=${TASKGRAD_BACKEND:-vulkan}
log="$out/gpu_bench.log"
: > "$log"
run() { echo "+ $*" >> "$log"; timeout 300 "$@" 2>>"$log" | tee -a "$log"; }
export TASKGRAD_CACHE_DIR=${TASKGRAD_CACHE_DIR:-$out/cache}
sizes=1024,2048,4096,8192
run "$bin/workloads" W-matmul --sizes 256,512,$sizes            # the kernels chosen for this adapter
for k in naive register tiled; do run "$bin/workloads" W-matmul --sizes $sizes --kernel $k; done
run "$bin/workloads" W-matmul --sizes $sizes --kernel tiled --per-submit 10
run "$bin/workloads" W-matmul --sizes $sizes --half
for m in equal pcgrad mgda; do run "$bin/workloads" W-iris --weighting "$m"; done
run env TASKGRAD_MLP_STEP=1 "$bin/workloads" W-iris                  # one workgroup for the whole step
if command -v python3 > /dev/null && python3 -c "import torch; assert torch.cuda.is_available()" 2> /dev/null; then
    run python3 scripts/workloads_torch.py --device cuda               # PyTorch eager on the same card
fi
for m in equal pcgrad mgda; do run "$bin/workloads" W-synth --weighting "$m"; done
run env TASKGRAD_MATMUL=register "$bin/workloads" W-synth
run "$bin/workloads" W-synth --half
run "$bin/workloads" W-iris --profile
run "$bin/workloads" W-synth --profile
# Five penguins seeds against one through the command line (issue 23: "in
# about the time of one on a GPU"), after a first run that fills the cache.
if [ -x "$bin/taskgrad" ]; then
    penguins=(--data data/penguins.csv --inputs bill_length_mm,bill_depth_mm,flipper_length_mm,island
        --task species:class --task sex:class --task body_mass_g:reg --methods equal,mgda)
    run "$bin/taskgrad" compare "${penguins[@]}" --seeds 1 --epochs 1 --out "$out/cmp-warm" --force > /dev/null
    for round in 1 2; do
        for seeds in "--seeds 1" "--seeds 5 --lockstep" "--seeds 5"; do
            start=$(date +%s.%N)
            # shellcheck disable=SC2086
            run "$bin/taskgrad" compare "${penguins[@]}" --epochs 20 $seeds --out "$out/cmp" --force > /dev/null
            echo "compare $seeds round $round s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')" | tee -a "$log"
        done
    done
fi
if [ -x "$bin/kernels-bench" ]; then
    run "$bin/kernels-bench" --bench matmul --noplot
fi
echo "log: $log"
