//! Parquet rows read in place: the columns the reader decoded, one per
//! field, and rows that are an index into them. Checking a row reads its
//! fields straight from the decoded pages' arrays; no text is copied into
//! a row record first (which cost more CPU than decoding the file).

use polars::prelude::{DataType, Series};
use polars_arrow::array::{Array as _, PrimitiveArray, Utf8ViewArray};

use crate::error::{Error, Result};
use crate::schema::{FIELD_COUNT, Field, Fields};

/// One field's column in a chunk.
#[derive(Debug, Clone)]
enum FieldColumn {
    /// The file has no column for the field.
    Absent,
    /// Text, read as a CSV's would be (trimmed; blank is absent).
    Text(Utf8ViewArray),
    /// A numeric field from a number column: values, nulls absent.
    Numbers(PrimitiveArray<f64>),
}

/// Consecutive rows of a Parquet file as decoded columns.
#[derive(Debug, Clone)]
pub struct ColumnChunk {
    /// Line (1-based row of the file) of the chunk's first row.
    first_line: u64,
    len: usize,
    fields: [FieldColumn; FIELD_COUNT],
}

impl ColumnChunk {
    /// The chunk of `len` rows starting at `first_line` from each field's
    /// column (fields without one are absent). Numeric fields in number
    /// columns keep their values; every other column is read as the text
    /// [`crate::ingest::text_series`] gives it, as the row records would.
    ///
    /// # Errors
    /// A column that cannot be converted (reported against `path`).
    pub fn new(
        path: &std::path::Path,
        first_line: u64,
        len: usize,
        columns: &[(Field, Series)],
    ) -> Result<Self> {
        let perr = |e: polars::prelude::PolarsError| Error::Parquet {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let mut fields: [FieldColumn; FIELD_COUNT] = std::array::from_fn(|_| FieldColumn::Absent);
        for (field, s) in columns {
            // The reader checks this; a row past a column's end would panic.
            if s.len() != len {
                return Err(Error::Parquet {
                    path: path.to_owned(),
                    message: format!("column of {} has {} rows, not {len}", field.name(), s.len()),
                });
            }
            fields[field.index()] = if crate::ingest::typed_numbers(*field, s) {
                let c = s.cast(&DataType::Float64).map_err(perr)?;
                let c = c.f64().map_err(perr)?.rechunk();
                FieldColumn::Numbers(c.downcast_as_array().clone())
            } else {
                let text = crate::ingest::text_series(path, s)?;
                let c = text.str().map_err(perr)?.rechunk();
                FieldColumn::Text(c.downcast_as_array().clone())
            };
        }
        Ok(Self {
            first_line,
            len,
            fields,
        })
    }

    /// Rows in the chunk.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the chunk has no rows.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every row, in order.
    #[must_use]
    pub fn rows(&self) -> Vec<ColumnRow<'_>> {
        (0..self.len)
            .map(|index| ColumnRow { chunk: self, index })
            .collect()
    }
}

/// A row of a [`ColumnChunk`].
#[derive(Debug, Clone, Copy)]
pub struct ColumnRow<'a> {
    chunk: &'a ColumnChunk,
    index: usize,
}

