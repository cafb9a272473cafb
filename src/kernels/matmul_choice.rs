//! Which matmul kernel, with which workgroup shape, an adapter runs fastest:
//! a short timed search at first use, cached on the [`Gpu`] and on disk.
//!
//! The search times each candidate [`REPS`] times (after a warm-up run, the
//! candidates' runs interleaved round by round) and keeps its fastest run:
//! - the register-blocked kernel's workgroup shapes ([`CANDIDATES`]) on a 64³
//!   and a 256³ product, scoring each by its time relative to the best at each
//!   size; a shape replaces the default (8, 8) only when it scores at least
//!   [`MARGIN`] better, so noise does not flip the choice from run to run;
//! - for small products, the register kernel (that shape, fitted to each
//!   output) against the rows kernels ([`super::matmul::rows_for`]) on a
//!   small network's two products, a 128×64·64×64 hidden layer and a
//!   128×64·64×4 head, scored the same way; the rows kernels replace the
//!   register kernel only when they score at least [`MARGIN`] better (on
//!   Mesa's llvmpipe they are taken without a search, see `llvmpipe` below);
//! - for large products, the register-blocked kernel against the block-tiled
//!   ones (16- and 32-wide k-slices where the adapter's workgroup memory
//!   allows, 16×16 and 8×8 workgroups) on one product of 512³ (software adapters)
//!   or 2048³ (hardware); again the register kernel keeps its place unless
//!   beaten by [`MARGIN`].
//!
//! The result is written to `matmul-choice.json` in `TASKGRAD_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/taskgrad`, else `~/.cache/taskgrad`, under a key naming
//! the adapter, its driver and backend, this crate's version and a hash of
//! the kernels' sources; a later
//! process on the same adapter reads it back instead of searching. The cache
//! is only a cache: a file that cannot be read or written is ignored.
//!
//! In a browser (wasm32) there is no search: see [`MatmulChoice::default`].
#![cfg_attr(target_arch = "wasm32", allow(dead_code, unused_imports))]

use std::collections::BTreeMap;
use std::path::PathBuf;
use web_time::Instant;

use super::matmul::{
    fit_to_output, matmul_kernel, rows_for, MatmulChoice, MatmulKernel, MatmulOptions, CANDIDATES,
};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, Tensor};

/// Timed runs per candidate (the fastest counts: noise only ever adds time).
pub const REPS: usize = 9;
/// How much faster a challenger must be than the incumbent to replace it.
pub const MARGIN: f64 = 0.10;
/// Bumped when the search changes, so old cache entries are ignored (a change
/// to a kernel's source changes the key by itself: see [`cache_key`]).
const SEARCH_VERSION: u32 = 6;

/// How this adapter's matmul choice was made: searched now (and how long
/// that took) or read from the cache, and where the cache is.
#[derive(Clone, Debug)]
pub struct Tuning {
    pub choice: MatmulChoice,
    /// True when this process ran the timed search (the first run on an adapter).
    pub searched: bool,
    /// Seconds the search (or the cache lookup) took.
    pub seconds: f64,
    /// The cache file (None where there is no home or cache directory).
    pub cache: Option<PathBuf>,
}

impl Tuning {
    /// One line for a front end to print before training, when the search
    /// ran: `tuning the matmul for <adapter> (once, cached in <dir>): N s`.
    pub fn announcement(&self, gpu: &Gpu) -> Option<String> {
        let place = match &self.cache {
            Some(path) => format!(
                "once, cached in {}",
                path.parent().unwrap_or(path).display()
            ),
            None => "no cache directory: again next run".to_string(),
        };
        self.searched.then(|| {
            format!(
                "tuning the matmul for {} ({place}): {:.2} s",
                gpu.report.name, self.seconds
            )
        })
    }
}

/// The choice for this adapter, and how it was made: cached on the `Gpu`,
/// else read from disk, else searched (at most a few seconds, once per
/// adapter). Front ends call this before training so that the search is a
/// step of its own, announced and timed apart ([`Tuning::announcement`]);
/// otherwise the first product that needs it runs it.
/// `TASKGRAD_MATMUL_WG=WxH` fixes the register kernel's shape.
pub fn tuning(gpu: &Gpu) -> Result<Tuning> {
    gpu.memo("matmul tuning", || {
        let clock = Instant::now();
        let (choice, searched) = choose(gpu)?;
        Ok(Tuning {
            choice,
            searched,
            seconds: clock.elapsed().as_secs_f64(),
            cache: cache_file(gpu),
        })
    })
}

/// The choice for this adapter ([`tuning`]'s).
pub fn choice(gpu: &Gpu) -> Result<MatmulChoice> {
    Ok(tuning(gpu)?.choice)
}

/// In a browser nothing may wait for the GPU, so there is no timed search:
/// the register-blocked kernel with its default shape for every product.
#[cfg(target_arch = "wasm32")]
fn choose(_gpu: &Gpu) -> Result<(MatmulChoice, bool)> {
    Ok((MatmulChoice::default(), false))
}

