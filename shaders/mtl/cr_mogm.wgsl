// CR-MOGM (Zhou, Zhang, Jiang, Gong & Tang, "On the Convergence of
// Stochastic Multi-Objective Gradient Manipulation and Beyond", NeurIPS
// 2022), as torchjd's CRMOGMWeighting: the weights ŵ another method has
// just written (this solve runs after it, on the same buffer) smoothed by an
// exponential moving average across steps,
//
//   λ_t = α λ_{t−1} + (1 − α) ŵ_t,    λ_1 = ŵ_1,
//
// so that the weights, and with them the bias of the stochastic update,
// change slowly. state[STEP] counts the steps, state[LAMBDA + k] keeps λ.
// CPU twin: `reference` in src/mtl/cr_mogm.rs. Shapes: weights K in and out.

struct Params {
    k: u32,
    alpha: f32,
    _pad0: u32,
    _pad1: u32,
}

const LAMBDA: u32 = 1u;

@compute @workgroup_size(1)
fn cr_mogm() {
    let t = next_step();
    for (var i = 0u; i < p.k; i = i + 1u) {
        let fresh = weights[i];
        var avg = fresh;
        if (t > 0u) { avg = p.alpha * state[LAMBDA + i] + (1.0 - p.alpha) * fresh; }
        state[LAMBDA + i] = avg;
        weights[i] = avg;
    }
}
