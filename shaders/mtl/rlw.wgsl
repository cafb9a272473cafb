// RLW (Lin et al. 2022): seeds = softmax(z), z ~ N(0, I) drawn afresh each
// step by Box-Muller from the shared hash of (seed, step, 2i) and (…, 2i + 1).

struct Params {
    k: u32,
    seed: u32,
    _pad0: u32,
    _pad1: u32,
}

@compute @workgroup_size(1)
fn rlw() {
    let step = next_step();
    for (var i = 0u; i < p.k; i = i + 1u) {
        let u1 = max(uniform01(p.seed, step, 2u * i), 1e-7);
        let u2 = uniform01(p.seed, step, 2u * i + 1u);
        w[i] = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    }
    softmax_w();
    write_weights();
}
