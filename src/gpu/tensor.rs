//! GPU tensors (a buffer, a byte offset and a shape), upload, batched
//! readback, and flat arenas that hold many tensors in one buffer.
// In a browser wgpu's handles are neither Send nor Sync (and there is one thread).
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
    /// IEEE half precision; needs the adapter's `SHADER_F16` feature to compute with.
    F16,
}

impl DType {
    pub fn size(self) -> u64 {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
        }
    }
}

/// A view of `numel(shape)` elements of `dtype` (4 bytes for f32 and u32, 2
/// for f16) of a GPU buffer, starting at `offset` bytes.
#[derive(Clone, Debug)]
pub struct Tensor {
    buffer: Arc<wgpu::Buffer>,
    offset: u64,
    shape: Vec<usize>,
    dtype: DType,
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn shape_str(shape: &[usize]) -> String {
    format!("{shape:?}")
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Gpu {
    /// Fail with [`Error::BufferTooLarge`] if `bytes` cannot be bound as one storage buffer.
    pub fn check_binding_size(&self, bytes: u64) -> Result<()> {
        let limit = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if bytes > limit {
            return Err(Error::BufferTooLarge { bytes, limit });
        }
        Ok(())
    }

    /// A new tensor's storage: a buffer of its own, or a place in the
    /// calling thread's open slab (see [`Slab`]).
    fn storage_buffer(
        &self,
        label: &str,
        bytes: u64,
        contents: Option<&[u8]>,
    ) -> Result<(Arc<wgpu::Buffer>, u64)> {
        if bytes == 0 {
            return Err(Error::shape("tensor", "at least one element", "0 elements"));
        }
        let placed = {
            let mut scopes = self.slab.lock().unwrap_or_else(|p| p.into_inner());
            let me = std::thread::current().id();
            (scopes.iter_mut().find(|s| s.thread == me))
                .and_then(|scope| scope.place(bytes.div_ceil(4) * 4))
        };
        if let Some((buffer, offset)) = placed {
            if let Some(data) = contents {
                self.write_padded(&buffer, offset, data);
            }
            return Ok((buffer, offset));
        }
        Ok((Arc::new(self.own_buffer(label, bytes, contents)?), 0))
    }

    /// Queue `data` for `buffer` at `offset`, padded to whole 4-byte words.
    fn write_padded(&self, buffer: &wgpu::Buffer, offset: u64, data: &[u8]) {
        if data.len().is_multiple_of(4) {
            self.queue.write_buffer(buffer, offset, data);
        } else {
            let mut padded = data.to_vec();
            padded.resize(data.len().div_ceil(4) * 4, 0);
            self.queue.write_buffer(buffer, offset, &padded);
        }
    }

    fn own_buffer(&self, label: &str, bytes: u64, contents: Option<&[u8]>) -> Result<wgpu::Buffer> {
        self.check_binding_size(bytes)?;
        self.scoped(
            &format!("allocating {label} ({bytes} bytes)"),
            || match contents {
                Some(data) => self
                    .device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(label),
                        contents: data,
                        usage: USAGE,
                    }),
                None => self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes,
                    usage: USAGE,
                    mapped_at_creation: false,
                }),
            },
        )
    }

    /// Copy `src` into `dst` (same number of elements) on the GPU.
    pub fn copy(&self, src: &Tensor, dst: &Tensor) -> Result<()> {
        dst.expect_numel("copy", src.numel())?;
        self.scoped("copying a tensor", || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("copy"),
                });
            encoder.copy_buffer_to_buffer(
                src.buffer(),
                src.offset(),
                dst.buffer(),
                dst.offset(),
                src.bytes(),
            );
            self.queue.submit([encoder.finish()]);
        })
    }

    /// Read many tensors back in one submit and one wait.
    pub fn read(&self, tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        let raw = self.read_raw(tensors)?;
        Ok(raw
            .into_iter()
            .map(|b| bytemuck::cast_slice(&b).to_vec())
            .collect())
    }

    /// Read one f32 tensor back.
    pub fn read_one(&self, t: &Tensor) -> Result<Vec<f32>> {
        Ok(self.read(&[t])?.remove(0))
    }

    /// Read f16 tensors back, widened to f32.
    pub fn read_f16(&self, tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        let raw = self.read_raw(tensors)?;
        Ok(raw
            .into_iter()
            .zip(tensors)
            .map(|(b, t)| {
                let h: &[half::f16] = bytemuck::cast_slice(&b);
                h[..t.numel()].iter().map(|v| v.to_f32()).collect()
            })
            .collect())
    }

    /// Read u32 tensors back.
    pub fn read_u32(&self, tensors: &[&Tensor]) -> Result<Vec<Vec<u32>>> {
        let raw = self.read_raw(tensors)?;
        Ok(raw
            .into_iter()
            .map(|b| bytemuck::cast_slice(&b).to_vec())
            .collect())
    }

    /// Read many f32 tensors back without blocking: the form a browser needs
    /// (the map completes through its event loop); natively the device is
    /// polled first, so the future is ready when first polled.
    pub async fn read_async(&self, tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        let raw = self.read_raw_async(tensors).await?;
        Ok(raw
            .into_iter()
            .map(|b| bytemuck::cast_slice(&b).to_vec())
            .collect())
    }

    /// Count a readback of `tensors`; their total size in bytes.
    fn count_readback(&self, tensors: &[&Tensor]) -> u64 {
        self.readbacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let total: u64 = tensors.iter().map(|t| t.bytes()).sum();
        self.readback_bytes
            .fetch_add(total, std::sync::atomic::Ordering::Relaxed);
        total
    }

    // ANCHOR: host_readback
    /// One staging buffer of `total` bytes holding `tensors` back to back, copied in one submit.
    fn copy_to_staging(&self, tensors: &[&Tensor], total: u64) -> wgpu::Buffer {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback staging"),
            size: total,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        let mut at = 0;
        for t in tensors {
            encoder.copy_buffer_to_buffer(&t.buffer, t.offset, &staging, at, t.bytes());
            at += t.bytes();
        }
        self.queue.submit([encoder.finish()]);
        staging
    }

    /// The mapped staging buffer split back into one byte vector per tensor.
    fn take_mapped(staging: wgpu::Buffer, tensors: &[&Tensor]) -> Result<Vec<Vec<u8>>> {
        let data = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu {
                context: "readback".into(),
                message: e.to_string(),
            })?
            .to_vec();
        staging.unmap();
        let mut out = Vec::with_capacity(tensors.len());
        let mut at = 0usize;
        for t in tensors {
            let n = t.bytes() as usize;
            out.push(data[at..at + n].to_vec());
            at += n;
        }
        Ok(out)
    }
    // ANCHOR_END: host_readback

    fn read_raw(&self, tensors: &[&Tensor]) -> Result<Vec<Vec<u8>>> {
        // A browser's GPU answers through its event loop, which a blocking
        // wait would stop: say so instead of hanging the page.
        if cfg!(target_arch = "wasm32") {
            return Err(Error::Gpu {
                context: "readback".into(),
                message: "a blocking readback cannot finish in a browser: use the async API \
                          (Gpu::read_async, fit_async, ForwardProgram::run_async, \
                          aggregate_with_async)"
                    .into(),
            });
        }
        let total = self.count_readback(tensors);
        if total == 0 {
            return Ok(tensors.iter().map(|_| Vec::new()).collect());
        }
        let staging = self.scoped("readback", || self.copy_to_staging(tensors, total))?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| Error::Gpu {
                context: "readback".into(),
                message: e.to_string(),
            })?
            .map_err(|e| Error::Gpu {
                context: "readback".into(),
                message: e.to_string(),
            })?;
        Self::take_mapped(staging, tensors)
    }

    async fn read_raw_async(&self, tensors: &[&Tensor]) -> Result<Vec<Vec<u8>>> {
        let total = self.count_readback(tensors);
        if total == 0 {
            return Ok(tensors.iter().map(|_| Vec::new()).collect());
        }
        // No error scope here (popping one is itself an await); an error in
        // the copy reaches the uncaptured-error slot, checked below.
        let staging = self.copy_to_staging(tensors, total);
        let (tx, rx) = oneshot();
        staging.map_async(wgpu::MapMode::Read, .., move |r| tx.send(r));
        #[cfg(not(target_arch = "wasm32"))]
        self.wait()?;
        rx.await.map_err(|e| Error::Gpu {
            context: "readback".into(),
            message: e.to_string(),
        })?;
        self.check("readback")?;
        Self::take_mapped(staging, tensors)
    }
}

