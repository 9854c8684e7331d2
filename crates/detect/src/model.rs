//! An ONNX Runtime session for a YOLO model, with its metadata and output layout.

use crate::DetectError;
use crate::layout::Layout;
use crate::metadata::{ModelMetadata, Task};
use nsod_runtime::Runtime;
use nsod_types::ClassNames;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::{Tensor, TensorRef, ValueType};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// The CUDA execution provider on GPU `N`.
    Cuda(u32),
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device {s:?}: use cpu, cuda or cuda:N")),
        }
    }
}

/// How a pipelined run ([`crate::Detector::detect_stream`]) hands its batches to the session. In a configuration
/// file (`io_binding`) and on the command line: `auto`, `off` (plain) or `on` (bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum IoMode {
    /// Bound on a GPU, plain on the CPU.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// `session.run` on a host buffer the session reads in place; the output copied out once.
    #[serde(rename = "off")]
    Plain,
    /// ONNX Runtime IoBinding: each batch is letterboxed straight into a tensor of the session's host allocator
    /// (page-locked CUDA memory on a GPU, so the copy to the device is one DMA transfer), and the output is written
    /// into such a tensor and decoded where it lies. Every run takes the full batch (the last one is padded), so a
    /// GPU sees one input shape.
    #[serde(rename = "on")]
    Bound,
}

setting_words!(IoMode, "io_binding", { Auto => "auto", Bound => "on", Plain => "off" });

/// ONNX Runtime's graph optimisation level (`graph_optimization`): `all` (ONNX Runtime's default, and the fastest
/// here for float and INT8 models alike), `extended`, `basic` or `off`. A result setting: fusions change the floats
/// (by up to 2e-3 px in the boxes of the shared YOLOv8 OBB model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum GraphOptimization {
    #[default]
    #[serde(rename = "all")]
    All,
    #[serde(rename = "extended")]
    Extended,
    #[serde(rename = "basic")]
    Basic,
    #[serde(rename = "off")]
    Off,
}

impl GraphOptimization {
    fn level(self) -> ort::session::builder::GraphOptimizationLevel {
        use ort::session::builder::GraphOptimizationLevel as L;
        match self {
            Self::All => L::All,
            Self::Extended => L::Level2,
            Self::Basic => L::Level1,
            Self::Off => L::Disable,
        }
    }
}

setting_words!(GraphOptimization, "graph_optimization", {
    All => "all",
    Extended => "extended",
    Basic => "basic",
    Off => "off",
});

/// Whether ONNX Runtime's intra-op threads spin before they sleep (`spinning`): `on`, `off`, or `auto` (see
/// [`Spinning::AUTO`]; `nsod serve` resolves `auto` to off). Spinning saves the wake-ups between a run's operators
/// and burns a core while a thread waits: measured by `benches/quantize.sh` on the 4096² mosaic, the whole
/// `nsod infer` ran 5–7 % faster with it (float and INT8) for 12–23 % more CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Spinning {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "on")]
    On,
    #[serde(rename = "off")]
    Off,
}

impl Spinning {
    /// What `auto` means in batch runs (`nsod infer`, `track`, `quantize`): on, the faster (docs/quantize.md).
    pub const AUTO: bool = true;

    /// Whether the intra-op threads spin.
    pub fn enabled(self) -> bool {
        match self {
            Self::Auto => Self::AUTO,
            Self::On => true,
            Self::Off => false,
        }
    }
}

setting_words!(Spinning, "spinning", { Auto => "auto", On => "on", Off => "off" });

/// How to open a model.
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    pub device: Device,
    /// Intra-op threads (0: ONNX Runtime's default).
    pub threads: usize,
    /// Class names overriding (or replacing missing) metadata.
    pub names: Option<ClassNames>,
    /// IoBinding for pipelined runs.
    pub io: IoMode,
    /// ONNX Runtime's graph optimisation level.
    pub graph_optimization: GraphOptimization,
    /// Whether the intra-op threads spin.
    pub spinning: Spinning,
}

impl ModelOptions {
    /// Whether pipelined runs bind their inputs and outputs ([`IoMode::Auto`]: on a GPU).
    pub fn bound(&self) -> bool {
        match self.io {
            IoMode::Auto => matches!(self.device, Device::Cuda(_)),
            IoMode::Plain => false,
            IoMode::Bound => true,
        }
    }
}

