//! Glue for the knowledge graph: `nsod kg`, `nsod infer --kg` and `nsod rules suggest`.

use crate::cli::KgArgs;
use anyhow::Context;
use nsod_kg::{export, suggest};
use nsod_pipeline::{
    Environment, Pipeline, PipelineConfig, RunDirOptions, RunDirSink, error_chain,
};
use nsod_types::formats::write_atomic;
use std::path::Path;
use std::process::ExitCode;

/// `nsod kg`: the knowledge-graph stage of the pipeline on existing predictions.
pub fn run(a: &KgArgs) -> anyhow::Result<ExitCode> {
    let config_error = |e: String| {
        crate::ui::error!("{e}");
        Ok(ExitCode::from(2))
    };
    let names = match crate::symbolic::read_names(a.names.as_deref()) {
        Ok(n) => n,
        Err(e) => return config_error(format!("{e:#}")),
    };
    let mut config = PipelineConfig::default();
    config.rules.enabled = false;
    config.kg.enabled = true;
    config.kg.pairs = a.pairs.clone();
    config.kg.min_count = a.min_count.max(1);
    config.output.out = a.out.clone();
    let env = Environment {
        runtime: None,
        sandbox: crate::symbolic::sandbox()?,
        default_rules: None,
    };
    let pipeline = match Pipeline::build(&config, &env, Some(names)) {
        Ok((p, _)) => p,
        Err(e) => return config_error(crate::infer::pipeline_message(&e)),
    };
    let mut sink = match RunDirSink::open(&a.out, RunDirOptions::graph_only(), &pipeline) {
        Ok(s) => s,
        Err(e) => return config_error(error_chain(&e)),
    };
    let (summary, _) = match crate::symbolic::refine_predictions(
        &pipeline,
        &a.pred,
        a.images.as_deref(),
        &mut sink,
    ) {
        Ok(s) => s,
        Err(e) => return config_error(format!("{e:#}")),
    };
    let facts = std::fs::read_to_string(a.out.join("kg_facts.pl")).unwrap_or_default();
    let g = export::parse_facts(&facts).unwrap_or_default();
    let edges: u64 = g
        .counts
        .iter()
        .filter(|((r, _, _), _)| nsod_types::relations::Relation::parse(r).is_some())
        .map(|(_, n)| *n)
        .sum();
    crate::ui::summary!(
        "{} images, {} failed, {edges} relations between objects, {} classes; knowledge graph in {}",
        summary.processed,
        summary.failed,
        g.class_objects.len(),
        a.out.display()
    );
    Ok(if summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `nsod rules suggest`.
pub fn suggest_rules(facts: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(facts).with_context(|| format!("{}", facts.display()))?;
    let g = export::parse_facts(&text).map_err(|e| anyhow::anyhow!("{}: {e}", facts.display()))?;
    let opts = suggest::SuggestOptions::default();
    let s = suggest::suggest(&g, &opts);
    let prolog = suggest::to_prolog(&g, &s, &opts);
    match out {
        Some(p) => {
            write_atomic(p, |w| w.write_all(prolog.as_bytes()))?;
            crate::ui::summary!(
                "{} suggestions from {} images written to {}",
                s.len(),
                g.images,
                p.display()
            );
        }
        None => print!("{prolog}"),
    }
    Ok(ExitCode::SUCCESS)
}
