// Per-task loss bookkeeping on the GPU, so a training step reads nothing back.
//
// state holds three values per task k:
//   state[3k]     running sum of finite losses L_k since the last reset
//   state[3k + 1] 1-based count of the first step whose L_k was NaN or ±∞ (0: none)
//   state[3k + 2] steps counted since the last reset
// The host reads state once per epoch and resets it.
//
// A value is non-finite when its exponent bits are all ones (NaN or ±∞);
// the test is done on the bits because compilers may fold x != x away.

// Replicas (R runs of one model, DESIGN.md's "many runs in one program"):
// workgroup z keeps replica z's state at z·rep_state elements past replica
// 0's and reads its losses at z·rep_loss. One replica: z = 0.

struct Params {
    tasks: u32,
    rep_state: u32,
    rep_loss: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> state: array<f32>;
@group(0) @binding(2) var<storage, read> loss: array<f32>;

fn non_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

@compute @workgroup_size(64)
fn track_losses(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let k = lid.x;
    if (k >= p.tasks) { return; }
    let l = loss[wid.z * p.rep_loss + k];
    let s = wid.z * p.rep_state + 3u * k;
    let steps = state[s + 2u] + 1.0;
    if (non_finite(l)) {
        if (state[s + 1u] == 0.0) { state[s + 1u] = steps; }
    } else {
        state[s] = state[s] + l;
    }
    state[s + 2u] = steps;
}
