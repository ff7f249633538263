//! Villages and hamlets with no, too few or weak measurements, per carrier;
//! their rollups per unit; and the measurement plan.

use std::cmp::{Ordering, Reverse};
use std::path::Path;

use geo::InteriorPoint;
use rayon::prelude::*;
use rstar::{AABB, RTree, primitives::GeomWithData};

use crate::boundaries::{Boundaries, Locator};
use crate::codes::cmp_codes;
use crate::error::Result;
use crate::geodesy::{degree_margins, haversine_m};
use crate::geojson_out::{Prop, Shape};
use crate::ingest_run::Ingested;
use crate::layers::{Formats, Layer, LayerGeometry, write_layer};
use crate::month::Month;
use crate::output::{fmt_decimal, fmt_probability, write_csv};
use crate::report::{LevelStats, ancestor_table};
use crate::rule::{Rule, Status, Verdict};
use crate::styles::{SymbolKind, plan_classes, qml, village_classes};
use crate::villages::Village;

/// Villages placed in their finest unit and indexed for nearest search.
#[derive(Debug)]
pub struct VillageIndex {
    /// Villages inside a unit, sorted by unit then id.
    pub villages: Vec<Village>,
    /// Finest unit of each village in `villages`.
    pub unit: Vec<u32>,
    /// Villages outside every unit (not used further).
    pub outside: u64,
    /// Reference point of each finest unit (distances in the plan).
    pub unit_centres: Vec<Option<(f64, f64)>>,
    /// The boundary set's label, written in the `vintage` column.
    pub vintage: String,
    tree: RTree<GeomWithData<[f64; 2], u32>>,
}

impl VillageIndex {
    /// Places each village in the finest unit whose polygon contains it (no snapping).
    #[must_use]
    pub fn new(b: &Boundaries, all: Vec<Village>) -> Self {
        let locator = Locator::new(b, 0.0);
        let centres = b
            .shapes
            .iter()
            .map(|s| s.interior_point().map(|p| (p.x(), p.y())))
            .collect();
        Self::with_placer(
            all,
            &|lon, lat| locator.locate(lon, lat).map(|p| p.unit()),
            centres,
            "initial",
        )
    }

    /// Places each village with `place` (its finest unit, if any); `unit_centres`
    /// are the units' reference points, `vintage` the set's label.
    #[must_use]
    pub fn with_placer(
        all: Vec<Village>,
        place: &dyn Fn(f64, f64) -> Option<u32>,
        unit_centres: Vec<Option<(f64, f64)>>,
        vintage: &str,
    ) -> Self {
        let mut placed: Vec<(u32, Village)> = Vec::with_capacity(all.len());
        let mut outside = 0;
        for v in all {
            match place(v.lon, v.lat) {
                Some(u) => placed.push((u, v)),
                None => outside += 1,
            }
        }
        placed.sort_by(|a, c| a.0.cmp(&c.0).then_with(|| cmp_codes(&a.1.id, &c.1.id)));
        let (unit, villages): (Vec<u32>, Vec<Village>) = placed.into_iter().unzip();
        #[allow(clippy::cast_possible_truncation, reason = "village counts fit u32")]
        let tree = RTree::bulk_load(
            villages
                .iter()
                .enumerate()
                .map(|(i, v)| GeomWithData::new([v.lon, v.lat], i as u32))
                .collect(),
        );
        Self {
            villages,
            unit,
            outside,
            unit_centres,
            vintage: vintage.to_owned(),
            tree,
        }
    }

    /// The nearest village of `unit` within `radius_m` of (lon, lat), great-circle;
    /// ties go to the lowest village id.
    #[must_use]
    pub fn nearest(&self, lon: f64, lat: f64, unit: u32, radius_m: f64) -> Option<u32> {
        let (dlon, dlat) = degree_margins(lat, radius_m);
        let window = AABB::from_corners([lon - dlon, lat - dlat], [lon + dlon, lat + dlat]);
        self.nearest_of(
            self.tree.locate_in_envelope(window).map(|e| e.data),
            lon,
            lat,
            unit,
            radius_m,
        )
    }

