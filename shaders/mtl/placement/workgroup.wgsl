// Where a solve keeps its matrices: workgroup memory (this file) or private
// memory (private.wgsl), chosen per method in src/mtl/<method>.rs
// (`solve_shader!`) by what measured faster on lavapipe, where the wrong
// placement costs milliseconds per call (BENCHMARKS.md, "Bisecting the slow
// solves"): the eigen- and Newton solves run fast with private matrices,
// the methods that keep a step counter with workgroup ones.
//
// G: the Gram matrix (K×K, K ≤ 16); A: the linear and eigen-solves' matrix
// (up to 17×17); V: the eigenvectors (K×K).
var<workgroup> G: array<f32, 256>;
var<workgroup> A: array<f32, 289>;
var<workgroup> V: array<f32, 256>;
