//! Values by H3 cell, laid out in cell order where cells are dense.
//!
//! A hash map scatters neighbouring cells over its whole table: at national
//! scale (180 000 cells) each lookup misses the cache twice (control byte,
//! slot). Here the cells under one coarser parent share a block, indexed by
//! their digits below the parent, so cells looked up in index order read the
//! table nearly in order. Parents with few cells stay in a hash map, so a
//! thin scatter of cells over the globe costs no more than a map.

/// Hash maps with a fixed, fast hasher: the keys are H3 indexes.
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// Digit levels below a block's parent: 7^4 = 2 401 cells per block.
const BLOCK_LEVELS: u8 = 4;

/// New cells of one parent, in one batch, that open its block: a block of
/// 2 401 slots then costs at most 150 bytes per cell.
const BLOCK_MIN_CELLS: usize = 64;

/// The value no cell may hold: an empty slot of a block.
pub const RESERVED: u32 = u32::MAX - 1;

/// Values by H3 cell.
#[derive(Debug, Default)]
pub struct CellTable {
    /// Resolution of the blocked cells (set by the first batch).
    resolution: Option<u8>,
    /// Parent bits (the index shifted right past the block's digits) →
    /// block number.
    blocks: Map<u64, u32>,
    /// Block after block; [`RESERVED`] where no cell was inserted.
    values: Vec<u32>,
    /// Cells outside any block (of sparse parents or another resolution).
    sparse: Map<u64, u32>,
    len: usize,
}

/// A block's shape at a resolution: digit levels and slots.
const fn block_shape(resolution: u8) -> (u8, usize) {
    let levels = if resolution < BLOCK_LEVELS {
        resolution
    } else {
        BLOCK_LEVELS
    };
    (levels, 7_usize.pow(levels as u32))
}

impl CellTable {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Cells held.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether no cell is held.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Parent bits and slot of a cell of the blocked resolution.
    fn slot(resolution: u8, cell: u64) -> (u64, usize) {
        let (levels, _) = block_shape(resolution);
        let parent_res = u32::from(resolution - levels);
        let parent = cell >> (3 * (15 - parent_res));
        let mut slot = 0;
        for r in parent_res + 1..=u32::from(resolution) {
            #[allow(clippy::cast_possible_truncation, reason = "a digit is 3 bits")]
            let digit = ((cell >> (3 * (15 - r))) & 7) as usize;
            slot = slot * 7 + digit;
        }
        (parent, slot)
    }

    /// The value of a cell, if it was inserted.
    #[must_use]
    #[inline]
    pub fn get(&self, cell: h3o::CellIndex) -> Option<u32> {
        let res = u8::from(cell.resolution());
        let key = u64::from(cell);
        if self.resolution == Some(res) {
            let (parent, slot) = Self::slot(res, key);
            if let Some(&b) = self.blocks.get(&parent) {
                let v = self.values[b as usize * block_shape(res).1 + slot];
                if v != RESERVED {
                    return Some(v);
                }
            }
        }
        self.sparse.get(&key).copied()
    }

