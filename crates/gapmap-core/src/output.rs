//! Atomic, deterministic output files.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// A file written in place of its target only when complete: the content
/// goes to a temporary file in the same directory, renamed over the target
/// by [`AtomicFile::commit`]; dropped before that, it leaves nothing.
#[derive(Debug)]
pub struct AtomicFile {
    path: std::path::PathBuf,
    out: std::io::BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    /// Starts writing `path` (its directory is created if need be).
    ///
    /// # Errors
    /// The directory is not writable.
    pub fn create(path: &Path) -> Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            out: std::io::BufWriter::with_capacity(1 << 20, temp_beside(path, ".tmp")?),
        })
    }

    /// Where the content goes (buffered).
    pub fn writer(&mut self) -> &mut dyn Write {
        &mut self.out
    }

    /// Puts the complete file in place of its target.
    ///
    /// # Errors
    /// Writing, syncing or renaming fails.
    pub fn commit(self) -> Result<()> {
        let Self { path, out } = self;
        let tmp = out
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        put_in_place(tmp, &path)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A temporary file in `path`'s directory (created if need be), named so
/// that an interrupted run's leftovers are recognised (`.gapmap-*.tmp`).
pub(crate) fn temp_beside(path: &Path, suffix: &str) -> Result<tempfile::NamedTempFile> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    tempfile::Builder::new()
        .prefix(".gapmap-")
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))
}

/// Puts a complete temporary file in place of `path`, readable by others.
pub(crate) fn put_in_place(tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    // Temporary files are private (0600); outputs are for others to read too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(path, e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Writes a file atomically (see [`AtomicFile`]).
///
/// # Errors
/// The directory is not writable, or writing fails.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    write(file.writer()).map_err(|e| Error::io(path, e))?;
    file.commit()
}

/// Writes a value as pretty-printed JSON with a trailing newline, atomically.
///
/// # Errors
/// The value cannot be serialised, or the file cannot be written.
pub fn write_json_pretty(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })?;
    write_atomic(path, |w| {
        w.write_all(text.as_bytes())?;
        w.write_all(b"\n")
    })
}

/// Writes CSV rows atomically.
///
/// # Errors
/// As [`write_atomic`].
pub fn write_csv<I, R>(path: &Path, header: &[&str], rows: I) -> Result<()>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<[u8]>,
{
    write_atomic(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(header)?;
        for row in rows {
            csv.write_record(row)?;
        }
        csv.flush()?;
        Ok(())
    })
}

/// A number with at most `decimals` decimals, trailing zeros removed
/// (`12.500` → `12.5`, `3.000` → `3`); empty for `None`.
#[must_use]
pub fn fmt_decimal(v: Option<f64>, decimals: usize) -> String {
    let Some(v) = v else { return String::new() };
    // One allocation: trailing zeros are cut in place (millions of calls
    // for the heatmap tables).
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        let kept = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(kept);
    }
    if s == "-0" {
        s.remove(0);
    }
    s
}

/// The number [`fmt_decimal`] writes, as a reader parses it back
/// (`fmt_decimal(v, decimals).parse()`), without writing the text: the
/// heatmap tables hold a million of them at national scale.
///
/// `v · 10^decimals` is rounded once by the multiplication, by at most
/// half an ulp; far from a half-integer that cannot change which integer
/// `k` is nearest, and `k / 10^decimals` is the correctly rounded value of
/// the decimal text, as its parse is. Values near a half, huge or not
/// finite take the text.
#[must_use]
pub fn decimal_value(v: Option<f64>, decimals: usize) -> Option<f64> {
    let v = v?;
    if decimals <= 15 && v.is_finite() {
        #[allow(clippy::cast_possible_truncation, reason = "decimals <= 15")]
        let scale = 10f64.powi(decimals as i32); // exact up to 10^22
        let t = v * scale;
        // Below 2^52 every half-integer is representable and t - trunc(t)
        // is exact.
        if t.abs() < 4.0e15 {
            let to_half = ((t - t.trunc()).abs() - 0.5).abs();
            // The product's error is under |t|·2^-53; keep a wide margin.
            if to_half > t.abs() * 1e-14 + 1e-300 {
                let k = t.round();
                // "-0" is written "0".
                return Some(if k == 0.0 { 0.0 } else { k / scale });
            }
        }
    }
    fmt_decimal(Some(v), decimals).parse().ok()
}

