//! Test ids that occur more than once in the sample files, found in memory
//! that does not grow with the files. Every row's test-id digest is written
//! to one of [`PARTS`] files on disk by its first bits; each file is then
//! sorted on its own. Ingestion then remembers only the ids found here,
//! instead of every id it reads (about 20 bytes a row: 2 GB at 100 M rows,
//! most of a monthly run's memory on a year's archive).

use std::collections::HashSet;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ingest::Chunk;
use crate::schema::{ColumnMap, Field, Fields};

/// A set of test-id digests.
pub type DigestSet = HashSet<u128, foldhash::fast::FixedState>;

/// The digest by which a test id is told apart from the others.
#[must_use]
pub fn digest(test_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(test_id.as_bytes())
}

/// The digest a row's test id has in ingestion: absent reads as empty, as
/// the checks read it.
fn row_digest(row: &impl Fields) -> u128 {
    digest(row.get(Field::TestId).unwrap_or_default())
}

/// Files the digests are spread over: 25 MB each at 100 M rows, two of
/// them sorted at once; few enough for the open files a system allows a
/// process (256 on macOS by default).
const PARTS: usize = 64;

/// Digests held per part before they are written (64 KiB; 4 MiB in all).
const BUFFERED: usize = 4096;

const _: () = assert!(PARTS == 1 << 6, "a digest's part is its first six bits");

fn spill_error(dir: &Path, source: std::io::Error) -> Error {
    Error::Spill {
        dir: dir.to_owned(),
        source,
    }
}

/// Digests spread over files on disk by their first bits.
struct Spill {
    dir: PathBuf,
    files: Vec<std::fs::File>,
    buffers: Vec<Vec<u128>>,
    bytes: Vec<u8>,
}

impl Spill {
    /// Unnamed files in `dir`: the system removes them when they are
    /// closed, even when the run is killed.
    fn new(dir: &Path) -> Result<Self> {
        let files = (0..PARTS)
            .map(|_| tempfile::tempfile_in(dir).map_err(|e| spill_error(dir, e)))
            .collect::<Result<_>>()?;
        Ok(Self {
            dir: dir.to_owned(),
            files,
            buffers: (0..PARTS).map(|_| Vec::with_capacity(BUFFERED)).collect(),
            bytes: Vec::with_capacity(BUFFERED * 16),
        })
    }

    fn push(&mut self, digest: u128) -> Result<()> {
        #[allow(clippy::cast_possible_truncation, reason = "the first six bits")]
        let part = (digest >> 122) as usize;
        self.buffers[part].push(digest);
        if self.buffers[part].len() == BUFFERED {
            self.write(part)?;
        }
        Ok(())
    }

    fn write(&mut self, part: usize) -> Result<()> {
        self.bytes.clear();
        for d in self.buffers[part].drain(..) {
            self.bytes.extend_from_slice(&d.to_le_bytes());
        }
        self.files[part]
            .write_all(&self.bytes)
            .map_err(|e| spill_error(&self.dir, e))
    }

    /// The digests written more than once, each part read back and sorted
    /// on its own (two at a time).
    fn repeated(mut self) -> Result<DigestSet> {
        for part in 0..PARTS {
            self.write(part)?;
        }
        let dir = &self.dir;
        let found: Vec<Vec<u128>> = self
            .files
            .into_par_iter()
            .map(|mut file| {
                let mut bytes = Vec::new();
                file.rewind()
                    .and_then(|()| file.read_to_end(&mut bytes))
                    .map_err(|e| spill_error(dir, e))?;
                drop(file);
                let mut digests: Vec<u128> = bytes
                    .chunks_exact(16)
                    .map(|b| u128::from_le_bytes(b.try_into().unwrap_or_default()))
                    .collect();
                drop(bytes);
                digests.sort_unstable();
                let mut repeated: Vec<u128> = digests
                    .windows(2)
                    .filter(|w| w[0] == w[1])
                    .map(|w| w[0])
                    .collect();
                repeated.dedup();
                Ok(repeated)
            })
            .collect::<Result<_>>()?;
        Ok(found.into_iter().flatten().collect())
    }
}

/// The digests of the test ids that occur on more than one row of `files`
/// (every row with its test id, whether or not it passes the checks),
/// working in unnamed files in `spill_dir`. A test id outside this set is
/// on one row only, so it can never be a duplicate.
///
/// # Errors
/// A file that cannot be read (as ingestion would report it), or a spill
/// file that cannot be written or read back.
pub fn repeated_test_ids(
    files: &[PathBuf],
    columns: &ColumnMap,
    spill_dir: &Path,
) -> Result<DigestSet> {
    let mut spill = Spill::new(spill_dir)?;
    for path in files {
        // Ingestion reports the reader's warnings.
        let mut warnings = Vec::new();
        crate::ingest_run::read_pipelined(
            path,
            columns,
            Some(Field::TestId),
            &mut warnings,
            &mut |chunk| {
                let digests: Vec<u128> = match chunk {
                    Chunk::Rows(rows) => rows.par_iter().map(row_digest).collect(),
                    Chunk::Columns(columns) => columns.rows().par_iter().map(row_digest).collect(),
                };
                digests.into_iter().try_for_each(|d| spill.push(d))
            },
        )?;
    }
    spill.repeated()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt as _, SeedableRng as _};

    #[test]
    fn the_repeated_digests_are_those_a_count_finds_more_than_once() {
        // Oracle: a count of every digest. Digests drawn from a small pool
        // repeat (some many times, across buffer flushes); the others occur
        // once; both spread over every part.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let pool: Vec<u128> = (0..5_000).map(|_| rng.random()).collect();
        let mut spill = Spill::new(dir.path()).expect("spill");
        let mut count: std::collections::HashMap<u128, u32> = std::collections::HashMap::new();
        for _ in 0..300_000 {
            let d = if rng.random_bool(0.3) {
                pool[rng.random_range(0..pool.len())]
            } else {
                rng.random()
            };
            *count.entry(d).or_default() += 1;
            spill.push(d).expect("push");
        }
        let expected: DigestSet = count
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(d, _)| *d)
            .collect();
        assert!(expected.len() > 4_000, "the pool repeats");
        assert_eq!(spill.repeated().expect("repeated"), expected);
        // The files were unnamed: nothing is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn a_folder_that_cannot_hold_the_files_names_itself_and_the_way_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("gone");
        let Err(e) = Spill::new(&missing) else {
            panic!("a missing folder holds no files");
        };
        let message = e.to_string();
        assert!(
            message.starts_with(&missing.display().to_string()),
            "{message}"
        );
        assert!(message.contains("--spill never"), "{message}");
    }

    #[test]
    fn no_rows_repeat_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spill = Spill::new(dir.path()).expect("spill");
        assert!(spill.repeated().expect("repeated").is_empty());
    }
}
