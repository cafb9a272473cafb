//! Adapter choice, device and queue, the pipeline cache, and wgpu errors
//! turned into typed [`Error`]s.
//!
//! Adapter order: hardware first (discrete, integrated, virtual), then
//! software (lavapipe through Vulkan, llvmpipe through GL). Two environment
//! variables override the choice:
//! - `TASKGRAD_BACKEND`: `vulkan`, `gl`, `metal` or `dx12` (only that backend);
//! - `TASKGRAD_ADAPTER`: a case-insensitive substring of the adapter name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// What a kernel binding is, as seen from the shader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binding {
    Uniform,
    ReadOnly,
    ReadWrite,
}

/// The adapter in use, for reports and test logs.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub name: String,
    pub backend: wgpu::Backend,
    pub device_type: wgpu::DeviceType,
    pub driver: String,
}

impl std::fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({:?}, {:?}",
            self.name, self.backend, self.device_type
        )?;
        if !self.driver.is_empty() {
            write!(f, ", driver {}", self.driver)?;
        }
        write!(f, ")")
    }
}

/// (file, where the source lies, entry, override constants): the source's
/// address keeps two sources given the same file name apart.
type PipelineKey = (&'static str, usize, &'static str, Vec<(String, u64)>);

/// A GPU: device, queue and the compiled kernels.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::Adapter,
    pub report: AdapterReport,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// The kernel settings from the environment, read and checked when the
    /// `Gpu` was made ([`super::env`]).
    pub env: super::env::KernelEnv,
    /// How a CPU adapter runs this device's dispatches ([`CpuThreads`]): what
    /// was asked when it was opened, unless the user's own `LP_NUM_THREADS`
    /// said otherwise (it wins).
    pub cpu_threads: CpuThreads,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Kernel>>>,
    uncaptured: Arc<Mutex<Option<String>>>,
    pub(crate) readbacks: std::sync::atomic::AtomicU64,
    pub(crate) readback_bytes: std::sync::atomic::AtomicU64,
    /// Values computed once per device by the layers above (a kernel's tuned
    /// shape, say), by key: see [`Gpu::memo`].
    memos: Mutex<HashMap<&'static str, Arc<dyn std::any::Any + Send + Sync>>>,
    /// Where the calling thread's new tensors go while a [`super::tensor::Slab`]
    /// scope is open (see `Gpu::slab_scope`).
    pub(crate) slab: Mutex<Vec<super::tensor::SlabScope>>,
}

/// A compiled compute pipeline and the layout its bind groups must follow.
pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub bindings: Vec<Binding>,
    pub label: String,
}

/// Parse `TASKGRAD_BACKEND`-style names.
pub fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    match name.trim().to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
        "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
        "metal" => Ok(wgpu::Backends::METAL),
        "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
        "webgpu" => Ok(wgpu::Backends::BROWSER_WEBGPU),
        _ => Err(Error::UnknownBackend {
            name: name.to_string(),
        }),
    }
}

fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan
        | wgpu::Backend::Metal
        | wgpu::Backend::Dx12
        | wgpu::Backend::BrowserWebGpu => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    }
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backends_string(b: wgpu::Backends) -> String {
    let mut names = Vec::new();
    for (flag, name) in [
        (wgpu::Backends::VULKAN, "vulkan"),
        (wgpu::Backends::GL, "gl"),
        (wgpu::Backends::METAL, "metal"),
        (wgpu::Backends::DX12, "dx12"),
        (wgpu::Backends::BROWSER_WEBGPU, "webgpu"),
    ] {
        if b.contains(flag) {
            names.push(name);
        }
    }
    names.join(", ")
}

/// Every adapter wgpu finds on any backend, one line each (for `taskgrad info`).
/// Keep the graphics stack's start-up noise off stderr. Where
/// `XDG_RUNTIME_DIR` is unset (a container, a CI job, a service), the Wayland
/// client library that Mesa's drivers load prints "error: XDG_RUNTIME_DIR is
/// invalid or not set in the environment." at start-up, in the same form as a
/// program's own errors. This points the variable at the temporary directory
/// when it is unset; no Wayland display is used either way. It changes the
/// process environment, so call it at the start of `main`, before any thread
/// starts (the `taskgrad` tool and the examples do).
pub fn quiet_graphics_stack() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
}

