//! Wall time per stage of a run, for `--timings` and the benchmark. Kept out
//! of every output file, which must be byte-identical between runs.

use std::time::{Duration, Instant};

/// Stages in the order they ran, each with its wall time.
#[derive(Debug, Clone)]
pub struct Stages {
    last: Instant,
    /// (stage, wall time), in order.
    pub laps: Vec<(&'static str, Duration)>,
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
            laps: Vec::new(),
        }
    }

    /// Records the time since the previous lap as `stage`.
    pub fn lap(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.laps.push((stage, now - self.last));
        self.last = now;
    }

    /// Records a stage timed elsewhere (e.g. a part of a loop), without
    /// moving the clock.
    pub fn add(&mut self, stage: &'static str, d: Duration) {
        self.laps.push((stage, d));
    }
}
