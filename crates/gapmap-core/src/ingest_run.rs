//! Turning sample files into accepted samples, with every row accounted for:
//! accepted, excluded (`wifi`, `outside_window`) or rejected with one reason.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use crate::carrier::CarrierTable;
use crate::error::Result;
use crate::ingest::read_rows;
use crate::month::Month;
use crate::schema::{ColumnMap, Field, Network, Platform, RejectReason, check_row};
use crate::vintage::{PlaceKind, Vintages};

/// Settings of ingestion.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Sample files, in the order given (this order decides which duplicate is kept).
    pub files: Vec<PathBuf>,
    /// Column names.
    pub columns: ColumnMap,
    /// First month of the window (default: the data's first).
    pub from: Option<Month>,
    /// Last month of the window (default: the data's last).
    pub to: Option<Month>,
    /// Samples outside every polygon but this close (metres) to one take the nearest.
    pub snap_m: f64,
    /// H3 resolution of each sample's cell.
    pub resolution: h3o::Resolution,
    /// Carrier names and aliases.
    pub carriers: CarrierTable,
}

/// An accepted sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Local (UTC+7) calendar month.
    pub month: Month,
    /// Local calendar day (days since 1970-01-01).
    pub day: i32,
    /// Beyond the per-device cap of its H3 cell and day: left out of the
    /// gap statistics (villages, heatmaps), still counted in the quota.
    pub capped: bool,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Index into [`Ingested::carriers`].
    pub carrier: u16,
    /// Technology (never Wi-Fi).
    pub network: Network,
    /// Platform, if given.
    pub platform: Option<Platform>,
    /// Download Mbps (0 = failed test).
    pub download: f64,
    /// Upload Mbps.
    pub upload: Option<f64>,
    /// Latency ms.
    pub latency: Option<f64>,
    /// Device, interned (index into [`Ingested::devices`]).
    pub device: u32,
    /// Finest unit index in the boundary set in force that month
    /// ([`crate::vintage::NO_UNIT`] when a crosswalk does not map its old unit).
    pub unit: u32,
    /// H3 cell at the chosen resolution.
    pub cell: h3o::CellIndex,
    /// Metres snapped (0 when inside its unit).
    pub snapped_m: f64,
}

/// A rejected row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Index into the file list.
    pub file: u32,
    /// 1-based physical line (CSV, header = 1) or row (Parquet).
    pub line: u64,
    /// The first failing check.
    pub reason: RejectReason,
    /// The row's test_id, if it had one.
    pub test_id: String,
}

/// Counts of rows rejected per reason, in check order.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[allow(missing_docs, reason = "one count per reason, named as in rejects.csv")]
pub struct RejectCounts {
    pub missing_field: u64,
    pub bad_timestamp: u64,
    pub bad_coordinates: u64,
    pub bad_speed: u64,
    pub duplicate_test_id: u64,
    pub outside_boundaries: u64,
}

impl RejectCounts {
    fn add(&mut self, r: RejectReason) {
        *match r {
            RejectReason::MissingField => &mut self.missing_field,
            RejectReason::BadTimestamp => &mut self.bad_timestamp,
            RejectReason::BadCoordinates => &mut self.bad_coordinates,
            RejectReason::BadSpeed => &mut self.bad_speed,
            RejectReason::DuplicateTestId => &mut self.duplicate_test_id,
            RejectReason::OutsideBoundaries => &mut self.outside_boundaries,
        } += 1;
    }

    /// All rejected rows.
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.missing_field
            + self.bad_timestamp
            + self.bad_coordinates
            + self.bad_speed
            + self.duplicate_test_id
            + self.outside_boundaries
    }
}

/// Counts of excluded rows.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ExcludedCounts {
    /// Wi-Fi tests (not mobile).
    pub wifi: u64,
    /// Valid mobile rows whose month is outside the window.
    pub outside_window: u64,
}

/// Where every input row went. `read = accepted + excluded + rejected`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RowCounts {
    /// Data rows read (CSV header not counted).
    pub read: u64,
    /// Accepted samples.
    pub accepted: u64,
    /// Excluded rows.
    pub excluded: ExcludedCounts,
    /// Rejected rows.
    pub rejected: RejectCounts,
    /// Accepted samples placed by snapping (not part of the identity).
    pub snapped: u64,
}

/// The result of ingestion.
#[derive(Debug)]
pub struct Ingested {
    /// Accepted samples, in input order.
    pub samples: Vec<Sample>,
    /// Canonical carrier names, indexed by [`Sample::carrier`].
    pub carriers: Vec<String>,
    /// Device ids, indexed by [`Sample::device`].
    pub devices: Vec<String>,
    /// Rejected rows, in input order.
    pub rejects: Vec<Reject>,
    /// Row accounting.
    pub counts: RowCounts,
    /// The analysis window, if any row passed every check.
    pub window: Option<(Month, Month)>,
    /// The files read.
    pub files: Vec<PathBuf>,
    /// Problems that did not stop the run, each naming file, line and fix.
    pub warnings: Vec<String>,
    /// Per boundary set, per sample: (finest unit or `NO_UNIT`, how, old unit for crosswalks).
    pub places: Vec<Vec<(u32, PlaceKind, u32)>>,
}

