//! An ONNX Runtime session for a YOLO model, with its metadata and output layout.

use crate::DetectError;
use crate::layout::Layout;
use crate::metadata::{ModelMetadata, Task};
use nsod_runtime::Runtime;
use nsod_types::ClassNames;
use ort::session::Session;
use ort::value::{TensorRef, ValueType};
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

/// How to open a model.
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    pub device: Device,
    /// Intra-op threads (0: ONNX Runtime's default).
    pub threads: usize,
    /// Class names overriding (or replacing missing) metadata.
    pub names: Option<ClassNames>,
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
}

fn session(runtime: &Runtime, path: &Path, opts: &ModelOptions) -> Result<Session, DetectError> {
    let load_err = |message: &str, source: ort::Error| DetectError::Model {
        path: path.to_path_buf(),
        message: message.into(),
        source: Some(source),
    };
    let mut builder = Session::builder(runtime.environment())
        .map_err(|e| load_err("cannot create a session", e))?;
    builder = builder
        .with_intra_op_spinning(false)
        .map_err(|e| load_err("cannot configure the session", e.into()))?;
    if opts.threads > 0 {
        builder = builder
            .with_intra_threads(opts.threads)
            .map_err(|e| load_err("cannot configure the session", e.into()))?;
    }
    if let Device::Cuda(id) = opts.device {
        builder = register_cuda(builder, id, runtime).map_err(DetectError::Device)?;
    }
    builder
        .commit_from_file(path)
        .map_err(|e| load_err("not a loadable ONNX model", e))
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
        let session = session(runtime, path, opts)?;
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
        let info = ModelInfo {
            path: path.to_path_buf(),
            metadata,
            names,
            layout,
            input_name,
            input_hw,
            fixed_batch: (b > 0).then_some(b as usize),
            device: opts.device,
            options: opts.clone(),
        };
        Ok(Self {
            session,
            info: Arc::new(info),
            runtime: runtime.clone(),
        })
    }

    /// Another session of the same model (for another worker thread), with the same options.
    pub fn another(&self) -> Result<Self, DetectError> {
        Self::open(&self.runtime, self.info.clone())
    }

    /// A session of a model already read by [`Model::load`].
    pub fn open(runtime: &Arc<Runtime>, info: Arc<ModelInfo>) -> Result<Self, DetectError> {
        Ok(Self {
            session: session(runtime, &info.path, &info.options)?,
            info,
            runtime: runtime.clone(),
        })
    }

    /// Runs `n` images stored planar in `input` (`n x 3 x h x w`) and returns the first output's shape and values.
    pub fn run(&mut self, input: &[f32], n: usize) -> Result<(Vec<usize>, Vec<f32>), DetectError> {
        let (h, w) = (self.info.input_hw.0 as usize, self.info.input_hw.1 as usize);
        let tensor = TensorRef::from_array_view(([n, 3, h, w], input)).map_err(DetectError::Run)?;
        let outputs = self
            .session
            .run(ort::inputs![self.info.input_name.as_str() => tensor])
            .map_err(DetectError::Run)?;
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(DetectError::Run)?;
        let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        Ok((shape, data.to_vec()))
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
    builder
        .with_execution_providers([ep])
        .map_err(|e| format!("--device cuda:{id}: {e}"))
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
