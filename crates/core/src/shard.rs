//! `nsod plan`, `nsod infer --plan --shard`, `nsod merge`: the command-line side of sharded runs (everything else
//! is nsod_pipeline::shard). Exit codes of a shard follow what batch engines' retry policies need.

use crate::cli::{GlobalArgs, InferArgs, MergeArgs, PlanArgs};
use crate::observe::CliObserver;
use crate::session::{INTERRUPTED, Needs, Session, config_error, fail};
use nsod_pipeline::settings::{Kind, Layers};

fn by_key(key: &str) -> &'static nsod_pipeline::settings::Setting {
    nsod_pipeline::settings::by_key(key).expect("a key of the settings table")
}
use nsod_pipeline::shard::{self, Plan, PlanOptions, ShardId};
use nsod_pipeline::{PipelineConfig, error_chain};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A shard exit code: bad input in this shard; its folder is complete and lists the failures (do not retry).
pub const BAD_INPUT: u8 = 3;
/// A shard exit code: the plan, the model or the settings cannot be used (fail the whole job).
pub const BAD_CONFIG: u8 = 4;

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The plan file of `--out`: itself when it ends in `.json`, else `DIR/plan.json`.
fn plan_path(out: &Path) -> (PathBuf, PathBuf) {
    if out.extension().is_some_and(|e| e == "json") {
        let dir = out
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        (out.to_path_buf(), dir)
    } else {
        (out.join(nsod_pipeline::layout::PLAN), out.to_path_buf())
    }
}