/// A one-value channel whose receiving half is a future: wgpu's map
/// callback sends, the reader awaits (no executor or extra crate needed).
fn oneshot<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let slot = std::sync::Arc::new(std::sync::Mutex::new((None, None)));
    (OneshotSender(slot.clone()), OneshotReceiver(slot))
}

type OneshotSlot<T> = std::sync::Arc<std::sync::Mutex<(Option<T>, Option<std::task::Waker>)>>;

struct OneshotSender<T>(OneshotSlot<T>);
struct OneshotReceiver<T>(OneshotSlot<T>);

impl<T> OneshotSender<T> {
    fn send(self, value: T) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.0 = Some(value);
        if let Some(w) = slot.1.take() {
            w.wake();
        }
    }
}

impl<T> std::future::Future for OneshotReceiver<T> {
    type Output = T;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<T> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match slot.0.take() {
            Some(v) => std::task::Poll::Ready(v),
            None => {
                slot.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}

impl Tensor {
    /// A new f32 tensor of zeros.
    pub fn zeros(gpu: &Gpu, shape: &[usize], label: &str) -> Result<Tensor> {
        let bytes = 4 * numel(shape) as u64;
        // wgpu zero-initialises new buffers.
        let (buffer, offset) = gpu.storage_buffer(label, bytes, None)?;
        Ok(Tensor {
            buffer,
            offset,
            shape: shape.to_vec(),
            dtype: DType::F32,
        })
    }

    /// A new f32 tensor holding `data` (row-major, `numel(shape)` values).
    pub fn from_slice(gpu: &Gpu, shape: &[usize], data: &[f32], label: &str) -> Result<Tensor> {
        Self::from_bytes(
            gpu,
            shape,
            bytemuck::cast_slice(data),
            data.len(),
            DType::F32,
            label,
        )
    }

    /// A new u32 tensor (class labels) holding `data`.
    pub fn from_u32(gpu: &Gpu, shape: &[usize], data: &[u32], label: &str) -> Result<Tensor> {
        Self::from_bytes(
            gpu,
            shape,
            bytemuck::cast_slice(data),
            data.len(),
            DType::U32,
            label,
        )
    }

    fn from_bytes(
        gpu: &Gpu,
        shape: &[usize],
        bytes: &[u8],
        len: usize,
        dtype: DType,
        label: &str,
    ) -> Result<Tensor> {
        if len != numel(shape) {
            return Err(Error::shape(
                "upload",
                format!("{} values for shape {shape:?}", numel(shape)),
                format!("{len} values"),
            ));
        }
        let (buffer, offset) = gpu.storage_buffer(label, bytes.len() as u64, Some(bytes))?;
        Ok(Tensor {
            buffer,
            offset,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// A new f16 tensor holding `data` (converted on the host with the `half` crate).
    /// Computing with it needs `SHADER_F16`; storing it does not.
    pub fn from_f16(gpu: &Gpu, shape: &[usize], data: &[f32], label: &str) -> Result<Tensor> {
        let mut halves: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
        let len = halves.len();
        if len % 2 == 1 {
            halves.push(half::f16::ZERO); // bindings are whole 4-byte words
        }
        Self::from_bytes(
            gpu,
            shape,
            bytemuck::cast_slice(&halves),
            len,
            DType::F16,
            label,
        )
    }

    /// A new f16 tensor of zeros.
    pub fn zeros_f16(gpu: &Gpu, shape: &[usize], label: &str) -> Result<Tensor> {
        let bytes = (2 * numel(shape) as u64).div_ceil(4) * 4;
        let (buffer, offset) = gpu.storage_buffer(label, bytes, None)?;
        Ok(Tensor {
            buffer,
            offset,
            shape: shape.to_vec(),
            dtype: DType::F16,
        })
    }

    /// Overwrite the tensor's contents from the host (queued; ordered before the next submit).
    pub fn write(&self, gpu: &Gpu, data: &[f32]) -> Result<()> {
        self.write_elements(gpu, data)
    }

    /// Overwrite a u32 tensor's contents from the host.
    pub fn write_u32(&self, gpu: &Gpu, data: &[u32]) -> Result<()> {
        self.write_elements(gpu, data)
    }

    /// Typed wrappers above keep literals from being written as the wrong type.
    fn write_elements<T: bytemuck::Pod>(&self, gpu: &Gpu, data: &[T]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(Error::shape(
                "write",
                format!("{} values", self.numel()),
                format!("{} values", data.len()),
            ));
        }
        gpu.queue
            .write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(data));
        Ok(())
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    /// Bytes the tensor occupies (a multiple of 4: f16 tensors of odd length are padded).
    pub fn bytes(&self) -> u64 {
        (self.dtype.size() * self.numel() as u64).div_ceil(4) * 4
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// A view of `numel(shape)` elements starting `start` elements into this
    /// tensor. The start must be a multiple of the adapter's storage-offset
    /// alignment (see [`ArenaLayout::new`]) for the view to be bindable.
    pub fn slice(&self, start: usize, shape: &[usize]) -> Result<Tensor> {
        if start + numel(shape) > self.numel() {
            return Err(Error::shape(
                "slice",
                format!(
                    "at most {} elements from {start}",
                    self.numel() - start.min(self.numel())
                ),
                shape_str(shape),
            ));
        }
        Ok(Tensor {
            buffer: self.buffer.clone(),
            offset: self.offset + self.dtype.size() * start as u64,
            shape: shape.to_vec(),
            dtype: self.dtype,
        })
    }

    /// The view covering `count` copies of this one's layout, `stride`
    /// elements apart, from this one's start (flat): what a dispatch over a
    /// replica axis binds ([`crate::gpu::dispatch::record_replicated`]).
    /// Fails where the last copy would end past the buffer.
    pub fn replica_span(&self, count: usize, stride: usize) -> Result<Tensor> {
        if count <= 1 {
            return Ok(self.clone());
        }
        let elements = (count - 1) * stride + self.numel();
        let end = self.offset + self.dtype.size() * elements as u64;
        if end > self.buffer.size() {
            return Err(Error::shape(
                "replica span",
                format!(
                    "{count} copies {stride} elements apart within the buffer's {} bytes",
                    self.buffer.size()
                ),
                format!("{end} bytes"),
            ));
        }
        Ok(Tensor {
            buffer: self.buffer.clone(),
            offset: self.offset,
            shape: vec![elements],
            dtype: self.dtype,
        })
    }

    /// Copy `r` of a replica span: this view moved `r·stride` elements on
    /// (unchecked against the buffer's end: for reasoning about overlaps).
    pub(crate) fn replica(&self, r: usize, stride: usize) -> Tensor {
        Tensor {
            offset: self.offset + self.dtype.size() * (r * stride) as u64,
            ..self.clone()
        }
    }

    /// Where this tensor starts inside `whole`, in elements, if it lies within it.
    pub fn start_within(&self, whole: &Tensor) -> Option<usize> {
        (Arc::ptr_eq(&self.buffer, &whole.buffer)
            && self.offset >= whole.offset
            && self.offset + self.bytes() <= whole.offset + whole.bytes())
        .then(|| ((self.offset - whole.offset) / 4) as usize)
    }

    /// The same storage seen with another shape of equal size.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::shape(
                "reshape",
                shape_str(&self.shape),
                shape_str(shape),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            ..self.clone()
        })
    }

    /// Whether two tensors are the same view: one buffer, offset, shape and type.
    pub fn same_view(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
            && self.offset == other.offset
            && self.shape == other.shape
            && self.dtype == other.dtype
    }

    /// Whether two tensors share a buffer and overlap (so cannot be bound read and write at once).
    pub fn overlaps(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
            && self.offset < other.offset + other.bytes()
            && other.offset < self.offset + self.bytes()
    }

    pub(crate) fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.bytes()),
        })
    }

    /// Fail unless the tensor has exactly `shape`.
    pub fn expect_shape(&self, op: &'static str, shape: &[usize]) -> Result<()> {
        if self.shape != shape {
            return Err(Error::shape(op, shape_str(shape), shape_str(&self.shape)));
        }
        Ok(())
    }

    /// Fail unless the tensor has `n` elements.
    pub fn expect_numel(&self, op: &'static str, n: usize) -> Result<()> {
        if self.numel() != n {
            return Err(Error::shape(
                op,
                format!("{n} elements"),
                format!("{} elements ({:?})", self.numel(), self.shape),
            ));
        }
        Ok(())
    }
}