    /// As [`VillageIndex::nearest`], from a superset of the villages in the
    /// point's search window (a cell's [`VillageIndex::cell_candidates`]):
    /// the window is applied here as the R-tree applies it (bounds
    /// included), and the choice does not depend on the order.
    #[must_use]
    pub fn nearest_among(
        &self,
        candidates: &[u32],
        lon: f64,
        lat: f64,
        unit: u32,
        radius_m: f64,
    ) -> Option<u32> {
        let (dlon, dlat) = degree_margins(lat, radius_m);
        let (x0, y0, x1, y1) = (lon - dlon, lat - dlat, lon + dlon, lat + dlat);
        self.nearest_of(
            candidates.iter().copied().filter(|&i| {
                let v = &self.villages[i as usize];
                x0 <= v.lon && v.lon <= x1 && y0 <= v.lat && v.lat <= y1
            }),
            lon,
            lat,
            unit,
            radius_m,
        )
    }

    /// The villages whose point may lie in the search window of some point
    /// of `cell`: the R-tree's answer for the cell's box, widened by a tenth
    /// of its size (a cell's edges are great-circle arcs, which bow beyond
    /// its vertices' box by millimetres here) and by the widest window over
    /// its latitudes. `None` for a cell too large for a box to hold it
    /// (coarser than resolution 6, or across the antimeridian).
    #[must_use]
    pub fn cell_candidates(&self, cell: h3o::CellIndex, radius_m: f64) -> Option<Vec<u32>> {
        if cell.resolution() < h3o::Resolution::Six {
            return None;
        }
        let (mut x0, mut y0, mut x1, mut y1) = (
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        );
        for ll in cell.boundary().iter() {
            x0 = x0.min(ll.lng());
            x1 = x1.max(ll.lng());
            y0 = y0.min(ll.lat());
            y1 = y1.max(ll.lat());
        }
        if !(x1 - x0 < 1.0 && y1 - y0 < 1.0) {
            return None;
        }
        let m = 0.1 * (x1 - x0).max(y1 - y0);
        let (y0, y1) = (y0 - m, y1 + m);
        // Windows widen with the latitude's magnitude.
        let (dlon, dlat) = degree_margins(y0.abs().max(y1.abs()), radius_m);
        let window = AABB::from_corners([x0 - m - dlon, y0 - dlat], [x1 + m + dlon, y1 + dlat]);
        Some(
            self.tree
                .locate_in_envelope(window)
                .map(|e| e.data)
                .collect(),
        )
    }

    /// The nearest of `candidates` in `unit` within `radius_m`; ties go to
    /// the lowest village id.
    fn nearest_of(
        &self,
        candidates: impl Iterator<Item = u32>,
        lon: f64,
        lat: f64,
        unit: u32,
        radius_m: f64,
    ) -> Option<u32> {
        let mut best: Option<(f64, u32)> = None;
        for i in candidates {
            if self.unit[i as usize] != unit {
                continue;
            }
            let v = &self.villages[i as usize];
            let d = haversine_m(lon, lat, v.lon, v.lat);
            if d > radius_m {
                continue;
            }
            let better = best.is_none_or(|(bd, bi)| {
                d < bd
                    || (d == bd
                        && cmp_codes(&v.id, &self.villages[bi as usize].id) == Ordering::Less)
            });
            if better {
                best = Some((d, i));
            }
        }
        best.map(|(_, i)| i)
    }
}

/// Settings of gap detection.
#[derive(Debug, Clone)]
pub struct GapOptions {
    /// The status rule.
    pub rule: Rule,
    /// Canonical carriers to judge, in output order.
    pub carriers: Vec<String>,
    /// Samples farther than this from every village of their unit have no village.
    pub village_radius_m: f64,
    /// Technologies judged in villages and heatmaps (`None`: every mobile test).
    pub networks: Option<Vec<crate::schema::Network>>,
    /// Plausibility rules: flagged tests are left out of villages and heatmaps.
    pub plausibility: crate::ingest_run::Plausibility,
    /// Heatmap cells with fewer distinct devices publish no statistics (0: no suppression).
    pub min_devices_public: u64,
}

