#!/usr/bin/env python3
"""Write tests/fixtures/fidelity.json: fixed gradient matrices and the
directions that the reference implementations (LibMTL, torchjd) combine them
into, for tests/fidelity.rs to compare taskgrad's `mtl::aggregate` against.

Nothing here is taskgrad code; the numbers come from running the references
themselves, in float64, on matrices whose entries are float32 values (so that
the GPU sees exactly the same matrix).

Setup (the versions the committed fixture was made with; the script records
what it finds):

    pip install torch torchjd[cagrad,nash_mtl]==0.8.1 scipy ecos
    git clone https://github.com/median-research-group/LibMTL /tmp/libmtl
    git -C /tmp/libmtl checkout 4336804
    python3 scripts/fidelity_fixtures.py --libmtl /tmp/libmtl > tests/fixtures/fidelity.json

PCGrad and GradVac shuffle the task order with Python's `random`; here the
shuffle is replaced by the order taskgrad draws for seed 0 at step 0 (and 1,
2 for GradVac's three steps; the same lowbias32 hash as src/mtl/solve.rs),
so that both meet the tasks in the same order.
"""

import argparse
import contextlib
import re
import json
import math
import subprocess
import sys

import numpy as np


# --- the matrices ---------------------------------------------------------


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def pair_with_cosine(rng, p, cos, n0=1.0, n1=2.0):
    """Two rows of norms n0, n1 whose cosine is `cos`."""
    a = rng.standard_normal(p)
    a /= np.linalg.norm(a)
    b = rng.standard_normal(p)
    b -= (b @ a) * a
    b /= np.linalg.norm(b)
    return np.stack([n0 * a, n1 * (cos * a + math.sqrt(1 - cos * cos) * b)])


def cases():
    rng = np.random.default_rng(20261127)
    p = 50
    out = []
    for name, cos in [("cos_0.9", 0.9), ("cos_0", 0.0), ("cos_-0.5", -0.5), ("cos_-0.99", -0.99)]:
        out.append((name, False, pair_with_cosine(rng, p, cos)))
    out.append(("gauss_k3", False, rng.standard_normal((3, p))))
    out.append(("gauss_k4", False, rng.standard_normal((4, p))))
    # A conflicting K = 3 draw (mean of rows 0 and 1 against row 2).
    g = rng.standard_normal((3, p))
    g[2] -= 1.5 * (g[0] + g[1])
    out.append(("conflict_k3", False, g))
    g = rng.standard_normal((3, p))
    g[1] *= 100.0
    out.append(("row_x100", False, g))
    g = rng.standard_normal((3, p))
    g[1] = g[0]
    out.append(("identical", True, g))
    g = rng.standard_normal((3, p))
    g[1] = g[0] + 1e-3 * rng.standard_normal(p)
    out.append(("near_identical", True, g))
    g = rng.standard_normal((3, p))
    g[1] = 2.0 * g[0]
    out.append(("parallel", True, g))
    g = rng.standard_normal((3, p))
    g[2] = 0.0
    out.append(("zero_row", True, g))
    return [(n, d, f32(g)) for n, d, g in out]


# --- taskgrad's PCGrad order (src/mtl/solve.rs, src/mtl/pcgrad.rs) ----------

M32 = 0xFFFFFFFF


def lowbias32(v):
    x = v & M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def uniform(seed, step, index):
    h = lowbias32(seed ^ lowbias32(((step * 0x9E3779B9) & M32) ^ lowbias32((index + 0x85EBCA6B) & M32)))
    return (h >> 8) / float(1 << 24)


def task_order(k, seed, step, i):
    key = [uniform(seed, step, i * 16 + m) for m in range(k)]
    return sorted(range(k), key=lambda m: (key[m], m))


# --- LibMTL ---------------------------------------------------------------


