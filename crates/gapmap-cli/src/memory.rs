//! A warning before a run that would not fit in memory: better said at the
//! start than learnt from the system killing the run minutes later.

use std::path::Path;

use gapmap_core::ingest::row_count_hint;
use gapmap_core::ingest_run::estimated_peak_bytes;

/// The memory this process may still take, in bytes: the system's
/// available memory (`MemAvailable`), or less if a control group (a
/// container, a systemd slice) leaves less. `None` where neither is known.
pub fn available_bytes() -> Option<u64> {
    let system = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| meminfo_available(&t));
    let read = |name: &str| std::fs::read_to_string(Path::new("/sys/fs/cgroup").join(name));
    let group = match (read("memory.max"), read("memory.current")) {
        (Ok(max), Ok(current)) => cgroup_headroom(&max, &current),
        _ => None,
    };
    match (system, group) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn meminfo_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then(|| kib.saturating_mul(1024))
}

/// What a control group's limit (`memory.max`: bytes or `max`) leaves
/// above its use (`memory.current`); `None` without a limit.
fn cgroup_headroom(max: &str, current: &str) -> Option<u64> {
    let max: u64 = max.trim().parse().ok()?;
    let current: u64 = current.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// The warning for `rows` sample rows when their analysis needs more than
/// `available` bytes; `window` says whether `--from`/`--to` may leave rows out.
fn warning(rows: u64, available: u64, window: bool) -> Option<String> {
    let needed = estimated_peak_bytes(rows);
    if needed <= available {
        return None;
    }
    #[allow(clippy::cast_precision_loss, reason = "GiB to one decimal")]
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    let fewer = if window {
        " (less if --from/--to leaves rows out: only the window's samples are held)"
    } else {
        ""
    };
    Some(format!(
        "the sample files hold about {rows} rows; analysing them takes about {:.1} GiB of \
         memory{fewer}, and {:.1} GiB are available: the run may be killed or slow to a crawl. \
         Analyse fewer months at a time (--from/--to) or fewer files, or use a machine with more memory",
        gib(needed),
        gib(available)
    ))
}

/// The warning for a run over `files`, if this machine seems short of memory for it.
pub fn check(files: &[std::path::PathBuf], window: bool) -> Option<String> {
    let rows: u64 = files
        .iter()
        .filter_map(|f| row_count_hint(f))
        .map(|n| n as u64)
        .sum();
    warning(rows, available_bytes()?, window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_gives_available_bytes() {
        let text = "MemTotal:       24576000 kB\nMemFree:         1000000 kB\n\
                    MemAvailable:   20000000 kB\nBuffers:          123 kB\n";
        assert_eq!(meminfo_available(text), Some(20_000_000 * 1024));
        assert_eq!(meminfo_available("MemTotal: 1 kB\n"), None);
        assert_eq!(meminfo_available("MemAvailable: lots\n"), None);
    }

    #[test]
    fn cgroup_headroom_is_limit_minus_use() {
        assert_eq!(
            cgroup_headroom("4294967296\n", "1073741824\n"),
            Some(3 << 30)
        );
        assert_eq!(cgroup_headroom("max\n", "1073741824\n"), None);
        assert_eq!(cgroup_headroom("100\n", "200\n"), Some(0));
    }

    #[test]
    fn warns_only_when_the_estimate_exceeds_what_is_available() {
        // 100 M rows: 300 MiB + 110 B × 10^8 = 11 314 601 600 B ≈ 10.5 GiB.
        let needed = (300u64 << 20) + 110 * 100_000_000;
        assert_eq!(warning(100_000_000, needed, false), None);
        let w = warning(100_000_000, 8 << 30, true).unwrap();
        assert!(w.contains("about 100000000 rows"), "{w}");
        assert!(w.contains("10.5 GiB of memory"), "{w}");
        assert!(w.contains("8.0 GiB are available"), "{w}");
        assert!(w.contains("--from/--to leaves rows out"), "{w}");
        let w = warning(100_000_000, needed - 1, false).unwrap();
        assert!(!w.contains("leaves rows out"), "{w}");
        assert_eq!(warning(0, 300 << 20, false), None);
    }
}
