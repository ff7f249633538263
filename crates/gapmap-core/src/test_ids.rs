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

/// Bytes of a CSV file read at once by [`push_unquoted_csv`].
const BLOCK: usize = 8 << 20;

/// Whether a file holds a quote character anywhere.
fn has_quote(path: &Path) -> Result<bool> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut block = vec![0; BLOCK];
    loop {
        let n = file.read(&mut block).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(false);
        }
        if memchr::memchr(b'"', &block[..n]).is_some() {
            return Ok(true);
        }
    }
}

/// The digest of the test id in field `column` of each row of `rows` (rows
/// of a CSV file without quotes), read as the CSV reader reads it: a
/// row ends at `\n`, `\r` or both, empty rows are none, fields part at
/// commas, a field is decoded as UTF-8 (replacing what is not) and trimmed,
/// and a row without the field has an empty id.
fn unquoted_digests(rows: &[u8], column: usize) -> Vec<u128> {
    rows.split(|b| *b == b'\n' || *b == b'\r')
        .filter(|row| !row.is_empty())
        .map(|row| {
            let field = row.split(|b| *b == b',').nth(column).unwrap_or_default();
            let text = String::from_utf8_lossy(field);
            digest(crate::schema::trim_field(&text))
        })
        .collect()
}

/// Pushes the digest of every row's test id of a CSV file with no quote
/// character: then every comma parts fields and every line break ends a
/// row, so lines are split in blocks on both cores, with no tokenizer.
/// Returns `false`, having pushed nothing, when the file has a quote.
fn push_unquoted_csv(path: &Path, columns: &ColumnMap, spill: &mut Spill) -> Result<bool> {
    if has_quote(path)? {
        return Ok(false);
    }
    let (column, start) = crate::ingest::csv_column(path, columns, Field::TestId)?;
    let Some(column) = column else {
        // No test-id column: every id is empty (and every row rejected).
        return Ok(true);
    };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    file.seek(std::io::SeekFrom::Start(start))
        .map_err(|e| Error::io(path, e))?;
    let mut block: Vec<u8> = Vec::with_capacity(BLOCK * 2);
    let mut at_end = false;
    while !at_end {
        let kept = block.len();
        block.resize(kept + BLOCK, 0);
        let n = file
            .read(&mut block[kept..])
            .map_err(|e| Error::io(path, e))?;
        block.truncate(kept + n);
        at_end = n == 0;
        // Whole rows: up to the last line break (all that is left at the end).
        let whole = if at_end {
            block.len()
        } else {
            match memchr::memrchr2(b'\n', b'\r', &block) {
                Some(i) => i + 1,
                None => continue,
            }
        };
        // Pieces cut at line breaks, several per core.
        let pieces = rayon::current_num_threads() * 4;
        let mut cuts = vec![0];
        for p in 1..pieces {
            let from = (whole * p / pieces).max(cuts.last().copied().unwrap_or(0));
            let cut =
                memchr::memchr2(b'\n', b'\r', &block[from..whole]).map_or(whole, |i| from + i + 1);
            cuts.push(cut);
        }
        cuts.push(whole);
        let digests: Vec<Vec<u128>> = cuts
            .par_windows(2)
            .map(|w| unquoted_digests(&block[w[0]..w[1]], column))
            .collect();
        for d in digests.into_iter().flatten() {
            spill.push(d)?;
        }
        block.drain(..whole);
    }
    Ok(true)
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
        if matches!(
            crate::ingest::Format::of(path),
            Ok(crate::ingest::Format::Csv)
        ) && push_unquoted_csv(path, columns, &mut spill)?
        {
            continue;
        }
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
    fn an_unquoted_csv_repeats_what_the_csv_reader_repeats() {
        // Oracle: the CSV reader's rows (as ingestion reads them), their
        // non-empty ids counted. The file: ids in the second column, from
        // a pool (so they repeat), padded with blanks, some with bytes
        // that are not UTF-8; rows ending in \n, \r\n or \r, empty
        // rows, rows cut short before the id, no line break at the end;
        // more than a block (8 MiB), so rows run across blocks.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.csv");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut text: Vec<u8> =
            b"\xef\xbb\xbfdevice_id,test_id,timestamp,lat,lon,carrier,network,download_mbps\r\n"
                .to_vec();
        for i in 0..170_000 {
            let id = rng.random_range(0..120_000);
            match rng.random_range(0..20) {
                0 => text.extend_from_slice(b"d1"),
                1 => text.extend_from_slice(format!("d1, t{id}\t,").as_bytes()),
                2 => {
                    text.extend_from_slice(format!("d1,t{id}").as_bytes());
                    text.extend_from_slice(b"\xff\xfe,x");
                }
                3 => {}
                _ => text.extend_from_slice(
                    format!("d{i},t{id},2025-06-10T08:00:00Z,21.0,105.8,Viettel,4G,{i}").as_bytes(),
                ),
            }
            text.extend_from_slice(match rng.random_range(0..4) {
                0 => b"\r\n",
                1 => b"\r",
                _ => b"\n",
            });
        }
        text.extend_from_slice(b"d9,t7,2025-06-10T08:00:00Z");
        assert!(text.len() > BLOCK);
        std::fs::write(&path, &text).expect("write");
        let columns = ColumnMap::default();
        let mut count: std::collections::HashMap<u128, u32> = std::collections::HashMap::new();
        crate::ingest::read_chunks(
            &path,
            &columns,
            &mut Vec::new(),
            &mut Vec::new,
            &mut |chunk| {
                if let Chunk::Rows(rows) = chunk {
                    for id in rows.iter().filter_map(|r| r.get(Field::TestId)) {
                        *count.entry(digest(id)).or_default() += 1;
                    }
                }
                Ok(())
            },
        )
        .expect("read");
        let expected: DigestSet = count
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(d, _)| *d)
            .collect();
        assert!(expected.len() > 10_000, "ids repeat");
        let mut spill = Spill::new(dir.path()).expect("spill");
        assert!(push_unquoted_csv(&path, &columns, &mut spill).expect("scan"));
        let mut got = spill.repeated().expect("repeated");
        // Rows without an id are rejected before duplicates are looked for.
        got.remove(&digest(""));
        assert_eq!(got, expected);
        // A quote anywhere: the CSV reader's turn.
        std::fs::write(&path, b"test_id,timestamp\n\"t1\",x\n").expect("write");
        let mut spill = Spill::new(dir.path()).expect("spill");
        assert!(!push_unquoted_csv(&path, &columns, &mut spill).expect("scan"));
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
