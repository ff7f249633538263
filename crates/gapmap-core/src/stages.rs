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
    /// Per lap, the resident memory (KiB) at its end: what the stage left
    /// held (with what the allocator keeps for reuse).
    pub rss_kib: Vec<Option<u64>>,
    /// Per lap, the CPU time (user + system, all threads) of the process
    /// since the previous lap, parts recorded by [`Stages::add`] included;
    /// `None` for those parts and where the system does not tell.
    pub cpu: Vec<Option<Duration>>,
    /// The process's CPU time at the last lap.
    last_cpu: Option<Duration>,
}

/// The process's CPU time so far, user + system, all threads (Linux:
/// fields 14 and 15 of `/proc/self/stat`, in clock ticks of 1/100 s, the
/// `USER_HZ` of every Linux architecture gapmap builds for).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// A line of `/proc/self/status` in KiB (Linux), e.g. `VmHWM` (the peak
/// resident memory so far; never reset: that would also reset what
/// `getrusage` and GNU time report) or `VmRSS` (resident now).
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
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
            rss_kib: Vec::new(),
            cpu: Vec::new(),
            last_cpu: process_cpu(),
        }
    }

    /// Records the time since the previous lap as `stage`, less what
    /// [`Stages::add`] recorded in between.
    pub fn lap(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.laps
            .push((stage, (now - self.last).saturating_sub(self.added)));
        self.peak_kib.push(status_kib("VmHWM"));
        self.rss_kib.push(status_kib("VmRSS"));
        let cpu = process_cpu();
        self.cpu
            .push(cpu.zip(self.last_cpu).map(|(c, l)| c.saturating_sub(l)));
        self.last_cpu = cpu;
        self.last = now;
        self.added = Duration::ZERO;
    }

    /// Records a part of the coming lap timed elsewhere (e.g. inside a loop).
    pub fn add(&mut self, stage: &'static str, d: Duration) {
        self.laps.push((stage, d));
        self.peak_kib.push(None);
        self.rss_kib.push(None);
        self.cpu.push(None);
        self.added += d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lap_counts_the_cpu_spent_in_it() {
        let mut stages = Stages::new();
        // Busy for at least 0.3 s of CPU on this thread.
        let start = Instant::now();
        let mut x = 1u64;
        while start.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        stages.add("part", Duration::ZERO);
        stages.lap("busy");
        assert_eq!(stages.cpu[0], None, "parts have no CPU of their own");
        if cfg!(target_os = "linux") {
            let cpu = stages.cpu[1].expect("Linux tells the CPU time");
            // Ticks are 10 ms; a busy loop of 300 ms wall on a loaded machine
            // may get less CPU, never more than wall time plus a tick per thread.
            assert!(cpu >= Duration::from_millis(100), "{cpu:?}");
        }
    }
}