/// The choice, and whether it was searched (rather than read from the cache).
#[cfg(not(target_arch = "wasm32"))]
fn choose(gpu: &Gpu) -> Result<(MatmulChoice, bool)> {
    let fixed_wg = gpu.env.matmul_wg;
    let (mut c, searched) = match load_cached(gpu) {
        Some(c) => (c, false),
        None => {
            let c = search(gpu, fixed_wg)?;
            store_cached(gpu, &c);
            (c, true)
        }
    };
    if let Some(wg) = fixed_wg {
        c.register_wg = wg;
    }
    Ok((c, searched))
}

/// The register-blocked kernel's workgroup shape on this adapter.
pub fn workgroup(gpu: &Gpu) -> Result<(u32, u32)> {
    Ok(choice(gpu)?.register_wg)
}

fn search(gpu: &Gpu, fixed_wg: Option<(u32, u32)>) -> Result<MatmulChoice> {
    let register_wg = match fixed_wg {
        Some(wg) => wg,
        None => search_register_wg(gpu)?,
    };
    let n = if gpu.report.device_type == wgpu::DeviceType::Cpu {
        512
    } else {
        2048
    };
    let mut contenders = vec![(MatmulKernel::Register, register_wg)];
    for kernel in [MatmulKernel::Tiled, MatmulKernel::Tiled32] {
        if !kernel.fits(gpu) {
            continue;
        }
        for wg in [(16, 16), (8, 8)] {
            if fits(gpu, wg) {
                contenders.push((kernel, wg));
            }
        }
    }
    let (a, b, c) = operands(gpu, n)?;
    let ds = contenders
        .iter()
        .map(|&(kernel, wg)| matmul_kernel(gpu, &a, &b, &c, MatmulOptions::default(), kernel, wg))
        .collect::<Result<Vec<_>>>()?;
    let times = best_times(gpu, &ds)?;
    let (large, large_wg) = contenders[pick(&times)];
    Ok(MatmulChoice {
        register_wg,
        rows: llvmpipe(gpu) || search_rows(gpu, register_wg)?,
        unrolled: llvmpipe(gpu),
        lanes: llvmpipe(gpu) && super::matmul_lanes::subgroup_size(gpu).is_some(),
        large,
        large_wg,
    })
}

/// Mesa's llvmpipe (lavapipe on Vulkan, llvmpipe on GL) takes the rows
/// kernels, and the written-out kernel for the products small enough for
/// it, without a search: it compiles every load in a loop to a loop over the
/// SIMD lanes, so loads per multiply-add set the speed, and the rows kernels
/// make fewer (1.35-1.7× on W-iris's 64-wide products, up to 1.3× on its
/// heads: BENCHMARKS.md, "The rows kernels"); the written-out kernel has no
/// loop at all (`super::matmul_unrolled`; 1.4–2.1× faster again on W-iris's
/// heads, "The written-out kernel"); with fixed-size subgroups the larger
/// small products take the subgroup kernel (`super::matmul_lanes`: a
/// lane's operand loads shared by broadcast, "Subgroup broadcasts"). Fixed rather than timed, so a noisy CPU
/// cannot flip it between runs (the book draws the dispatches of a step, kernel names
/// included, and CI checks the drawing).
fn llvmpipe(gpu: &Gpu) -> bool {
    gpu.report.name.contains("llvmpipe") || gpu.report.driver.contains("llvmpipe")
}

/// Whether the rows kernels beat the register kernel (workgroup `register_wg`
/// fitted to each output) on a small network's products by [`MARGIN`], each
/// product's time relative to the faster of the two, summed.
fn search_rows(gpu: &Gpu, register_wg: (u32, u32)) -> Result<bool> {
    let mut score = [0.0f64; 2];
    for (m, k, n) in [(128, 64, 64), (128, 64, 4)] {
        let a = Tensor::from_slice(gpu, &[m, k], &vec![0.5; m * k], "matmul search A")?;
        let b = Tensor::from_slice(gpu, &[k, n], &vec![0.25; k * n], "matmul search B")?;
        let c = Tensor::zeros(gpu, &[m, n], "matmul search C")?;
        let opts = MatmulOptions::default();
        let (rows, rows_wg) = rows_for(n);
        let ds = [
            matmul_kernel(
                gpu,
                &a,
                &b,
                &c,
                opts,
                MatmulKernel::Register,
                fit_to_output(register_wg, (m, n)),
            )?,
            matmul_kernel(gpu, &a, &b, &c, opts, rows, rows_wg)?,
        ];
        let times = best_times(gpu, &ds)?;
        let best = times[0].min(times[1]);
        for (s, t) in score.iter_mut().zip(&times) {
            *s += t / best;
        }
    }
    Ok(pick(&score) == 1)
}