/// Which execution provider ran how many of the model's nodes in a session's first run (read from ONNX Runtime's
/// profile of that run: what actually ran, not what was asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub provider: String,
    pub nodes: usize,
}

/// The providers of a profile (ONNX Runtime's Chrome-trace JSON): each node's kernel event names its provider.
pub fn placements(profile: &str) -> Result<Vec<Placement>, String> {
    let events: Vec<serde_json::Value> =
        serde_json::from_str(profile).map_err(|e| format!("not a profile: {e}"))?;
    let mut nodes: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for e in &events {
        let (Some("Node"), Some(name), Some(provider)) = (
            e["cat"].as_str(),
            e["name"].as_str(),
            e["args"]["provider"].as_str(),
        ) else {
            continue;
        };
        if let Some(node) = name.strip_suffix("_kernel_time") {
            nodes
                .entry(provider.to_owned())
                .or_default()
                .insert(node.to_owned());
        }
    }
    if nodes.is_empty() {
        return Err("the profile lists no node".into());
    }
    let mut out: Vec<Placement> = nodes
        .into_iter()
        .map(|(provider, n)| Placement {
            provider,
            nodes: n.len(),
        })
        .collect();
    out.sort_by(|a, b| b.nodes.cmp(&a.nodes).then(a.provider.cmp(&b.provider)));
    Ok(out)
}

/// A model input batch being filled: a host buffer, or a tensor of the session's (pinned) host allocator.
#[derive(Debug)]
pub struct InputBuffer(InputData);

#[derive(Debug)]
enum InputData {
    Host(Vec<f32>),
    Bound(Tensor<f32>),
}

impl InputBuffer {
    /// An empty host buffer (it grows to the batch).
    pub fn host() -> Self {
        Self(InputData::Host(Vec::new()))
    }

    /// The values of `n` images of `per_image` values each: a host buffer is resized to them (new values are the
    /// letterbox padding), a bound tensor has its batch fixed (`n` must fit in it; its other images are padding).
    pub(crate) fn slots(&mut self, n: usize, per_image: usize) -> Result<&mut [f32], DetectError> {
        match &mut self.0 {
            InputData::Host(v) => {
                v.resize(n * per_image, crate::preprocess::PAD);
                Ok(v)
            }
            InputData::Bound(t) => {
                let (_, data) = t.try_extract_tensor_mut().map_err(DetectError::Run)?;
                if data.len() < n * per_image {
                    return Err(DetectError::Output(format!(
                        "a bound input holds {} values, fewer than the batch's {}",
                        data.len(),
                        n * per_image
                    )));
                }
                Ok(data)
            }
        }
    }
}

/// A model run's first output: its shape and values, in a host buffer or in the bound output tensor.
#[derive(Debug)]
pub struct OutputBuffer {
    pub shape: Vec<usize>,
    data: OutputData,
}

#[derive(Debug)]
enum OutputData {
    Host(Vec<f32>),
    Bound(Tensor<f32>),
}

impl OutputBuffer {
    /// The values, batch first.
    pub fn data(&self) -> Result<&[f32], DetectError> {
        match &self.data {
            OutputData::Host(v) => Ok(v),
            OutputData::Bound(t) => t
                .try_extract_tensor()
                .map(|(_, d)| d)
                .map_err(DetectError::Run),
        }
    }

    /// The host buffer, to be reused for a later run's output.
    pub fn into_host(self) -> Option<Vec<f32>> {
        match self.data {
            OutputData::Host(v) => Some(v),
            OutputData::Bound(_) => None,
        }
    }
}

/// IoBinding state of a session: the binding, the allocators of its host tensors (CUDA pinned memory on a GPU;
/// `None`: the session's own CPU allocator) and the output's dimensions after the batch, learnt by the first run.
#[derive(Debug)]
struct Bound {
    binding: IoBinding,
    inputs: Option<Allocator>,
    outputs: Option<Allocator>,
    output_name: String,
    out_dims: Option<[usize; 2]>,
}

/// What nsod knows about a model file, shared by every session of it (immutable, `Send + Sync`).
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub metadata: ModelMetadata,
    pub names: ClassNames,
    pub layout: Layout,
    pub input_name: String,
    /// `(height, width)` the model takes.
    pub input_hw: (u32, u32),
    /// `None` for a dynamic batch axis, else the fixed batch size.
    pub fixed_batch: Option<usize>,
    /// Whether the input's height and width are dynamic (then [`ModelInfo::input_hw`] is the metadata's `imgsz`,
    /// and inputs may be smaller: Ultralytics' minimum rectangle, [`crate::Rect`]).
    pub dynamic_hw: bool,
    /// The model's largest stride (metadata `stride`, else 32): a dynamic input's sides are multiples of it.
    pub stride: u32,
    pub device: Device,
    pub options: ModelOptions,
}