/// One buffer holding many named tensors, each starting at an offset that the
/// adapter accepts for a storage binding. Parameters, gradients and optimizer
/// moments each live in an arena of the same layout, so the optimizer is one
/// dispatch over the whole buffer and zeroing all gradients is one clear.
#[derive(Clone, Debug, Default)]
pub struct ArenaLayout {
    entries: Vec<(String, usize, Vec<usize>)>,
    len: usize,
    align: usize,
}

impl ArenaLayout {
    /// An empty layout whose views start at multiples of the adapter's storage offset alignment.
    pub fn new(gpu: &Gpu) -> Self {
        Self::with_element_bytes(gpu, 4)
    }

    /// A layout with no alignment, for counting (never allocated).
    pub(crate) fn unaligned() -> Self {
        ArenaLayout {
            entries: Vec::new(),
            len: 0,
            align: 1,
        }
    }

    /// A layout whose views are bindable in arenas of `bytes`-wide elements and
    /// of every wider kind (2: f16 and f32 arenas share the element offsets).
    pub fn with_element_bytes(gpu: &Gpu, bytes: usize) -> Self {
        let align = (gpu.limits.min_storage_buffer_offset_alignment as usize / bytes.max(1)).max(1);
        ArenaLayout {
            entries: Vec::new(),
            len: 0,
            align,
        }
    }

