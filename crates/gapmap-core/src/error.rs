//! Typed errors of the library. Every message names the file and, where it
//! helps, the fix.

use std::path::PathBuf;

/// Result alias of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in gapmap's library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The working files of `--spill` could not be made, written or read back.
    #[error(
        "{}: cannot keep working files here ({source}); free some space in this folder, \
         or hold everything in memory with --spill never",
        dir.display()
    )]
    Spill {
        /// The folder of the working files.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The samples could not be kept on disk (`--samples-on-disk`): the
    /// files could not be made, written or read back.
    #[error(
        "{}: cannot keep the samples on disk here ({source}); free some space in this folder \
         (73 bytes a sample, 9 more per further boundary set), or hold them in memory with \
         --samples-on-disk never",
        dir.display()
    )]
    SampleStore {
        /// The folder of the working files.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON or GeoJSON file is not valid JSON or not of the expected shape.
    #[error("{}: not valid GeoJSON/JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A CSV file could not be read at all.
    #[error("{}: {source}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: csv::Error,
    },
    /// A Parquet file could not be read or written.
    #[error("{}: cannot read or write Parquet: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What polars reported.
        message: String,
    },
    /// A samples file lacks a required column.
    #[error(
        "{}: no column '{column}' for the required field '{field}' (columns found: {available}); \
         if it has another name, map it with --column {field}=<name>",
        path.display()
    )]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The canonical field.
        field: &'static str,
        /// The column name looked for.
        column: String,
        /// The columns the file has.
        available: String,
    },
    /// A samples file's extension is not one gapmap reads.
    #[error("{}: unknown sample format; use a .csv or .parquet file", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A feature of a GeoJSON layer is not usable.
    #[error("{}: feature {index}: {message}", path.display())]
    Feature {
        /// The file.
        path: PathBuf,
        /// 0-based index of the feature in the collection.
        index: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A layer is inconsistent as a whole (e.g. a unit with two parents).
    #[error("{}: {message}", path.display())]
    Layer {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A setting (flag value) is invalid.
    #[error("{0}")]
    Config(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
