//! One recorded kernel launch ([`Dispatch`]: pipeline, bind group, grid and
//! the tensors it binds), made once and encodable any number of times, and
//! one-submit execution of a list of them ([`Gpu::run`]).

use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::{Binding, Gpu, Kernel, Tensor};
use crate::error::{Error, Result};

/// Invocations per workgroup of the 1-D kernels (the WGSL `override WG` default).
pub const WG: u32 = 256;

/// One recorded kernel launch.
pub struct Dispatch {
    pub kernel: Arc<Kernel>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    /// The uniform parameters; kept so that per-step values can be rewritten in place.
    pub params: wgpu::Buffer,
    /// The tensors bound at bindings 1.., owned so that a recorded step keeps
    /// every buffer it reads or writes alive for as long as it can be replayed.
    pub tensors: Vec<Tensor>,
    /// The uniform parameters as recorded (before any [`Dispatch::write_params`]).
    pub recorded_params: Vec<u8>,
    /// The uniform parameters as last written (recorded, or by
    /// [`Dispatch::write_params`]).
    written_params: std::sync::Mutex<Vec<u8>>,
    /// How to record this dispatch again over a replica axis, where its
    /// kernel has one (see [`Replicable`]).
    pub replicable: Option<Replicable>,
}

/// A tensor's stride along a replica axis, in elements: copy r of it lies
/// `r·stride` elements past it.
pub type StrideOf<'a> = &'a dyn Fn(&Tensor) -> usize;

