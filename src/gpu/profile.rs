//! Per-kernel GPU time from timestamp queries.
//!
//! In profile mode each dispatch of a step is encoded in a compute pass of its
//! own whose beginning and end write timestamps; the step is still one submit,
//! and the results are resolved and read back once. The numbers are GPU time
//! per kernel; the per-pass split adds a little overhead of its own, so the
//! table gives shares of kernel time, not of wall time.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::gpu::Dispatch;
use crate::gpu::Gpu;

/// Time of one kernel (by label) summed over the profiled steps.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    pub kernel: String,
    pub calls: usize,
    pub total_ms: f64,
}

impl Gpu {
    /// Whether per-kernel profiling is available on this adapter.
    pub fn can_profile(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Run `dispatches` once (one submit), each in its own timed pass; returns
    /// each dispatch's GPU time in milliseconds.
    pub fn run_profiled(&self, dispatches: &[&Dispatch]) -> Result<Vec<f64>> {
        if !self.can_profile() {
            return Err(Error::MissingFeature {
                feature: "TIMESTAMP_QUERY",
                why: format!(
                    "{} offers no timestamp queries, so per-kernel times cannot be measured",
                    self.report
                ),
            });
        }
        let n = dispatches.len() as u32;
        if n == 0 {
            return Ok(Vec::new());
        }
        let bytes = 16 * n as u64;
        let (resolve, staging) = self.scoped("profiling kernels", || {
            let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * n,
            });
            let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("profiled step"),
                });
            for (i, d) in dispatches.iter().enumerate() {
                let i = i as u32;
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&d.kernel.label),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &set,
                        beginning_of_pass_write_index: Some(2 * i),
                        end_of_pass_write_index: Some(2 * i + 1),
                    }),
                });
                super::dispatch::encode(&mut pass, &[d]);
            }
            encoder.resolve_query_set(&set, 0..2 * n, &resolve, 0);
            encoder.copy_buffer_to_buffer(&resolve, 0, &staging, 0, bytes);
            self.queue.submit([encoder.finish()]);
            (resolve, staging)
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        let gpu_err = |m: String| Error::Gpu {
            context: "reading timestamps".into(),
            message: m,
        };
        rx.recv()
            .map_err(|e| gpu_err(e.to_string()))?
            .map_err(|e| gpu_err(e.to_string()))?;
        let ticks: Vec<u64> = bytemuck::cast_slice(
            &staging
                .get_mapped_range(..)
                .map_err(|e| gpu_err(e.to_string()))?,
        )
        .to_vec();
        staging.unmap();
        drop(resolve);
        let period_ns = self.queue.get_timestamp_period() as f64;
        Ok((0..n as usize)
            .map(|i| ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period_ns / 1e6)
            .collect())
    }
}

/// Add one profiled run's times to a per-kernel table.
pub fn accumulate(
    table: &mut BTreeMap<String, (usize, f64)>,
    dispatches: &[&Dispatch],
    ms: &[f64],
) {
    for (d, t) in dispatches.iter().zip(ms) {
        let e = table.entry(d.kernel.label.clone()).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += t;
    }
}

/// The table sorted by total time, largest first.
pub fn summarize(table: &BTreeMap<String, (usize, f64)>) -> Vec<KernelTime> {
    let mut rows: Vec<KernelTime> = table
        .iter()
        .map(|(k, &(calls, total_ms))| KernelTime {
            kernel: k.clone(),
            calls,
            total_ms,
        })
        .collect();
    rows.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    rows
}

/// Format the table: kernel, calls, total ms, share of the profiled kernel time.
pub fn format_table(rows: &[KernelTime], steps: usize) -> String {
    let total: f64 = rows.iter().map(|r| r.total_ms).sum();
    let mut out = format!(
        "{:<48} {:>7} {:>10} {:>7}\n",
        "kernel", "calls", "total ms", "share"
    );
    for r in rows {
        let share = if total > 0.0 {
            100.0 * r.total_ms / total
        } else {
            0.0
        };
        out += &format!(
            "{:<48} {:>7} {:>10.3} {:>6.1}%\n",
            r.kernel, r.calls, r.total_ms, share
        );
    }
    out += &format!(
        "{:<48} {:>7} {:>10.3} over {steps} profiled steps ({:.3} ms of kernel time per step)\n",
        "total",
        "",
        total,
        total / steps.max(1) as f64
    );
    out
}
