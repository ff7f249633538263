//! Reading sample files (CSV, Parquet) into [`RawRow`]s, chunk by chunk.

use std::path::Path;

use polars::prelude::{DataType, SerReader, TimeUnit};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::schema::{ColumnMap, FIELD_COUNT, Field, RawRow};

/// Warnings of one kind reported per file; the rest are counted.
const MAX_WARNINGS_PER_FILE: usize = 20;

/// Rows of a Parquet file handed to the caller at a time. Ingestion places
/// a chunk's rows in the order of their squares: in a chunk this large the
/// rows of one square often follow each other at national scale, and share
/// the memo's and the locators' cache lines (10 M national rows: placement
/// 5.1 s against 6.1 s with chunks of 32 768).
pub const CHUNK_ROWS: usize = 1 << 17;

/// Rows of a CSV file handed to the caller at a time. A CSV row is held as
/// its text (about 400 bytes): chunks of [`CHUNK_ROWS`] would hold 200 MiB
/// more, for parsing that costs more than the placement they speed up.
pub const CSV_CHUNK_ROWS: usize = 1 << 15;

/// Sample file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, header on line 1.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format of a path, from its extension (`.csv`, `.parquet`/`.pq`).
    ///
    /// # Errors
    /// Any other extension.
    pub fn of(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Ok(Self::Csv),
            Some("parquet" | "pq") => Ok(Self::Parquet),
            _ => Err(Error::UnknownFormat {
                path: path.to_owned(),
            }),
        }
    }
}

/// Reads a sample file, calling `on_chunk` with up to [`CHUNK_ROWS`] rows at
/// a time ([`CSV_CHUNK_ROWS`] for CSV).
///
/// Problems that do not stop the run (e.g. a quoted field spanning lines)
/// are pushed to `warnings`, each naming the file, the line and the fix.
///
/// # Errors
/// The file cannot be opened or read, or lacks a required column.
pub fn read_rows(
    path: &Path,
    columns: &ColumnMap,
    warnings: &mut Vec<String>,
    on_chunk: &mut dyn FnMut(Vec<RawRow>) -> Result<()>,
) -> Result<()> {
    read_rows_reusing(path, columns, warnings, &mut Vec::new, on_chunk)
}

/// As [`read_rows`], filling the chunks `spare` returns (rows a consumer
/// has finished with, or none) before allocating new ones.
///
/// # Errors
/// As [`read_rows`].
pub fn read_rows_reusing(
    path: &Path,
    columns: &ColumnMap,
    warnings: &mut Vec<String>,
    spare: &mut dyn FnMut() -> Vec<RawRow>,
    on_chunk: &mut dyn FnMut(Vec<RawRow>) -> Result<()>,
) -> Result<()> {
    match Format::of(path)? {
        Format::Csv => read_csv(path, columns, warnings, spare, on_chunk),
        Format::Parquet => read_parquet(path, columns, spare, on_chunk),
    }
}

/// The number of data rows of a file when it is cheap to know or estimate,
/// so that callers can reserve memory once: a Parquet file's metadata, or a
/// CSV file's size over the line length of its first 4 MiB.
#[must_use]
pub fn row_count_hint(path: &Path) -> Option<usize> {
    match Format::of(path).ok()? {
        Format::Parquet => {
            check_footer(path).ok()?;
            let file = std::fs::File::open(path).ok()?;
            let mut reader = polars::prelude::ParquetReader::new(file);
            guarded(path, || reader.num_rows()).ok()
        }
        Format::Csv => {
            use std::io::Read as _;
            let size = std::fs::metadata(path).ok()?.len();
            let mut head = Vec::new();
            std::fs::File::open(path)
                .ok()?
                .take(4 << 20)
                .read_to_end(&mut head)
                .ok()?;
            let lines = head.iter().filter(|b| **b == b'\n').count().max(1) as u64;
            let estimate = size.saturating_mul(lines) / head.len().max(1) as u64;
            usize::try_from(estimate).ok()
        }
    }
}

/// Finds each canonical field's column among `headers`; a missing required
/// column is an error, a missing optional one is `None`, and so is a field
/// no rule reads ([`Field::used`]): its column is not loaded.
fn resolve_columns(
    path: &Path,
    columns: &ColumnMap,
    headers: &[String],
) -> Result<[Option<usize>; FIELD_COUNT]> {
    let mut out = [None; FIELD_COUNT];
    for (i, field) in Field::ALL.into_iter().enumerate() {
        let want = columns.column(field);
        out[i] = headers
            .iter()
            .position(|h| h == want)
            .filter(|_| field.used());
        if out[i].is_none() && field.required() {
            return Err(Error::MissingColumn {
                path: path.to_owned(),
                field: field.name(),
                column: want.to_owned(),
                available: headers.join(", "),
            });
        }
    }
    Ok(out)
}

