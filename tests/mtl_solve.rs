//! Task-weight solves: each method's hand-checkable case (on the CPU
//! reference, with the reasoning in a comment), and the GPU solve against the
//! CPU reference on random Gram matrices for K = 1, 2, 3, 7.

mod common;

use common::{assert_close, random, rng};
use taskgrad::kernels::mtl::STATE_LEN;
use taskgrad::mtl::{
    aligned_mtl, cagrad, config, dualproj, fairgrad, famo, gls, gradnorm, gradvac, imtl_g, krum,
    mgda, nash_mtl, pcgrad, rlw, upgrad, AlignedMtl, CaGrad, Config, DualProj, FairGrad, Famo, Gls,
    GpuSolve, GradNorm, GradVac, ImtlG, Krum, Mgda, NashMtl, PcGrad, Rlw, UpGrad,
};
use taskgrad::reference;
use taskgrad::Tensor;

/// Gram matrix of explicit gradients (rows of length n).
fn gram_of(rows: &[&[f64]]) -> Vec<f64> {
    let k = rows.len();
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    reference::gram(&flat, k, rows[0].len(), rows[0].len())
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "{what}: got {got:?}, want {want:?}");
    }
}

// Two orthogonal gradients g1 = 2e1, g2 = e2 (norms 2 and 1), and two opposed unit ones.
fn orthogonal() -> Vec<f64> {
    gram_of(&[&[2.0, 0.0], &[0.0, 1.0]])
}
fn opposed() -> Vec<f64> {
    gram_of(&[&[1.0, 0.0], &[-1.0, 0.0]])
}

#[test]
fn pcgrad_by_hand() {
    // Orthogonal: no conflict, nothing projected: w = (1, 1).
    close(
        "pcgrad orthogonal",
        &pcgrad::reference(&orthogonal(), 2, 0, 0),
        &[1.0, 1.0],
        1e-12,
    );
    // g1 = e1, g2 = (-1, 1): g1·g2 = -1. g1' = g1 + ½ g2 (‖g2‖² = 2), g2' = g2 + g1:
    // w = (1 + 1, ½ + 1) = (2, 1.5), whatever the order.
    let g = gram_of(&[&[1.0, 0.0], &[-1.0, 1.0]]);
    for step in 0..4 {
        close(
            "pcgrad conflict",
            &pcgrad::reference(&g, 2, 7, step),
            &[2.0, 1.5],
            1e-12,
        );
    }
}

#[test]
fn pcgrad_task_order_is_a_seeded_permutation() {
    let a = pcgrad::task_order(7, 3, 10, 2);
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..7).collect::<Vec<_>>());
    assert_eq!(a, pcgrad::task_order(7, 3, 10, 2));
    assert!(
        (0..20).any(|s| pcgrad::task_order(7, 3, s, 2) != a),
        "orders change with the step"
    );
}

#[test]
fn mgda_by_hand() {
    // Orthogonal, norms 2 and 1: the min-norm point equalises d·g_i: w = (0.2, 0.8).
    close(
        "mgda orthogonal",
        &mgda::reference(&orthogonal(), 2),
        &[0.2, 0.8],
        1e-12,
    );
    // Opposed: the hull contains 0 at w = (½, ½).
    close(
        "mgda opposed",
        &mgda::reference(&opposed(), 2),
        &[0.5, 0.5],
        1e-12,
    );
    // Three orthonormal gradients: w = (⅓, ⅓, ⅓) by symmetry.
    let i3 = gram_of(&[&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0], &[0.0, 0.0, 1.0]]);
    close("mgda 3", &mgda::reference(&i3, 3), &[1.0 / 3.0; 3], 1e-12);
    // g3 = g1 + g2 lies beyond the segment [g1, g2], whose min-norm point
    // (½, ½, 0) is also the hull's: the active set leaves task 3 out.
    let g = gram_of(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]]);
    close(
        "mgda beyond",
        &mgda::reference(&g, 3),
        &[0.5, 0.5, 0.0],
        1e-12,
    );
}

#[test]
fn cagrad_by_hand() {
    // Orthonormal g1, g2: g0 = (g1+g2)/2, ‖g0‖ = 1/√2, √φ = c/√2; the minimiser is
    // w = (½, ½) (‖g_w‖ = 1/√2), so λ = c and the weights are (½ + ½c)/(1 + c²) = 0.6 at c = ½.
    let g = gram_of(&[&[1.0, 0.0], &[0.0, 1.0]]);
    close(
        "cagrad orthonormal",
        &cagrad::reference(&g, 2, 0.5),
        &[0.6, 0.6],
        1e-9,
    );
    // Opposed: g0 = 0, so φ = 0 and the weights are 1/(2(1 + c²)) each (d = 0).
    close(
        "cagrad opposed",
        &cagrad::reference(&opposed(), 2, 0.5),
        &[0.4, 0.4],
        1e-9,
    );
    // A zero gradient g2 gains nothing whatever d is and is left out of the
    // max-min: g1 = e1, g0 = e1/2, √φ = c/2; the only hull point left is g1,
    // so λ = c/2 and w = (½ + c/2, ½)/(1 + c²) = (0.6, 0.4) at c = ½.
    let g = gram_of(&[&[1.0, 0.0], &[0.0, 0.0]]);
    close(
        "cagrad zero row",
        &cagrad::reference(&g, 2, 0.5),
        &[0.6, 0.4],
        1e-9,
    );
}