def libmtl_direction(cls, g, kwargs, pcgrad_seed=None, gradvac_steps=0):
    """Run a LibMTL weighting's backward on losses L_k = g_k·θ, whose
    gradients are exactly the rows of g, and read the update it leaves in θ.grad.
    With `gradvac_steps`, GradVac's backward runs that many times on the same
    rows (its target cosines carrying over) and the last update is read; its
    shuffles are replaced by taskgrad's orders for seed 0 at steps 0, 1, …."""
    import torch

    k, p = g.shape
    theta = torch.zeros(p, dtype=torch.float64, requires_grad=True)
    rows = torch.tensor(g, dtype=torch.float64)

    class Harness(cls):
        def __init__(self):
            super().__init__()
            self.task_num = k
            self.device = torch.device("cpu")
            self.rep_grad = False
            self.task_name = [f"t{i}" for i in range(k)]

        def get_share_params(self):
            return [theta]

        def zero_grad_share_params(self):
            if theta.grad is not None:
                theta.grad.zero_()

    w = Harness()
    w.init_param()
    if pcgrad_seed is not None:
        # (`LibMTL.weighting.PCGrad` is the class; its module is in sys.modules.)
        pc = sys.modules["LibMTL.weighting.PCGrad"]

        orders = iter([task_order(k, pcgrad_seed, 0, i) for i in range(k)])

        class Shuffle:
            @staticmethod
            def shuffle(lst):
                lst[:] = next(orders)

        pc.random = Shuffle
    if gradvac_steps:
        gv = sys.modules["LibMTL.weighting.GradVac"]
        orders = iter([[j for j in task_order(k, 0, step, i) if j != i]
                       for step in range(gradvac_steps) for i in range(k)])

        class ShuffleGv:
            @staticmethod
            def shuffle(lst):
                lst[:] = next(orders)

        gv.random = ShuffleGv
        for _ in range(gradvac_steps - 1):
            losses = torch.stack([rows[i] @ theta for i in range(k)])
            w.backward(losses, **kwargs)
            theta.grad.zero_()
    losses = torch.stack([rows[i] @ theta for i in range(k)])
    out = w.backward(losses, **kwargs)
    weights = None if out is None else [float(v) for v in np.asarray(out).reshape(-1)]
    return theta.grad.detach().numpy().tolist(), weights


# --- torchjd --------------------------------------------------------------


def torchjd_direction(aggregator, weighting, g):
    import torch

    j = torch.tensor(g, dtype=torch.float64)
    d = aggregator(j)
    w = weighting(j @ j.T) if weighting is not None else None
    return d.numpy().tolist(), None if w is None else w.numpy().tolist()


# --- exact solutions, where a convex problem defines the method ------------


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / nb if nb > 0 else np.linalg.norm(a - b))


def zero_rows(g):
    sq = (g * g).sum(1)
    return sq <= 1e-12 * sq.max()


def mgda_exact(g):
    import cvxpy as cp

    k = g.shape[0]
    w = cp.Variable(k)
    # The norm itself (not its square) as the objective: CLARABEL's tolerance
    # then bounds the error of ‖d‖, which matters when the min-norm point is 0.
    cp.Problem(cp.Minimize(cp.norm(g.T @ w, 2)), [w >= 0, cp.sum(w) == 1]).solve(cp.CLARABEL)
    w = np.asarray(w.value)
    return g.T @ w, w


def cagrad_exact(g, c, s):
    """max-min improvement in the ball |d - g0| <= c|g0|; a task whose gradient
    is zero gains or loses nothing whatever d is, and is left out of the max-min."""
    import cvxpy as cp

    k = g.shape[0]
    g0 = g.mean(0)
    sqrt_phi = c * np.linalg.norm(g0)
    w = cp.Variable(k)
    cons = [w >= 0, cp.sum(w) == 1] + [w[i] == 0 for i in np.flatnonzero(zero_rows(g))]
    cost = (g @ g0) @ w + sqrt_phi * cp.norm(g.T @ w, 2)
    cp.Problem(cp.Minimize(cost), cons).solve(cp.CLARABEL)
    w = np.asarray(w.value)
    weights = np.ones(k) / k + sqrt_phi / np.linalg.norm(g.T @ w) * w
    return g.T @ (weights * s), weights * s


def imtl_g_truncated(g, rtol=1e-5):
    G = g @ g.T
    v = np.linalg.pinv(G, rtol=rtol, hermitian=True) @ np.sqrt(np.diag(G))
    w = v / v.sum()
    return g.T @ w, w


