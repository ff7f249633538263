//! `manifest.json`: what produced a run's outputs (version, command, input
//! hashes, boundary sets, settings) and the hashes of what it wrote, so any
//! figure can be traced and the run repeated.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::output::write_json_pretty;

/// gapmap's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A file and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileHash {
    /// Path as given (inputs) or relative to the output folder (outputs).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of some bytes.
#[must_use]
pub fn hash_bytes(name: &str, data: &[u8]) -> FileHash {
    FileHash {
        path: name.to_owned(),
        bytes: data.len() as u64,
        sha256: hex(&Sha256::digest(data)),
    }
}

/// SHA-256 of a file, read in blocks.
///
/// # Errors
/// The file cannot be read.
pub fn hash_file(path: &Path, name: &str) -> Result<FileHash> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        h.update(&buf[..n]);
    }
    Ok(FileHash {
        path: name.to_owned(),
        bytes,
        sha256: hex(&h.finalize()),
    })
}

/// Writes `manifest.json` into `out`: `inputs` as given, `outputs` hashed
/// now (paths relative to `out`), `settings` and `vintages` as the summary has them.
///
/// # Errors
/// An output cannot be read, or the manifest cannot be written.
pub fn write_manifest(
    out: &Path,
    command: &[String],
    inputs: &[FileHash],
    vintages: &serde_json::Value,
    settings: &serde_json::Value,
    outputs: &[PathBuf],
) -> Result<PathBuf> {
    let mut hashed = Vec::with_capacity(outputs.len());
    for p in outputs {
        let rel = p.strip_prefix(out).unwrap_or(p);
        hashed.push(hash_file(p, &rel.to_string_lossy())?);
    }
    let json = serde_json::json!({
        "gapmap_version": VERSION,
        "command": command,
        "inputs": inputs,
        "boundary_vintages": vintages,
        "settings": settings,
        "outputs": hashed,
    });
    let path = out.join("manifest.json");
    write_json_pretty(&path, &json)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sha256() {
        // FIPS 180-2 test vector for "abc".
        assert_eq!(
            hash_bytes("x", b"abc").sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a");
        std::fs::write(&p, b"abc").expect("write");
        assert_eq!(hash_file(&p, "a").expect("hash"), hash_bytes("a", b"abc"));
    }
}
