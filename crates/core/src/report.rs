//! `nsod report`: the wiring of `nsod_report` (the site is built there).

use crate::cli::ReportArgs;
use std::process::ExitCode;

pub fn run(a: &ReportArgs) -> anyhow::Result<ExitCode> {
    let mut opts = nsod_report::ReportOptions::new(&a.run_dir);
    if let Some(out) = &a.out {
        opts.out = out.clone();
    }
    opts.images = a.images.clone();
    opts.page_size = a.page_size as usize;
    let s = nsod_report::build(&opts)?;
    for w in &s.warnings {
        crate::ui::warning!("{w}");
    }
    crate::ui::summary!(
        "report: {} images ({} gallery pages), {} detections, {} rule changes; {} pictures made, {} reused",
        s.images,
        s.gallery_pages,
        s.detections,
        s.changes,
        s.pictures_made,
        s.pictures_reused
    );
    crate::ui::info!("open {}", s.index.display());
    Ok(ExitCode::SUCCESS)
}
