//! Monthly quota and per-unit statistics, and the files that report them.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::boundaries::Boundaries;
use crate::error::{Error, Result};
use crate::ingest_run::{Ingested, Maybe, RejectSink, RowCounts, Sample};
use crate::month::Month;
use crate::output::{AtomicFile, fmt_decimal, write_csv, write_json_pretty};
use crate::schema::RejectReason;
use crate::stats;
use crate::vintage::NO_UNIT;

/// Decimals of speeds and latencies in CSV outputs (1 kbps, 1 µs).
pub const DECIMALS: usize = 3;

/// The statistics of a group of samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupStats {
    /// Samples.
    pub samples: u64,
    /// Distinct devices.
    pub devices: u64,
    /// Median download (Mbps).
    pub download_median: Option<f64>,
    /// 10th percentile download (type 7).
    pub download_p10: Option<f64>,
    /// 90th percentile download (type 7).
    pub download_p90: Option<f64>,
    /// Median upload over the samples that have one.
    pub upload_median: Option<f64>,
    /// Median latency over the samples that have one.
    pub latency_median: Option<f64>,
    /// Samples no plausibility rule flagged (within the per-device cap too).
    pub effective: u64,
    /// Distinct H3 cells measured.
    pub cells: u64,
}

/// Buffers one group's statistics use, kept for the next group: tens of
/// thousands of cells or units in turn without an allocation each.
#[derive(Debug, Default)]
pub struct StatScratch {
    rows: Vec<StatRow>,
    values: Values,
    devices: Vec<u32>,
    cells: Vec<u64>,
}

/// The speeds and latencies of a group, for selection.
#[derive(Debug, Default)]
struct Values {
    downloads: Vec<f64>,
    uploads: Vec<f64>,
    latencies: Vec<f64>,
}

impl StatScratch {
    /// The downloads of the last group computed, in some order.
    pub fn downloads(&mut self) -> &mut [f64] {
        &mut self.values.downloads
    }
}

impl GroupStats {
    /// Computes the statistics of some samples.
    #[must_use]
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Self {
        Self::of_in(samples, &mut StatScratch::default())
    }

    /// Computes the statistics of some samples in `scratch`'s buffers.
    pub fn of_in<'a>(
        samples: impl IntoIterator<Item = &'a Sample>,
        scratch: &mut StatScratch,
    ) -> Self {
        let StatScratch {
            rows,
            values,
            devices,
            cells,
        } = scratch;
        rows.clear();
        rows.extend(samples.into_iter().map(|s| StatRow::of(s, 0, 0)));
        Self::of_rows_counting(rows, values, |rows| {
            devices.clear();
            devices.extend(rows.iter().map(|r| r.device));
            cells.clear();
            cells.extend(rows.iter().map(|r| r.cell));
            devices.sort_unstable();
            devices.dedup();
            cells.sort_unstable();
            cells.dedup();
            (devices.len() as u64, cells.len() as u64)
        })
    }

    /// Computes the statistics of gathered rows; `distinct` counts their
    /// distinct (devices, cells).
    fn of_rows_counting(
        rows: &[StatRow],
        values: &mut Values,
        distinct: impl FnOnce(&[StatRow]) -> (u64, u64),
    ) -> Self {
        let Values {
            downloads: dl,
            uploads: ul,
            latencies: lat,
        } = values;
        dl.clear();
        ul.clear();
        lat.clear();
        let mut effective = 0;
        for r in rows {
            dl.push(r.download);
            ul.extend(r.upload.get());
            lat.extend(r.latency.get());
            effective += u64::from(r.effective);
        }
        let (devices, cells) = distinct(rows);
        let [download_median, download_p10, download_p90] = stats::median_p10_p90(dl);
        Self {
            samples: dl.len() as u64,
            devices,
            download_median,
            download_p10,
            download_p90,
            upload_median: stats::median(ul),
            latency_median: stats::median(lat),
            effective,
            cells,
        }
    }
}

/// Counts the distinct values of small dense ids, group after group, in
/// one pass each: an id is new to a group when its stamp is not the
/// group's round (no sort, no clearing between groups).
#[derive(Debug)]
struct Stamps {
    seen: Vec<u32>,
    round: u32,
}

impl Stamps {
    fn new(ids: usize) -> Self {
        Self {
            seen: vec![0; ids],
            round: 0,
        }
    }

