// The training step counter: one u32 that kernels needing a fresh random
// draw each step read (dropout.wgsl), advanced on the GPU at the end of every
// training step, inside the step's submit.
//
//   advance: step[0] = step[0] + by       (by = 1 in a training step)
//
// Shapes: step 1 u32. One invocation. Bindings: 0 params, 1 step (rw).

struct Params {
    by: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> step: array<u32>;

@compute @workgroup_size(1)
fn advance() {
    step[0] = step[0] + p.by;
}