/// How sample CSV files are parsed: rows may have fewer fields than the
/// header (reported as truncated), otherwise the csv crate's defaults
/// (comma, double quotes, `\r`, `\n` or both ending a row), on which the
/// test-id pass's line splitting relies ([`crate::test_ids`]).
pub(crate) fn csv_reader_builder(has_headers: bool) -> csv::ReaderBuilder {
    let mut builder = csv::ReaderBuilder::new();
    builder.flexible(true).has_headers(has_headers);
    builder
}

/// A CSV file's reader, past its header, and the header's column names.
fn open_csv(path: &Path) -> Result<(csv::Reader<std::fs::File>, Vec<String>)> {
    let csv_err = |source| Error::Csv {
        path: path.to_owned(),
        source,
    };
    let mut reader = csv_reader_builder(true).from_path(path).map_err(csv_err)?;
    let headers: Vec<String> = reader
        .byte_headers()
        .map_err(csv_err)?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = String::from_utf8_lossy(h);
            // A UTF-8 byte-order mark on the first header is not part of its name.
            let h = if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                &h
            };
            h.trim().to_owned()
        })
        .collect();
    Ok((reader, headers))
}

/// The column of `field` in a CSV file (`None` when the file has none and
/// the field is optional) and the byte where the rows after the header
/// start.
///
/// # Errors
/// As [`read_csv`] for its header.
pub(crate) fn csv_column(
    path: &Path,
    columns: &ColumnMap,
    field: Field,
) -> Result<(Option<usize>, u64)> {
    let (reader, headers) = open_csv(path)?;
    let index = resolve_columns(path, columns, &headers)?;
    Ok((index[field.index()], reader.position().byte()))
}

fn read_csv(
    path: &Path,
    columns: &ColumnMap,
    warnings: &mut Vec<String>,
    spare: &mut dyn FnMut() -> Vec<RawRow>,
    on_chunk: &mut dyn FnMut(Vec<RawRow>) -> Result<()>,
) -> Result<()> {
    let csv_err = |source| Error::Csv {
        path: path.to_owned(),
        source,
    };
    let (mut reader, headers) = open_csv(path)?;
    let index = resolve_columns(path, columns, &headers)?;
    let mut record = csv::ByteRecord::new();
    // Taken when its first row is read: after the chunk before is handed
    // on, so that a consumer which gives it back has it refilled.
    let mut chunk: Option<Vec<RawRow>> = None;
    let mut used = 0;
    let mut spanning = 0usize;
    while reader.read_byte_record(&mut record).map_err(csv_err)? {
        let line = record.position().map_or(0, csv::Position::line);
        // A quoted field spanning lines is legal CSV, but in a speed-test
        // export it almost always means an unbalanced quote that swallowed
        // the rows after it: say so, with the lines to look at.
        let newlines = record.as_slice().iter().filter(|b| **b == b'\n').count() as u64;
        if newlines > 0 {
            spanning += 1;
            if spanning <= MAX_WARNINGS_PER_FILE {
                warnings.push(format!(
                    "{}: line {line}: a quoted field spans lines {line}-{}; if a quote is unbalanced, \
                     the rows on those lines were read as this one row; fix the quoting and rerun",
                    path.display(),
                    line + newlines
                ));
            }
        }
        let rows = chunk.get_or_insert_with(&mut *spare);
        if used == rows.len() {
            rows.push(RawRow::default());
        }
        let row = &mut rows[used];
        used += 1;
        row.reset(line, record.as_slice().len());
        row.truncated = record.len() < headers.len();
        // The record's text checked as UTF-8 once, not field by field; a
        // field that does not start and end on a character of it (an
        // invalid sequence cut by a comma) is decoded on its own.
        let text = std::str::from_utf8(record.as_slice()).ok();
        for (field, col) in Field::ALL.into_iter().zip(index) {
            let Some(c) = col else { continue };
            let whole = text.zip(record.range(c)).and_then(|(t, r)| t.get(r));
            match whole {
                Some(value) => row.set(field, value),
                None => {
                    if let Some(bytes) = record.get(c) {
                        row.set(field, &String::from_utf8_lossy(bytes));
                    }
                }
            }
        }
        if used == CSV_CHUNK_ROWS
            && let Some(mut full) = chunk.take()
        {
            full.truncate(used);
            on_chunk(full)?;
            used = 0;
        }
    }
    if let Some(mut last) = chunk {
        last.truncate(used);
        on_chunk(last)?;
    }
    if spanning > MAX_WARNINGS_PER_FILE {
        warnings.push(format!(
            "{}: {} more rows with a quoted field spanning lines",
            path.display(),
            spanning - MAX_WARNINGS_PER_FILE
        ));
    }
    Ok(())
}

/// Whether a Parquet column of `field` is read as numbers: a numeric field
/// in a float or integer column (values as they are, no text).
pub(crate) fn typed_numbers(field: Field, s: &polars::prelude::Series) -> bool {
    field.numeric() && (s.dtype().is_float() || s.dtype().is_integer())
}