    fn count(&mut self, ids: impl Iterator<Item = u32>) -> u64 {
        if self.round == u32::MAX {
            self.seen.fill(0);
            self.round = 0;
        }
        self.round += 1;
        let mut n = 0;
        for id in ids {
            let stamp = &mut self.seen[id as usize];
            if *stamp != self.round {
                *stamp = self.round;
                n += 1;
            }
        }
        n
    }
}

/// Stamps for a top-level unit's devices and cells (renumbered densely).
#[derive(Debug)]
struct Distinct {
    devices: Stamps,
    cells: Stamps,
    values: Values,
}

impl Distinct {
    fn new(devices: usize, cells: usize) -> Self {
        Self {
            devices: Stamps::new(devices),
            cells: Stamps::new(cells),
            values: Values::default(),
        }
    }

    #[allow(clippy::cast_possible_truncation, reason = "dense ids were u32")]
    fn stats(&mut self, rows: &[StatRow]) -> GroupStats {
        GroupStats::of_rows_counting(rows, &mut self.values, |rows| {
            (
                self.devices.count(rows.iter().map(|r| r.device)),
                self.cells.count(rows.iter().map(|r| r.cell as u32)),
            )
        })
    }
}

/// Renumbers the rows' devices and cells densely (0, 1, … in order of first
/// appearance); returns how many of each.
fn renumber(rows: &mut [StatRow]) -> (usize, usize) {
    let mut devices: std::collections::HashMap<u32, u32, foldhash::fast::FixedState> =
        std::collections::HashMap::default();
    let mut cells: std::collections::HashMap<u64, u32, foldhash::fast::FixedState> =
        std::collections::HashMap::default();
    for r in rows.iter_mut() {
        #[allow(clippy::cast_possible_truncation, reason = "a unit's rows fit u32")]
        let next = devices.len() as u32;
        r.device = *devices.entry(r.device).or_insert(next);
        #[allow(clippy::cast_possible_truncation, reason = "a unit's rows fit u32")]
        let next = cells.len() as u32;
        r.cell = u64::from(*cells.entry(r.cell).or_insert(next));
    }
    (devices.len(), cells.len())
}