impl ModelInfo {
    /// The largest batch this model can take (`cap` for a dynamic batch axis).
    pub fn max_batch(&self, cap: usize) -> usize {
        self.fixed_batch.unwrap_or(cap.max(1))
    }
}

/// One ONNX Runtime session of a model: what a worker thread runs. It keeps its share of the runtime alive, so a
/// session never outlives the library it was built on.
#[derive(Debug)]
pub struct Model {
    session: Session,
    pub info: Arc<ModelInfo>,
    runtime: Arc<Runtime>,
    /// Where ONNX Runtime profiles the first run (removed once read).
    profile: Option<tempfile::TempDir>,
    placements: Option<Result<Vec<Placement>, String>>,
    bound: Option<Bound>,
}

/// A session, profiled until its first run ends when `profile` is given (the file prefix).
fn session(
    runtime: &Runtime,
    path: &Path,
    opts: &ModelOptions,
    profile: Option<&Path>,
) -> Result<Session, DetectError> {
    let load_err = |message: &str, source: ort::Error| DetectError::Model {
        path: path.to_path_buf(),
        message: message.into(),
        source: Some(source),
    };
    let mut builder = Session::builder(runtime.environment())
        .map_err(|e| load_err("cannot create a session", e))?;
    builder = builder
        .with_intra_op_spinning(opts.spinning.enabled())
        .map_err(|e| load_err("cannot configure the session", e.into()))?
        .with_optimization_level(opts.graph_optimization.level())
        .map_err(|e| load_err("cannot configure the session", e.into()))?;
    if opts.threads > 0 {
        builder = builder
            .with_intra_threads(opts.threads)
            .map_err(|e| load_err("cannot configure the session", e.into()))?;
    }
    if let Some(p) = profile {
        builder = builder
            .with_profiling(p)
            .map_err(|e| load_err("cannot configure the session", e.into()))?;
    }
    if let Device::Cuda(id) = opts.device {
        builder = register_cuda(builder, id, runtime).map_err(DetectError::Device)?;
    }
    builder.commit_from_file(path).map_err(|e| {
        // The CUDA provider may fail only when the session is created (its libraries, the driver, the GPU).
        match (opts.device, crate::cuda::diagnose(&e.to_string())) {
            (Device::Cuda(id), Some(why)) => {
                DetectError::Device(format!("--device cuda:{id}: {why}"))
            }
            _ => load_err("not a loadable ONNX model", e),
        }
    })
}

/// A folder for a session's first-run profile; `None` (no provider report) when no temporary folder can be made.
fn profile_dir() -> Option<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("nsod-profile-")
        .tempdir()
        .ok()
}

fn tensor_shape(t: &ValueType) -> Option<Vec<i64>> {
    match t {
        ValueType::Tensor { shape, .. } => Some(shape.iter().copied().collect()),
        _ => None,
    }
}