def config_truncated(g, rtol=1e-5):
    """ConFIG (torchjd's formula) with the cosine matrix's eigenvalues below
    rtol of the largest dropped from its pseudo-inverse: taskgrad's answer."""
    k = g.shape[0]
    n = np.linalg.norm(g, axis=1)
    u = np.where(n[:, None] > 0, g / np.where(n > 0, n, 1.0)[:, None], 0.0)
    c = np.linalg.pinv(u @ u.T, rtol=rtol, hermitian=True) @ np.ones(k)
    v = u.T @ c
    nv = np.linalg.norm(v)
    if nv <= 1e-12:
        return np.zeros(g.shape[1]), np.zeros(k)
    s = (g @ (v / nv)).sum()
    w = np.where(n > 0, s * c / (nv * np.where(n > 0, n, 1.0)), 0.0)
    return g.T @ w, w


def aligned_truncated(g, rtol=1e-5):
    """Aligned-MTL (LibMTL's B 1) with the eigenvalues of G below rtol of
    the largest dropped: taskgrad's answer."""
    lam, v = np.linalg.eigh(g @ g.T)
    keep = lam > rtol * lam.max()
    if not keep.any():
        w = np.ones(g.shape[0])
    else:
        lr = lam[keep].min()
        b = np.sqrt(lr) * v[:, keep] @ np.diag(1.0 / np.sqrt(lam[keep])) @ v[:, keep].T
        w = b.sum(0)
    return g.T @ w, w


def fairgrad_exact(g, alpha):
    """w > 0 with (G w)_k = w_k^(-1/alpha), by damped Newton in float64."""
    G = g @ g.T
    k = G.shape[0]
    w = 1.0 / np.sqrt(np.diag(G))
    for _ in range(200):
        r = G @ w - w ** (-1.0 / alpha)
        h = G + np.diag(w ** (-1.0 / alpha - 1.0) / alpha)
        step = np.linalg.solve(h, r)
        s = 1.0
        while np.any(w - s * step <= 0):
            s *= 0.5
        w = w - s * step
    return g.T @ w, w


def nash_exact(g, max_norm=1.0):
    """The bargaining point α_i (Gα)_i = 1: the minimiser of ½αᵀGα - Σ log α.
    A task whose gradient is zero cannot bargain (α_i·0 = 1 has no solution):
    the point is that of the other tasks, and the zero row adds nothing to d."""
    live = ~zero_rows(g)
    full = g
    g = g[live]
    G = g @ g.T
    a = 1.0 / np.sqrt(np.diag(G))
    for _ in range(200):
        r = G @ a - 1.0 / a
        h = G + np.diag(1.0 / a**2)
        step = np.linalg.solve(h, r)
        t = 1.0
        while np.any(a - t * step <= 0):
            t *= 0.5
        a = a - t * step
        if np.linalg.norm(r) < 1e-15:
            break
    norm = np.sqrt(a @ G @ a)
    if max_norm > 0 and norm > max_norm:
        a = a * max_norm / norm
    return g.T @ a, None if not live.all() else a


