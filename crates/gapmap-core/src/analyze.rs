//! `gapmap analyze`: the whole job from sample files to report files.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::gaps::{
    GapOptions, StatusCounts, VillageIndex, judge_villages, plan, status_totals, write_plan,
    write_unit_gaps, write_villages,
};
use crate::geojson_out::{Prop, Shape};
use crate::heatmap::write_heatmaps;
use crate::ingest_run::{FlagCounts, IngestOptions, Ingested, apply_plausibility, ingest};
use crate::layers::{Formats, Layer, LayerGeometry, write_layer};
use crate::manifest::{FileHash, hash_file, write_manifest};
use crate::month::Month;
use crate::output::write_csv;
use crate::report::{
    LevelStats, QuotaSummary, RejectsCsv, ReportSet, Summary, VillageReach, aggregate, months,
    write_quota_and_stats,
};
use crate::report_html::write_report_html;
use crate::rule::Status;
use crate::stages::Stages;
use crate::store::StoredUnits;
use crate::styles::{SymbolKind, qml, quota_classes};
use crate::villages::Village;
use crate::vintage::{NO_UNIT, PlaceKind, View, Vintages};
use crate::workbook::write_report_xlsx;
use rayon::prelude::*;

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
    /// Which boundary sets the quota and unit statistics are reported on.
    pub view: View,
    /// Formats of the GIS layers.
    pub formats: Formats,
    /// Formats of the heatmaps (GIS layers and H3-keyed tables).
    pub heatmap_formats: crate::heatmap::HeatmapFormats,
    /// The command line, recorded in `manifest.json`.
    pub command: Vec<String>,
    /// Inputs besides the sample and boundary files (villages, embedded
    /// data), already hashed, for `manifest.json`.
    pub other_inputs: Vec<FileHash>,
}

/// What a run produced, for the caller to print.
#[derive(Debug)]
pub struct AnalyzeReport {
    /// The boundary sets used.
    pub vintages: Vintages,
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
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
    /// Wall time per stage.
    pub stages: Stages,
}