    /// Inserts cells not held yet, with their values (never [`RESERVED`]).
    /// Cells already held keep their value; a cell repeated in `cells`
    /// takes one of its values.
    ///
    /// # Panics
    /// When a value is [`RESERVED`].
    pub fn insert_new(&mut self, cells: &mut [(h3o::CellIndex, u32)]) {
        assert!(
            cells.iter().all(|&(_, v)| v != RESERVED),
            "RESERVED marks an empty slot"
        );
        cells.sort_unstable_by_key(|&(c, _)| c);
        let mut batch: Vec<(h3o::CellIndex, u32)> = Vec::with_capacity(cells.len());
        for &(c, v) in cells.iter() {
            if batch.last().is_none_or(|&(b, _)| b != c) && self.get(c).is_none() {
                batch.push((c, v));
            }
        }
        if self.resolution.is_none() {
            self.resolution = batch.first().map(|&(c, _)| u8::from(c.resolution()));
        }
        let Some(res) = self.resolution else { return };
        let size = block_shape(res).1;
        self.len += batch.len();
        // Sorted cells of one resolution and parent are a run.
        for run in batch.chunk_by(|a, b| {
            u8::from(a.0.resolution()) == u8::from(b.0.resolution())
                && Self::slot(res, u64::from(a.0)).0 == Self::slot(res, u64::from(b.0)).0
        }) {
            let blocked = u8::from(run[0].0.resolution()) == res;
            let parent = Self::slot(res, u64::from(run[0].0)).0;
            let block = match self.blocks.get(&parent) {
                Some(&b) if blocked => Some(b),
                None if blocked && run.len() >= BLOCK_MIN_CELLS => {
                    #[allow(clippy::cast_possible_truncation, reason = "blocks fit u32")]
                    let b = (self.values.len() / size) as u32;
                    self.values.resize(self.values.len() + size, RESERVED);
                    self.blocks.insert(parent, b);
                    Some(b)
                }
                _ => None,
            };
            for &(c, v) in run {
                match block {
                    Some(b) => {
                        let slot = Self::slot(res, u64::from(c)).1;
                        self.values[b as usize * size + slot] = v;
                    }
                    None => {
                        self.sparse.insert(u64::from(c), v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn the_table_answers_as_a_map_of_what_was_inserted() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for res in [0_u8, 2, 5, 8, 9, 15] {
            let resolution = h3o::Resolution::try_from(res).expect("valid");
            // Patches wide enough for 64 cells under one block's parent.
            let half_width = match res {
                5 => 1.5,
                9 => 0.02,
                15 => 5e-5,
                _ => 0.05,
            };
            let mut table = CellTable::new();
            let mut oracle: std::collections::BTreeMap<u64, u32> = Default::default();
            // Dense patches (blocks) and a thin scatter (the map), in
            // batches; some cells repeat within and across batches, and
            // one batch holds cells of another resolution.
            for batch_no in 0..6_u32 {
                let mut batch = Vec::new();
                for _ in 0..3 {
                    let (lat, lon) = (
                        rng.random_range(-80.0..80.0),
                        rng.random_range(-180.0..180.0),
                    );
                    for _ in 0..400 {
                        let ll = h3o::LatLng::new(
                            lat + rng.random_range(-half_width..half_width),
                            lon + rng.random_range(-half_width..half_width),
                        )
                        .expect("valid");
                        batch.push(ll.to_cell(resolution));
                    }
                }
                for _ in 0..200 {
                    let ll = h3o::LatLng::new(
                        rng.random_range(-89.0..89.0),
                        rng.random_range(-180.0..180.0),
                    )
                    .expect("valid");
                    let r = if batch_no == 3 {
                        h3o::Resolution::try_from((res + 1) % 16).expect("valid")
                    } else {
                        resolution
                    };
                    batch.push(ll.to_cell(r));
                }
                let mut with_values: Vec<(h3o::CellIndex, u32)> = batch
                    .iter()
                    .map(|&c| (c, rng.random_range(0..RESERVED)))
                    .collect();
                for &(c, v) in &with_values {
                    oracle.entry(u64::from(c)).or_insert(v);
                }
                // The first of a repeated cell in a batch is its value, as in the oracle.
                let mut firsts: Vec<(h3o::CellIndex, u32)> = Vec::new();
                for &(c, v) in &with_values {
                    if !firsts.iter().any(|&(f, _)| f == c) {
                        firsts.push((c, v));
                    }
                }
                with_values = firsts;
                table.insert_new(&mut with_values);
                assert_eq!(table.len(), oracle.len(), "resolution {res}");
                for (&k, &v) in &oracle {
                    let c = h3o::CellIndex::try_from(k).expect("valid");
                    assert_eq!(table.get(c), Some(v), "{c} at resolution {res}");
                }
                // Neighbours never inserted are absent.
                for &c in batch.iter().take(50) {
                    for n in c.grid_disk::<Vec<_>>(2) {
                        assert_eq!(table.get(n), oracle.get(&u64::from(n)).copied(), "{n}");
                    }
                }
            }
            assert!(
                res < 5 || !table.blocks.is_empty(),
                "dense patches open blocks at resolution {res}"
            );
            assert!(!table.sparse.is_empty(), "the scatter stays in the map");
        }
    }
}
