//! Command-line definition.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "nsod",
    version,
    about = "Neurosymbolic object detection for large aerial images, with built-in telemetry"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// ONNX Runtime library (file or folder); otherwise $ORT_DYLIB_PATH, the folder scripts/setup.sh fills, then
    /// the executable's folder.
    #[arg(long, global = true, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the ONNX Runtime library and version, its execution providers, the GPUs NVML sees, and the default
    /// model and rules paths.
    Doctor,
}
