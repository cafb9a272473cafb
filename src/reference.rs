//! Plain-loop CPU versions of every kernel: the readable statement of the math
//! and the oracle for the GPU tests. Generic over f32 and f64 (f64 for
//! finite-difference gradient checks). Layouts match the kernels: row-major.

/// The float operations the reference needs.
pub trait Real:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
{
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn zero() -> Self {
        Self::from_f64(0.0)
    }
    fn one() -> Self {
        Self::from_f64(1.0)
    }
    fn max(self, o: Self) -> Self {
        if o > self {
            o
        } else {
            self
        }
    }
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
        }
    };
}
impl_real!(f32);
impl_real!(f64);

/// C (M×N) = op(A)·op(B) [+ bias] [relu]. A is M×K (or K×M if `trans_a`),
/// B is K×N (or N×K if `trans_b`).
///
/// ```
/// // [1 2]   [5 6]   [19 22]
/// // [3 4] · [7 8] = [43 50]
/// let c = taskgrad::reference::matmul(&[1.0, 2., 3., 4.], &[5.0, 6., 7., 8.], 2, 2, 2, false, false, None, false);
/// assert_eq!(c, vec![19.0, 22., 43., 50.]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Real>(
    a: &[T],
    b: &[T],
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    bias: Option<&[T]>,
    relu: bool,
) -> Vec<T> {
    let mut c = vec![T::zero(); m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::zero();
            for p in 0..k {
                let av = if trans_a { a[p * m + i] } else { a[i * k + p] };
                let bv = if trans_b { b[j * k + p] } else { b[p * n + j] };
                acc += av * bv;
            }
            if let Some(bias) = bias {
                acc += bias[j];
            }
            if relu {
                acc = acc.max(T::zero());
            }
            c[i * n + j] = acc;
        }
    }
    c
}

/// y = max(x, 0)
pub fn relu<T: Real>(x: &[T]) -> Vec<T> {
    x.iter().map(|&v| v.max(T::zero())).collect()
}

/// dx = dy · \[y > 0\], y the forward output.
pub fn relu_backward<T: Real>(dy: &[T], y: &[T]) -> Vec<T> {
    dy.iter()
        .zip(y)
        .map(|(&d, &v)| if v > T::zero() { d } else { T::zero() })
        .collect()
}

/// tanh through exp, for any [`Real`]: 1 - 2 / (e^{2x} + 1).
fn tanh_of<T: Real>(v: T) -> T {
    let x = v.to_f64().clamp(-15.0, 15.0);
    T::from_f64(1.0 - 2.0 / ((2.0 * x).exp() + 1.0))
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_C: f64 = 0.044715;

/// GELU, tanh form: y = ½ x (1 + tanh u), u = √(2/π) (x + 0.044715 x³).
pub fn gelu<T: Real>(x: &[T]) -> Vec<T> {
    x.iter()
        .map(|&v| {
            let u = T::from_f64(SQRT_2_OVER_PI) * (v + T::from_f64(GELU_C) * v * v * v);
            T::from_f64(0.5) * v * (T::one() + tanh_of(u))
        })
        .collect()
}

/// dx = dy · (½ (1 + tanh u) + ½ x (1 - tanh² u) √(2/π) (1 + 3·0.044715 x²)), x the forward input.
pub fn gelu_backward<T: Real>(dy: &[T], x: &[T]) -> Vec<T> {
    dy.iter()
        .zip(x)
        .map(|(&d, &v)| {
            let c = T::from_f64(GELU_C);
            let s = T::from_f64(SQRT_2_OVER_PI);
            let t = tanh_of(s * (v + c * v * v * v));
            let du = s * (T::one() + T::from_f64(3.0) * c * v * v);
            let half = T::from_f64(0.5);
            d * (half * (T::one() + t) + half * v * (T::one() - t * t) * du)
        })
        .collect()
}

/// y = tanh(x)
pub fn tanh<T: Real>(x: &[T]) -> Vec<T> {
    x.iter().map(|&v| tanh_of(v)).collect()
}

/// σ(x) = 1/(1 + e^(−x)), elementwise (from e^(−|x|), as the kernel).
pub fn sigmoid<T: Real>(x: &[T]) -> Vec<T> {
    x.iter()
        .map(|&v| {
            let e = (T::zero() - if v >= T::zero() { v } else { T::zero() - v }).exp();
            if v >= T::zero() {
                T::one() / (T::one() + e)
            } else {
                e / (T::one() + e)
            }
        })
        .collect()
}

/// dx = dy · (1 - y²), y the forward output.
pub fn tanh_backward<T: Real>(dy: &[T], y: &[T]) -> Vec<T> {
    dy.iter()
        .zip(y)
        .map(|(&d, &v)| d * (T::one() - v * v))
        .collect()
}

/// out\[j\] = Σ_r x[r, j], x is rows×cols.
pub fn sum_rows<T: Real>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::zero(); cols];
    for r in 0..rows {
        for j in 0..cols {
            out[j] += x[r * cols + j];
        }
    }
    out
}

