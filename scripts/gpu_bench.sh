#!/usr/bin/env bash
# Run taskgrad's reference workloads and matmul benchmark on a machine with a
# real GPU, from binaries built elsewhere (no Rust toolchain needed there).
#
# Build here:   cargo build --release --examples --benches
#               mkdir -p .bin && cp target/release/examples/workloads .bin/ \
#                 && cp "$(ls -t target/release/deps/kernels-* | grep -v '\.d$' | head -1)" .bin/kernels-bench
# Vulkan loader (where the GPU machine lacks one), once, in the repo root:
#   mkdir -p .gl && (cd .gl && apt-get download libvulkan1)
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
run "$bin/workloads" W-matmul
for m in equal pcgrad mgda; do run "$bin/workloads" W-iris --weighting "$m"; done
for m in equal pcgrad mgda; do run "$bin/workloads" W-synth --weighting "$m"; done
run "$bin/workloads" W-iris --profile
if [ -x "$bin/kernels-bench" ]; then
    run "$bin/kernels-bench" --bench matmul --noplot
fi
echo "log: $log"
