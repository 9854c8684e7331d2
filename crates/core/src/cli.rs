//! Command-line definition.

use clap::{Args, Parser, Subcommand};
use nsod_nms::{Geometry, MatchMetric, MergeMethod};
use nsod_pipeline::PipelineConfig;
use nsod_pipeline::config::Slice;
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
    /// model and rules paths.
    Doctor,
    /// Detect objects in images (files or folders, walked recursively).
    Infer(Box<InferArgs>),
    /// List the work of a sharded run once (images, and tiles of large rasters) into a plan that every shard and
    /// the merge share: `nsod infer --plan PLAN --shard I/N` runs one shard, `nsod merge` joins them.
    Plan(Box<PlanArgs>),
    /// Join the shards of a sharded run into one run folder, as if one process had run.
    Merge(Box<MergeArgs>),
    /// Serve the pipeline over HTTP: the Open Inference Protocol (KServe v2) and POST /v1/detect, with /metrics.
    Serve(Box<ServeArgs>),
    /// Refine existing predictions with Prolog rules and explain every change.
    Symbolic(SymbolicArgs),
    /// Rule base tools.
    #[command(subcommand)]
    Rules(RulesCommand),
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

fn defaults() -> PipelineConfig {
    PipelineConfig::default()
}

fn merge_method(s: &str) -> Result<MergeMethod, String> {
    s.parse()
}
fn match_metric(s: &str) -> Result<MatchMetric, String> {
    s.parse()
}
fn geometry(s: &str) -> Result<Geometry, String> {
    s.parse()
}
fn slice(s: &str) -> Result<Slice, String> {
    s.parse()
}

fn scale(s: &str) -> Result<[f64; 2], String> {
    let parts: Vec<&str> = s.split(',').collect();
    match parts[..] {
        [a, b] => {
            let (a, b) = (a.trim().parse::<f64>(), b.trim().parse::<f64>());
            match (a, b) {
                (Ok(a), Ok(b)) if a.is_finite() && b.is_finite() && a < b => Ok([a, b]),
                _ => Err(format!("{s:?}: give two numbers MIN,MAX with MIN < MAX")),
            }
        }
        _ => Err(format!("{s:?}: give two numbers MIN,MAX with MIN < MAX")),
    }
}

