//! Accepted samples on disk, for runs larger than memory.
//!
//! With a store, ingestion writes each accepted sample, its position and its
//! places to unnamed files as it goes, instead of holding them: one file per
//! group of devices, so that the plausibility rules (which read one
//! device's tests) take a file at a time. Each append to a file is a run
//! stored block after block, a block being the H3 cell at [`BLOCK_RES`]
//! that holds a record's cell; the store keeps every run's blocks and the
//! units met in each block. The other stages read, for each part of the
//! samples they need together (a province's units, a group of H3 cells),
//! only the blocks that may hold it, keeping only that part. Memory then
//! holds one part, whatever the number of samples, and a stage reads the
//! store once or a few times (from the page cache, as a rule; parts of
//! whole provinces share their border blocks): without blocks it read
//! every file once per part, a cost growing as N² / part. Every
//! statistic downstream is independent of the order of its samples, so
//! the order of the store changes no output. The plausibility flags,
//! judged a group of devices at a time, go to a file of their own beside
//! the group's records, a byte a record written in one piece: writing
//! them back into the records, a system call each, cost seconds when a
//! national month flags millions.

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ingest_run::{Maybe, Position, Sample, SetPlaces};
use crate::schema::Network;
use crate::vintage::{NO_UNIT, PlaceKind};

/// Bytes of a record before its places: time, download, upload, latency,
/// cell, device, carrier, network, flags, longitude, latitude.
const BASE: usize = 64;
/// Where the H3 cell lies in a record.
const CELL_AT: usize = 32;
/// Where the flags byte lies in a record.
const FLAGS_AT: usize = 47;
/// Bytes of a record per boundary set: unit, kind, old unit.
const PER_SET: usize = 9;
/// Records read and decoded at a time by one thread.
const PIECE_RECORDS: usize = 1 << 14;

/// The resolution of a block (about 1 770 km²; about 300 of them hold
/// Vietnam): coarse enough that a run's blocks are few and long, fine
/// enough that a province or a group of map cells lies in a few of them.
pub const BLOCK_RES: h3o::Resolution = h3o::Resolution::Four;

/// The block of a cell given as its 64 bits: the index down to the digit
/// of [`BLOCK_RES`] (a number that orders blocks as their cells, not a
/// cell index). Cells under one cell of resolution `r` ≤ [`BLOCK_RES`] have
/// blocks that agree but in their last 3 × ([`BLOCK_RES`] − `r`) bits.
#[must_use]
pub const fn block_of(cell: u64) -> u64 {
    cell >> (3 * (15 - BLOCK_RES as u32))
}

/// One append to a file: its records, block after block.
#[derive(Debug)]
struct Run {
    /// The file's record number of the run's first record.
    first: u64,
    /// Each block of the run and its records, in block order.
    blocks: Vec<(u64, u32)>,
}

/// A sample's place in one set, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoredPlace {
    unit: u32,
    kind: PlaceKind,
    old_unit: u32,
}

/// Which stored samples a [`SampleStore::load`] keeps, in three steps.
#[derive(Debug, Clone, Copy)]
pub struct Filter<B, R, K> {
    /// From a block ([`block_of`]): whether it may hold records that
    /// `route` accepts. Records of other blocks are not read, so this must
    /// accept every block that holds one (see [`SampleStore::block_units`]).
    pub blocks: B,
    /// From a record's H3 cell (its 64 bits) and its finest unit in every
    /// set, before the record is decoded.
    pub route: R,
    /// From the decoded sample, of the records `route` accepts.
    pub keep: K,
    /// Whether the part holds the kept samples' positions (else
    /// [`Part::positions`] is empty): only the plausibility rules and the
    /// villages read them, and they are a fifth of a part.
    pub positions: bool,
}

/// A stored record's finest unit in every set, read without decoding the
/// record.
#[derive(Debug, Clone, Copy)]
pub struct StoredUnits<'a>(&'a [u8]);

impl StoredUnits<'_> {
    /// The record's local calendar month (as [`Sample::month`]; `None` for
    /// a record too short to hold a time, which the store never writes).
    #[must_use]
    pub fn month(self) -> Option<crate::month::Month> {
        let time = i64::from_le_bytes(self.0.get(0..8)?.try_into().ok()?);
        crate::month::Month::of_day(crate::ingest_run::local_day(time))
    }

    /// The finest unit in set `v` ([`NO_UNIT`]: none, or no such set).
    #[must_use]
    pub fn get(self, v: usize) -> u32 {
        let at = BASE + PER_SET * v;
        self.0.get(at..at + 4).map_or(NO_UNIT, |b| {
            u32::from_le_bytes(b.try_into().unwrap_or_default())
        })
    }
}

