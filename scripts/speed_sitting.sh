#!/usr/bin/env bash
# The speed issue's sitting (issue 23) on this machine's adapter, one line
# per measurement: W-iris against Burn and PyTorch (scripts/w_iris_sitting.sh),
# penguins through the command line (`train` with its defaults; `compare
# --methods equal,mgda --epochs 20` with one seed, and five seeds one after
# another, with --jobs 2, --lockstep, and both), ROUNDS interleaved
# rounds of each; then each method's solve at K = 3, in ms per call over 50
# profiled steps of `workloads W-iris --weighting M --profile` (methods that
# only weight the losses have none).
#
#   cargo build --release --example workloads --bin taskgrad
#   BURN=/path/to/burn_mtl PYTHON=python3 ROUNDS=3 bash scripts/speed_sitting.sh
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
bin=target/release/taskgrad
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
penguins=(--data data/penguins.csv
    --inputs bill_length_mm,bill_depth_mm,flipper_length_mm,island
    --task species:class --task sex:class --task body_mass_g:reg)
# Wall seconds of a command (its output discarded), or FAILED.
secs() {
    if /usr/bin/time -f %e -o "$out/t" "$@" >/dev/null 2>&1; then cat "$out/t"; else echo FAILED; fi
}
ROUNDS=$rounds bash scripts/w_iris_sitting.sh
compare=("$bin" compare "${penguins[@]}" --methods equal,mgda --epochs 20)
for round in $(seq "$rounds"); do
    echo "round $round"
    r="$out/$round"
    echo "train penguins s=$(secs "$bin" train "${penguins[@]}" --out "$r/train")"
    echo "compare --seeds 1 s=$(secs "${compare[@]}" --seeds 1 --out "$r/c1")"
    echo "compare --seeds 5 s=$(secs "${compare[@]}" --seeds 5 --out "$r/c5")"
    echo "compare --seeds 5 --jobs 2 s=$(secs "${compare[@]}" --seeds 5 --jobs 2 --out "$r/c5j")"
    echo "compare --seeds 5 --lockstep s=$(secs "${compare[@]}" --seeds 5 --lockstep --out "$r/c5l")"
    echo "compare --seeds 5 --lockstep --jobs 2 s=$(secs "${compare[@]}" --seeds 5 --lockstep --jobs 2 --out "$r/c5lj")"
done
methods=$("$bin" train --help | sed -n '/--weighting/,/default: equal/p' \
    | grep -oE '^ {12}[a-z_0-9]+ ' | tr -d ' ')
for m in $methods; do
    ./target/release/examples/workloads W-iris --weighting "$m" --profile 2>/dev/null \
        | awk -v m="$m" '/^mtl\// { printf "solve %s %s ms_per_call=%.3f\n", m, $1, $3 / $2 }
                        /^workload=/ { for (i = 1; i <= NF; i++) if ($i ~ /^steps_per_s=/) print "W-iris " m " " $i }'
done