/// `nsod infer`. Every value can also come from `--config FILE` (`config/run.example.toml`); a flag given on the
/// command line overrides the file. Defaults are the pipeline library's (Ultralytics' predictor, SAHI's slicing).
#[derive(Debug, Args)]
pub struct InferArgs {
    /// Image files or folders.
    #[arg(required_unless_present_any = ["print_config", "plan"], value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Run one shard of a plan (`nsod plan`): its inputs and settings come from the plan, its outputs go to
    /// DIR/shards/I-of-N/. Exit codes: 0 done, 3 bad input in this shard (do not retry), 4 bad configuration (fail
    /// the job), anything else retryable.
    #[arg(long, value_name = "PLAN", requires = "shard", conflicts_with_all = ["inputs", "skip_existing", "print_config"])]
    pub plan: Option<PathBuf>,
    /// The shard to run: `I/N` (0-based), or `N` with the index from $NSOD_SHARD_INDEX, $JOB_COMPLETION_INDEX
    /// (Kubernetes), $SLURM_ARRAY_TASK_ID (minus $SLURM_ARRAY_TASK_MIN) or $AWS_BATCH_JOB_ARRAY_INDEX.
    #[arg(long, value_name = "I/N", requires = "plan")]
    pub shard: Option<String>,
    /// Run configuration (TOML, every option; see config/run.example.toml). Flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (defaults, then --config, then flags) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// YOLO ONNX model (default: $NSOD_MODEL, then models/yolov8n-obb.onnx).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Output folder: predictions.jsonl, labels/, coco_results.json, run.json.
    #[arg(long, default_value_os_t = defaults().output.out, value_name = "DIR")]
    pub out: PathBuf,
    /// Class names for models without metadata (one per line, a YAML `names:` map, or a dict literal).
    #[arg(long, value_name = "FILE")]
    pub names: Option<PathBuf>,
    /// Confidence threshold.
    #[arg(long, default_value_t = defaults().detect.conf)]
    pub conf: f32,
    /// IoU threshold of the model's NMS.
    #[arg(long, default_value_t = defaults().detect.iou)]
    pub iou: f32,
    /// Maximum detections per model run.
    #[arg(long, default_value_t = defaults().detect.max_det)]
    pub max_det: usize,
    /// Slice size in pixels, `off` (or 0) for none, `auto`: slices of the model input size for larger images.
    #[arg(long, value_name = "N", default_value_t = defaults().detect.slice, value_parser = slice)]
    pub slice: Slice,
    /// Overlap ratio between slices.
    #[arg(long, default_value_t = defaults().detect.overlap)]
    pub overlap: f32,
    /// Skip SAHI's extra full-image pass when slicing.
    #[arg(long)]
    pub no_full_pass: bool,
    /// How slice results are merged: greedynmm, nmm or nms.
    #[arg(long, default_value_t = defaults().detect.merge, value_parser = merge_method)]
    pub merge: MergeMethod,
    /// Overlap measure of the merge: ios or iou.
    #[arg(long, default_value_t = defaults().detect.match_metric, value_parser = match_metric)]
    pub match_metric: MatchMetric,
    /// Overlap at or above which two slice detections merge.
    #[arg(long, default_value_t = defaults().detect.merge_threshold)]
    pub merge_threshold: f32,
    /// Merge on exact rotated boxes, on their enclosing rectangles (aabb, as SAHI does), or with probiou.
    #[arg(long, default_value_t = defaults().detect.merge_geometry, value_parser = geometry)]
    pub merge_geometry: Geometry,
    /// Merge and suppress across classes.
    #[arg(long)]
    pub class_agnostic: bool,
    /// Slices per model run (models with a dynamic batch axis).
    #[arg(long, default_value_t = defaults().detect.batch, value_name = "N")]
    pub batch: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value_t = defaults().device)]
    pub device: String,
    /// ONNX Runtime intra-op threads (0: all cores).
    #[arg(long, default_value_t = defaults().threads)]
    pub threads: usize,
    /// sequential (one image after the other), pipelined (slices prepared, run and decoded at once, --batch
    /// counting slices across images; keeps a GPU busy, same outputs) or auto (pipelined on a GPU).
    #[arg(long, default_value_t = defaults().schedule, value_name = "SCHEDULE")]
    pub schedule: nsod_pipeline::config::Schedule,
    /// ONNX Runtime IoBinding for pipelined runs: on (page-locked host buffers on a GPU), off, or auto (on for
    /// CUDA).
    #[arg(long, default_value_t = defaults().io_binding, value_name = "MODE")]
    pub io_binding: nsod_pipeline::config::IoBinding,
    /// Threads decoding images ahead of the model (0: one in the sequential schedule, half the cores up to 8 in the
    /// pipelined one).
    #[arg(long, default_value_t = defaults().decode_threads, value_name = "N")]
    pub decode_threads: usize,
    /// Resume: keep the images already in DIR/predictions.jsonl (or in the .partial files an interrupted run left),
    /// with all their outputs, and process only the others.
    #[arg(long)]
    pub skip_existing: bool,
    /// Also write annotated images (polygons or boxes with class and score) to DIR/vis/.
    #[arg(long)]
    pub save_vis: bool,
    /// Prolog rule base for the symbolic stage (default: rules/dota.pl when the model's classes are DOTA's).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Skip the symbolic stage.
    #[arg(long, conflicts_with = "rules")]
    pub no_symbolic: bool,
    /// Ground sample distance in metres per pixel: turns on the rule base's size plausibility rules
    /// (size_range/3) and gives scene rules gsd/1.
    #[arg(long, value_name = "METRES")]
    pub gsd: Option<f64>,
    /// Raster bands read as red, green, blue (1-based, e.g. `4,3,2`), or one band read as grey.
    #[arg(long, value_name = "R,G,B", value_delimiter = ',', num_args = 1..)]
    pub bands: Option<Vec<u32>>,
    /// Values mapped to 0 and 255 for rasters that are not 8-bit (default: each band's 2nd-98th percentile).
    #[arg(long, value_name = "MIN,MAX", value_parser = scale)]
    pub scale: Option<[f64; 2]>,
    /// Rasters with more pixels are read window by window (slices read as they are run), smaller ones whole.
    #[arg(long, value_name = "PIXELS", default_value_t = defaults().raster.window_above_pixels)]
    pub window_above: u64,
    /// Refuse rasters that declare more pixels than this.
    #[arg(long, value_name = "PIXELS", default_value_t = defaults().raster.max_pixels)]
    pub max_raster_pixels: u64,
    /// Also build the knowledge graph: DIR/scene_graphs.jsonl per image and the dataset graph exports at the end.
    #[arg(long)]
    pub kg: bool,
    /// With --kg: compute relations only for these class pairs (see `nsod kg --pairs`).
    #[arg(long, value_name = "FILE", requires = "kg")]
    pub kg_pairs: Option<PathBuf>,
    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,
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
}

