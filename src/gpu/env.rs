//! The kernel settings that come from the environment, read and checked
//! once, when the [`super::Gpu`] is made: a bad value is an error then,
//! naming the variable, not a kernel that silently ignores it later.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `TASKGRAD_MATMUL` | one f32 matmul kernel for every product: `naive`, `register`, `tiled` or `tiled32` |
//! | `TASKGRAD_MATMUL_WG` | the register-blocked matmul's workgroup shape, `WxH` (W·H ≤ 256) |
//! | `TASKGRAD_SPLITK` | split every f32 product into N ≥ 1 slices of k |
//! | `TASKGRAD_CONV` | how `conv` layers compute: `im2col` (the patch matrix, then the matmul; the default) or `direct` (the implicit GEMM of `shaders/conv_direct.wgsl`) |
//! | `TASKGRAD_CACHE_DIR` | where the matmul tuning is cached (else `$XDG_CACHE_HOME/taskgrad`, else `~/.cache/taskgrad`) |
//!
//! (`TASKGRAD_BACKEND` and `TASKGRAD_ADAPTER` choose the adapter itself: see [`super::Gpu::new`].)

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The f32 matmul kernels `TASKGRAD_MATMUL` may name (the kernels layer's
/// `MatmulKernel` has exactly these; a test holds them equal).
pub const MATMUL_KERNELS: [&str; 6] = ["naive", "register", "rows", "rows4", "tiled", "tiled32"];

/// Kernel settings from the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelEnv {
    /// `TASKGRAD_MATMUL`: one of [`MATMUL_KERNELS`] for every product.
    pub matmul: Option<&'static str>,
    /// `TASKGRAD_MATMUL_WG`: the register-blocked kernel's workgroup shape.
    pub matmul_wg: Option<(u32, u32)>,
    /// `TASKGRAD_SPLITK`: every f32 product split into this many slices of k.
    pub splitk: Option<usize>,
    /// Where the matmul tuning is cached (None: no home or cache directory).
    pub cache_dir: Option<PathBuf>,
    /// `TASKGRAD_CONV=direct`: convolutions as the implicit GEMM.
    pub conv_direct: bool,
}

fn bad(var: &str, value: &str, want: &str) -> Error {
    Error::InvalidConfig(format!("{var}={value:?}: {want}"))
}

impl KernelEnv {
    /// Read and check the variables (unset or empty: the default).
    pub fn from_env() -> Result<KernelEnv> {
        let get = |v: &str| std::env::var(v).ok().filter(|s| !s.trim().is_empty());
        let mut env = KernelEnv::parse(
            get("TASKGRAD_MATMUL").as_deref(),
            get("TASKGRAD_MATMUL_WG").as_deref(),
            get("TASKGRAD_SPLITK").as_deref(),
        )?;
        env.conv_direct = match get("TASKGRAD_CONV").map(|s| s.trim().to_ascii_lowercase()) {
            None => false,
            Some(s) if s == "im2col" => false,
            Some(s) if s == "direct" => true,
            Some(s) => return Err(bad("TASKGRAD_CONV", &s, "use im2col or direct")),
        };
        env.cache_dir = match std::env::var_os("TASKGRAD_CACHE_DIR") {
            Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
            _ => match std::env::var_os("XDG_CACHE_HOME") {
                Some(d) if !d.is_empty() => Some(PathBuf::from(d).join("taskgrad")),
                _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/taskgrad")),
            },
        };
        Ok(env)
    }

    /// The settings from the variables' values (None: unset).
    pub fn parse(
        matmul: Option<&str>,
        matmul_wg: Option<&str>,
        splitk: Option<&str>,
    ) -> Result<KernelEnv> {
        let matmul = match matmul {
            None => None,
            Some(s) => {
                let name = s.trim().to_ascii_lowercase();
                let found = MATMUL_KERNELS.iter().find(|k| **k == name);
                Some(*found.ok_or_else(|| {
                    bad(
                        "TASKGRAD_MATMUL",
                        s,
                        "use naive, register, rows, rows4, tiled or tiled32",
                    )
                })?)
            }
        };
        let matmul_wg = match matmul_wg {
            None => None,
            Some(s) => {
                let want = "expected WxH with W·H ≤ 256, e.g. 8x8";
                let (x, y) = s
                    .split_once('x')
                    .ok_or_else(|| bad("TASKGRAD_MATMUL_WG", s, want))?;
                let parse = |v: &str| v.trim().parse::<u32>().ok().filter(|&v| v > 0);
                match (parse(x), parse(y)) {
                    (Some(x), Some(y)) if x * y <= 256 => Some((x, y)),
                    _ => return Err(bad("TASKGRAD_MATMUL_WG", s, want)),
                }
            }
        };
        let splitk = match splitk {
            None => None,
            Some(s) => Some(
                s.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| {
                        bad("TASKGRAD_SPLITK", s, "a whole number of slices, 1 or more")
                    })?,
            ),
        };
        Ok(KernelEnv {
            conv_direct: false,
            matmul,
            matmul_wg,
            splitk,
            cache_dir: None,
        })
    }
}
