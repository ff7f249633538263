// Shared by the sample-reader targets: write the bytes to a file of the
// given extension and read it as gapmap does, checking every row.
use gapmap_core::ingest::read_rows;
use gapmap_core::schema::{ColumnMap, check_row};

pub fn read_samples(data: &[u8], ext: &str) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join(format!("s.{ext}"));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let mut warnings = Vec::new();
    let _ = read_rows(&path, &ColumnMap::default(), &mut warnings, &mut |rows| {
        for r in &rows {
            let _ = check_row(r);
        }
        Ok(())
    });
}
