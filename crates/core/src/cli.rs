//! Command-line definition.

use crate::settings::{
    ConfigArgs, InferSet, KgSet, MetricsSet, QuantizeSet, ServeSet, SettingFlags, SymbolicSet,
    TrackSet,
};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// `0.1.0 (git 6f7d7da1b2c3, tested with ONNX Runtime 1.31.1)`, for `nsod --version`.
pub fn version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        format!(
            "{} (git {}, tested with ONNX Runtime {})",
            env!("CARGO_PKG_VERSION"),
            env!("NSOD_GIT_SHA"),
            nsod_runtime::EXPECTED_VERSION
        )
    })
}

#[derive(Debug, Parser)]
#[command(
    name = "nsod",
    version = version(),
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
    /// Print errors and warnings only (no progress, summaries or notes).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more: one line per image, the paths and versions resolved.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the ONNX Runtime library and version, its execution providers, the GPUs NVML sees, and the default
    /// model and rules paths, the CPU's INT8 instructions; with --model FILE, that model's metadata and provenance.
    Doctor(DoctorArgs),
    /// Detect objects in images (files or folders, walked recursively).
    Infer(Box<InferArgs>),
    /// List the work of a sharded run once (images, and tiles of large rasters) into a plan that every shard and
    /// the merge share: `nsod infer --plan PLAN --shard I/N` runs one shard, `nsod merge` joins them.
    Plan(Box<PlanArgs>),
    /// Join the shards of a sharded run into one run folder, as if one process had run.
    Merge(Box<MergeArgs>),
    /// Serve the pipeline over HTTP: the Open Inference Protocol (KServe v2) and POST /v1/detect, with /metrics.
    Serve(Box<ServeArgs>),
    /// Track objects through a sequence of frames: each frame through the pipeline as `nsod infer` runs it
    /// (slicing, merge, rules), then an oriented multi-object tracker; tracks as JSON lines, MOTChallenge text and a
    /// per-track summary.
    Track(Box<TrackArgs>),
    /// Make a calibrated INT8 model from your own images (ONNX Runtime's static quantiser, the head kept in float),
    /// check its agreement with the float model on held-out images, and write it only when it agrees.
    Quantize(Box<QuantizeArgs>),
    /// Refine existing predictions with Prolog rules and explain every change.
    Symbolic(SymbolicArgs),
    /// Rule base tools.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// List every setting: its TOML key, its flag, its kind (result, execution, output), its nsod serve request
    /// parameter, its default and the commands that take it.
    Settings {
        /// As JSON, with every command's flags (the public interface, kept by a snapshot test).
        #[arg(long)]
        json: bool,
    },
    /// Build the knowledge graph of spatial relations from predictions.
    Kg(KgArgs),
    /// Write a run folder as a static web site to look through in a browser: summary, paged gallery, a viewer per
    /// image with its boxes and the rules that changed them, rule changes, knowledge graph, evaluation.
    Report(ReportArgs),
    /// Export an Ultralytics training run's progress as metrics (optionally running the training command).
    TrainMonitor(Box<TrainArgs>),
    /// Compute COCO and VOC/DOTA mAP of predictions against ground truth; compare prediction sets (before and
    /// after the rules) side by side.
    Eval(Box<crate::eval::EvalArgs>),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    #[command(
        after_help = "bash: nsod completions bash > ~/.local/share/bash-completion/completions/nsod\n\
zsh:  nsod completions zsh > ~/.zfunc/_nsod   (with fpath+=~/.zfunc before compinit)\n\
fish: nsod completions fish > ~/.config/fish/completions/nsod.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (nsod.1 and one per command) to a folder, or print nsod.1 to stdout.
    #[command(after_help = "nsod man --out ~/.local/share/man/man1 && man nsod")]
    Man {
        /// Folder for nsod.1 and nsod-<command>.1 (created if missing).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// `nsod infer`. Every setting can also come from `--config FILE` (config/run.example.toml); a flag given on the
/// command line overrides the file, the file overrides the environment, the environment the defaults (the pipeline
/// library's: Ultralytics' predictor, SAHI's slicing). The setting flags are generated from the settings table.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// Image files or folders.
    #[arg(required_unless_present_any = ["print_config", "plan"], value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Run one shard of a plan (`nsod plan`): its inputs and settings come from the plan, its outputs go to
    /// DIR/shards/I-of-N/. Execution settings (threads, schedule, batch, decode threads, IoBinding, memory limits,
    /// metrics) may be given; result and output settings may not. Exit codes: 0 done, 3 bad input in this shard (do
    /// not retry), 4 bad configuration (fail the job), anything else retryable.
    #[arg(long, value_name = "PLAN", requires = "shard", conflicts_with_all = ["inputs", "config"])]
    pub plan: Option<PathBuf>,
    /// The shard to run: `I/N` (0-based), or `N` with the index from $NSOD_SHARD_INDEX, $JOB_COMPLETION_INDEX
    /// (Kubernetes), $SLURM_ARRAY_TASK_ID (minus $SLURM_ARRAY_TASK_MIN) or $AWS_BATCH_JOB_ARRAY_INDEX.
    #[arg(long, value_name = "I/N", requires = "plan")]
    pub shard: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub settings: SettingFlags<InferSet>,
}