/// A Parquet column read as text (not [`typed_numbers`]): text as it is;
/// numbers in Rust's shortest round-trip form; time-zone-aware timestamps
/// as RFC 3339 in UTC; naive timestamps without an offset, so that they are
/// `bad_timestamp` (their zone is unknown); anything else as polars casts it.
pub(crate) fn text_series(
    path: &Path,
    s: &polars::prelude::Series,
) -> Result<polars::prelude::Series> {
    use polars::prelude::{IntoSeries as _, StringChunked};
    use std::fmt::Write as _;
    let perr = |e: polars::prelude::PolarsError| Error::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut text = String::new();
    let formatted: StringChunked = match s.dtype().clone() {
        DataType::String => return Ok(s.clone()),
        DataType::Float32 | DataType::Float64 => {
            let c = s.cast(&DataType::Float64).map_err(perr)?;
            c.f64()
                .map_err(perr)?
                .iter()
                .map(|v| {
                    v.map(|x| {
                        text.clear();
                        let _ = write!(text, "{x}");
                        text.clone()
                    })
                })
                .collect()
        }
        DataType::Datetime(unit, tz) => {
            let c = s.cast(&DataType::Int64).map_err(perr)?;
            let per_sec: i64 = match unit {
                TimeUnit::Nanoseconds => 1_000_000_000,
                TimeUnit::Microseconds => 1_000_000,
                TimeUnit::Milliseconds => 1_000,
            };
            c.i64()
                .map_err(perr)?
                .iter()
                .map(|v| {
                    let x = v?;
                    let secs = x.div_euclid(per_sec);
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "remainder < 1e9"
                    )]
                    let nanos = (x.rem_euclid(per_sec) * (1_000_000_000 / per_sec)) as u32;
                    let t = chrono::DateTime::from_timestamp(secs, nanos)?;
                    Some(if tz.is_some() {
                        t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    } else {
                        t.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string()
                    })
                })
                .collect()
        }
        _ => return s.cast(&DataType::String).map_err(perr),
    };
    Ok(formatted.with_name(s.name().clone()).into_series())
}

/// Writes one Parquet column into `rows` (one per row of the column),
/// without a string per value: numbers of [`typed_numbers`] columns go in
/// as values (what their text would parse to), every other column as its
/// [`text_series`].
fn set_column(
    path: &Path,
    s: &polars::prelude::Series,
    field: Field,
    rows: &mut [RawRow],
) -> Result<()> {
    let perr = |e: polars::prelude::PolarsError| Error::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    if typed_numbers(field, s) {
        let c = s.cast(&DataType::Float64).map_err(perr)?;
        for (row, v) in rows.iter_mut().zip(c.f64().map_err(perr)?.iter()) {
            if let Some(x) = v {
                row.set_number(field, x);
            }
        }
        return Ok(());
    }
    let text = text_series(path, s)?;
    for (row, v) in rows.iter_mut().zip(text.str().map_err(perr)?.iter()) {
        if let Some(v) = v {
            row.set(field, v);
        }
    }
    Ok(())
}

/// Rows of a Parquet file decoded at a time, at least (whole row groups
/// up to [`MAX_SLICE_ROWS`]): memory stays bounded by this, not by the file
/// (a national export has tens of millions of rows).
const PARQUET_SLICE_ROWS: usize = CHUNK_ROWS;

/// The largest row group decoded whole (polars writes row groups of a few
/// hundred thousand rows, DuckDB of 122 880; pyarrow's of a million are cut).
const MAX_SLICE_ROWS: usize = PARQUET_SLICE_ROWS * 4;

/// Rows of a Parquet chunk filled together (a few hundred KiB: they stay in cache).
const FILL_BLOCK_ROWS: usize = 2048;

/// Runs a polars call on a Parquet file, turning its panics on damaged files
/// (found by fuzzing: "thrift bool field") into an input error.
fn guarded<T>(path: &Path, f: impl FnOnce() -> polars::prelude::PolarsResult<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(|e| Error::Parquet {
            path: path.to_owned(),
            message: e.to_string(),
        }),
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::Parquet {
                path: path.to_owned(),
                message: format!(
                    "the file is damaged or not Parquet (the reader stopped: {why}); export it again"
                ),
            })
        }
    }
}

/// A Parquet file found damaged before polars reads it.
fn damaged(path: &Path, what: &str) -> Error {
    Error::Parquet {
        path: path.to_owned(),
        message: format!("the file is damaged ({what}); export it again"),
    }
}

/// Checks the lengths a Parquet footer claims before polars reserves memory
/// for them ([`crate::parquet_footer`]).
fn check_footer(path: &Path) -> Result<()> {
    use std::io::{Read as _, Seek as _};
    let io = |e| Error::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size < 8 {
        return Ok(()); // polars says what is wrong
    }
    let mut end = [0u8; 8];
    file.seek(std::io::SeekFrom::Start(size - 8)).map_err(io)?;
    file.read_exact(&mut end).map_err(io)?;
    let len = u64::from(u32::from_le_bytes([end[0], end[1], end[2], end[3]]));
    if len + 8 > size {
        return Ok(());
    }
    let mut tail = vec![0u8; usize::try_from(len + 8).unwrap_or(0)];
    file.seek(std::io::SeekFrom::Start(size - 8 - len))
        .map_err(io)?;
    file.read_exact(&mut tail).map_err(io)?;
    match crate::parquet_footer::check(&tail) {
        crate::parquet_footer::Footer::Plausible => Ok(()),
        crate::parquet_footer::Footer::Damaged(why) => Err(damaged(path, &why)),
    }
}