pub fn list_adapters() -> Vec<String> {
    let backends =
        wgpu::Backends::VULKAN | wgpu::Backends::GL | wgpu::Backends::METAL | wgpu::Backends::DX12;
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    pollster::block_on(instance.enumerate_adapters(backends))
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!(
                "{} ({:?}, {:?}, driver {})",
                i.name, i.backend, i.device_type, i.driver
            )
        })
        .collect()
}

/// How many threads a CPU adapter (Mesa's llvmpipe, through Vulkan or GL)
/// runs each dispatch on. Hardware adapters ignore it.
///
/// llvmpipe hands every dispatch to worker threads, one per core, and waits
/// for them: a thread wake-up and a wait per dispatch, tens of microseconds,
/// which a small network's step pays some twenty times for a few hundred
/// thousand multiply-adds. Run on one thread instead, W-iris
/// (2→64→64, three heads, 120 rows) steps 1.6–1.8× faster on a 2-core
/// machine; with 128-wide layers the workers win again (BENCHMARKS.md,
/// "One thread for a small step"). [`CpuThreads::for_step`] chooses by size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CpuThreads {
    /// The driver's choice (llvmpipe: a worker per core).
    #[default]
    Driver,
    /// One thread: llvmpipe opened with `LP_NUM_THREADS=0` starts no workers
    /// and runs each dispatch on the thread that executes the commands.
    Inline,
}

impl CpuThreads {
    /// The most forward multiply-adds per step that run [`CpuThreads::Inline`]:
    /// between W-iris's 0.55 M (1.6–1.8× faster inline) and the same data
    /// through a 128-wide trunk's 2.1 M (1.2× slower inline), on the 2-core
    /// machine of BENCHMARKS.md.
    pub const INLINE_UP_TO: u64 = 1 << 20;

    /// The choice for a step of `forward_multiply_adds` (None: not known,
    /// such as a network over images, whose convolutions reuse each weight
    /// at every pixel): inline up to [`CpuThreads::INLINE_UP_TO`].
    pub fn for_step(forward_multiply_adds: Option<u64>) -> CpuThreads {
        match forward_multiply_adds {
            Some(n) if n <= Self::INLINE_UP_TO => CpuThreads::Inline,
            _ => CpuThreads::Driver,
        }
    }

    /// The choice for `jobs` runs side by side, each on a device of its own
    /// ([`crate::train::on_devices`]), every step of `forward_multiply_adds`:
    /// inline as [`CpuThreads::for_step`] says, and also whenever there are
    /// at least as many jobs as cores, since the runs then keep every core
    /// busy and workers would only add their hand-overs (the MMoE
    /// experiment, two jobs on two cores: 1.14–1.19× faster inline;
    /// BENCHMARKS.md, "One thread for a small step").
    pub fn for_jobs(forward_multiply_adds: Option<u64>, jobs: usize) -> CpuThreads {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        match jobs >= cores.max(2) {
            true => CpuThreads::Inline,
            false => Self::for_step(forward_multiply_adds),
        }
    }
}

/// `LP_NUM_THREADS=0` while an instance is made, for [`CpuThreads::Inline`]:
/// llvmpipe reads it once, when it sets up an instance's device (its worker
/// pools belong to that screen), so it is removed again on drop and later
/// instances get the driver's choice. A value the user set is left alone.
struct LlvmpipeThreads {
    set: bool,
}

impl LlvmpipeThreads {
    const VAR: &'static str = "LP_NUM_THREADS";

    fn apply(threads: CpuThreads) -> LlvmpipeThreads {
        let set = cfg!(not(target_arch = "wasm32"))
            && threads == CpuThreads::Inline
            && std::env::var_os(Self::VAR).is_none();
        if set {
            std::env::set_var(Self::VAR, "0");
        }
        LlvmpipeThreads { set }
    }