    /// Reserve a view; returns its index.
    pub fn add(&mut self, name: &str, shape: &[usize]) -> usize {
        let start = self.len.div_ceil(self.align) * self.align;
        self.entries.push((name.to_string(), start, shape.to_vec()));
        self.len = start + numel(shape);
        self.entries.len() - 1
    }

    /// Total elements, padding included.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// (name, element offset, shape) of every view.
    pub fn entries(&self) -> &[(String, usize, Vec<usize>)] {
        &self.entries
    }
}

/// The tensors of several runs built alike, the same tensor of every run
/// in one buffer: allocation j of run r lies `r·stride_j` bytes into
/// buffer j, so a kernel with a replica axis can take every run's copy in
/// one dispatch (`train::fit_lockstep`). One buffer per allocation, not
/// one for all, because wgpu tracks a dispatch's read and write use per
/// buffer: a kernel may not write one range of a buffer it reads another of.
/// While a [`SlabGuard`] of run r is held, allocation j of the calling
/// thread goes to buffer j, and one that does not fit (or is past the
/// count) to a buffer of its own; fresh places are zeros, as new buffers are.
pub struct Slab {
    /// Each allocation's buffer and the bytes between one run's copy and the next.
    pub buffers: Vec<(Arc<wgpu::Buffer>, u64)>,
}