/// Sorts rows by (month, position, carrier) by counting when the keys span
/// few buckets (a top-level unit's positions are one range, its months and
/// carriers few), else by comparison. Rows of one key may come in any
/// order: every statistic is order-free.
fn sort_rows(rows: &mut [StatRow], carriers: usize) {
    let (Some(first), Some(last)) = (
        rows.iter().map(|r| r.month).min(),
        rows.iter().map(|r| r.month).max(),
    ) else {
        return;
    };
    let (lo, hi) = rows.iter().fold((u32::MAX, 0), |(lo, hi), r| {
        (lo.min(r.position), hi.max(r.position))
    });
    let months = usize::try_from(last.index() - first.index())
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let positions = (hi - lo) as usize + 1;
    let buckets = months
        .saturating_mul(positions)
        .saturating_mul(carriers.max(1));
    if buckets > rows.len().saturating_mul(4).max(1 << 16) {
        rows.par_sort_unstable_by_key(|r| (r.month, r.position, r.carrier));
        return;
    }
    #[allow(clippy::cast_sign_loss, reason = "months at or after the first")]
    let key = |r: &StatRow| {
        ((r.month.index() - first.index()) as usize * positions + (r.position - lo) as usize)
            * carriers.max(1)
            + r.carrier as usize
    };
    let mut starts = vec![0usize; buckets + 1];
    for r in rows.iter() {
        starts[key(r) + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    // In place, each row swapped into its bucket's next free slot until
    // the slot's own row belongs there (American flag sort): no second
    // copy of a province's rows.
    let mut next = starts[..buckets].to_vec();
    for b in 0..buckets {
        let end = starts[b + 1];
        while next[b] < end {
            let mut r = rows[next[b]];
            let mut k = key(&r);
            while k != b {
                std::mem::swap(&mut r, &mut rows[next[k]]);
                next[k] += 1;
                k = key(&r);
            }
            rows[next[b]] = r;
            next[b] += 1;
        }
    }
}

/// What the statistics read of a sample, gathered in group order so that
/// every level reads memory in sequence, not the samples at random.
#[derive(Debug, Clone, Copy)]
struct StatRow {
    /// The sort keys of [`aggregate`]: month, finest unit's position.
    month: Month,
    position: u32,
    download: f64,
    upload: Maybe,
    latency: Maybe,
    cell: u64,
    device: u32,
    /// Rank of the carrier's name.
    carrier: u16,
    effective: bool,
}

impl StatRow {
    fn of(s: &Sample, position: u32, carrier: u16) -> Self {
        Self {
            month: s.month(),
            position,
            download: s.download,
            upload: s.upload,
            latency: s.latency,
            cell: u64::from(s.cell),
            device: s.device,
            carrier,
            effective: s.flags == 0,
        }
    }
}

/// Statistics of one unit in one month: all carriers and each carrier.
#[derive(Debug, Clone, Default)]
pub struct UnitMonth {
    /// All carriers together.
    pub all: GroupStats,
    /// Per carrier index, sorted by carrier name.
    pub by_carrier: Vec<(u16, GroupStats)>,
}

/// Per level, `(month, unit index) → statistics` for units with samples.
pub type LevelStats = Vec<HashMap<(Month, u32), UnitMonth>>;

/// For each level, the unit containing each finest unit.
#[must_use]
pub fn ancestor_table(b: &Boundaries) -> Vec<Vec<u32>> {
    let depth = b.units.len();
    let mut table = vec![Vec::with_capacity(b.finest().len()); depth];
    #[allow(clippy::cast_possible_truncation, reason = "unit counts fit u32")]
    for f in 0..b.finest().len() as u32 {
        for (li, a) in b.ancestors(f).into_iter().enumerate() {
            table[li].push(a);
        }
    }
    table
}

/// Groups accepted samples by month and unit at every level of one boundary
/// set: `units[i]` is sample i's finest unit in that set (`NO_UNIT`: skipped),
/// and only samples `include` accepts count.
#[must_use]
pub fn aggregate(
    b: &Boundaries,
    ing: &Ingested,
    units: &[u32],
    include: &(dyn Fn(&Sample) -> bool + Sync),
) -> LevelStats {
    let anc = ancestor_table(b);
    let mut carrier_order: Vec<u16> = (0..ing.carriers.len()).map(|i| i as u16).collect();
    carrier_order.sort_by(|a, c| ing.carriers[*a as usize].cmp(&ing.carriers[*c as usize]));
    let mut rank = vec![0u16; ing.carriers.len()];
    for (r, c) in carrier_order.iter().enumerate() {
        rank[*c as usize] = r as u16;
    }
    let depth = anc.len();
    let finest = anc.last().map_or(0, Vec::len);
    // Finest units ordered by their chain of ancestors, top down: sorted by
    // (month, that position), every level's (month, unit) groups are runs,
    // so one sort serves all levels.
    let mut by_chain: Vec<u32> = (0..finest as u32).collect();
    by_chain.sort_by_key(|&f| anc.iter().map(|l| l[f as usize]).collect::<Vec<_>>());
    let mut position = vec![0u32; finest];
    for (p, &f) in by_chain.iter().enumerate() {
        position[f as usize] = p as u32;
    }
    // Every group of every level lies within one top-level unit, so each
    // top-level unit is aggregated alone: the rows of one province at a time
    // are in memory, not the country's (at 10 M samples, a few MiB instead
    // of 410). Samples are first listed by top-level unit, a stretch of the
    // samples at a time on every core, each stretch's lists in input order.
    let tops = b.units.first().map_or(0, Vec::len);
    let stretch = ing.samples.len().div_ceil(16).max(1 << 16);
    let by_top: Vec<Vec<Vec<u32>>> = ing
        .samples
        .par_chunks(stretch)
        .zip(units.par_chunks(stretch))
        .enumerate()
        .map(|(k, (samples, units))| {
            let mut lists = vec![Vec::new(); tops];
            for (i, (s, &u)) in samples.iter().zip(units).enumerate() {
                if u != NO_UNIT && include(s) {
                    lists[anc[0][u as usize] as usize].push((k * stretch + i) as u32);
                }
            }
            lists
        })
        .collect();
    let unit_at =
        |level: usize, r: &StatRow| (r.month, anc[level][by_chain[r.position as usize] as usize]);
    let per_top: Vec<Vec<Groups>> = (0..tops)
        .into_par_iter()
        .filter(|&t| by_top.iter().any(|lists| !lists[t].is_empty()))
        .map(|t| {
            // The rows themselves are sorted, not keys into the samples: no
            // random reads. Rows of one (month, unit, carrier) may come in
            // any order: every statistic is order-free.
            let mut rows: Vec<StatRow> =
                Vec::with_capacity(by_top.iter().map(|lists| lists[t].len()).sum());
            rows.extend(by_top.iter().flat_map(|lists| &lists[t]).map(|&i| {
                let s = &ing.samples[i as usize];
                StatRow::of(
                    s,
                    position[units[i as usize] as usize],
                    rank[s.carrier as usize],
                )
            }));
            sort_rows(&mut rows, carrier_order.len());
            let (devices, cells) = renumber(&mut rows);
            (0..depth)
                .map(|level| {
                    level_stats(
                        &rows,
                        level + 1 == depth,
                        &carrier_order,
                        (devices, cells),
                        |r| unit_at(level, r),
                    )
                })
                .collect()
        })
        .collect();
    let mut out: LevelStats = vec![HashMap::new(); depth];
    for levels in per_top {
        for (level, groups) in levels.into_iter().enumerate() {
            out[level].extend(groups);
        }
    }
    out
}

/// One level's groups: ((month, unit), statistics).
type Groups = Vec<((Month, u32), UnitMonth)>;

/// The statistics of one level's groups in `rows` (sorted so that each
/// group, `group_of`, is a run).
fn level_stats(
    rows: &[StatRow],
    finest_level: bool,
    carrier_order: &[u16],
    (devices, cells): (usize, usize),
    group_of: impl Fn(&StatRow) -> (Month, u32) + Sync,
) -> Groups {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=rows.len() {
        if i == rows.len() || group_of(&rows[i]) != group_of(&rows[start]) {
            runs.push(start..i);
            start = i;
        }
    }
    runs.into_par_iter()
        .map_init(
            || Distinct::new(devices, cells),
            |distinct, run| {
                let group = &rows[run.clone()];
                let all = distinct.stats(group);
                // Within a finest unit the carriers are runs already;
                // above it they interleave: a stable counting sort.
                let sorted;
                let by_rank = if finest_level {
                    group
                } else {
                    let mut counts = vec![0usize; carrier_order.len() + 1];
                    for r in group {
                        counts[r.carrier as usize + 1] += 1;
                    }
                    for c in 1..counts.len() {
                        counts[c] += counts[c - 1];
                    }
                    let mut out = group.to_vec();
                    for r in group {
                        out[counts[r.carrier as usize]] = *r;
                        counts[r.carrier as usize] += 1;
                    }
                    sorted = out;
                    &sorted[..]
                };
                let by_carrier = by_rank
                    .chunk_by(|a, b| a.carrier == b.carrier)
                    .map(|g| (carrier_order[g[0].carrier as usize], distinct.stats(g)))
                    .collect();
                (group_of(&rows[run.start]), UnitMonth { all, by_carrier })
            },
        )
        .collect()
}

/// Quota compliance of one level in one month.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QuotaSummary {
    /// `YYYY-MM`.
    pub month: String,
    /// Level name.
    pub level: String,
    /// Units of the level.
    pub units: u64,
    /// Units with at least `quota` samples.
    pub units_met: u64,
    /// `units_met / units` as a fraction.
    pub share_met: f64,
    /// Accepted samples in the level's units that month.
    pub samples: u64,
    /// The boundary set (its start date, or `initial`).
    pub vintage: String,
}

/// Villages reached per unit and month, for the set the villages use.
#[derive(Debug, Default)]
pub struct VillageReach {
    /// The set's label.
    pub label: String,
    /// Per level, villages in each unit.
    pub total: Vec<Vec<u64>>,
    /// (month, level, unit) → villages with at least one sample that month.
    pub measured: HashMap<(Month, usize, u32), u64>,
}

/// One boundary set's part of the quota report.
#[derive(Debug)]
pub struct ReportSet<'a> {
    /// Label written in the `vintage` column.
    pub label: &'a str,
    /// Its units.
    pub boundaries: &'a Boundaries,
    /// Its statistics.
    pub stats: &'a LevelStats,
    /// The months it reports.
    pub months: Vec<Month>,
}