    /// What llvmpipe will do: [`CpuThreads::Inline`] where the variable is 0
    /// (set here or by the user), else the driver's choice.
    fn in_effect() -> CpuThreads {
        match std::env::var(Self::VAR) {
            Ok(v) if v.trim() == "0" => CpuThreads::Inline,
            _ => CpuThreads::Driver,
        }
    }
}

impl Drop for LlvmpipeThreads {
    fn drop(&mut self) {
        if self.set {
            std::env::remove_var(Self::VAR);
        }
    }
}

/// Loop back-edges an llvmpipe invocation takes before its loops are cut
/// short (gallivm's `LP_MAX_TGSI_LOOP_ITERATIONS`).
pub const LLVMPIPE_LOOP_LIMIT: u64 = 65_535;

impl Gpu {
    /// Open the best adapter, honouring `TASKGRAD_BACKEND` and `TASKGRAD_ADAPTER`
    /// (blocks until the device is ready; [`Gpu::new_async`] does not).
    pub fn new() -> Result<Gpu> {
        pollster::block_on(Self::new_async())
    }

    /// [`Gpu::new`] with a CPU adapter's threads chosen (see [`CpuThreads`]).
    /// [`CpuThreads::Inline`] sets `LP_NUM_THREADS` while the adapter is
    /// opened, which changes the process environment: open it before other
    /// threads of the program read the environment (the `taskgrad` tool and
    /// the examples open it from `main`'s thread, before any work starts).
    pub fn new_with(threads: CpuThreads) -> Result<Gpu> {
        pollster::block_on(Self::new_with_async(threads))
    }

    /// [`Gpu::new`] without blocking: the form a browser needs, where the
    /// adapter and device arrive through the event loop.
    pub async fn new_async() -> Result<Gpu> {
        Self::new_with_async(CpuThreads::Driver).await
    }

    /// [`Gpu::new_with`] without blocking.
    pub async fn new_with_async(threads: CpuThreads) -> Result<Gpu> {
        let backends = match std::env::var("TASKGRAD_BACKEND") {
            Ok(s) if !s.trim().is_empty() => parse_backend(&s)?,
            // In a browser: its WebGPU (WebGL cannot run compute shaders).
            _ if cfg!(target_arch = "wasm32") => wgpu::Backends::BROWSER_WEBGPU,
            _ => {
                wgpu::Backends::VULKAN
                    | wgpu::Backends::GL
                    | wgpu::Backends::METAL
                    | wgpu::Backends::DX12
            }
        };
        let name_filter = std::env::var("TASKGRAD_ADAPTER")
            .ok()
            .filter(|s| !s.is_empty());
        Self::opened(backends, name_filter.as_deref(), threads).await
    }

    /// Open the best adapter among `backends` whose name contains `name_filter`.
    pub fn with_options(backends: wgpu::Backends, name_filter: Option<&str>) -> Result<Gpu> {
        pollster::block_on(Self::with_options_async(backends, name_filter))
    }

    /// [`Gpu::with_options`] without blocking.
    pub async fn with_options_async(
        backends: wgpu::Backends,
        name_filter: Option<&str>,
    ) -> Result<Gpu> {
        Self::opened(backends, name_filter, CpuThreads::Driver).await
    }

    async fn opened(
        backends: wgpu::Backends,
        name_filter: Option<&str>,
        threads: CpuThreads,
    ) -> Result<Gpu> {
        let _env = LlvmpipeThreads::apply(threads);
        let adapter = choose_adapter(backends, name_filter).await?;
        Self::open(adapter, LlvmpipeThreads::in_effect()).await
    }

