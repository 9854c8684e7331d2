//! Glue for the symbolic stage: choosing and loading the rule base, applying it, `nsod symbolic` and
//! `nsod rules check`.

use crate::cli::SymbolicArgs;
use crate::paths;
use anyhow::Context;
use nsod_symbolic::report::ReportWriter;
use nsod_symbolic::{
    Adjustment, ImageContext, RuleBase, Sandbox, SceneSession, SymbolicError, load_rules,
};
use nsod_telemetry::Telemetry;
use nsod_telemetry::catalog::{ActionLabel, ErrorTypeLabel, QueryLabel};
use nsod_types::formats::jsonl::JsonlWriter;
use nsod_types::{ClassNames, Detection};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::path::Path;
use std::process::ExitCode;

fn is_dota(names: &ClassNames) -> bool {
    let dota = ClassNames::dota_v1();
    names.len() == dota.len()
        && names
            .as_slice()
            .iter()
            .zip(dota.as_slice())
            .all(|(a, b)| nsod_symbolic::class_atom(a) == nsod_symbolic::class_atom(b))
}

/// Rule bases run in a sandboxed child: this binary, `nsod rules-worker`.
pub fn sandbox() -> anyhow::Result<Sandbox> {
    Sandbox::current_exe().context("cannot find the nsod executable to run the rules worker")
}

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

fn load(
    path: &Path,
    names: &ClassNames,
    telemetry: Option<&Telemetry>,
) -> anyhow::Result<RuleBase> {
    match load_rules(path, Some(names), &sandbox()?) {
        Ok(rules) => {
            for w in &rules.table.warnings {
                eprintln!("warning: rules {}: {w}", path.display());
            }
            if let Some(t) = telemetry {
                let q = QueryLabel {
                    query: "load".into(),
                };
                t.metrics
                    .pipeline
                    .prolog_query_duration
                    .get_or_create(&q)
                    .observe(rules.table.load_time.as_secs_f64());
            }
            Ok(rules)
        }
        Err(e) => {
            if let Some(t) = telemetry {
                t.metrics
                    .pipeline
                    .prolog_query_failures
                    .get_or_create(&ErrorTypeLabel {
                        error_type: e.kind().into(),
                    })
                    .inc();
            }
            Err(e.into())
        }
    }
}

/// The rule base for `nsod infer`: `--rules`, or rules/dota.pl when the model's classes are DOTA's.
pub fn load_for_model(
    rules: Option<&Path>,
    off: bool,
    names: &ClassNames,
    telemetry: Option<&Telemetry>,
) -> anyhow::Result<Option<RuleBase>> {
    if off {
        return Ok(None);
    }
    let path = match rules {
        Some(p) => p.to_path_buf(),
        None => {
            let (p, exists) = paths::default_rules();
            if !is_dota(names) || !exists {
                return Ok(None);
            }
            p
        }
    };
    load(&path, names, telemetry).map(Some)
}

/// Applies the rule base (and its scene rules through `session`): new scores, highest first. The returned
/// adjustment indexes the input order. A scene query that failed is returned beside it; the image then has the
/// table's result.
pub fn refine(
    rules: &RuleBase,
    session: Option<&mut SceneSession>,
    dets: &mut [Detection],
    ctx: &ImageContext,
) -> (Adjustment, Option<SymbolicError>) {
    let (adj, err) = rules.refine(session, dets, ctx);
    for (d, &s) in dets.iter_mut().zip(&adj.scores) {
        d.score = s;
    }
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    (adj, err)
}

/// Metric handles of the symbolic stage.
pub struct SymbolicTelemetry {
    delta: Histogram,
    boost: Counter,
    penalty: Counter,
    stage: Histogram,
    scene_query: Histogram,
    failures: prometheus_client::metrics::family::Family<ErrorTypeLabel, Counter>,
}

