//! A warning before a run that would not fit in memory: better said at the
//! start than learnt from the system killing the run minutes later.

use std::path::Path;

use gapmap_core::ingest::row_count_hint;
use gapmap_core::ingest_run::estimated_peak_bytes;

/// The memory this process may still take, in bytes: the system's
/// available memory (`MemAvailable`), or less if a control group (a
/// container, a systemd slice, cgroup v1 or v2) leaves less. `None` where
/// neither is known.
pub fn available_bytes() -> Option<u64> {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let system = read(Path::new("/proc/meminfo")).and_then(|t| meminfo_available(&t));
    let (v2, v1) = read(Path::new("/proc/self/cgroup"))
        .map(|t| cgroup_paths(&t))
        .unwrap_or_default();
    let root = Path::new("/sys/fs/cgroup");
    let mut group: Option<u64> = None;
    let mut narrow = |h: Option<u64>| {
        if let Some(h) = h {
            group = Some(group.map_or(h, |g| g.min(h)));
        }
    };
    // v1: the memory controller's `hierarchical_memory_limit` already
    // takes the ancestors' limits into account.
    if let Some(path) = v1 {
        let dir = root.join("memory").join(path.trim_start_matches('/'));
        let stat = read(&dir.join("memory.stat")).unwrap_or_default();
        let usage = read(&dir.join("memory.usage_in_bytes")).and_then(|t| t.trim().parse().ok());
        narrow(
            stat_value(&stat, "hierarchical_memory_limit").and_then(|limit| {
                let cache = stat_value(&stat, "total_active_file").unwrap_or(0)
                    + stat_value(&stat, "total_inactive_file").unwrap_or(0);
                headroom(limit, usage?, cache)
            }),
        );
    }
    // v2: each level's `memory.max`, up to the root (pure v2, or the
    // hybrid layout's `unified` mount).
    if let Some(path) = v2 {
        for base in [root.to_path_buf(), root.join("unified")] {
            let mut dir = Some(base.join(path.trim_start_matches('/')));
            while let Some(d) = dir.filter(|d| d.starts_with(&base)) {
                let number = |name: &str| read(&d.join(name)).and_then(|t| t.trim().parse().ok());
                // `memory.max` is "max" where this level sets no limit.
                narrow(
                    number("memory.max")
                        .zip(number("memory.current"))
                        .and_then(|(m, c)| {
                            let stat = read(&d.join("memory.stat")).unwrap_or_default();
                            let cache = stat_value(&stat, "active_file").unwrap_or(0)
                                + stat_value(&stat, "inactive_file").unwrap_or(0);
                            headroom(m, c, cache)
                        }),
                );
                dir = d.parent().map(Path::to_path_buf);
            }
        }
    }
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

/// The process's control group in `/proc/self/cgroup`: its cgroup v2 path
/// (`0::path`) and its cgroup v1 memory controller's path.
fn cgroup_paths(text: &str) -> (Option<String>, Option<String>) {
    let (mut v2, mut v1) = (None, None);
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path.to_owned());
        }
    }
    (v2, v1)
}

/// A `key value` line's value in a cgroup's `memory.stat`.
fn stat_value(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// What a control group's `limit` leaves above its `usage`, its file cache
/// (which the kernel reclaims before failing) not counted as used; `None`
/// when the limit is none (cgroup v1 writes "none" as about 2^63).
fn headroom(limit: u64, usage: u64, file_cache: u64) -> Option<u64> {
    (limit < 1 << 62).then(|| limit.saturating_sub(usage.saturating_sub(file_cache)))
}

/// Bytes in GiB, for a message to one decimal.
#[allow(clippy::cast_precision_loss, reason = "GiB to one decimal")]
fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// The warning for `rows` sample rows when their analysis needs more than
/// `available` bytes; `window` says whether `--from`/`--to` may leave rows
/// out, `spilled` whether the repeated test ids are found on disk.
fn warning(rows: u64, available: u64, window: bool, spilled: bool) -> Option<String> {
    let needed = estimated_peak_bytes(rows, spilled);
    if needed <= available {
        return None;
    }
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

/// The warning for a run over `rows` rows ([`rows_hint`]), if this
/// machine seems short of memory for it.
pub fn check(rows: u64, window: bool, spilled: bool) -> Option<String> {
    warning(rows, available_bytes()?, window, spilled)
}

/// Rows past which `--spill auto` spills CSV files too (about 400 MB of
/// test-id table), though its pass over them costs time: the CSV text is
/// read again (1.7–1.9 s per 10 M rows on the project machine, 0.8 s of it
/// won back in the duplicate checks; measured in the README).
pub const SPILL_CSV_ROWS: u64 = 20_000_000;

/// When working files go to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Spill {
    /// When every sample file is Parquet (reading their test-id column
    /// costs less than remembering every id: measured), or the files hold
    /// more than 20 million rows.
    Auto,
    /// Always.
    Always,
    /// Never: everything is held in memory.
    Never,
}

impl Spill {
    /// Whether a run over `files`, of `rows` rows ([`rows_hint`]), spills.
    pub fn wanted(self, files: &[std::path::PathBuf], rows: u64) -> bool {
        let parquet = |f: &std::path::PathBuf| {
            matches!(
                gapmap_core::ingest::Format::of(f),
                Ok(gapmap_core::ingest::Format::Parquet)
            )
        };
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => files.iter().all(parquet) || rows > SPILL_CSV_ROWS,
        }
    }
}

