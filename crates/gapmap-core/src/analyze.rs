//! `gapmap analyze`: the whole job from sample files to report files.

use std::path::PathBuf;

use crate::boundaries::Boundaries;
use crate::error::{Error, Result};
use crate::ingest_run::{IngestOptions, Ingested, ingest};
use crate::report::{QuotaSummary, Summary, aggregate, write_quota_and_stats, write_rejects};

/// Settings of an analysis run.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Ingestion settings (files, columns, window, snapping, H3 resolution).
    pub ingest: IngestOptions,
    /// Output directory.
    pub out: PathBuf,
    /// Monthly sample quota per unit.
    pub quota: u64,
}

/// What a run produced, for the caller to print.
#[derive(Debug)]
pub struct AnalyzeReport {
    /// The boundaries used.
    pub boundaries: Boundaries,
    /// Accepted samples and accounting.
    pub ingested: Ingested,
    /// Quota per month and level.
    pub quota: Vec<QuotaSummary>,
    /// The summary written to `summary.json`.
    pub summary: Summary,
}

/// Runs the analysis and writes `quota.csv`, `unit_stats.csv`, `rejects.csv`
/// and `summary.json` into `opts.out`.
///
/// # Errors
/// Unreadable inputs, an inverted window, or unwritable outputs.
pub fn analyze(
    boundaries: Boundaries,
    opts: &AnalyzeOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<AnalyzeReport> {
    if let (Some(a), Some(b)) = (opts.ingest.from, opts.ingest.to) {
        if a > b {
            return Err(Error::Config(format!("--from {a} is after --to {b}")));
        }
    }
    let ingested = ingest(&boundaries, &opts.ingest, progress)?;
    let stats = aggregate(&boundaries, &ingested);
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let quota = write_quota_and_stats(&opts.out, &boundaries, &ingested, &stats, opts.quota)?;
    write_rejects(&opts.out, &ingested)?;
    let summary = Summary::new(&boundaries, &ingested, quota.clone(), opts.quota);
    summary.write(&opts.out)?;
    Ok(AnalyzeReport {
        boundaries,
        ingested,
        quota,
        summary,
    })
}
