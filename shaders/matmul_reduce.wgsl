// The second half of a split-K product (matmul.wgsl with KC > 0): add up the
// S partial sums of every output and apply the epilogue,
//
//   C[i]      = Σ_s partial[s·M·N + i]  [+ bias[col]]  [ReLU]     or C[i] += Σ_s partial[...]
//   dbias[j]  = Σ_s pbias[s·N + j]                                 (BIAS_GRAD; += with ACCUMULATE)
//
// Shapes: C is M×N, partial is S·M·N, bias and dbias are N, pbias is S·N.
// With R replicas (matmul_prelude.wgsl) the partials are R·S·M·N (replica r's
// S slices at r·S·M·N) and pbias R·S·N; replica r writes C at r·rep_c and
// reads the bias and writes dbias at r·rep_bias.
// One invocation per output (and per bias-gradient column); the grid is
// folded past 65,535 workgroups as the elementwise kernels' is.

struct Params {
    m: u32,
    n: u32,
    splits: u32,
    flags: u32,
    reps: u32,
    rep_c: u32,
    rep_bias: u32,
    pad: u32,
}

const BIAS: u32 = 4u;
const RELU: u32 = 8u;
const ACCUMULATE: u32 = 16u;

override BIAS_GRAD: bool = false;
override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> partial: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(5) var<storage, read> pbias: array<f32>;

@compute @workgroup_size(WG)
fn matmul_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = (wid.x + wid.y * nwg.x) * WG + lid.x;
    let mn = p.m * p.n;
    if (e < p.reps * mn) {
        let r = e / mn;
        let i = e % mn;
        var v = 0.0;
        for (var s = 0u; s < p.splits; s = s + 1u) { v = v + partial[(r * p.splits + s) * mn + i]; }
        let ci = r * p.rep_c + i;
        if ((p.flags & ACCUMULATE) != 0u) {
            v = v + c[ci];
        } else {
            if ((p.flags & BIAS) != 0u) { v = v + bias[r * p.rep_bias + i % p.n]; }
            if ((p.flags & RELU) != 0u) { v = max(v, 0.0); }
        }
        c[ci] = v;
    }
    if (BIAS_GRAD && e < p.reps * p.n) {
        let r = e / p.n;
        let j = e % p.n;
        var v = 0.0;
        for (var s = 0u; s < p.splits; s = s + 1u) { v = v + pbias[(r * p.splits + s) * p.n + j]; }
        let di = r * p.rep_bias + j;
        if ((p.flags & ACCUMULATE) != 0u) { v = v + dbias[di]; }
        dbias[di] = v;
    }
}
