//! Turning sample files into accepted samples, with every row accounted for:
//! accepted, excluded (`wifi`, `outside_window`) or rejected with one reason.

/// Hash maps with a fixed, fast hasher: the keys are ours (interned ids,
/// 128-bit digests), not an attacker's, and runs stay reproducible.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::FixedState>;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use crate::carrier::CarrierTable;
use crate::error::Result;
use crate::ingest::{Chunk, read_field_chunks};
use crate::month::Month;
use crate::schema::{ColumnMap, Field, Fields, Network, RejectReason, check_row};
use crate::store::SampleStore;
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
    /// Places points of cells wholly inside one unit without a polygon test,
    /// and takes cells from the memo of hexagons ([`crate::cell_memo`]) where
    /// it answers (same results; `false` runs the exact test and h3o for
    /// every point, to verify).
    pub fast_placement: bool,
    /// A folder for working files: with one, the test ids that repeat are
    /// found first, on disk ([`crate::test_ids`]), and only those are
    /// remembered while reading (same results; memory no longer grows
    /// with the rows read, for one more pass over the test-id column).
    pub spill_dir: Option<PathBuf>,
    /// The accepted samples kept on disk, not in memory ([`crate::store`]):
    /// same results; memory no longer grows with the samples, for reading
    /// them back in each later stage (the blocks each part needs).
    pub sample_store: Option<StoreOptions>,
}

/// Where and how accepted samples are kept on disk.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The folder of the working files (unnamed, removed when the run ends).
    pub dir: PathBuf,
    /// About how many samples each later stage holds at a time.
    pub part_samples: usize,
}

/// An optional value in 8 bytes, not 16: NaN stands for none (the checks
/// reject NaN input, so no value is lost). Tens of millions of samples are
/// held at once; their size is the run's memory.
#[derive(Debug, Clone, Copy)]
pub struct Maybe(f64);

impl Maybe {
    /// No value.
    pub const NONE: Self = Self(f64::NAN);

    /// The bits as held (NaN for none), to store a sample.
    #[must_use]
    pub const fn raw(self) -> f64 {
        self.0
    }

    /// The value of [`Maybe::raw`]'s bits.
    #[must_use]
    pub const fn from_raw(raw: f64) -> Self {
        Self(raw)
    }

    /// The value, if any.
    #[must_use]
    pub const fn get(self) -> Option<f64> {
        if self.0.is_nan() { None } else { Some(self.0) }
    }
}

impl From<Option<f64>> for Maybe {
    fn from(v: Option<f64>) -> Self {
        debug_assert!(v.is_none_or(|x| !x.is_nan()), "NaN is rejected before this");
        Self(v.unwrap_or(f64::NAN))
    }
}

impl PartialEq for Maybe {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// An accepted sample (48 bytes; its position is held apart, in
/// [`Ingested::positions`]). What a sample's own fields decide is
/// derived, not held: its month and day from its time, whether it was
/// snapped from its place, and its location accuracy only as
/// [`flags::LOW_ACCURACY`], set while reading (no output reports it).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Unix time in seconds.
    pub time: i64,
    /// Download Mbps (0 = failed test).
    pub download: f64,
    /// Upload Mbps.
    pub upload: Maybe,
    /// Latency ms.
    pub latency: Maybe,
    /// H3 cell at the chosen resolution.
    pub cell: h3o::CellIndex,
    /// Device, interned (below [`Ingested::devices`]).
    pub device: u32,
    /// Index into [`Ingested::carriers`].
    pub carrier: u16,
    /// Technology (never Wi-Fi).
    pub network: Network,
    /// Plausibility flags ([`flags`]); a flagged sample counts in the official
    /// quota but not in the effective count nor the gap statistics.
    pub flags: u8,
}

const _: () = assert!(
    std::mem::size_of::<Sample>() == 48,
    "a sample's size is the run's memory"
);

/// Where a sample was taken. Only the plausibility rules and the villages
/// read it, so it is held apart from [`Sample`] and freed after them: the
/// stages that hold the most memory (unit and cell statistics) do without
/// its 16 bytes a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// Longitude.
    pub lon: f64,
    /// Latitude.
    pub lat: f64,
}

impl Sample {
    /// Local (UTC+7) calendar day, as days since 1970-01-01.
    #[must_use]
    pub fn day(&self) -> i64 {
        local_day(self.time)
    }

    /// Local (UTC+7) calendar month.
    #[must_use]
    pub fn month(&self) -> Month {
        Month::of_day(self.day()).unwrap_or_else(|| {
            unreachable!("a time whose local year is outside 0–9999 is rejected as a bad timestamp")
        })
    }
}

/// The local (UTC+7) calendar day of a Unix time, as days since 1970-01-01.
pub(crate) fn local_day(time: i64) -> i64 {
    (time + i64::from(crate::schema::LOCAL_OFFSET_SECONDS)).div_euclid(86_400)
}

/// Peak memory of an analysis, per row of its sample files: measured on
/// the national job (`notebooks/bench_national.sh`, 2009 communes, ~90 %
/// of rows accepted) with 64-byte samples and the table of every test id
/// read, 1 154–1 253 MiB at 10 M rows from Parquet (up to 100 bytes a row
/// above a fixed part of boundaries, cell tables and report pages),
/// 1 125 MiB from CSV (86 bytes), and 8 857 MiB at 100 M rows from one
/// Parquet file (89 bytes). The largest, rounded up: a warning had better
/// come early.
pub const PEAK_BYTES_PER_ROW: u64 = 100;

/// As [`PEAK_BYTES_PER_ROW`], when the repeated test ids are found on disk
/// ([`IngestOptions::spill_dir`]): 1 038–1 063 MiB at 10 M rows (80 bytes
/// a row) and 7 710 MiB at 100 M rows (78 bytes), rounded up.
pub const PEAK_BYTES_PER_ROW_SPILLED: u64 = 85;

/// The fixed part of [`PEAK_BYTES_PER_ROW`]'s measure (national communes).
pub const PEAK_BYTES_FIXED: u64 = 300 << 20;

/// About how much memory an analysis of `rows` sample rows takes at its
/// peak, when every row lies in the window (a window holds only its own),
/// with the repeated test ids found on disk or not (`spilled`).
#[must_use]
pub const fn estimated_peak_bytes(rows: u64, spilled: bool) -> u64 {
    let per_row = if spilled {
        PEAK_BYTES_PER_ROW_SPILLED
    } else {
        PEAK_BYTES_PER_ROW
    };
    PEAK_BYTES_FIXED.saturating_add(rows.saturating_mul(per_row))
}

/// Shards of the device table (a power of two: a device's number carries its shard).
const SHARDS: usize = 16;

/// Shards of the test-id table for `rows` expected rows, and the rows to
/// reserve in each. A hash table's buckets are a power of two at most 7/8
/// full, so 16 shards of 627 000 ids (10 M rows) take 2^20 buckets each,
/// 60 % full; 23 shards of 445 000 take 2^19, 85 % full: 76 MiB less at
/// 10 M rows, in the table that is the largest besides the samples.
fn id_shards(rows: usize) -> (usize, usize) {
    // hashbrown's rule: room for `cap` takes the next power of two of cap * 8 / 7.
    let buckets = |cap: usize| (cap.saturating_mul(8) / 7).max(1).next_power_of_two();
    // 2 % more than an even share: shards fill unevenly (by well under 1 %).
    let per_shard = |n: usize| (rows + rows / 50).div_ceil(n);
    (16_usize..=64)
        .map(|n| (n.saturating_mul(buckets(per_shard(n))), n))
        .min()
        .map_or((16, 0), |(_, n)| (n, per_shard(n)))
}

/// The shard of a test-id digest among `shards`: its high 64 bits scaled
/// (xxh3's bits are well mixed).
#[allow(
    clippy::cast_possible_truncation,
    reason = "the product's high half is below shards"
)]
const fn id_shard(digest: u128, shards: usize) -> usize {
    (((digest >> 64) * shards as u128) >> 64) as usize
}

/// The shard of a digest: its low bits (xxh3's are well mixed).
#[allow(
    clippy::cast_possible_truncation,
    reason = "only the low bits are kept"
)]
const fn shard(digest: u128) -> usize {
    digest as usize & (SHARDS - 1)
}

/// A device as its shard's table knows it: the high 96 bits of its id's
/// digest (the low bits chose the shard). An entry then takes 16 bytes,
/// not the 32 of a 128-bit key beside a number (the table of devices is
/// the largest one that grows with the input: 15 M devices at 100 M rows
/// in the simulation); two of 15 M devices share 100 bits with odds of
/// about 1 in 10^16.
type DeviceKey = [u32; 3];

#[allow(
    clippy::cast_possible_truncation,
    reason = "each word keeps 32 bits of the digest"
)]
const fn device_key(digest: u128) -> DeviceKey {
    [
        (digest >> 32) as u32,
        (digest >> 64) as u32,
        (digest >> 96) as u32,
    ]
}

/// What the ordered part of ingestion needs of a checked row, computed in
/// parallel beforehand.
struct RowKeys<'a> {
    test_id: u128,
    device: u128,
    carrier: &'a str,
}

/// Rows of a chunk checked while the piece before is accounted for (and
/// the next chunk placed): large enough that a piece's parallel work is
/// worth splitting across the cores.
const PIECE_ROWS: usize = 4096;