/// `nsod track`. Settings as for `nsod infer` (flags, `--config FILE`, the environment), plus the tracker's.
#[derive(Debug, Args)]
pub struct TrackArgs {
    /// The sequence: a folder of frames (natural order), a MOTChallenge sequence folder (img1/ and seqinfo.ini) or
    /// a list file (one frame per line, `PATH [SECONDS]`, paths relative to the list).
    #[arg(required_unless_present = "print_config", value_name = "SEQUENCE")]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub settings: SettingFlags<TrackSet>,
}

/// `nsod doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Describe this model (task, classes, input, whether `nsod quantize` made it and from what) and run it once,
    /// instead of the default model.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
}

/// `nsod quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The float model (an Ultralytics ONNX export); `--model` says the same.
    #[arg(value_name = "MODEL")]
    pub model_file: Option<PathBuf>,
    /// Calibration images (files or folders): their slices, as the run's settings cut them, are the calibration
    /// tensors (with --fp16, the images the agreement is checked on when --check is not given).
    #[arg(long, num_args = 1.., required_unless_present = "print_config", value_name = "IMAGES")]
    pub calib: Vec<PathBuf>,
    /// Where the model is written (default: MODEL with .int8.onnx, or .fp16.onnx).
    #[arg(long = "out", value_name = "FILE")]
    pub out_file: Option<PathBuf>,
    /// Held-out images for the agreement check (default: a seeded fifth of the calibration images).
    #[arg(long, num_args = 1.., value_name = "IMAGES")]
    pub check: Vec<PathBuf>,
    /// Calibration of the activation ranges: percentile (measured best on the shared models), minmax or entropy.
    #[arg(long, default_value = "percentile", value_name = "METHOD")]
    pub method: nsod_quantize::Method,
    /// The most calibration slices (a seeded sample of all the slices; each is 12 MiB at 1024x1024).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub calib_max: usize,
    /// Seed of the calibration sample and of the held-out split.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// The least recall of the float model's detections the INT8 model must reach, or nothing is written.
    #[arg(long, default_value_t = 0.97, value_name = "RECALL")]
    pub min_agreement: f64,
    /// 7-bit weights (for CPUs without VNNI, where u8 x s8 products can saturate).
    #[arg(long)]
    pub reduce_range: bool,
    /// Float16 instead of INT8, for the GPU path: weights and activations in float16, inputs and outputs float32;
    /// no calibration. On the CPU only its agreement is checked (ONNX Runtime runs it in float32 with casts there).
    #[arg(long, conflicts_with_all = ["reduce_range"])]
    pub fp16: bool,
    /// The Python of the quantiser's virtualenv (default: $NSOD_QUANTIZE_PYTHON, else .venv-quantize/ made by
    /// scripts/setup.sh --quantize).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub settings: SettingFlags<QuantizeSet>,
}

