//! A Parquet footer's claimed lengths, checked before polars parses it.
//!
//! polars reserves memory for every list and string of the footer (Thrift
//! compact protocol) from the length the file claims. A damaged length asks
//! for tens or hundreds of gigabytes; where the system refuses, the failed
//! allocation aborts the process, which no error handling can catch (found
//! by fuzzing). Every element of a list takes at least one byte, so no
//! honest length exceeds the bytes left in the footer: this walk checks
//! that, and nothing else (what it cannot parse is left to polars). It
//! follows the types the footer declares; polars' parser reads a field as
//! the type the format expects, so a damaged type byte can still make it
//! read a number as a length (kept in the README as a known limit).

/// What a walk of the footer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Footer {
    /// Every length fits (or the footer is not parsable here; polars reports it).
    Plausible,
    /// A length larger than the footer itself.
    Damaged(String),
}

/// Nesting deeper than this is not a Parquet footer (Parquet's schema
/// nests a handful of structs).
const MAX_DEPTH: usize = 64;

/// Checks a file's footer; `tail` is the whole file or at least its footer
/// and the 8 bytes after it (the footer's length and `PAR1`).
#[must_use]
pub fn check(tail: &[u8]) -> Footer {
    let n = tail.len();
    if n < 8 || &tail[n - 4..] != b"PAR1" {
        return Footer::Plausible;
    }
    let len = u32::from_le_bytes([tail[n - 8], tail[n - 7], tail[n - 6], tail[n - 5]]) as usize;
    if len > n - 8 {
        return Footer::Plausible; // polars reports a footer longer than the file
    }
    let mut walk = Walk {
        buf: &tail[n - 8 - len..n - 8],
        pos: 0,
    };
    match walk.skip_struct(0) {
        Err(Stop::Damaged(why)) => Footer::Damaged(why),
        Ok(()) | Err(Stop::Unparsable) => Footer::Plausible,
    }
}

enum Stop {
    Damaged(String),
    Unparsable,
}

struct Walk<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Walk<'_> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        let b = *self.buf.get(self.pos).ok_or(Stop::Unparsable)?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, Stop> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift.min(63);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Stop::Unparsable)
    }

    /// A claimed count of bytes or elements, which must fit in what is left.
    fn length(&mut self, what: &str) -> Result<usize, Stop> {
        let at = self.pos;
        let n = self.varint()?;
        if n > self.left() as u64 {
            return Err(Stop::Damaged(format!(
                "its footer claims a {what} of {n} at byte {at} of {}",
                self.buf.len()
            )));
        }
        #[allow(
            clippy::cast_possible_truncation,
            reason = "at most the footer's length"
        )]
        Ok(n as usize)
    }

    fn skip(&mut self, ty: u8, depth: usize) -> Result<(), Stop> {
        match ty {
            1 | 2 => Ok(()), // booleans live in the field header
            3 => self.byte().map(|_| ()),
            4..=6 => self.varint().map(|_| ()),
            7 => {
                if self.left() < 8 {
                    return Err(Stop::Unparsable);
                }
                self.pos += 8;
                Ok(())
            }
            8 => {
                let n = self.length("string")?;
                self.pos += n;
                Ok(())
            }
            9 | 10 => {
                let header = self.byte()?;
                let elem = header & 0x0f;
                let n = match header >> 4 {
                    15 => self.length("list")?,
                    short => usize::from(short),
                };
                for _ in 0..n {
                    // A boolean element is one byte in a list.
                    if elem == 1 || elem == 2 {
                        self.byte()?;
                    } else {
                        self.skip_nested(elem, depth)?;
                    }
                }
                Ok(())
            }
            11 => {
                let n = self.length("map")?;
                if n == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                for _ in 0..n {
                    self.skip_nested(kinds >> 4, depth)?;
                    self.skip_nested(kinds & 0x0f, depth)?;
                }
                Ok(())
            }
            12 => self.skip_struct(depth + 1),
            _ => Err(Stop::Unparsable),
        }
    }

    fn skip_nested(&mut self, ty: u8, depth: usize) -> Result<(), Stop> {
        if depth >= MAX_DEPTH {
            return Err(Stop::Unparsable);
        }
        self.skip(ty, depth + 1)
    }

    fn skip_struct(&mut self, depth: usize) -> Result<(), Stop> {
        if depth >= MAX_DEPTH {
            return Err(Stop::Unparsable);
        }
        loop {
            let header = self.byte()?;
            let ty = header & 0x0f;
            if ty == 0 {
                return Ok(()); // end of the struct
            }
            if header >> 4 == 0 {
                self.varint()?; // a field id in long form
            }
            self.skip(ty, depth)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A footer from its Thrift bytes: bytes, length, `PAR1`.
    fn file(footer: &[u8]) -> Vec<u8> {
        let mut f = b"PAR1".to_vec();
        f.extend_from_slice(footer);
        f.extend_from_slice(&(footer.len() as u32).to_le_bytes());
        f.extend_from_slice(b"PAR1");
        f
    }

    #[test]
    fn honest_lengths_pass_and_a_long_list_is_damaged() {
        // struct { 1: i32 = 1, 2: list<i32> [1, 2, 3], 3: binary "ab" } stop
        let ok = [
            0x15, 0x02, 0x19, 0x35, 0x02, 0x04, 0x06, 0x18, 0x02, b'a', b'b', 0x00,
        ];
        assert_eq!(check(&file(&ok)), Footer::Plausible);
        // The same list claiming 1 000 000 elements (long form: 0xF5, varint).
        let long = [0x15, 0x02, 0x19, 0xF5, 0xC0, 0x84, 0x3D, 0x02, 0x00];
        let Footer::Damaged(why) = check(&file(&long)) else {
            panic!("a million-element list in 9 bytes passed")
        };
        assert!(why.contains("list of 1000000 at byte 4 of 9"), "{why}");
        // A string longer than the footer.
        let string = [0x18, 0xE8, 0x07, b'x', 0x00];
        assert!(
            matches!(check(&file(&string)), Footer::Damaged(w) if w.contains("string of 1000"))
        );
        // Not Parquet, or truncated: left to polars.
        assert_eq!(check(b"not parquet"), Footer::Plausible);
        assert_eq!(check(&file(&[0x15])), Footer::Plausible);
    }

    #[test]
    fn the_simulators_footer_passes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.parquet");
        let rows: Vec<crate::simulate::SimRow> = (0..3)
            .map(|i| crate::simulate::SimRow {
                fields: std::array::from_fn(|f| {
                    if f == 2 {
                        format!("21.{i}")
                    } else {
                        format!("v{f}{i}")
                    }
                }),
            })
            .collect();
        crate::simulate::write_samples(&path, &rows).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(check(&bytes), Footer::Plausible);
    }
}