/// A row after the parallel pass: checked, placed (with its cell), keyed,
/// and the cell if some locator had not learned it.
struct Passed<'r> {
    checked: std::result::Result<crate::schema::CheckedRow<'r>, RejectReason>,
    place: Option<(crate::vintage::Places, h3o::CellIndex)>,
    keys: Option<RowKeys<'r>>,
    unlearned: Option<h3o::CellIndex>,
}

/// A piece of rows ready for accounting: passed, duplicates found,
/// devices interned.
struct Judged<'r, R> {
    rows: &'r [R],
    passed: Vec<Passed<'r>>,
    is_dup: Vec<bool>,
    device_of: Vec<u32>,
}

/// Cells a chunk met that some locator had not learned, and the (square,
/// cell) of each row whose cell h3o computed.
type Learning = (Vec<h3o::CellIndex>, Vec<(u64, h3o::CellIndex)>);

/// What accounting fills, in input order.
struct Accounts<'s> {
    samples: Vec<Sample>,
    positions: Vec<Position>,
    rejects: &'s mut dyn RejectSink,
    /// The first failure (the sink's, or too many carriers): reading
    /// stops after the chunk.
    failed: Option<crate::Error>,
    /// The sample files, to name in an error.
    files: &'s [PathBuf],
    /// Every carrier name's index, past the first few (scanned).
    carrier_ix: HashMap<String, u16>,
    counts: RowCounts,
    places: Vec<SetPlaces>,
    carriers: Vec<String>,
    span: Option<(Month, Month)>,
    /// The window's given bounds (`--from`, `--to`): a sample outside them
    /// is counted and dropped here, so memory holds only the window's.
    from: Option<Month>,
    to: Option<Month>,
    /// [`Plausibility::max_accuracy_m`]: the accuracy is judged here, as it
    /// is not held.
    max_accuracy_m: f64,
}

/// A row's places in every vintage, its cell, and whether every locator
/// had learned the cell; `None` when its coordinates fail the checks.
type Placed = Option<(crate::vintage::Places, h3o::CellIndex, bool)>;

/// Cells and places of a chunk's rows, ahead of their other checks, and
/// the (square, cell) of each row whose cell h3o computed. Rows go in the
/// order of their squares (a Morton code): neighbouring rows then share
/// the memo's squares and the locators' cache lines (cell table, edge
/// grids, polygons), where in input order nearly every lookup misses the
/// cache at national scale. A cell the locators have not learned yet is
/// placed by the exact test (the same answer).
fn place_chunk<R: Fields + Sync>(
    rows: &[R],
    locators: &[Option<crate::boundaries::Locator<'_>>],
    memo: &crate::cell_memo::CellMemo,
    vintages: &Vintages,
    opts: &IngestOptions,
) -> (Vec<Placed>, Vec<(u64, h3o::CellIndex)>) {
    let resolution = opts.resolution;
    #[allow(
        clippy::cast_possible_truncation,
        reason = "chunks hold under 2^32 rows"
    )]
    let mut keys: Vec<(u64, f64, f64, u32)> = rows
        .par_iter()
        .enumerate()
        .filter_map(|(i, row)| {
            let (lon, lat) = crate::schema::row_position(row)?;
            Some((memo.square(lat, lon), lon, lat, i as u32))
        })
        .collect();
    keys.par_sort_unstable_by_key(|k| k.0);
    let placed: Vec<Option<(h3o::CellIndex, crate::vintage::Places, bool, bool)>> = keys
        .par_iter()
        .map(|&(square, lon, lat, _)| {
            let memoised = if opts.fast_placement {
                memo.cell_valued(square, lat, lon)
            } else {
                None
            };
            // The memo keeps the cell's cell-table values (of the first
            // VALUED_SETS sets), so its points skip that lookup.
            let (cell, all, known) = match memoised {
                Some((c, values)) => {
                    let (all, known) = vintages.place_all_valued(locators, c, values, lon, lat);
                    (c, all, known)
                }
                None => {
                    let c = h3o::LatLng::new(lat, lon).ok()?.to_cell(resolution);
                    let fast = opts.fast_placement.then_some(c);
                    let (all, known) = vintages.place_all_cached(locators, fast, lon, lat);
                    (c, all, known)
                }
            };
            Some((cell, all, known, memoised.is_none()))
        })
        .collect();
    let mut out: Vec<Placed> = vec![None; rows.len()];
    let mut computed_cells = Vec::new();
    for (&(square, _, _, i), p) in keys.iter().zip(placed) {
        let Some((cell, all, known, computed)) = p else {
            continue;
        };
        if computed && opts.fast_placement {
            computed_cells.push((square, cell));
        }
        out[i as usize] = Some((all, cell, known));
    }
    (out, computed_cells)
}

/// Checks and digests of each row, in parallel, with its places from
/// [`place_chunk`]; a row whose cell some locator had not learned reports
/// it, to be learned for the chunks that follow.
fn pass<'r, R: Fields + Sync>(
    rows: &'r [R],
    placed: &mut [Placed],
    vintages: &Vintages,
    opts: &'r IngestOptions,
) -> Vec<Passed<'r>> {
    rows.par_iter()
        .zip(placed.par_iter_mut())
        // Carrier names repeat: each piece of the chunk remembers the
        // canonical name of each spelling it met (a handful).
        .map_init(Vec::<(&str, &str)>::new, |spellings, (row, placed)| {
            let checked = check_row(row);
            let mut unlearned = None;
            let place = match (&checked, placed.take()) {
                (Ok(c), Some((all, cell, known))) => {
                    if opts.fast_placement && !known {
                        unlearned = Some(cell);
                    }
                    all[vintages.in_force(c.month)]
                        .in_territory()
                        .then_some((all, cell))
                }
                _ => None,
            };
            // Hashing and name work here, in parallel; accounting only
            // does what needs the input order.
            let keys = checked.as_ref().ok().map(|c| RowKeys {
                test_id: crate::test_ids::digest(c.test_id),
                device: xxhash_rust::xxh3::xxh3_128(c.device_id.as_bytes()),
                carrier: match spellings.iter().find(|(raw, _)| *raw == c.carrier) {
                    Some(&(_, canonical)) => canonical,
                    None => {
                        let canonical = opts.carriers.canonical(c.carrier);
                        // Bounded: a file of a thousand spellings costs a
                        // lookup per row, not a long scan.
                        if spellings.len() < 16 {
                            spellings.push((c.carrier, canonical));
                        }
                        canonical
                    }
                },
            });
            Passed {
                checked,
                place,
                keys,
                unlearned,
            }
        })
        .collect()
}

/// Duplicate test ids and device interning, sharded by digest so that
/// shards run in parallel; within a shard rows keep input order, so the
/// first row of a test id is kept, as in one sequential pass. Returns, per
/// row, whether it repeats a test id and its device's number.
fn dedup_and_intern(
    passed: &[Passed<'_>],
    repeated: Option<&crate::test_ids::DigestSet>,
    seen_ids: &mut [HashSet<u128>],
    device_ix: &mut [HashMap<DeviceKey, u32>],
) -> (Vec<bool>, Vec<u32>) {
    let id_shard_count = seen_ids.len();
    // Rows by shard of their test id, in input order.
    let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); id_shard_count];
    for (ri, p) in passed.iter().enumerate() {
        if let Some(k) = &p.keys {
            by_shard[id_shard(k.test_id, id_shard_count)].push(ri);
        }
    }
    let dups: Vec<Vec<usize>> = seen_ids
        .par_iter_mut()
        .zip(&by_shard)
        .map(|(set, rows)| {
            rows.iter()
                .copied()
                .filter(|&ri| {
                    passed[ri]
                        .keys
                        .as_ref()
                        // An id on one row only cannot repeat: not remembered.
                        .is_some_and(|k| {
                            repeated.is_none_or(|r| r.contains(&k.test_id))
                                && !set.insert(k.test_id)
                        })
                })
                .collect()
        })
        .collect();
    let mut is_dup = vec![false; passed.len()];
    for ri in dups.into_iter().flatten() {
        is_dup[ri] = true;
    }
    // Accepted mobile rows by shard of their device, in input order.
    let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); SHARDS];
    for (ri, p) in passed.iter().enumerate() {
        if let (Ok(c), Some(_), Some(k)) = (&p.checked, &p.place, &p.keys)
            && !is_dup[ri]
            && c.network != Network::Wifi
        {
            by_shard[shard(k.device)].push(ri);
        }
    }
    let interned: Vec<Vec<(usize, u32)>> = device_ix
        .par_iter_mut()
        .zip(&by_shard)
        .enumerate()
        .map(|(si, (map, rows))| {
            let mut out = Vec::with_capacity(rows.len());
            for &ri in rows {
                let Some(k) = &passed[ri].keys else { continue };
                #[allow(clippy::cast_possible_truncation, reason = "device counts fit u32")]
                let next = map.len() as u32;
                let local = *map.entry(device_key(k.device)).or_insert(next);
                #[allow(clippy::cast_possible_truncation, reason = "SHARDS is small")]
                out.push((ri, local * SHARDS as u32 + si as u32));
            }
            out
        })
        .collect();
    let mut device_of = vec![0u32; passed.len()];
    for (ri, d) in interned.into_iter().flatten() {
        device_of[ri] = d;
    }
    (is_dup, device_of)
}