/// The months of a window.
#[must_use]
pub fn months(window: Option<(Month, Month)>) -> Vec<Month> {
    window
        .map(|(a, b)| a.through(b).collect())
        .unwrap_or_default()
}

/// One unit of one level of a reported set in one month, with its statistics.
pub(crate) struct UnitRow<'a> {
    pub month: Month,
    pub set: &'a ReportSet<'a>,
    /// Level index.
    pub li: usize,
    pub level: &'a crate::boundaries::LevelSpec,
    /// Unit index within the level.
    pub ui: usize,
    pub unit: &'a crate::boundaries::Unit,
    /// Its statistics (`empty` when it has no sample that month).
    pub stats: &'a UnitMonth,
}

/// Every unit of the reports in their order: month by month, each month
/// on the sets that report it, level by level (`quota.csv`,
/// `unit_stats.csv`, `report.xlsx`).
pub(crate) fn unit_rows<'a>(
    months: &'a [Month],
    sets: &'a [ReportSet<'a>],
    empty: &'a UnitMonth,
) -> impl Iterator<Item = UnitRow<'a>> {
    months.iter().flat_map(move |&month| {
        sets.iter()
            .filter(move |s| s.months.contains(&month))
            .flat_map(move |set| {
                let b = set.boundaries;
                b.levels.0.iter().enumerate().flat_map(move |(li, level)| {
                    b.units[li].iter().enumerate().map(move |(ui, unit)| {
                        #[allow(clippy::cast_possible_truncation, reason = "unit counts fit u32")]
                        let stats = set.stats[li].get(&(month, ui as u32)).unwrap_or(empty);
                        UnitRow {
                            month,
                            set,
                            li,
                            level,
                            ui,
                            unit,
                            stats,
                        }
                    })
                })
            })
    })
}

