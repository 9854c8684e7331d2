//! Glue for the knowledge graph: `nsod kg`, `nsod infer --kg` and `nsod rules suggest`.

use crate::cli::KgArgs;
use crate::session::{Needs, Session, config_error};
use anyhow::Context;
use nsod_kg::{export, suggest};
use nsod_pipeline::{RunDirOptions, RunDirSink, error_chain};
use nsod_types::formats::write_atomic;
use std::path::Path;
use std::process::ExitCode;

/// `nsod kg`: the knowledge-graph stage of the pipeline on existing predictions.
pub fn run(global: &crate::cli::GlobalArgs, a: &KgArgs) -> anyhow::Result<ExitCode> {
    let layers = match crate::settings::layers(&a.config, &a.settings) {
        Ok(l) => l,
        Err(e) => return config_error(e),
    };
    if a.config.print_config {
        print!("{}", crate::settings::print_config(&layers));
        return Ok(ExitCode::SUCCESS);
    }
    let names = match crate::symbolic::read_names(layers.config.names.as_deref()) {
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
    let mut sink = match RunDirSink::open(&out, RunDirOptions::graph_only(), &session.pipeline) {
        Ok(s) => s,
        Err(e) => return config_error(error_chain(&e)),
    };
    sink.set_sources(session.sources.clone());
    let (summary, _) = match crate::symbolic::refine_predictions(
        &session.pipeline,
        &a.pred,
        a.images.as_deref(),
        &mut sink,
    ) {
        Ok(s) => s,
        Err(e) => return config_error(format!("{e:#}")),
    };
    let graph = summary.graph.unwrap_or_default();
    crate::ui::summary!(
        "{} images, {} failed, {} relations between objects, {} classes; knowledge graph in {}",
        summary.processed,
        summary.failed,
        graph.relations,
        graph.classes,
        out.display()
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