/// The most files of samples on disk (one per group of devices): macOS
/// allows a process 256 open files by default. Past 128 parts of samples
/// (half a billion samples in parts of 4 Mi), a group of devices holds more
/// than a part.
const MAX_DEVICE_GROUPS: usize = 128;

/// Accepted samples held while reading before they go to the store.
const STORE_FLUSH_SAMPLES: usize = 1 << 20;

impl Accounts<'_> {
    /// Moves the samples held to `store`.
    fn flush_to(&mut self, store: &mut SampleStore) -> Result<()> {
        store.append(&self.samples, &self.positions, &self.places)?;
        self.samples.clear();
        self.positions.clear();
        for v in &mut self.places {
            v.units.clear();
            v.kinds.clear();
            v.unplaced.clear();
        }
        Ok(())
    }

    /// Accounts for a piece's rows in input order: each is accepted,
    /// excluded or rejected with one reason.
    fn account<R: Fields>(&mut self, file: u32, judged: Judged<'_, R>, vintages: &Vintages) {
        let Judged {
            rows,
            passed,
            is_dup,
            device_of,
        } = judged;
        for (ri, (row, p)) in rows.iter().zip(passed).enumerate() {
            self.counts.read += 1;
            let mut reject = |reason| {
                self.counts.rejected.add(reason);
                if self.failed.is_none() {
                    let test_id = row.get(Field::TestId).unwrap_or_default();
                    self.failed = self.rejects.reject(file, row.line(), reason, test_id).err();
                }
            };
            let (c, keys) = match (p.checked, p.keys) {
                (Ok(c), Some(k)) => (c, k),
                (Err(reason), _) => {
                    reject(reason);
                    continue;
                }
                (Ok(_), None) => unreachable!("keys exist for every checked row"),
            };
            if is_dup[ri] {
                reject(RejectReason::DuplicateTestId);
                continue;
            }
            let Some((all, cell)) = p.place else {
                reject(RejectReason::OutsideBoundaries);
                continue;
            };
            let m = c.month;
            self.span = Some(self.span.map_or((m, m), |(a, b)| (a.min(m), b.max(m))));
            if c.network == Network::Wifi {
                self.counts.excluded.wifi += 1;
                continue;
            }
            // A handful of carriers, as a rule: a scan of the first few
            // beats hashing. A wrong column can hold a name per row: those
            // are hashed, and past what a sample can number reading stops.
            #[allow(
                clippy::cast_possible_truncation,
                reason = "the scan's index is below 16"
            )]
            let carrier = match self
                .carriers
                .iter()
                .take(16)
                .position(|n| n == keys.carrier)
            {
                Some(i) => i as u16,
                None => match self.carrier_ix.get(keys.carrier) {
                    Some(&i) => i,
                    None => {
                        let Ok(i) = u16::try_from(self.carriers.len()) else {
                            if self.failed.is_none() {
                                self.failed = Some(too_many_carriers(
                                    &self.files[file as usize],
                                    row.line(),
                                    keys.carrier,
                                ));
                            }
                            continue;
                        };
                        self.carriers.push(keys.carrier.to_owned());
                        self.carrier_ix.insert(keys.carrier.to_owned(), i);
                        i
                    }
                },
            };
            // After the carrier is interned: the carriers' order stays that
            // of every accepted row, whatever the window.
            if self.from.is_some_and(|a| m < a) || self.to.is_some_and(|b| m > b) {
                self.counts.excluded.outside_window += 1;
                continue;
            }
            // Devices are interned by a 128-bit digest: their ids are
            // never needed again (no output may carry them).
            let device = device_of[ri];
            if all[vintages.in_force(c.month)].kind == PlaceKind::Snapped {
                self.counts.snapped += 1;
            }
            for (v, p) in self.places.iter_mut().zip(&all) {
                v.push(self.samples.len(), p);
            }
            let low_accuracy =
                self.max_accuracy_m > 0.0 && c.accuracy.is_some_and(|a| a > self.max_accuracy_m);
            let sample = Sample {
                time: c.time,
                download: c.download,
                upload: c.upload.into(),
                latency: c.latency.into(),
                cell,
                device,
                carrier,
                network: c.network,
                flags: if low_accuracy { flags::LOW_ACCURACY } else { 0 },
            };
            debug_assert_eq!(
                i64::from(c.day),
                sample.day(),
                "Sample::day derives the day"
            );
            debug_assert_eq!(c.month, sample.month(), "Sample::month derives the month");
            self.samples.push(sample);
            self.positions.push(Position {
                lon: c.lon,
                lat: c.lat,
            });
        }
    }
}

/// The error of a file whose carrier column names more carriers than a
/// sample can number: a wrong column, as a rule.
fn too_many_carriers(path: &std::path::Path, line: u64, name: &str) -> crate::Error {
    crate::Error::Config(format!(
        "{}: line {line}: carrier '{name}' is the {}th different carrier name; is the \
         carrier column the right one? Name it with --column carrier=<column>",
        path.display(),
        u32::from(u16::MAX) + 2
    ))
}

/// Where rejected rows go, in input order, as they are found: they are not
/// held, so a file of bad rows cannot fill memory.
pub trait RejectSink: Send {
    /// A rejected row of the file numbered `file` in the file list.
    ///
    /// # Errors
    /// The row cannot be kept (a write failed); reading stops.
    fn reject(&mut self, file: u32, line: u64, reason: RejectReason, test_id: &str) -> Result<()>;
}

/// Rejected rows held in memory.
impl RejectSink for Vec<Reject> {
    fn reject(&mut self, file: u32, line: u64, reason: RejectReason, test_id: &str) -> Result<()> {
        self.push(Reject {
            file,
            line,
            reason,
            test_id: test_id.to_owned(),
        });
        Ok(())
    }
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

/// Where one boundary set placed each accepted sample, in sample order:
/// 5 bytes a sample (the old unit is kept only for the samples the set
/// left without a unit, which are few).
#[derive(Debug, Clone, Default)]
pub struct SetPlaces {
    /// Each sample's finest unit, or [`crate::vintage::NO_UNIT`].
    pub units: Vec<u32>,
    /// How each sample was placed.
    pub kinds: Vec<PlaceKind>,
    /// (sample, its old unit for crosswalks) of each sample without a
    /// unit, in sample order.
    pub unplaced: Vec<(u32, u32)>,
}

impl SetPlaces {
    /// Adds the place of the sample numbered `sample`.
    pub(crate) fn push(&mut self, sample: usize, place: &crate::vintage::Place) {
        debug_assert_eq!(self.units.len(), sample, "one place per sample, in order");
        self.units.push(place.unit);
        self.kinds.push(place.kind);
        if place.unit == crate::vintage::NO_UNIT {
            #[allow(clippy::cast_possible_truncation, reason = "sample counts fit u32")]
            self.unplaced.push((sample as u32, place.old_unit));
        }
    }
}

/// The result of ingestion.
#[derive(Debug)]
pub struct Ingested {
    /// Accepted samples, in input order.
    pub samples: Vec<Sample>,
    /// Each sample's position, in the same order ([`Position`]); `analyze`
    /// empties it once the plausibility rules and the villages have read it.
    pub positions: Vec<Position>,
    /// Canonical carrier names, indexed by [`Sample::carrier`].
    pub carriers: Vec<String>,
    /// Distinct devices ([`Sample::device`] is below this).
    pub devices: usize,
    /// Row accounting.
    pub counts: RowCounts,
    /// The analysis window, if any row passed every check.
    pub window: Option<(Month, Month)>,
    /// The files read.
    pub files: Vec<PathBuf>,
    /// Problems that did not stop the run, each naming file, line and fix.
    pub warnings: Vec<String>,
    /// Per boundary set, where it placed each sample.
    pub places: Vec<SetPlaces>,
    /// Wall time of the ingestion's parts (read, place, check, account),
    /// some of which run beside others ([`crate::stages::PartTime::beside`]).
    pub timings: Vec<crate::stages::PartTime>,
    /// With [`IngestOptions::sample_store`], the accepted samples, on disk
    /// (and none in `samples`, `positions` and `places`).
    pub store: Option<crate::store::SampleStore>,
}

impl Ingested {
    /// A run of some of these samples (with their positions and places,
    /// numbered from 0), with every other field as here but no warnings,
    /// timings or store: what a stage reads of one part of stored samples.
    #[must_use]
    pub fn with_part(
        &self,
        samples: Vec<Sample>,
        positions: Vec<Position>,
        places: Vec<SetPlaces>,
    ) -> Self {
        Self {
            samples,
            positions,
            carriers: self.carriers.clone(),
            devices: self.devices,
            counts: self.counts.clone(),
            window: self.window,
            files: self.files.clone(),
            warnings: Vec::new(),
            places,
            timings: Vec::new(),
            store: None,
        }
    }
}

#[cfg(test)]
impl Ingested {
    /// Samples as if ingested (no positions, places or files), for the
    /// tests of later stages.
    pub(crate) fn of_samples(samples: Vec<Sample>, carriers: &[&str], devices: usize) -> Self {
        Self {
            samples,
            positions: Vec::new(),
            carriers: carriers.iter().map(|&c| c.to_owned()).collect(),
            devices,
            counts: RowCounts::default(),
            window: None,
            files: Vec::new(),
            warnings: Vec::new(),
            places: Vec::new(),
            timings: Vec::new(),
            store: None,
        }
    }
}

/// The state of ingestion between chunks.
struct Run<'v, 's> {
    locators: Vec<Option<crate::boundaries::Locator<'v>>>,
    memo: crate::cell_memo::CellMemo,
    acc: Accounts<'s>,
    device_ix: Vec<HashMap<DeviceKey, u32>>,
    /// With a spill folder, the test ids that occur on more than one row.
    repeated: Option<crate::test_ids::DigestSet>,
    seen_ids: Vec<HashSet<u128>>,
    /// Cells met that no locator or memo knew (in the checks of one chunk
    /// and the placing of the next), classified beside the next placing and
    /// learned after it.
    pending: Option<Learning>,
    /// H3 cells and units of a chunk's points (CSV: with typing their
    /// coordinates), with classifying the cells met before; overlaps with
    /// `learn`, `check` and `account`.
    place: std::time::Duration,
    /// Learning the cells met, after placing.
    learn: std::time::Duration,
    /// Checks and de-duplication of the chunk's rows, but the last piece's.
    check: std::time::Duration,
    /// The last piece's accounting.
    account: std::time::Duration,
    /// All of the above: the time not spent waiting for the reader.
    steps: std::time::Duration,
}

/// A chunk read and placed, waiting to be checked and accounted for while
/// the next chunk is placed.
struct Held {
    file: u32,
    chunk: Chunk,
    placed: Vec<Placed>,
}

/// `f` of a chunk's rows, of whichever type the reader gave.
fn with_rows<T>(chunk: &Chunk, f: impl RowsFn<T>) -> T {
    match chunk {
        Chunk::Rows(rows) => f.call(rows),
        Chunk::Columns(columns) => f.call(&columns.rows()),
    }
}

/// A function of a chunk's rows, whatever their type.
trait RowsFn<T> {
    fn call<R: Fields + Sync>(self, rows: &[R]) -> T;
}

/// [`place_chunk`] as a [`RowsFn`].
struct Place<'a, 'v> {
    locators: &'a [Option<crate::boundaries::Locator<'v>>],
    memo: &'a crate::cell_memo::CellMemo,
    vintages: &'a Vintages,
    opts: &'a IngestOptions,
}