/// Writes `quota.csv` and `unit_stats.csv` (month by month, each month on
/// the sets that report it, in order), and returns the per-level summary.
///
/// # Errors
/// A file cannot be written.
pub fn write_quota_and_stats(
    out: &Path,
    sets: &[ReportSet<'_>],
    ing: &Ingested,
    quota: u64,
    reach: Option<&VillageReach>,
) -> Result<Vec<QuotaSummary>> {
    let months = months(ing.window);
    let mut summary = Vec::new();
    for &month in &months {
        for set in sets.iter().filter(|s| s.months.contains(&month)) {
            let b = set.boundaries;
            for (li, level) in b.levels.0.iter().enumerate() {
                let (mut met, mut level_samples) = (0u64, 0u64);
                for ui in 0..b.units[li].len() {
                    #[allow(clippy::cast_possible_truncation, reason = "unit counts fit u32")]
                    let n = set.stats[li]
                        .get(&(month, ui as u32))
                        .map_or(0, |um| um.all.samples);
                    level_samples += n;
                    met += u64::from(n >= quota);
                }
                let units = b.units[li].len() as u64;
                #[allow(clippy::cast_precision_loss, reason = "unit counts are small")]
                let share_met = if units == 0 {
                    0.0
                } else {
                    met as f64 / units as f64
                };
                summary.push(QuotaSummary {
                    month: month.to_string(),
                    level: level.name.clone(),
                    units,
                    units_met: met,
                    share_met,
                    samples: level_samples,
                    vintage: set.label.to_owned(),
                });
            }
        }
    }
    // The rows are made as they are written: a year of national statistics
    // is 640 000 rows of 12 fields, 300 MiB held as strings.
    let empty = UnitMonth::default();
    let units = || unit_rows(&months, sets, &empty);
    let quota_rows = units().map(|row| {
        let (li, ui, um) = (row.li, row.ui, row.stats);
        let n = um.all.samples;
        let parent = row
            .unit
            .parent
            .map(|p| row.set.boundaries.units[li - 1][p as usize].code.clone())
            .unwrap_or_default();
        #[allow(clippy::cast_possible_truncation, reason = "unit counts fit u32")]
        let village_measured = reach.filter(|r| r.label == row.set.label).map(|r| {
            (
                r.measured
                    .get(&(row.month, li, ui as u32))
                    .copied()
                    .unwrap_or(0),
                r.total[li][ui],
            )
        });
        [
            row.month.to_string(),
            row.level.name.clone(),
            row.unit.code.clone(),
            row.unit.name.clone(),
            parent,
            n.to_string(),
            um.all.devices.to_string(),
            quota.to_string(),
            (n >= quota).to_string(),
            quota.saturating_sub(n).to_string(),
            row.set.label.to_owned(),
            um.all.effective.to_string(),
            um.all.cells.to_string(),
            village_measured
                .map(|v| v.0.to_string())
                .unwrap_or_default(),
            village_measured
                .and_then(|(m, t)| {
                    #[allow(clippy::cast_precision_loss, reason = "village counts are small")]
                    (t > 0).then(|| fmt_decimal(Some(m as f64 / t as f64), 4))
                })
                .unwrap_or_default(),
        ]
    });
    write_csv(
        &out.join("quota.csv"),
        &[
            "month",
            "level",
            "code",
            "name",
            "parent_code",
            "samples",
            "devices",
            "quota",
            "met",
            "deficit",
            "vintage",
            "effective_samples",
            "cells",
            "villages_measured",
            "share_villages_reached",
        ],
        quota_rows,
    )?;
    let stat_rows = units().flat_map(|row| {
        let groups = std::iter::once(("ALL", &row.stats.all)).chain(
            row.stats
                .by_carrier
                .iter()
                .map(|(c, g)| (ing.carriers[*c as usize].as_str(), g)),
        );
        groups.map(move |(carrier, g)| {
            [
                row.month.to_string(),
                row.level.name.clone(),
                row.unit.code.clone(),
                carrier.to_owned(),
                g.samples.to_string(),
                g.devices.to_string(),
                fmt_decimal(g.download_median, DECIMALS),
                fmt_decimal(g.download_p10, DECIMALS),
                fmt_decimal(g.download_p90, DECIMALS),
                fmt_decimal(g.upload_median, DECIMALS),
                fmt_decimal(g.latency_median, DECIMALS),
                row.set.label.to_owned(),
            ]
        })
    });
    write_csv(
        &out.join("unit_stats.csv"),
        &[
            "month",
            "level",
            "code",
            "carrier",
            "samples",
            "devices",
            "download_median_mbps",
            "download_p10_mbps",
            "download_p90_mbps",
            "upload_median_mbps",
            "latency_median_ms",
            "vintage",
        ],
        stat_rows,
    )?;
    Ok(summary)
}

/// `rejects.csv`, written as rows are rejected ([`RejectSink`]): rejected
/// rows are not held. Put in place, complete, by [`RejectsCsv::finish`];
/// dropped before, it leaves nothing.
#[derive(Debug)]
pub struct RejectsCsv {
    path: std::path::PathBuf,
    /// The sample files' names, by number.
    names: Vec<String>,
    /// Opened at the first rejected row: a run that stops before any
    /// leaves no temporary file.
    csv: Option<csv::Writer<AtomicFile>>,
}

impl RejectsCsv {
    const HEADER: [&str; 4] = ["file", "line", "reason", "test_id"];

    /// `rejects.csv` in `out`, for rows of `files`.
    #[must_use]
    pub fn new(out: &Path, files: &[std::path::PathBuf]) -> Self {
        Self {
            path: out.join("rejects.csv"),
            names: files.iter().map(|f| f.display().to_string()).collect(),
            csv: None,
        }
    }

    /// The writer (put back after use), opened with its header at the
    /// first call.
    fn take_writer(&mut self) -> Result<csv::Writer<AtomicFile>> {
        if let Some(csv) = self.csv.take() {
            return Ok(csv);
        }
        let mut csv = csv::Writer::from_writer(AtomicFile::create(&self.path)?);
        csv.write_record(Self::HEADER)
            .map_err(|e| Error::io(&self.path, e.into()))?;
        Ok(csv)
    }

    /// Puts the complete file in place (with its header alone if no row was
    /// rejected).
    ///
    /// # Errors
    /// Writing, syncing or renaming fails.
    pub fn finish(mut self) -> Result<()> {
        self.take_writer()?
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?
            .commit()
    }
}

impl RejectSink for RejectsCsv {
    fn reject(&mut self, file: u32, line: u64, reason: RejectReason, test_id: &str) -> Result<()> {
        let mut csv = self.take_writer()?;
        let mut number = itoa::Buffer::new();
        let name = self.names.get(file as usize).map_or("", String::as_str);
        let written = csv.write_record([name, number.format(line), reason.as_str(), test_id]);
        self.csv = Some(csv);
        written.map_err(|e| Error::io(&self.path, e.into()))
    }
}

/// The analysis window in `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct WindowJson {
    /// First month.
    pub from: String,
    /// Last month.
    pub to: String,
}