#[test]
fn imtl_g_by_hand() {
    // g0 = 2e1, g1 = e2: D = (2, -1), U = (1, -1), α = (g0·U)/(D·U) = 2/3, w = (⅓, ⅔):
    // d = (⅔, ⅔) has projection ⅔ on both unit gradients.
    close(
        "imtl_g",
        &imtl_g::reference(&orthogonal(), 2),
        &[1.0 / 3.0, 2.0 / 3.0],
        1e-12,
    );
    // Identical gradients: G = 11ᵀ, G⁺n ∝ 1: w = (½, ½) (the gradient form divides 0 by 0).
    let g = gram_of(&[&[1.0, 2.0], &[1.0, 2.0]]);
    close(
        "imtl_g identical",
        &imtl_g::reference(&g, 2),
        &[0.5, 0.5],
        1e-9,
    );
    // Parallel, g2 = 2 g1: G = ‖g1‖² vvᵀ with v = (1, 2), n = ‖g1‖ v, so
    // G⁺n ∝ v: w = (⅓, ⅔), as torchjd.
    let g = gram_of(&[&[1.0, 2.0], &[2.0, 4.0]]);
    close(
        "imtl_g parallel",
        &imtl_g::reference(&g, 2),
        &[1.0 / 3.0, 2.0 / 3.0],
        1e-9,
    );
    // A zero gradient gets no weight; the others keep theirs (here one task: w = (0, 1)).
    let g = gram_of(&[&[0.0, 0.0], &[3.0, 1.0]]);
    close(
        "imtl_g zero row",
        &imtl_g::reference(&g, 2),
        &[0.0, 1.0],
        1e-9,
    );
}

#[test]
fn nash_mtl_by_hand() {
    // Orthogonal with norms 2 and 1: α_i ‖g_i‖² = 1/α_i, so α = (½, 1).
    close(
        "nash orthogonal",
        &nash_mtl::reference(&orthogonal(), 2, 20, 0.0),
        &[0.5, 1.0],
        1e-6,
    );
    // With the default clip: d = ½ g1 + g2 has norm √(¼·4 + 1) = √2 > 1, so α ← α / √2.
    let s = 1.0 / 2f64.sqrt();
    close(
        "nash orthogonal clipped",
        &nash_mtl::reference(&orthogonal(), 2, 20, 1.0),
        &[0.5 * s, s],
        1e-6,
    );
    // Correlated: g1 = e1, g2 = (1, 1): α solves α_i (Gα)_i = 1 (checked, not guessed).
    let g = gram_of(&[&[1.0, 0.0], &[1.0, 1.0]]);
    let a = nash_mtl::reference(&g, 2, 30, 0.0);
    for i in 0..2 {
        let ga: f64 = (0..2).map(|j| g[i * 2 + j] * a[j]).sum();
        assert!((a[i] * ga - 1.0).abs() < 1e-6, "α = {a:?}");
    }
}

#[test]
fn upgrad_by_hand() {
    // Orthogonal: each g_i already lies in the dual cone: w = (½, ½).
    close(
        "upgrad orthogonal",
        &upgrad::reference(&orthogonal(), 2, 1e-4, 1e-4),
        &[0.5, 0.5],
        1e-12,
    );
    // Opposed: projecting g1 onto {x: g1·x ≥ 0, g2·x ≥ 0} gives 0 = g1 + g2, v = (1, 1).
    // With torchjd's regularisation Ĝ = G/2 + 1e-4 I the free v₂ solves
    // Ĝ₂₂ v₂ = -Ĝ₂₁: v₂ = ½/(½ + 1e-4), for both projections.
    let v2 = 0.5 / (0.5 + 1e-4);
    close(
        "upgrad opposed",
        &upgrad::reference(&opposed(), 2, 1e-4, 1e-4),
        &[(1.0 + v2) / 2.0, (1.0 + v2) / 2.0],
        1e-12,
    );
    // Below norm_eps the Gram matrix counts as zero: Ĝ = reg·I, v = e_i, w = mean.
    let tiny = gram_of(&[&[1e-3, 0.0], &[-1e-3, 0.0]]);
    close(
        "upgrad tiny",
        &upgrad::reference(&tiny, 2, 1e-4, 1e-4),
        &[0.5, 0.5],
        1e-12,
    );
}

#[test]
fn gradvac_by_hand() {
    // At the first step every target is 0: GradVac acts only on conflicts, and
    // then as PCGrad does (up to the 1e-8 in its denominators).
    for (name, g) in [("orthogonal", orthogonal()), ("opposed", opposed())] {
        let mut rho = vec![0.0; 4];
        close(
            &format!("gradvac {name}"),
            &gradvac::reference(&g, 2, 0.5, 3, 0, &mut rho),
            &pcgrad::reference(&g, 2, 3, 0),
            1e-7,
        );
    }
    // Orthogonal unit gradients with a target of ½ for (g1, g2): g1 gains
    // ‖g1‖ (½·1 − 0)/(‖g2‖ √¾) = 1/√3 of g2, and then cos(g1 + g2/√3, g2) = ½,
    // the target; g2 meets a target of 0 and is left alone. The targets move
    // by β = ½ towards the cosines seen before the change: (½ + 0)/2 and 0.
    let g = gram_of(&[&[1.0, 0.0], &[0.0, 1.0]]);
    let mut rho = vec![0.0, 0.5, 0.0, 0.0];
    let w = gradvac::reference(&g, 2, 0.5, 3, 0, &mut rho);
    let third = 1.0 / 3f64.sqrt();
    close("gradvac target ½", &w, &[1.0, 1.0 + third], 1e-7);
    let altered = [1.0, third];
    let cos = altered[1] / (altered[0] * altered[0] + altered[1] * altered[1]).sqrt();
    assert!((cos - 0.5).abs() < 1e-12, "{cos}");
    close("gradvac targets", &rho, &[0.0, 0.25, 0.0, 0.0], 1e-12);
}

