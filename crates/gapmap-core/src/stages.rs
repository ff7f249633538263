//! Wall time and peak memory per stage of a run, for `--timings` and the
//! benchmark. Kept out of every output file, which must be byte-identical
//! between runs.

use std::time::{Duration, Instant};

/// Stages in the order they ran, each with its wall time.
#[derive(Debug, Clone)]
pub struct Stages {
    last: Instant,
    /// Time recorded by [`Stages::add`] since the last lap.
    added: Duration,
    /// (stage, wall time), in order.
    pub laps: Vec<(&'static str, Duration)>,
    /// Per lap, the peak resident memory (KiB) of the process so far, where
    /// the system tells (Linux); `None` for parts recorded by [`Stages::add`].
    /// The stage where it rises is where the run's peak is.
    pub peak_kib: Vec<Option<u64>>,
}

/// The process's peak resident memory so far, KiB (Linux: `VmHWM` of
/// `/proc/self/status`). Never reset: that would also reset what
/// `getrusage` and GNU time report.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

impl Default for Stages {
    fn default() -> Self {
        Self::new()
    }
}

impl Stages {
    /// Starts the clock.
    #[must_use]
    pub fn new() -> Self {
        Self {
            last: Instant::now(),
            added: Duration::ZERO,
            laps: Vec::new(),
            peak_kib: Vec::new(),
        }
    }

    /// Records the time since the previous lap as `stage`, less what
    /// [`Stages::add`] recorded in between.
    pub fn lap(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.laps
            .push((stage, (now - self.last).saturating_sub(self.added)));
        self.peak_kib.push(peak_rss_kib());
        self.last = now;
        self.added = Duration::ZERO;
    }

    /// Records a part of the coming lap timed elsewhere (e.g. inside a loop).
    pub fn add(&mut self, stage: &'static str, d: Duration) {
        self.laps.push((stage, d));
        self.peak_kib.push(None);
        self.added += d;
    }
}