impl GapOptions {
    /// Whether a sample's technology is judged.
    #[must_use]
    pub fn judges(&self, s: &crate::ingest_run::Sample) -> bool {
        s.flags == 0
            && self
                .networks
                .as_ref()
                .is_none_or(|n| n.contains(&s.network))
    }
}

/// Verdicts for every village (inside a unit) and every listed carrier.
#[derive(Debug)]
pub struct VillageVerdicts {
    /// `verdicts[village][carrier]`, carriers in [`GapOptions::carriers`] order.
    pub verdicts: Vec<Vec<Verdict>>,
    /// Accepted samples assigned to a village.
    pub samples_with_village: u64,
    /// The village of each accepted sample (index into the village index), if any.
    pub assigned: Vec<Option<u32>>,
}

/// Assigns samples to villages and judges every village for every carrier;
/// `units[i]` is sample i's finest unit in the villages' boundary set.
///
/// # Panics
/// If `ing` no longer holds its samples' positions ([`Ingested::positions`]).
#[must_use]
pub fn judge_villages(
    index: &VillageIndex,
    ing: &Ingested,
    units: &[u32],
    opts: &GapOptions,
) -> VillageVerdicts {
    assert_eq!(
        ing.positions.len(),
        ing.samples.len(),
        "the villages read every sample's position"
    );
    // Ingested carrier index → position in the list (or none).
    let pos: Vec<Option<usize>> = ing
        .carriers
        .iter()
        .map(|c| opts.carriers.iter().position(|l| l == c))
        .collect();
    // The villages near each cell, found once per cell rather than by an
    // R-tree search per sample (the same answer: `nearest_among`).
    let mut cells: Vec<h3o::CellIndex> = ing
        .samples
        .par_iter()
        .zip(units)
        .filter(|&(_, &u)| u != crate::vintage::NO_UNIT)
        .map(|(s, _)| s.cell)
        .collect();
    cells.par_sort_unstable();
    cells.dedup();
    let lists: Vec<Option<Vec<u32>>> = cells
        .par_iter()
        .map(|&c| index.cell_candidates(c, opts.village_radius_m))
        .collect();
    let mut list_of = crate::cell_table::CellTable::new();
    #[allow(clippy::cast_possible_truncation, reason = "cell counts fit u32")]
    list_of.insert_new(
        &mut cells
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect::<Vec<_>>(),
    );
    let assigned: Vec<Option<u32>> = ing
        .samples
        .par_iter()
        .zip(&ing.positions)
        .zip(units)
        .map(|((s, p), &u)| {
            if u == crate::vintage::NO_UNIT {
                return None;
            }
            let radius = opts.village_radius_m;
            match list_of
                .get(s.cell)
                .and_then(|i| lists[i as usize].as_deref())
            {
                Some(candidates) => index.nearest_among(candidates, p.lon, p.lat, u, radius),
                None => index.nearest(p.lon, p.lat, u, radius),
            }
        })
        .collect();
    let nc = opts.carriers.len();
    let slots = index.villages.len() * nc;
    // Each judged sample's (village, carrier) slot; the samples then laid
    // out slot after slot (a counting sort), so that slots are judged in
    // parallel without a vector per slot.
    const NO_SLOT: u32 = u32::MAX;
    let slot_of: Vec<u32> = ing
        .samples
        .par_iter()
        .zip(&assigned)
        .map(|(s, v)| {
            let slot = || {
                let c = pos[s.carrier as usize].filter(|_| opts.judges(s))?;
                #[allow(clippy::cast_possible_truncation, reason = "slots fit u32")]
                Some((v.as_ref()? * nc as u32) + c as u32)
            };
            slot().unwrap_or(NO_SLOT)
        })
        .collect();
    let mut starts = vec![0_usize; slots + 1];
    for &slot in slot_of.iter().filter(|&&s| s != NO_SLOT) {
        starts[slot as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut next = starts.clone();
    let mut downloads = vec![0.0_f64; starts[slots]];
    let mut devices = vec![0_u32; starts[slots]];
    for (s, &slot) in ing.samples.iter().zip(&slot_of) {
        if slot != NO_SLOT {
            let at = &mut next[slot as usize];
            downloads[*at] = s.download;
            devices[*at] = s.device;
            *at += 1;
        }
    }
    drop(slot_of);
    let with_village = assigned.iter().flatten().count() as u64;
    // Each slot judged in place, on its own part of the two arrays.
    let mut groups: Vec<(&mut [f64], &mut [u32])> = Vec::with_capacity(slots);
    let (mut dl_rest, mut dev_rest) = (&mut downloads[..], &mut devices[..]);
    for slot in 0..slots {
        let n = starts[slot + 1] - starts[slot];
        let (dl, rest) = std::mem::take(&mut dl_rest).split_at_mut(n);
        dl_rest = rest;
        let (dev, rest) = std::mem::take(&mut dev_rest).split_at_mut(n);
        dev_rest = rest;
        groups.push((dl, dev));
    }
    let judged: Vec<Verdict> = groups
        .into_par_iter()
        .map(|(dl, dev)| {
            dev.sort_unstable();
            let distinct = dev.chunk_by(|a, b| a == b).count();
            opts.rule.judge(dl, distinct as u64)
        })
        .collect();
    let verdicts = if nc == 0 {
        vec![Vec::new(); index.villages.len()]
    } else {
        judged.chunks(nc).map(<[Verdict]>::to_vec).collect()
    };
    VillageVerdicts {
        verdicts,
        samples_with_village: with_village,
        assigned,
    }
}

fn worst(vs: &[Verdict]) -> Status {
    vs.iter()
        .map(|v| v.status)
        .max_by_key(|s| s.severity())
        .unwrap_or(Status::NoData)
}

/// Writes `villages.csv` and the `villages` layer in every format; returns
/// the layer files written and the layer.
///
/// # Errors
/// A file cannot be written.
pub fn write_villages(
    out: &Path,
    b: &Boundaries,
    index: &VillageIndex,
    vv: &VillageVerdicts,
    opts: &GapOptions,
    formats: &Formats,
) -> Result<(Vec<std::path::PathBuf>, Layer)> {
    let keys: Vec<(String, String, String)> = opts
        .carriers
        .iter()
        .map(|c| {
            let s = crate::carrier::slug(c);
            (
                format!("status_{s}"),
                format!("samples_{s}"),
                format!("median_mbps_{s}"),
            )
        })
        .collect();
    let mut fields: Vec<String> = [
        "village_id",
        "name",
        "unit_code",
        "unit_name",
        "population",
        "worst_status",
    ]
    .map(str::to_owned)
    .to_vec();
    for k in &keys {
        fields.extend([k.0.clone(), k.1.clone(), k.2.clone()]);
    }
    fields.push("vintage".to_owned());
    let finest = b.finest();
    let mut rows = Vec::new();
    let mut features = Vec::with_capacity(index.villages.len());
    for (i, v) in index.villages.iter().enumerate() {
        let unit = &finest[index.unit[i] as usize];
        let pop = fmt_decimal(v.population, 0);
        for (c, verdict) in opts.carriers.iter().zip(&vv.verdicts[i]) {
            rows.push([
                v.id.clone(),
                v.name.clone(),
                unit.code.clone(),
                c.clone(),
                verdict.samples.to_string(),
                verdict.devices.to_string(),
                fmt_decimal(verdict.median, 3),
                fmt_decimal(verdict.share_below, 4),
                fmt_probability(verdict.weak_p),
                verdict.status.as_str().to_owned(),
                verdict
                    .below_target
                    .map(|b| b.to_string())
                    .unwrap_or_default(),
                pop.clone(),
                fmt_decimal(Some(v.lon), 6),
                fmt_decimal(Some(v.lat), 6),
                index.vintage.clone(),
            ]);
        }
        let mut props = vec![
            Prop::Str(v.id.clone()),
            Prop::Str(v.name.clone()),
            Prop::Str(unit.code.clone()),
            Prop::Str(unit.name.clone()),
            Prop::Num(v.population, 0),
            Prop::Str(worst(&vv.verdicts[i]).as_str().to_owned()),
        ];
        for verdict in &vv.verdicts[i] {
            props.push(Prop::Str(verdict.status.as_str().to_owned()));
            props.push(Prop::Int(verdict.samples));
            props.push(Prop::Num(verdict.median, 3));
        }
        props.push(Prop::Str(index.vintage.clone()));
        features.push((Shape::Point(v.lon, v.lat), props));
    }
    write_csv(
        &out.join("villages.csv"),
        &[
            "village_id",
            "name",
            "unit_code",
            "carrier",
            "samples",
            "devices",
            "download_median_mbps",
            "share_below",
            "weak_p",
            "status",
            "below_target",
            "population",
            "lon",
            "lat",
            "vintage",
        ],
        rows,
    )?;
    let layer = Layer {
        name: "villages".to_owned(),
        geometry: LayerGeometry::Point,
        fields,
        features,
        style: Some(qml(SymbolKind::Marker, &village_classes())),
    };
    Ok((write_layer(out, "villages", &layer, formats)?, layer))
}

/// Counts of villages per status for one unit and carrier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Villages.
    pub villages: u64,
    /// Per status in [`Status::ALL`] order.
    pub by_status: [u64; 4],
    /// Villages whose median is below the national target.
    pub below_target: u64,
}

impl StatusCounts {
    fn add(&mut self, v: &Verdict) {
        self.villages += 1;
        let i = Status::ALL.iter().position(|s| *s == v.status).unwrap_or(0);
        self.by_status[i] += 1;
        self.below_target += u64::from(v.below_target == Some(true));
    }
}

/// Per carrier, the number of villages in each status (for printing and summary.json).
#[must_use]
pub fn status_totals(vv: &VillageVerdicts, ncarriers: usize) -> Vec<StatusCounts> {
    let mut t = vec![StatusCounts::default(); ncarriers];
    for vs in &vv.verdicts {
        for (c, v) in vs.iter().enumerate() {
            t[c].add(v);
        }
    }
    t
}

/// Writes `unit_gaps.csv`: per unit of every level and carrier, the number and
/// share of villages in each status over the window.
///
/// # Errors
/// The file cannot be written.
pub fn write_unit_gaps(
    out: &Path,
    b: &Boundaries,
    index: &VillageIndex,
    vv: &VillageVerdicts,
    opts: &GapOptions,
) -> Result<()> {
    let anc = ancestor_table(b);
    let nc = opts.carriers.len();
    let mut rows = Vec::new();
    for (li, level) in b.levels.0.iter().enumerate() {
        let mut counts = vec![vec![StatusCounts::default(); nc]; b.units[li].len()];
        for (vi, vs) in vv.verdicts.iter().enumerate() {
            let u = anc[li][index.unit[vi] as usize] as usize;
            for (c, v) in vs.iter().enumerate() {
                counts[u][c].add(v);
            }
        }
        for (ui, unit) in b.units[li].iter().enumerate() {
            for (c, name) in opts.carriers.iter().enumerate() {
                let k = &counts[ui][c];
                #[allow(clippy::cast_precision_loss, reason = "village counts are small")]
                let share = |n: u64| {
                    if k.villages == 0 {
                        String::new()
                    } else {
                        fmt_decimal(Some(n as f64 / k.villages as f64), 4)
                    }
                };
                let mut row = vec![
                    level.name.clone(),
                    unit.code.clone(),
                    unit.name.clone(),
                    name.clone(),
                    k.villages.to_string(),
                ];
                row.extend(k.by_status.iter().map(u64::to_string));
                row.extend(k.by_status.iter().map(|n| share(*n)));
                row.push(k.below_target.to_string());
                row.push(index.vintage.clone());
                rows.push(row);
            }
        }
    }
    write_csv(
        &out.join("unit_gaps.csv"),
        &[
            "level",
            "code",
            "name",
            "carrier",
            "villages",
            "no_data",
            "insufficient",
            "weak",
            "ok",
            "share_no_data",
            "share_insufficient",
            "share_weak",
            "share_ok",
            "below_target",
            "vintage",
        ],
        rows,
    )
}

/// One line of the measurement plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanItem {
    /// Finest unit index.
    pub unit: u32,
    /// Village index in the [`VillageIndex`].
    pub village: usize,
    /// 1-based rank within the unit.
    pub rank: usize,
    /// Carriers with `no_data` or `insufficient`, as `Carrier:status`.
    pub missing: Vec<String>,
    /// Great-circle metres from the unit's interior point.
    pub distance_m: f64,
    /// Tests to collect there.
    pub tests: u64,
}