impl Model {
    /// Opens `path` on the runtime's environment, reads the metadata and recognises the output layout.
    pub fn load(
        runtime: &Arc<Runtime>,
        path: &Path,
        opts: &ModelOptions,
    ) -> Result<Self, DetectError> {
        let load_err = |message: String| DetectError::Model {
            path: path.to_path_buf(),
            message,
            source: None,
        };
        if !path.is_file() {
            return Err(load_err("no such file".into()));
        }
        let profile = profile_dir();
        let session = session(
            runtime,
            path,
            opts,
            profile.as_ref().map(|d| d.path().join("run")).as_deref(),
        )?;
        let meta_raw = session.metadata().map_err(|e| DetectError::Model {
            path: path.to_path_buf(),
            message: "cannot read the metadata".into(),
            source: Some(e),
        })?;
        let metadata = ModelMetadata::parse(|k| meta_raw.custom(k)).map_err(load_err)?;
        drop(meta_raw);
        let names = opts
            .names
            .clone()
            .or_else(|| metadata.names.clone())
            .unwrap_or_default();

        let input = session
            .inputs()
            .first()
            .ok_or_else(|| load_err("the model has no input".into()))?;
        let input_name = input.name().to_owned();
        let in_shape = tensor_shape(input.dtype())
            .ok_or_else(|| load_err("the first input is not a tensor".into()))?;
        let [b, c, h, w] = in_shape[..] else {
            return Err(load_err(format!(
                "input {input_name:?} has shape {in_shape:?}, expected [batch, 3, height, width]"
            )));
        };
        if c != 3 && c != -1 {
            return Err(load_err(format!(
                "input {input_name:?} has {c} channels, expected 3"
            )));
        }
        let input_hw = match (h, w, metadata.imgsz) {
            (h, w, _) if h > 0 && w > 0 => {
                let hw = (
                    u32::try_from(h).unwrap_or(u32::MAX),
                    u32::try_from(w).unwrap_or(u32::MAX),
                );
                check_input_size(hw, "input shape").map_err(load_err)?;
                hw
            }
            (_, _, Some(hw)) => {
                check_input_size(hw, "metadata imgsz").map_err(load_err)?;
                hw
            }
            _ => {
                return Err(load_err(
                    "the input size is dynamic and the metadata has no imgsz".into(),
                ));
            }
        };
        let output = session
            .outputs()
            .first()
            .ok_or_else(|| load_err("the model has no output".into()))?;
        let out_shape = tensor_shape(output.dtype())
            .ok_or_else(|| load_err("the first output is not a tensor".into()))?;
        let nc = (!names.is_empty()).then(|| names.len());
        let layout = Layout::recognise(
            &out_shape,
            nc,
            metadata.task == Some(Task::Obb),
            metadata.end2end,
        )
        .map_err(|m| DetectError::Layout {
            path: path.to_path_buf(),
            message: format!("input {in_shape:?}, {m}"),
        })?;
        let stride = metadata
            .stride
            .filter(|s| (1..=1024).contains(s))
            .unwrap_or(32);
        let info = ModelInfo {
            path: path.to_path_buf(),
            metadata,
            names,
            layout,
            input_name,
            input_hw,
            fixed_batch: (b > 0).then_some(b as usize),
            dynamic_hw: h <= 0 && w <= 0,
            stride,
            device: opts.device,
            options: opts.clone(),
        };
        Ok(Self {
            session,
            info: Arc::new(info),
            runtime: runtime.clone(),
            profile,
            placements: None,
            bound: None,
        })
    }

    /// Another session of the same model (for another worker thread), with the same options.
    pub fn another(&self) -> Result<Self, DetectError> {
        Self::open(&self.runtime, self.info.clone())
    }

    /// A session of a model already read by [`Model::load`].
    pub fn open(runtime: &Arc<Runtime>, info: Arc<ModelInfo>) -> Result<Self, DetectError> {
        let profile = profile_dir();
        Ok(Self {
            session: session(
                runtime,
                &info.path,
                &info.options,
                profile.as_ref().map(|d| d.path().join("run")).as_deref(),
            )?,
            info,
            runtime: runtime.clone(),
            profile,
            placements: None,
            bound: None,
        })
    }

    /// Which execution providers ran the model's nodes, from the profile of this session's first run (`None`
    /// before it; an error when the profile could not be read).
    pub fn placements(&self) -> Option<&Result<Vec<Placement>, String>> {
        self.placements.as_ref()
    }

    /// Runs one batch of padding when the session has not run yet, so that [`Model::placements`] is known
    /// (`nsod doctor`).
    pub fn probe(&mut self) -> Result<&Result<Vec<Placement>, String>, DetectError> {
        if self.placements.is_none() {
            let (h, w) = (self.info.input_hw.0 as usize, self.info.input_hw.1 as usize);
            let n = self.info.fixed_batch.unwrap_or(1);
            let input = vec![crate::preprocess::PAD; n * 3 * h * w];
            self.run(&input, n)?;
        }
        Ok(self
            .placements
            .get_or_insert_with(|| Err("no profile".into())))
    }

    /// Ends the first run's profile and reads the providers from it.
    fn end_profile(&mut self) {
        let Some(dir) = self.profile.take() else {
            return;
        };
        let read = self
            .session
            .end_profiling()
            .map_err(|e| format!("cannot end the profile: {e}"))
            .and_then(|file| {
                std::fs::read_to_string(&file).map_err(|e| format!("cannot read {file}: {e}"))
            })
            .and_then(|text| placements(&text));
        self.placements = Some(read);
        drop(dir);
    }

