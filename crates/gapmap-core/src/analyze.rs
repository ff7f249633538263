//! `gapmap analyze`: the whole job from sample files to report files.

use std::path::PathBuf;

use crate::boundaries::Boundaries;
use crate::error::{Error, Result};
use crate::gaps::{
    GapOptions, StatusCounts, VillageIndex, judge_villages, plan, status_totals, write_plan,
    write_unit_gaps, write_villages,
};
use crate::heatmap::write_heatmaps;
use crate::ingest_run::{IngestOptions, Ingested, ingest};
use crate::report::{QuotaSummary, Summary, aggregate, write_quota_and_stats, write_rejects};
use crate::rule::Status;
use crate::villages::Village;

/// Settings of an analysis run.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Ingestion settings (files, columns, window, snapping, H3 resolution).
    pub ingest: IngestOptions,
    /// Output directory.
    pub out: PathBuf,
    /// Monthly sample quota per unit.
    pub quota: u64,
    /// Carriers, rule and village radius for heatmaps and villages.
    pub gaps: GapOptions,
    /// Villages; without them no villages, plan or gap rollups are written.
    pub villages: Option<Vec<Village>>,
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
    /// Per listed carrier, villages in each status (when villages were given).
    pub village_status: Option<Vec<StatusCounts>>,
    /// Cells per heatmap layer.
    pub heatmap_cells: Vec<(String, usize)>,
    /// Plan lines written.
    pub plan_items: Option<usize>,
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
    let mut summary = Summary::new(&boundaries, &ingested, quota.clone(), opts.quota);
    let heatmap_cells = write_heatmaps(&opts.out, &ingested, &opts.gaps)?;
    let layers: Vec<serde_json::Value> = heatmap_cells
        .iter()
        .map(|(c, n)| serde_json::json!({"carrier": c, "cells": n}))
        .collect();
    summary.extra.insert("heatmap".to_owned(), layers.into());
    summary
        .extra
        .insert("warnings".to_owned(), ingested.warnings.clone().into());
    let rule = &opts.gaps.rule;
    summary.extra.insert(
        "settings".to_owned(),
        serde_json::json!({
            "quota": opts.quota,
            "snap_m": opts.ingest.snap_m,
            "resolution": u8::from(opts.ingest.resolution),
            "carriers": opts.gaps.carriers,
            "networks": opts.gaps.networks.as_ref().map(|n| n.iter().map(|x| x.as_str()).collect::<Vec<_>>()),
            "village_radius_m": opts.gaps.village_radius_m,
            "weak_below_mbps": rule.weak_below_mbps,
            "min_samples": rule.min_samples,
            "min_devices": rule.min_devices,
            "alpha": rule.alpha,
            "target_mbps": rule.target_mbps,
        }),
    );
    let mut village_status = None;
    let mut plan_items = None;
    if let Some(villages) = &opts.villages {
        let total = villages.len();
        let index = VillageIndex::new(&boundaries, villages.clone());
        let verdicts = judge_villages(&index, &ingested, &opts.gaps);
        write_villages(&opts.out, &boundaries, &index, &verdicts, &opts.gaps)?;
        write_unit_gaps(&opts.out, &boundaries, &index, &verdicts, &opts.gaps)?;
        let (items, last) = match ingested.window {
            Some((_, last)) => {
                let items = plan(
                    &boundaries,
                    &index,
                    &verdicts,
                    &stats,
                    last,
                    opts.quota,
                    &opts.gaps,
                );
                (items, Some(last))
            }
            None => (Vec::new(), None),
        };
        write_plan(
            &opts.out,
            &boundaries,
            &index,
            &stats,
            last,
            opts.quota,
            &items,
        )?;
        let totals = status_totals(&verdicts, opts.gaps.carriers.len());
        let by_carrier: serde_json::Map<String, serde_json::Value> = opts
            .gaps
            .carriers
            .iter()
            .zip(&totals)
            .map(|(c, t)| {
                let mut m = serde_json::Map::new();
                for (s, n) in Status::ALL.iter().zip(t.by_status) {
                    m.insert(s.as_str().to_owned(), n.into());
                }
                m.insert("below_target".to_owned(), t.below_target.into());
                (c.clone(), serde_json::Value::Object(m))
            })
            .collect();
        summary.extra.insert(
            "villages".to_owned(),
            serde_json::json!({
                "total": total,
                "inside": index.villages.len(),
                "outside": index.outside,
                "samples_with_village": verdicts.samples_with_village,
                "status": by_carrier,
                "plan_villages": items.len(),
                "plan_tests": items.iter().map(|i| i.tests).sum::<u64>(),
            }),
        );
        village_status = Some(totals);
        plan_items = Some(items.len());
    }
    summary.write(&opts.out)?;
    Ok(AnalyzeReport {
        boundaries,
        ingested,
        quota,
        summary,
        village_status,
        heatmap_cells,
        plan_items,
    })
}