/// Checks the header of every data page of the columns gapmap reads, before
/// polars decodes them: a damaged header with a negative value count makes
/// polars ask for 2^61 bytes, and a failed allocation aborts the process
/// where no error handling can catch it (found by fuzzing). The pages are
/// read (a column chunk at a time), not decompressed.
///
/// Returns the rows of each row group.
fn check_page_headers(path: &Path, wanted: &[String]) -> Result<Vec<usize>> {
    use polars_parquet::parquet::page::{CompressedPage, DataPageHeader};
    use polars_parquet::parquet::read::{PageMetaData, PageReader, read_metadata};
    use std::io::{Read as _, Seek as _};
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let meta = guarded(path, || {
        read_metadata(&mut file).map_err(polars::prelude::PolarsError::from)
    })?;
    for (g, group) in meta.row_groups.iter().enumerate() {
        for column in group.parquet_columns() {
            let name = column
                .descriptor()
                .path_in_schema
                .first()
                .map(|n| n.as_str());
            if !name.is_some_and(|n| wanted.iter().any(|w| w == n)) {
                continue;
            }
            let range = column.byte_range();
            if range.start > range.end || range.end > size {
                return Err(damaged(
                    path,
                    &format!(
                        "row group {g}, column {}: bytes {}..{} of a {size}-byte file",
                        name.unwrap_or_default(),
                        range.start,
                        range.end
                    ),
                ));
            }
            let mut bytes = vec![0; usize::try_from(range.end - range.start).unwrap_or(0)];
            file.seek(std::io::SeekFrom::Start(range.start))
                .and_then(|_| file.read_exact(&mut bytes))
                .map_err(|e| Error::io(path, e))?;
            let mut at_zero: PageMetaData = column.into();
            at_zero.column_start = 0;
            // No page is larger than its column chunk: a damaged size is
            // refused before anything is allocated for it.
            let largest = bytes.len();
            let pages = PageReader::new_with_page_meta(
                std::io::Cursor::new(polars_buffer::Buffer::from(bytes)),
                at_zero,
                Vec::new(),
                largest,
            );
            for page in pages {
                // An unreadable page is polars' to report, with its own
                // message; the reader may repeat its error, so stop here.
                let page = match page {
                    Ok(CompressedPage::Data(page)) => page,
                    Ok(CompressedPage::Dict(_)) => continue,
                    Err(_) => break,
                };
                let counts: &[i32] = match page.header() {
                    DataPageHeader::V1(h) => &[h.num_values],
                    DataPageHeader::V2(h) => &[h.num_values, h.num_nulls, h.num_rows],
                };
                if let Some(bad) = counts.iter().find(|c| **c < 0) {
                    return Err(damaged(
                        path,
                        &format!(
                            "row group {g}, column {}: a page claims {bad} values",
                            name.unwrap_or_default()
                        ),
                    ));
                }
            }
        }
    }
    Ok(meta.row_groups.iter().map(|g| g.num_rows()).collect())
}

/// The (offset, rows) slices a Parquet file is read in: whole row groups,
/// merged up to [`PARQUET_SLICE_ROWS`] (a slice that cuts a row group
/// decodes more of it than it keeps); a row group above
/// [`MAX_SLICE_ROWS`] is cut in slices of [`PARQUET_SLICE_ROWS`] (memory).
fn parquet_slices(groups: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut len) = (0, 0);
    for &g in groups {
        if len > 0 && len + g > PARQUET_SLICE_ROWS {
            out.push((start, len));
            (start, len) = (start + len, 0);
        }
        if g > MAX_SLICE_ROWS {
            let mut at = 0;
            while at < g {
                let n = PARQUET_SLICE_ROWS.min(g - at);
                out.push((start, n));
                (start, at) = (start + n, at + n);
            }
        } else {
            len += g;
        }
    }
    if len > 0 {
        out.push((start, len));
    }
    out
}

