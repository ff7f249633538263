// Shared by the targets that build their inputs from the bytes.

/// Bytes read in order; zeros once they run out.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    /// A value in 0..1 from two bytes.
    #[allow(dead_code, reason = "not every target uses both")]
    pub fn unit(&mut self) -> f64 {
        f64::from(u16::from_le_bytes([self.byte(), self.byte()])) / 65_536.0
    }
    /// A value in 0..1 from four bytes.
    #[allow(dead_code, reason = "not every target uses both")]
    pub fn fine_unit(&mut self) -> f64 {
        f64::from(u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]))
            / 4_294_967_296.0
    }
}
