// GLS (Chennupati et al. 2019; LibMTL's GLS): the total loss is the
// geometric mean L = (Π_k L_k)^{1/K}, so each task's seed is
//
//   ∂L/∂L_k = L / (K L_k) = exp(mean_j log L_j − log L_k) / K,
//
// from this step's losses (SeedsAfterForward: the loss kernels run again
// with these seeds). Losses clamped at MIN_LOSS before the logarithm.
// CPU twin: `reference` in src/mtl/gls.rs. Shapes: losses K in, seeds K out.

struct Params {
    k: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const MIN_LOSS: f32 = 1e-12;

@compute @workgroup_size(1)
fn gls() {
    let k = p.k;
    var mean = 0.0;
    for (var i = 0u; i < k; i = i + 1u) {
        w[i] = log(max(losses[i], MIN_LOSS));
        mean = mean + w[i];
    }
    mean = mean / f32(k);
    for (var i = 0u; i < k; i = i + 1u) { w[i] = exp(mean - w[i]) / f32(k); }
    write_weights();
}