/// `nsod plan`: the inputs and every setting of `nsod infer`, and how to split them.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Number of shards (array tasks, Job completions).
    #[arg(long, value_name = "N")]
    pub shards: usize,
    /// Rasters with more pixels than this are split into tiles, run by several shards and merged exactly.
    #[arg(long, value_name = "PIXELS", default_value_t = 64 << 20)]
    pub split_above: u64,
    /// Side of the tiles in pixels.
    #[arg(long, value_name = "PIXELS", default_value_t = 8192)]
    pub window: u32,
    /// With --out DIR the plan is written to DIR/plan.json (a path ending in .json is the plan file itself).
    #[command(flatten)]
    pub infer: InferArgs,
}

/// `nsod merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The run folder the shards wrote to (DIR/shards/I-of-N/).
    #[arg(value_name = "DIR")]
    pub out: PathBuf,
    /// The plan (default: DIR/plan.json, else the plan the shards name).
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// Push the run's result (last success time, images, detections, failures) to this Pushgateway
    /// (e.g. http://127.0.0.1:9091), as Prometheus recommends for batch jobs.
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
    /// Pushgateway job label.
    #[arg(long, default_value = "nsod_merge", value_name = "NAME")]
    pub push_job: String,
    /// ONNX Runtime intra-op threads (the merge runs no model on whole images; rasters' tiles are only merged).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Print the merge's configuration (the plan's, with these flags over it) with where each value came from, and
    /// exit.
    #[arg(long)]
    pub print_config: bool,
}

/// `nsod serve`. Run settings come from `--config FILE` (as `nsod infer`'s, its `[serve]` table included) and
/// flags, and some can be changed per request.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub settings: SettingFlags<ServeSet>,
}

#[derive(Debug, Args)]
pub struct SymbolicArgs {
    /// Predictions to refine: a predictions.jsonl, or a folder of YOLO txt predictions (with --images).
    #[arg(long, value_name = "PATH")]
    pub pred: PathBuf,
    /// The images of YOLO txt predictions (their sizes turn normalised boxes into pixels).
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub settings: SettingFlags<SymbolicSet>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The Ultralytics run folder (e.g. runs/obb/train); it may not exist yet.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// The `model` label of the series (default: the run folder's name).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// How often to look at the run folder.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub poll_interval: std::time::Duration,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub settings: SettingFlags<MetricsSet>,
    /// A training command to run and watch (after `--`): its output streams through, SIGINT/SIGTERM are forwarded
    /// to it, and nsod exits with its exit code.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KgArgs {
    /// Predictions: a predictions.jsonl, or a folder of YOLO txt predictions (with --images).
    #[arg(long, value_name = "PATH")]
    pub pred: PathBuf,
    /// The images of YOLO txt predictions (for their sizes).
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub settings: SettingFlags<KgSet>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run folder (of `nsod infer`, `nsod merge` or `nsod symbolic`).
    pub run_dir: PathBuf,
    /// Output folder of the site (default: RUN_DIR/report); open its index.html.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where the images are, when not where the run read them (the viewer shows them under the boxes).
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// Thumbnails per gallery page.
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub page_size: u32,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load a rule base and print its decision table, warnings and errors.
    Check {
        /// The rule base.
        file: PathBuf,
        /// Class names to check the rules against (default: DOTA-v1).
        #[arg(long, value_name = "FILE")]
        names: Option<PathBuf>,
        /// Ground sample distance (metres per pixel) the rules will run with: says whether size rules are active.
        #[arg(long, value_name = "METRES")]
        gsd: Option<f64>,
    },
    /// Propose confidence_modifier/3 facts from a knowledge graph's statistics (kg_facts.pl).
    Suggest {
        /// The facts file `nsod kg` wrote.
        #[arg(long, value_name = "FILE")]
        facts: PathBuf,
        /// Write the proposals here instead of printing them.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}