/// Tests one village needs for one carrier to become judgeable:
/// enough samples, from enough devices.
fn tests_to_judge(v: &Verdict, rule: &Rule) -> u64 {
    rule.min_samples
        .saturating_sub(v.samples)
        .max(rule.min_devices.saturating_sub(v.devices))
}

/// Builds the plan for the units of the finest level that miss the quota in `month`.
///
/// Within a unit, villages are ranked by (1) carriers lacking data, most
/// first, (2) population, largest first (unknown = 0), (3) distance from the
/// unit's interior point, nearest first, (4) village id. Each village needs,
/// per lacking carrier, `max(min_samples − n, min_devices − d)` tests; when
/// these add up to less than the unit's deficit, the rest is spread evenly in
/// rank order, so the plan's total is `max(deficit, Σ needs)`.
#[must_use]
pub fn plan(
    b: &Boundaries,
    index: &VillageIndex,
    vv: &VillageVerdicts,
    stats: &LevelStats,
    month: Month,
    quota: u64,
    opts: &GapOptions,
) -> Vec<PlanItem> {
    let finest_level = b.units.len() - 1;
    let mut by_unit: Vec<Vec<usize>> = vec![Vec::new(); b.finest().len()];
    for (vi, u) in index.unit.iter().enumerate() {
        by_unit[*u as usize].push(vi);
    }
    let mut items = Vec::new();
    for (u, villages) in by_unit.iter().enumerate() {
        #[allow(clippy::cast_possible_truncation, reason = "unit counts fit u32")]
        let samples = stats[finest_level]
            .get(&(month, u as u32))
            .map_or(0, |s| s.all.samples);
        if samples >= quota {
            continue;
        }
        let deficit = quota - samples;
        let centre = index.unit_centres.get(u).copied().flatten();
        let mut cand: Vec<(PlanItem, u64, f64)> = villages
            .iter()
            .filter_map(|&vi| {
                let vs = &vv.verdicts[vi];
                let lacking: Vec<usize> = (0..vs.len())
                    .filter(|&c| matches!(vs[c].status, Status::NoData | Status::Insufficient))
                    .collect();
                if lacking.is_empty() {
                    return None;
                }
                let v = &index.villages[vi];
                let need: u64 = lacking
                    .iter()
                    .map(|&c| tests_to_judge(&vs[c], &opts.rule))
                    .sum();
                #[allow(clippy::cast_possible_truncation, reason = "unit counts fit u32")]
                let item = PlanItem {
                    unit: u as u32,
                    village: vi,
                    rank: 0,
                    missing: lacking
                        .iter()
                        .map(|&c| format!("{}:{}", opts.carriers[c], vs[c].status.as_str()))
                        .collect(),
                    distance_m: centre.map_or(0.0, |(x, y)| haversine_m(x, y, v.lon, v.lat)),
                    tests: 0,
                };
                Some((item, need, v.population.unwrap_or(0.0)))
            })
            .collect();
        cand.sort_by(|a, c| {
            Reverse(a.0.missing.len())
                .cmp(&Reverse(c.0.missing.len()))
                .then_with(|| c.2.total_cmp(&a.2))
                .then_with(|| a.0.distance_m.total_cmp(&c.0.distance_m))
                .then_with(|| {
                    cmp_codes(
                        &index.villages[a.0.village].id,
                        &index.villages[c.0.village].id,
                    )
                })
        });
        let needs: u64 = cand.iter().map(|c| c.1).sum();
        let extra = deficit.saturating_sub(needs);
        let m = cand.len() as u64;
        for (r, (mut item, need, _)) in cand.into_iter().enumerate() {
            let share = extra
                .checked_div(m)
                .map_or(0, |q| q + u64::from((r as u64) < extra % m));
            item.rank = r + 1;
            item.tests = need + share;
            items.push(item);
        }
    }
    items
}