/// Reads a Parquet file a chunk of up to [`CHUNK_ROWS`] rows at a time,
/// calling `on_part` with the chunk's first line, its rows and the columns
/// of the fields the file has.
fn read_parquet_parts(
    path: &Path,
    columns: &ColumnMap,
    only: Option<Field>,
    on_part: &mut dyn FnMut(u64, usize, Vec<(Field, polars::prelude::Series)>) -> Result<()>,
) -> Result<()> {
    check_footer(path)?;
    let open = || std::fs::File::open(path).map_err(|e| Error::io(path, e));
    let mut reader = polars::prelude::ParquetReader::new(open()?);
    let headers: Vec<String> = guarded(path, || reader.schema())?
        .iter_names()
        .map(|n| n.to_string())
        .collect();
    let height = guarded(path, || reader.num_rows())?;
    let index = resolve_columns(path, columns, &headers)?;
    // Only the columns gapmap reads, a slice of row groups at a time.
    let wanted: Vec<(Field, String)> = Field::ALL
        .into_iter()
        .zip(index)
        .filter(|(f, _)| only.is_none_or(|o| o == *f))
        .filter_map(|(f, c)| c.map(|c| (f, headers[c].clone())))
        .collect();
    let names: Vec<String> = wanted.iter().map(|w| w.1.clone()).collect();
    let groups = check_page_headers(path, &names)?;
    // The slices cover what the metadata promises; a file may hold fewer rows.
    let mut slices = parquet_slices(&groups);
    let covered: usize = groups.iter().sum();
    if covered < height {
        slices.push((covered, height - covered));
    }
    for (offset, len) in slices {
        let file = open()?;
        let df = guarded(path, || {
            polars::prelude::ParquetReader::new(file)
                .with_columns(Some(names.clone()))
                .with_slice(Some((offset, len)))
                .finish()
        })?;
        let mut at = 0;
        while at < df.height() {
            let n = CHUNK_ROWS.min(df.height() - at);
            #[allow(clippy::cast_possible_wrap, reason = "row counts fit i64")]
            let part = df.slice(at as i64, n);
            let columns: Vec<(Field, polars::prelude::Series)> = wanted
                .iter()
                .map(|(field, name)| {
                    let column = guarded(path, || part.column(name).cloned())?;
                    // Damaged pages can decode to fewer values than the
                    // row group has rows (found by fuzzing).
                    if column.len() != n {
                        return Err(damaged(
                            path,
                            &format!(
                                "column {name} has {} values in rows {}–{}",
                                column.len(),
                                offset + at + 1,
                                offset + at + n
                            ),
                        ));
                    }
                    Ok((*field, column.as_materialized_series().clone()))
                })
                .collect::<Result<_>>()?;
            on_part((offset + at + 1) as u64, n, columns)?;
            at += n;
        }
        // Slices start where the metadata says, so a short one does not
        // shift the next; an empty one means the file holds no more rows
        // than this (its metadata promised more).
        if df.height() == 0 {
            break;
        }
    }
    Ok(())
}

/// A Parquet file's rows as records.
fn read_parquet(
    path: &Path,
    columns: &ColumnMap,
    spare: &mut dyn FnMut() -> Vec<RawRow>,
    on_chunk: &mut dyn FnMut(Vec<RawRow>) -> Result<()>,
) -> Result<()> {
    read_parquet_parts(path, columns, None, &mut |first_line, n, columns| {
        // Coordinates stored as text are typed here, while the block is
        // in cache.
        let text_coordinates = columns
            .iter()
            .any(|(f, s)| matches!(f, Field::Lat | Field::Lon) && !typed_numbers(*f, s));
        let mut chunk = spare();
        chunk.truncate(n);
        chunk.resize_with(n, RawRow::default);
        // Rows are filled in blocks that stay in cache while every
        // column is written into them, and on both cores: one pass over
        // the whole chunk per column missed the cache on every field.
        chunk
            .par_chunks_mut(FILL_BLOCK_ROWS)
            .enumerate()
            .try_for_each(|(b, rows)| {
                let start = b * FILL_BLOCK_ROWS;
                for (r, row) in rows.iter_mut().enumerate() {
                    row.reset(first_line + (start + r) as u64, 160);
                }
                for (field, series) in &columns {
                    #[allow(clippy::cast_possible_wrap, reason = "row counts fit i64")]
                    let block = series.slice(start as i64, rows.len());
                    set_column(path, &block, *field, rows)?;
                }
                if text_coordinates {
                    rows.iter_mut().for_each(RawRow::type_coordinates);
                }
                Ok::<_, Error>(())
            })?;
        on_chunk(chunk)
    })
}

/// Rows as a reader hands them on.
#[derive(Debug)]
pub enum Chunk {
    /// Row records (CSV).
    Rows(Vec<RawRow>),
    /// Decoded columns, read in place (Parquet).
    Columns(Box<crate::columns::ColumnChunk>),
}

/// As [`read_rows_reusing`], but a Parquet file's rows come as the columns
/// its reader decoded ([`Chunk::Columns`]), not copied into records.
///
/// # Errors
/// As [`read_rows`].
pub fn read_chunks(
    path: &Path,
    columns: &ColumnMap,
    warnings: &mut Vec<String>,
    spare: &mut dyn FnMut() -> Vec<RawRow>,
    on_chunk: &mut dyn FnMut(Chunk) -> Result<()>,
) -> Result<()> {
    read_field_chunks(path, columns, None, warnings, spare, on_chunk)
}