/// Σ_i x\[i\]
///
/// ```
/// assert_eq!(taskgrad::reference::sum_all(&[1.0f64, 2.0, 3.5]), 6.5);
/// ```
pub fn sum_all<T: Real>(x: &[T]) -> T {
    let mut s = T::zero();
    for &v in x {
        s += v;
    }
    s
}

/// y = alpha · x
pub fn scale<T: Real>(x: &[T], alpha: T) -> Vec<T> {
    x.iter().map(|&v| alpha * v).collect()
}

/// y = a + b
pub fn add<T: Real>(a: &[T], b: &[T]) -> Vec<T> {
    a.iter().zip(b).map(|(&u, &v)| u + v).collect()
}

/// y + alpha · x
pub fn axpy<T: Real>(alpha: T, x: &[T], y: &[T]) -> Vec<T> {
    x.iter().zip(y).map(|(&u, &v)| v + alpha * u).collect()
}

/// dst[:, dst_offset..+width] = src[:, src_offset..+width] (both row-major,
/// `rows` rows; src has `src_cols` columns, dst `dst_cols`).
#[allow(clippy::too_many_arguments)]
pub fn copy_columns<T: Real>(
    src: &[T],
    src_cols: usize,
    src_offset: usize,
    dst: &mut [T],
    dst_cols: usize,
    dst_offset: usize,
    rows: usize,
    width: usize,
) {
    for b in 0..rows {
        for j in 0..width {
            dst[b * dst_cols + dst_offset + j] = src[b * src_cols + src_offset + j];
        }
    }
}

/// The gate of a mixture of experts: the softmax of each row of x (B×E).
pub fn gate<T: Real>(x: &[T], rows: usize, experts: usize) -> Vec<T> {
    let mut g = vec![T::zero(); rows * experts];
    for r in 0..rows {
        let row = &x[r * experts..(r + 1) * experts];
        let m = row.iter().copied().fold(row[0], T::max);
        let mut s = T::zero();
        for &v in row {
            s += (v - m).exp();
        }
        for (e, &v) in row.iter().enumerate() {
            g[r * experts + e] = (v - m).exp() / s;
        }
    }
    g
}

/// The gate's backward: dx = g ⊙ (dg - rowsum(g ⊙ dg)).
pub fn gate_backward<T: Real>(g: &[T], dg: &[T], rows: usize, experts: usize) -> Vec<T> {
    let mut dx = vec![T::zero(); rows * experts];
    for r in 0..rows {
        let at = r * experts;
        let mut dot = T::zero();
        for e in 0..experts {
            dot += g[at + e] * dg[at + e];
        }
        for e in 0..experts {
            dx[at + e] = g[at + e] * (dg[at + e] - dot);
        }
    }
    dx
}

/// DSelect-k's gate (B×E) from logits x (B×(k·m + k)), γ = 1, as
/// shaders/gate.wgsl's `dselect`.
pub fn dselect<T: Real>(x: &[T], rows: usize, experts: usize, selected: usize) -> Vec<T> {
    let bits = experts.trailing_zeros() as usize;
    let width = selected * bits + selected;
    let step = |t: T| {
        let t = t.to_f64();
        T::from_f64(if t <= -0.5 {
            0.0
        } else if t >= 0.5 {
            1.0
        } else {
            -2.0 * t * t * t + 1.5 * t + 0.5
        })
    };
    let mut g = vec![T::zero(); rows * experts];
    for b in 0..rows {
        let row = &x[b * width..(b + 1) * width];
        let alpha = gate(&row[selected * bits..], 1, selected);
        for e in 0..experts {
            for (i, &a) in alpha.iter().enumerate() {
                let mut r = T::from_f64(1.0);
                for j in 0..bits {
                    let s = step(row[i * bits + j]);
                    r = r * if (e >> (bits - 1 - j)) & 1 == 1 {
                        s
                    } else {
                        T::from_f64(1.0) - s
                    };
                }
                g[b * experts + e] += a * r;
            }
        }
    }
    g
}