impl RowsFn<(Vec<Placed>, Vec<(u64, h3o::CellIndex)>)> for Place<'_, '_> {
    fn call<R: Fields + Sync>(self, rows: &[R]) -> (Vec<Placed>, Vec<(u64, h3o::CellIndex)>) {
        place_chunk(rows, self.locators, self.memo, self.vintages, self.opts)
    }
}

/// The checks, de-duplication and accounting of a placed chunk, as a
/// [`RowsFn`]: its rows in pieces, each checked while the piece before is
/// de-duplicated and accounted for (in input order, on one thread but for
/// the shards of its hash tables). Returns the cells some locator had not
/// learned, and the time of the last piece's accounting.
struct Judge<'a, 's> {
    file: u32,
    placed: &'a mut [Placed],
    acc: &'a mut Accounts<'s>,
    repeated: Option<&'a crate::test_ids::DigestSet>,
    seen_ids: &'a mut [HashSet<u128>],
    device_ix: &'a mut [HashMap<DeviceKey, u32>],
    vintages: &'a Vintages,
    opts: &'a IngestOptions,
}

impl RowsFn<(Vec<h3o::CellIndex>, std::time::Duration)> for Judge<'_, '_> {
    fn call<R: Fields + Sync>(self, rows: &[R]) -> (Vec<h3o::CellIndex>, std::time::Duration) {
        let Self {
            file,
            placed,
            acc,
            repeated,
            seen_ids,
            device_ix,
            vintages,
            opts,
        } = self;
        let mut ready: Option<(&[R], Vec<Passed<'_>>)> = None;
        let mut unlearned: Vec<h3o::CellIndex> = Vec::new();
        let mut judge = |rows, passed: Vec<Passed<'_>>, acc: &mut Accounts| {
            let (is_dup, device_of) = dedup_and_intern(&passed, repeated, seen_ids, device_ix);
            let judged = Judged {
                rows,
                passed,
                is_dup,
                device_of,
            };
            acc.account(file, judged, vintages);
        };
        for (piece, placed) in rows.chunks(PIECE_ROWS).zip(placed.chunks_mut(PIECE_ROWS)) {
            let (passed, ()) = rayon::join(
                || pass(piece, placed, vintages, opts),
                || {
                    if let Some((rows, passed)) = ready.take() {
                        judge(rows, passed, acc);
                    }
                },
            );
            unlearned.extend(passed.iter().filter_map(|p| p.unlearned));
            ready = Some((piece, passed));
        }
        let last = std::time::Instant::now();
        if let Some((rows, passed)) = ready.take() {
            judge(rows, passed, acc);
        }
        (unlearned, last.elapsed())
    }
}

impl Run<'_, '_> {
    /// Places the chunk `next` while the chunk placed before it, `held`, is
    /// checked, de-duplicated and accounted for, in input order (either may
    /// be missing: the first and the last step). Returns `next`'s places.
    fn step(
        &mut self,
        next: Option<&Chunk>,
        held: Option<(u32, &Chunk, &mut [Placed])>,
        vintages: &Vintages,
        opts: &IngestOptions,
    ) -> Option<Vec<Placed>> {
        let Self {
            locators,
            memo,
            acc,
            device_ix,
            repeated,
            seen_ids,
            pending,
            ..
        } = self;
        let started = std::time::Instant::now();
        // Placing a chunk and checking the one before share both cores:
        // the ordered accounting, one thread's work, no longer leaves the
        // other core waiting. The cells that earlier chunks met and no
        // locator or memo knew are classified beside the placing (both
        // only read the locators and the memo; a cell not learned yet
        // takes the exact test, the same answer), then learned while the
        // checks go on (they read neither).
        let ((placed, place_time, learn_time), judged) = rayon::join(
            || {
                let t = std::time::Instant::now();
                let (placed, classified) = rayon::join(
                    || {
                        next.map(|chunk| {
                            with_rows(
                                chunk,
                                Place {
                                    locators,
                                    memo,
                                    vintages,
                                    opts,
                                },
                            )
                        })
                    },
                    || {
                        pending.take().map(|(unlearned, computed): Learning| {
                            let cells: Vec<_> = locators
                                .iter()
                                .map(|loc| loc.as_ref().map(|loc| loc.classify_new(&unlearned)))
                                .collect();
                            (cells, memo.build_new(&computed), computed)
                        })
                    },
                );
                let place_time = t.elapsed();
                let t = std::time::Instant::now();
                if let Some(classified) = classified {
                    learn(locators, memo, classified);
                }
                (placed, place_time, t.elapsed())
            },
            || {
                let t = std::time::Instant::now();
                held.map(|(file, chunk, placed)| {
                    let (unlearned, last) = with_rows(
                        chunk,
                        Judge {
                            file,
                            placed,
                            acc,
                            repeated: repeated.as_ref(),
                            seen_ids,
                            device_ix,
                            vintages,
                            opts,
                        },
                    );
                    (unlearned, t.elapsed() - last, last)
                })
            },
        );
        self.place += place_time;
        self.learn += learn_time;
        let (unlearned, check, account) = judged.unwrap_or_default();
        self.check += check;
        self.account += account;
        let (placed, computed_cells) = placed.unzip();
        let computed_cells = computed_cells.unwrap_or_default();
        if opts.fast_placement && !(unlearned.is_empty() && computed_cells.is_empty()) {
            self.pending = Some((unlearned, computed_cells));
        }
        self.steps += started.elapsed();
        placed
    }
}

/// What the locators and the memo classified and built of the cells met.
type Classified = (
    Vec<Option<crate::boundaries::ClassifiedCells>>,
    crate::cell_memo::BuiltHexagons,
    Vec<(u64, h3o::CellIndex)>,
);