#[test]
fn dualproj_by_hand() {
    // Orthogonal or opposed, the mean gradient already lies in the dual cone
    // (g_j·mean ≥ 0 for both): nothing moves, w = (½, ½). (Opposed, the cone
    // is the plane g1·x = 0 and the mean is 0; with the regularisation the
    // bounds v ≥ ½ stay active.)
    for (name, g) in [("orthogonal", orthogonal()), ("opposed", opposed())] {
        close(
            &format!("dualproj {name}"),
            &dualproj::reference(&g, 2, 1e-4, 1e-4),
            &[0.5, 0.5],
            1e-12,
        );
    }
    // g1 = (1, 0), g2 = (-2, ½): the mean (-½, ¼) conflicts with g1. With
    // v₂ = ½ at its bound, v₁ is free where (Ĝv)₁ = 0: Ĝ = G/5.25 + 1e-4 I and
    // G₁₁v₁ + G₁₂·½ = v₁ − 1, so (v₁ − 1)/5.25 + 1e-4 v₁ = 0, v₁ = 1/(1 + 5.25e-4);
    // then (Ĝv)₂ > 0 keeps v₂ at its bound. Unregularised that is w = (1, ½) and
    // d = (0, ¼): orthogonal to g1, the loss of task 1 no longer rises.
    let g = gram_of(&[&[1.0, 0.0], &[-2.0, 0.5]]);
    close(
        "dualproj conflicting",
        &dualproj::reference(&g, 2, 1e-4, 1e-4),
        &[1.0 / (1.0 + 5.25e-4), 0.5],
        1e-12,
    );
    // Below norm_eps the Gram matrix counts as zero: w = the mean's weights.
    let tiny = gram_of(&[&[1e-3, 0.0], &[-2e-3, 0.0]]);
    close(
        "dualproj tiny",
        &dualproj::reference(&tiny, 2, 1e-4, 1e-4),
        &[0.5, 0.5],
        1e-12,
    );
}

#[test]
fn config_by_hand() {
    // Orthogonal g1 = 2e1, g2 = e2: the cosines are I, c = C⁺1 = (1, 1), the
    // direction at equal angles is û = (1, 1)/√2, and the summed projections
    // s = (2 + 1)/√2: d = s û = (1.5, 1.5) = 0.75 g1 + 1.5 g2.
    close(
        "config orthogonal",
        &config::reference(&orthogonal(), 2),
        &[0.75, 1.5],
        1e-12,
    );
    // Opposed: no direction makes the same (positive) angle with both; C⁺1 = 0, d = 0.
    close(
        "config opposed",
        &config::reference(&opposed(), 2),
        &[0.0, 0.0],
        1e-12,
    );
    // One task: d = g.
    close("config one", &config::reference(&[9.0], 1), &[1.0], 1e-12);
    // A zero gradient takes no part: the other alone, d = g1.
    let g = gram_of(&[&[3.0, 4.0], &[0.0, 0.0]]);
    close(
        "config zero row",
        &config::reference(&g, 2),
        &[1.0, 0.0],
        1e-12,
    );
}

#[test]
fn aligned_mtl_by_hand() {
    // Orthogonal g1 = 2e1, g2 = e2: G = diag(4, 1), the principal components
    // are the gradients themselves, each scaled to the smaller's length:
    // B = diag(√(1/4), 1), w = B 1 = (½, 1), d = (1, 1).
    close(
        "aligned orthogonal",
        &aligned_mtl::reference(&orthogonal(), 2),
        &[0.5, 1.0],
        1e-12,
    );
    // Opposed: one component, (1, -1)/√2, and B 1 = 0: d = 0.
    close(
        "aligned opposed",
        &aligned_mtl::reference(&opposed(), 2),
        &[0.0, 0.0],
        1e-12,
    );
    // Any scale of G: the same weights.
    let g: Vec<f64> = orthogonal().iter().map(|v| v * 1e4).collect();
    close(
        "aligned scaled",
        &aligned_mtl::reference(&g, 2),
        &[0.5, 1.0],
        1e-12,
    );
    // A zero G: w = 1 (torchjd's identity for rank 0).
    close(
        "aligned zero",
        &aligned_mtl::reference(&[0.0; 4], 2),
        &[1.0, 1.0],
        1e-12,
    );
}

