//! Carrier names: aliases and MCC-MNC codes mapped to one canonical name.
//!
//! The default table is `data/carriers_vn.csv`, built from
//! `carriers_452.json`; anything not in it is kept, trimmed, as given.

use std::collections::HashMap;

use crate::error::{Error, Result};

const DEFAULT_TABLE: &str = include_str!("../../../data/carriers_vn.csv");

/// The carriers gapmap reports by default, by market share.
pub const DEFAULT_CARRIERS: [&str; 4] = ["Viettel", "VinaPhone", "MobiFone", "Vietnamobile"];

/// A lookup from any spelling of a carrier to its canonical name.
#[derive(Debug, Clone)]
pub struct CarrierTable {
    by_key: HashMap<String, String>,
}

/// Lower-cases and keeps only letters and digits, so that "VNPT-VinaPhone",
/// "vnpt vinaphone" and "VNPT_VINAPHONE" are one key and "452-04",
/// "45204" and "452 04" are another.
fn key(s: &str) -> String {
    key_chars(s).collect()
}

/// The characters of a name's lookup key: letters and digits, lower case.
fn key_chars(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
}

impl CarrierTable {
    /// The embedded Vietnamese table.
    ///
    /// # Panics
    /// Never: the embedded table is checked by a unit test.
    #[must_use]
    #[allow(clippy::missing_panics_doc, reason = "the embedded table is tested")]
    pub fn vietnam() -> Self {
        #[allow(clippy::expect_used, reason = "compile-time data, covered by tests")]
        Self::parse(DEFAULT_TABLE, "data/carriers_vn.csv").expect("embedded carrier table is valid")
    }

    /// Parses a table with columns `canonical,mcc_mnc,aliases` (lines starting
    /// with `#` are comments).
    ///
    /// # Errors
    /// A malformed line, or one spelling mapped to two carriers.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut by_key = HashMap::new();
        let mut header_seen = false;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !header_seen {
                header_seen = true;
                continue;
            }
            let parts: Vec<&str> = line.splitn(3, ',').collect();
            let [canonical, code, aliases] = parts[..] else {
                return Err(Error::Config(format!(
                    "{origin}: line {}: expected canonical,mcc_mnc,aliases",
                    i + 1
                )));
            };
            let canonical = canonical.trim().to_owned();
            let spellings = std::iter::once(canonical.as_str())
                .chain(std::iter::once(code))
                .chain(aliases.split('|'));
            for spelling in spellings {
                let k = key(spelling);
                if k.is_empty() {
                    continue;
                }
                if let Some(prev) = by_key.insert(k, canonical.clone())
                    && prev != canonical
                {
                    return Err(Error::Config(format!(
                        "{origin}: line {}: '{spelling}' names both {prev} and {canonical}",
                        i + 1
                    )));
                }
            }
        }
        Ok(Self { by_key })
    }

    /// The canonical name of a carrier as written in a sample.
    #[must_use]
    pub fn canonical<'a>(&'a self, raw: &'a str) -> &'a str {
        let raw = raw.trim();
        // The key on the stack for the usual short names (a row's hot path).
        let mut buf = [0u8; 64];
        let mut n = 0;
        for c in key_chars(raw) {
            if n + c.len_utf8() > buf.len() {
                return self.by_key.get(&key(raw)).map_or(raw, String::as_str);
            }
            n += c.encode_utf8(&mut buf[n..]).len();
        }
        let k = std::str::from_utf8(&buf[..n]).unwrap_or_default();
        self.by_key.get(k).map_or(raw, String::as_str)
    }
}

/// The file-name slug of a carrier: lower-cased, every run of characters
/// other than a–z and 0–9 turned into `-` (`"I-Telecom"` → `"i-telecom"`).
#[must_use]
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
            dash = false;
        } else if !dash {
            out.push('-');
            dash = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_codes_map_to_canonical_names() {
        let t = CarrierTable::vietnam();
        for (raw, want) in [
            ("viettel", "Viettel"),
            (" VIETTEL ", "Viettel"),
            ("452-04", "Viettel"),
            ("45204", "Viettel"),
            ("vnpt", "VinaPhone"),
            ("Vinaphone", "VinaPhone"),
            ("VNPT-VinaPhone", "VinaPhone"),
            ("452-02", "VinaPhone"),
            ("mobifone", "MobiFone"),
            ("452-01", "MobiFone"),
            ("vietnamobile", "Vietnamobile"),
            ("452-05", "Vietnamobile"),
            ("gmobile", "Gmobile"),
            ("452-07", "Gmobile"),
            ("452-08", "I-Telecom"),
            ("452-09", "REDDI"),
        ] {
            assert_eq!(t.canonical(raw), want, "{raw}");
        }
    }

    #[test]
    fn unknown_names_are_kept_trimmed() {
        let t = CarrierTable::vietnam();
        assert_eq!(t.canonical("  Starlink Mobile "), "Starlink Mobile");
        // Longer than the key's stack buffer: the same answer by the String path.
        let long = format!(" {} ", "Mạng Di Động ".repeat(8).trim());
        assert_eq!(t.canonical(&long), long.trim());
        assert_eq!(
            t.canonical(&format!("{}Viettel", " ".repeat(80))),
            "Viettel"
        );
        assert_eq!(t.canonical("452-99"), "452-99");
    }

    #[test]
    fn conflicting_table_is_rejected() {
        let bad = "canonical,mcc_mnc,aliases\nA,1,x\nB,2,x\n";
        assert!(CarrierTable::parse(bad, "t").is_err());
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Viettel"), "viettel");
        assert_eq!(slug("ALL"), "all");
        assert_eq!(slug("I-Telecom"), "i-telecom");
        assert_eq!(slug("Công ty  X/Y"), "c-ng-ty-x-y");
    }
}