/// Learns what was classified: the locators' cells, the memo's hexagons,
/// and the memo's copy of the first sets' values as the locators now hold
/// them.
fn learn(
    locators: &mut [Option<crate::boundaries::Locator<'_>>],
    memo: &mut crate::cell_memo::CellMemo,
    (cells, hexagons, computed): Classified,
) {
    // Cells whose values in the memo may change: those the locators
    // learn, and those the memo learns.
    let mut changed = hexagons.cells();
    for (loc, cells) in locators.iter_mut().zip(cells) {
        if let (Some(loc), Some(cells)) = (loc, cells) {
            changed.extend(cells.cells());
            loc.insert_classified(cells);
        }
    }
    memo.insert_built(hexagons, &computed);
    for cell in changed {
        let sets = locators.iter().enumerate();
        for (set, loc) in sets.take(crate::cell_memo::VALUED_SETS) {
            if let Some(loc) = loc {
                memo.set_value(cell, set, loc.cell_value(cell));
            }
        }
    }
}

/// Reads, checks, de-duplicates and places every row of every file.
///
/// The accuracy rule of `rules` flags samples here ([`flags::LOW_ACCURACY`]),
/// as the accuracy is not held; [`apply_plausibility`] applies the others.
/// Rejected rows go to `rejects` as they are found, in input order.
/// `progress` is called after each chunk with the rows read so far.
///
/// # Errors
/// A file that cannot be read at all, or lacks a required column; the
/// sink's error.
pub fn ingest(
    vintages: &Vintages,
    opts: &IngestOptions,
    rules: &Plausibility,
    rejects: &mut dyn RejectSink,
    progress: &mut dyn FnMut(u64),
) -> Result<Ingested> {
    let mut run = Run {
        locators: vintages.locators(opts.snap_m),
        memo: crate::cell_memo::CellMemo::new(opts.resolution),
        acc: Accounts {
            samples: Vec::new(),
            positions: Vec::new(),
            rejects,
            failed: None,
            files: &opts.files,
            carrier_ix: HashMap::default(),
            counts: RowCounts::default(),
            places: vec![SetPlaces::default(); vintages.sets.len()],
            carriers: Vec::new(),
            span: None,
            from: opts.from,
            to: opts.to,
            max_accuracy_m: rules.max_accuracy_m,
        },
        device_ix: (0..SHARDS).map(|_| HashMap::default()).collect(),
        repeated: None,
        seen_ids: Vec::new(),
        pending: None,
        place: std::time::Duration::ZERO,
        check: std::time::Duration::ZERO,
        account: std::time::Duration::ZERO,
        learn: std::time::Duration::ZERO,
        steps: std::time::Duration::ZERO,
    };
    let mut warnings = Vec::new();
    let mut timings = Vec::new();
    if let Some(dir) = &opts.spill_dir {
        let started = std::time::Instant::now();
        let repeated = crate::test_ids::repeated_test_ids(&opts.files, &opts.columns, dir)?;
        timings.push(crate::stages::PartTime {
            stage: "repeated test ids",
            wall: started.elapsed(),
            beside: false,
        });
        run.repeated = Some(repeated);
    }

    let started = std::time::Instant::now();
    // Reserve once what the files announce (Parquet metadata) or suggest
    // (CSV line lengths): growing a vector of tens of millions of samples
    // copies it and holds both copies at once. A quarter more for estimates
    // that fall short: reserved memory that is never touched costs no RAM.
    // (Not so for the hash sets, whose every page is touched; a shard that
    // outgrows its reserve rehashes alone, a sixteenth of the whole.)
    let announced: usize = opts
        .files
        .iter()
        .filter_map(|f| crate::ingest::row_count_hint(f))
        .sum();
    let mut store = match &opts.sample_store {
        // Groups of devices of about a part's samples, as far as the files
        // announce their rows; one open file each, so not past a number
        // every system allows a process.
        Some(o) => Some(SampleStore::new(
            &o.dir,
            vintages.sets.len(),
            announced
                .div_ceil(o.part_samples.max(1))
                .clamp(1, MAX_DEVICE_GROUPS),
        )?),
        None => None,
    };
    let reserve = if store.is_some() {
        STORE_FLUSH_SAMPLES + STORE_FLUSH_SAMPLES / 4
    } else {
        announced + announced / 4
    };
    run.acc.samples.reserve(reserve);
    run.acc.positions.reserve(reserve);
    for v in &mut run.acc.places {
        v.units.reserve(reserve);
        v.kinds.reserve(reserve);
    }
    // Room for every id read, or for the ids that repeat.
    let (id_shard_count, id_shard_rows) =
        id_shards(run.repeated.as_ref().map_or(announced, HashSet::len));
    run.seen_ids = (0..id_shard_count)
        .map(|_| {
            HashSet::with_capacity_and_hasher(id_shard_rows, foldhash::fast::FixedState::default())
        })
        .collect();
    // A chunk is checked and accounted for while the next is placed: one
    // chunk is held between reads, across files.
    let mut held: Option<Held> = None;
    let mut after_step = |run: &mut Run, store: &mut Option<SampleStore>| -> Result<()> {
        if let Some(e) = run.acc.failed.take() {
            return Err(e);
        }
        if let Some(store) = store
            && run.acc.samples.len() >= STORE_FLUSH_SAMPLES
        {
            run.acc.flush_to(store)?;
        }
        progress(run.acc.counts.read);
        Ok(())
    };
    for (file_no, path) in opts.files.iter().enumerate() {
        #[allow(clippy::cast_possible_truncation, reason = "file counts fit u32")]
        let file = file_no as u32;
        read_pipelined(
            path,
            &opts.columns,
            None,
            &mut warnings,
            &mut |mut chunk| {
                // CSV rows are typed here, off the reader's thread; Parquet
                // rows are read where the reader decoded them.
                if let Chunk::Rows(rows) = &mut chunk {
                    let started = std::time::Instant::now();
                    rows.par_iter_mut()
                        .for_each(crate::schema::RawRow::type_coordinates);
                    let typing = started.elapsed();
                    run.place += typing;
                    run.steps += typing;
                }
                let mut before = held.take();
                let placed = run.step(
                    Some(&chunk),
                    before
                        .as_mut()
                        .map(|h| (h.file, &h.chunk, h.placed.as_mut_slice())),
                    vintages,
                    opts,
                );
                held = Some(Held {
                    file,
                    chunk,
                    placed: placed.unwrap_or_default(),
                });
                after_step(&mut run, &mut store)?;
                // The checked chunk's row records go back to the reader.
                Ok(before.map(|h| h.chunk))
            },
        )?;
    }
    if let Some(mut h) = held.take() {
        run.step(
            None,
            Some((h.file, &h.chunk, h.placed.as_mut_slice())),
            vintages,
            opts,
        );
        after_step(&mut run, &mut store)?;
    }
    if let Some(store) = &mut store {
        run.acc.flush_to(store)?;
        store.finish_writes()?;
    }
    let Run {
        acc,
        device_ix,
        place,
        check,
        account,
        learn,
        steps,
        ..
    } = run;
    let read = started.elapsed().saturating_sub(steps);
    let Accounts {
        samples,
        positions,
        mut counts,
        places,
        carriers,
        span,
        ..
    } = acc;

    let window = match (opts.from, opts.to, span) {
        (Some(a), Some(b), _) => Some((a, b)),
        (Some(a), None, s) => Some((a, s.map_or(a, |s| s.1.max(a)))),
        (None, Some(b), s) => Some((s.map_or(b, |s| s.0.min(b)), b)),
        (None, None, s) => s,
    };
    // Samples outside given bounds were dropped while accounting; the
    // data's own span bounds the rest.
    debug_assert!(
        window
            .is_none_or(|(from, to)| samples.iter().all(|s| s.month() >= from && s.month() <= to)),
        "every sample lies in the window"
    );
    counts.accepted = samples.len() as u64 + store.as_ref().map_or(0, SampleStore::len);
    Ok(Ingested {
        samples,
        positions,
        carriers,
        devices: device_ix.iter().map(HashMap::len).sum(),
        counts,
        window,
        files: opts.files.clone(),
        warnings,
        places,
        timings: timings
            .into_iter()
            .chain(
                [
                    ("read", read, false),
                    // A chunk is placed (and the cells met learned) beside
                    // the checks of the one before: these four overlap; the
                    // line after them is their wall.
                    ("H3, assign units", place, true),
                    ("learn cells", learn, true),
                    ("check, duplicates", check, true),
                    ("accounting", account, true),
                    ("place, check, account", steps, false),
                ]
                .map(|(stage, wall, beside)| crate::stages::PartTime {
                    stage,
                    wall,
                    beside,
                }),
            )
            .collect(),
        store,
    })
}

/// [`read_chunks`] on its own thread, a few chunks ahead of `on_chunk` on
/// this one: reading (CSV parsing above all, which is sequential; Parquet
/// decoding) overlaps with checking and placing the chunk before, and at
/// most `AHEAD` + 2 chunks are in memory, besides any `on_chunk` keeps (it
/// returns a chunk to recycle its row records). Warnings are the reader's,
/// in order.
pub(crate) fn read_pipelined(
    path: &std::path::Path,
    columns: &ColumnMap,
    only: Option<Field>,
    warnings: &mut Vec<String>,
    on_chunk: &mut dyn FnMut(Chunk) -> Result<Option<Chunk>>,
) -> Result<()> {
    const AHEAD: usize = 2;
    let (tx, rx) = std::sync::mpsc::sync_channel(AHEAD);
    // Row records go back to the reader once checked, to be refilled: no
    // allocation and no free per row, across threads.
    let (spare_tx, spare_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut warnings = Vec::new();
            let read = read_field_chunks(
                path,
                columns,
                only,
                &mut warnings,
                &mut || spare_rx.try_recv().unwrap_or_default(),
                &mut |chunk| {
                    // A closed channel: the consumer failed; stop reading. Its
                    // error is the one reported, never this one.
                    tx.send(chunk)
                        .map_err(|_| crate::Error::Config("reading stopped".to_owned()))
                },
            );
            (read, warnings)
        });
        let mut consumed = Ok(());
        for chunk in &rx {
            match on_chunk(chunk) {
                // The reader may have finished: then the rows are dropped here.
                Ok(Some(Chunk::Rows(rows))) => {
                    let _ = spare_tx.send(rows);
                }
                Ok(_) => {}
                Err(e) => {
                    consumed = Err(e);
                    break;
                }
            }
        }
        drop(rx);
        let (read, reader_warnings) = match reader.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        warnings.extend(reader_warnings);
        consumed.and(read)
    })
}

/// Plausibility flags of a sample.
pub mod flags {
    /// Location accuracy worse than the limit.
    pub const LOW_ACCURACY: u8 = 1;
    /// Reached from the device's previous test, and left for its next, faster than a vehicle.
    pub const IMPLAUSIBLE_MOVEMENT: u8 = 2;
    /// Download above what the network type can carry.
    pub const IMPLAUSIBLE_SPEED: u8 = 4;
    /// Beyond the per-device cap of its H3 cell and day.
    pub const OVER_DEVICE_CAP: u8 = 8;
}