/// `nsod plan`.
pub fn plan(global: &GlobalArgs, a: &PlanArgs) -> anyhow::Result<ExitCode> {
    let _ = global;
    if a.infer.plan.is_some() || a.infer.shard.is_some() {
        return config_error("nsod plan: --plan and --shard are options of nsod infer");
    }
    if a.infer.settings.has("output.skip_existing") {
        return config_error(
            "--skip-existing: a sharded run does not resume; rerun the shards that did not finish",
        );
    }
    let layers = match crate::settings::layers(&a.infer.config, &a.infer.settings) {
        Ok(l) => l,
        Err(e) => return config_error(e),
    };
    if a.infer.config.print_config {
        return crate::session::print_config(layers);
    }
    let mut config = layers.config;
    if config.model.is_none() {
        config.model = match crate::session::default_model() {
            Ok(p) => Some(p),
            Err(e) => return config_error(e),
        };
    }
    // Shards may start in other folders: every path the plan holds is absolute.
    config.model = config.model.as_deref().map(absolute);
    config.names = config.names.as_deref().map(absolute);
    config.rules.file = config.rules.file.as_deref().map(absolute);
    config.kg.pairs = config.kg.pairs.as_deref().map(absolute);
    let (path, out) = plan_path(&config.output.out.clone());
    config.output.out = absolute(&out);
    let inputs: Vec<PathBuf> = a.infer.inputs.iter().map(|p| absolute(p)).collect();
    let opts = PlanOptions {
        shards: a.shards,
        split_above_pixels: a.split_above,
        window: a.window,
    };
    let (plan, skipped) = match Plan::build(&config, &inputs, opts) {
        Ok(p) => p,
        Err(e) => return config_error(error_chain(&e)),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if let Err(e) = plan.write(&path) {
        return config_error(error_chain(&e));
    }
    let windows = plan.units.iter().filter(|u| u.window.is_some()).count();
    let rasters: std::collections::BTreeSet<&str> = plan
        .units
        .iter()
        .filter(|u| u.window.is_some())
        .map(|u| u.image.as_str())
        .collect();
    if !skipped.0.is_empty() {
        crate::ui::info!(
            "{} files in the input folders are not images and were skipped",
            skipped.0.len()
        );
    }
    crate::ui::summary!(
        "{} units ({} images, {} rasters in {windows} tiles of {} px) over {} shards: {}",
        plan.units.len(),
        plan.units.len() - windows,
        rasters.len(),
        plan.window,
        plan.shards,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A shard's settings: its plan's result and output settings, fixed; the plan's execution settings that differ from
/// the defaults, over this machine's defaults and environment; then its own execution flags.
fn shard_layers(plan: &Plan, a: &InferArgs) -> Result<Layers, String> {
    let defaults = PipelineConfig::default();
    let l = Layers::new(defaults.clone())
        .environment(|k| std::env::var(k).ok())
        .map_err(|e| e.to_string())?;
    let mut l = l.plan_values(&plan.config, |s| {
        s.kind != Kind::Execution || s.text(&plan.config) != s.text(&defaults)
    });
    l = l.flags(a.settings.values()).map_err(|e| e.to_string())?;
    l.validate().map_err(|e| e.to_string())?;
    Ok(l)
}

/// `nsod infer --plan PLAN --shard I/N`.
pub fn run_shard(global: &GlobalArgs, a: &InferArgs) -> anyhow::Result<ExitCode> {
    let interrupted = crate::metrics::install_signal_flag();
    let Some(plan_file) = a.plan.as_deref() else {
        return fail(BAD_CONFIG, "--shard needs --plan");
    };
    let spec = a.shard.as_deref().unwrap_or_default();
    let id = match ShardId::resolve(spec, |k| std::env::var(k).ok()) {
        Ok(id) => id,
        Err(e) => return fail(BAD_CONFIG, e),
    };
    // Result and output settings come from the plan: one given to a shard is refused, never a silent difference
    // between shards. Resuming is not a shard's (a rerun replaces the shard whole).
    let refused: Vec<String> = a
        .settings
        .given
        .iter()
        .filter(|(s, _)| s.kind != Kind::Execution || s.key == "output.skip_existing")
        .map(|(s, _)| s.shown())
        .collect();
    if !refused.is_empty() {
        return fail(
            BAD_CONFIG,
            format!(
                "{}: a shard's result and output settings come from its plan (give them to nsod plan); it takes \
                 execution settings only",
                refused.join(", ")
            ),
        );
    }
    let plan = match Plan::read(plan_file) {
        Ok(p) => p,
        Err(e) => return fail(BAD_CONFIG, error_chain(&e)),
    };
    let layers = match shard_layers(&plan, a) {
        Ok(l) => l,
        Err(e) => return fail(BAD_CONFIG, e),
    };
    if a.config.print_config {
        return crate::session::print_config(layers);
    }
    let session = match Session::open(
        global,
        layers,
        Needs {
            model: true,
            metrics: true,
            names: None,
        },
    ) {
        Ok(s) => s,
        Err(e) => return fail(BAD_CONFIG, e),
    };
    let Session {
        config,
        sources,
        pipeline,
        metrics,
        handles,
        ..
    } = session;
    let mut worker = match pipeline.worker() {
        Ok(w) => w,
        Err(e) => return fail(BAD_CONFIG, error_chain(&e)),
    };
    worker.set_interrupt(interrupted.clone());
    if let Some(s) = &metrics {
        s.set_ready();
    }
    let mut observer = CliObserver::new(handles, config.detect.conf);
    let result = shard::run_shard(
        &mut worker,
        shard::ShardRun {
            plan: &plan,
            plan_path: plan_file,
            shard: id,
            out: &config.output.out,
            sources,
        },
        &mut observer,
        &interrupted,
    );
    observer.finish();
    if let Some(s) = metrics {
        s.finish(&interrupted);
    }
    let outcome = match result {
        Ok(o) => o,
        Err(e) if e.is_configuration() => return fail(BAD_CONFIG, error_chain(&e)),
        // Anything else (a disk that cannot be written) is worth a retry.
        Err(e) => return fail(1, error_chain(&e)),
    };
    if outcome.interrupted {
        crate::ui::info!(
            "interrupted: shard {} is not committed (rerun it)",
            id.folder()
        );
        return Ok(ExitCode::from(INTERRUPTED));
    }
    let m = &outcome.manifest;
    crate::ui::summary!(
        "shard {}: {} of {} units done ({} images, {} tiles), {} failed, in {:.2} s: {}",
        id.folder(),
        m.images + m.windows,
        m.units,
        m.images,
        m.windows,
        m.failures.len(),
        m.seconds,
        outcome.folder.display()
    );
    Ok(if m.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(BAD_INPUT)
    })
}

/// The plan of a merge: `--plan`, else DIR/plan.json, else the plan a shard ran.
fn find_plan(a: &MergeArgs) -> Option<PathBuf> {
    if let Some(p) = &a.plan {
        return Some(p.clone());
    }
    let own = a.out.join(nsod_pipeline::layout::PLAN);
    if own.is_file() {
        return Some(own);
    }
    let shards = std::fs::read_dir(a.out.join(nsod_pipeline::layout::SHARDS)).ok()?;
    shards.flatten().find_map(|e| {
        let text = std::fs::read_to_string(e.path().join(shard::SHARD_MANIFEST)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["plan"].as_str().map(PathBuf::from)
    })
}

/// `nsod merge`.
pub fn merge(global: &GlobalArgs, a: &MergeArgs) -> anyhow::Result<ExitCode> {
    let Some(plan_file) = find_plan(a) else {
        return fail(
            BAD_CONFIG,
            format!(
                "{}: no plan.json and no finished shard names one: pass --plan",
                a.out.display()
            ),
        );
    };
    let plan = match Plan::read(&plan_file) {
        Ok(p) => p,
        Err(e) => return fail(BAD_CONFIG, error_chain(&e)),
    };
    // The plan's settings, the merge's own threads and folder over them.
    let threads = a.threads.to_string();
    let out = a.out.display().to_string();
    let layers = Layers::new(PipelineConfig::default())
        .plan_values(&plan.config, |_| true)
        .flags([
            (by_key("threads"), threads.as_str()),
            (by_key("output.out"), out.as_str()),
        ]);
    let layers = match layers.and_then(|l| l.validate().map(|()| l)) {
        Ok(l) => l,
        Err(e) => return fail(BAD_CONFIG, e),
    };
    if a.print_config {
        return crate::session::print_config(layers);
    }
    let session = match Session::open(
        global,
        layers,
        Needs {
            model: true,
            ..Needs::default()
        },
    ) {
        Ok(s) => s,
        Err(e) => return fail(BAD_CONFIG, e),
    };
    let (config, pipeline, sources) = (session.config, session.pipeline, session.sources);
    let mut worker = match pipeline.worker() {
        Ok(w) => w,
        Err(e) => return fail(BAD_CONFIG, error_chain(&e)),
    };
    let mut observer = CliObserver::new(None, config.detect.conf);
    let result = shard::merge(
        &mut worker,
        &plan,
        &plan_file,
        &a.out,
        sources,
        &mut observer,
    );
    observer.finish();
    let merged = match result {
        Ok(m) => m,
        Err(e) => return fail(1, error_chain(&e)),
    };
    let s = &merged.summary;
    let detections: usize = s.per_class.values().sum();
    crate::ui::summary!(
        "merged {} shards: {} images, {} failed, {detections} detections; the merge took {:.2} s ({:.1}% of the shards' {:.2} s)",
        plan.shards,
        s.processed,
        s.failed,
        merged.seconds,
        100.0 * merged.seconds / merged.shard_seconds.max(1e-9),
        merged.shard_seconds
    );
    for (class, n) in &s.per_class {
        crate::ui::summary!("  {class}: {n}");
    }
    if let Some(base) = &a.pushgateway {
        let url = nsod_telemetry::export::push_job_url(base, &a.push_job);
        let result = nsod_telemetry::export::BatchResult {
            finished: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            images: (s.processed + s.failed) as u64,
            failed: s.failed as u64,
            detections: detections as u64,
            shards: plan.shards as u64,
            merge_seconds: merged.seconds,
            shard_seconds: merged.shard_seconds,
        };
        if let Err(e) = nsod_telemetry::export::push_batch(&result, &url) {
            crate::ui::warning!("{e}");
        }
    }
    Ok(if s.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