    /// A device and queue on `adapter`, with its limits and the optional
    /// features taskgrad uses, and uncaptured errors kept for [`Gpu::check`].
    async fn open(adapter: wgpu::Adapter, cpu_threads: CpuThreads) -> Result<Gpu> {
        let env = super::env::KernelEnv::from_env()?;
        let info = adapter.get_info();
        let report = AdapterReport {
            // Browsers may leave the description empty (fingerprinting).
            name: match info.name.is_empty() {
                true => "WebGPU adapter".into(),
                false => info.name.clone(),
            },
            backend: info.backend,
            device_type: info.device_type,
            driver: info.driver.clone(),
        };
        // Ask for everything the adapter can do: the real storage-binding limit
        // matters for large tensors, and the optional features for later work.
        let coop = coop_f16_16(&adapter);
        let mut wanted =
            wgpu::Features::SHADER_F16 | wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP;
        if coop {
            wanted |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        }
        let features = adapter.features() & wanted;
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("taskgrad device"),
                required_features: features,
                required_limits: limits.clone(),
                // SAFETY: the one experimental feature asked for is the cooperative
                // matrix, used by shaders/matmul_coop.wgsl alone, whose loads and
                // stores stay inside the matrices (sizes checked by its wrapper).
                experimental_features: if coop {
                    unsafe { wgpu::ExperimentalFeatures::enabled() }
                } else {
                    wgpu::ExperimentalFeatures::disabled()
                },
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice {
                adapter: info.name.clone(),
                reason: e.to_string(),
            })?;