impl Fields for ColumnRow<'_> {
    fn line(&self) -> u64 {
        self.chunk.first_line + self.index as u64
    }

    fn truncated(&self) -> bool {
        false // a Parquet row has every column
    }

    fn has(&self, field: Field) -> bool {
        match &self.chunk.fields[field.index()] {
            FieldColumn::Absent => false,
            FieldColumn::Text(_) => self.get(field).is_some(),
            FieldColumn::Numbers(a) => a.is_valid(self.index),
        }
    }

    fn get(&self, field: Field) -> Option<&str> {
        match &self.chunk.fields[field.index()] {
            FieldColumn::Text(a) => a
                .get(self.index)
                .map(crate::schema::trim_field)
                .filter(|v| !v.is_empty()),
            FieldColumn::Absent | FieldColumn::Numbers(_) => None,
        }
    }

    fn number(&self, field: Field) -> Option<Option<f64>> {
        match &self.chunk.fields[field.index()] {
            FieldColumn::Numbers(a) => a.is_valid(self.index).then(|| Some(a.value(self.index))),
            FieldColumn::Text(_) => self.get(field).map(|s| s.parse::<f64>().ok()),
            FieldColumn::Absent => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnMap, RawRow};
    use polars::prelude::{Column, DataFrame, IntoColumn as _, ParquetWriter, TimeUnit};

    /// Every field of every row, as the checks read it.
    fn fields_of(row: &impl Fields) -> Vec<String> {
        let mut out = vec![format!("line {} truncated {}", row.line(), row.truncated())];
        for f in Field::ALL {
            let number = row.number(f).map(|v| v.map(f64::to_bits));
            // Numeric fields are read by number only (records drop the
            // text of coordinates they type).
            let text = if f.numeric() { None } else { row.get(f) };
            out.push(format!(
                "{f:?}: has {} text {text:?} number {number:?}",
                row.has(f)
            ));
        }
        out.push(format!("{:?}", crate::schema::check_row(row)));
        out.push(format!("{:?}", crate::schema::row_position(row)));
        out
    }

    #[test]
    fn rows_read_in_place_answer_as_row_records_do() {
        // Oracle: the same file read into row records (each field trimmed
        // and stored on its own). Text with blanks and padding, nulls,
        // numbers as text, integers, Float32, NaN and infinities, ids as
        // numbers, time zones given and not, and a Boolean platform; more
        // rows than a chunk, so lines run on across chunks.
        let n = crate::ingest::CHUNK_ROWS + 1_000;
        let pick = |i: usize, k: usize| i % k;
        let ids: Vec<Option<String>> = (0..n)
            .map(|i| match pick(i, 7) {
                0 => None,
                1 => Some("  ".to_owned()),
                2 => Some(format!(" t{i} ")),
                _ => Some(format!("t{}", i / 2)),
            })
            .collect();
        let stamps: Vec<Option<i64>> = (0..n)
            .map(|i| (pick(i, 11) != 0).then_some(1_750_000_000_000 + i as i64 * 61_000))
            .collect();
        let lats: Vec<Option<String>> = (0..n)
            .map(|i| match pick(i, 9) {
                0 => None,
                1 => Some("abc".to_owned()),
                2 => Some(" 21.5 ".to_owned()),
                3 => Some("NaN".to_owned()),
                _ => Some(format!("{}", 20.0 + (i % 100) as f64 / 37.0)),
            })
            .collect();
        let lons: Vec<Option<f32>> = (0..n)
            .map(|i| match pick(i, 13) {
                0 => None,
                1 => Some(f32::INFINITY),
                _ => Some(105.0 + (i % 50) as f32 / 7.0),
            })
            .collect();
        let downloads: Vec<Option<f64>> = (0..n)
            .map(|i| match pick(i, 6) {
                0 => None,
                1 => Some(f64::NAN),
                2 => Some(-1.0),
                _ => Some((i % 300) as f64 / 3.0),
            })
            .collect();
        let uploads: Vec<Option<i64>> = (0..n)
            .map(|i| (pick(i, 5) != 0).then_some((i % 40) as i64))
            .collect();
        let devices: Vec<i64> = (0..n).map(|i| (i % 97) as i64).collect();
        let platforms: Vec<Option<bool>> = (0..n)
            .map(|i| (pick(i, 3) != 0).then_some(i % 2 == 0))
            .collect();
        let carriers: Vec<&str> = (0..n)
            .map(|i| ["Viettel", " vnpt", "", "45201"][i % 4])
            .collect();
        let networks: Vec<Option<&str>> = (0..n)
            .map(|i| [Some("LTE"), None, Some("wifi"), Some("5G ")][i % 4])
            .collect();
        let df = DataFrame::new(
            n,
            vec![
                Column::new("test_id".into(), ids),
                Column::new("lat".into(), lats),
                Column::new("lon".into(), lons),
                Column::new("carrier".into(), carriers),
                Column::new("network".into(), networks),
                Column::new("download_mbps".into(), downloads),
                Column::new("upload_mbps".into(), uploads),
                Column::new("device_id".into(), devices),
                Column::new("platform".into(), platforms),
            ],
        )
        .expect("frame");
        let stamps = Column::new("timestamp".into(), stamps);
        let dir = tempfile::tempdir().expect("tempdir");
        for tz in [Some(polars::prelude::TimeZone::UTC), None] {
            let column = stamps
                .as_materialized_series()
                .clone()
                .into_datetime(TimeUnit::Milliseconds, tz.clone())
                .into_column();
            let mut df = df.clone();
            df.with_column(column).expect("column");
            let path = dir.path().join("samples.parquet");
            let file = std::fs::File::create(&path).expect("create");
            ParquetWriter::new(file).finish(&mut df).expect("write");

            let mut records: Vec<RawRow> = Vec::new();
            crate::ingest::read_rows(
                &path,
                &ColumnMap::default(),
                &mut Vec::new(),
                &mut |chunk| {
                    records.extend(chunk);
                    Ok(())
                },
            )
            .expect("records");
            let mut in_place = Vec::new();
            let mut chunks = 0;
            crate::ingest::read_chunks(
                &path,
                &ColumnMap::default(),
                &mut Vec::new(),
                &mut Vec::new,
                &mut |chunk| {
                    let crate::ingest::Chunk::Columns(c) = chunk else {
                        panic!("a Parquet file gives columns");
                    };
                    chunks += 1;
                    in_place.extend(c.rows().iter().map(fields_of));
                    Ok(())
                },
            )
            .expect("columns");
            assert!(chunks > 1, "rows across chunks");
            assert_eq!(in_place.len(), n);
            let mut accepted = 0;
            for (i, (record, row)) in records.iter().zip(&in_place).enumerate() {
                assert_eq!(&fields_of(record), row, "row {i}, time zone {tz:?}");
                accepted += usize::from(crate::schema::check_row(record).is_ok());
            }
            // With a time zone both outcomes occur; naive times have no
            // zone, so every row is rejected (bad_timestamp or earlier).
            if tz.is_some() {
                assert!(accepted > 0 && accepted < n, "{accepted} of {n} accepted");
            } else {
                assert_eq!(accepted, 0, "naive timestamps");
            }
        }
    }
}