/// Fields of the plan layer.
const PLAN_FIELDS: [&str; 14] = [
    "month",
    "unit_code",
    "unit_name",
    "unit_samples",
    "unit_deficit",
    "rank",
    "village_id",
    "name",
    "population",
    "carriers_lacking",
    "lacking",
    "tests_needed",
    "distance_to_centre_m",
    "vintage",
];

/// Writes `plan.csv` and the `plan` layer in every format; returns the layer files.
///
/// # Errors
/// A file cannot be written.
#[allow(
    clippy::too_many_arguments,
    reason = "the plan's inputs, each used once"
)]
pub fn write_plan(
    out: &Path,
    b: &Boundaries,
    index: &VillageIndex,
    stats: &LevelStats,
    month: Option<Month>,
    quota: u64,
    items: &[PlanItem],
    formats: &Formats,
) -> Result<Vec<std::path::PathBuf>> {
    let Some(month) = month else {
        return write_plan_rows(out, Vec::new(), Vec::new(), formats);
    };
    let finest_level = b.units.len() - 1;
    let mut rows = Vec::with_capacity(items.len());
    let mut features = Vec::with_capacity(items.len());
    for it in items {
        let unit = &b.finest()[it.unit as usize];
        let v = &index.villages[it.village];
        let samples = stats[finest_level]
            .get(&(month, it.unit))
            .map_or(0, |s| s.all.samples);
        let row = [
            month.to_string(),
            unit.code.clone(),
            unit.name.clone(),
            samples.to_string(),
            quota.saturating_sub(samples).to_string(),
            it.rank.to_string(),
            v.id.clone(),
            v.name.clone(),
            fmt_decimal(v.population, 0),
            it.missing.len().to_string(),
            it.missing.join(";"),
            it.tests.to_string(),
            fmt_decimal(Some(it.distance_m), 0),
            fmt_decimal(Some(v.lon), 6),
            fmt_decimal(Some(v.lat), 6),
            index.vintage.clone(),
        ];
        features.push((
            Shape::Point(v.lon, v.lat),
            vec![
                Prop::Str(row[0].clone()),
                Prop::Str(row[1].clone()),
                Prop::Str(row[2].clone()),
                Prop::Int(samples),
                Prop::Int(quota.saturating_sub(samples)),
                Prop::Int(it.rank as u64),
                Prop::Str(v.id.clone()),
                Prop::Str(v.name.clone()),
                Prop::Num(v.population, 0),
                Prop::Int(it.missing.len() as u64),
                Prop::Str(row[10].clone()),
                Prop::Int(it.tests),
                Prop::Num(Some(it.distance_m), 0),
                Prop::Str(index.vintage.clone()),
            ],
        ));
        rows.push(row);
    }
    write_plan_rows(out, rows, features, formats)
}

