// Shared by the sample-reader targets: write the bytes to a file of the
// given extension and read it as gapmap does, checking every row, once as
// row records and once as ingestion reads it (Parquet rows in place, in the
// decoded columns): the two must answer alike, field by field.
use gapmap_core::ingest::{Chunk, read_chunks, read_rows};
use gapmap_core::schema::{ColumnMap, Field, Fields, check_row, row_position};

/// Every field of a row as the checks read it (numeric fields by number).
fn fields_of(row: &impl Fields) -> Vec<String> {
    let mut out = vec![format!("{} {}", row.line(), row.truncated())];
    for f in Field::ALL {
        let number = row.number(f).map(|v| v.map(f64::to_bits));
        let text = if f.numeric() { None } else { row.get(f) };
        out.push(format!("{} {text:?} {number:?}", row.has(f)));
    }
    out.push(format!("{:?} {:?}", check_row(row), row_position(row)));
    out
}

pub fn read_samples(data: &[u8], ext: &str) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join(format!("s.{ext}"));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let mut warnings = Vec::new();
    let mut records = Vec::new();
    let by_records = read_rows(&path, &ColumnMap::default(), &mut warnings, &mut |rows| {
        records.extend(rows.iter().map(fields_of));
        Ok(())
    });
    let mut in_place = Vec::new();
    let by_chunks = read_chunks(
        &path,
        &ColumnMap::default(),
        &mut Vec::new(),
        &mut Vec::new,
        &mut |chunk| {
            match chunk {
                Chunk::Rows(rows) => in_place.extend(rows.iter().map(fields_of)),
                Chunk::Columns(c) => in_place.extend(c.rows().iter().map(fields_of)),
            }
            Ok(())
        },
    );
    assert_eq!(by_records.is_ok(), by_chunks.is_ok(), "{by_records:?} {by_chunks:?}");
    if by_records.is_ok() {
        assert_eq!(records, in_place, "rows read in place differ from records");
    }
}