        // Anything not caught by an error scope is kept and reported by the next
        // `check`, instead of wgpu's default panic.
        let uncaptured = Arc::new(Mutex::new(None::<String>));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));

        Ok(Gpu {
            device,
            queue,
            adapter,
            report,
            limits,
            features,
            env,
            cpu_threads,
            pipelines: Mutex::new(HashMap::new()),
            uncaptured,
            readbacks: std::sync::atomic::AtomicU64::new(0),
            readback_bytes: std::sync::atomic::AtomicU64::new(0),
            memos: Mutex::new(HashMap::new()),
            slab: Mutex::new(Vec::new()),
        })
    }

    /// Another device on this one's adapter that carries this device's
    /// measured choices (its [`Gpu::memo`] values, the matmul tuning among
    /// them), so that the same work computes the same numbers on either.
    /// Independent runs on separate devices can go on at once
    /// ([`crate::train::on_devices`]). The adapter is found again through an
    /// instance of the sibling's own: a software driver keeps its worker
    /// threads per instance (lavapipe: per `VkInstance`'s physical device), and
    /// siblings sharing one instance queued behind each other there (five
    /// penguins seeds on two cores, `compare --jobs 2`: 3.5–3.8 s through one
    /// instance, 3.0–3.2 s through their own; BENCHMARKS.md, "compare --jobs").
    /// Where the adapter cannot be found again, the sibling shares this one's.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn sibling(&self) -> Result<Gpu> {
        let _env = LlvmpipeThreads::apply(self.cpu_threads);
        let adapter = pollster::block_on(same_adapter_anew(&self.adapter))
            .unwrap_or_else(|| self.adapter.clone());
        let gpu = pollster::block_on(Self::open(adapter, LlvmpipeThreads::in_effect()))?;
        let memos = self.memos.lock().unwrap_or_else(|p| p.into_inner()).clone();
        *gpu.memos.lock().unwrap_or_else(|p| p.into_inner()) = memos;
        Ok(gpu)
    }

    /// ", each dispatch on one thread" where a CPU adapter was
    /// opened [`CpuThreads::Inline`] (for the adapter line the tools print).
    pub fn threads_note(&self) -> &'static str {
        match (self.cpu_threads, self.report.device_type) {
            (CpuThreads::Inline, wgpu::DeviceType::Cpu) => ", each dispatch on one thread",
            _ => "",
        }
    }

    /// The value stored under `key` for this device, made by `make` the first
    /// time (a choice measured once per adapter, such as a kernel's tuning).
    /// `make` runs without any lock held, so it may use the device freely.
    pub fn memo<T: Clone + Send + Sync + 'static>(
        &self,
        key: &'static str,
        make: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let lock = || self.memos.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = lock().get(key).and_then(|v| v.downcast_ref::<T>()) {
            return Ok(v.clone());
        }
        let v = make()?;
        lock().entry(key).or_insert_with(|| Arc::new(v.clone()));
        Ok(v)
    }

    /// Compile `entry` of `source` with its bind-group layout and constants.
    fn compile(
        &self,
        file: &'static str,
        source: &'static str,
        entry: &'static str,
        bindings: &[Binding],
        constants: &[(&str, f64)],
        label: String,
    ) -> Kernel {
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(file),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        // Our kernels' loops all run to bounds read from their parameters, so
        // the loop counter wgpu would inject is dropped: on lavapipe it made
        // loop-heavy kernels up to 50× slower. Bounds checks stay on.
        let checks = wgpu::ShaderRuntimeChecks {
            force_loop_bounding: false,
            ..wgpu::ShaderRuntimeChecks::checked()
        };
        // SAFETY: every shader in shaders/ terminates: each loop is bounded by a
        // uniform parameter or a constant (reviewed with each kernel).
        let module = unsafe { self.device.create_shader_module_trusted(desc, checks) };
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, &b)| layout_entry(i as u32, b))
            .collect();
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&label),
                entries: &entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        Kernel {
            pipeline,
            layout,
            bindings: bindings.to_vec(),
            label: label.clone(),
        }
    }

    /// Whether the device computes 16×16×16 cooperative matrices with f16
    /// inputs and an f32 accumulator (the tensor cores of `kernels::matmul_coop`).
    pub fn has_coop_f16(&self) -> bool {
        self.features
            .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
            && self.features.contains(wgpu::Features::SHADER_F16)
            && coop_f16_16(&self.adapter)
    }

    /// How many loop iterations one invocation may run in all, when the
    /// adapter stops loops early: Mesa's llvmpipe (lavapipe through Vulkan,
    /// and its OpenGL driver) ends every loop once the invocation has taken
    /// 65,535 loop back-edges in all, nested and sequential loops counted
    /// together, silently (`tests/kernels.rs` measures it). Kernels whose
    /// invocations could loop longer split their work on such an adapter
    /// (split-K, row ranges); `None` on adapters without such a limit.
    pub fn loop_budget(&self) -> Option<u64> {
        let llvmpipe = |s: &str| s.to_ascii_lowercase().contains("llvmpipe");
        (llvmpipe(&self.report.name) || llvmpipe(&self.report.driver))
            .then_some(LLVMPIPE_LOOP_LIMIT)
    }

    /// How many GPU-to-host readbacks this device has done (each is one wait on the GPU).
    pub fn readback_count(&self) -> u64 {
        self.readbacks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many bytes all readbacks have copied to the host.
    pub fn readback_bytes(&self) -> u64 {
        self.readback_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the device can run f16 arithmetic in shaders.
    pub fn has_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Run `f` inside validation and out-of-memory error scopes; a wgpu error
    /// raised by `f` comes back as a typed error naming `context`. In a
    /// browser (wasm32) popping a scope must be awaited, so there `f` runs
    /// without scopes and its errors arrive through the uncaptured-error
    /// slot, reported by this or a later [`Gpu::check`].
    #[cfg(target_arch = "wasm32")]
    pub fn scoped<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T> {
        let value = f();
        self.check(context)?;
        Ok(value)
    }

    /// Run `f` inside validation and out-of-memory error scopes; a wgpu error
    /// raised by `f` comes back as a typed error naming `context`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn scoped<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            return Err(Error::OutOfMemory {
                context: context.into(),
                message: e.to_string(),
            });
        }
        if let Some(e) = v {
            return Err(Error::Gpu {
                context: context.into(),
                message: e.to_string(),
            });
        }
        self.check(context)?;
        Ok(value)
    }

    /// Report (once) an error that escaped every scope.
    pub fn check(&self, context: &str) -> Result<()> {
        let mut slot = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner());
        match slot.take() {
            Some(message) => Err(Error::Gpu {
                context: context.into(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// Block until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu {
                context: "device poll".into(),
                message: e.to_string(),
            })
    }

    /// The compiled kernel `entry` of `source`, with override `constants`;
    /// compiled once and cached.
    pub fn kernel(
        &self,
        file: &'static str,
        source: &'static str,
        entry: &'static str,
        bindings: &[Binding],
        constants: &[(&str, f64)],
    ) -> Result<Arc<Kernel>> {
        let key: PipelineKey = (
            file,
            source.as_ptr() as usize,
            entry,
            constants
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_bits()))
                .collect(),
        );
        {
            let cache = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(k) = cache.get(&key) {
                return Ok(k.clone());
            }
        }
        let label = format!("{file}::{entry}");
        let kernel = self.scoped(&format!("compiling kernel {label}"), || {
            self.compile(file, source, entry, bindings, constants, label.clone())
        })?;
        let kernel = Arc::new(kernel);
        self.pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, kernel.clone());
        Ok(kernel)
    }
}