/// As [`read_chunks`]; with `only`, a Parquet file's chunks hold that
/// field's column alone (a CSV file's rows are read whole).
pub(crate) fn read_field_chunks(
    path: &Path,
    columns: &ColumnMap,
    only: Option<Field>,
    warnings: &mut Vec<String>,
    spare: &mut dyn FnMut() -> Vec<RawRow>,
    on_chunk: &mut dyn FnMut(Chunk) -> Result<()>,
) -> Result<()> {
    match Format::of(path)? {
        Format::Csv => read_csv(path, columns, warnings, spare, &mut |rows| {
            on_chunk(Chunk::Rows(rows))
        }),
        Format::Parquet => {
            read_parquet_parts(path, columns, only, &mut |first_line, n, columns| {
                on_chunk(Chunk::Columns(Box::new(crate::columns::ColumnChunk::new(
                    path, first_line, n, &columns,
                )?)))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `df` as a Parquet file and reads every row back.
    fn parquet_round_trip(mut df: polars::prelude::DataFrame) -> Vec<RawRow> {
        use polars::prelude::ParquetWriter;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("samples.parquet");
        let file = std::fs::File::create(&path).expect("create");
        ParquetWriter::new(file).finish(&mut df).expect("write");
        let mut rows = Vec::new();
        read_rows(
            &path,
            &ColumnMap::default(),
            &mut Vec::new(),
            &mut |chunk| {
                rows.extend(chunk);
                Ok(())
            },
        )
        .expect("read");
        rows
    }

    #[test]
    fn parquet_rows_keep_their_line_and_values_across_fill_blocks() {
        // More rows than a chunk and several fill blocks: each row must get
        // its own line number and its own column values, wherever a block ends.
        use polars::prelude::{Column, DataFrame};
        let n = CHUNK_ROWS + 3 * FILL_BLOCK_ROWS + 17;
        let ids: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        #[allow(clippy::cast_precision_loss, reason = "small row numbers")]
        let lats: Vec<f64> = (0..n).map(|i| 10.0 + i as f64 * 1e-5).collect();
        let df = DataFrame::new(
            n,
            vec![
                Column::new("test_id".into(), ids),
                Column::new("timestamp".into(), vec!["2025-06-18T01:40:30+07:00"; n]),
                Column::new("lat".into(), lats.clone()),
                Column::new("lon".into(), vec![105.8f64; n]),
                Column::new("carrier".into(), vec!["Viettel"; n]),
                Column::new("network".into(), vec!["LTE"; n]),
                Column::new("download_mbps".into(), vec![12.5f64; n]),
                Column::new("device_id".into(), vec!["d"; n]),
            ],
        )
        .expect("frame");
        let rows = parquet_round_trip(df);
        assert_eq!(rows.len(), n);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.line, i as u64 + 1);
            assert_eq!(
                row.get(Field::TestId),
                Some(format!("t{i}").as_str()),
                "row {i}"
            );
            assert_eq!(row.number(Field::Lat), Some(Some(lats[i])), "row {i}");
        }
    }

    #[test]
    fn typed_parquet_columns_read_as_their_text_would() {
        // Numbers as Float32, Float64 and integers, ids as integers: numeric
        // fields go in as values, ids as their text; nulls are absent.
        use polars::prelude::{Column, DataFrame};
        let df = DataFrame::new(
            2,
            vec![
                Column::new("test_id".into(), [101i64, 102]),
                Column::new(
                    "timestamp".into(),
                    ["2025-06-18T01:40:30+07:00", "2025-06-18T01:41:30+07:00"],
                ),
                Column::new("lat".into(), [21.1f32, 21.5]),
                Column::new("lon".into(), [105.8f64, 105.9]),
                Column::new("carrier".into(), ["Viettel", "MobiFone"]),
                Column::new("network".into(), ["LTE", "4G"]),
                Column::new("download_mbps".into(), [Some(12.5f64), Some(-1.0)]),
                Column::new("upload_mbps".into(), [Some(3i32), None]),
                Column::new("latency_ms".into(), [40i64, 41]),
                Column::new("device_id".into(), [7i64, 8]),
            ],
        )
        .expect("frame");
        let rows = parquet_round_trip(df);
        assert_eq!(rows.len(), 2);
        let a = crate::schema::check_row(&rows[0]).expect("valid row");
        // Float32 widened exactly as its text path did (cast, then shortest text).
        assert_eq!(a.lat, f64::from(21.1f32));
        assert_eq!(
            (a.lon, a.download, a.upload, a.latency),
            (105.8, 12.5, Some(3.0), Some(40.0))
        );
        assert_eq!((a.test_id, a.device_id, a.carrier), ("101", "7", "Viettel"));
        assert!(rows[1].get(Field::Upload).is_none() && !rows[1].has(Field::Upload));
        assert_eq!(
            crate::schema::check_row(&rows[1]).err(),
            Some(crate::schema::RejectReason::BadSpeed)
        );
    }

    #[test]
    fn text_coordinates_in_parquet_are_typed_as_their_text_reads() {
        // Coordinates stored as strings: the reader types those that parse
        // (the consumer types CSV rows only); one that does not parse stays
        // text and is rejected as the same text would be from CSV.
        use polars::prelude::{Column, DataFrame};
        let df = DataFrame::new(
            3,
            vec![
                Column::new("test_id".into(), ["a", "b", "c"]),
                Column::new("timestamp".into(), ["2025-06-18T01:40:30+07:00"; 3]),
                Column::new("lat".into(), ["21.123456789012345", "north", "21.5"]),
                Column::new("lon".into(), ["105.8", "105.9", "1e2"]),
                Column::new("carrier".into(), ["Viettel"; 3]),
                Column::new("network".into(), ["LTE"; 3]),
                Column::new("download_mbps".into(), [12.5f64; 3]),
                Column::new("device_id".into(), ["d"; 3]),
            ],
        )
        .expect("frame");
        let rows = parquet_round_trip(df);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].get(Field::Lat), None, "typed: no text left");
        assert_eq!(
            rows[0].number(Field::Lat),
            Some(Some(21.123_456_789_012_345))
        );
        assert_eq!(rows[2].number(Field::Lon), Some(Some(100.0)));
        assert_eq!(rows[1].get(Field::Lat), Some("north"));
        assert_eq!(
            crate::schema::check_row(&rows[1]).err(),
            Some(crate::schema::RejectReason::BadCoordinates)
        );
        let a = crate::schema::check_row(&rows[0]).expect("valid row");
        assert_eq!((a.lat, a.lon), (21.123_456_789_012_345, 105.8));
    }

    #[test]
    fn spanning_quotes_warn_with_line_and_are_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s.csv");
        let mut text =
            String::from("test_id,timestamp,lat,lon,carrier,network,download_mbps,device_id\n");
        for i in 0..25 {
            text.push_str(&format!("t{i},\"2025-01-01\nT00:00:00Z\",1,1,v,LTE,1,d\n"));
        }
        std::fs::write(&p, text).expect("write");
        let mut warnings = Vec::new();
        let mut rows = 0;
        read_rows(&p, &ColumnMap::default(), &mut warnings, &mut |chunk| {
            rows += chunk.len();
            Ok(())
        })
        .expect("read");
        assert_eq!(rows, 25);
        assert_eq!(warnings.len(), MAX_WARNINGS_PER_FILE + 1);
        assert!(
            warnings[0].contains("line 2: a quoted field spans lines 2-3"),
            "{}",
            warnings[0]
        );
        assert!(warnings[1].contains("line 4:"), "{}", warnings[1]);
        assert!(warnings[20].contains("5 more rows"), "{}", warnings[20]);
    }

    /// Every row of `path` read into fresh rows and read again refilling
    /// the chunks the consumer hands back: the same rows, field by field.
    fn assert_reused_rows_read_as_fresh(path: &Path) -> usize {
        let fresh = {
            let mut rows = Vec::new();
            read_rows(path, &ColumnMap::default(), &mut Vec::new(), &mut |chunk| {
                rows.extend(chunk);
                Ok(())
            })
            .expect("read");
            rows
        };
        let returned = std::cell::RefCell::new(Vec::<Vec<RawRow>>::new());
        let mut at = 0;
        let mut reused_chunks = 0;
        read_rows_reusing(
            path,
            &ColumnMap::default(),
            &mut Vec::new(),
            &mut || {
                let spare = returned.borrow_mut().pop().unwrap_or_default();
                reused_chunks += usize::from(!spare.is_empty());
                spare
            },
            &mut |chunk| {
                for (row, want) in chunk.iter().zip(&fresh[at..]) {
                    assert_eq!((row.line, row.truncated), (want.line, want.truncated));
                    for f in Field::ALL {
                        assert_eq!(row.get(f), want.get(f), "line {}: {f:?}", row.line);
                        assert_eq!(row.number(f), want.number(f), "line {}: {f:?}", row.line);
                    }
                }
                at += chunk.len();
                returned.borrow_mut().push(chunk);
                Ok(())
            },
        )
        .expect("read");
        assert_eq!(at, fresh.len());
        reused_chunks
    }

    #[test]
    fn parquet_slices_keep_row_groups_whole_within_bounds() {
        let s = PARQUET_SLICE_ROWS;
        // Groups above the slice size alone; small ones merged up to it.
        assert_eq!(
            parquet_slices(&[334_458, 334_458, 1]),
            vec![(0, 334_458), (334_458, 334_458), (668_916, 1)]
        );
        assert_eq!(parquet_slices(&[100, s - 100, 1, 2]), vec![(0, s), (s, 3)]);
        assert_eq!(
            parquet_slices(&[122_880; 3]),
            vec![(0, 122_880), (122_880, 122_880), (245_760, 122_880)]
        );
        // A row group above the largest read whole is cut in slices.
        let big = MAX_SLICE_ROWS + 5;
        let cut = parquet_slices(&[10, big]);
        assert_eq!(cut[0], (0, 10));
        assert!(cut[1..].iter().all(|&(_, n)| n <= s));
        assert_eq!(cut[1..].iter().map(|c| c.1).sum::<usize>(), big);
        assert!(
            cut.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0),
            "contiguous: {cut:?}"
        );
        assert_eq!(parquet_slices(&[]), vec![]);
    }

    #[test]
    fn csv_fields_decode_as_each_field_alone_would() {
        // The record is checked as UTF-8 once; a field must still read as
        // its own bytes would: an invalid sequence cut by a comma (whose
        // halves join into a valid "é" once the comma is gone) gives
        // replacement characters, as String::from_utf8_lossy on the field.
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = dir.path().join("s.csv");
        let mut bytes =
            b"test_id,device_id,timestamp,lat,lon,carrier,network,download_mbps\n".to_vec();
        bytes.extend_from_slice(b"x\xC3,\xA9y,2025-06-01T00:00:00Z,21,105,Viettel,LTE,1\n");
        bytes.extend_from_slice(
            " thôn 1 ,bản\u{feff},2025-06-01T00:00:00Z,21,105,Viettel,LTE,1\n".as_bytes(),
        );
        bytes.extend_from_slice(b"ok,\xFF\xFE,2025-06-01T00:00:00Z,21,105,Viettel,LTE,1\n");
        std::fs::write(&csv, &bytes).expect("write");
        let mut rows = Vec::new();
        read_rows(&csv, &ColumnMap::default(), &mut Vec::new(), &mut |chunk| {
            rows.extend(chunk);
            Ok(())
        })
        .expect("read");
        let got: Vec<(Option<&str>, Option<&str>)> = rows
            .iter()
            .map(|r| (r.get(Field::TestId), r.get(Field::DeviceId)))
            .collect();
        assert_eq!(
            got,
            [
                (Some("x\u{fffd}"), Some("\u{fffd}y")),
                (Some("thôn 1"), Some("bản\u{feff}")),
                (Some("ok"), Some("\u{fffd}\u{fffd}")),
            ]
        );
    }

    #[test]
    fn reused_rows_read_as_fresh_ones() {
        // Rows that had a field, a longer text or the truncated flag are
        // refilled by rows without: nothing may carry over.
        let n = 2 * CSV_CHUNK_ROWS + 17;
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = dir.path().join("s.csv");
        let mut text = String::from(
            "test_id,timestamp,lat,lon,carrier,network,download_mbps,upload_mbps,latency_ms,device_id,accuracy_m\n",
        );
        for i in 0..n {
            let id = if i % 7 == 0 {
                format!("t{i}-{}", "x".repeat(i % 90))
            } else {
                format!("t{i}")
            };
            if i % 5 == 0 {
                text.push_str(&format!("{id},2025-06-01T00:00:00Z,21\n"));
                continue;
            }
            let upload = if i % 3 == 0 { "4.5" } else { "" };
            let accuracy = if i % 11 == 0 { "12" } else { " " };
            text.push_str(&format!(
                "{id},2025-06-01T00:00:00Z,21.{i},105.5,Viettel,LTE,{i}.25,{upload},,d{},{accuracy}\n",
                i % 13
            ));
        }
        std::fs::write(&csv, text).expect("write");
        assert!(
            assert_reused_rows_read_as_fresh(&csv) >= 2,
            "later chunks reuse rows"
        );

        use polars::prelude::{Column, DataFrame, ParquetWriter};
        let n = 2 * CHUNK_ROWS + 17; // Parquet chunks are larger
        let ids: Vec<String> = (0..n)
            .map(|i| {
                if i % 7 == 0 {
                    format!("t{i}-{}", "x".repeat(i % 90))
                } else {
                    format!("t{i}")
                }
            })
            .collect();
        let uploads: Vec<Option<f64>> = (0..n).map(|i| (i % 3 == 0).then_some(4.5)).collect();
        let carriers: Vec<Option<&str>> =
            (0..n).map(|i| (i % 4 != 0).then_some("Viettel")).collect();
        let mut df = DataFrame::new(
            n,
            vec![
                Column::new("test_id".into(), ids),
                Column::new("timestamp".into(), vec!["2025-06-18T01:40:30+07:00"; n]),
                Column::new("lat".into(), vec![21.5f64; n]),
                Column::new("lon".into(), vec![105.8f64; n]),
                Column::new("carrier".into(), carriers),
                Column::new("network".into(), vec!["LTE"; n]),
                Column::new("download_mbps".into(), vec![12.5f64; n]),
                Column::new("upload_mbps".into(), uploads),
                Column::new("device_id".into(), vec!["d"; n]),
            ],
        )
        .expect("frame");
        let parquet = dir.path().join("s.parquet");
        ParquetWriter::new(std::fs::File::create(&parquet).expect("create"))
            .finish(&mut df)
            .expect("write");
        assert!(
            assert_reused_rows_read_as_fresh(&parquet) >= 2,
            "later chunks reuse rows"
        );
    }
}