/// Rows past which `--samples-on-disk auto` keeps the accepted samples on
/// disk: a 40 M-row month takes about 3.5 GiB in memory.
pub const STORE_ROWS: u64 = 40_000_000;

/// Whether accepted samples are kept on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SamplesOnDisk {
    /// When the files hold more than 40 million rows, or
    /// this machine seems short of memory for the samples in memory.
    Auto,
    /// Always.
    Always,
    /// Never: every sample is held in memory.
    Never,
}

impl SamplesOnDisk {
    /// Whether a run of `rows` rows ([`rows_hint`]) keeps its samples on disk
    /// (`spilled`: whether its repeated test ids are found on disk).
    pub fn wanted(self, rows: u64, spilled: bool) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => {
                rows > STORE_ROWS
                    || available_bytes().is_some_and(|a| estimated_peak_bytes(rows, spilled) > a)
            }
        }
    }
}

/// Bytes a sample takes on disk with `sets` boundary sets.
pub const fn stored_sample_bytes(sets: usize) -> u64 {
    gapmap_core::store::SampleStore::record_bytes(sets)
}

/// The warning for samples kept on disk in `dir`, when its `free` bytes
/// may not hold `rows` samples of `sets` boundary sets (every row
/// accepted: an upper bound).
pub fn disk_warning(dir: &Path, rows: u64, sets: usize, free: u64) -> Option<String> {
    let need = rows.saturating_mul(stored_sample_bytes(sets));
    (need > free).then(|| {
        format!(
            "{}: the samples on disk may need up to {:.1} GiB here ({rows} rows of {} bytes), \
             and {:.1} GiB are free; if the run stops for want of space, free some, choose another \
             folder with --work-dir, or hold the samples in memory with --samples-on-disk never",
            dir.display(),
            gib(need),
            stored_sample_bytes(sets),
            gib(free)
        )
    })
}