fn write_plan_rows(
    out: &Path,
    rows: Vec<[String; 16]>,
    features: Vec<(Shape, Vec<Prop>)>,
    formats: &Formats,
) -> Result<Vec<std::path::PathBuf>> {
    // The CSV has lon, lat before vintage; the layer has them as geometry.
    let mut header: Vec<&str> = PLAN_FIELDS[..PLAN_FIELDS.len() - 1].to_vec();
    header.extend(["lon", "lat", "vintage"]);
    write_csv(&out.join("plan.csv"), &header, rows)?;
    let layer = Layer {
        name: "plan".to_owned(),
        geometry: LayerGeometry::Point,
        fields: PLAN_FIELDS.map(str::to_owned).to_vec(),
        features,
        style: Some(qml(SymbolKind::Marker, &plan_classes())),
    };
    write_layer(out, "plan", &layer, formats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn a_cells_candidates_give_the_villages_the_tree_gives() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // Villages around (21, 105.8) and near the pole-ward edge of what a
        // box holds; some share a point (ties go to the lowest id).
        for (lat0, spread) in [(21.0, 0.3), (64.0, 0.3), (-33.0, 0.05)] {
            let mut villages: Vec<Village> = (0..3000)
                .map(|i| Village {
                    id: format!("V{:05}", (i * 7919) % 3000),
                    name: String::new(),
                    population: None,
                    lon: 105.8 + rng.random_range(-spread..spread),
                    lat: lat0 + rng.random_range(-spread..spread),
                })
                .collect();
            for i in 0..50 {
                let (lon, lat) = (villages[i].lon, villages[i].lat);
                villages[i + 1000].lon = lon;
                villages[i + 1000].lat = lat;
            }
            // Three units, by longitude bands; a few villages outside all.
            let place = |lon: f64, _lat: f64| {
                let band = ((lon - 105.8 + spread) / (2.0 * spread) * 3.0).floor();
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "0..3"
                )]
                ((0.0..3.0).contains(&band) && (lon * 1e4).fract().abs() > 0.01)
                    .then_some(band as u32)
            };
            let index = VillageIndex::with_placer(villages, &place, vec![None; 3], "test");
            for res in [6_u8, 8, 10] {
                let resolution = h3o::Resolution::try_from(res).expect("valid");
                for radius in [150.0, 2_000.0, 9_000.0] {
                    let mut lists = std::collections::HashMap::new();
                    let mut found = 0;
                    for k in 0..1500 {
                        // Points anywhere, on villages, and on cell vertices.
                        let (mut lon, mut lat) = (
                            105.8 + rng.random_range(-spread..spread),
                            lat0 + rng.random_range(-spread..spread),
                        );
                        if k % 4 == 0 {
                            let v = &index.villages[rng.random_range(0..index.villages.len())];
                            (lon, lat) = (v.lon, v.lat);
                        }
                        let mut cell = h3o::LatLng::new(lat, lon)
                            .expect("valid")
                            .to_cell(resolution);
                        if k % 4 == 1 {
                            let b = cell.boundary();
                            let v = b[rng.random_range(0..b.len())];
                            (lon, lat) = (v.lng(), v.lat());
                            cell = h3o::LatLng::new(lat, lon)
                                .expect("valid")
                                .to_cell(resolution);
                        }
                        let candidates = lists.entry(cell).or_insert_with(|| {
                            index.cell_candidates(cell, radius).expect("a small cell")
                        });
                        for unit in 0..3 {
                            let want = index.nearest(lon, lat, unit, radius);
                            found += usize::from(want.is_some());
                            assert_eq!(
                                index.nearest_among(candidates, lon, lat, unit, radius),
                                want,
                                "({lon}, {lat}) unit {unit} radius {radius} resolution {res}"
                            );
                        }
                    }
                    assert!(found > 100, "the test finds villages ({found})");
                }
            }
        }
    }
}
