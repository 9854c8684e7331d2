//! Glue for the symbolic stage: choosing and loading the rule base, applying it, `nsod symbolic` and
//! `nsod rules check`.

use crate::cli::SymbolicArgs;
use crate::paths;
use anyhow::Context;
use nsod_symbolic::report::ReportWriter;
use nsod_symbolic::{Adjustment, DecisionTable, LoadLimits, load_rules};
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

fn load(
    path: &Path,
    names: &ClassNames,
    telemetry: Option<&Telemetry>,
) -> anyhow::Result<DecisionTable> {
    match load_rules(path, Some(names), LoadLimits::default()) {
        Ok(table) => {
            for w in &table.warnings {
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
                    .observe(table.load_time.as_secs_f64());
            }
            Ok(table)
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
) -> anyhow::Result<Option<DecisionTable>> {
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

/// Applies the table: new scores, highest first. The returned adjustment indexes the input order.
pub fn refine(table: &DecisionTable, dets: &mut [Detection]) -> Adjustment {
    let adj = table.adjust(dets);
    for (d, &s) in dets.iter_mut().zip(&adj.scores) {
        d.score = s;
    }
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    adj
}

/// Metric handles of the symbolic stage.
pub struct SymbolicTelemetry {
    delta: Histogram,
    boost: Counter,
    penalty: Counter,
    stage: Histogram,
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

/// `nsod rules check FILE`.
pub fn check(file: &Path, names: Option<&Path>) -> anyhow::Result<ExitCode> {
    let names = read_names(names)?;
    let table = load(file, &names, None)?;
    println!(
        "rules {}: loaded in {:.3} s",
        file.display(),
        table.load_time.as_secs_f64()
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
    println!("{} warnings", table.warnings.len());
    Ok(ExitCode::SUCCESS)
}

/// `nsod symbolic`.
pub fn run(a: &SymbolicArgs) -> anyhow::Result<ExitCode> {
    let names = read_names(a.names.as_deref())?;
    let rules = a.rules.clone().unwrap_or_else(|| paths::default_rules().0);
    let table = match load(&rules, &names, None) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
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
    let (mut images, mut failed) = (0usize, 0usize);
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
        let adj = refine(&table, &mut record.detections);
        report.write(&record.image, &raw, &adj)?;
        out.write(&record)?;
        images += 1;
    }
    let changes = report.rows();
    out.finish()?;
    report.finish()?;
    println!(
        "{images} images refined, {failed} failed, {changes} rule applications; output in {}",
        a.out.display()
    );
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