/// The gated mixture: out\[b,h\] = Σ_e g\[b,e\] · z[b, e·H + h]; g is B×E, z B×(E·H).
pub fn mixture<T: Real>(g: &[T], z: &[T], rows: usize, experts: usize, width: usize) -> Vec<T> {
    let mut out = vec![T::zero(); rows * width];
    for b in 0..rows {
        for e in 0..experts {
            let ge = g[b * experts + e];
            for h in 0..width {
                out[b * width + h] += ge * z[(b * experts + e) * width + h];
            }
        }
    }
    out
}

/// The mixture's backward: (dg, dz) with dz\[b,e,h\] = g\[b,e\] dout\[b,h\] and
/// dg\[b,e\] = Σ_h z\[b,e,h\] dout\[b,h\].
pub fn mixture_backward<T: Real>(
    g: &[T],
    z: &[T],
    dout: &[T],
    rows: usize,
    experts: usize,
    width: usize,
) -> (Vec<T>, Vec<T>) {
    let mut dg = vec![T::zero(); rows * experts];
    let mut dz = vec![T::zero(); rows * experts * width];
    for b in 0..rows {
        for e in 0..experts {
            let i = b * experts + e;
            for h in 0..width {
                let d = dout[b * width + h];
                dz[i * width + h] = g[i] * d;
                dg[i] += z[i * width + h] * d;
            }
        }
    }
    (dg, dz)
}

/// Result of the fused softmax cross-entropy.
pub struct SoftmaxCe<T> {
    pub loss: T,
    pub loss_rows: Vec<T>,
    pub dlogits: Vec<T>,
}

/// Softmax cross-entropy of logits (B×C) against labels, rows with mask ≤ 0.5
/// (or a label ≥ C) ignored; mean over valid rows; dlogits scaled by `scale / n_valid`.
pub fn softmax_ce<T: Real>(
    logits: &[T],
    labels: &[u32],
    mask: &[T],
    b: usize,
    c: usize,
    scale: T,
) -> SoftmaxCe<T> {
    let half = T::from_f64(0.5);
    let valid = |r: usize| mask[r] > half && (labels[r] as usize) < c;
    let n_valid = (0..b).filter(|&r| valid(r)).count();
    let inv = if n_valid > 0 {
        T::one() / T::from_f64(n_valid as f64)
    } else {
        T::zero()
    };
    let mut loss_rows = vec![T::zero(); b];
    let mut dlogits = vec![T::zero(); b * c];
    let mut total = T::zero();
    for r in 0..b {
        if !valid(r) {
            continue;
        }
        let z = &logits[r * c..(r + 1) * c];
        let zmax = z.iter().copied().fold(z[0], T::max);
        let mut sum = T::zero();
        for &v in z {
            sum += (v - zmax).exp();
        }
        let lse = zmax + sum.ln();
        let y = labels[r] as usize;
        loss_rows[r] = lse - z[y];
        total += loss_rows[r];
        for j in 0..c {
            let onehot = if j == y { T::one() } else { T::zero() };
            dlogits[r * c + j] = ((z[j] - lse).exp() - onehot) * scale * inv;
        }
    }
    SoftmaxCe {
        loss: total * inv,
        loss_rows,
        dlogits,
    }
}

/// The shape every fused elementwise loss shares: the mean of `per(i)`'s
/// loss over the entries of rows with mask > 0.5 (B×T), and the gradient
/// `per(i)`'s derivative · scale / (n_valid · T) there, zero elsewhere.
pub fn masked_mean_loss<T: Real>(
    mask: &[T],
    b: usize,
    t: usize,
    scale: T,
    per: impl Fn(usize) -> (T, T),
) -> (T, Vec<T>) {
    let half = T::from_f64(0.5);
    let n_valid = (0..b).filter(|&r| mask[r] > half).count();
    let denom = (n_valid * t) as f64;
    let inv = if denom > 0.0 {
        T::one() / T::from_f64(denom)
    } else {
        T::zero()
    };
    let mut grad = vec![T::zero(); b * t];
    let mut total = T::zero();
    for (r, &m) in mask.iter().enumerate().take(b) {
        if m <= half {
            continue;
        }
        for j in 0..t {
            let i = r * t + j;
            let (loss, d) = per(i);
            total += loss;
            grad[i] = d * scale * inv;
        }
    }
    (total * inv, grad)
}