/// `nsod serve`. Run settings come from `--config FILE` (as `nsod infer`'s) and can be changed per request.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Run configuration (TOML; see config/run.example.toml): detection, rules, raster settings.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// YOLO ONNX model (default: the configuration's, $NSOD_MODEL, then models/yolov8n-obb.onnx).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// The model's name in the API (/v2/models/NAME; default: the model file's stem).
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
    /// Prolog rule base (default: rules/dota.pl for DOTA models).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Serve without the symbolic stage.
    #[arg(long, conflicts_with = "rules")]
    pub no_symbolic: bool,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0:8080 for every interface).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub addr: std::net::SocketAddr,
    /// Session workers: images processed at once, each with its own ONNX Runtime session.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub workers: usize,
    /// Requests that may wait for a worker; more are answered 503 with Retry-After.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub queue: usize,
    /// Longest time a request waits for its result (queue and processing); then 503.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    pub max_body: usize,
    /// On SIGTERM/SIGINT, how long accepted requests may take to finish; then what still runs is cancelled.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub drain: std::time::Duration,
    /// Longest time a request's headers may take to arrive (then 408 and the connection closed); also how long an
    /// idle keep-alive connection stays open.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub header_timeout: std::time::Duration,
    /// Longest time a whole request body may take to arrive (a total deadline; then 408).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub body_timeout: std::time::Duration,
    /// The most model runs (slices plus the full-image pass) one request may take; more is refused with 400 before
    /// any work.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_runs_per_request: u64,
    /// Request bodies received at once, each up to --max-body in memory (default: workers + queue); more get 503.
    #[arg(long, value_name = "N")]
    pub max_uploads: Option<usize>,
    /// Open connections (default: from the open-file limit, RLIMIT_NOFILE, less a reserve for nsod's own files).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// File holding a bearer token required on every route except health (also $NSOD_SERVE_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// File holding a bearer token required on /metrics (open when absent).
    #[arg(long, value_name = "FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// ONNX Runtime intra-op threads per worker (default: the cores divided among the workers).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Debug, Args)]
pub struct SymbolicArgs {
    /// Predictions to refine: a predictions.jsonl, or a folder of YOLO txt predictions (with --images).
    #[arg(long, value_name = "PATH")]
    pub pred: PathBuf,
    /// The images of YOLO txt predictions (their sizes turn normalised boxes into pixels).
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// Prolog rule base (default: rules/dota.pl).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Class names of the predictions (default: DOTA-v1).
    #[arg(long, value_name = "FILE")]
    pub names: Option<PathBuf>,
    /// Output folder: predictions.jsonl (refined), report.csv, report.jsonl.
    #[arg(long, default_value = "runs/symbolic", value_name = "DIR")]
    pub out: PathBuf,
    /// Ground sample distance in metres per pixel: turns on size plausibility rules (size_range/3) and gives
    /// scene rules gsd/1.
    #[arg(long, value_name = "METRES")]
    pub gsd: Option<f64>,
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
    pub metrics: crate::metrics::MetricsArgs,
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
    /// Class names of YOLO txt predictions (default: DOTA-v1).
    #[arg(long, value_name = "FILE")]
    pub names: Option<PathBuf>,
    /// Output folder: scene_graphs.jsonl, kg_facts.pl, kg.graphml, kg.dot, kg.json, kg_svg/.
    #[arg(long, default_value = "runs/kg", value_name = "DIR")]
    pub out: PathBuf,
    /// Leave edges seen fewer times out of GraphML, DOT, JSON and SVG (the facts keep all).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub min_count: u64,
    /// Compute relations only for these class pairs (one "class class" pair per line; default: all pairs).
    #[arg(long, value_name = "FILE")]
    pub pairs: Option<PathBuf>,
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