#[test]
fn fairgrad_by_hand() {
    // Orthogonal g1 = 2e1, g2 = e2: G = diag(4, 1), so (G w)_k = w_k^{−1/α}
    // gives 4 w1 = w1^{−1/α}, w1 = 4^{−α/(α+1)}, and w2 = 1. α = 1: w = (½, 1).
    close(
        "fairgrad α=1",
        &fairgrad::reference(&orthogonal(), 2, 1.0, 30),
        &[0.5, 1.0],
        1e-7,
    );
    let a: f64 = 3.0;
    let want = 4f64.powf(-a / (a + 1.0));
    close(
        "fairgrad α=3",
        &fairgrad::reference(&orthogonal(), 2, a, 30),
        &[want, 1.0],
        1e-7,
    );
    // α = 1 is Nash-MTL's bargaining point without its clip.
    let g = gram_of(&[&[1.0, 0.2], &[-0.3, 2.0]]);
    close(
        "fairgrad = nash",
        &fairgrad::reference(&g, 2, 1.0, 30),
        &nash_mtl::reference(&g, 2, 30, 0.0),
        1e-9,
    );
}

#[test]
fn krum_by_hand() {
    // g0 = 1, g1 = 1.1, g2 = −5 (on one axis): the nearest-neighbour
    // distances are 0.1, 0.1 and 6; g0 and g1 tie, the lower index wins.
    let g = gram_of(&[&[1.0], &[1.1], &[-5.0]]);
    close(
        "krum",
        &krum::reference(&g, 3, 0, 1),
        &[1.0, 0.0, 0.0],
        1e-12,
    );
    // Multi-Krum, two selected: the mean of g0 and g1; the outlier is out.
    close(
        "multi-krum",
        &krum::reference(&g, 3, 0, 2),
        &[0.5, 0.5, 0.0],
        1e-12,
    );
    // Four tasks 0, 3, 3.5, 10. One adversary allowed: each scored by its
    // K − f − 2 = 1 nearest: 3, 0.5, 0.5, 6.5; g1 and g2 tie, g1 wins.
    let g = gram_of(&[&[0.0], &[3.0], &[3.5], &[10.0]]);
    close(
        "krum f=1",
        &krum::reference(&g, 4, 1, 1),
        &[0.0, 1.0, 0.0, 0.0],
        1e-12,
    );
    // None allowed: by its 2 nearest: 6.5, 3.5, 4, 13.5: g1.
    close(
        "krum f=0",
        &krum::reference(&g, 4, 0, 1),
        &[0.0, 1.0, 0.0, 0.0],
        1e-12,
    );
    // Three selected with f = 1: the three lowest scores 0.5, 0.5, 3 (g1, g2, g0).
    let third = 1.0 / 3.0;
    close(
        "krum m=3",
        &krum::reference(&g, 4, 1, 3),
        &[third, third, third, 0.0],
        1e-12,
    );
}

#[test]
fn gradnorm_by_hand() {
    // Weighted norms n = (2, 1) and no progress yet (ratios 1): the target is the mean
    // norm 1.5 for both, so u = sign(n - t) n = (+2, -1); with equal logits
    // (z = (½, ½)) ∂L/∂s = u - z Σu = (1.5, -1.5): descending s moves weight
    // from the task with the larger gradient to the other.
    let g = gram_of(&[&[2.0, 0.0], &[0.0, 1.0]]);
    let u = gradnorm::reference_u(&g, 2, &[1.0, 1.0], Some(&[1.0, 1.0]), 1.5);
    close("gradnorm u", &u, &[2.0, -1.0], 1e-12);
    close(
        "gradnorm ds",
        &gradnorm::reference_seeds_grad(&[1.0, 1.0], &u),
        &[1.5, -1.5],
        1e-12,
    );
    close(
        "gradnorm seeds",
        &gradnorm::reference_seeds(&[1.0, 1.0]),
        &[1.0, 1.0],
        1e-12,
    );
    // Equal norms and equal progress: nothing to correct (t = n, sign 0).
    let g = gram_of(&[&[1.0, 0.0], &[0.0, 1.0]]);
    let u = gradnorm::reference_u(&g, 2, &[0.5, 0.5], Some(&[1.0, 1.0]), 1.5);
    close("gradnorm balanced", &u, &[0.0, 0.0], 1e-12);
    // The first epoch (no L(0) yet): equal weights, no gradient on s.
    close(
        "gradnorm first epoch",
        &gradnorm::reference_u(&g, 2, &[0.5, 0.5], None, 1.5),
        &[0.0, 0.0],
        0.0,
    );
}