/// Runs the analysis and writes `quota.csv`, `unit_stats.csv`, `rejects.csv`
/// and `summary.json` into `opts.out`.
///
/// # Errors
/// Unreadable inputs, an inverted window, or unwritable outputs.
pub fn analyze(
    vintages: Vintages,
    opts: &AnalyzeOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<AnalyzeReport> {
    if let (Some(a), Some(b)) = (opts.ingest.from, opts.ingest.to)
        && a > b
    {
        return Err(Error::Config(format!("--from {a} is after --to {b}")));
    }
    let mut stages = Stages::new();
    let mut rejects = RejectsCsv::new(&opts.out, &opts.ingest.files);
    let mut ingested = ingest(
        &vintages,
        &opts.ingest,
        &opts.gaps.plausibility,
        &mut rejects,
        progress,
    )?;
    for part in &ingested.timings {
        stages.add_part(*part);
    }
    stages.lap("window, row counts");
    // The inputs' digests for the manifest, on a thread of their own while
    // the stages below run (several of them on one core): a national CSV
    // of 11 GB takes seconds to hash.
    let input_paths: Vec<PathBuf> = opts
        .ingest
        .files
        .iter()
        .cloned()
        .chain(
            vintages
                .sets
                .iter()
                .map(|v| v.path.clone())
                .filter(|p| p.is_file()),
        )
        .collect();
    let input_hashes = std::thread::spawn(move || {
        input_paths
            .iter()
            .map(|p| hash_file(p, &p.display().to_string()))
            .collect::<Result<Vec<FileHash>>>()
    });
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let last = ingested.window.map(|w| w.1);
    let dated = opts.view == View::Dated;
    // Samples kept on disk are read back part by part, each stage's parts
    // holding what it needs together (see `each_part`).
    let mut store = ingested.store.take();
    let read_back = std::cell::Cell::new(std::time::Duration::ZERO);
    let part_samples = opts
        .ingest
        .sample_store
        .as_ref()
        .map_or(usize::MAX, |o| o.part_samples.max(1));
    let (flagged, counts, judged_cells) = match &mut store {
        None => {
            let flagged = apply_plausibility(
                &mut ingested.samples,
                &ingested.positions,
                &opts.gaps.plausibility,
            );
            let counts = SampleCounts::of(&ingested, &vintages, dated);
            (flagged, counts, Vec::new())
        }
        Some(store) => plausibility_by_parts(&ingested, store, &vintages, opts, dated, &read_back)?,
    };
    if store.is_some() {
        stages.add("read back (plausibility)", read_back.take());
    }
    stages.lap("plausibility");
    // Villages, gaps and the plan use the units of one set.
    let r = vintages.report_set(opts.view, last);
    let r_set = r;
    let boundaries = &vintages.sets[r].boundaries;
    // The villages are judged first: with them the samples' positions have
    // served, and are freed before the statistics' stages, which hold the
    // most memory.
    let judged = match opts.villages.as_ref() {
        None => None,
        Some(villages) => {
            let exact = vintages.locators(0.0);
            let place = |lon: f64, lat: f64| {
                let p = vintages.place_all(&exact, lon, lat)[r];
                (p.unit != NO_UNIT && p.kind != PlaceKind::Outside).then_some(p.unit)
            };
            #[allow(clippy::cast_possible_truncation, reason = "unit counts fit u32")]
            let centres = (0..boundaries.finest().len())
                .map(|u| vintages.unit_centre(r, u as u32))
                .collect();
            let index = VillageIndex::with_placer(
                villages.clone(),
                &place,
                centres,
                &vintages.sets[r].label,
            );
            let (verdicts, visits) = match &store {
                None => {
                    let verdicts =
                        judge_villages(&index, &ingested, &ingested.places[r].units, &opts.gaps);
                    let visits = village_visits(&ingested, &verdicts.assigned);
                    (verdicts, visits)
                }
                // A sample's village lies in its own unit: parts of whole
                // top-level units, each village judged in its unit's part.
                Some(store) => judge_villages_by_parts(
                    &ingested,
                    store,
                    &index,
                    (r, &counts),
                    &opts.gaps,
                    part_samples,
                    &read_back,
                )?,
            };
            Some((index, verdicts, visits))
        }
    };
    ingested.positions = Vec::new();
    if store.is_some() {
        stages.add("read back (villages)", read_back.take());
    }
    stages.lap("villages");
    let ingested = ingested;
    let window_months = months(ingested.window);
    // One set's statistics, of the samples `include` accepts: every group
    // lies within one top-level unit, so stored samples come in parts of
    // whole top-level units.
    let aggregate_set = |v: usize,
                         include: &(dyn Fn(&crate::ingest_run::Sample) -> bool + Sync)|
     -> Result<LevelStats> {
        let b = &vintages.sets[v].boundaries;
        let Some(store) = &store else {
            return Ok(aggregate(b, &ingested, &ingested.places[v].units, include));
        };
        let top = &counts.tops[v];
        let parts = unit_parts(store, &counts, v, part_samples, true);
        let mut stats: LevelStats = vec![std::collections::HashMap::new(); b.units.len()];
        each_part(
            &ingested,
            store,
            &parts.sizes,
            (
                |block, g| parts.blocks.contains(&(block, g)),
                |_, units: StoredUnits<'_>| {
                    let u = units.get(v);
                    (u != NO_UNIT).then(|| parts.part(top[u as usize], units))
                },
                include,
                false,
            ),
            &mut |part, _| {
                let part_stats = aggregate(b, &part, &part.places[v].units, include);
                for (level, groups) in stats.iter_mut().zip(part_stats) {
                    level.extend(groups);
                }
                Ok(())
            },
            &read_back,
        )?;
        Ok(stats)
    };
    // Each reported set: its months and statistics.
    let mut parts: Vec<(usize, Vec<Month>, LevelStats)> = Vec::new();
    for v in vintages.view_sets(opts.view, last) {
        let ms: Vec<Month> = window_months
            .iter()
            .copied()
            .filter(|&m| !dated || vintages.in_force(m) == v)
            .collect();
        if ms.is_empty() && !window_months.is_empty() {
            continue;
        }
        let include = |s: &crate::ingest_run::Sample| !dated || vintages.in_force(s.month()) == v;
        let stats = aggregate_set(v, &include)?;
        parts.push((v, ms, stats));
    }
    let report_sets: Vec<ReportSet<'_>> = parts
        .iter()
        .map(|(v, ms, stats)| ReportSet {
            label: &vintages.sets[*v].label,
            boundaries: &vintages.sets[*v].boundaries,
            stats,
            months: ms.clone(),
        })
        .collect();
    if store.is_some() {
        stages.add("read back (units)", read_back.take());
    }
    stages.lap("aggregate units");
    let village_reach = judged.as_ref().map(|(index, _, visits)| {
        village_reach(boundaries, &vintages.sets[r].label, index, visits)
    });
    // Three files of their own, finished side by side (rejects.csv, written
    // while reading, is synced and put in place); an error is reported in
    // this order.
    let (quota, (rejects, unplaced)) = rayon::join(
        || {
            write_quota_and_stats(
                &opts.out,
                &report_sets,
                &ingested,
                opts.quota,
                village_reach.as_ref(),
            )
        },
        || {
            rayon::join(
                || rejects.finish(),
                || write_unplaced(&opts.out, &vintages, &counts, &parts),
            )
        },
    );
    let quota = quota?;
    rejects?;
    unplaced?;
    let mut summary = Summary::new(
        boundaries,
        &ingested,
        &counts.per_carrier,
        quota.clone(),
        opts.quota,
    );
    summary
        .extra
        .insert("view".to_owned(), opts.view.as_str().into());
    summary.extra.insert(
        "vintages".to_owned(),
        vintage_summary(&vintages, &counts, &parts),
    );
    stages.lap("write quota, stats, rejects");
    let mut files: Vec<PathBuf> = ["quota.csv", "unit_stats.csv", "rejects.csv", "unplaced.csv"]
        .iter()
        .map(|f| opts.out.join(f))
        .collect();
    let (heatmaps, map) = match &store {
        None => {
            let cell_order = crate::heatmap::CellOrder::new(&ingested, &opts.gaps);
            stages.lap("samples in cell order");
            // The map report's layers beside the heatmaps: both read the
            // samples in cell order, and the layers' files are written on
            // one thread while the next layer is judged on the other.
            let (heatmaps, map) = rayon::join(
                || {
                    write_heatmaps(
                        &opts.out,
                        &ingested,
                        &opts.gaps,
                        &cell_order,
                        &opts.heatmap_formats,
                    )
                },
                || {
                    crate::heatmap::map_layers(
                        &ingested,
                        &opts.gaps,
                        &cell_order,
                        crate::report_html::MAX_MAP_CELLS,
                    )
                },
            );
            (heatmaps?, map)
        }
        // Parts of whole cells at the map's coarsest resolution: each
        // heatmap and map cell has all its samples in one part.
        Some(store) => {
            let mut gathered = crate::heatmap::HeatmapParts::new(
                &ingested,
                &opts.gaps,
                &judged_cells,
                crate::report_html::MAX_MAP_CELLS,
            );
            let block_counts = store.block_counts();
            let parts = part_count(store, part_samples);
            let part_of = gathered.block_parts(&block_counts, parts);
            let sizes = part_sizes(
                block_counts
                    .iter()
                    .map(|(block, n)| (part_of.get(block).copied().unwrap_or(u64::MAX), *n)),
                parts,
            );
            each_part(
                &ingested,
                store,
                &sizes,
                (
                    |block, g| part_of.get(&block) == Some(&g),
                    |cell, _: StoredUnits<'_>| part_of.get(&crate::store::block_of(cell)).copied(),
                    |s: &crate::ingest_run::Sample| opts.gaps.judges(s),
                    false,
                ),
                &mut |part, _| {
                    gathered.add(&part, &opts.gaps);
                    Ok(())
                },
                &read_back,
            )?;
            let (results, map) = gathered.finish(&opts.gaps);
            stages.add("read back (cells)", read_back.take());
            stages.lap("samples in cell order");
            let heatmaps = crate::heatmap::write_heatmap_results(
                &opts.out,
                &opts.gaps,
                &results,
                &opts.heatmap_formats,
            )?;
            (heatmaps, map)
        }
    };
    files.extend(heatmaps.files.iter().cloned());
    let heatmap_cells = heatmaps.cells.clone();
    stages.lap("heatmaps");
    let layers: Vec<serde_json::Value> = heatmap_cells
        .iter()
        .map(|(c, n)| serde_json::json!({"carrier": c, "cells": n}))
        .collect();
    summary.extra.insert("heatmap".to_owned(), layers.into());
    summary.extra.insert(
        "gaming".to_owned(),
        serde_json::json!({
            "rules": {
                "max_accuracy_m": opts.gaps.plausibility.max_accuracy_m,
                "max_movement_kmh": opts.gaps.plausibility.max_movement_kmh,
                "network_speed_limits": opts.gaps.plausibility.network_speed_limits,
                "device_cap": opts.gaps.plausibility.device_cap,
            },
            "flagged": flagged,
        }),
    );
    let mut warnings = ingested.warnings.clone();
    for v in &vintages.sets {
        warnings.extend(v.boundaries.warnings.iter().cloned());
    }
    summary.extra.insert("warnings".to_owned(), warnings.into());
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
            "device_cap": opts.gaps.plausibility.device_cap,
            "max_accuracy_m": opts.gaps.plausibility.max_accuracy_m,
            "max_movement_kmh": opts.gaps.plausibility.max_movement_kmh,
            "network_speed_limits": opts.gaps.plausibility.network_speed_limits,
            "min_devices_public": opts.gaps.min_devices_public,
            "view": opts.view.as_str(),
            "boundaries": vintages.sets.iter().map(|v| serde_json::json!({
                "vintage": v.label,
                "path": v.path.display().to_string(),
                "kind": if v.crosswalk.is_some() { "crosswalk" } else { "polygons" },
                "levels": v.boundaries.levels.0.iter().map(|l| format!("{}={}:{}", l.name, l.code_property, l.name_property)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
    );
    let mut village_status = None;
    let mut plan_items = None;
    let fallback;
    let stats = match parts.iter().find(|p| p.0 == r) {
        Some(p) => &p.2,
        None => {
            fallback = aggregate_set(r, &|_| true)?;
            &fallback
        }
    };
    let mut reach: Option<Vec<(u64, u64)>> = None;
    let mut village_layer = None;
    if let (Some(villages), Some((index, verdicts, _))) = (&opts.villages, &judged) {
        let total = villages.len();
        let mut per_unit = vec![(0u64, 0u64); boundaries.finest().len()];
        for (vi, &u) in index.unit.iter().enumerate() {
            per_unit[u as usize].0 += 1;
            per_unit[u as usize].1 +=
                u64::from(verdicts.verdicts[vi].iter().any(|v| v.samples > 0));
        }
        reach = Some(per_unit);
        files.push(opts.out.join("villages.csv"));
        let (village_files, layer) = write_villages(
            &opts.out,
            boundaries,
            index,
            verdicts,
            &opts.gaps,
            &opts.formats,
        )?;
        files.extend(village_files);
        village_layer = Some(layer);
        write_unit_gaps(&opts.out, boundaries, index, verdicts, &opts.gaps)?;
        files.push(opts.out.join("unit_gaps.csv"));
        let (items, last) = match ingested.window {
            Some((_, last)) => {
                let items = plan(
                    boundaries, index, verdicts, stats, last, opts.quota, &opts.gaps,
                );
                (items, Some(last))
            }
            None => (Vec::new(), None),
        };
        files.push(opts.out.join("plan.csv"));
        files.extend(write_plan(
            &opts.out,
            boundaries,
            index,
            stats,
            last,
            opts.quota,
            &items,
            &opts.formats,
        )?);
        let totals = status_totals(verdicts, opts.gaps.carriers.len());
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
    stages.lap("village outputs, plan");
    let mut unit_layer = None;
    if vintages.sets[r].crosswalk.is_none() {
        let layer = units_layer(&vintages.sets[r], stats, last, opts.quota, reach.as_deref());
        files.extend(write_layer(&opts.out, "units", &layer, &opts.formats)?);
        unit_layer = Some(layer);
    }
    let title = match ingested.window {
        Some((a, b)) if a == b => format!("gapmap {a}"),
        Some((a, b)) => format!(
            "gapmap {a} – {b}; đơn vị, thôn bản / units, villages: {} ({})",
            b, vintages.sets[r].label
        ),
        None => "gapmap".to_owned(),
    };
    stages.lap("units layer");
    // The two reports side by side: the workbook is written on one thread
    // (2.3 s for a year of national months), the page mostly on both.
    let (html, xlsx) = rayon::join(
        || {
            write_report_html(
                &opts.out,
                &title,
                u8::from(opts.ingest.resolution),
                unit_layer.as_ref(),
                &map,
                village_layer.as_ref(),
            )
        },
        || {
            write_report_xlsx(
                &opts.out,
                &report_sets,
                &quota,
                &opts.gaps.carriers,
                &ingested.carriers,
                opts.quota,
                reach
                    .as_deref()
                    .map(|r| (vintages.sets[r_set].label.as_str(), r)),
            )
        },
    );
    html?;
    xlsx?;
    files.push(opts.out.join("report.html"));
    files.push(opts.out.join("report.xlsx"));
    stages.lap("report.html, report.xlsx");
    summary.write(&opts.out)?;
    files.push(opts.out.join("summary.json"));
    let mut inputs = match input_hashes.join() {
        Ok(hashes) => hashes?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    inputs.extend(opts.other_inputs.iter().cloned());
    files.push(write_manifest(
        &opts.out,
        &opts.command,
        &inputs,
        &summary.extra["vintages"],
        &summary.extra["settings"],
        &files,
    )?);
    stages.lap("summary, manifest");
    drop(report_sets);
    Ok(AnalyzeReport {
        vintages,
        ingested,
        quota,
        summary,
        village_status,
        heatmap_cells,
        plan_items,
        files,
        stages,
    })
}

/// The finest units of a polygon set with their quota status in `month`
/// (and, with villages, how many of their villages have any sample).
fn units_layer(
    set: &crate::vintage::Vintage,
    stats: &LevelStats,
    month: Option<Month>,
    quota: u64,
    reach: Option<&[(u64, u64)]>,
) -> Layer {
    let b = &set.boundaries;
    let finest = b.units.len() - 1;
    let mut fields: Vec<String> = [
        "code",
        "name",
        "parent_code",
        "month",
        "samples",
        "devices",
        "quota",
        "met",
        "deficit",
    ]
    .map(str::to_owned)
    .to_vec();
    if reach.is_some() {
        fields
            .extend(["villages", "villages_reached", "share_villages_reached"].map(str::to_owned));
    }
    fields.push("vintage".to_owned());
    let features = b
        .finest()
        .iter()
        .enumerate()
        .map(|(u, unit)| {
            #[allow(clippy::cast_possible_truncation, reason = "unit counts fit u32")]
            let g = month.and_then(|m| stats[finest].get(&(m, u as u32)));
            let n = g.map_or(0, |g| g.all.samples);
            let parent = unit
                .parent
                .map(|p| b.units[finest - 1][p as usize].code.clone())
                .unwrap_or_default();
            let mut props = vec![
                Prop::Str(unit.code.clone()),
                Prop::Str(unit.name.clone()),
                Prop::Str(parent),
                Prop::Str(month.map(|m| m.to_string()).unwrap_or_default()),
                Prop::Int(n),
                Prop::Int(g.map_or(0, |g| g.all.devices)),
                Prop::Int(quota),
                Prop::Bool(Some(n >= quota)),
                Prop::Int(quota.saturating_sub(n)),
            ];
            if let Some(reach) = reach {
                let (v, hit) = reach[u];
                props.push(Prop::Int(v));
                props.push(Prop::Int(hit));
                #[allow(clippy::cast_precision_loss, reason = "village counts are small")]
                props.push(Prop::Num((v > 0).then(|| hit as f64 / v as f64), 4));
            }
            props.push(Prop::Str(set.label.clone()));
            (Shape::Multi(b.shapes[u].clone()), props)
        })
        .collect();
    Layer {
        name: "units".to_owned(),
        geometry: LayerGeometry::MultiPolygon,
        fields,
        features,
        style: Some(qml(SymbolKind::Fill, &quota_classes())),
    }
}

/// What the plausibility stage gives the later ones: the flags' counts,
/// the counts any partition sums, and the distinct (cell, carrier) pairs
/// of the judged samples (sorted; found here only for stored samples).
type PlausibilityOutcome = (FlagCounts, SampleCounts, Vec<(u64, u16)>);

/// The plausibility rules on stored samples, a group of devices at a time
/// (a device's flags depend on its own tests only), the flags handed back
/// to the store; with the counts of [`SampleCounts`] and the distinct
/// (cell, carrier) pairs of the judged samples, sorted.
fn plausibility_by_parts(
    ingested: &Ingested,
    store: &mut crate::store::SampleStore,
    vintages: &Vintages,
    opts: &AnalyzeOptions,
    dated: bool,
    read_back: &std::cell::Cell<std::time::Duration>,
) -> Result<PlausibilityOutcome> {
    let mut flagged = FlagCounts::default();
    let mut counts = SampleCounts::new(ingested, vintages, true);
    // Distinct pairs by hashing on both cores: a part holds most of the
    // country's pairs, many times over. One set for every part, sorted once.
    type Pairs = std::collections::HashSet<(u64, u16), foldhash::fast::FixedState>;
    let mut judged_cells = Pairs::default();
    for g in 0..store.device_groups() {
        let started = std::time::Instant::now();
        let loaded = store.load_device_group(g)?;
        let mut part = ingested.with_part(loaded.samples, loaded.positions, loaded.places);
        read_back.set(read_back.get() + started.elapsed());
        let before: Vec<u8> = part.samples.iter().map(|s| s.flags).collect();
        flagged.add(&apply_plausibility(
            &mut part.samples,
            &part.positions,
            &opts.gaps.plausibility,
        ));
        let after: Vec<u8> = part.samples.iter().map(|s| s.flags).collect();
        if after != before {
            store.set_group_flags(g, &after)?;
        }
        counts.add(&part, vintages, dated);
        let mut pairs = part
            .samples
            .par_iter()
            .filter(|s| opts.gaps.judges(s))
            .fold(Pairs::default, |mut set, s| {
                set.insert((u64::from(s.cell), s.carrier));
                set
            })
            .reduce(Pairs::default, |a, b| {
                let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
                big.extend(small);
                big
            });
        if judged_cells.len() < pairs.len() {
            std::mem::swap(&mut judged_cells, &mut pairs);
        }
        judged_cells.extend(pairs);
    }
    let mut judged_cells: Vec<(u64, u16)> = judged_cells.into_iter().collect();
    judged_cells.par_sort_unstable();
    Ok((flagged, counts, judged_cells))
}

/// The villages judged on stored samples, in parts of whole top-level units
/// of set `r` (a sample's village lies in its own unit), each village in
/// its unit's part; with the (month, village) pairs of the samples
/// assigned to a village, sorted.
fn judge_villages_by_parts(
    ingested: &Ingested,
    store: &crate::store::SampleStore,
    index: &VillageIndex,
    (r, counts): (usize, &SampleCounts),
    gaps: &GapOptions,
    part_samples: usize,
    read_back: &std::cell::Cell<std::time::Duration>,
) -> Result<(crate::gaps::VillageVerdicts, Vec<(Month, u32)>)> {
    let top = &counts.tops[r];
    // A village's verdict spans the window: whole provinces, not months.
    let parts = unit_parts(store, counts, r, part_samples, false);
    let mut verdicts = crate::gaps::VillageVerdicts {
        verdicts: vec![Vec::new(); index.villages.len()],
        samples_with_village: 0,
        assigned: Vec::new(),
    };
    let mut visits = Vec::new();
    each_part(
        ingested,
        store,
        &parts.sizes,
        (
            |block, g| parts.blocks.contains(&(block, g)),
            |_, units: StoredUnits<'_>| {
                let u = units.get(r);
                (u != NO_UNIT).then(|| parts.part(top[u as usize], units))
            },
            |_: &crate::ingest_run::Sample| true,
            true,
        ),
        &mut |part, (g, groups)| {
            let v = judge_villages(index, &part, &part.places[r].units, gaps);
            for (vi, (slot, judged)) in verdicts.verdicts.iter_mut().zip(v.verdicts).enumerate() {
                if parts
                    .whole(top[index.unit[vi] as usize])
                    .map(|p| group_of(p, groups))
                    == Some(g)
                {
                    *slot = judged;
                }
            }
            verdicts.samples_with_village += v.samples_with_village;
            visits.extend(village_visits(&part, &v.assigned));
            Ok(())
        },
        read_back,
    )?;
    visits.sort_unstable();
    Ok((verdicts, visits))
}

/// The (month, village) pairs of the samples assigned to a village
/// (`assigned[i]`: sample i's village), sorted, without repeats.
fn village_visits(ing: &Ingested, assigned: &[Option<u32>]) -> Vec<(Month, u32)> {
    let mut visits: Vec<(Month, u32)> = ing
        .samples
        .iter()
        .zip(assigned)
        .filter_map(|(s, v)| v.map(|v| (s.month(), v)))
        .collect();
    visits.sort_unstable();
    visits.dedup();
    visits
}

/// Villages of each unit, and per month those with at least one sample
/// (`visits`: the distinct (month, village) pairs).
fn village_reach(
    b: &crate::boundaries::Boundaries,
    label: &str,
    index: &VillageIndex,
    visits: &[(Month, u32)],
) -> VillageReach {
    let anc = crate::report::ancestor_table(b);
    let mut total: Vec<Vec<u64>> = b.units.iter().map(|l| vec![0; l.len()]).collect();
    for &u in &index.unit {
        for (li, level) in anc.iter().enumerate() {
            total[li][level[u as usize] as usize] += 1;
        }
    }
    let mut measured = std::collections::HashMap::new();
    for &(m, v) in visits {
        let u = index.unit[v as usize];
        for (li, level) in anc.iter().enumerate() {
            *measured.entry((m, li, level[u as usize])).or_insert(0) += 1;
        }
    }
    VillageReach {
        label: label.to_owned(),
        total,
        measured,
    }
}

/// Counts over the accepted samples that any partition of them can sum:
/// per carrier, and per boundary set how its samples were placed and the
/// unplaced ones by (month, reason, old unit). With the dated view a set
/// counts only the samples of the months it is in force.
#[derive(Debug)]
struct SampleCounts {
    /// Per set, the top-level unit of each finest unit.
    tops: Vec<Vec<u32>>,
    per_carrier: Vec<u64>,
    /// Per set, the samples in each top-level unit.
    per_top: Vec<Vec<u64>>,
    /// The window's first month and its number of months, when the
    /// samples of each top-level unit are counted by month (samples on
    /// disk: parts of a province's months, [`unit_parts`]).
    months: Option<(Month, usize)>,
    /// Per set, the samples of each top-level unit in each month of the
    /// window (`top * months + month`), when counted.
    per_top_month: Vec<Vec<u64>>,
    kinds: Vec<[u64; 5]>,
    unplaced: std::collections::BTreeMap<(usize, Month, u8, u32), u64>,
}

impl SampleCounts {
    /// Empty counts; `by_month`: count each top-level unit's samples by
    /// month too.
    fn new(ing: &Ingested, vintages: &Vintages, by_month: bool) -> Self {
        let tops: Vec<Vec<u32>> = vintages
            .sets
            .iter()
            .map(|v| crate::report::ancestor_table(&v.boundaries).swap_remove(0))
            .collect();
        let months = ing
            .window
            .filter(|_| by_month)
            .map(|(first, last)| (first, first.through(last).count()));
        let per_top: Vec<Vec<u64>> = vintages
            .sets
            .iter()
            .map(|v| vec![0; v.boundaries.units.first().map_or(0, Vec::len)])
            .collect();
        Self {
            tops,
            per_carrier: vec![0; ing.carriers.len()],
            per_top_month: per_top
                .iter()
                .map(|t| vec![0; months.map_or(0, |(_, n)| t.len() * n)])
                .collect(),
            per_top,
            months,
            kinds: vec![[0; 5]; vintages.sets.len()],
            unplaced: std::collections::BTreeMap::new(),
        }
    }

    fn of(ing: &Ingested, vintages: &Vintages, dated: bool) -> Self {
        let mut counts = Self::new(ing, vintages, false);
        counts.add(ing, vintages, dated);
        counts
    }

    /// The month of the window, counted from its first, of each sample.
    fn month_numbers(&self, ing: &Ingested) -> Vec<usize> {
        let Some((first, _)) = self.months else {
            return Vec::new();
        };
        ing.samples
            .par_iter()
            .map(|s| usize::try_from(s.month().index() - first.index()).unwrap_or(usize::MAX))
            .collect()
    }

    fn add(&mut self, ing: &Ingested, vintages: &Vintages, dated: bool) {
        for s in &ing.samples {
            self.per_carrier[s.carrier as usize] += 1;
        }
        let month_of = self.month_numbers(ing);
        for (v, places) in ing.places.iter().enumerate() {
            let top = &self.tops[v];
            for &u in places.units.iter().filter(|&&u| u != NO_UNIT) {
                self.per_top[v][top[u as usize] as usize] += 1;
            }
            if let Some((_, months)) = self.months {
                for (&u, &m) in places.units.iter().zip(&month_of) {
                    // Every sample lies in the window (samples outside it
                    // are dropped while reading).
                    if u != NO_UNIT && m < months {
                        self.per_top_month[v][top[u as usize] as usize * months + m] += 1;
                    }
                }
            }
            for (s, &kind) in ing.samples.iter().zip(&places.kinds) {
                if !dated || vintages.in_force(s.month()) == v {
                    self.kinds[v][kind as usize] += 1;
                }
            }
            for &(i, old) in &places.unplaced {
                let month = ing.samples[i as usize].month();
                if !dated || vintages.in_force(month) == v {
                    let kind = places.kinds[i as usize];
                    *self
                        .unplaced
                        .entry((v, month, kind as u8, old))
                        .or_default() += 1;
                }
            }
        }
    }
}

/// The number of parts of about `part_samples` samples in `store`.
fn part_count(store: &crate::store::SampleStore, part_samples: usize) -> u64 {
    store.len().div_ceil(part_samples as u64).max(1)
}

/// The part, of `parts`, of each of the groups of `sizes` samples, filled
/// largest first (ties in order), each into the part holding the fewest
/// samples so far (ties: the first such part).
pub(crate) fn fill_parts(sizes: &[u64], parts: u64) -> Vec<u64> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&t| (std::cmp::Reverse(sizes[t]), t));
    let mut load = vec![0u64; usize::try_from(parts).unwrap_or(1).max(1)];
    let mut part_of = vec![0u64; sizes.len()];
    for t in order {
        let (emptiest, _) = load
            .iter()
            .enumerate()
            .min_by_key(|&(p, &n)| (n, p))
            .unwrap_or((0, &0));
        load[emptiest] += sizes[t];
        part_of[t] = emptiest as u64;
    }
    part_of
}

/// Where a top-level unit's stored samples go.
#[derive(Debug, Clone)]
enum TopPart {
    /// All into one part.
    Whole(u64),
    /// Each month of the window into the part of its run of months (a
    /// unit holding more samples than a part): every unit statistic is
    /// of one month.
    ByMonth(Vec<u64>),
}

/// Parts of the stored samples of one set, of whole top-level units (or of
/// whole months of one).
struct UnitParts {
    /// Each top-level unit's part, or its months' parts.
    part_of: Vec<TopPart>,
    /// The window's first month, which month numbers count from.
    first: Option<Month>,
    /// The (block, group) pairs where the store holds a sample of a unit
    /// in that group: the blocks each part reads.
    blocks: std::collections::HashSet<(u64, u64), foldhash::fast::FixedState>,
    /// Each part's samples ([`part_sizes`]).
    sizes: Vec<u64>,
}

impl UnitParts {
    /// The part key of a stored sample of top-level unit `t` (a sample
    /// outside the window, which is never stored, goes to the last part).
    fn part(&self, t: u32, units: StoredUnits<'_>) -> u64 {
        match &self.part_of[t as usize] {
            TopPart::Whole(p) => *p,
            TopPart::ByMonth(parts) => units
                .month()
                .zip(self.first)
                .and_then(|(m, first)| usize::try_from(m.index() - first.index()).ok())
                .and_then(|i| parts.get(i))
                .copied()
                .unwrap_or(u64::MAX),
        }
    }

    /// The part of every sample of top-level unit `t`, when they are in one.
    fn whole(&self, t: u32) -> Option<u64> {
        match self.part_of[t as usize] {
            TopPart::Whole(p) => Some(p),
            TopPart::ByMonth(_) => None,
        }
    }
}

/// [`UnitParts`] of set `v`, of about `part_samples` samples each. With
/// `by_month` (and the months counted), a top-level unit holding more
/// samples than a part is split into runs of its months: the largest
/// province of a long window is not held whole.
fn unit_parts(
    store: &crate::store::SampleStore,
    counts: &SampleCounts,
    v: usize,
    part_samples: usize,
    by_month: bool,
) -> UnitParts {
    let groups = part_count(store, part_samples);
    let per_top = &counts.per_top[v];
    // The groups of samples parts are made of: (top-level unit, its
    // months or all), and their sizes. A split unit's months go in runs of
    // consecutive months of at most a part's samples (a month at least):
    // each run is a part that reads the unit's blocks, so the fewer runs,
    // the fewer times they are read.
    let mut owners: Vec<(usize, Option<std::ops::Range<usize>>)> = Vec::new();
    let mut sizes: Vec<u64> = Vec::new();
    for (t, &n) in per_top.iter().enumerate() {
        match counts.months {
            Some((_, months)) if by_month && n > part_samples as u64 => {
                let of_month = &counts.per_top_month[v][t * months..(t + 1) * months];
                let mut start = 0;
                let mut run = 0;
                for (m, &k) in of_month.iter().enumerate() {
                    if m > start && run + k > part_samples as u64 {
                        owners.push((t, Some(start..m)));
                        sizes.push(run);
                        (start, run) = (m, 0);
                    }
                    run += k;
                }
                owners.push((t, Some(start..months)));
                sizes.push(run);
            }
            _ => {
                owners.push((t, None));
                sizes.push(n);
            }
        }
    }
    let part_of_group = fill_parts(&sizes, groups);
    let months = counts.months.map_or(0, |(_, n)| n);
    let mut part_of = vec![TopPart::Whole(0); per_top.len()];
    for (&(t, ref run), &p) in owners.iter().zip(&part_of_group) {
        match (run, &mut part_of[t]) {
            (None, slot) => *slot = TopPart::Whole(p),
            (Some(run), TopPart::ByMonth(parts)) => parts[run.clone()].fill(p),
            // A unit's first run (its runs cover every month; the later
            // ones take theirs).
            (Some(_), slot) => *slot = TopPart::ByMonth(vec![p; months]),
        }
    }
    let top = &counts.tops[v];
    let mut blocks: std::collections::HashSet<(u64, u64), foldhash::fast::FixedState> =
        std::collections::HashSet::default();
    for (block, u) in store.block_units(v).filter(|&(_, u)| u != NO_UNIT) {
        match &part_of[top[u as usize] as usize] {
            TopPart::Whole(p) => {
                blocks.insert((block, group_of(*p, groups)));
            }
            TopPart::ByMonth(parts) => {
                blocks.extend(parts.iter().map(|&p| (block, group_of(p, groups))));
            }
        }
    }
    UnitParts {
        part_of,
        first: counts.months.map(|(first, _)| first),
        blocks,
        sizes: part_sizes(part_of_group.iter().copied().zip(sizes), groups),
    }
}

/// The samples of each of `groups` parts, given (part key, samples) of
/// the groups of samples they are made of.
fn part_sizes(of: impl IntoIterator<Item = (u64, u64)>, groups: u64) -> Vec<u64> {
    let mut sizes = vec![0; usize::try_from(groups).unwrap_or(1).max(1)];
    for (key, n) in of {
        #[allow(clippy::cast_possible_truncation, reason = "a group number fits usize")]
        let g = group_of(key, groups) as usize;
        sizes[g] += n;
    }
    sizes
}

/// The group of a part key among `groups`: a key past the last group
/// counts in the last, so that no sample is lost to a bad key.
const fn group_of(key: u64, groups: u64) -> u64 {
    if key < groups { key } else { groups - 1 }
}

/// A stage run on one part: its samples (as a run of their own) and
/// (part, parts).
type PartStage<'a> = dyn FnMut(Ingested, (u64, u64)) -> Result<()> + 'a;

/// Calls `f` with each part of the stored samples, of those `keep` accepts,
/// that `key` puts in the same group (a sample without a key in none),
/// file after file of the store, with (group, groups). The groups are
/// as many as `sizes`, each part's samples that `key` routes to it
/// (before `keep`), reserved for when it is read: a part larger than the
/// average must not grow, and so hold its samples twice, while read.
/// `key` gives a group number below that (a larger one is taken as the
/// last), spreading the samples about evenly. `key` sees a record's
/// H3 cell (its 64 bits) and finest unit in every set, so that the samples
/// of other groups are never decoded, and `blocks` tells whether a block
/// of the store may hold samples of a group (those it refuses are not
/// read); the parts hold the samples' positions if `positions`. The time
/// spent reading parts back is added to `read_back`.
fn each_part<B, K, A>(
    ing: &Ingested,
    store: &crate::store::SampleStore,
    sizes: &[u64],
    (blocks, key, keep, positions): (B, K, A, bool),
    f: &mut PartStage<'_>,
    read_back: &std::cell::Cell<std::time::Duration>,
) -> Result<()>
where
    B: Fn(u64, u64) -> bool + Sync,
    K: Fn(u64, StoredUnits<'_>) -> Option<u64> + Sync,
    A: Fn(&crate::ingest_run::Sample) -> bool + Sync,
{
    let groups = sizes.len() as u64;
    for (g, &size) in (0..groups).zip(sizes) {
        #[allow(clippy::cast_possible_truncation, reason = "a part fits memory")]
        let expected = size as usize;
        let started = std::time::Instant::now();
        let part = store.load(
            &crate::store::Filter {
                blocks: |block| blocks(block, g),
                route: |cell, units: StoredUnits<'_>| {
                    key(cell, units).map(|k| group_of(k, groups)) == Some(g)
                },
                keep: &keep,
                positions,
            },
            expected,
        )?;
        let sub = ing.with_part(part.samples, part.positions, part.places);
        read_back.set(read_back.get() + started.elapsed());
        f(sub, (g, groups))?;
    }
    Ok(())
}

/// Per boundary set: what it is and how the samples it reports were placed.
fn vintage_summary(
    vintages: &Vintages,
    counts: &SampleCounts,
    parts: &[(usize, Vec<Month>, LevelStats)],
) -> serde_json::Value {
    let sets: Vec<serde_json::Value> = vintages
        .sets
        .iter()
        .enumerate()
        .map(|(v, set)| {
            let part = parts.iter().find(|p| p.0 == v);
            let kinds = if part.is_some() {
                counts.kinds[v]
            } else {
                [0; 5]
            };
            let b = &set.boundaries;
            serde_json::json!({
                "vintage": set.label,
                "from": set.from.map(|m| format!("{m}-01")),
                "kind": if set.crosswalk.is_some() { "crosswalk" } else { "polygons" },
                "levels": b.levels.0.iter().zip(&b.units).map(|(l, u)| serde_json::json!({"level": l.name, "units": u.len()})).collect::<Vec<_>>(),
                "months": part.map(|p| p.1.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap_or_default(),
                "samples": kinds[..3].iter().sum::<u64>(),
                "snapped": kinds[PlaceKind::Snapped as usize],
                "nearest_centre": kinds[PlaceKind::NearestCentre as usize],
                "unmapped": kinds[PlaceKind::Unmapped as usize],
                "outside": kinds[PlaceKind::Outside as usize],
            })
        })
        .collect();
    sets.into()
}

/// Writes `unplaced.csv`: per reported set and month, the accepted samples it
/// could not place (`unmapped`: in an old unit its crosswalk does not map;
/// `outside`: outside its polygons), by old unit, so none is silently lost.
fn write_unplaced(
    out: &std::path::Path,
    vintages: &Vintages,
    counts: &SampleCounts,
    parts: &[(usize, Vec<Month>, LevelStats)],
) -> Result<()> {
    let counts = counts
        .unplaced
        .iter()
        .filter(|((v, ..), _)| parts.iter().any(|p| p.0 == *v))
        .map(|(&k, &n)| (k, n));
    write_csv(
        &out.join("unplaced.csv"),
        &[
            "vintage", "month", "reason", "old_code", "old_name", "samples",
        ],
        counts.map(|((v, m, kind, old), n)| {
            let base = vintages.sets[v].crosswalk.as_ref().map(|c| c.base);
            let old_unit =
                base.and_then(|b| vintages.sets[b].boundaries.finest().get(old as usize));
            [
                vintages.sets[v].label.clone(),
                m.to_string(),
                if kind == PlaceKind::Unmapped as u8 {
                    "unmapped"
                } else {
                    "outside"
                }
                .to_owned(),
                old_unit.map(|u| u.code.clone()).unwrap_or_default(),
                old_unit.map(|u| u.name.clone()).unwrap_or_default(),
                n.to_string(),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{append_range, random_samples};

    /// Reads every part of `store` and checks that it fills the room
    /// reserved for it exactly (a part that outgrew it would hold its
    /// samples twice while read); returns, per part, the (month, finest
    /// unit in the first set) of each of its samples.
    fn read_parts<B, K>(
        store: &crate::store::SampleStore,
        sizes: &[u64],
        blocks: B,
        key: K,
    ) -> Vec<Vec<(Month, u32)>>
    where
        B: Fn(u64, u64) -> bool + Sync,
        K: Fn(u64, StoredUnits<'_>) -> Option<u64> + Sync,
    {
        let ing = Ingested::of_samples(Vec::new(), &[], 0);
        let mut read = Vec::new();
        each_part(
            &ing,
            store,
            sizes,
            (blocks, key, |_: &crate::ingest_run::Sample| true, false),
            &mut |part, (g, groups)| {
                assert_eq!(groups as usize, sizes.len());
                assert_eq!(g as usize, read.len());
                let n = part.samples.len();
                assert_eq!(n as u64, sizes[g as usize], "part {g} of {groups}");
                assert_eq!(part.samples.capacity(), n, "part {g} outgrew its room");
                assert_eq!(part.places[0].units.capacity(), n, "part {g}'s places");
                read.push(
                    part.samples
                        .iter()
                        .zip(&part.places[0].units)
                        .map(|(s, &u)| (s.month(), u))
                        .collect(),
                );
                Ok(())
            },
            &std::cell::Cell::new(std::time::Duration::ZERO),
        )
        .expect("parts read");
        read
    }

    #[test]
    fn unit_parts_hold_whole_provinces_or_whole_months_in_room_for_exactly_their_samples() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = crate::store::SampleStore::new(dir.path(), 2, 3).expect("store");
        // Times over about six years: some 77 months.
        let drawn = random_samples(60_000, 21);
        for range in [0..25_000, 25_000..60_000] {
            append_range(&mut store, &drawn, range);
        }
        store.finish_writes().expect("written");
        let (samples, _, places, _) = &drawn;
        // Top-level units of uneven size, as merged provinces are: the
        // first holds half the units, the others an eighth of the rest.
        let tops: Vec<u32> = (0..700)
            .map(|u| if u < 350 { 0 } else { 1 + u % 8 })
            .collect();
        let first = samples
            .iter()
            .map(crate::ingest_run::Sample::month)
            .min()
            .expect("samples");
        let last = samples
            .iter()
            .map(crate::ingest_run::Sample::month)
            .max()
            .expect("samples");
        let months = first.through(last).count();
        let month_no = |m: Month| usize::try_from(m.index() - first.index()).expect("in window");
        let mut per_top = vec![0u64; 9];
        let mut per_top_month = vec![0u64; 9 * months];
        for (s, &u) in samples.iter().zip(&places[0].units) {
            if u != NO_UNIT {
                let t = tops[u as usize] as usize;
                per_top[t] += 1;
                per_top_month[t * months + month_no(s.month())] += 1;
            }
        }
        let placed: u64 = per_top.iter().sum();
        let counts = SampleCounts {
            tops: vec![tops.clone(), tops.clone()],
            per_carrier: Vec::new(),
            per_top: vec![per_top.clone(), Vec::new()],
            months: Some((first, months)),
            per_top_month: vec![per_top_month, Vec::new()],
            kinds: Vec::new(),
            unplaced: std::collections::BTreeMap::new(),
        };
        for part_samples in [8_000, 20_000, 60_000] {
            let mut largest = [0u64; 2];
            for (k, by_month) in [false, true].into_iter().enumerate() {
                let parts = unit_parts(&store, &counts, 0, part_samples, by_month);
                let groups = part_count(&store, part_samples);
                assert_eq!(parts.sizes.len() as u64, groups);
                let read = read_parts(
                    &store,
                    &parts.sizes,
                    |block, g| parts.blocks.contains(&(block, g)),
                    |_, units: StoredUnits<'_>| {
                        let u = units.get(0);
                        (u != NO_UNIT).then(|| parts.part(tops[u as usize], units))
                    },
                );
                let total: usize = read.iter().map(Vec::len).sum();
                assert_eq!(total as u64, placed, "parts of {part_samples}");
                // Each province (by month, each of its months) in one part.
                let mut part_of_group = std::collections::HashMap::new();
                for (g, part) in read.iter().enumerate() {
                    for &(m, u) in part {
                        let t = tops[u as usize] as usize;
                        let split = by_month && per_top[t] > part_samples as u64;
                        let group = (t, split.then_some(m));
                        assert_eq!(*part_of_group.entry(group).or_insert(g), g, "{group:?}");
                        assert_eq!(parts.whole(t as u32).is_none(), split);
                    }
                }
                largest[k] = parts.sizes.iter().copied().max().unwrap_or(0);
            }
            // The first province alone holds some 27 000 samples: whole, it
            // makes a part larger than the average and its eighth (the room
            // each part once had); split by month, the largest part is
            // smaller.
            let groups = part_count(&store, part_samples);
            if groups > 1 {
                let average = store.len() / groups;
                assert!(largest[0] > average + average / 8, "{largest:?}");
                assert!(largest[1] < largest[0], "{largest:?}");
            } else {
                assert_eq!(largest, [placed; 2]);
            }
        }
        // Parts of blocks, as the cells stage makes them: every sample.
        let block_counts = store.block_counts();
        let parts = 4;
        let part_of: std::collections::HashMap<u64, u64> = block_counts
            .iter()
            .enumerate()
            .map(|(k, &(block, _))| (block, [0, 0, 1, 2, 3][k % 5]))
            .collect();
        let sizes = part_sizes(block_counts.iter().map(|&(b, n)| (part_of[&b], n)), parts);
        let read = read_parts(
            &store,
            &sizes,
            |block, g| part_of.get(&block) == Some(&g),
            |cell, _: StoredUnits<'_>| part_of.get(&crate::store::block_of(cell)).copied(),
        );
        assert_eq!(read.iter().map(Vec::len).sum::<usize>() as u64, store.len());
    }
}