/// The recorder of a group of dispatches (those one call of a kernel
/// wrapper made, e.g. split-K's two) over a replica axis: given `count`
/// and each tensor's stride, the same group for `count` replicas.
#[cfg(not(target_arch = "wasm32"))]
pub type RecordReplicas = dyn Fn(&Gpu, usize, StrideOf<'_>) -> Result<Vec<Dispatch>> + Send + Sync;
/// (In a browser wgpu's handles are not `Send`.)
#[cfg(target_arch = "wasm32")]
pub type RecordReplicas = dyn Fn(&Gpu, usize, StrideOf<'_>) -> Result<Vec<Dispatch>>;

/// A dispatch's place in a group that can be recorded again over a replica
/// axis: the group's recorder and this dispatch's index in what it returns.
/// `train::fit_lockstep` uses it to run many runs' same dispatch as one.
///
/// A dispatch whose settings change from step to step (an optimizer's
/// learning rate and bias corrections) names the bytes of its parameters
/// that carry them in `per_step`: recorded over a replica axis it can only
/// be shared by runs that all take the step, with those bytes equal in
/// each run's copy, and they are copied into the shared dispatch each step.
#[derive(Clone)]
pub struct Replicable {
    pub group: Arc<RecordReplicas>,
    pub index: usize,
    pub per_step: Option<std::ops::Range<usize>>,
}

/// `Send + Sync` natively; nothing in a browser, where wgpu's handles are neither.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync> MaybeSendSync for T {}
/// `Send + Sync` natively; nothing in a browser, where wgpu's handles are neither.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T> MaybeSendSync for T {}

/// Mark `group` (the dispatches of one wrapper call, in order) as
/// recordable again over a replica axis by `again`.
pub fn replicable(
    mut group: Vec<Dispatch>,
    again: impl Fn(&Gpu, usize, StrideOf<'_>) -> Result<Vec<Dispatch>> + MaybeSendSync + 'static,
) -> Vec<Dispatch> {
    let again: Arc<RecordReplicas> = Arc::new(again);
    for (index, d) in group.iter_mut().enumerate() {
        d.replicable = Some(Replicable {
            group: again.clone(),
            index,
            per_step: None,
        });
    }
    group
}

/// Record one copy of a dispatch with `record` (one replica, every stride
/// 0), marked [`replicable`] by the same recorder: a kernel wrapper with a
/// replica axis states its call once.
pub fn record_replicable(
    gpu: &Gpu,
    record: impl Fn(&Gpu, usize, StrideOf<'_>) -> Result<Dispatch> + MaybeSendSync + 'static,
) -> Result<Dispatch> {
    let mut d = record(gpu, 1, &|_| 0)?;
    let group: Arc<RecordReplicas> = Arc::new(move |gpu: &Gpu, count, stride: StrideOf<'_>| {
        Ok(vec![record(gpu, count, stride)?])
    });
    d.replicable = Some(Replicable {
        group,
        index: 0,
        per_step: None,
    });
    Ok(d)
}

/// [`record_replicable`] for a dispatch whose parameters change from step
/// to step: `per_step` is the byte range of them that does (see
/// [`Replicable`]), and it must end before any replica stride.
pub fn record_replicable_per_step(
    gpu: &Gpu,
    per_step: std::ops::Range<usize>,
    record: impl Fn(&Gpu, usize, StrideOf<'_>) -> Result<Dispatch> + MaybeSendSync + 'static,
) -> Result<Dispatch> {
    let mut d = record_replicable(gpu, record)?;
    if let Some(r) = d.replicable.as_mut() {
        r.per_step = Some(per_step);
    }
    Ok(d)
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dispatch({}, {:?})", self.kernel.label, self.workgroups)
    }
}

impl Dispatch {
    /// One line saying what this dispatch runs: its kernel (file::entry), its
    /// grid of workgroups, and the shape and element type of each tensor it
    /// binds (bindings 1.., in order; the first is usually the one written).
    pub fn describe(&self) -> String {
        let [x, y, z] = self.workgroups;
        let tensors: Vec<String> = self
            .tensors
            .iter()
            .map(|t| {
                let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
                let kind = match t.dtype() {
                    crate::gpu::DType::F32 => "",
                    crate::gpu::DType::F16 => " f16",
                    crate::gpu::DType::U32 => " u32",
                };
                format!("{}{kind}", dims.join("×"))
            })
            .collect();
        format!(
            "{:<48} grid {x}×{y}×{z}  {}",
            self.kernel.label,
            tensors.join(", ")
        )
    }

    /// Overwrite the uniform parameters (for example Adam's bias corrections at step t).
    pub fn write_params<P: bytemuck::Pod>(&self, gpu: &Gpu, params: &P) {
        let bytes = bytemuck::bytes_of(params);
        gpu.queue.write_buffer(&self.params, 0, bytes);
        let mut now = self
            .written_params
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        now.clear();
        now.extend_from_slice(bytes);
    }

    /// Bytes `range` of the uniform parameters as last written (None where
    /// they are shorter).
    pub fn written_params(&self, range: std::ops::Range<usize>) -> Option<Vec<u8>> {
        let now = self
            .written_params
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        now.get(range).map(|b| b.to_vec())
    }
}

// ANCHOR: grid
/// Grid for `n` workgroups: one dimension while it fits, else folded into two.
pub fn grid(gpu: &Gpu, n: u64) -> Result<[u32; 3]> {
    let max = gpu.limits.max_compute_workgroups_per_dimension as u64;
    let n = n.max(1);
    if n <= max {
        return Ok([n as u32, 1, 1]);
    }
    let y = n.div_ceil(max);
    if y > max {
        return Err(Error::DispatchTooLarge {
            workgroups: n,
            limit: max * max,
        });
    }
    Ok([max as u32, y as u32, 1])
}
// ANCHOR_END: grid

/// Grid covering `n` elements with one invocation each, `WG` per workgroup.
pub fn grid_1d(gpu: &Gpu, n: usize) -> Result<[u32; 3]> {
    grid(gpu, (n as u64).div_ceil(WG as u64))
}

/// Bind `params` at binding 0 (a uniform buffer, or a read-only storage
/// buffer when `bindings[0]` says so) and `tensors` at bindings 1.. and record the
/// dispatch of `entry` in the WGSL `source`. Every kernel wrapper of
/// `taskgrad::kernels` ends here, and so can a kernel of your own (the book's
/// exercises do): `file` names the source in messages and, with the
/// source itself, keys the pipeline cache. `bindings` lists binding 0 (the
/// uniform `params`) and then one entry per tensor; a tensor bound
/// read-write must not overlap any other.
#[allow(clippy::too_many_arguments)]
pub fn record<P: bytemuck::Pod>(
    gpu: &Gpu,
    file: &'static str,
    source: &'static str,
    entry: &'static str,
    bindings: &[Binding],
    constants: &[(&str, f64)],
    params: &P,
    tensors: &[&Tensor],
    workgroups: [u32; 3],
) -> Result<Dispatch> {
    check_aliases(
        file,
        entry,
        bindings,
        tensors,
        &ReplicaAxis::one(tensors.len()),
    )?;
    bind(
        gpu, file, source, entry, bindings, constants, params, tensors, workgroups,
    )
}

/// How the tensors of a dispatch repeat along a replica axis: `count` copies
/// of the same work, the copy r of binding i + 1 lying `strides[i]·r`
/// elements past the tensor given for it (a stride of 0: every copy reads
/// the same tensor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaAxis {
    pub count: usize,
    pub strides: Vec<usize>,
}

impl ReplicaAxis {
    /// No replicas: one copy of each of `bindings` tensors.
    pub fn one(bindings: usize) -> ReplicaAxis {
        ReplicaAxis {
            count: 1,
            strides: vec![0; bindings],
        }
    }
}

/// [`record`] for `axis.count` copies of the same work in one dispatch: the
/// kernel finds copy r of each tensor `axis.strides[i]·r` elements past
/// copy 0's (given in `tensors`), and each binding covers every copy. No
/// copy a kernel writes may overlap any other copy of any binding.
#[allow(clippy::too_many_arguments)]
pub fn record_replicated<P: bytemuck::Pod>(
    gpu: &Gpu,
    file: &'static str,
    source: &'static str,
    entry: &'static str,
    bindings: &[Binding],
    constants: &[(&str, f64)],
    params: &P,
    tensors: &[&Tensor],
    axis: &ReplicaAxis,
    workgroups: [u32; 3],
) -> Result<Dispatch> {
    if axis.strides.len() != tensors.len() {
        return Err(Error::internal(
            format!("recording {file}::{entry}"),
            format!(
                "{} replica strides for {} tensors",
                axis.strides.len(),
                tensors.len()
            ),
        ));
    }
    check_aliases(file, entry, bindings, tensors, axis)?;
    let spans = tensors
        .iter()
        .zip(&axis.strides)
        .map(|(t, &s)| t.replica_span(axis.count, s))
        .collect::<Result<Vec<_>>>()?;
    let spans: Vec<&Tensor> = spans.iter().collect();
    bind(
        gpu, file, source, entry, bindings, constants, params, &spans, workgroups,
    )
}

/// A tensor written by the kernel must not alias any other binding (nor,
/// along a replica axis, any other copy of any binding).
fn check_aliases(
    file: &str,
    entry: &str,
    bindings: &[Binding],
    tensors: &[&Tensor],
    axis: &ReplicaAxis,
) -> Result<()> {
    debug_assert_eq!(
        bindings.len(),
        tensors.len() + 1,
        "{file}::{entry} binding count"
    );
    let copies: Vec<(usize, usize, Tensor)> = tensors
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            let stride = axis.strides[i];
            (0..axis.count).map(move |r| (i, r, t.replica(r, stride)))
        })
        .collect();
    for (i, r, t) in &copies {
        if bindings[i + 1] != Binding::ReadWrite {
            continue;
        }
        for (j, q, u) in &copies {
            if (i, r) != (j, q) && t.overlaps(u) {
                let copy = |r: &usize| match axis.count {
                    1 => String::new(),
                    _ => format!(" (replica {r})"),
                };
                return Err(Error::InvalidConfig(format!(
                    "{file}::{entry}: output binding {}{} overlaps binding {}{}",
                    i + 1,
                    copy(r),
                    j + 1,
                    copy(q)
                )));
            }
        }
    }
    Ok(())
}