#[test]
fn gradnorm_seeds_and_logit_gradient_on_the_gpu() {
    // The plan's three dispatches against the CPU reference: seeds = K softmax(s)
    // before the forward pass; after the Gram matrix, u from the solve and
    // ∂L/∂s into s's gradient; L(0) arrives through on_epoch_end.
    use taskgrad::mtl::{Weighting, WeightingContext};
    let gpu = gpu_or_skip!();
    let k = 3;
    let mut r = rng(31);
    let rows: Vec<f64> = random(&mut r, k * 5).iter().map(|&x| x as f64).collect();
    let g = reference::gram(&rows, k, 5, 5);
    let (losses, l0) = ([0.9, 0.4, 1.3], [1.0, 1.0, 1.5]);
    let s = [0.3, -0.2, 0.5];
    let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
    let mut gn = GradNorm::default();
    let mut b = taskgrad::nn::ParamBuilder::new(gpu);
    gn.add_params(&mut b, k).unwrap();
    let params = b.build(gpu).unwrap();
    let mut arena = vec![0.0f32; params.values.whole.numel()];
    arena[..k].copy_from_slice(&f(&s));
    params.values.whole.write(gpu, &arena).unwrap();
    let seeds = Tensor::zeros(gpu, &[k], "seeds").unwrap();
    let loss_t = Tensor::from_slice(gpu, &[k], &f(&losses), "losses").unwrap();
    let gram = Tensor::from_slice(gpu, &[k, k], &f(&g), "gram").unwrap();
    let combine = Tensor::zeros(gpu, &[k], "combine").unwrap();
    let ctx = WeightingContext {
        params: &params,
        seeds: &seeds,
        losses: &loss_t,
        gram: &gram,
        combine: &combine,
    };
    let plan = gn.build(gpu, &ctx).unwrap();
    let grads = &params.grads().unwrap().whole;
    let run_all = || {
        let ds: Vec<_> = plan.before.iter().chain(&plan.after_gram).collect();
        gpu.run(&ds).unwrap();
        let got = gpu.read(&[&seeds, grads]).unwrap();
        let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        (to64(&got[0]), to64(&got[1][..k]))
    };
    // First epoch: seeds from s, no gradient on s.
    let (got_seeds, got_ds) = run_all();
    close("seeds", &got_seeds, &gradnorm::reference_seeds(&s), 1e-6);
    close("first epoch ds", &got_ds, &[0.0; 3], 0.0);
    // After it, L(0) is known.
    gn.on_epoch_end(gpu, &seeds, &l0).unwrap();
    let (_, got_ds) = run_all();
    let u = gradnorm::reference_u(&g, k, &losses, Some(&l0), 1.5);
    assert!(u.iter().any(|&x| x != 0.0));
    close("ds", &got_ds, &gradnorm::reference_seeds_grad(&s, &u), 1e-5);
    // Only the first epoch's losses are L(0).
    gn.on_epoch_end(gpu, &seeds, &[9.0, 9.0, 9.0]).unwrap();
    let (_, again) = run_all();
    close("L(0) kept", &again, &got_ds, 1e-7);
}

#[test]
fn loss_based_methods_by_hand() {
    // DWA: a task whose loss fell by half gets less weight: r = (0.5, 1), T = 2:
    // w = 2 softmax(0.25, 0.5).
    let e = [(0.25f64).exp(), (0.5f64).exp()];
    close(
        "dwa",
        &taskgrad::mtl::dwa::reference(&[0.5, 2.0], &[1.0, 2.0], 2.0),
        &[2.0 * e[0] / (e[0] + e[1]), 2.0 * e[1] / (e[0] + e[1])],
        1e-12,
    );
    // GLS: L = (1·4)^{1/2} = 2, seeds L/(K L_k) = (2/2, 2/8) = (1, ¼): the
    // smaller loss counts more; equal losses give 1/K each.
    close("gls", &gls::reference(&[1.0, 4.0]), &[1.0, 0.25], 1e-12);
    close("gls equal", &gls::reference(&[3.0; 4]), &[0.25; 4], 1e-12);
    // RLW: a softmax, so positive weights summing to 1, different each step.
    let a = rlw::reference(3, 1, 0);
    assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-12 && a.iter().all(|&x| x > 0.0));
    assert_ne!(a, rlw::reference(3, 1, 1));
    // FAMO, first step: ξ = 0 so z = (½, ½); seeds z_k/(c L_k) with c = Σ z/L make
    // Σ seeds·L = 1 and weight the smaller loss more: L = (1, 4) → (0.8, 0.2).
    let mut s = famo::State::new(2);
    close(
        "famo first",
        &famo::reference_step(&mut s, &[1.0, 4.0], 0.025, 0.001),
        &[0.8, 0.2],
        1e-6,
    );
    // Then task 0's loss halves (1 → 0.5) while task 1's stays: δ = (ln 2, 0), and
    // ∇ξ = z ⊙ (δ - z·δ) = (+, -), so the descent step lowers ξ0 and raises ξ1:
    // FAMO shifts weight to the task that is improving more slowly.
    famo::reference_step(&mut s, &[0.5, 4.0], 0.025, 0.0);
    assert!(s.xi[0] < 0.0 && s.xi[1] > 0.0, "ξ = {:?}", s.xi);
}

/// Run one GPU solve step (`steps` times) and return the weights.
fn gpu_solve<M: GpuSolve>(
    gpu: &taskgrad::Gpu,
    method: &M,
    gram: &[f64],
    losses: &[f64],
    steps: usize,
) -> Vec<f64> {
    let k = losses.len();
    let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
    let g = Tensor::from_slice(gpu, &[k, k], &f(gram), "gram").unwrap();
    let l = Tensor::from_slice(gpu, &[k], &f(losses), "losses").unwrap();
    let state = Tensor::zeros(gpu, &[STATE_LEN], "state").unwrap();
    let w = Tensor::zeros(gpu, &[k], "weights").unwrap();
    let d = method.record_solve(gpu, &g, &l, &state, &w).unwrap();
    for _ in 0..steps {
        gpu.run(&[&d]).unwrap();
    }
    gpu.read_one(&w)
        .unwrap()
        .iter()
        .map(|&x| x as f64)
        .collect()
}

