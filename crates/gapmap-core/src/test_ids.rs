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

/// The digest by which a test id is told apart from the others (the one
/// ingestion looks duplicates up by).
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

/// Reads until `buf` is full or the file ends; the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
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
                // Read back a buffer at a time: the part is held once.
                let len = file
                    .rewind()
                    .and_then(|()| file.metadata())
                    .map_err(|e| spill_error(dir, e))?
                    .len();
                let mut digests: Vec<u128> =
                    Vec::with_capacity(usize::try_from(len / 16).unwrap_or_default());
                let mut bytes = vec![0; BUFFERED * 16];
                loop {
                    let n = read_full(&mut file, &mut bytes).map_err(|e| spill_error(dir, e))?;
                    digests.extend(
                        bytes[..n]
                            .chunks_exact(16)
                            .map(|b| u128::from_le_bytes(b.try_into().unwrap_or_default())),
                    );
                    if n < bytes.len() {
                        break;
                    }
                }
                drop(file);
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

/// Bytes of a CSV file read at once by [`push_csv`].
const BLOCK: usize = 8 << 20;

/// The digest of the test id in field `column` of each row of `rows` (rows
/// of a CSV file without quotes), read as the CSV reader reads it: a
/// row ends at `\n`, `\r` or both, empty rows are none, fields part at
/// commas, a field is decoded as UTF-8 (replacing what is not) and trimmed,
/// and a row without the field has an empty id.
fn unquoted_digests(rows: &[u8], column: usize) -> Vec<u128> {
    let mut out = Vec::with_capacity(rows.len() / 64);
    let mut start = 0;
    let ends = memchr::memchr2_iter(b'\n', b'\r', rows).chain(std::iter::once(rows.len()));
    for end in ends {
        let row = &rows[start..end];
        start = end + 1;
        if row.is_empty() {
            continue;
        }
        // The field between the column-th comma and the next.
        let mut commas = memchr::memchr_iter(b',', row);
        let from = match column {
            0 => Some(0),
            c => commas.nth(c - 1).map(|i| i + 1),
        };
        let field = from.map_or(&[][..], |from| {
            let to = commas.next().unwrap_or(row.len());
            &row[from..to]
        });
        let text = String::from_utf8_lossy(field);
        out.push(digest(crate::schema::trim_field(&text)));
    }
    out
}

/// Pushes the digest of every row's test id of a CSV file. While the file
/// has no quote character, every comma parts fields and every line break
/// ends a row: blocks of lines are split on both cores, with no tokenizer.
/// From the first block with a quote on, the CSV reader reads the rest (a
/// block starts a row, as the text before it has no quote).
fn push_csv(path: &Path, columns: &ColumnMap, spill: &mut Spill) -> Result<()> {
    let (column, start) = crate::ingest::csv_column(path, columns, Field::TestId)?;
    let Some(column) = column else {
        // No test-id column: every row is rejected before duplicates.
        return Ok(());
    };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    file.seek(std::io::SeekFrom::Start(start))
        .map_err(|e| Error::io(path, e))?;
    let mut block: Vec<u8> = Vec::with_capacity(BLOCK * 2);
    let mut offset = start;
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
        if memchr::memchr(b'"', &block[..whole]).is_some() {
            return push_csv_from(path, offset, column, spill);
        }
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
        offset += whole as u64;
    }
    Ok(())
}

/// Pushes the digests of the test ids in field `column` of the rows of a
/// CSV file from byte `offset` (the start of a row) on, read by the CSV
/// reader as ingestion reads them.
fn push_csv_from(path: &Path, offset: u64, column: usize, spill: &mut Spill) -> Result<()> {
    let csv_err = |source| Error::Csv {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .map_err(|e| Error::io(path, e))?;
    let mut reader = crate::ingest::csv_reader_builder(false)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, file));
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(csv_err)? {
        let text = String::from_utf8_lossy(record.get(column).unwrap_or_default());
        spill.push(digest(crate::schema::trim_field(&text)))?;
    }
    Ok(())
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
        ) {
            push_csv(path, columns, &mut spill)?;
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
                let digests: Vec<u128> = match &chunk {
                    Chunk::Rows(rows) => rows.par_iter().map(row_digest).collect(),
                    Chunk::Columns(columns) => columns.rows().par_iter().map(row_digest).collect(),
                };
                digests.into_iter().try_for_each(|d| spill.push(d))?;
                Ok(Some(chunk))
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

    /// The repeated ids of a CSV file with `text`: found by the pass, and
    /// by the oracle, the CSV reader's rows as ingestion reads them (their
    /// non-empty ids counted).
    fn repeated_by_pass_and_reader(text: &[u8]) -> (DigestSet, DigestSet) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.csv");
        std::fs::write(&path, text).expect("write");
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
        let mut spill = Spill::new(dir.path()).expect("spill");
        push_csv(&path, &columns, &mut spill).expect("pass");
        let mut got = spill.repeated().expect("repeated");
        // Rows without an id are rejected before duplicates are looked for.
        got.remove(&digest(""));
        (got, expected)
    }

    #[test]
    fn a_csv_file_repeats_what_the_csv_reader_repeats() {
        // Ids in the second column, from a pool (so they repeat), padded
        // with blanks, some with bytes that are not UTF-8; rows ending in
        // \n, \r\n or \r, empty rows, rows cut short before the id, no
        // line break at the end; more than a block (8 MiB), so rows run
        // across blocks. Then the same with quotes from the second block
        // on (a comma and a line break inside quoted ids): the reader's
        // turn from that block.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut text: Vec<u8> =
            b"\xef\xbb\xbfdevice_id,test_id,timestamp,lat,lon,carrier,network,download_mbps\r\n"
                .to_vec();
        let mut quoted = text.clone();
        for i in 0..170_000 {
            let id = rng.random_range(0..120_000);
            let mut row = Vec::new();
            match rng.random_range(0..20) {
                0 => row.extend_from_slice(b"d1"),
                1 => row.extend_from_slice(format!("d1, t{id}\t,").as_bytes()),
                2 => {
                    row.extend_from_slice(format!("d1,t{id}").as_bytes());
                    row.extend_from_slice(b"\xff\xfe,x");
                }
                3 => {}
                _ => row.extend_from_slice(
                    format!("d{i},t{id},2025-06-10T08:00:00Z,21.0,105.8,Viettel,4G,{i}").as_bytes(),
                ),
            }
            row.extend_from_slice(match rng.random_range(0..4) {
                0 => b"\r\n",
                1 => b"\r",
                _ => b"\n",
            });
            text.extend_from_slice(&row);
            if i > 150_000 && i % 1000 == 0 {
                quoted.extend_from_slice(b"d1,\"t1,\nx\",y\n");
                quoted.extend_from_slice(format!("d1,\"t{id}\"\n").as_bytes());
            }
            quoted.extend_from_slice(&row);
        }
        text.extend_from_slice(b"d9,t7,2025-06-10T08:00:00Z");
        assert!(BLOCK < text.len() && text.len() < 2 * BLOCK);
        let (got, expected) = repeated_by_pass_and_reader(&text);
        assert!(expected.len() > 10_000, "ids repeat");
        assert_eq!(got, expected);
        let (got, expected) = repeated_by_pass_and_reader(&quoted);
        assert!(
            expected.iter().any(|d| *d == digest("t1,\nx")),
            "quoted ids repeat"
        );
        assert_eq!(got, expected);
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