/// The plausibility rules (each 0 or `None` turns it off).
#[derive(Debug, Clone, PartialEq)]
pub struct Plausibility {
    /// Worst location accuracy kept, metres (when the column exists).
    pub max_accuracy_m: f64,
    /// Fastest believable movement between a device's tests, km/h.
    pub max_movement_kmh: f64,
    /// Whether downloads above a network type's peak are flagged.
    pub network_speed_limits: bool,
    /// Tests kept per device, H3 cell and local day.
    pub device_cap: u32,
}

impl Default for Plausibility {
    fn default() -> Self {
        Self {
            max_accuracy_m: 2000.0,
            max_movement_kmh: 300.0,
            network_speed_limits: true,
            device_cap: 2,
        }
    }
}

/// The fastest download (Mbps) a network type can carry: EDGE's 0.47, DC-HSPA+'s 42,
/// LTE-Advanced's 1 000 (category 16); 5G and unknown are left to the 10 000 Mbps check.
#[must_use]
pub fn network_peak_mbps(n: Network) -> Option<f64> {
    match n {
        Network::G2 => Some(0.5),
        Network::G3 => Some(42.0),
        Network::G4 => Some(1000.0),
        _ => None,
    }
}

/// Counts of flagged samples per rule.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FlagCounts {
    /// Location accuracy worse than the limit.
    pub low_accuracy: u64,
    /// Faster than a vehicle between tests.
    pub implausible_movement: u64,
    /// Faster than the network type allows.
    pub implausible_speed: u64,
    /// Beyond the per-device cap.
    pub over_device_cap: u64,
    /// Samples with at least one flag.
    pub flagged: u64,
}

impl FlagCounts {
    /// Adds the counts of another part of the samples.
    pub const fn add(&mut self, other: &Self) {
        self.low_accuracy += other.low_accuracy;
        self.implausible_movement += other.implausible_movement;
        self.implausible_speed += other.implausible_speed;
        self.over_device_cap += other.over_device_cap;
        self.flagged += other.flagged;
    }
}

/// A sample's content, time first, as a sort key: ties between a device's
/// tests break on it, and only samples equal in every field that reaches an
/// output fall back to input order, where the choice cannot change an output.
fn content_key(s: &Sample, p: Position) -> impl Ord + use<> {
    (
        (
            s.time,
            p.lat.to_bits(),
            p.lon.to_bits(),
            s.download.to_bits(),
        ),
        (s.upload.0.to_bits(), s.latency.0.to_bits()),
        // The flags set before the sort stand for the accuracy (not held);
        // whether a sample was snapped follows from its position and time.
        (u64::from(s.cell), s.carrier, s.network, s.flags),
    )
}

/// Flags implausible samples (see [`flags`]); the device cap keeps a device's
/// first tests in time, counting only tests no other rule flagged. Returns the
/// counts per rule. [`flags::LOW_ACCURACY`] is kept as reading set it
/// ([`ingest`]): the accuracy is not held. `positions` are the samples'
/// own, in the same order.
///
/// # Panics
/// If `positions` and `samples` differ in length.
pub fn apply_plausibility(
    samples: &mut [Sample],
    positions: &[Position],
    rules: &Plausibility,
) -> FlagCounts {
    let groups = samples.len().div_ceil(DEVICE_GROUP_SAMPLES);
    apply_plausibility_in_groups(samples, positions, rules, groups)
}

/// [`apply_plausibility`], the devices taken in `groups` groups.
fn apply_plausibility_in_groups(
    samples: &mut [Sample],
    positions: &[Position],
    rules: &Plausibility,
    groups: usize,
) -> FlagCounts {
    assert_eq!(
        samples.len(),
        positions.len(),
        "one position for each sample"
    );
    samples.par_iter_mut().for_each(|s| {
        s.flags &= flags::LOW_ACCURACY;
        if rules.network_speed_limits
            && network_peak_mbps(s.network).is_some_and(|p| s.download > p)
        {
            s.flags |= flags::IMPLAUSIBLE_SPEED;
        }
    });
    if rules.max_movement_kmh <= 0.0 && rules.device_cap == 0 {
        return count_flags(samples);
    }
    flag_devices(samples, positions, rules, groups);
    count_flags(samples)
}

/// Samples whose plausibility keys are sorted at once, at most: 192 MiB of
/// 12-byte keys. Past this the devices go in groups, so that the keys of
/// 100 M samples (1 GiB) do not sit on top of the samples.
const DEVICE_GROUP_SAMPLES: usize = 16 << 20;

/// The movement and cap rules, the devices taken in `groups` groups (by
/// their number modulo `groups`): a device's flags depend on its own tests
/// only, so the groups give the flags one group gives.
fn flag_devices(
    samples: &mut [Sample],
    positions: &[Position],
    rules: &Plausibility,
    groups: usize,
) {
    // Both rules read each device's tests in time order; tests of one device
    // at the same second (rare) in content order, then input order, so that
    // which of them a rule flags does not depend on input order. One sort of
    // keys (device, time, index) serves both: 12 bytes when the times span
    // under 136 years, as they always do in practice, else 16. The keys are
    // the stage's memory beside the samples.
    #[allow(clippy::cast_possible_truncation, reason = "groups of samples fit u32")]
    let groups = groups.max(1) as u32;
    // Once for every group of devices: a pass over every position.
    let reach_m = samples_reach_m(positions);
    let span = samples
        .par_iter()
        .map(|s| (s.time, s.time))
        .reduce(|| (i64::MAX, i64::MIN), |a, b| (a.0.min(b.0), a.1.max(b.1)));
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "sample counts fit u32; times after the first fit u32 here"
    )]
    if let Some(first) = (span.1.checked_sub(span.0))
        .filter(|&d| d <= i64::from(u32::MAX))
        .map(|_| span.0)
    {
        for g in 0..groups {
            let order = group_keys(samples, groups, g, |i, s| {
                [s.device, (s.time - first) as u32, i as u32]
            });
            flag_in_device_order(samples, (positions, reach_m), rules, order, first);
        }
    } else {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "sample counts fit u32; the time's sign bit is flipped to sort as unsigned"
        )]
        for g in 0..groups {
            let order = group_keys(samples, groups, g, |i, s| {
                let time = (s.time as u64) ^ (1 << 63);
                (u128::from(s.device) << 96) | (u128::from(time) << 32) | (i as u128 & 0xffff_ffff)
            });
            flag_in_device_order(samples, (positions, reach_m), rules, order, 0);
        }
    }
}

/// The keys of the samples of device group `g` of `groups`. One group is
/// collected in place; several go through rayon's pieces (a group's keys
/// held twice while joined, a fraction of all).
fn group_keys<K: Send>(
    samples: &[Sample],
    groups: u32,
    g: u32,
    key: impl Fn(usize, &Sample) -> K + Sync + Send,
) -> Vec<K> {
    if groups == 1 {
        samples
            .par_iter()
            .enumerate()
            .map(|(i, s)| key(i, s))
            .collect()
    } else {
        samples
            .par_iter()
            .enumerate()
            .filter(|(_, s)| s.device % groups == g)
            .map(|(i, s)| key(i, s))
            .collect()
    }
}

/// A sample's place in the order of devices and times: (device, time,
/// index), packed so that the packing's order is that one.
trait DeviceTimeKey: Ord + Copy + Send + Sync {
    fn device(self) -> u32;
    /// The sample's time, from the order's base time.
    fn time(self, base: i64) -> i64;
    fn index(self) -> usize;
}

/// [device, seconds after the base, index].
impl DeviceTimeKey for [u32; 3] {
    fn device(self) -> u32 {
        self[0]
    }
    fn time(self, base: i64) -> i64 {
        base + i64::from(self[1])
    }
    fn index(self) -> usize {
        self[2] as usize
    }
}

/// device << 96 | time with its sign bit flipped << 32 | index; base 0.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "the key's bits"
)]
impl DeviceTimeKey for u128 {
    fn device(self) -> u32 {
        (self >> 96) as u32
    }
    fn time(self, base: i64) -> i64 {
        base + (((self >> 32) as u64) ^ (1 << 63)) as i64
    }
    fn index(self) -> usize {
        self as u32 as usize
    }
}