#[test]
fn gpu_solves_match_the_cpu_reference() {
    let gpu = gpu_or_skip!();
    let mut r = rng(29);
    for &k in &[1usize, 2, 3, 7] {
        // A Gram matrix of k random 9-dimensional gradients, some conflicting.
        let n = 9;
        let rows: Vec<f64> = random(&mut r, k * n).iter().map(|&x| x as f64).collect();
        let g = reference::gram(&rows, k, n, n);
        let losses: Vec<f64> = random(&mut r, k)
            .iter()
            .map(|&x| 0.5 + x.abs() as f64)
            .collect();
        let check = |name: &str, got: Vec<f64>, want: Vec<f64>, tol: f32| {
            let (got, want): (Vec<f32>, Vec<f32>) = (
                got.iter().map(|&x| x as f32).collect(),
                want.iter().map(|&x| x as f32).collect(),
            );
            assert_close(&format!("{name} k={k}"), &got, &want, tol, tol);
        };
        check(
            "pcgrad",
            gpu_solve(gpu, &PcGrad { seed: 5 }, &g, &losses, 1),
            pcgrad::reference(&g, k, 5, 0),
            1e-4,
        );
        // The step counter advances: the third call uses step 2.
        check(
            "pcgrad step 2",
            gpu_solve(gpu, &PcGrad { seed: 5 }, &g, &losses, 3),
            pcgrad::reference(&g, k, 5, 2),
            1e-4,
        );
        check(
            "mgda",
            gpu_solve(gpu, &Mgda, &g, &losses, 1),
            mgda::reference(&g, k),
            1e-4,
        );
        check(
            "cagrad",
            gpu_solve(gpu, &CaGrad { c: 0.4 }, &g, &losses, 1),
            cagrad::reference(&g, k, 0.4),
            1e-4,
        );
        check(
            "imtl_g",
            gpu_solve(gpu, &ImtlG, &g, &losses, 1),
            imtl_g::reference(&g, k),
            1e-3,
        );
        check(
            "nash_mtl",
            gpu_solve(
                gpu,
                &NashMtl {
                    iters: 20,
                    max_norm: 1.0,
                },
                &g,
                &losses,
                1,
            ),
            nash_mtl::reference(&g, k, 20, 1.0),
            1e-3,
        );
        check(
            "upgrad",
            gpu_solve(gpu, &UpGrad::default(), &g, &losses, 1),
            upgrad::reference(&g, k, 1e-4, 1e-4),
            1e-3,
        );
        // GradVac over three steps: the targets (in the solve's state) carry over.
        let mut rho = vec![0.0; k * k];
        let mut want = Vec::new();
        for step in 0..3 {
            want = gradvac::reference(&g, k, 0.5, 5, step, &mut rho);
        }
        check(
            "gradvac step 2",
            gpu_solve(gpu, &GradVac { beta: 0.5, seed: 5 }, &g, &losses, 3),
            want,
            1e-3,
        );
        check(
            "fairgrad",
            gpu_solve(gpu, &FairGrad::default(), &g, &losses, 1),
            fairgrad::reference(&g, k, 1.0, 30),
            1e-3,
        );
        check(
            "fairgrad alpha 2",
            gpu_solve(
                gpu,
                &FairGrad {
                    alpha: 2.0,
                    iters: 30,
                },
                &g,
                &losses,
                1,
            ),
            fairgrad::reference(&g, k, 2.0, 30),
            1e-3,
        );
        check(
            "krum",
            gpu_solve(gpu, &Krum::default(), &g, &losses, 1),
            krum::reference(&g, k, 0, 1),
            1e-6,
        );
        check(
            "multi-krum",
            gpu_solve(
                gpu,
                &Krum {
                    n_byzantine: 1,
                    n_selected: 2,
                },
                &g,
                &losses,
                1,
            ),
            krum::reference(&g, k, 1, 2),
            1e-6,
        );
        check(
            "gls",
            gpu_solve(gpu, &Gls, &g, &losses, 1),
            gls::reference(&losses),
            1e-4,
        );
        check(
            "config",
            gpu_solve(gpu, &Config, &g, &losses, 1),
            config::reference(&g, k),
            1e-3,
        );
        check(
            "aligned_mtl",
            gpu_solve(gpu, &AlignedMtl, &g, &losses, 1),
            aligned_mtl::reference(&g, k),
            1e-3,
        );
        check(
            "dualproj",
            gpu_solve(gpu, &DualProj::default(), &g, &losses, 1),
            dualproj::reference(&g, k, 1e-4, 1e-4),
            1e-3,
        );
        check(
            "rlw",
            gpu_solve(gpu, &Rlw { seed: 9 }, &g, &losses, 2),
            rlw::reference(k, 9, 1),
            1e-4,
        );
        let mut s = famo::State::new(k);
        famo::reference_step(&mut s, &losses, 0.025, 0.001);
        check(
            "famo",
            gpu_solve(
                gpu,
                &Famo {
                    lr: 0.025,
                    gamma: 0.001,
                    same_batch: false,
                },
                &g,
                &losses,
                2,
            ),
            famo::reference_step(&mut s, &losses, 0.025, 0.001),
            1e-4,
        );
    }
}

