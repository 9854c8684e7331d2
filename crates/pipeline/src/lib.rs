//! nsod's per-image pipeline as a library: the API every front end (`nsod infer`, `nsod symbolic`, `nsod kg`, and
//! later servers and shards) builds on, so none of them copies pipeline code.
//!
//! * [`PipelineConfig`]: every setting, with Ultralytics/SAHI defaults, validated, readable from a TOML file.
//! * [`Pipeline`]: the immutable, shareable plan (model information, rule base, thresholds); [`Worker`]: one ONNX
//!   Runtime session and one scene-rules session, taking one image through detection, the rules and the knowledge
//!   graph ([`Worker::process`]) and returning an [`ImageOutcome`] of plain data, with no file I/O.
//! * [`inputs`]: the images of a run (folders walked, sorted, names checked for collisions).
//! * [`sink`]: where outcomes go; [`RunDirSink`] writes the run folder (streams, atomic files, resume, manifest).
//! * [`source`]: the decode stage: images decoded in memory, or rasters of any size read window by window through
//!   GDAL, with their georeferencing.
//! * [`runner`]: the batch loop (decode ahead, failures reported, signals).
//! * [`shard`]: sharded runs: the plan, one shard's run into its folder, and the exact merge.
//!
//! The crate never prints and never touches metrics: front ends observe the run ([`runner::Observer`]) and record
//! outcomes with nsod-telemetry's handles.

pub mod cmc;
pub mod config;
pub mod folder;
pub mod inputs;
pub mod pipeline;
pub mod runner;
pub mod settings;
pub mod shard;
pub mod sink;
pub mod source;
pub mod track;
pub mod track_rules;
#[cfg(feature = "video")]
pub mod video;

pub use config::{ConfigError, PipelineConfig};
pub use inputs::{InputError, Job};
/// The run folder's file names (see [`nsod_types::layout`]).
pub use nsod_types::layout;
pub use nsod_types::outcome::{ImageOutcome, Stage};
pub use pipeline::{BuildReport, Environment, Overrides, Pipeline, Worker};
pub use runner::{Decode, Feed, Observer, run, run_feed};
pub use sink::{RunDirOptions, RunDirSink, RunSummary, Sink, SinkError};
pub use source::{LoadedImage, Pixels};

use std::path::PathBuf;

/// Why the pipeline cannot run, or an image failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A setting's value cannot be used (named with where it came from: a flag, a request parameter).
    #[error(transparent)]
    Setting(#[from] settings::SettingError),
    /// The inputs cannot be used.
    #[error(transparent)]
    Inputs(#[from] InputError),
    /// A file the configuration names cannot be read.
    #[error("{}: cannot read", path.display())]
    Input {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A names or pairs file is not valid.
    #[error("{}: {message}", path.display())]
    Names { path: PathBuf, message: String },
    /// ONNX Runtime is missing or refused to start.
    #[error("{0}")]
    Runtime(String),
    /// The model cannot be used.
    #[error(transparent)]
    Model(nsod_detect::DetectError),
    /// The rule base cannot be used.
    #[error(transparent)]
    Rules(nsod_symbolic::SymbolicError),
    /// An image could not be decoded.
    #[error(transparent)]
    Decode(nsod_detect::DetectError),
    /// Predictions given as input could not be read (a record, the folder).
    #[error(transparent)]
    Predictions(#[from] inputs::PredictionsError),
    /// Detection failed on an image.
    #[error(transparent)]
    Detect(nsod_detect::DetectError),
    /// A video could not be read.
    #[cfg(feature = "video")]
    #[error(transparent)]
    Video(nsod_video::VideoError),
    /// A sink could not write.
    #[error(transparent)]
    Sink(SinkError),
    /// An image's detections could not be put on the map.
    #[error("{image}: georeferencing: {message}")]
    Georef { image: String, message: String },
}

impl PipelineError {
    /// True when a signal stopped the image (not a failure of the image).
    pub fn is_interrupted(&self) -> bool {
        matches!(self, Self::Detect(nsod_detect::DetectError::Interrupted))
    }

    /// True when the image's own bytes could not be read or decoded (a damaged file, a window of a truncated raster
    /// read during detection): the input's fault, not the pipeline's.
    pub fn is_unreadable_input(&self) -> bool {
        matches!(
            self,
            Self::Decode(_) | Self::Detect(nsod_detect::DetectError::Image { .. })
        )
    }

    /// True for errors of the setup (configuration, model, rules, inputs): the front end exits with its
    /// configuration-error code.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::Setting(_)
                | Self::Inputs(_)
                | Self::Input { .. }
                | Self::Names { .. }
                | Self::Runtime(_)
                | Self::Model(_)
                | Self::Rules(_)
        ) || matches!(self, Self::Sink(SinkError::Resume { .. }))
    }
}

/// An error and its causes on one line, joined by `: ` (what anyhow's `{:#}` prints).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.ends_with(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