/// The rows of `files`, as their metadata or size suggest.
pub fn rows_hint(files: &[std::path::PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| row_count_hint(f))
        .map(|n| n as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_warning_comes_when_the_free_space_cannot_hold_every_row() {
        // 100 rows of one boundary set: 100 × (64 + 9) = 7 300 bytes.
        let dir = Path::new("/data/work");
        assert_eq!(stored_sample_bytes(1), 73);
        assert_eq!(stored_sample_bytes(2), 82);
        assert_eq!(disk_warning(dir, 100, 1, 7_300), None);
        let w = disk_warning(dir, 100, 1, 7_299).expect("short by a byte");
        for needle in [
            "/data/work",
            "100 rows of 73 bytes",
            "--work-dir",
            "--samples-on-disk never",
        ] {
            assert!(w.contains(needle), "{needle:?} not in {w}");
        }
        // Two sets: 8 200 bytes.
        assert!(disk_warning(dir, 100, 2, 8_199).is_some());
        assert_eq!(disk_warning(dir, 100, 2, 8_200), None);
    }

    #[test]
    fn meminfo_gives_available_bytes() {
        let text = "MemTotal:       24576000 kB\nMemFree:         1000000 kB\n\
                    MemAvailable:   20000000 kB\nBuffers:          123 kB\n";
        assert_eq!(meminfo_available(text), Some(20_000_000 * 1024));
        assert_eq!(meminfo_available("MemTotal: 1 kB\n"), None);
        assert_eq!(meminfo_available("MemAvailable: lots\n"), None);
    }

    #[test]
    fn cgroup_paths_of_v1_v2_and_hybrid_layouts() {
        let v1 = "9:name=systemd:/\n4:memory:/process_api/6c35\n3:cpuset:/\n0::/\n";
        assert_eq!(
            cgroup_paths(v1),
            (Some("/".to_owned()), Some("/process_api/6c35".to_owned()))
        );
        let v2 = "0::/system.slice/gapmap.service\n";
        assert_eq!(
            cgroup_paths(v2),
            (Some("/system.slice/gapmap.service".to_owned()), None)
        );
        let joint = "5:cpu,memory,pids:/batch\n";
        assert_eq!(cgroup_paths(joint), (None, Some("/batch".to_owned())));
    }

    #[test]
    fn cgroup_headroom_is_limit_minus_use_without_file_cache() {
        let stat = "cache 3452170240\nrss 286588928\nhierarchical_memory_limit 4294967296\n\
                    total_active_file 2000\ntotal_inactive_file 1000\n";
        assert_eq!(stat_value(stat, "hierarchical_memory_limit"), Some(4 << 30));
        assert_eq!(stat_value(stat, "total_active_file"), Some(2000));
        assert_eq!(stat_value(stat, "active_file"), None);
        // 4 GiB limit, 1 GiB used of which 3 000 bytes are file cache.
        assert_eq!(headroom(4 << 30, (1 << 30) + 3000, 3000), Some(3 << 30));
        assert_eq!(headroom(100, 200, 0), Some(0));
        assert_eq!(headroom(100, 50, 80), Some(100));
        // cgroup v1's "no limit".
        assert_eq!(headroom(9_223_372_036_854_771_712, 1, 0), None);
    }

    #[test]
    fn auto_spills_parquet_and_large_csv() {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = |name: &str, len: u64| {
            // 2 bytes a line in the first 4 MiB, the rest sparse: the size
            // over the line length estimates the rows.
            let path = dir.path().join(name);
            std::fs::write(&path, "x\n".repeat(2 << 20)).expect("write");
            std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(len))
                .expect("grow");
            path
        };
        let small = csv("small.csv", 4 << 20); // 2 M rows
        let large = csv("large.csv", 44 << 20); // 23 M rows
        let parquet = dir.path().join("a.parquet"); // by name alone
        let pq = dir.path().join("b.PQ");
        let auto = |files: &[&std::path::PathBuf]| {
            let files: Vec<_> = files.iter().map(|f| (*f).clone()).collect();
            Spill::Auto.wanted(&files, rows_hint(&files))
        };
        assert!(auto(&[&parquet, &pq]));
        assert!(!auto(&[&small]));
        assert!(!auto(&[&parquet, &small]), "a CSV file would be read twice");
        assert!(auto(&[&large]));
        assert!(auto(&[&parquet, &large]));
        assert!(Spill::Always.wanted(std::slice::from_ref(&small), 0));
        assert!(!Spill::Never.wanted(std::slice::from_ref(&parquet), u64::MAX));
    }

    #[test]
    fn samples_go_to_disk_past_the_row_threshold_or_when_forced() {
        assert!(SamplesOnDisk::Auto.wanted(STORE_ROWS + 1, true));
        // 10 rows fit any machine this test runs on.
        assert!(!SamplesOnDisk::Auto.wanted(10, true));
        assert!(SamplesOnDisk::Always.wanted(0, false));
        assert!(!SamplesOnDisk::Never.wanted(u64::MAX, false));
    }

    #[test]
    fn warns_only_when_the_estimate_exceeds_what_is_available() {
        // 100 M rows: 300 MiB + 100 B × 10^8 = 10 314 572 800 B ≈ 9.6 GiB.
        let needed = (300u64 << 20) + 100 * 100_000_000;
        assert_eq!(warning(100_000_000, needed, false, false), None);
        let w = warning(100_000_000, 8 << 30, true, false).unwrap();
        assert!(w.contains("about 100000000 rows"), "{w}");
        assert!(w.contains("9.6 GiB of memory"), "{w}");
        assert!(w.contains("8.0 GiB are available"), "{w}");
        assert!(w.contains("--from/--to leaves rows out"), "{w}");
        let w = warning(100_000_000, needed - 1, false, false).unwrap();
        assert!(!w.contains("leaves rows out"), "{w}");
        assert_eq!(warning(0, 300 << 20, false, false), None);
        // Spilled: 300 MiB + 85 B × 10^8 = 8 814 572 800 B ≈ 8.2 GiB.
        let spilled = (300u64 << 20) + 85 * 100_000_000;
        assert_eq!(warning(100_000_000, spilled, false, true), None);
        let w = warning(100_000_000, spilled - 1, false, true).unwrap();
        assert!(w.contains("8.2 GiB of memory"), "{w}");
    }
}