#[test]
fn famo_learns_from_the_same_batch_after_the_update() {
    // LibMTL's order: seeds from this step's losses L (kept as "before"),
    // then — after the optimizer and a forward pass over the same batch —
    // `famo_update` reads the losses L' at the new weights and moves ξ by
    // Adam on (diag(z) - z zᵀ)(log L - log L'). Three steps on the GPU
    // against the CPU reference, logits and seeds.
    use taskgrad::mtl::{Weighting, WeightingContext};
    let gpu = gpu_or_skip!();
    let k = 3;
    let steps: [([f64; 3], [f64; 3]); 3] = [
        ([1.0, 2.0, 0.5], [0.8, 1.9, 0.5]),
        ([0.9, 1.8, 0.6], [0.5, 1.7, 0.55]),
        ([0.7, 1.7, 0.5], [0.6, 1.2, 0.45]),
    ];
    let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
    let seeds = Tensor::zeros(gpu, &[k], "seeds").unwrap();
    let losses = Tensor::zeros(gpu, &[k], "losses").unwrap();
    let gram = Tensor::zeros(gpu, &[k, k], "gram").unwrap();
    let combine = Tensor::zeros(gpu, &[k], "combine").unwrap();
    let params = taskgrad::nn::ParamBuilder::new(gpu)
        .build_frozen(gpu)
        .unwrap();
    let ctx = WeightingContext {
        params: &params,
        seeds: &seeds,
        losses: &losses,
        gram: &gram,
        combine: &combine,
    };
    let mut famo = Famo::default();
    let plan = famo.build(gpu, &ctx).unwrap();
    assert_eq!((plan.after_forward.len(), plan.after_update.len()), (1, 1));
    let mut s = famo::State::new(k);
    for (before, after) in steps {
        losses.write(gpu, &f(&before)).unwrap();
        gpu.run(&[&plan.after_forward[0]]).unwrap();
        let want = famo::reference_seeds(&mut s, &before);
        let got: Vec<f64> = gpu
            .read_one(&seeds)
            .unwrap()
            .iter()
            .map(|&x| x as f64)
            .collect();
        close("famo seeds", &got, &want, 1e-5);
        losses.write(gpu, &f(&after)).unwrap();
        gpu.run(&[&plan.after_update[0]]).unwrap();
        famo::reference_update(&mut s, &after, 0.025, 0.001);
    }
    // The logits the next step's seeds come from.
    losses.write(gpu, &f(&[1.0, 1.0, 1.0])).unwrap();
    gpu.run(&[&plan.after_forward[0]]).unwrap();
    let want = famo::reference_seeds(&mut s, &[1.0, 1.0, 1.0]);
    let got: Vec<f64> = gpu
        .read_one(&seeds)
        .unwrap()
        .iter()
        .map(|&x| x as f64)
        .collect();
    close("famo seeds after three updates", &got, &want, 1e-5);
    assert!(
        want.iter().any(|&w| (w - 1.0 / 3.0).abs() > 1e-3),
        "ξ moved: {want:?}"
    );
    // The previous-batch variant dispatches nothing after the update.
    let mut prev = Famo {
        same_batch: false,
        ..Famo::default()
    };
    assert!(prev.build(gpu, &ctx).unwrap().after_update.is_empty());
}

#[test]
fn aggregate_combines_your_own_gradients_as_each_method_s_reference_does() {
    // d = Σ_k w_k g_k with w from the method's CPU reference on G = g gᵀ:
    // the public API runs the same Gram kernel, solve and combination as training.
    let gpu = gpu_or_skip!();
    let (k, p) = (3, 50);
    let rows: Vec<f32> = random(&mut rng(123), k * p);
    let r64: Vec<f64> = rows.iter().map(|&v| v as f64).collect();
    let g = reference::gram(&r64, k, p, p);
    let expected: [(&str, Vec<f64>); 7] = [
        ("pcgrad", pcgrad::reference(&g, k, 0, 0)),
        ("mgda", mgda::reference(&g, k)),
        ("cagrad", cagrad::reference(&g, k, 0.4)),
        ("imtl_g", imtl_g::reference(&g, k)),
        ("nash_mtl", nash_mtl::reference(&g, k, 20, 1.0)),
        ("upgrad", upgrad::reference(&g, k, 1e-4, 1e-4)),
        ("dualproj", dualproj::reference(&g, k, 1e-4, 1e-4)),
    ];
    for (name, w) in expected {
        let got = taskgrad::mtl::aggregate_with(
            gpu,
            taskgrad::mtl::by_name(name).unwrap().as_mut(),
            &rows,
            k,
        )
        .unwrap();
        let d: Vec<f32> = (0..p)
            .map(|j| (0..k).map(|i| w[i] * r64[i * p + j]).sum::<f64>() as f32)
            .collect();
        let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        assert_close(&format!("{name} weights"), &got.weights, &w32, 1e-3, 1e-3);
        assert_close(&format!("{name} direction"), &got.direction, &d, 1e-3, 1e-3);
        assert_eq!(
            taskgrad::mtl::aggregate(gpu, name, &rows, k).unwrap(),
            got.direction
        );
    }
    // Loss weightings combine nothing; rows must split into K equal parts.
    assert!(matches!(
        taskgrad::mtl::aggregate(gpu, "uncertainty", &rows, k),
        Err(taskgrad::Error::InvalidConfig(_))
    ));
    assert!(matches!(
        taskgrad::mtl::aggregate(gpu, "upgrad", &rows[..149], k),
        Err(taskgrad::Error::ShapeMismatch { .. })
    ));
}