# --- all of it ------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--libmtl", required=True, help="a LibMTL checkout")
    args = ap.parse_args()
    sys.path.insert(0, args.libmtl)

    import torch
    import torchjd
    import scipy
    import cvxpy
    from importlib.metadata import version
    from torchjd.aggregation import AlignedMTL, CAGrad, ConFIG, DualProj, GradDrop, IMTLG, Krum, NashMTL, TrimmedMean, UPGrad
    from torchjd.aggregation._krum import KrumWeighting
    from torchjd.aggregation._aligned_mtl import AlignedMTLWeighting
    from torchjd.aggregation._dualproj import DualProjWeighting
    from torchjd.aggregation._imtl_g import IMTLGWeighting
    from torchjd.aggregation._upgrad import UPGradWeighting
    from torchjd.aggregation._cagrad import CAGradWeighting
    # LibMTL/__init__.py imports its trainer (and torch_geometric); the
    # weightings need none of it, so the package is entered below its top.
    import types, os

    pkg = types.ModuleType("LibMTL")
    pkg.__path__ = [os.path.join(args.libmtl, "LibMTL")]
    sys.modules["LibMTL"] = pkg
    import LibMTL.weighting as lw
    # LibMTL's Aligned_MTL calls torch.symeig, which torch 2.x keeps only as
    # a stub that raises; its replacement, torch.linalg.eigh (lower triangle,
    # as symeig's default), returns the same ascending eigenvalues and vectors.
    torch.symeig = lambda m, eigenvectors=True: torch.linalg.eigh(m, UPLO="L")

    torch.set_default_dtype(torch.float64)
    libmtl_commit = subprocess.run(
        ["git", "-C", args.libmtl, "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip() or "unknown (not a git checkout)"

    c = 0.4  # taskgrad's CAGrad default; LibMTL's is 0.5, torchjd has none
    s = 1.0 / (1.0 + c * c)  # LibMTL's CAGrad rescale 1; torchjd does not rescale
    out_cases = []
    for name, degenerate, g in cases():
        k = g.shape[0]
        m = {}

        def entry(source, d, w=None):
            e = {"source": source, "direction": list(map(float, d))}
            if w is not None:
                e["weights"] = list(map(float, w))
            return e

        d, _ = libmtl_direction(lw.PCGrad, g, {}, pcgrad_seed=0)
        m["pcgrad"] = {"refs": [entry("LibMTL PCGrad (task order: taskgrad's, seed 0, step 0)", d)]}

        d, w = libmtl_direction(lw.MGDA, g, {"mgda_gn": "none"})
        m["mgda"] = {
            "refs": [entry("LibMTL MGDA (mgda_gn none; MinNormSolver, 250 steps)", d, w)],
            "exact": entry("the min-norm point of the hull, cvxpy + CLARABEL", *mgda_exact(g)),
        }

        d, w = torchjd_direction(CAGrad(c=c), CAGradWeighting(c=c), g)
        refs = [entry(f"torchjd CAGrad(c={c}) (CLARABEL), times 1/(1+c²)", np.multiply(d, s), np.multiply(w, s))]
        d, w = libmtl_direction(lw.CAGrad, g, {"calpha": c, "rescale": 1})
        refs.append(entry(f"LibMTL CAGrad (calpha {c}, rescale 1; SLSQP)", d, w))
        m["cagrad"] = {
            "refs": refs,
            "exact": entry(
                "CAGrad's problem by cvxpy + CLARABEL, zero-gradient tasks left out of the max-min, times 1/(1+c²)",
                *cagrad_exact(g, c, s),
            ),
        }

        d, w = torchjd_direction(IMTLG(), IMTLGWeighting(), g)
        refs = [entry("torchjd IMTLG (pseudo-inverse form)", d, w)]
        if not degenerate:
            d, _ = libmtl_direction(lw.IMTL, g, {})
            refs.append(entry("LibMTL IMTL (gradient form)", d))
        m["imtl_g"] = {
            "refs": refs,
            "exact": entry(
                "torchjd's formula with the eigenvalues of G below 1e-5 of the largest dropped "
                "(taskgrad's documented answer: f32 cannot resolve them)",
                *imtl_g_truncated(g),
            ),
        }

        d, w = torchjd_direction(UPGrad(), UPGradWeighting(), g)
        m["upgrad"] = {"refs": [entry("torchjd UPGrad() (norm_eps 1e-4, reg_eps 1e-4, quadprog)", d, w)]}

        d, _ = libmtl_direction(
            lw.GradVac, g, {"GradVac_beta": 0.5, "GradVac_group_type": 0}, gradvac_steps=3
        )
        m["gradvac"] = {
            "steps": 3,
            "refs": [entry("LibMTL GradVac (beta 0.5, whole model; task orders: taskgrad's, seed 0, steps 0-2), third step", d)],
        }

        d, w = torchjd_direction(DualProj(), DualProjWeighting(), g)
        m["dualproj"] = {"refs": [entry("torchjd DualProj() (norm_eps 1e-4, reg_eps 1e-4, quadprog)", d, w)]}

        d, _ = torchjd_direction(ConFIG(), None, g)
        m["config"] = {
            "refs": [entry("torchjd ConFIG() (preference: ones)", d)],
            "exact": entry(
                "torchjd's formula with the cosines' eigenvalues below 1e-5 of the largest "
                "dropped (taskgrad's documented answer: f32 cannot resolve them)",
                *config_truncated(g),
            ),
        }

        d, w = libmtl_direction(lw.Aligned_MTL, g, {})
        refs = [entry("LibMTL Aligned_MTL (torch.symeig given torch.linalg.eigh)", d, w)]
        d, w = torchjd_direction(AlignedMTL(), AlignedMTLWeighting(), g)
        refs.append(entry(f"torchjd AlignedMTL() (preference: the mean), times K = {k}",
                          np.multiply(d, k), np.multiply(w, k)))
        m["aligned_mtl"] = {
            "refs": refs,
            "exact": entry(
                "LibMTL's B 1 with the eigenvalues of G below 1e-5 of the largest dropped "
                "(taskgrad's documented answer; LibMTL and torchjd: K times float's epsilon)",
                *aligned_truncated(g),
            ),
        }

        if k >= 3:  # Krum(n_byzantine = 0) needs K ≥ 3
            d, w = torchjd_direction(Krum(n_byzantine=0), KrumWeighting(n_byzantine=0), g)
            m["krum"] = {"refs": [entry("torchjd Krum(n_byzantine=0, n_selected=1)", d, w)]}
        if k >= 4:  # Multi-Krum: two selected, one adversary allowed
            d, w = torchjd_direction(Krum(n_byzantine=1, n_selected=2), KrumWeighting(n_byzantine=1, n_selected=2), g)
            m["krum_f1_m2"] = {"refs": [entry("torchjd Krum(n_byzantine=1, n_selected=2)", d, w)]}

        if k >= 3:  # TrimmedMean(trim_number = 1) needs K ≥ 3
            d, _ = torchjd_direction(TrimmedMean(trim_number=1), None, g)
            m["trimmed_mean"] = {"refs": [entry("torchjd TrimmedMean(trim_number=1)", d)]}

        # GradDrop draws U_c with torch.rand; here they are taskgrad's draws
        # uniform(seed 0, step 0, c), so that the fixture fixes what the GPU draws.
        u = torch.tensor([uniform(0, 0, c) for c in range(g.shape[1])], dtype=torch.float64)
        real_rand = torch.rand
        torch.rand = lambda *a, **kw: u.clone()
        try:
            d, _ = torchjd_direction(GradDrop(), None, g)
        finally:
            torch.rand = real_rand
        m["graddrop"] = {"refs": [entry("torchjd GradDrop() (leak 0; torch.rand replaced by taskgrad's "
                                        "draws uniform(0, 0, c))", d)]}

        if not degenerate:  # a zero or repeated row has no α-fair point
            d, w = libmtl_direction(lw.FairGrad, g, {"FairGrad_alpha": 1.0})
            refs = [entry("LibMTL FairGrad (alpha 1; scipy least_squares from 1/K)", d, w)]
            m["fairgrad"] = {
                "refs": refs,
                "exact": entry("(G w)_k = w_k^(-1/α), α = 1, by Newton's method in float64",
                               *fairgrad_exact(g, 1.0)),
            }

        refs = []
        if not degenerate:
            d, _ = libmtl_direction(
                lw.Nash_MTL, g, {"update_weights_every": 1, "optim_niter": 20, "max_norm": 1.0}
            )
            refs.append(entry("LibMTL Nash_MTL (20 CCP iterations by ECOS, max_norm 1, first step)", d))
            d, _ = torchjd_direction(NashMTL(n_tasks=k), None, g)
            refs.append(entry("torchjd NashMTL(n_tasks) (first step)", d))
        m["nash_mtl"] = {
            "refs": refs,
            "exact": entry("α_i (Gα)_i = 1 by Newton's method in float64, clipped to norm 1", *nash_exact(g)),
        }
        for v in m.values():
            if "exact" in v:
                for r in v["refs"]:
                    r["vs_exact"] = rel(r["direction"], v["exact"]["direction"])
        out_cases.append({"name": name, "degenerate": degenerate, "k": k, "p": g.shape[1],
                          "rows": g.reshape(-1).tolist(), "methods": m})

    # Loss-based weightings: the seeds ∂L/∂L_k that LibMTL's backward leaves
    # on the losses themselves (GLS: the geometric mean of the losses).
    gls = []
    for losses in [[1.0, 4.0], [0.7, 2.5, 0.05], [3.0, 3.0, 3.0, 3.0], [1e-6, 10.0, 0.3]]:
        ls = torch.tensor(f32(losses), requires_grad=True)

        class GlsHarness(lw.GLS):
            def __init__(self):
                super().__init__()
                self.task_num = len(losses)
                self.device = torch.device("cpu")
                self.rep_grad = False

        GlsHarness().backward(ls)
        gls.append({"losses": ls.detach().tolist(), "seeds": ls.grad.tolist(),
                    "source": "LibMTL GLS: the gradient of (Π L_k)^{1/K} at the losses"})

    # STCH (mu 1, warm-up 2 epochs here, to keep the sequence short): the
    # seeds ∂L/∂L_k that LibMTL's backward leaves on the losses, for a run of
    # 5 epochs of 3 steps on fixed losses.
    stch_rng = np.random.default_rng(7)
    stch_losses = f32(stch_rng.uniform(0.2, 3.0, size=(5, 3, 3))).tolist()

    class StchHarness(lw.STCH):
        def __init__(self):
            super().__init__()
            self.task_num = 3
            self.device = torch.device("cpu")
            self.rep_grad = False

    h = StchHarness()
    h.init_param()
    stch_seeds = []
    for epoch, steps in enumerate(stch_losses):
        h.epoch = epoch
        per_epoch = []
        for losses in steps:
            ls = torch.tensor(losses, requires_grad=True)
            # (It prints its nadir point: to stderr, not into the fixture.)
            with contextlib.redirect_stdout(sys.stderr):
                h.backward(ls, STCH_mu=1.0, STCH_warmup_epoch=2)
            per_epoch.append(ls.grad.tolist())
        stch_seeds.append(per_epoch)
    stch = {"mu": 1.0, "warmup": 2, "losses": stch_losses, "seeds": stch_seeds,
            "source": "LibMTL STCH (mu 1, STCH_warmup_epoch 2): the gradient at the losses, per step"}

    # DB-MTL: a run of 4 steps, fresh task gradients each step. LibMTL takes
    # the gradients of log(L_k + 1e-8); with L_k = exp(a_k·θ) at θ = 0 (L = 1)
    # those are the rows a_k (times 1/(1 + 1e-8)). θ.grad is zeroed before
    # each step, as the trainer's optimizer.zero_grad() does.
    db_rng = np.random.default_rng(11)
    db_mtl = []
    for k_db, p_db, beta, sigma in [(3, 20, 0.9, 0.0), (2, 12, 0.5, 0.5)]:
        steps = [f32(db_rng.standard_normal((k_db, p_db)) * db_rng.uniform(0.1, 10.0, size=(k_db, 1)))
                 for _ in range(4)]
        theta = torch.zeros(p_db, dtype=torch.float64, requires_grad=True)

        class DbHarness(lw.DB_MTL):
            def __init__(self):
                super().__init__()
                self.task_num = k_db
                self.device = torch.device("cpu")
                self.rep_grad = False
                self.task_name = [f"t{i}" for i in range(k_db)]

            def get_share_params(self):
                return [theta]

            def zero_grad_share_params(self):
                if theta.grad is not None:
                    theta.grad.zero_()

        h = DbHarness()
        h.init_param()
        directions = []
        for rows in steps:
            if theta.grad is not None:
                theta.grad.zero_()
            a = torch.tensor(rows, dtype=torch.float64)
            losses = torch.stack([torch.exp(a[i] @ theta) for i in range(k_db)])
            h.backward(losses, DB_beta=beta, DB_beta_sigma=sigma)
            directions.append(theta.grad.detach().numpy().tolist())
        db_mtl.append({"k": k_db, "p": p_db, "beta": beta, "sigma": sigma,
                       "steps": [r.reshape(-1).tolist() for r in steps], "directions": directions,
                       "source": f"LibMTL DB_MTL (DB_beta {beta}, DB_beta_sigma {sigma}), 4 steps; "
                                 "its gradient buffers are float32 (torch.zeros)"})

    # MoCo: a run of 4 steps with given losses and task gradients: L_k =
    # ℓ_k + a_k·θ at θ = 0 has the value ℓ_k and the gradient a_k.
    moco_rng = np.random.default_rng(13)
    moco = []
    for k_mc, p_mc, kw in [
        (3, 20, {"MoCo_beta": 0.5, "MoCo_beta_sigma": 0.5, "MoCo_gamma": 0.1, "MoCo_gamma_sigma": 0.5, "MoCo_rho": 0.0}),
        (2, 12, {"MoCo_beta": 0.9, "MoCo_beta_sigma": 0.0, "MoCo_gamma": 2.0, "MoCo_gamma_sigma": 1.0, "MoCo_rho": 0.3}),
    ]:
        steps = [f32(moco_rng.standard_normal((k_mc, p_mc)) * moco_rng.uniform(0.1, 10.0, size=(k_mc, 1)))
                 for _ in range(4)]
        step_losses = [f32(moco_rng.uniform(0.1, 3.0, size=k_mc)) for _ in range(4)]
        theta = torch.zeros(p_mc, dtype=torch.float64, requires_grad=True)

        class MoCoHarness(lw.MoCo):
            def __init__(self):
                super().__init__()
                self.task_num = k_mc
                self.device = torch.device("cpu")
                self.rep_grad = False
                self.task_name = [f"t{i}" for i in range(k_mc)]

            def get_share_params(self):
                return [theta]

            def zero_grad_share_params(self):
                if theta.grad is not None:
                    theta.grad.zero_()

        h = MoCoHarness()
        h.init_param()
        h.y = h.y.double()
        h.lambd = h.lambd.double()
        directions, weights = [], []
        for rows, ls in zip(steps, step_losses):
            if theta.grad is not None:
                theta.grad.zero_()
            a = torch.tensor(rows, dtype=torch.float64)
            losses = torch.stack([float(ls[i]) + a[i] @ theta for i in range(k_mc)])
            lam = h.backward(losses, **kw)
            directions.append(theta.grad.detach().numpy().tolist())
            weights.append([float(v) for v in lam])
        moco.append({"k": k_mc, "p": p_mc, "beta": kw["MoCo_beta"], "sigma": kw["MoCo_beta_sigma"],
                     "gamma": kw["MoCo_gamma"], "gamma_sigma": kw["MoCo_gamma_sigma"], "rho": kw["MoCo_rho"],
                     "steps": [r.reshape(-1).tolist() for r in steps],
                     "losses": [l.tolist() for l in step_losses],
                     "directions": directions, "weights": weights,
                     "source": "LibMTL MoCo ({}), 4 steps; its gradient buffers are float32, y and λ float64".format(
                         ", ".join(f"{n.split('_', 1)[1]} {v}" for n, v in kw.items()))})

    # ExcessMTL: a run of 5 steps with given losses and task gradients, as
    # MoCo's (L_k = ℓ_k + a_k·θ at θ = 0); the step size is raised from
    # LibMTL's 0.01 to 0.05 in the second run so that the weights move visibly.
    ex_rng = np.random.default_rng(17)
    excess = []
    for k_ex, p_ex, eta in [(3, 20, 0.01), (4, 16, 0.05)]:
        steps = [f32(ex_rng.standard_normal((k_ex, p_ex)) * ex_rng.uniform(0.1, 10.0, size=(k_ex, 1)))
                 for _ in range(5)]
        step_losses = [f32(ex_rng.uniform(0.1, 3.0, size=k_ex)) for _ in range(5)]
        encoder = torch.nn.Module()
        encoder.theta = torch.nn.Parameter(torch.zeros(p_ex, dtype=torch.float64))

        class ExcessHarness(lw.ExcessMTL):
            def __init__(self):
                super().__init__()
                self.task_num = k_ex
                self.device = torch.device("cpu")
                self.rep_grad = False
                self.task_name = [f"t{i}" for i in range(k_ex)]
                self.encoder = encoder

            def get_share_params(self):
                return [encoder.theta]

            def zero_grad_share_params(self):
                encoder.zero_grad()

        h = ExcessHarness()
        h.init_param()
        directions, weights = [], []
        for rows, ls in zip(steps, step_losses):
            encoder.zero_grad()
            a = torch.tensor(rows, dtype=torch.float64)
            losses = torch.stack([float(ls[i]) + a[i] @ encoder.theta for i in range(k_ex)])
            lam = h.backward(losses, robust_step_size=eta)
            directions.append(encoder.theta.grad.detach().numpy().tolist())
            weights.append([float(v) for v in lam])
        excess.append({"k": k_ex, "p": p_ex, "beta": eta, "sigma": 0.0,
                       "steps": [r.reshape(-1).tolist() for r in steps],
                       "losses": [l.tolist() for l in step_losses],
                       "directions": directions, "weights": weights,
                       "source": f"LibMTL ExcessMTL (robust_step_size {eta}), 5 steps; its gradients "
                                 "and sums of squares are float32"})

    # MoDo and SDMGrad: runs of 4 steps, each step three minibatches' task
    # gradients (losses [3, K], L_sk = a_sk·θ, whose gradients are the rows
    # a_sk), as LibMTL's trainer hands them over. LibMTL's SDMGrad calls
    # np.alltrue, which numpy 2 removed; np.all is the same function.
    if not hasattr(np, "alltrue"):
        np.alltrue = np.all
    three_rng = np.random.default_rng(19)
    three = {"modo": [], "sdmgrad": []}
    for method, k_t, p_t, kw in [
        ("modo", 3, 20, {"MoDo_gamma": 1e-3, "MoDo_rho": 0.1}),
        ("modo", 2, 12, {"MoDo_gamma": 0.004, "MoDo_rho": 0.3}),
        ("sdmgrad", 3, 20, {"SDMGrad_lamda": 0.3, "SDMGrad_niter": 20}),
        ("sdmgrad", 2, 12, {"SDMGrad_lamda": 0.8, "SDMGrad_niter": 5}),
        # Nearly parallel rows: the inner steps (rate 5) stay inside the simplex.
        ("sdmgrad", 3, 16, {"SDMGrad_lamda": 0.3, "SDMGrad_niter": 20}),
    ]:
        steps = [f32(three_rng.standard_normal((3 * k_t, p_t))
                     * three_rng.uniform(0.1, 10.0, size=(3 * k_t, 1))) for _ in range(4)]
        if p_t == 16:
            common = three_rng.standard_normal(p_t)
            steps = [f32(common + 0.05 * three_rng.standard_normal((3 * k_t, p_t))) for _ in range(4)]
        theta = torch.zeros(p_t, dtype=torch.float64, requires_grad=True)
        base = lw.MoDo if method == "modo" else lw.SDMGrad

        class ThreeHarness(base):
            def __init__(self):
                super().__init__()
                self.task_num = k_t
                self.device = torch.device("cpu")
                self.rep_grad = False
                self.task_name = [f"t{i}" for i in range(k_t)]
                self.decoders = {}

            def get_share_params(self):
                return [theta]

            def zero_grad_share_params(self):
                if theta.grad is not None:
                    theta.grad.zero_()

        h = ThreeHarness()
        h.init_param()
        directions, weights = [], []
        for rows in steps:
            if theta.grad is not None:
                theta.grad.zero_()
            a = torch.tensor(rows, dtype=torch.float64).reshape(3, k_t, p_t)
            losses = torch.stack([torch.stack([a[s, i] @ theta for i in range(k_t)]) for s in range(3)])
            h.backward(losses, **kw)
            directions.append(theta.grad.detach().numpy().tolist())
            lam = h.lambd if method == "modo" else h.w
            weights.append([float(v) for v in lam.detach()])
        entry = {"k": k_t, "p": p_t, "steps": [r.reshape(-1).tolist() for r in steps],
                 "directions": directions, "weights": weights,
                 "source": "LibMTL {} ({}), 4 steps of three minibatches".format(
                     base.__name__, ", ".join(f"{n.split('_', 1)[1]} {v}" for n, v in kw.items()))}
        if method == "modo":
            entry.update(gamma=kw["MoDo_gamma"], rho=kw["MoDo_rho"])
        else:
            entry.update(lambda_=kw["SDMGrad_lamda"], iters=kw["SDMGrad_niter"])
        three[method].append(entry)

    fixture = {
        "made_by": "scripts/fidelity_fixtures.py",
        "provenance": {
            "libmtl_commit": libmtl_commit,
            "torchjd": version("torchjd"),
            "torch": torch.__version__,
            "scipy": scipy.__version__,
            "cvxpy": cvxpy.__version__,
            "numpy": np.__version__,
            "dtype": "float64 on float32-representable inputs",
            "cagrad_c": c,
        },
        "cases": out_cases,
        "gls": gls,
        "db_mtl": db_mtl,
        "moco": moco,
        "excess_mtl": excess,
        "modo": three["modo"],
        "sdmgrad": three["sdmgrad"],
        "stch": stch,
    }
    text = json.dumps(fixture, indent=1)
    # One line per list of numbers.
    text = re.sub(r"\[\s+([-0-9.e+,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
