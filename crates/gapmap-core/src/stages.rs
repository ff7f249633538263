//! Wall time per stage of a run, for `--timings` and the benchmark. Kept out
//! of every output file, which must be byte-identical between runs.

use std::time::{Duration, Instant};

/// Stages in the order they ran, each with its wall time.
#[derive(Debug, Clone)]
pub struct Stages {
    last: Instant,
    /// Time recorded by [`Stages::add`] since the last lap.
    added: Duration,
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
            added: Duration::ZERO,
            laps: Vec::new(),
        }
    }

    /// Records the time since the previous lap as `stage`, less what
    /// [`Stages::add`] recorded in between.
    pub fn lap(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.laps
            .push((stage, (now - self.last).saturating_sub(self.added)));
        self.last = now;
        self.added = Duration::ZERO;
    }

    /// Records a part of the coming lap timed elsewhere (e.g. inside a loop).
    pub fn add(&mut self, stage: &'static str, d: Duration) {
        self.laps.push((stage, d));
        self.added += d;
    }
}