impl Slab {
    /// The stride in elements between the runs' copies of `t` (None: `t`
    /// is not in this slab).
    pub fn stride_of(&self, t: &Tensor) -> Option<usize> {
        self.stride_bytes(t)
            .map(|stride| (stride / t.dtype.size()) as usize)
    }

    /// The stride in bytes of the buffer `t` lies in (None: not in this slab).
    pub fn stride_bytes(&self, t: &Tensor) -> Option<u64> {
        (self.buffers.iter())
            .find(|(b, _)| Arc::ptr_eq(b, &t.buffer))
            .map(|&(_, stride)| stride)
    }
}

/// The open scope of a slab region, or of a count (see [`Gpu::count_tensor_bytes`]).
pub(crate) struct SlabScope {
    thread: std::thread::ThreadId,
    /// The slab and the run placed (None: only count the sizes).
    fill: Option<(Arc<Slab>, usize)>,
    /// Allocations so far (filling), or their sizes (counting).
    next: usize,
    sizes: Vec<u64>,
}

impl SlabScope {
    /// The place of the next allocation, of `bytes`, or None where it gets
    /// a buffer of its own (counting, or past the slab, or too large).
    fn place(&mut self, bytes: u64) -> Option<(Arc<wgpu::Buffer>, u64)> {
        let j = self.next;
        self.next += 1;
        match &self.fill {
            None => {
                self.sizes.push(bytes);
                None
            }
            Some((slab, run)) => {
                let (buffer, stride) = slab.buffers.get(j)?;
                (bytes <= *stride).then(|| (buffer.clone(), stride * *run as u64))
            }
        }
    }
}

