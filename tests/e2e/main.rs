//! End-to-end tests of the `gapmap` binary.
//!
//! - `accounting`: a hand-made fixture with every reject reason, UTC+7 month
//!   edges, duplicates across files, snapping and non-default `--levels`;
//!   every expected number is worked out by hand in comments.
//! - `oracle`: simulated samples over the embedded default data, checked
//!   against a brute-force point-in-polygon count written here.
//! - `formats`: Parquet and CSV give the same results; runs are byte-identical.
//! - `errors`: bad input gives a clear message and exit code 2, never a panic.
//! - `vintages`: a hand-made boundary change: months before, after and
//!   across it, a split commune, an unmapped one, and the four views.
//! - `reform`: the 2009 → 2025 data step on the shared data: reproducible,
//!   hand-checked matches, derived polygons against the crosswalk rule.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests report and fail loudly"
)]

mod accounting;
mod bad_boundaries;
mod deliverables;
mod errors;
mod fast_path;
mod formats;
mod gaming;
mod gaps;
mod heatmap;
mod invariance;
mod national;
mod notebooks;
mod oracle;
mod recall;
mod reform;
mod util;
mod vintages;