/// Mean squared error over valid rows of pred and target (B×T); dpred scaled by `scale`.
pub fn mse<T: Real>(
    pred: &[T],
    target: &[T],
    mask: &[T],
    b: usize,
    t: usize,
    scale: T,
) -> (T, Vec<T>) {
    masked_mean_loss(mask, b, t, scale, |i| {
        let e = pred[i] - target[i];
        (e * e, T::from_f64(2.0) * e)
    })
}

/// Embedding lookup: row b of the result is `table[index[b]]` (L×dim), zeros
/// for an index outside 0..L (an unseen or missing level).
pub fn embedding<T: Real>(index: &[i64], table: &[T], levels: usize, dim: usize) -> Vec<T> {
    let mut out = vec![T::zero(); index.len() * dim];
    for (b, &i) in index.iter().enumerate() {
        if (0..levels as i64).contains(&i) {
            let i = i as usize;
            out[b * dim..(b + 1) * dim].copy_from_slice(&table[i * dim..(i + 1) * dim]);
        }
    }
    out
}

/// The backward of [`embedding`]: dtable\[l\] = Σ_{b: index\[b\] = l} dy\[b\] (L×dim).
pub fn embedding_backward<T: Real>(index: &[i64], dy: &[T], levels: usize, dim: usize) -> Vec<T> {
    let mut d = vec![T::zero(); levels * dim];
    for (b, &i) in index.iter().enumerate() {
        if (0..levels as i64).contains(&i) {
            for k in 0..dim {
                d[i as usize * dim + k] += dy[b * dim + k];
            }
        }
    }
    d
}

/// Gram matrix `G[i][j] = Σ_c g[i, c] g[j, c]` of K rows of length n, `stride` apart (K×K, row-major).
pub fn gram<T: Real>(g: &[T], k: usize, n: usize, stride: usize) -> Vec<T> {
    let mut out = vec![T::zero(); k * k];
    for i in 0..k {
        for j in 0..k {
            let mut s = T::zero();
            for c in 0..n {
                s += g[i * stride + c] * g[j * stride + c];
            }
            out[i * k + j] = s;
        }
    }
    out
}

/// out\[c\] = Σ_k w\[k\] g[k, c]
pub fn combine<T: Real>(g: &[T], w: &[T], n: usize, stride: usize) -> Vec<T> {
    (0..n)
        .map(|c| {
            let mut s = T::zero();
            for (k, &wk) in w.iter().enumerate() {
                s += wk * g[k * stride + c];
            }
            s
        })
        .collect()
}

/// im2col over NHWC images (shaders/im2col.wgsl): row (b·OH + oh)·OW + ow of
/// the result is the K×K×C patch that output pixel reads, zeros outside.
pub fn im2col<T: Real>(x: &[T], g: &crate::kernels::im2col::ConvGeometry) -> Vec<T> {
    let (oh_n, ow_n, patch) = (g.out_h(), g.out_w(), g.patch());
    let mut cols = vec![T::zero(); g.rows() * patch];
    for b in 0..g.batch {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let r = (b * oh_n + oh) * ow_n + ow;
                for kh in 0..g.kernel {
                    for kw in 0..g.kernel {
                        let ih = (oh * g.stride + kh) as isize - g.pad as isize;
                        let iw = (ow * g.stride + kw) as isize - g.pad as isize;
                        if ih < 0 || iw < 0 || ih >= g.height as isize || iw >= g.width as isize {
                            continue;
                        }
                        for c in 0..g.channels {
                            let xi = ((b * g.height + ih as usize) * g.width + iw as usize)
                                * g.channels
                                + c;
                            cols[r * patch + (kh * g.kernel + kw) * g.channels + c] = x[xi];
                        }
                    }
                }
            }
        }
    }
    cols
}

/// The adjoint of [`im2col`]: each patch entry added back to the pixel it came from.
pub fn col2im<T: Real>(cols: &[T], g: &crate::kernels::im2col::ConvGeometry) -> Vec<T> {
    let (oh_n, ow_n, patch) = (g.out_h(), g.out_w(), g.patch());
    let mut dx = vec![T::zero(); g.image_len()];
    for b in 0..g.batch {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let r = (b * oh_n + oh) * ow_n + ow;
                for kh in 0..g.kernel {
                    for kw in 0..g.kernel {
                        let ih = (oh * g.stride + kh) as isize - g.pad as isize;
                        let iw = (ow * g.stride + kw) as isize - g.pad as isize;
                        if ih < 0 || iw < 0 || ih >= g.height as isize || iw >= g.width as isize {
                            continue;
                        }
                        for c in 0..g.channels {
                            let xi = ((b * g.height + ih as usize) * g.width + iw as usize)
                                * g.channels
                                + c;
                            dx[xi] += cols[r * patch + (kh * g.kernel + kw) * g.channels + c];
                        }
                    }
                }
            }
        }
    }
    dx
}