/// A filter keeping every sample.
#[must_use]
#[allow(
    clippy::type_complexity,
    reason = "the three closures are the struct's fields"
)]
pub fn everything() -> Filter<
    impl Fn(u64) -> bool + Sync,
    impl Fn(u64, StoredUnits<'_>) -> bool + Sync,
    impl Fn(&Sample) -> bool + Sync,
> {
    Filter {
        blocks: |_: u64| true,
        route: |_: u64, _: StoredUnits<'_>| true,
        keep: |_: &Sample| true,
        positions: true,
    }
}

/// The accepted samples of a run, on disk: in files by group of devices,
/// each file in runs (one per append) of records block after block.
#[derive(Debug)]
pub struct SampleStore {
    dir: PathBuf,
    /// The files, a group of devices each: a device's samples are in the
    /// file of its number modulo their count.
    files: Vec<std::fs::File>,
    /// Samples in each file.
    lens: Vec<u64>,
    /// Each file's runs, in the order appended.
    runs: Vec<Vec<Run>>,
    /// Per set, the (block, finest unit) pairs of the records stored
    /// ([`NO_UNIT`] for a record the set did not place).
    block_units: Vec<std::collections::HashSet<(u64, u32), foldhash::fast::FixedState>>,
    /// Each file's plausibility flags, once judged: a byte for each of the
    /// file's first records (as many as the file held then), in order; they
    /// take the place of the flags stored in those records.
    flags: Vec<Option<(std::fs::File, u64)>>,
    sets: usize,
    len: u64,
    /// Appends are written on a thread of their own, so that reading and
    /// checking go on while the system writes (it throttles a writer once
    /// gigabytes wait to reach the disk).
    writer: Option<Writer>,
}

/// The thread writing appended records, and the channel to it.
#[derive(Debug)]
struct Writer {
    blocks: std::sync::mpsc::SyncSender<(usize, Vec<u8>)>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

/// Reads `buf.len()` bytes at `offset`, not moving the file's position
/// (parts of the file are read on several threads at once).
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            match std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                offset + done as u64,
            ) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Records of one file read together: `len` from record `first`.
#[derive(Debug, Clone, Copy)]
struct Range {
    file: usize,
    first: u64,
    len: u64,
}

/// `ranges` (each at most a piece) in groups of at most a piece of
/// records, in order: what one thread reads and decodes at a time.
fn pieces_of(ranges: &[Range]) -> Vec<&[Range]> {
    let mut pieces = Vec::new();
    let (mut start, mut records) = (0, 0);
    for (i, r) in ranges.iter().enumerate() {
        if records + r.len > PIECE_RECORDS as u64 {
            pieces.push(&ranges[start..i]);
            (start, records) = (i, 0);
        }
        records += r.len;
    }
    if start < ranges.len() {
        pieces.push(&ranges[start..]);
    }
    pieces
}

/// Writes all of `buf` at `offset`.
fn write_all_at(file: &std::fs::File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            match std::os::windows::fs::FileExt::seek_write(
                file,
                &buf[done..],
                offset + done as u64,
            ) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Samples read back from a [`SampleStore`]: those a filter kept, file
/// after file, each in input order, with their places per set (indices
/// relative to the part).
#[derive(Debug, Default)]
pub struct Part {
    /// The samples.
    pub samples: Vec<Sample>,
    /// Their positions, if the filter asked for them.
    pub positions: Vec<Position>,
    /// Their places, per boundary set.
    pub places: Vec<SetPlaces>,
}

impl Part {
    /// An empty part with room for `n` samples placed in `sets` sets, and
    /// their positions if `positions`.
    fn with_capacity(sets: usize, n: usize, positions: bool) -> Self {
        Self {
            samples: Vec::with_capacity(n),
            positions: Vec::with_capacity(if positions { n } else { 0 }),
            places: (0..sets)
                .map(|_| SetPlaces {
                    units: Vec::with_capacity(n),
                    kinds: Vec::with_capacity(n),
                    unplaced: Vec::new(),
                })
                .collect(),
        }
    }

    /// Adds a stored sample, and its position if given.
    fn push(&mut self, s: Sample, p: Option<Position>, places: &[StoredPlace]) {
        let local = self.samples.len();
        for (set, place) in self.places.iter_mut().zip(places) {
            set.units.push(place.unit);
            set.kinds.push(place.kind);
            if place.unit == NO_UNIT {
                #[allow(clippy::cast_possible_truncation, reason = "parts fit u32")]
                set.unplaced.push((local as u32, place.old_unit));
            }
        }
        self.samples.push(s);
        self.positions.extend(p);
    }

    /// Adds the samples of a later part.
    fn append(&mut self, mut later: Self) {
        #[allow(clippy::cast_possible_truncation, reason = "parts fit u32")]
        let offset = self.samples.len() as u32;
        for (set, more) in self.places.iter_mut().zip(&mut later.places) {
            set.units.append(&mut more.units);
            set.kinds.append(&mut more.kinds);
            set.unplaced
                .extend(more.unplaced.iter().map(|&(i, old)| (i + offset, old)));
        }
        self.samples.append(&mut later.samples);
        self.positions.append(&mut later.positions);
    }
}

fn store_error(dir: &Path, source: std::io::Error) -> Error {
    Error::SampleStore {
        dir: dir.to_owned(),
        source,
    }
}

const fn network_code(n: Network) -> u8 {
    match n {
        Network::G2 => 0,
        Network::G3 => 1,
        Network::G4 => 2,
        Network::G5 => 3,
        Network::Wifi => 4,
        Network::Unknown => 5,
    }
}

const fn network_of(code: u8) -> Option<Network> {
    Some(match code {
        0 => Network::G2,
        1 => Network::G3,
        2 => Network::G4,
        3 => Network::G5,
        4 => Network::Wifi,
        5 => Network::Unknown,
        _ => return None,
    })
}

const fn kind_of(code: u8) -> Option<PlaceKind> {
    Some(match code {
        0 => PlaceKind::Inside,
        1 => PlaceKind::Snapped,
        2 => PlaceKind::NearestCentre,
        3 => PlaceKind::Unmapped,
        4 => PlaceKind::Outside,
        _ => return None,
    })
}

fn f64_at(r: &[u8], at: usize) -> f64 {
    f64::from_le_bytes(r[at..at + 8].try_into().unwrap_or_default())
}

fn u64_at(r: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(r[at..at + 8].try_into().unwrap_or_default())
}

fn u32_at(r: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(r[at..at + 4].try_into().unwrap_or_default())
}

impl SampleStore {
    /// An empty store in unnamed files of `dir` (removed by the system
    /// when the run ends, even if killed), one per group of devices, for
    /// samples placed in `sets` boundary sets.
    ///
    /// # Errors
    /// The file cannot be made.
    pub fn new(dir: &Path, sets: usize, device_groups: usize) -> Result<Self> {
        let files = (0..device_groups.max(1))
            .map(|_| tempfile::tempfile_in(dir).map_err(|e| store_error(dir, e)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            dir: dir.to_owned(),
            lens: vec![0; files.len()],
            runs: (0..files.len()).map(|_| Vec::new()).collect(),
            block_units: (0..sets)
                .map(|_| std::collections::HashSet::default())
                .collect(),
            flags: (0..files.len()).map(|_| None).collect(),
            files,
            sets,
            len: 0,
            writer: None,
        })
    }

    /// Bytes of one record.
    const fn record_len(&self) -> usize {
        BASE + PER_SET * self.sets
    }

    /// Bytes a sample takes on disk with `sets` boundary sets.
    #[must_use]
    pub const fn record_bytes(sets: usize) -> u64 {
        (BASE + PER_SET * sets) as u64
    }

    /// Samples stored.
    #[must_use]
    pub const fn len(&self) -> u64 {
        self.len
    }

    /// Whether no sample is stored.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The (block, finest unit) pairs of the samples stored, in set `v`
    /// ([`NO_UNIT`] for samples it did not place): which blocks a part of
    /// units must read.
    ///
    /// # Panics
    /// If the store has no set `v`.
    pub fn block_units(&self, v: usize) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.block_units[v].iter().copied()
    }

    /// Every block that holds samples, with their number, in block order.
    #[must_use]
    pub fn block_counts(&self) -> Vec<(u64, u64)> {
        let mut counts = std::collections::BTreeMap::new();
        for &(block, n) in self.runs.iter().flatten().flat_map(|r| &r.blocks) {
            *counts.entry(block).or_insert(0) += u64::from(n);
        }
        counts.into_iter().collect()
    }

    /// Appends samples with their positions and places (`places[v]` holds
    /// set v's places of exactly these samples, numbered from 0).
    ///
    /// # Errors
    /// The file cannot be written.
    ///
    /// # Panics
    /// If the lengths disagree.
    pub fn append(
        &mut self,
        samples: &[Sample],
        positions: &[Position],
        places: &[SetPlaces],
    ) -> Result<()> {
        assert_eq!(samples.len(), positions.len(), "a position per sample");
        assert_eq!(places.len(), self.sets, "places of every set");
        for p in places {
            assert_eq!(p.units.len(), samples.len(), "a place per sample");
        }
        let groups = self.files.len();
        // Each file's samples, in input order.
        let mut of_file: Vec<Vec<u32>> = vec![Vec::new(); groups];
        #[allow(clippy::cast_possible_truncation, reason = "appends fit u32")]
        for (i, s) in samples.iter().enumerate() {
            of_file[s.device as usize % groups].push(i as u32);
        }
        for (f, indices) in of_file.iter().enumerate() {
            self.write_records(f, indices, samples, positions, places)?;
        }
        self.len += samples.len() as u64;
        Ok(())
    }

    /// Encodes the samples numbered `indices` and sends them to file `f`,
    /// as a run of blocks: sorted by block, then by unit in the first set
    /// (so that each block's units come in runs, noted once each).
    fn write_records(
        &mut self,
        f: usize,
        indices: &[u32],
        samples: &[Sample],
        positions: &[Position],
        places: &[SetPlaces],
    ) -> Result<()> {
        if indices.is_empty() {
            return Ok(());
        }
        let first_unit = |i: usize| places.first().map_or(NO_UNIT, |p| p.units[i]);
        // A block is 31 bits of a cell's 64: block and unit in one key.
        let mut order: Vec<(u64, u32)> = indices
            .par_iter()
            .map(|&i| {
                let block = block_of(u64::from(samples[i as usize].cell));
                ((block << 32) | u64::from(first_unit(i as usize)), i)
            })
            .collect();
        order.par_sort_unstable();
        let mut blocks: Vec<(u64, u32)> = Vec::new();
        for (key, _) in &order {
            match blocks.last_mut() {
                Some((b, n)) if *b == key >> 32 => *n += 1,
                _ => blocks.push((key >> 32, 1)),
            }
        }
        for (v, seen) in self.block_units.iter_mut().enumerate() {
            let mut last = None;
            for &(key, i) in &order {
                let pair = (key >> 32, places[v].units[i as usize]);
                if last != Some(pair) {
                    seen.insert(pair);
                    last = Some(pair);
                }
            }
        }
        self.runs[f].push(Run {
            first: self.lens[f],
            blocks,
        });
        let indices: Vec<u32> = order.into_iter().map(|(_, i)| i).collect();
        let rec = self.record_len();
        // Encoded on both cores, a piece of samples each; the unplaced
        // samples' old units (few) looked up by binary search.
        let mut bytes = vec![0u8; rec * indices.len()];
        const PIECE: usize = 8192;
        bytes
            .par_chunks_mut(rec * PIECE)
            .zip(indices.par_chunks(PIECE))
            .for_each(|(out, indices)| {
                for (r, &i) in out.chunks_exact_mut(rec).zip(indices) {
                    let i = i as usize;
                    let (s, p) = (&samples[i], &positions[i]);
                    r[0..8].copy_from_slice(&s.time.to_le_bytes());
                    r[8..16].copy_from_slice(&s.download.to_le_bytes());
                    r[16..24].copy_from_slice(&s.upload.raw().to_le_bytes());
                    r[24..32].copy_from_slice(&s.latency.raw().to_le_bytes());
                    r[CELL_AT..CELL_AT + 8].copy_from_slice(&u64::from(s.cell).to_le_bytes());
                    r[40..44].copy_from_slice(&s.device.to_le_bytes());
                    r[44..46].copy_from_slice(&s.carrier.to_le_bytes());
                    r[46] = network_code(s.network);
                    r[FLAGS_AT] = s.flags;
                    r[48..56].copy_from_slice(&p.lon.to_le_bytes());
                    r[56..64].copy_from_slice(&p.lat.to_le_bytes());
                    for (v, set) in places.iter().enumerate() {
                        let at = BASE + PER_SET * v;
                        let unit = set.units[i];
                        #[allow(clippy::cast_possible_truncation, reason = "pieces fit u32")]
                        let old_unit = if unit == NO_UNIT {
                            set.unplaced
                                .binary_search_by_key(&(i as u32), |u| u.0)
                                .map_or(NO_UNIT, |k| set.unplaced[k].1)
                        } else {
                            NO_UNIT
                        };
                        r[at..at + 4].copy_from_slice(&unit.to_le_bytes());
                        r[at + 4] = set.kinds[i] as u8;
                        r[at + 5..at + 9].copy_from_slice(&old_unit.to_le_bytes());
                    }
                }
            });
        if self.writer.is_none() {
            let mut files = self
                .files
                .iter()
                .map(std::fs::File::try_clone)
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|e| store_error(&self.dir, e))?;
            let (blocks, received) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(2);
            let thread = std::thread::spawn(move || {
                for (f, block) in received {
                    files[f].write_all(&block)?;
                }
                Ok(())
            });
            self.writer = Some(Writer { blocks, thread });
        }
        if let Some(w) = &self.writer
            && w.blocks.send((f, bytes)).is_err()
        {
            // The thread stopped on an error: reported by `finish_writes`.
            return self.finish_writes();
        }
        self.lens[f] += indices.len() as u64;
        Ok(())
    }

    /// Waits for the appended records to be written: before the first
    /// [`SampleStore::load`] after appending.
    ///
    /// # Errors
    /// A write failed.
    pub fn finish_writes(&mut self) -> Result<()> {
        let Some(Writer { blocks, thread }) = self.writer.take() else {
            return Ok(());
        };
        drop(blocks);
        match thread.join() {
            Ok(written) => written.map_err(|e| store_error(&self.dir, e)),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Decodes a record's sample, with `flags` (`None`: not a record this
    /// store wrote).
    fn decode_sample(r: &[u8], flags: u8) -> Option<Sample> {
        Some(Sample {
            time: i64::from_le_bytes(r[0..8].try_into().ok()?),
            download: f64_at(r, 8),
            upload: Maybe::from_raw(f64_at(r, 16)),
            latency: Maybe::from_raw(f64_at(r, 24)),
            cell: h3o::CellIndex::try_from(u64_at(r, CELL_AT)).ok()?,
            device: u32_at(r, 40),
            carrier: u16::from_le_bytes(r[44..46].try_into().ok()?),
            network: network_of(r[46])?,
            flags,
        })
    }

    /// Decodes a record's position and places.
    fn decode_rest(&self, r: &[u8]) -> Option<(Position, smallvec::SmallVec<[StoredPlace; 2]>)> {
        let position = Position {
            lon: f64_at(r, 48),
            lat: f64_at(r, 56),
        };
        let mut places = smallvec::SmallVec::new();
        for v in 0..self.sets {
            let at = BASE + PER_SET * v;
            places.push(StoredPlace {
                unit: u32_at(r, at),
                kind: kind_of(r[at + 4])?,
                old_unit: u32_at(r, at + 5),
            });
        }
        Some((position, places))
    }

    fn corrupt(&self) -> Error {
        store_error(
            &self.dir,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a working file of samples was changed while the run read it",
            ),
        )
    }

    /// The samples that `route` (seeing only a record's H3 cell, as its
    /// 64 bits, and its finest unit in every set) and then `keep` (the
    /// decoded sample) accept, of the blocks `blocks` accepts, file after
    /// file, each in the order stored; `expected` samples are reserved for.
    /// Records of other blocks are not read, and a record `route` refuses
    /// is never decoded: most records of the store belong to other parts.
    ///
    /// # Errors
    /// The file cannot be read, or holds what this store did not write.
    ///
    /// # Panics
    /// If appended records may still be unwritten
    /// ([`SampleStore::finish_writes`]).
    pub fn load<B, R, K>(&self, filter: &Filter<B, R, K>, expected: usize) -> Result<Part>
    where
        B: Fn(u64) -> bool + Sync,
        R: Fn(u64, StoredUnits<'_>) -> bool + Sync,
        K: Fn(&Sample) -> bool + Sync,
    {
        self.load_files(0..self.files.len(), filter, expected)
    }

    /// The groups of devices the store's files hold.
    #[must_use]
    pub fn device_groups(&self) -> usize {
        self.files.len()
    }

    /// The samples of group of devices `g` ([`SampleStore::device_groups`]).
    ///
    /// # Errors
    /// As [`SampleStore::load`].
    pub fn load_device_group(&self, g: usize) -> Result<Part> {
        #[allow(clippy::cast_possible_truncation, reason = "a part fits memory")]
        let n = self.lens[g] as usize;
        self.load_files(g..g + 1, &everything(), n)
    }

    /// The samples of `files` that `filter` accepts, file after file.
    fn load_files<B, R, K>(
        &self,
        files: std::ops::Range<usize>,
        filter: &Filter<B, R, K>,
        expected: usize,
    ) -> Result<Part>
    where
        B: Fn(u64) -> bool + Sync,
        R: Fn(u64, StoredUnits<'_>) -> bool + Sync,
        K: Fn(&Sample) -> bool + Sync,
    {
        assert!(self.writer.is_none(), "appends finished before loading");
        let ranges = self.ranges(files, &filter.blocks);
        let stored: u64 = ranges.iter().map(|r| r.len).sum();
        let pieces = pieces_of(&ranges);
        let mut part = Part::with_capacity(self.sets, expected, filter.positions);
        // Pieces read and decoded on both cores, each into a part of its
        // own, a window of them at a time: their parts are held twice until
        // appended, a window's, not the whole part's.
        let window = 16 * rayon::current_num_threads();
        for chunk in pieces.chunks(window) {
            let decoded = self.decode_pieces(chunk, filter, expected, stored);
            for piece in decoded {
                part.append(piece?);
            }
        }
        Ok(part)
    }

    /// The ranges of records of `files` in the blocks `blocks` accepts,
    /// neighbours joined, each at most a piece long, in the order stored.
    fn ranges(&self, files: std::ops::Range<usize>, blocks: &impl Fn(u64) -> bool) -> Vec<Range> {
        let mut ranges: Vec<Range> = Vec::new();
        for f in files {
            for run in &self.runs[f] {
                let mut first = run.first;
                for &(block, n) in &run.blocks {
                    if blocks(block) {
                        match ranges.last_mut() {
                            Some(r) if r.file == f && r.first + r.len == first => {
                                r.len += u64::from(n)
                            }
                            _ => ranges.push(Range {
                                file: f,
                                first,
                                len: u64::from(n),
                            }),
                        }
                    }
                    first += u64::from(n);
                }
            }
        }
        let piece = PIECE_RECORDS as u64;
        ranges
            .into_iter()
            .flat_map(|r| {
                (0..r.len.div_ceil(piece)).map(move |k| Range {
                    file: r.file,
                    first: r.first + k * piece,
                    len: (r.len - k * piece).min(piece),
                })
            })
            .collect()
    }

    /// Reads and decodes `pieces` (ranges of records, at most a piece in
    /// all), keeping what `filter` accepts; `expected` of the `stored`
    /// samples read are reserved for.
    fn decode_pieces<B, R, K>(
        &self,
        pieces: &[&[Range]],
        filter: &Filter<B, R, K>,
        expected: usize,
        stored: u64,
    ) -> Vec<Result<Part>>
    where
        B: Sync,
        R: Fn(u64, StoredUnits<'_>) -> bool + Sync,
        K: Fn(&Sample) -> bool + Sync,
    {
        let rec = self.record_len();
        pieces
            .par_iter()
            .map_init(Vec::new, |buf: &mut Vec<u8>, piece| {
                #[allow(clippy::cast_possible_truncation, reason = "at most a piece")]
                let n = piece.iter().map(|r| r.len).sum::<u64>() as usize;
                buf.resize(n * rec, 0);
                // Each record's flags: judged where the file's are, else
                // its own.
                let mut flags = [0u8; PIECE_RECORDS];
                let mut at = 0;
                for r in *piece {
                    #[allow(clippy::cast_possible_truncation, reason = "at most a piece")]
                    let len = r.len as usize;
                    let bytes = &mut buf[at * rec..(at + len) * rec];
                    read_exact_at(&self.files[r.file], bytes, r.first * rec as u64)
                        .map_err(|e| store_error(&self.dir, e))?;
                    let judged = match &self.flags[r.file] {
                        #[allow(clippy::cast_possible_truncation, reason = "at most a piece")]
                        Some((file, covered)) if r.first < *covered => {
                            let k = (*covered - r.first).min(r.len) as usize;
                            read_exact_at(file, &mut flags[at..at + k], r.first)
                                .map_err(|e| store_error(&self.dir, e))?;
                            k
                        }
                        _ => 0,
                    };
                    for (flag, record) in flags[at + judged..at + len]
                        .iter_mut()
                        .zip(bytes.chunks_exact(rec).skip(judged))
                    {
                        *flag = record[FLAGS_AT];
                    }
                    at += len;
                }
                // The piece's share of the samples expected, a little more.
                #[allow(clippy::cast_possible_truncation, reason = "at most a piece")]
                let share = ((expected as u64 * n as u64) / stored.max(1)) as usize;
                let mut part = Part::with_capacity(
                    self.sets,
                    (share + share / 8 + 16).min(n),
                    filter.positions,
                );
                // The cell and units first, the sample only for the routed,
                // the rest only for the kept.
                for (r, &flags) in buf.chunks_exact(rec).zip(&flags[..n]) {
                    if !(filter.route)(u64_at(r, CELL_AT), StoredUnits(r)) {
                        continue;
                    }
                    let s = Self::decode_sample(r, flags).ok_or_else(|| self.corrupt())?;
                    if (filter.keep)(&s) {
                        let (p, places) = self.decode_rest(r).ok_or_else(|| self.corrupt())?;
                        part.push(s, filter.positions.then_some(p), &places);
                    }
                }
                Ok(part)
            })
            .collect()
    }

    /// Sets the flags of every sample of group of devices `g`, in the
    /// order of [`SampleStore::load_device_group`]; later loads read them
    /// in place of the flags appended.
    ///
    /// # Errors
    /// The file cannot be written.
    ///
    /// # Panics
    /// If `flags` is not a byte for each of the group's samples, or appended
    /// records may still be unwritten.
    pub fn set_group_flags(&mut self, g: usize, flags: &[u8]) -> Result<()> {
        assert!(self.writer.is_none(), "appends finished before flags");
        assert_eq!(flags.len() as u64, self.lens[g], "a flag per sample");
        let file = match self.flags[g].take() {
            Some((file, _)) => file,
            None => tempfile::tempfile_in(&self.dir).map_err(|e| store_error(&self.dir, e))?,
        };
        write_all_at(&file, flags, 0).map_err(|e| store_error(&self.dir, e))?;
        self.flags[g] = Some((file, self.lens[g]));
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::strategy::{Just, Strategy};
    use rand::{RngExt, SeedableRng};

    pub(crate) type Drawn = (Vec<Sample>, Vec<Position>, Vec<SetPlaces>, Vec<Vec<u32>>);

    /// Samples, positions, places in two sets and each place's old unit.
    pub(crate) fn random_samples(n: usize, seed: u64) -> Drawn {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut samples = Vec::new();
        let mut positions = Vec::new();
        let mut places = vec![SetPlaces::default(); 2];
        let mut olds = vec![Vec::new(); 2];
        for i in 0..n {
            let lat = rng.random_range(8.0..23.0);
            let lon = rng.random_range(102.0..110.0);
            samples.push(Sample {
                time: rng.random_range(1_600_000_000..1_800_000_000),
                download: f64::from(rng.random_range(0u32..100_000)) / 1000.0,
                upload: if rng.random_bool(0.3) {
                    Maybe::NONE
                } else {
                    Some(rng.random_range(0.0..50.0)).into()
                },
                latency: Some(f64::from(rng.random_range(1u32..400))).into(),
                cell: h3o::LatLng::new(lat, lon)
                    .expect("valid")
                    .to_cell(h3o::Resolution::Eight),
                device: rng.random_range(0..5_000),
                carrier: rng.random_range(0..4),
                network: [
                    Network::G2,
                    Network::G3,
                    Network::G4,
                    Network::G5,
                    Network::Unknown,
                ][rng.random_range(0..5)],
                flags: rng.random_range(0..4),
            });
            positions.push(Position { lon, lat });
            for (v, set) in places.iter_mut().enumerate() {
                let unplaced = rng.random_range(0..10) == 0;
                let place = crate::vintage::Place {
                    unit: if unplaced {
                        NO_UNIT
                    } else {
                        rng.random_range(0..700)
                    },
                    kind: if unplaced {
                        [PlaceKind::Unmapped, PlaceKind::Outside][v]
                    } else {
                        [
                            PlaceKind::Inside,
                            PlaceKind::Snapped,
                            PlaceKind::NearestCentre,
                        ][rng.random_range(0..3)]
                    },
                    snapped_m: 0.0,
                    old_unit: if unplaced {
                        rng.random_range(0..50)
                    } else {
                        NO_UNIT
                    },
                };
                set.push(i, &place);
                olds[v].push(place.old_unit);
            }
        }
        (samples, positions, places, olds)
    }

    fn same(a: &Sample, b: &Sample) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn a_folder_that_cannot_hold_the_samples_names_itself_and_the_way_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("no such folder");
        let message = SampleStore::new(&missing, 1, 2)
            .expect_err("no folder, no store")
            .to_string();
        assert!(message.contains("no such folder"), "{message}");
        assert!(message.contains("--samples-on-disk never"), "{message}");
    }

    #[test]
    fn a_filtered_load_returns_the_kept_samples_file_by_file_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = SampleStore::new(dir.path(), 2, 3).expect("store");
        // Appended in three pieces of unequal size, one past a piece.
        let drawn = random_samples(300_000, 7);
        let appends = [0..10, 10..PIECE_RECORDS + 5, PIECE_RECORDS + 5..300_000];
        for range in appends.clone() {
            append_range(&mut store, &drawn, range);
        }
        let (samples, positions, places, olds) = drawn;
        store.finish_writes().expect("written");
        assert_eq!(store.len(), 300_000);
        assert_eq!(store.device_groups(), 3);
        // Oracle: each sample's file is its device modulo 3; files are read
        // one after the other, each append's samples by block (the cell at
        // resolution 4), unit in the first set and input order.
        let file_of = |i: usize| samples[i].device as usize % 3;
        let mut counts = [0u64; 3];
        for i in 0..samples.len() {
            counts[file_of(i)] += 1;
        }
        let block_of_sample = |i: usize| block_of(u64::from(samples[i].cell));
        // A block is a cell at resolution 4: one block per parent, blocks in
        // the order of their parents.
        let mut pairs: Vec<(u64, u64)> = (0..samples.len())
            .map(|i| {
                let parent = samples[i]
                    .cell
                    .parent(h3o::Resolution::Four)
                    .expect("res 8");
                (block_of_sample(i), u64::from(parent))
            })
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
        let mut stored_order: Vec<usize> = Vec::new();
        for f in 0..3 {
            for range in appends.clone() {
                let mut of_file: Vec<usize> = range.filter(|&i| file_of(i) == f).collect();
                of_file.sort_by_key(|&i| (block_of_sample(i), places[0].units[i], i));
                stored_order.extend(of_file);
            }
        }
        // Every (block, unit) pair and every block's samples, noted.
        for (v, set) in places.iter().enumerate() {
            let mut want: Vec<(u64, u32)> = (0..samples.len())
                .map(|i| (block_of_sample(i), set.units[i]))
                .collect();
            want.sort_unstable();
            want.dedup();
            let mut got: Vec<(u64, u32)> = store.block_units(v).collect();
            got.sort_unstable();
            assert_eq!(got, want, "set {v}");
        }
        let mut want_counts = std::collections::BTreeMap::new();
        for i in 0..samples.len() {
            *want_counts.entry(block_of_sample(i)).or_insert(0u64) += 1;
        }
        assert!(want_counts.len() > 20);
        assert_eq!(
            store.block_counts(),
            want_counts.into_iter().collect::<Vec<_>>()
        );
        // Routed by the cell and both sets' units, as stored.
        let routed = |cell: u64, unit: [u32; 2]| {
            unit[0] % 2 == 1 && unit[1] % 5 != 2 && !cell.is_multiple_of(3)
        };
        let route = |cell: u64, units: StoredUnits<'_>| {
            // A set the store does not have is no unit, not a panic.
            assert_eq!(units.get(2), NO_UNIT);
            routed(cell, [units.get(0), units.get(1)])
        };
        let keep = |s: &Sample| s.device % 5 != 1;
        let filter = Filter {
            blocks: |_: u64| true,
            route,
            keep,
            positions: true,
        };
        let check = |part: &Part, expected: &[usize]| {
            assert_eq!(part.samples.len(), expected.len());
            for (k, &i) in expected.iter().enumerate() {
                assert!(same(&part.samples[k], &samples[i]), "sample {i}");
                assert_eq!(part.positions[k], positions[i]);
                for (got, want) in part.places.iter().zip(&places) {
                    assert_eq!(got.units[k], want.units[i]);
                    assert_eq!(got.kinds[k], want.kinds[i]);
                }
            }
            for v in 0..2 {
                let expected_unplaced: Vec<(u32, u32)> = expected
                    .iter()
                    .enumerate()
                    .filter(|&(_, &i)| places[v].units[i] == NO_UNIT)
                    .map(|(k, &i)| (k as u32, olds[v][i]))
                    .collect();
                assert!(!expected_unplaced.is_empty());
                assert_eq!(part.places[v].unplaced, expected_unplaced, "set {v}");
            }
        };
        let expected: Vec<usize> = stored_order
            .iter()
            .copied()
            .filter(|&i| {
                routed(
                    u64::from(samples[i].cell),
                    [places[0].units[i], places[1].units[i]],
                ) && keep(&samples[i])
            })
            .collect();
        assert!(expected.len() > 10_000);
        check(&store.load(&filter, 0).expect("load"), &expected);
        // Without positions: the same samples and places, no positions.
        let without_positions = store
            .load(
                &Filter {
                    positions: false,
                    ..filter
                },
                0,
            )
            .expect("load");
        assert!(without_positions.positions.is_empty());
        assert_eq!(without_positions.samples.len(), expected.len());
        for (k, &i) in expected.iter().enumerate() {
            assert!(
                same(&without_positions.samples[k], &samples[i]),
                "sample {i}"
            );
            assert_eq!(without_positions.places[1].units[k], places[1].units[i]);
        }
        // Some blocks only: their routed samples, and no record of another
        // block read (the route sees every record read).
        let some_blocks = |b: u64| b % 4 == 1;
        let (part, read) = load_counting(&store, some_blocks, route, keep, true);
        let in_blocks: Vec<usize> = stored_order
            .iter()
            .copied()
            .filter(|&i| some_blocks(block_of_sample(i)))
            .collect();
        assert_eq!(read, in_blocks.len());
        assert!(in_blocks.len() < samples.len() / 2 && !in_blocks.is_empty());
        let expected_in_blocks: Vec<usize> = expected
            .iter()
            .copied()
            .filter(|&i| some_blocks(block_of_sample(i)))
            .collect();
        check(&part, &expected_in_blocks);
        for g in 0..3 {
            let group: Vec<usize> = stored_order
                .iter()
                .copied()
                .filter(|&i| file_of(i) == g)
                .collect();
            check(&store.load_device_group(g).expect("load"), &group);
        }
        // Flags set for two groups are read back in every load; the third
        // group's stay as appended.
        let judged = |i: usize| samples[i].flags ^ ((i % 7) as u8 + 1);
        let group_flags = |g: usize| -> Vec<u8> {
            stored_order
                .iter()
                .copied()
                .filter(|&i| file_of(i) == g)
                .map(judged)
                .collect()
        };
        for g in [0, 2] {
            store.set_group_flags(g, &group_flags(g)).expect("flags");
        }
        // Set again: the last flags count.
        let group = group_flags(2);
        store.set_group_flags(2, &group).expect("flags");
        let want_flags = |i: usize| {
            if file_of(i) == 1 {
                samples[i].flags
            } else {
                judged(i)
            }
        };
        let part = store.load(&everything(), 10).expect("load");
        assert_eq!(part.samples.len(), 300_000);
        for (s, &i) in part.samples.iter().zip(&stored_order) {
            assert_eq!(s.flags, want_flags(i), "sample {i}");
        }
        let group0 = store.load_device_group(0).expect("load");
        assert!(group0.samples.iter().enumerate().any(|(k, s)| {
            let i = stored_order[k];
            s.flags != samples[i].flags && s.flags == want_flags(i)
        }));
        // The store still appends after reading.
        store
            .append(&samples[..1], &positions[..1], &{
                let mut one = vec![SetPlaces::default(); 2];
                for (v, set) in one.iter_mut().enumerate() {
                    set.push(
                        0,
                        &crate::vintage::Place {
                            unit: places[v].units[0],
                            kind: places[v].kinds[0],
                            snapped_m: 0.0,
                            old_unit: NO_UNIT,
                        },
                    );
                }
                one
            })
            .expect("append");
        store.finish_writes().expect("written");
        let part = store.load(&everything(), 10).expect("load");
        assert_eq!(part.samples.len(), 300_001);
        // The appended record keeps its own flags, past those judged.
        let appended = counts[..=file_of(0)].iter().sum::<u64>() as usize;
        assert!(same(&part.samples[appended], &samples[0]));
        for (k, &i) in stored_order.iter().enumerate().take(appended) {
            assert_eq!(part.samples[k].flags, want_flags(i), "sample {i}");
        }
    }

    /// A load of the blocks `blocks` accepts, with the number of records
    /// read (the route sees each), none of another block.
    fn load_counting(
        store: &SampleStore,
        blocks: impl Fn(u64) -> bool + Sync,
        route: impl Fn(u64, StoredUnits<'_>) -> bool + Sync,
        keep: impl Fn(&Sample) -> bool + Sync,
        positions: bool,
    ) -> (Part, usize) {
        let read = std::sync::atomic::AtomicUsize::new(0);
        let part = store
            .load(
                &Filter {
                    blocks: &blocks,
                    route: |cell: u64, units: StoredUnits<'_>| {
                        read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        assert!(blocks(block_of(cell)), "a record of a block not asked for");
                        route(cell, units)
                    },
                    keep,
                    positions,
                },
                0,
            )
            .expect("load");
        (part, read.into_inner())
    }

    /// The store's appends as given: samples `range` with their places
    /// renumbered from 0.
    pub(crate) fn append_range(
        store: &mut SampleStore,
        drawn: &Drawn,
        range: std::ops::Range<usize>,
    ) {
        let (samples, positions, places, olds) = drawn;
        let mut piece = vec![SetPlaces::default(); places.len()];
        for (v, set) in piece.iter_mut().enumerate() {
            for (local, i) in range.clone().enumerate() {
                let place = crate::vintage::Place {
                    unit: places[v].units[i],
                    kind: places[v].kinds[i],
                    snapped_m: 0.0,
                    old_unit: olds[v][i],
                };
                set.push(local, &place);
            }
        }
        store
            .append(&samples[range.clone()], &positions[range], &piece)
            .expect("append");
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 48,
            rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_207),
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// Any appends, files, blocks asked for and route: a load holds
        /// exactly the samples a brute-force pass over the stored order
        /// keeps, and reads no record of a block not asked for.
        #[test]
        fn a_load_of_some_blocks_equals_a_brute_force_filter(
            n in 1usize..40_000,
            seed in 0u64..1_000,
            cuts in proptest::collection::vec(0.0f64..1.0, 0..4),
            files in 1usize..5,
            (modulus, rest) in (1u64..6).prop_flat_map(|m| (Just(m), 0..m)),
            unit_mod in 1u32..4,
        ) {
            let drawn = random_samples(n, seed);
            let samples = &drawn.0;
            let dir = tempfile::tempdir().expect("tempdir");
            let mut store = SampleStore::new(dir.path(), 2, files).expect("store");
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let mut ends: Vec<usize> = cuts.iter().map(|c| (c * n as f64) as usize).collect();
            ends.push(n);
            ends.sort_unstable();
            let mut appends = Vec::new();
            let mut start = 0;
            for end in ends {
                if end > start {
                    append_range(&mut store, &drawn, start..end);
                    appends.push(start..end);
                    start = end;
                }
            }
            store.finish_writes().expect("written");
            let file_of = |i: usize| samples[i].device as usize % files;
            let block = |i: usize| block_of(u64::from(samples[i].cell));
            let mut stored_order = Vec::new();
            for f in 0..files {
                for range in &appends {
                    let mut of_file: Vec<usize> =
                        range.clone().filter(|&i| file_of(i) == f).collect();
                    of_file.sort_by_key(|&i| (block(i), drawn.2[0].units[i], i));
                    stored_order.extend(of_file);
                }
            }
            let asked = |b: u64| b % modulus == rest;
            let routed = |unit: u32| unit.is_multiple_of(unit_mod);
            let (part, read) = load_counting(
                &store,
                asked,
                |_, units: StoredUnits<'_>| routed(units.get(1)),
                |s: &Sample| s.download > 10.0,
                false,
            );
            let in_blocks: Vec<usize> =
                stored_order.iter().copied().filter(|&i| asked(block(i))).collect();
            proptest::prop_assert_eq!(read, in_blocks.len());
            let expected: Vec<usize> = in_blocks
                .into_iter()
                .filter(|&i| routed(drawn.2[1].units[i]) && samples[i].download > 10.0)
                .collect();
            proptest::prop_assert_eq!(part.samples.len(), expected.len());
            for (k, &i) in expected.iter().enumerate() {
                proptest::prop_assert!(same(&part.samples[k], &samples[i]), "sample {}", i);
                proptest::prop_assert_eq!(part.places[0].units[k], drawn.2[0].units[i]);
                proptest::prop_assert_eq!(part.places[1].kinds[k], drawn.2[1].kinds[i]);
            }
        }
    }
}