/// Reads, checks, de-duplicates and places every row of every file.
///
/// `progress` is called after each chunk with the rows read so far.
///
/// # Errors
/// A file that cannot be read at all, or lacks a required column.
pub fn ingest(
    vintages: &Vintages,
    opts: &IngestOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Ingested> {
    let locators = vintages.locators(opts.snap_m);
    let mut places: Vec<Vec<(u32, PlaceKind, u32)>> = vec![Vec::new(); vintages.sets.len()];
    let mut seen_ids: HashSet<u128> = HashSet::new();
    let mut carrier_ix: HashMap<String, u16> = HashMap::new();
    let mut carriers: Vec<String> = Vec::new();
    let mut device_ix: HashMap<String, u32> = HashMap::new();
    let mut devices: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    let mut rejects = Vec::new();
    let mut counts = RowCounts::default();
    let mut span: Option<(Month, Month)> = None;
    let mut warnings = Vec::new();
    let mut widen = |m: Month| {
        span = Some(span.map_or((m, m), |(a, b)| (a.min(m), b.max(m))));
    };

    for (file_no, path) in opts.files.iter().enumerate() {
        #[allow(clippy::cast_possible_truncation, reason = "file counts fit u32")]
        let file = file_no as u32;
        read_rows(path, &opts.columns, &mut warnings, &mut |chunk| {
            let placed: Vec<_> = chunk
                .par_iter()
                .map(|row| {
                    let checked = check_row(row);
                    let place = checked.as_ref().ok().and_then(|c| {
                        let all = vintages.place_all(&locators, c.lon, c.lat);
                        if !all[vintages.in_force(c.month)].in_territory() {
                            return None;
                        }
                        let cell = h3o::LatLng::new(c.lat, c.lon)
                            .ok()?
                            .to_cell(opts.resolution);
                        Some((all, cell))
                    });
                    (checked, place)
                })
                .collect();
            for (row, (checked, place)) in chunk.iter().zip(placed) {
                counts.read += 1;
                let mut reject = |reason| {
                    counts.rejected.add(reason);
                    rejects.push(Reject {
                        file,
                        line: row.line,
                        reason,
                        test_id: row.get(Field::TestId).unwrap_or_default().to_owned(),
                    });
                };
                let c = match checked {
                    Ok(c) => c,
                    Err(reason) => {
                        reject(reason);
                        continue;
                    }
                };
                if !seen_ids.insert(xxhash_rust::xxh3::xxh3_128(c.test_id.as_bytes())) {
                    reject(RejectReason::DuplicateTestId);
                    continue;
                }
                let Some((all, cell)) = place else {
                    reject(RejectReason::OutsideBoundaries);
                    continue;
                };
                widen(c.month);
                if c.network == Network::Wifi {
                    counts.excluded.wifi += 1;
                    continue;
                }
                let name = opts.carriers.canonical(c.carrier);
                let carrier = match carrier_ix.get(name) {
                    Some(&i) => i,
                    None => {
                        #[allow(
                            clippy::cast_possible_truncation,
                            reason = "carrier counts fit u16"
                        )]
                        let i = carriers.len() as u16;
                        carriers.push(name.to_owned());
                        carrier_ix.insert(name.to_owned(), i);
                        i
                    }
                };
                let device = match device_ix.get(c.device_id) {
                    Some(&i) => i,
                    None => {
                        #[allow(clippy::cast_possible_truncation, reason = "device counts fit u32")]
                        let i = devices.len() as u32;
                        devices.push(c.device_id.to_owned());
                        device_ix.insert(c.device_id.to_owned(), i);
                        i
                    }
                };
                let dated = all[vintages.in_force(c.month)];
                for (v, p) in places.iter_mut().zip(&all) {
                    v.push((p.unit, p.kind, p.old_unit));
                }
                samples.push(Sample {
                    month: c.month,
                    day: c.day,
                    capped: false,
                    lat: c.lat,
                    lon: c.lon,
                    carrier,
                    network: c.network,
                    platform: c.platform,
                    download: c.download,
                    upload: c.upload,
                    latency: c.latency,
                    device,
                    unit: dated.unit,
                    cell,
                    snapped_m: dated.snapped_m,
                });
            }
            progress(counts.read);
            Ok(())
        })?;
    }

    let window = match (opts.from, opts.to, span) {
        (Some(a), Some(b), _) => Some((a, b)),
        (Some(a), None, s) => Some((a, s.map_or(a, |s| s.1.max(a)))),
        (None, Some(b), s) => Some((s.map_or(b, |s| s.0.min(b)), b)),
        (None, None, s) => s,
    };
    if let Some((from, to)) = window {
        let before = samples.len();
        let keep: Vec<bool> = samples
            .iter()
            .map(|s| s.month >= from && s.month <= to)
            .collect();
        for v in &mut places {
            let mut k = keep.iter();
            v.retain(|_| k.next().copied().unwrap_or(false));
        }
        samples.retain(|s| s.month >= from && s.month <= to);
        counts.excluded.outside_window = (before - samples.len()) as u64;
    }
    counts.accepted = samples.len() as u64;
    counts.snapped = samples.iter().filter(|s| s.snapped_m > 0.0).count() as u64;
    Ok(Ingested {
        samples,
        carriers,
        devices,
        rejects,
        counts,
        window,
        files: opts.files.clone(),
        warnings,
        places,
    })
}

/// Marks as `capped` every sample beyond the first `cap` of its device in
/// its H3 cell on its local day, in input order (`cap = 0`: no cap).
/// Returns the number capped.
pub fn apply_device_cap(samples: &mut [Sample], cap: u32) -> u64 {
    if cap == 0 {
        return 0;
    }
    let mut seen: HashMap<(u32, u64, i32), u32> = HashMap::new();
    let mut capped = 0;
    for s in samples.iter_mut() {
        let n = seen
            .entry((s.device, u64::from(s.cell), s.day))
            .or_insert(0);
        *n += 1;
        s.capped = *n > cap;
        capped += u64::from(s.capped);
    }
    capped
}
