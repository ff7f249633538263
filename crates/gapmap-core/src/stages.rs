//! Wall time, CPU time and memory per stage of a run, for `--timings` and the
//! benchmark. Kept out of every output file, which must be byte-identical
//! between runs.

use std::time::{Duration, Instant};

/// Stages in the order they ran, each with its wall time.
#[derive(Debug, Clone)]
pub struct Stages {
    last: Instant,
    /// Time recorded by [`Stages::add`] since the last lap.
    added: Duration,
    /// The laps, in order.
    pub laps: Vec<Lap>,
    /// The process's CPU time at the last lap.
    last_cpu: Option<Duration>,
}

/// One stage's wall time and, for a lap (not a part recorded by
/// [`Stages::add`]), what the system tells of the process at its end.
#[derive(Debug, Clone)]
pub struct Lap {
    /// The stage.
    pub stage: &'static str,
    /// Its wall time.
    pub wall: Duration,
    /// `None` for parts recorded by [`Stages::add`].
    pub measured: Option<Measures>,
    /// A part that ran beside the other parts of its lap
    /// ([`Stages::add_part`]): its time is not theirs to add up.
    pub beside: bool,
}

/// A part of a stage timed where it ran, for [`Stages::add_part`].
#[derive(Debug, Clone, Copy)]
pub struct PartTime {
    /// The part.
    pub stage: &'static str,
    /// Its wall time.
    pub wall: Duration,
    /// Whether it ran beside the other parts (overlapping them in time).
    pub beside: bool,
}

/// The process at the end of a lap, where the system tells (Linux).
#[derive(Debug, Clone, Copy)]
pub struct Measures {
    /// CPU time (user + system, all threads) since the previous lap, the
    /// parts recorded by [`Stages::add`] in between included.
    pub cpu: Option<Duration>,
    /// Resident memory (KiB) at the end: what the stage left held (with
    /// what the allocator keeps for reuse).
    pub rss_kib: Option<u64>,
    /// Peak resident memory (KiB) so far: the stage where it rises is where
    /// the run's peak is.
    pub peak_kib: Option<u64>,
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

/// (`VmRSS`, `VmHWM`) of `/proc/self/status` in KiB (Linux): resident now
/// and the peak so far. The peak is never reset: that would also reset
/// what `getrusage` and GNU time report.
fn resident_kib() -> (Option<u64>, Option<u64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    (kib("VmRSS"), kib("VmHWM"))
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
            last_cpu: process_cpu(),
        }
    }

    /// Records the time since the previous lap as `stage`, less what
    /// [`Stages::add`] recorded in between.
    pub fn lap(&mut self, stage: &'static str) {
        let now = Instant::now();
        let cpu = process_cpu();
        let (rss_kib, peak_kib) = resident_kib();
        self.laps.push(Lap {
            stage,
            wall: (now - self.last).saturating_sub(self.added),
            measured: Some(Measures {
                cpu: cpu.zip(self.last_cpu).map(|(c, l)| c.saturating_sub(l)),
                rss_kib,
                peak_kib,
            }),
            beside: false,
        });
        self.last_cpu = cpu;
        self.last = now;
        self.added = Duration::ZERO;
    }

    /// Records a part of the coming lap timed elsewhere (e.g. inside a loop).
    pub fn add(&mut self, stage: &'static str, d: Duration) {
        self.laps.push(Lap {
            stage,
            wall: d,
            measured: None,
            beside: false,
        });
        self.added += d;
    }

    /// Records a part of the coming lap timed elsewhere; one that ran
    /// beside the other parts is listed, but its time is not taken from
    /// the lap's (the parts it overlapped already count it).
    pub fn add_part(&mut self, part: PartTime) {
        if part.beside {
            self.laps.push(Lap {
                stage: part.stage,
                wall: part.wall,
                measured: None,
                beside: true,
            });
        } else {
            self.add(part.stage, part.wall);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_beside_others_is_listed_but_not_taken_from_the_lap() {
        let mut stages = Stages::new();
        std::thread::sleep(Duration::from_millis(50));
        // Two parts that overlapped in time, and their wall together.
        let beside = |stage, ms| PartTime {
            stage,
            wall: Duration::from_millis(ms),
            beside: true,
        };
        stages.add_part(beside("placing", 30));
        stages.add_part(beside("checking", 30));
        stages.add_part(PartTime {
            stage: "both",
            wall: Duration::from_millis(35),
            beside: false,
        });
        stages.lap("rest");
        let walls: Vec<(&str, bool)> = stages.laps.iter().map(|l| (l.stage, l.beside)).collect();
        assert_eq!(
            walls,
            [
                ("placing", true),
                ("checking", true),
                ("both", false),
                ("rest", false)
            ]
        );
        // The lap keeps what only "both" took: at least 50 - 35 ms; taking
        // the overlapping parts too (95 ms) would leave nothing.
        assert!(
            stages.laps[3].wall >= Duration::from_millis(15),
            "{:?}",
            stages.laps[3].wall
        );
    }

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
        let cpu_of = |i: usize| stages.laps[i].measured.and_then(|m| m.cpu);
        assert_eq!(cpu_of(0), None, "parts have no CPU of their own");
        if cfg!(target_os = "linux") {
            let cpu = cpu_of(1).expect("Linux tells the CPU time");
            // Ticks are 10 ms; a busy loop of 300 ms wall on a loaded machine
            // may get less CPU, never more than wall time plus a tick per thread.
            assert!(cpu >= Duration::from_millis(100), "{cpu:?}");
        }
    }
}