/// The best adapter among `backends` whose name contains `name_filter`:
/// hardware before software, native APIs before GL.
/// The adapter `adapter` is, found through a new instance (None if that
/// instance does not list it).
#[cfg(not(target_arch = "wasm32"))]
async fn same_adapter_anew(adapter: &wgpu::Adapter) -> Option<wgpu::Adapter> {
    let info = adapter.get_info();
    let backends: wgpu::Backends = info.backend.into();
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let found = instance.enumerate_adapters(backends).await;
    found.into_iter().find(|a| a.get_info() == info)
}

async fn choose_adapter(
    backends: wgpu::Backends,
    name_filter: Option<&str>,
) -> Result<wgpu::Adapter> {
    // Native APIs first; GL (EGL) is only probed when they offer nothing
    // usable, which keeps start-up fast and quiet where Vulkan works.
    let native = backends - wgpu::Backends::GL;
    let mut adapters = Vec::new();
    for group in [native, backends & wgpu::Backends::GL] {
        if group.is_empty() {
            continue;
        }
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = group;
        let instance = wgpu::Instance::new(desc);
        let found = instance.enumerate_adapters(group).await;
        let usable = found.iter().any(|a| match name_filter {
            Some(f) => a
                .get_info()
                .name
                .to_ascii_lowercase()
                .contains(&f.to_ascii_lowercase()),
            None => true,
        });
        adapters.extend(found);
        if usable {
            break;
        }
    }
    let seen: Vec<String> = adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?})", i.name, i.backend)
        })
        .collect();
    if let Some(filter) = name_filter {
        let f = filter.to_ascii_lowercase();
        adapters.retain(|a| a.get_info().name.to_ascii_lowercase().contains(&f));
    }
    adapters.sort_by_key(|a| {
        let i = a.get_info();
        (type_rank(i.device_type), backend_rank(i.backend))
    });
    adapters.into_iter().next().ok_or_else(|| {
        let detail = match name_filter {
            Some(f) => format!(
                ". TASKGRAD_ADAPTER={f:?} matched none of the adapters found: [{}]",
                seen.join(", ")
            ),
            None => String::new(),
        };
        Error::NoAdapter {
            tried: backends_string(backends),
            detail,
        }
    })
}

/// The bind-group layout entry of one binding of a compute kernel.
fn layout_entry(binding: u32, b: Binding) -> wgpu::BindGroupLayoutEntry {
    let ty = match b {
        Binding::Uniform => wgpu::BufferBindingType::Uniform,
        Binding::ReadOnly => wgpu::BufferBindingType::Storage { read_only: true },
        Binding::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
    };
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// Whether `adapter` offers the cooperative-matrix configuration
/// `matmul_coop.wgsl` uses: 16×16×16, f16 A and B, f32 C.
fn coop_f16_16(adapter: &wgpu::Adapter) -> bool {
    use wgpu::wgt::CooperativeScalarType as S;
    adapter
        .features()
        .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
        && adapter.cooperative_matrix_properties().iter().any(|p| {
            (p.m_size, p.n_size, p.k_size) == (16, 16, 16)
                && p.ab_type == S::F16
                && p.cr_type == S::F32
        })
}