/// While held, the calling thread's new tensors go to a run's places in a
/// slab (or are counted); dropping it ends the scope.
pub struct SlabGuard<'g> {
    gpu: &'g Gpu,
}

impl SlabGuard<'_> {
    /// The sizes counted so far (bytes, in allocation order).
    pub fn sizes(&self) -> Vec<u64> {
        let scopes = self.gpu.slab.lock().unwrap_or_else(|p| p.into_inner());
        let me = std::thread::current().id();
        (scopes.iter().find(|s| s.thread == me)).map_or(Vec::new(), |s| s.sizes.clone())
    }
}

impl Drop for SlabGuard<'_> {
    fn drop(&mut self) {
        let mut scopes = self.gpu.slab.lock().unwrap_or_else(|p| p.into_inner());
        let me = std::thread::current().id();
        scopes.retain(|s| s.thread != me);
    }
}

impl Gpu {
    /// Count the sizes of the calling thread's new tensors, in order,
    /// until the guard is dropped (they are allocated as usual meanwhile);
    /// read them with [`SlabGuard::sizes`].
    pub fn count_tensor_bytes(&self) -> SlabGuard<'_> {
        self.open_slab(None)
    }

    /// A slab for `runs` runs whose allocations have `sizes` (bytes, in
    /// order), or None where a buffer of it could not be bound whole.
    pub fn slab(&self, runs: usize, sizes: &[u64]) -> Option<Slab> {
        let align = self.limits.min_storage_buffer_offset_alignment.max(4) as u64;
        let mut buffers = Vec::with_capacity(sizes.len());
        for &bytes in sizes {
            let stride = bytes.max(4).div_ceil(align) * align;
            let total = stride.checked_mul(runs as u64)?;
            let buffer = self.own_buffer("slab of runs", total, None).ok()?;
            buffers.push((Arc::new(buffer), stride));
        }
        Some(Slab { buffers })
    }

    /// Place the calling thread's new tensors at run `r`'s places of
    /// `slab` until the guard is dropped.
    pub fn slab_region(&self, slab: &Arc<Slab>, r: usize) -> SlabGuard<'_> {
        self.open_slab(Some((slab.clone(), r)))
    }

    fn open_slab(&self, fill: Option<(Arc<Slab>, usize)>) -> SlabGuard<'_> {
        let mut scopes = self.slab.lock().unwrap_or_else(|p| p.into_inner());
        let me = std::thread::current().id();
        scopes.retain(|s| s.thread != me);
        scopes.push(SlabScope {
            thread: me,
            fill,
            next: 0,
            sizes: Vec::new(),
        });
        SlabGuard { gpu: self }
    }
}

/// A buffer laid out by an [`ArenaLayout`].
#[derive(Clone, Debug)]
pub struct Arena {
    pub layout: ArenaLayout,
    pub whole: Tensor,
}

impl Arena {
    /// Allocate a zeroed arena.
    pub fn new(gpu: &Gpu, layout: &ArenaLayout, label: &str) -> Result<Arena> {
        let whole = Tensor::zeros(gpu, &[layout.len().max(1)], label)?;
        Ok(Arena {
            layout: layout.clone(),
            whole,
        })
    }

    /// Allocate a zeroed f16 arena (its layout must come from `with_element_bytes(gpu, 2)`).
    pub fn new_f16(gpu: &Gpu, layout: &ArenaLayout, label: &str) -> Result<Arena> {
        let whole = Tensor::zeros_f16(gpu, &[layout.len().max(1)], label)?;
        Ok(Arena {
            layout: layout.clone(),
            whole,
        })
    }

    /// The tensor view at index `i`.
    pub fn view(&self, i: usize) -> Tensor {
        let (_, start, shape) = &self.layout.entries[i];
        Tensor {
            buffer: self.whole.buffer.clone(),
            offset: self.whole.offset + self.whole.dtype.size() * *start as u64,
            shape: shape.clone(),
            dtype: self.whole.dtype,
        }
    }

    /// Copy the whole arena to the host (one readback).
    pub fn read(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        gpu.read_one(&self.whole)
    }
}