impl SymbolicTelemetry {
    pub fn new(t: &Telemetry) -> Self {
        let p = &t.metrics.pipeline;
        let action = |a: &str| {
            p.rule_applications
                .get_or_create(&ActionLabel { action: a.into() })
                .clone()
        };
        Self {
            delta: p.confidence_delta.clone(),
            boost: action("boost"),
            penalty: action("penalty"),
            stage: p
                .stage_duration
                .get_or_create(&nsod_telemetry::catalog::StageLabel {
                    stage: "symbolic".into(),
                })
                .clone(),
            scene_query: p
                .prolog_query_duration
                .get_or_create(&QueryLabel {
                    query: "adjust".into(),
                })
                .clone(),
            failures: p.prolog_query_failures.clone(),
        }
    }

    /// A per-image scene query: its duration, or its failure.
    pub fn record_scene(&self, secs: f64, error: Option<&SymbolicError>) {
        match error {
            None => self.scene_query.observe(secs),
            Some(e) => {
                self.failures
                    .get_or_create(&ErrorTypeLabel {
                        error_type: e.kind().into(),
                    })
                    .inc();
            }
        }
    }

    pub fn record(&self, raw: &[Detection], adj: &Adjustment, secs: f64) {
        self.stage.observe(secs);
        for c in &adj.changes {
            if c.action == "BOOST" {
                &self.boost
            } else {
                &self.penalty
            }
            .inc();
        }
        for (d, &s) in raw.iter().zip(&adj.scores) {
            if s != d.score {
                self.delta.observe(f64::from(s) - f64::from(d.score));
            }
        }
    }
}

pub fn read_names(file: Option<&Path>) -> anyhow::Result<ClassNames> {
    match file {
        None => Ok(ClassNames::dota_v1()),
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?;
            nsod_detect::metadata::parse_names_file(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))
        }
    }
}

/// `nsod rules check FILE`: exit 2 when the rule base cannot be loaded.
pub fn check(file: &Path, names: Option<&Path>, gsd: Option<f64>) -> anyhow::Result<ExitCode> {
    let names = read_names(names)?;
    let gsd = check_gsd(gsd)?;
    let rules = match load(file, &names, None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
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
    match &rules.scene {
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
    if let Some(sb) = &rules.sandbox {
        println!("sandbox: {}", nsod_symbolic::sandbox::describe(sb));
    }
    println!("{} warnings", table.warnings.len());
    Ok(ExitCode::SUCCESS)
}

/// `nsod symbolic`.
pub fn run(a: &SymbolicArgs) -> anyhow::Result<ExitCode> {
    let names = read_names(a.names.as_deref())?;
    let gsd = match check_gsd(a.gsd) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let rules = a.rules.clone().unwrap_or_else(|| paths::default_rules().0);
    let rule_base = match load(&rules, &names, None) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut session = rule_base.session();
    let records = match crate::inputs::read_predictions(&a.pred, a.images.as_deref(), &names) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut out = JsonlWriter::create(&a.out.join("predictions.jsonl"))?;
    let mut report = ReportWriter::create(&a.out)
        .with_context(|| format!("cannot write the report in {}", a.out.display()))?;
    let (mut images, mut failed, mut scene_failures) = (0usize, 0usize, 0usize);
    for record in records {
        let mut record = match record {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
                continue;
            }
        };
        let raw = record.detections.clone();
        let ctx = ImageContext {
            width: record.width,
            height: record.height,
            gsd,
        };
        let (adj, err) = refine(&rule_base, session.as_mut(), &mut record.detections, &ctx);
        if let Some(e) = err {
            eprintln!(
                "warning: {}: scene rules skipped for this image: {e}",
                record.image
            );
            scene_failures += 1;
        }
        report.write(&record.image, &raw, &adj)?;
        out.write(&record)?;
        images += 1;
    }
    let changes = report.rows();
    out.finish()?;
    report.finish()?;
    println!(
        "{images} images refined, {failed} failed, {changes} rule applications{}; output in {}",
        if scene_failures > 0 {
            format!(" ({scene_failures} images without their scene rules)")
        } else {
            String::new()
        },
        a.out.display()
    );
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