// ANCHOR: host_record
/// Make the bind group of `tensors` at bindings 1.. and the uniform `params`
/// at binding 0, and the dispatch that runs it.
#[allow(clippy::too_many_arguments)]
fn bind<P: bytemuck::Pod>(
    gpu: &Gpu,
    file: &'static str,
    source: &'static str,
    entry: &'static str,
    bindings: &[Binding],
    constants: &[(&str, f64)],
    params: &P,
    tensors: &[&Tensor],
    workgroups: [u32; 3],
) -> Result<Dispatch> {
    let kernel = gpu.kernel(file, source, entry, bindings, constants)?;
    let label = kernel.label.clone();
    let recorded_params = bytemuck::bytes_of(params).to_vec();
    gpu.scoped(&format!("binding {label}"), || {
        let params = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&label),
                contents: bytemuck::bytes_of(params),
                // Binding 0 as a read-only storage buffer: the solves', see
                // kernels::mtl::solve.
                usage: match bindings[0] {
                    Binding::Uniform => wgpu::BufferUsages::UNIFORM,
                    _ => wgpu::BufferUsages::STORAGE,
                } | wgpu::BufferUsages::COPY_DST,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: params.as_entire_binding(),
        }];
        for (i, t) in tensors.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: t.binding(),
            });
        }
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&label),
            layout: &kernel.layout,
            entries: &entries,
        });
        Dispatch {
            kernel: kernel.clone(),
            bind_group,
            workgroups,
            params,
            tensors: tensors.iter().map(|&t| t.clone()).collect(),
            written_params: std::sync::Mutex::new(recorded_params.clone()),
            recorded_params,
            replicable: None,
        }
    })
}
// ANCHOR_END: host_record

// ANCHOR: host_run
impl Gpu {
    /// Encode `dispatches` into one compute pass and submit once.
    pub fn run(&self, dispatches: &[&Dispatch]) -> Result<()> {
        self.scoped("running kernels", || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("taskgrad step"),
                });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("taskgrad pass"),
                    timestamp_writes: None,
                });
                encode(&mut pass, dispatches);
            }
            self.queue.submit([encoder.finish()]);
        })
    }
}

/// Record `dispatches` into an open compute pass.
pub fn encode(pass: &mut wgpu::ComputePass<'_>, dispatches: &[&Dispatch]) {
    for d in dispatches {
        pass.set_pipeline(&d.kernel.pipeline);
        pass.set_bind_group(0, &d.bind_group, &[]);
        let [x, y, z] = d.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}
// ANCHOR_END: host_run
