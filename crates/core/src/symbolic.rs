//! `nsod symbolic` (the rules stage of the pipeline on existing predictions) and `nsod rules check`.

use crate::cli::SymbolicArgs;

use crate::session::{Needs, Session, config_error};
use nsod_pipeline::inputs::read_predictions;
use nsod_pipeline::sink::RunSummary;
use nsod_pipeline::{Pipeline, RunDirOptions, RunDirSink, error_chain};
use nsod_symbolic::{RuleBase, load_rules};
use nsod_types::ClassNames;
use std::path::Path;
use std::process::ExitCode;

/// A ground sample distance from the command line: positive and finite.
pub fn check_gsd(gsd: Option<f64>) -> anyhow::Result<Option<f64>> {
    match gsd {
        Some(g) if !(g.is_finite() && g > 0.0) => {
            anyhow::bail!(
                "--gsd {g}: the ground sample distance must be a positive number of metres per pixel"
            )
        }
        other => Ok(other),
    }
}

pub fn read_names(file: Option<&Path>) -> anyhow::Result<ClassNames> {
    match file {
        None => Ok(ClassNames::dota_v1()),
        Some(f) => {
            nsod_pipeline::pipeline::read_names(f).map_err(|e| anyhow::anyhow!(error_chain(&e)))
        }
    }
}

fn load(path: &Path, names: &ClassNames) -> anyhow::Result<RuleBase> {
    let rules = load_rules(path, Some(names), &crate::session::sandbox()?)?;
    for w in &rules.table.warnings {
        crate::ui::warning!("rules {}: {w}", path.display());
    }
    Ok(rules)
}

/// `nsod rules check FILE`: exit 2 when the rule base cannot be loaded.
pub fn check(file: &Path, names: Option<&Path>, gsd: Option<f64>) -> anyhow::Result<ExitCode> {
    let names = read_names(names)?;
    let gsd = check_gsd(gsd)?;
    let rules = match load(file, &names) {
        Ok(r) => r,
        Err(e) => {
            crate::ui::error!("{e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let table = &rules.table;
    println!(
        "rules {}: loaded in {:.3} s ({} clauses)",
        file.display(),
        table.load_time.as_secs_f64(),
        rules.clauses
    );
    println!(
        "thresholds: near_factor {}, overlap_ratio {}, adjacent_factor {}, on_ratio {}",
        table.params.near_factor,
        table.overlap_ratio,
        table.params.adjacent_factor,
        table.params.on_ratio
    );
    let mut pairs: Vec<String> = table
        .pair_rules
        .iter()
        .map(|r| {
            format!(
                "  {:<8} {}",
                if r.weight > 1.0 { "boost" } else { "penalty" },
                r.head()
            )
        })
        .collect();
    pairs.sort();
    println!("confidence_modifier/3: {} pairs", pairs.len());
    pairs.iter().for_each(|p| println!("{p}"));
    println!("relation_modifier/4: {} rules", table.relation_rules.len());
    for r in &table.relation_rules {
        println!(
            "  {:<8} {}",
            if r.weight > 1.0 { "boost" } else { "penalty" },
            r.head()
        );
    }
    let state = match gsd {
        Some(g) => format!("active at {g} m/px"),
        None => "inactive: no ground sample distance (--gsd)".into(),
    };
    println!(
        "size_range/3: {} classes, size_penalty {}{}",
        table.size_ranges.len(),
        table.size_penalty,
        if table.size_ranges.is_empty() {
            String::new()
        } else {
            format!("; {state}")
        }
    );
    for r in &table.size_ranges {
        println!("  {:<8} {}", "penalty", r.head());
    }
    match rules.scene.as_ref().filter(|s| s.per_image) {
        Some(s) => println!(
            "adjust/3: scene rules, queried once per image; relations they use: {}",
            match &s.relations_used {
                None => "all".to_owned(),
                Some(v) if v.is_empty() => "none".to_owned(),
                Some(v) => v.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "),
            }
        ),
        None => println!("adjust/3: not defined (no Prolog query per image)"),
    }
    println!(
        "speed_range/3: {} classes, speed_penalty {} (nsod track, with a GSD)",
        table.speed_ranges.len(),
        table.speed_penalty
    );
    for r in &table.speed_ranges {
        println!("  {:<8} {}", "penalty", r.head());
    }
    if rules.scene.as_ref().is_some_and(|s| s.per_track) {
        println!(
            "adjust_track/3: rules over tracks, queried by nsod track when tracks end (and every --track-rules-every)"
        );
    } else {
        println!("adjust_track/3: not defined");
    }
    if let Some(sb) = &rules.sandbox {
        println!("sandbox: {}", nsod_symbolic::sandbox::describe(sb));
    }
    println!("{} warnings", table.warnings.len());
    Ok(ExitCode::SUCCESS)
}

/// Runs the stages after detection (rules, or the knowledge graph) of `pipeline` over predictions read from
/// `pred`, into `sink`, through the runner (`nsod_pipeline::runner::refine`) with the terminal's observer.
/// Returns the summary and the rule applications written.
pub fn refine_predictions(
    pipeline: &Pipeline,
    pred: &Path,
    images: Option<&Path>,
    sink: &mut RunDirSink,
) -> anyhow::Result<(RunSummary, usize)> {
    let records = read_predictions(pred, images, pipeline.names())
        .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    let mut worker = pipeline
        .worker()
        .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    let interrupted = crate::metrics::install_signal_flag();
    let mut observer = crate::observe::CliObserver::new(None, pipeline.config().detect.conf);
    let summary = nsod_pipeline::runner::refine(
        &mut worker,
        records,
        pred,
        sink,
        &mut observer,
        &interrupted,
    );
    observer.finish();
    let summary = summary.map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    Ok((summary, observer.rule_changes()))
}

/// `nsod symbolic`.
pub fn run(global: &crate::cli::GlobalArgs, a: &SymbolicArgs) -> anyhow::Result<ExitCode> {
    let layers = match crate::settings::layers(&a.config, &a.settings) {
        Ok(l) => l,
        Err(e) => return config_error(e),
    };
    if a.config.print_config {
        print!("{}", crate::settings::print_config(&layers));
        return Ok(ExitCode::SUCCESS);
    }
    let names = match read_names(layers.config.names.as_deref()) {
        Ok(n) => n,
        Err(e) => return config_error(format!("{e:#}")),
    };
    let session = match Session::open(
        global,
        layers,
        Needs {
            names: Some(names),
            ..Needs::default()
        },
    ) {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    let out = session.config.output.out.clone();
    let mut sink = match RunDirSink::open(&out, RunDirOptions::records_only(), &session.pipeline) {
        Ok(s) => s,
        Err(e) => return config_error(error_chain(&e)),
    };
    sink.set_sources(session.sources.clone());
    let (summary, changes) =
        match refine_predictions(&session.pipeline, &a.pred, a.images.as_deref(), &mut sink) {
            Ok(s) => s,
            Err(e) => return config_error(format!("{e:#}")),
        };
    crate::ui::summary!(
        "{} images refined, {} failed, {changes} rule applications; output in {}",
        summary.processed,
        summary.failed,
        out.display()
    );
    Ok(if summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