    /// Runs `n` images stored planar in `input` (`n x 3 x h x w`) and returns the first output's shape and values.
    pub fn run(&mut self, input: &[f32], n: usize) -> Result<(Vec<usize>, Vec<f32>), DetectError> {
        self.run_hw(input, n, self.info.input_hw)
    }

    /// [`Model::run`] on inputs of `(height, width)` (smaller than the model's size for minimum rectangles).
    pub fn run_hw(
        &mut self,
        input: &[f32],
        n: usize,
        hw: (u32, u32),
    ) -> Result<(Vec<usize>, Vec<f32>), DetectError> {
        let mut out = Vec::new();
        let shape = self.run_into(input, n, hw, &mut out)?;
        Ok((shape, out))
    }

    /// [`Model::run_hw`] with the output copied into `out` (reused: no allocation once it has grown).
    pub fn run_into(
        &mut self,
        input: &[f32],
        n: usize,
        hw: (u32, u32),
        out: &mut Vec<f32>,
    ) -> Result<Vec<usize>, DetectError> {
        let (h, w) = (hw.0 as usize, hw.1 as usize);
        let tensor = TensorRef::from_array_view(([n, 3, h, w], input)).map_err(DetectError::Run)?;
        let outputs = self
            .session
            .run(ort::inputs![self.info.input_name.as_str() => tensor])
            .map_err(DetectError::Run)?;
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(DetectError::Run)?;
        let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        out.clear();
        out.extend_from_slice(data);
        drop(outputs);
        if self.profile.is_some() {
            self.end_profile();
        }
        Ok(shape)
    }

    /// Whether [`Model::run_buffer`] uses IoBinding ([`ModelOptions::bound`]).
    pub fn is_bound(&self) -> bool {
        self.info.options.bound()
    }

    /// The IoBinding state, made on first use: on a GPU, allocators of page-locked host memory for inputs and
    /// outputs.
    fn binding(&mut self) -> Result<&mut Bound, DetectError> {
        if self.bound.is_none() {
            let pinned = |kind: MemoryType| -> Result<Option<Allocator>, DetectError> {
                match self.info.device {
                    Device::Cpu => Ok(None),
                    Device::Cuda(id) => MemoryInfo::new(
                        AllocationDevice::CUDA_PINNED,
                        id as i32,
                        AllocatorType::Device,
                        kind,
                    )
                    .and_then(|m| Allocator::new(&self.session, m))
                    .map(Some)
                    .map_err(|e| {
                        DetectError::Device(format!(
                            "--device cuda:{id}: no page-locked host memory for IoBinding: {e}"
                        ))
                    }),
                }
            };
            let inputs = pinned(MemoryType::CPUInput)?;
            let outputs = pinned(MemoryType::CPUOutput)?;
            let output_name = self
                .session
                .outputs()
                .first()
                .map(|o| o.name().to_owned())
                .unwrap_or_default();
            let binding = self.session.create_binding().map_err(DetectError::Run)?;
            self.bound = Some(Bound {
                binding,
                inputs,
                outputs,
                output_name,
                out_dims: None,
            });
        }
        self.bound
            .as_mut()
            .ok_or_else(|| DetectError::Output("no IoBinding".into()))
    }

    /// `count` input buffers for batches of `batch` images: host buffers, or (`bound`, and the session binds) tensors
    /// of the session's host allocator holding the whole batch, filled with the letterbox padding.
    pub fn input_buffers(
        &mut self,
        count: usize,
        batch: usize,
        bound: bool,
    ) -> Result<Vec<InputBuffer>, DetectError> {
        if !bound || !self.is_bound() {
            return Ok((0..count).map(|_| InputBuffer::host()).collect());
        }
        let (h, w) = (self.info.input_hw.0 as usize, self.info.input_hw.1 as usize);
        let b = self.binding()?;
        let alloc = b.inputs.take();
        let made = (0..count)
            .map(|_| {
                let mut t = Tensor::<f32>::new(
                    alloc.as_ref().unwrap_or(self.session.allocator()),
                    [batch, 3, h, w],
                )
                .map_err(DetectError::Run)?;
                let (_, data) = t.try_extract_tensor_mut().map_err(DetectError::Run)?;
                data.fill(crate::preprocess::PAD);
                Ok(InputBuffer(InputData::Bound(t)))
            })
            .collect();
        if let Some(b) = self.bound.as_mut() {
            b.inputs = alloc;
        }
        made
    }