/// Index of the fastest, unless it beats the first (the incumbent) by less than [`MARGIN`].
fn pick(times: &[f64]) -> usize {
    let best = (0..times.len())
        .min_by(|&i, &j| times[i].total_cmp(&times[j]))
        .unwrap_or(0);
    if times[best] < times[0] * (1.0 - MARGIN) {
        best
    } else {
        0
    }
}

fn fits(gpu: &Gpu, wg: (u32, u32)) -> bool {
    let l = &gpu.limits;
    wg.0 * wg.1 <= l.max_compute_invocations_per_workgroup
        && wg.0 <= l.max_compute_workgroup_size_x
        && wg.1 <= l.max_compute_workgroup_size_y
}

fn search_register_wg(gpu: &Gpu) -> Result<(u32, u32)> {
    let mut candidates: Vec<(u32, u32)> = CANDIDATES
        .iter()
        .copied()
        .filter(|&w| fits(gpu, w))
        .collect();
    if candidates.is_empty() {
        candidates.push((8, 8));
    }
    // Each size's time relative to the best candidate at that size, summed.
    let mut score = vec![0.0f64; candidates.len()];
    for n in [64, 256] {
        let (a, b, c) = operands(gpu, n)?;
        let opts = MatmulOptions::default();
        let ds = candidates
            .iter()
            .map(|&wg| matmul_kernel(gpu, &a, &b, &c, opts, MatmulKernel::Register, wg))
            .collect::<Result<Vec<_>>>()?;
        let times = best_times(gpu, &ds)?;
        let best = times.iter().copied().fold(f64::INFINITY, f64::min);
        for (s, m) in score.iter_mut().zip(&times) {
            *s += m / best;
        }
    }
    // (8, 8), the default, is the incumbent when it fits.
    if let Some(i) = candidates.iter().position(|&w| w == (8, 8)) {
        candidates.swap(0, i);
        score.swap(0, i);
    }
    Ok(candidates[pick(&score)])
}

fn operands(gpu: &Gpu, n: usize) -> Result<(Tensor, Tensor, Tensor)> {
    Ok((
        Tensor::from_slice(gpu, &[n, n], &vec![0.5; n * n], "matmul search A")?,
        Tensor::from_slice(gpu, &[n, n], &vec![0.25; n * n], "matmul search B")?,
        Tensor::zeros(gpu, &[n, n], "matmul search C")?,
    ))
}

/// Each dispatch's fastest wall time over [`REPS`] submit-and-wait runs,
/// after one warm-up each. The runs are interleaved (every candidate once per
/// round), so a burst of load from elsewhere slows all of them alike.
fn best_times(gpu: &Gpu, ds: &[Dispatch]) -> Result<Vec<f64>> {
    for d in ds {
        gpu.run(&[d])?;
        gpu.wait()?;
    }
    let mut times = vec![Vec::with_capacity(REPS); ds.len()];
    for _ in 0..REPS {
        for (d, t) in ds.iter().zip(&mut times) {
            let clock = Instant::now();
            gpu.run(&[d])?;
            gpu.wait()?;
            t.push(clock.elapsed().as_secs_f64());
        }
    }
    Ok(times
        .into_iter()
        .map(|t| t.into_iter().fold(f64::INFINITY, f64::min))
        .collect())
}

fn cache_file(gpu: &Gpu) -> Option<PathBuf> {
    Some(gpu.env.cache_dir.as_ref()?.join("matmul-choice.json"))
}

/// The adapter, its driver and backend, this crate's version, the search's
/// version and a hash (FNV-1a) of the kernels' sources.
fn cache_key(gpu: &Gpu) -> String {
    let r = &gpu.report;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in ["matmul.wgsl", "matmul_tiled.wgsl"] {
        for byte in super::source(file).bytes() {
            hash = (hash ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!(
        "{} | {:?} | {} | taskgrad {} | search {SEARCH_VERSION} | kernels {hash:016x}",
        r.name,
        r.backend,
        r.driver,
        env!("CARGO_PKG_VERSION")
    )
}

fn read_cache(path: &PathBuf) -> BTreeMap<String, MatmulChoice> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn load_cached(gpu: &Gpu) -> Option<MatmulChoice> {
    read_cache(&cache_file(gpu)?).get(&cache_key(gpu)).copied()
}

/// Add this adapter's choice to the cache file (temporary file, then rename).
fn store_cached(gpu: &Gpu, c: &MatmulChoice) {
    let Some(path) = cache_file(gpu) else { return };
    let mut all = read_cache(&path);
    all.insert(cache_key(gpu), *c);
    let Some(dir) = path.parent() else { return };
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let written = std::fs::create_dir_all(dir).is_ok()
        && serde_json::to_string_pretty(&all)
            .ok()
            .is_some_and(|text| std::fs::write(&tmp, text).is_ok());
    if !written || std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