/// A direct 2-D convolution over NHWC images (the definition, no im2col):
///
/// ```text
/// y[b, oh, ow, o] = bias[o] + Σ_{kh, kw, c} x[b, oh·S − P + kh, ow·S − P + kw, c] · w[(kh·K + kw)·C + c, o]
/// ```
///
/// with zeros outside the image; y is (B·OH·OW) × O.
pub fn conv2d<T: Real>(
    x: &[T],
    w: &[T],
    bias: &[T],
    g: &crate::kernels::im2col::ConvGeometry,
    out: usize,
) -> Vec<T> {
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    let mut y = vec![T::zero(); g.rows() * out];
    for b in 0..g.batch {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let r = (b * oh_n + oh) * ow_n + ow;
                for o in 0..out {
                    let mut acc = bias[o];
                    for kh in 0..g.kernel {
                        for kw in 0..g.kernel {
                            let ih = (oh * g.stride + kh) as isize - g.pad as isize;
                            let iw = (ow * g.stride + kw) as isize - g.pad as isize;
                            if ih < 0 || iw < 0 || ih >= g.height as isize || iw >= g.width as isize
                            {
                                continue;
                            }
                            for c in 0..g.channels {
                                let xi = ((b * g.height + ih as usize) * g.width + iw as usize)
                                    * g.channels
                                    + c;
                                acc += x[xi] * w[((kh * g.kernel + kw) * g.channels + c) * out + o];
                            }
                        }
                    }
                    y[r * out + o] = acc;
                }
            }
        }
    }
    y
}

/// The windows of a pooling over NHWC images: for each output (b, oh, ow, c)
/// in order, the flat indices in x of its K×K window (row-major).
fn pool_windows(g: &crate::kernels::im2col::ConvGeometry) -> Vec<Vec<usize>> {
    let mut all = Vec::new();
    for b in 0..g.batch {
        for oh in 0..g.out_h() {
            for ow in 0..g.out_w() {
                for c in 0..g.channels {
                    let mut window = Vec::new();
                    for kh in 0..g.kernel {
                        for kw in 0..g.kernel {
                            let (ih, iw) = (oh * g.stride + kh, ow * g.stride + kw);
                            window.push(((b * g.height + ih) * g.width + iw) * g.channels + c);
                        }
                    }
                    all.push(window);
                }
            }
        }
    }
    all
}

/// Max pooling (shaders/maxpool.wgsl): each window's maximum and its index
/// in x (the first on ties).
pub fn max_pool<T: Real>(x: &[T], g: &crate::kernels::im2col::ConvGeometry) -> (Vec<T>, Vec<u32>) {
    pool_windows(g)
        .into_iter()
        .map(|w| {
            let best = w
                .iter()
                .copied()
                .fold(w[0], |best, i| if x[i] > x[best] { i } else { best });
            (x[best], best as u32)
        })
        .unzip()
}

/// Max pooling's backward: each output's gradient to its argmax.
pub fn max_pool_backward<T: Real>(dy: &[T], arg: &[u32], len: usize) -> Vec<T> {
    let mut dx = vec![T::zero(); len];
    for (o, &i) in arg.iter().enumerate() {
        dx[i as usize] += dy[o];
    }
    dx
}

/// Average pooling (shaders/avgpool.wgsl): each window's mean.
pub fn avg_pool<T: Real>(x: &[T], g: &crate::kernels::im2col::ConvGeometry) -> Vec<T> {
    let k2 = T::from_f64((g.kernel * g.kernel) as f64);
    pool_windows(g)
        .into_iter()
        .map(|w| {
            let mut s = T::zero();
            for i in w {
                s += x[i];
            }
            s / k2
        })
        .collect()
}

/// Average pooling's backward: each output's gradient spread over its window.
pub fn avg_pool_backward<T: Real>(dy: &[T], g: &crate::kernels::im2col::ConvGeometry) -> Vec<T> {
    let k2 = T::from_f64((g.kernel * g.kernel) as f64);
    let mut dx = vec![T::zero(); g.image_len()];
    for (o, w) in pool_windows(g).into_iter().enumerate() {
        for i in w {
            dx[i] += dy[o] / k2;
        }
    }
    dx
}