/// The movement and cap rules of [`apply_plausibility`], over the samples'
/// keys in any order (sorted here); `reach_m` bounds the distance between
/// any two positions ([`samples_reach_m`]).
fn flag_in_device_order<K: DeviceTimeKey>(
    samples: &mut [Sample],
    (positions, reach_m): (&[Position], f64),
    rules: &Plausibility,
    mut order: Vec<K>,
    base: i64,
) {
    order.par_sort_unstable();
    let index = K::index;
    let device = K::device;
    let day =
        |k: K| (k.time(base) + i64::from(crate::schema::LOCAL_OFFSET_SECONDS)).div_euclid(86_400);
    // Devices are independent: every pass below runs over their runs in
    // parallel, and a flag is set after the pass that decides it.
    order
        .par_chunk_by_mut(|&a, &b| a.device() == b.device() && a.time(base) == b.time(base))
        .filter(|run| run.len() > 1)
        .for_each(|run| {
            run.sort_by_key(|&k| {
                let i = index(k);
                (content_key(&samples[i], positions[i]), i)
            });
        });
    if rules.max_movement_kmh > 0.0 {
        // A test is a jump when the legs from its device's previous and to
        // its next test are both too fast. A genuine trip has one fast leg
        // at most; a first or last test with one fast leg looks exactly like
        // a trip, so it is kept.
        let v = rules.max_movement_kmh;
        #[allow(clippy::cast_precision_loss, reason = "seconds fit f64")]
        let hours = |a: K, b: K| ((b.time(base) - a.time(base)).abs().max(1)) as f64 / 3600.0;
        // No two samples are farther apart than the bound of their box's
        // span: a leg whose time alone keeps it under the speed needs
        // neither position (most legs, days apart). Positions lie in input
        // order, so each one read here, in device order, is a cache miss.
        let reach_km = reach_m / 1000.0;
        let fast = |a: K, b: K| {
            let h = hours(a, b);
            if reach_km / h <= v {
                return false;
            }
            let (p, q) = (positions[index(a)], positions[index(b)]);
            let km = crate::geodesy::haversine_m(p.lon, p.lat, q.lon, q.lat) / 1000.0;
            km / h > v
        };
        let fast = &fast;
        let jumps: Vec<usize> = order
            .par_chunk_by(|&a, &b| device(a) == device(b))
            .flat_map_iter(|g| {
                // Each leg judged once: a test jumps when the leg before
                // it (`before`) and the leg after it are both fast.
                let mut before = false;
                g.windows(2).filter_map(move |w| {
                    let after = fast(w[0], w[1]);
                    let jump = before && after;
                    before = after;
                    jump.then(|| index(w[0]))
                })
            })
            .collect();
        for i in jumps {
            samples[i].flags |= flags::IMPLAUSIBLE_MOVEMENT;
        }
    }
    if rules.device_cap > 0 {
        // Per device, H3 cell and local day, the first tests in that order,
        // counting only tests no other rule flagged. A device's tests of one
        // day are a run of its time order; within it, sorting (cell,
        // position) puts each cell's tests together, still in order.
        let cap = rules.device_cap as usize;
        let over: Vec<usize> = order
            .par_chunk_by(|&a, &b| device(a) == device(b) && day(a) == day(b))
            .filter(|g| g.len() > cap)
            .flat_map_iter(|g| {
                let unflagged: Vec<usize> = g
                    .iter()
                    .map(|&k| index(k))
                    .filter(|&i| samples[i].flags == 0)
                    .collect();
                let mut day_tests: Vec<(u64, usize)> = unflagged
                    .iter()
                    .enumerate()
                    .map(|(pos, &i)| (u64::from(samples[i].cell), pos))
                    .collect();
                day_tests.sort_unstable();
                let mut over = Vec::new();
                for cell in day_tests.chunk_by(|a, b| a.0 == b.0) {
                    over.extend(cell.iter().skip(cap).map(|&(_, pos)| unflagged[pos]));
                }
                over
            })
            .collect();
        for i in over {
            samples[i].flags |= flags::OVER_DEVICE_CAP;
        }
    }
}

/// An upper bound (metres) of the distance between any two of the
/// positions ([`crate::geodesy::haversine_bound_m`] of their box).
fn samples_reach_m(positions: &[Position]) -> f64 {
    const EMPTY: (f64, f64, f64, f64) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    let widen = |a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)| {
        (a.0.min(b.0), a.1.max(b.1), a.2.min(b.2), a.3.max(b.3))
    };
    let (lat_lo, lat_hi, lon_lo, lon_hi) = positions
        .par_iter()
        .map(|p| (p.lat, p.lat, p.lon, p.lon))
        .reduce(|| EMPTY, widen);
    // A position that is not a number (never one of an accepted sample)
    // is left out of the box, harmlessly: no leg from it is fast, with or
    // without the bound.
    crate::geodesy::haversine_bound_m((lat_hi - lat_lo).max(0.0), (lon_hi - lon_lo).max(0.0))
}