/// `summary.json`. Field order is fixed; later issues add members at the end.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Row accounting.
    pub rows: RowCounts,
    /// The window, or null when no row passed every check.
    pub window: Option<WindowJson>,
    /// Level names, coarse to fine.
    pub levels: Vec<String>,
    /// Quota per month and level.
    pub quota: Vec<QuotaSummary>,
    /// The monthly quota used.
    pub quota_samples: u64,
    /// Carriers seen among accepted samples, with their sample counts.
    pub carriers: Vec<CarrierCount>,
    /// Further sections (villages, …), in insertion order.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A carrier and its accepted samples.
#[derive(Debug, Clone, Serialize)]
pub struct CarrierCount {
    /// Canonical name.
    pub carrier: String,
    /// Accepted samples.
    pub samples: u64,
}

impl Summary {
    /// Assembles the summary of a run.
    #[must_use]
    pub fn new(
        b: &Boundaries,
        ing: &Ingested,
        per_carrier: &[u64],
        quota: Vec<QuotaSummary>,
        quota_samples: u64,
    ) -> Self {
        let mut carriers: Vec<CarrierCount> = ing
            .carriers
            .iter()
            .zip(per_carrier)
            .map(|(c, &n)| CarrierCount {
                carrier: c.clone(),
                samples: n,
            })
            .collect();
        carriers.sort_by(|a, c| {
            c.samples
                .cmp(&a.samples)
                .then_with(|| a.carrier.cmp(&c.carrier))
        });
        Self {
            rows: ing.counts.clone(),
            window: ing.window.map(|(a, c)| WindowJson {
                from: a.to_string(),
                to: c.to_string(),
            }),
            levels: b.levels.0.iter().map(|l| l.name.clone()).collect(),
            quota,
            quota_samples,
            carriers,
            extra: serde_json::Map::new(),
        }
    }