/// A probability with 6 significant digits, written without exponent.
#[must_use]
pub fn fmt_probability(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        Some(0.0) => "0".to_owned(),
        Some(p) => {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "log10 of a probability is small"
            )]
            let digits = (5 - p.abs().log10().floor() as i64).clamp(0, 320) as usize;
            fmt_decimal(Some(p), digits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(fmt_decimal(Some(12.5), 3), "12.5");
        assert_eq!(fmt_decimal(Some(3.0), 3), "3");
        assert_eq!(fmt_decimal(Some(0.1 + 0.2), 3), "0.3");
        assert_eq!(fmt_decimal(Some(-0.0001), 3), "0");
        assert_eq!(fmt_decimal(None, 3), "");
        assert_eq!(fmt_decimal(Some(1234.0), 0), "1234");
    }

    /// The oracle is the text itself: written by `fmt_decimal`, parsed by
    /// the standard library; compared bit for bit (so -0 and 0 differ).
    #[test]
    fn decimal_values_are_the_written_text_parsed() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let oracle = |v: f64, d: usize| fmt_decimal(Some(v), d).parse::<f64>().ok();
        let mut values: Vec<f64> = vec![
            0.0,
            -0.0,
            -0.0001,
            0.0005,
            0.0015,
            0.0025,
            1.0005,
            2.675,
            1e-320,
            -1e-320,
            1e300,
            -1e300,
            4.0e15,
            1.5e16,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1 + 0.2,
            10_000.0,
        ];
        for _ in 0..20_000 {
            // Speeds as measured (two decimals) and derived (medians,
            // shares), ties at every decimal count, and any magnitude.
            let cents = f64::from(rng.random_range(0u32..1_000_000)) / 100.0;
            let tie = f64::from(rng.random_range(0u32..100_000)) + 0.5;
            let exp = rng.random_range(-20i32..20);
            values.extend([
                cents,
                (cents + f64::from(rng.random_range(0u32..100)) / 100.0) / 2.0,
                tie / 10f64.powi(rng.random_range(0i32..8)),
                -cents,
                rng.random::<f64>(),
                rng.random::<f64>() * 10f64.powi(exp),
                f64::from_bits(rng.random::<u64>()),
            ]);
        }
        let mut fast = 0usize;
        for &v in &values {
            for d in [0, 1, 2, 3, 4, 6, 15, 16, 20] {
                let got = decimal_value(Some(v), d);
                let want = oracle(v, d);
                assert_eq!(
                    got.map(f64::to_bits),
                    want.map(f64::to_bits),
                    "{v:e} at {d} decimals: {got:?} against the text's {want:?}"
                );
                // How many took the arithmetic, not the text.
                let t = v * 10f64.powi(i32::try_from(d).unwrap_or(0));
                fast += usize::from(d <= 15 && t.abs() < 4.0e15);
            }
        }
        assert!(fast > values.len() * 4, "most values take the arithmetic");
        assert_eq!(decimal_value(None, 3), None);
    }

    #[test]
    fn probabilities() {
        assert_eq!(fmt_probability(Some(1.0)), "1");
        assert_eq!(fmt_probability(Some(1.0 / 32.0)), "0.03125");
        assert_eq!(fmt_probability(Some(0.1875)), "0.1875");
        assert_eq!(fmt_probability(Some(1.234_567_89e-9)), "0.00000000123457");
        assert_eq!(fmt_probability(None), "");
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.csv");
        write_csv(&p, &["x", "y"], [["1", "2"]]).expect("write");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "x,y\n1,2\n");
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }

    #[cfg(unix)]
    #[test]
    fn outputs_are_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.csv");
        write_csv(&p, &["x"], [["1"]]).expect("write");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}