    /// Runs the first `n` images of `input`, of `(height, width)` each (a bound tensor runs its whole batch, of the
    /// model's input size). `spare` is a host buffer to reuse for the output of an unbound run.
    pub fn run_buffer(
        &mut self,
        input: &InputBuffer,
        n: usize,
        hw: (u32, u32),
        spare: Option<Vec<f32>>,
    ) -> Result<OutputBuffer, DetectError> {
        let tensor = match &input.0 {
            InputData::Host(v) => {
                let mut out = spare.unwrap_or_default();
                let shape = self.run_into(v, n, hw, &mut out)?;
                return Ok(OutputBuffer {
                    shape,
                    data: OutputData::Host(out),
                });
            }
            InputData::Bound(t) => t,
        };
        let name = self.info.input_name.clone();
        let dims = self.binding()?.out_dims;
        let Some([d1, d2]) = dims else {
            // The first run learns the output's dimensions, into host memory.
            let outputs = self
                .session
                .run(ort::inputs![name.as_str() => tensor])
                .map_err(DetectError::Run)?;
            let (shape, data) = outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(DetectError::Run)?;
            let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
            let data = data.to_vec();
            drop(outputs);
            if let [_, d1, d2] = shape[..]
                && let Some(b) = self.bound.as_mut()
            {
                b.out_dims = Some([d1, d2]);
            }
            if self.profile.is_some() {
                self.end_profile();
            }
            return Ok(OutputBuffer {
                shape,
                data: OutputData::Host(data),
            });
        };
        let batch = tensor.shape().first().map_or(1, |&b| b.max(1) as usize);
        let Some(b) = self.bound.as_mut() else {
            return Err(DetectError::Output("no IoBinding".into()));
        };
        let mut out = Tensor::<f32>::new(
            b.outputs.as_ref().unwrap_or(self.session.allocator()),
            [batch, d1, d2],
        )
        .map_err(DetectError::Run)?;
        b.binding
            .bind_input(name.as_str(), tensor)
            .map_err(DetectError::Run)?;
        b.binding
            .bind_output(b.output_name.as_str(), &mut out)
            .map_err(DetectError::Run)?;
        let run = self
            .session
            .run_binding(&b.binding)
            .map(drop)
            .map_err(DetectError::Run);
        b.binding.clear();
        run?;
        Ok(OutputBuffer {
            shape: vec![batch, d1, d2],
            data: OutputData::Bound(out),
        })
    }
}

/// The model input sides nsod accepts (YOLO strides are 32; 8192 px is a 805 MB float input per image).
pub const INPUT_SIDES: std::ops::RangeInclusive<u32> = 32..=8192;

/// An error when a model's input size (from `what`) is zero or absurd.
pub fn check_input_size((h, w): (u32, u32), what: &str) -> Result<(), String> {
    if INPUT_SIDES.contains(&h) && INPUT_SIDES.contains(&w) {
        Ok(())
    } else {
        Err(format!(
            "the {what} gives an input of {h} x {w} px; each side must be between {} and {} px",
            INPUT_SIDES.start(),
            INPUT_SIDES.end()
        ))
    }
}

#[cfg(feature = "cuda")]
fn register_cuda(
    builder: ort::session::builder::SessionBuilder,
    id: u32,
    runtime: &Runtime,
) -> Result<ort::session::builder::SessionBuilder, String> {
    let eps = runtime.available_providers().unwrap_or_default();
    if !eps.iter().any(|e| e == "CUDAExecutionProvider") {
        return Err(format!(
            "--device cuda:{id}: the ONNX Runtime at {} has no CUDA execution provider (it offers {}); run scripts/setup.sh --gpu",
            runtime.path.display(),
            eps.join(", ")
        ));
    }
    let ep = ort::ep::CUDA::default()
        .with_device_id(id as i32)
        .build()
        .error_on_failure();
    builder.with_execution_providers([ep]).map_err(|e| {
        let e = e.to_string();
        format!(
            "--device cuda:{id}: {}",
            crate::cuda::diagnose(&e).unwrap_or(e)
        )
    })
}

#[cfg(not(feature = "cuda"))]
fn register_cuda(
    _: ort::session::builder::SessionBuilder,
    id: u32,
    _: &Runtime,
) -> Result<ort::session::builder::SessionBuilder, String> {
    Err(format!(
        "--device cuda:{id}: this nsod was built without CUDA support; build with --features cuda (scripts/setup.sh --gpu)"
    ))
}