/// Counts of flagged samples per rule.
fn count_flags(samples: &[Sample]) -> FlagCounts {
    let mut c = FlagCounts::default();
    for s in samples.iter() {
        c.low_accuracy += u64::from(s.flags & flags::LOW_ACCURACY != 0);
        c.implausible_movement += u64::from(s.flags & flags::IMPLAUSIBLE_MOVEMENT != 0);
        c.implausible_speed += u64::from(s.flags & flags::IMPLAUSIBLE_SPEED != 0);
        c.over_device_cap += u64::from(s.flags & flags::OVER_DEVICE_CAP != 0);
        c.flagged += u64::from(s.flags != 0);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_id_shards_fill_their_tables_without_doubling() {
        for rows in [0, 1, 1_000, 100_000, 1_003_345, 10_033_450, 100_333_412] {
            let (n, per) = id_shards(rows);
            assert!((16..=64).contains(&n));
            assert!(n * per >= rows, "{rows}: {n} shards of {per}");
            let mut set: HashSet<u128> =
                HashSet::with_capacity_and_hasher(per, foldhash::fast::FixedState::default());
            let room = set.capacity();
            // Filling a shard to its reserve must not grow its table.
            for i in 0..per as u128 {
                set.insert(i);
            }
            assert_eq!(
                set.capacity(),
                room,
                "{rows} rows: a shard outgrew its table"
            );
        }
        // 10 M rows: fewer buckets than 16 shards of 2^20.
        let (n, per) = id_shards(10_033_450);
        assert!(
            n * (per * 8 / 7).next_power_of_two() < 16 << 20,
            "{n} × {per}"
        );
        // Digests spread evenly (within 2 %) over 23 shards.
        let mut counts = vec![0usize; 23];
        for i in 0..230_000u64 {
            counts[id_shard(xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes()), 23)] += 1;
        }
        assert!(
            counts.iter().all(|&c| c.abs_diff(10_000) < 200),
            "{counts:?}"
        );
    }

    #[test]
    fn devices_are_told_apart_by_their_shard_and_96_bits_of_their_digest() {
        // Every bit the shard or the key keeps tells two digests apart;
        // bits 4–31 are the only ones dropped.
        let d: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        let told = |a: u128, b: u128| (shard(a), device_key(a)) != (shard(b), device_key(b));
        for bit in 0..128 {
            let kept = !(4..32).contains(&bit);
            assert_eq!(told(d, d ^ (1 << bit)), kept, "bit {bit}");
        }
        // 300 000 device ids as the reader digests them: as many devices
        // by (shard, key) as by the whole digest.
        let digests: std::collections::HashSet<u128> = (0..300_000)
            .map(|i| xxhash_rust::xxh3::xxh3_128(format!("device-{i}").as_bytes()))
            .collect();
        let keys: std::collections::HashSet<(usize, DeviceKey)> =
            digests.iter().map(|&d| (shard(d), device_key(d))).collect();
        assert_eq!(digests.len(), 300_000);
        assert_eq!(keys.len(), 300_000);
    }

    /// Takes two rejected rows, then fails as a full disk would.
    struct FullAfterTwo(Vec<Reject>);

    impl RejectSink for FullAfterTwo {
        fn reject(
            &mut self,
            file: u32,
            line: u64,
            reason: RejectReason,
            test_id: &str,
        ) -> Result<()> {
            if self.0.len() == 2 {
                return Err(crate::Error::Config("disk full".to_owned()));
            }
            self.0.reject(file, line, reason, test_id)
        }
    }

    #[test]
    fn rejected_rows_go_to_the_sink_in_order_and_its_failure_stops_reading() {
        let dir = tempfile::tempdir().expect("temp dir");
        let csv = dir.path().join("s.csv");
        let mut text =
            String::from("test_id,timestamp,lat,lon,carrier,network,download_mbps,device_id\n");
        // In Bắc Kạn town; every third row's time is unreadable, every
        // seventh repeats the row before's id.
        for i in 0..100 {
            let id = if i % 7 == 6 { i - 1 } else { i };
            let time = if i % 3 == 2 {
                "yesterday"
            } else {
                "2025-06-10T08:00:00Z"
            };
            text.push_str(&format!(
                "t{id},{time},22.1419,105.8499,Viettel,4G,20,d{i}\n"
            ));
        }
        std::fs::write(&csv, text).expect("write");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/vn_default");
        let boundaries = crate::boundaries::Boundaries::load(
            &root.join("communes.geojson"),
            crate::boundaries::Levels::default(),
        )
        .expect("default boundaries");
        let vintages = Vintages::single(boundaries, root.join("communes.geojson"));
        let opts = IngestOptions {
            files: vec![csv],
            columns: ColumnMap::default(),
            from: None,
            to: None,
            snap_m: 0.0,
            resolution: h3o::Resolution::Eight,
            carriers: CarrierTable::vietnam(),
            fast_placement: true,
            spill_dir: None,
            sample_store: None,
        };
        let rules = Plausibility::default();
        // The oracle: the rows' own rule, in line order (header = line 1).
        let expected: Vec<(u64, RejectReason)> = (0..100u64)
            .filter_map(|i| {
                let line = i + 2;
                if i % 3 == 2 {
                    Some((line, RejectReason::BadTimestamp))
                } else if i % 7 == 6 && (i - 1) % 3 != 2 {
                    Some((line, RejectReason::DuplicateTestId))
                } else {
                    None
                }
            })
            .collect();
        let mut kept: Vec<Reject> = Vec::new();
        let ingested = ingest(&vintages, &opts, &rules, &mut kept, &mut |_| {}).expect("ingest");
        let got: Vec<(u64, RejectReason)> = kept.iter().map(|r| (r.line, r.reason)).collect();
        assert_eq!(got, expected);
        assert_eq!(ingested.counts.rejected.total(), expected.len() as u64);
        let mut full = FullAfterTwo(Vec::new());
        let e = ingest(&vintages, &opts, &rules, &mut full, &mut |_| {}).expect_err("stops");
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(full.0.len(), 2);
    }

    /// A sample and its position.
    fn sample(device: u32, time: i64, lon: f64) -> (Sample, Position) {
        let (lat, resolution) = (21.05, h3o::Resolution::Eight);
        let s = Sample {
            time,
            download: 10.0,
            upload: Maybe::NONE,
            latency: Maybe::NONE,
            cell: h3o::LatLng::new(lat, lon)
                .expect("valid")
                .to_cell(resolution),
            device,
            carrier: 0,
            network: Network::G4,
            flags: 0,
        };
        (s, Position { lon, lat })
    }

    /// Samples and their positions apart, as ingestion returns them.
    fn apart(v: impl IntoIterator<Item = (Sample, Position)>) -> (Vec<Sample>, Vec<Position>) {
        v.into_iter().unzip()
    }

    fn jumps(v: Vec<(Sample, Position)>) -> Vec<usize> {
        let rules = Plausibility {
            device_cap: 0,
            ..Plausibility::default()
        };
        let (mut s, p) = apart(v);
        apply_plausibility(&mut s, &p, &rules);
        s.iter()
            .enumerate()
            .filter(|(_, x)| x.flags & flags::IMPLAUSIBLE_MOVEMENT != 0)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn movement_flags_jumps_not_trips() {
        // 0.1° of longitude at 21° N ≈ 10.4 km; 60 s apart ≈ 620 km/h.
        let h = 3600;
        // A spike in the middle.
        assert_eq!(
            jumps(vec![
                sample(1, 0, 105.0),
                sample(1, 60, 105.1),
                sample(1, 120, 105.0)
            ]),
            [1]
        );
        // A genuine trip: one fast leg (a flight), then steady: nothing flagged.
        assert_eq!(
            jumps(vec![
                sample(1, 0, 105.0),
                sample(1, 60, 105.1),
                sample(1, h, 105.1)
            ]),
            Vec::<usize>::new()
        );
        // A last test far away looks like the start of a trip: kept.
        assert_eq!(
            jumps(vec![
                sample(1, 0, 105.0),
                sample(1, h, 105.01),
                sample(1, h + 60, 105.2)
            ]),
            Vec::<usize>::new()
        );
        // Two spikes in a row are each reached and left too fast.
        assert_eq!(
            jumps(vec![
                sample(1, 0, 105.0),
                sample(1, 60, 105.1),
                sample(1, 120, 104.9),
                sample(1, 180, 105.0)
            ]),
            [1, 2]
        );
        // Different devices never compare.
        assert_eq!(
            jumps(vec![
                sample(1, 0, 105.0),
                sample(2, 60, 105.1),
                sample(1, 120, 105.0)
            ]),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn the_cap_counts_only_unflagged_tests_first_in_time() {
        let (mut s, p) = apart((0..4).map(|i| sample(7, i * 60, 105.0)));
        // As reading flags an accuracy of 9 km.
        s[0].flags = flags::LOW_ACCURACY;
        let rules = Plausibility {
            max_movement_kmh: 0.0,
            ..Plausibility::default()
        };
        let c = apply_plausibility(&mut s, &p, &rules);
        let f: Vec<u8> = s.iter().map(|x| x.flags).collect();
        assert_eq!(f, [flags::LOW_ACCURACY, 0, 0, flags::OVER_DEVICE_CAP]);
        assert_eq!((c.low_accuracy, c.over_device_cap, c.flagged), (1, 1, 2));
        // In reverse input order the same tests are kept: the earliest in time.
        let (mut r, p) = apart((0..4).rev().map(|i| sample(7, i * 60, 105.0)));
        r[3].flags = flags::LOW_ACCURACY;
        apply_plausibility(&mut r, &p, &rules);
        let f: Vec<u8> = r.iter().map(|x| x.flags).collect();
        assert_eq!(f, [flags::OVER_DEVICE_CAP, 0, 0, flags::LOW_ACCURACY]);
    }

    /// The rules as first written, group by group: the oracle of the single
    /// sorted pass in [`apply_plausibility`].
    fn plausibility_by_groups(
        samples: &mut [Sample],
        positions: &[Position],
        rules: &Plausibility,
    ) {
        for s in samples.iter_mut() {
            s.flags &= flags::LOW_ACCURACY;
            if network_peak_mbps(s.network).is_some_and(|p| s.download > p) {
                s.flags |= flags::IMPLAUSIBLE_SPEED;
            }
        }
        let by_content = |s: &[Sample], i: usize| (content_key(&s[i], positions[i]), i);
        let mut devices: Vec<u32> = samples.iter().map(|s| s.device).collect();
        devices.sort_unstable();
        devices.dedup();
        for d in devices {
            let mut tests: Vec<usize> = (0..samples.len())
                .filter(|&i| samples[i].device == d)
                .collect();
            tests.sort_by_key(|&i| by_content(samples, i));
            let too_fast = |a: usize, b: usize| {
                let (p, q) = (positions[a], positions[b]);
                let km = crate::geodesy::haversine_m(p.lon, p.lat, q.lon, q.lat) / 1000.0;
                let hours = ((samples[b].time - samples[a].time).abs().max(1)) as f64 / 3600.0;
                km / hours > rules.max_movement_kmh
            };
            let jumps: Vec<usize> = tests
                .windows(3)
                .filter(|w| too_fast(w[0], w[1]) && too_fast(w[1], w[2]))
                .map(|w| w[1])
                .collect();
            for i in jumps {
                samples[i].flags |= flags::IMPLAUSIBLE_MOVEMENT;
            }
        }
        let mut groups: std::collections::BTreeMap<(u32, i64, u64), Vec<usize>> =
            Default::default();
        for (i, s) in samples.iter().enumerate().filter(|(_, s)| s.flags == 0) {
            groups
                .entry((s.device, s.day(), u64::from(s.cell)))
                .or_default()
                .push(i);
        }
        for mut g in groups.into_values() {
            g.sort_by_key(|&i| by_content(samples, i));
            for &i in g.iter().skip(rules.device_cap as usize) {
                samples[i].flags |= flags::OVER_DEVICE_CAP;
            }
        }
    }

    #[test]
    fn one_sorted_pass_flags_what_the_rules_group_by_group_flag() {
        use rand::{RngExt as _, SeedableRng as _};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let mut flagged = [0usize; 5];
        for round in 0..40 {
            // Few devices, cells and seconds: many ties, days and cells shared.
            let n = rng.random_range(1..400);
            let mut v: Vec<(Sample, Position)> = (0..n)
                .map(|_| {
                    let (mut x, p) = sample(
                        rng.random_range(0..5),
                        rng.random_range(-90_000..[-70_000, 400_000][round % 2]),
                        105.0 + f64::from(rng.random_range(0..4)) * [0.3, 0.05][round % 2],
                    );
                    // As reading flags an accuracy beyond the limit, with
                    // other rules' flags left by an earlier run (cleared).
                    x.flags = if rng.random_bool(0.1) {
                        flags::LOW_ACCURACY
                    } else {
                        [0, flags::IMPLAUSIBLE_SPEED, flags::OVER_DEVICE_CAP]
                            [rng.random_range(0..3)]
                    };
                    x.download = f64::from(rng.random_range(0..3)) * 600.0;
                    x.time -= x.time % i64::from(rng.random_range(1..7_200));
                    (x, p)
                })
                .collect();
            // Every fourth round spans more than 136 years: the 16-byte keys.
            if round % 4 == 3 {
                v.push(sample(0, 5_000_000_000, 105.0));
                v.push(sample(0, 5_000_000_060, 105.1));
            }
            let (mut s, p) = apart(v);
            let rules = Plausibility {
                device_cap: rng.random_range(1..4),
                ..Plausibility::default()
            };
            let mut expected = s.clone();
            plausibility_by_groups(&mut expected, &p, &rules);
            let want: Vec<u8> = expected.iter().map(|x| x.flags).collect();
            // Devices in groups, as for more than DEVICE_GROUP_SAMPLES.
            let mut grouped = s.clone();
            let counts = apply_plausibility(&mut s, &p, &rules);
            let got: Vec<u8> = s.iter().map(|x| x.flags).collect();
            assert_eq!(got, want, "round {round}");
            let grouped_counts =
                apply_plausibility_in_groups(&mut grouped, &p, &rules, 2 + round % 3 * 2);
            assert_eq!(grouped_counts, counts, "round {round}, in groups");
            let got: Vec<u8> = grouped.iter().map(|x| x.flags).collect();
            assert_eq!(got, want, "round {round}, in groups");
            for f in want {
                flagged[usize::from(f.trailing_zeros().min(4) as u8)] += usize::from(f != 0);
            }
        }
        // Every rule fired in the rounds (by its lowest flag): the comparison tested each.
        assert!(flagged[..4].iter().all(|&k| k > 20), "{flagged:?}");
    }
}