    /// Writes `summary.json` (pretty-printed, trailing newline).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write(&self, out: &Path) -> Result<()> {
        write_json_pretty(&out.join("summary.json"), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn row(month: u32, position: u32, carrier: u16, download: f64) -> StatRow {
        StatRow {
            month: Month::from_year_month(2025, 1 + month).expect("month"),
            position,
            download,
            upload: Maybe::NONE,
            latency: Maybe::NONE,
            cell: 0,
            device: 0,
            carrier,
            effective: true,
        }
    }

    #[test]
    fn rows_sort_by_key_by_counting_or_by_comparison() {
        // Narrow keys take the counting sort, a wide position range the
        // comparison sort: both give the rows in key order, none lost.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for spread in [50u32, 5_000_000] {
            let mut rows: Vec<StatRow> = (0..20_000)
                .map(|i| {
                    row(
                        rng.random_range(0..3),
                        1_000 + rng.random_range(0..spread),
                        rng.random_range(0..4),
                        f64::from(i),
                    )
                })
                .collect();
            let mut want: Vec<(Month, u32, u16, u64)> = rows
                .iter()
                .map(|r| (r.month, r.position, r.carrier, r.download.to_bits()))
                .collect();
            want.sort_unstable();
            sort_rows(&mut rows, 4);
            let keys: Vec<_> = rows
                .iter()
                .map(|r| (r.month, r.position, r.carrier))
                .collect();
            assert!(keys.is_sorted(), "spread {spread}");
            let mut got: Vec<_> = rows
                .iter()
                .map(|r| (r.month, r.position, r.carrier, r.download.to_bits()))
                .collect();
            got.sort_unstable();
            assert_eq!(got, want, "spread {spread}");
        }
    }

    #[test]
    fn stamps_count_distinct_ids_group_after_group_and_past_the_last_round() {
        let mut stamps = Stamps::new(10);
        assert_eq!(stamps.count([3, 3, 4, 9, 3].into_iter()), 3);
        assert_eq!(
            stamps.count([3, 4].into_iter()),
            2,
            "a new group starts fresh"
        );
        assert_eq!(stamps.count(std::iter::empty()), 0);
        stamps.round = u32::MAX - 1;
        assert_eq!(stamps.count([1, 2].into_iter()), 2);
        // The next round wraps: stamps of u32::MAX must not count as seen.
        assert_eq!(stamps.count([1, 2, 2].into_iter()), 2);
        assert_eq!(stamps.count([1].into_iter()), 1);
    }
}
