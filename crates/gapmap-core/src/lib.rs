//! gapmap: mobile coverage analysis from crowdsourced speed tests.
//!
//! The pipeline: [`ingest_run::ingest`] reads CSV/Parquet samples, checks
//! every row ([`schema::check_row`]), drops duplicates, places each sample in
//! its finest administrative unit ([`boundaries::Locator`]) and H3 cell;
//! [`report::aggregate`] groups them by month and unit at every level; the
//! `write_*` functions produce the report files. [`analyze::analyze`] runs
//! it all. [`simulate`] generates realistic i-Speed-like samples.

pub mod analyze;
pub mod boundaries;
pub mod carrier;
pub mod cell_memo;
pub mod cell_table;
pub mod codes;
pub mod columns;
pub mod error;
pub mod gaps;
pub mod geodesy;
pub mod geojson_out;
pub mod heatmap;
pub mod ingest;
pub mod ingest_run;
pub mod layers;
pub mod manifest;
pub mod month;
pub mod output;
pub mod parquet_footer;
pub mod reform;
pub mod report;
pub mod report_html;
pub mod rule;
pub mod schema;
pub mod shape_check;
pub mod simulate;
pub mod stages;
pub mod stats;
pub mod store;
pub mod styles;
pub mod test_ids;
pub mod villages;
pub mod vintage;
pub mod workbook;

pub use error::{Error, Result};