#[test]
fn mgda_with_a_zero_gradient_returns_the_zero_direction() {
    // g0 = (1, 2), g1 = 0, g2 = (-1, 0.5): 0 is in the hull, so the min-norm
    // point is 0 — all weight on task 1, on the CPU and on the GPU.
    let g = gram_of(&[&[1.0, 2.0], &[0.0, 0.0], &[-1.0, 0.5]]);
    close(
        "mgda zero row",
        &mgda::reference(&g, 3),
        &[0.0, 1.0, 0.0],
        0.0,
    );
    let g2 = gram_of(&[&[0.0, 0.0], &[3.0, 1.0]]);
    close(
        "mgda zero row k=2",
        &mgda::reference(&g2, 2),
        &[1.0, 0.0],
        0.0,
    );
    let gpu = gpu_or_skip!();
    let rows = [1.0f32, 2.0, 0.0, 0.0, -1.0, 0.5];
    let a = taskgrad::mtl::aggregate_with(gpu, &mut Mgda, &rows, 3).unwrap();
    assert_eq!(a.weights, vec![0.0, 1.0, 0.0]);
    assert_eq!(a.direction, vec![0.0, 0.0]);
}

#[test]
fn gls_matches_libmtl_on_its_losses() {
    // tests/fixtures/fidelity.json "gls": LibMTL's gradient of (Π L_k)^{1/K}
    // with respect to each loss, at fixed losses (scripts/fidelity_fixtures.py).
    let gpu = gpu_or_skip!();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fidelity.json"
    ))
    .unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = fixture["gls"].as_array().expect("the fixture's gls cases");
    assert!(cases.len() >= 3);
    for case in cases {
        let v = |key: &str| -> Vec<f64> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        let (losses, want) = (v("losses"), v("seeds"));
        let k = losses.len();
        close(
            "gls cpu",
            &gls::reference(&losses),
            &want,
            1e-9 * want.iter().fold(1.0, |m, x| x.max(m)),
        );
        let got = gpu_solve(gpu, &Gls, &vec![0.0; k * k], &losses, 1);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "gls gpu {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn stch_over_epochs_matches_libmtl_and_its_cpu_twin() {
    // Five epochs of three steps at fixed losses (tests/fixtures/fidelity.json
    // "stch", LibMTL's STCH with μ = 1 and 2 warm-up epochs): log losses for
    // epochs 0–2, the nadir point from epoch 2's steps, the smooth maximum
    // after. The epoch reaches the GPU solve between epochs (on_epoch_end).
    use taskgrad::mtl::{stch, Stch, Weighting, WeightingContext};
    let gpu = gpu_or_skip!();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fidelity.json"
    ))
    .unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let fx = &fixture["stch"];
    let nums = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let k = 3;
    let seeds = Tensor::zeros(gpu, &[k], "seeds").unwrap();
    let losses = Tensor::zeros(gpu, &[k], "losses").unwrap();
    let gram = Tensor::zeros(gpu, &[k, k], "gram").unwrap();
    let combine = Tensor::zeros(gpu, &[k], "combine").unwrap();
    let params = taskgrad::nn::ParamBuilder::new(gpu)
        .build_frozen(gpu)
        .unwrap();
    let ctx = WeightingContext {
        params: &params,
        seeds: &seeds,
        losses: &losses,
        gram: &gram,
        combine: &combine,
    };
    let mut method = Stch::default();
    method.warmup = fx["warmup"].as_u64().unwrap() as u32;
    let plan = method.build(gpu, &ctx).unwrap();
    let mut cpu = stch::State::default();
    let epochs = fx["losses"].as_array().unwrap();
    for (epoch, steps) in epochs.iter().enumerate() {
        for (step, l) in steps.as_array().unwrap().iter().enumerate() {
            let l = nums(l);
            let want = nums(&fx["seeds"][epoch][step]);
            let twin = stch::reference_step(&mut cpu, &l, epoch as u32, method.warmup, 1.0);
            close(&format!("stch cpu {epoch}.{step}"), &twin, &want, 1e-9);
            losses
                .write(gpu, &l.iter().map(|&x| x as f32).collect::<Vec<_>>())
                .unwrap();
            gpu.run(&[&plan.after_forward[0]]).unwrap();
            let got: Vec<f64> = gpu
                .read_one(&seeds)
                .unwrap()
                .iter()
                .map(|&x| x as f64)
                .collect();
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "stch gpu {epoch}.{step}: {got:?} vs {want:?}"
                );
            }
        }
        method.on_epoch_end(gpu, &seeds, &[0.0; 3]).unwrap();
    }
    // Hand check: at the nadir point every v_k = 0, so the seeds are K/3 · 1/z_k = 1/z_k.
    let mut s = stch::State {
        sum: vec![2.0, 4.0],
        count: 2.0,
        nadir: None,
    };
    close(
        "stch at the nadir",
        &stch::reference_step(&mut s, &[1.0, 2.0], 5, 4, 1.0),
        &[1.0, 0.5],
        1e-12,
    );
}
