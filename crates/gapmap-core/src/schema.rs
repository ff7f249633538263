//! The canonical sample schema, column mapping, and row validation.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset};

use crate::error::{Error, Result};
use crate::month::Month;

/// A field of the canonical sample schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// Unique id of a test.
    TestId,
    /// RFC 3339 time with offset.
    Timestamp,
    /// WGS84 latitude.
    Lat,
    /// WGS84 longitude.
    Lon,
    /// Carrier name, alias or MCC-MNC.
    Carrier,
    /// Radio technology.
    Network,
    /// Download speed in Mbps.
    Download,
    /// Upload speed in Mbps.
    Upload,
    /// Latency in ms.
    Latency,
    /// Device identifier.
    DeviceId,
    /// `android`, `ios` or `web`.
    Platform,
    /// Location accuracy in metres (optional).
    Accuracy,
}

/// Number of canonical fields.
pub const FIELD_COUNT: usize = 12;

impl Field {
    /// Every field, in schema order.
    pub const ALL: [Self; FIELD_COUNT] = [
        Self::TestId,
        Self::Timestamp,
        Self::Lat,
        Self::Lon,
        Self::Carrier,
        Self::Network,
        Self::Download,
        Self::Upload,
        Self::Latency,
        Self::DeviceId,
        Self::Platform,
        Self::Accuracy,
    ];

    /// The canonical column name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::TestId => "test_id",
            Self::Timestamp => "timestamp",
            Self::Lat => "lat",
            Self::Lon => "lon",
            Self::Carrier => "carrier",
            Self::Network => "network",
            Self::Download => "download_mbps",
            Self::Upload => "upload_mbps",
            Self::Latency => "latency_ms",
            Self::DeviceId => "device_id",
            Self::Platform => "platform",
            Self::Accuracy => "accuracy_m",
        }
    }

    /// Whether a row with this field empty is rejected as `missing_field`.
    #[must_use]
    pub const fn required(self) -> bool {
        !matches!(
            self,
            Self::Upload | Self::Latency | Self::Platform | Self::Accuracy
        )
    }

    /// Whether any rule or output reads the field: one that none reads
    /// (`platform`, for now) is accepted in the input and not loaded.
    #[must_use]
    pub const fn used(self) -> bool {
        !matches!(self, Self::Platform)
    }

    /// Whether the field is a number (coordinates, speeds, latency, accuracy):
    /// a typed input column passes it as a value, not as text.
    #[must_use]
    pub const fn numeric(self) -> bool {
        matches!(
            self,
            Self::Lat | Self::Lon | Self::Download | Self::Upload | Self::Latency | Self::Accuracy
        )
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl FromStr for Field {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|f| f.name()).collect();
                Error::Config(format!(
                    "unknown canonical column '{s}'; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// Which column of an input file holds each canonical field.
#[derive(Debug, Clone)]
pub struct ColumnMap {
    names: [String; FIELD_COUNT],
}

impl Default for ColumnMap {
    fn default() -> Self {
        Self {
            names: Field::ALL.map(|f| f.name().to_owned()),
        }
    }
}

impl ColumnMap {
    /// Applies mappings written `canonical=theirs` (as given to `--column`).
    ///
    /// # Errors
    /// A mapping without `=`, with an unknown canonical name, or an empty name.
    pub fn with_mappings<S: AsRef<str>>(mappings: &[S]) -> Result<Self> {
        let mut map = Self::default();
        for m in mappings {
            let m = m.as_ref();
            let Some((canonical, theirs)) = m.split_once('=') else {
                return Err(Error::Config(format!(
                    "--column '{m}': expected canonical=theirs, e.g. --column lat=latitude"
                )));
            };
            let field: Field = canonical.trim().parse()?;
            let theirs = theirs.trim();
            if theirs.is_empty() {
                return Err(Error::Config(format!(
                    "--column '{m}': the column name is empty"
                )));
            }
            map.names[field.index()] = theirs.to_owned();
        }
        Ok(map)
    }

    /// The column name that holds `field`.
    #[must_use]
    pub fn column(&self, field: Field) -> &str {
        &self.names[field.index()]
    }
}

/// One input row reduced to the canonical fields, trimmed; a field of only
/// whitespace is absent. One allocation per row, none when it is reused
/// ([`RawRow::reset`]).
#[derive(Debug, Clone, Default)]
pub struct RawRow {
    /// 1-based physical line of a CSV file (header = line 1) or 1-based row of a Parquet file.
    pub line: u64,
    /// The row has fewer fields than the header.
    pub truncated: bool,
    buf: String,
    spans: [(u32, u32); FIELD_COUNT],
    /// Values of numeric fields set from typed columns.
    numbers: [f64; FIELD_COUNT],
    present: u16,
    /// Fields set by [`RawRow::set_number`].
    typed: u16,
}

impl RawRow {
    /// A new empty row at `line`.
    #[must_use]
    pub fn new(line: u64) -> Self {
        Self {
            line,
            ..Self::default()
        }
    }

    /// A new empty row at `line` with room for `bytes` of field text (one
    /// allocation per row instead of one per doubling).
    #[must_use]
    pub fn with_capacity(line: u64, bytes: usize) -> Self {
        Self {
            line,
            buf: String::with_capacity(bytes),
            ..Self::default()
        }
    }

    /// Empties the row for reuse at `line`, keeping room for at least
    /// `bytes` of field text: a reader that refills returned rows allocates
    /// nothing per row.
    pub fn reset(&mut self, line: u64, bytes: usize) {
        self.line = line;
        self.truncated = false;
        self.buf.clear();
        self.buf.reserve(bytes);
        self.present = 0;
        self.typed = 0;
    }

    /// Sets a field; whitespace-only values count as absent.
    pub fn set(&mut self, field: Field, value: &str) {
        let v = trim_field(value);
        if v.is_empty() {
            return;
        }
        let start = self.buf.len();
        self.buf.push_str(v);
        #[allow(clippy::cast_possible_truncation, reason = "a row is far below 4 GiB")]
        let span = (start as u32, self.buf.len() as u32);
        self.spans[field.index()] = span;
        self.present |= 1 << field.index();
    }

    /// Sets a numeric field from a typed column: the value the text of a
    /// CSV would parse to, without writing and parsing that text.
    pub fn set_number(&mut self, field: Field, value: f64) {
        self.numbers[field.index()] = value;
        self.present |= 1 << field.index();
        self.typed |= 1 << field.index();
    }

    /// Sets the coordinates given as text that parse as numbers as those
    /// numbers ([`RawRow::number`] answers the same), so that the placement
    /// ahead of the checks and the checks themselves parse them once.
    pub fn type_coordinates(&mut self) {
        for field in [Field::Lat, Field::Lon] {
            if let Some(Some(v)) = self.get(field).map(|s| s.parse::<f64>().ok()) {
                self.set_number(field, v);
            }
        }
    }

    /// Whether a field is present (as text or as a number).
    #[must_use]
    pub const fn has(&self, field: Field) -> bool {
        self.present & (1 << field.index()) != 0
    }

    /// A numeric field: `None` when absent, `Some(None)` when its text is
    /// not a number.
    #[must_use]
    pub fn number(&self, field: Field) -> Option<Option<f64>> {
        if self.typed & (1 << field.index()) != 0 {
            return Some(Some(self.numbers[field.index()]));
        }
        self.get(field).map(|s| s.parse::<f64>().ok())
    }

    /// A field's text, if present as text (a number set by
    /// [`RawRow::set_number`] has none).
    #[must_use]
    pub fn get(&self, field: Field) -> Option<&str> {
        if (self.present & !self.typed) & (1 << field.index()) == 0 {
            return None;
        }
        let (a, b) = self.spans[field.index()];
        Some(&self.buf[a as usize..b as usize])
    }
}

/// A field's text without surrounding whitespace (as [`str::trim`]), at
/// the cost of two byte tests when it starts and ends with a printable
/// ASCII character, as nearly every field does.
#[inline]
pub(crate) fn trim_field(v: &str) -> &str {
    let printable = |b: Option<&u8>| b.is_some_and(|b| (b'!'..=b'~').contains(b));
    if printable(v.as_bytes().first()) && printable(v.as_bytes().last()) {
        v
    } else {
        v.trim()
    }
}

/// A row's fields as the checks read them: a [`RawRow`] (CSV), or a row of
/// the columns a Parquet reader decoded ([`crate::columns::ColumnRow`]),
/// read in place. Text is trimmed; a field of only whitespace is absent.
pub trait Fields {
    /// 1-based physical line of a CSV file (header = line 1) or 1-based row of a Parquet file.
    fn line(&self) -> u64;
    /// The row has fewer fields than the header.
    fn truncated(&self) -> bool;
    /// Whether a field is present (as text or as a number).
    fn has(&self, field: Field) -> bool;
    /// A field's text, if present as text (a typed number has none).
    fn get(&self, field: Field) -> Option<&str>;
    /// A numeric field: `None` when absent, `Some(None)` when its text is
    /// not a number.
    fn number(&self, field: Field) -> Option<Option<f64>>;
}

impl<T: Fields + ?Sized> Fields for &T {
    fn line(&self) -> u64 {
        (**self).line()
    }
    fn truncated(&self) -> bool {
        (**self).truncated()
    }
    fn has(&self, field: Field) -> bool {
        (**self).has(field)
    }
    fn get(&self, field: Field) -> Option<&str> {
        (**self).get(field)
    }
    fn number(&self, field: Field) -> Option<Option<f64>> {
        (**self).number(field)
    }
}

impl Fields for RawRow {
    fn line(&self) -> u64 {
        self.line
    }
    fn truncated(&self) -> bool {
        self.truncated
    }
    fn has(&self, field: Field) -> bool {
        Self::has(self, field)
    }
    fn get(&self, field: Field) -> Option<&str> {
        Self::get(self, field)
    }
    fn number(&self, field: Field) -> Option<Option<f64>> {
        Self::number(self, field)
    }
}

/// Why a row was rejected; checks run in this order and the first failure wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// A required field is empty, or the row is truncated.
    MissingField,
    /// The timestamp is not RFC 3339 with an offset.
    BadTimestamp,
    /// Coordinates unparsable, out of range, or exactly 0,0.
    BadCoordinates,
    /// A speed or latency is negative, NaN, infinite or unparsable, or download > 10 000 Mbps.
    BadSpeed,
    /// An earlier row had the same test_id.
    DuplicateTestId,
    /// Outside every boundary polygon and farther than the snap distance.
    OutsideBoundaries,
}

impl RejectReason {
    /// Every reason, in check order.
    pub const ALL: [Self; 6] = [
        Self::MissingField,
        Self::BadTimestamp,
        Self::BadCoordinates,
        Self::BadSpeed,
        Self::DuplicateTestId,
        Self::OutsideBoundaries,
    ];

    /// The name written in `rejects.csv` and `summary.json`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingField => "missing_field",
            Self::BadTimestamp => "bad_timestamp",
            Self::BadCoordinates => "bad_coordinates",
            Self::BadSpeed => "bad_speed",
            Self::DuplicateTestId => "duplicate_test_id",
            Self::OutsideBoundaries => "outside_boundaries",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Radio technology of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    /// GSM, EDGE.
    G2,
    /// WCDMA, UMTS, HSPA.
    G3,
    /// LTE.
    G4,
    /// NR.
    G5,
    /// Not a mobile test: excluded.
    Wifi,
    /// Any other value: a mobile test of unknown technology.
    Unknown,
}

impl Network {
    /// Parses case-insensitively, with aliases; never fails (unknown values are `Unknown`).
    #[must_use]
    pub fn parse(s: &str) -> Self {
        // Upper-cased ASCII letters and digits, on the stack (a row's hot
        // path): no accepted spelling is longer than 5 of them.
        let mut k = [0u8; 8];
        let mut n = 0;
        for b in s.bytes().filter(u8::is_ascii_alphanumeric) {
            if n == k.len() {
                return Self::Unknown;
            }
            k[n] = b.to_ascii_uppercase();
            n += 1;
        }
        match std::str::from_utf8(&k[..n]).unwrap_or_default() {
            "2G" | "GSM" | "EDGE" | "GPRS" => Self::G2,
            "3G" | "WCDMA" | "UMTS" | "HSPA" | "HSPAP" | "HSDPA" | "HSUPA" => Self::G3,
            "4G" | "LTE" | "LTEA" => Self::G4,
            "5G" | "NR" | "5GNR" | "NRNSA" | "NRSA" => Self::G5,
            "WIFI" | "WLAN" => Self::Wifi,
            _ => Self::Unknown,
        }
    }

    /// The canonical spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::G2 => "2G",
            Self::G3 => "3G",
            Self::G4 => "4G",
            Self::G5 => "5G",
            Self::Wifi => "WIFI",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// The app platform of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// Android app (auto-tests are common).
    Android,
    /// iOS app (manual tests).
    Ios,
    /// Web client.
    Web,
    /// Given but not one of the three: kept as unknown, not rejected.
    Other,
}

impl Platform {
    /// Parses case-insensitively.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        [
            ("android", Self::Android),
            ("ios", Self::Ios),
            ("web", Self::Web),
        ]
        .into_iter()
        .find(|(name, _)| s.eq_ignore_ascii_case(name))
        .map_or(Self::Other, |(_, p)| p)
    }

    /// The canonical spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Android => "android",
            Self::Ios => "ios",
            Self::Web => "web",
            Self::Other => "other",
        }
    }
}

/// The largest plausible download speed; above it a test is `bad_speed`.
pub const MAX_DOWNLOAD_MBPS: f64 = 10_000.0;

/// A row that passed the field checks (everything before duplicates).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRow<'a> {
    /// The test id.
    pub test_id: &'a str,
    /// Calendar month in Vietnam local time (UTC+7).
    pub month: Month,
    /// Local (UTC+7) calendar day, as days since 1970-01-01.
    pub day: i32,
    /// Unix time in seconds.
    pub time: i64,
    /// Location accuracy in metres, if given.
    pub accuracy: Option<f64>,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Carrier as written (canonicalised later).
    pub carrier: &'a str,
    /// Technology.
    pub network: Network,
    /// Download Mbps.
    pub download: f64,
    /// Upload Mbps, if given.
    pub upload: Option<f64>,
    /// Latency ms, if given.
    pub latency: Option<f64>,
    /// Device id.
    pub device_id: &'a str,
}

/// Vietnam's offset from UTC in seconds; months are counted in local time.
pub const LOCAL_OFFSET_SECONDS: i32 = 7 * 3600;

/// Parses an RFC 3339 timestamp (offset or `Z` required) to its local month.
#[must_use]
pub fn local_month(s: &str) -> Option<Month> {
    local_month_day(s).map(|(m, _)| m)
}

/// Parses an RFC 3339 timestamp to its local month and local day (days since 1970-01-01).
#[must_use]
pub fn local_month_day(s: &str) -> Option<(Month, i32)> {
    local_time(s).map(|(m, d, _)| (m, d))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The common exports' form, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`,
/// with every field in its everyday range, parsed without chrono (a row's
/// hot path). Anything else, leap seconds and odd spellings included, is
/// `None` and goes to chrono, so the result is always chrono's (tested).
fn local_time_fast(s: &str) -> Option<(Month, i32, i64)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days_in_month = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let of_day = h * 3600 + mi * 60 + sec;
    let time = days * 86_400 + of_day - offset;
    // The local date is the written one moved by the zones, -1 to +2 days
    // (offsets are under a day): the month is the written one or a
    // neighbour, without converting the day number back to a date.
    let shift = (of_day - offset + i64::from(LOCAL_OFFSET_SECONDS)).div_euclid(86_400);
    let (ly, lm) = match d + shift {
        ..=0 if mo == 1 => (y - 1, 12),
        ..=0 => (y, mo - 1),
        ld if ld > days_in_month && mo == 12 => (y + 1, 1),
        ld if ld > days_in_month => (y, mo + 1),
        _ => (y, mo),
    };
    Some((
        Month::from_year_month(i32::try_from(ly).ok()?, u32::try_from(lm).ok()?)?,
        i32::try_from(days + shift).ok()?,
        time,
    ))
}

/// Parses an RFC 3339 timestamp to its local month, local day and Unix time.
#[must_use]
pub fn local_time(s: &str) -> Option<(Month, i32, i64)> {
    if let Some(fast) = local_time_fast(s) {
        return Some(fast);
    }
    local_time_chrono(s)
}

/// [`local_time`] by chrono: the reference, and the path for every form the
/// fast parser leaves alone.
fn local_time_chrono(s: &str) -> Option<(Month, i32, i64)> {
    let t: DateTime<FixedOffset> = DateTime::parse_from_rfc3339(s).ok()?;
    let local = t.with_timezone(&FixedOffset::east_opt(LOCAL_OFFSET_SECONDS)?);
    let day = local.date_naive().num_days_from_ce() - 719_163; // 1970-01-01 is day 719 163 from CE
    Some((
        Month::from_year_month(local.year(), local.month())?,
        day,
        t.timestamp(),
    ))
}

/// A finite number; `inf`, `NaN` and text are not numbers.
/// A finite number from a field's number or text.
fn finite(v: Option<Option<f64>>) -> Option<f64> {
    v.flatten().filter(|v| v.is_finite())
}

/// An optional non-negative finite number: absent is fine, anything else is not.
fn speed(v: Option<Option<f64>>) -> Result<Option<f64>, ()> {
    match v {
        None => Ok(None),
        Some(_) => finite(v).filter(|v| *v >= 0.0).map(Some).ok_or(()),
    }
}

/// Whether a finite (lat, lon) is a position: on the globe, and not the
/// (0, 0) of a phone without a fix.
fn plausible_position(lat: f64, lon: f64) -> bool {
    (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) && !(lat == 0.0 && lon == 0.0)
}

/// The (lon, lat) of a row when its coordinates pass [`check_row`]'s
/// coordinate checks (other checks aside).
#[must_use]
pub fn row_position(row: &impl Fields) -> Option<(f64, f64)> {
    let lat = finite(row.number(Field::Lat))?;
    let lon = finite(row.number(Field::Lon))?;
    plausible_position(lat, lon).then_some((lon, lat))
}

/// Runs the field checks (missing field, timestamp, coordinates, speeds) in order.
///
/// # Errors
/// The first failing check's reason.
pub fn check_row<R: Fields>(row: &R) -> Result<CheckedRow<'_>, RejectReason> {
    if row.truncated() || Field::ALL.iter().any(|f| f.required() && !row.has(*f)) {
        return Err(RejectReason::MissingField);
    }
    let req = |f: Field| row.get(f).unwrap_or_default();
    let (month, day, time) = local_time(req(Field::Timestamp)).ok_or(RejectReason::BadTimestamp)?;
    let lat = finite(row.number(Field::Lat)).ok_or(RejectReason::BadCoordinates)?;
    let lon = finite(row.number(Field::Lon)).ok_or(RejectReason::BadCoordinates)?;
    // An accuracy that is given must be a distance: it is part of the location.
    let accuracy = speed(row.number(Field::Accuracy)).map_err(|()| RejectReason::BadCoordinates)?;
    if !plausible_position(lat, lon) {
        return Err(RejectReason::BadCoordinates);
    }
    let download = speed(row.number(Field::Download))
        .ok()
        .flatten()
        .filter(|d| *d <= MAX_DOWNLOAD_MBPS)
        .ok_or(RejectReason::BadSpeed)?;
    let upload = speed(row.number(Field::Upload)).map_err(|()| RejectReason::BadSpeed)?;
    let latency = speed(row.number(Field::Latency)).map_err(|()| RejectReason::BadSpeed)?;
    Ok(CheckedRow {
        test_id: req(Field::TestId),
        month,
        day,
        time,
        accuracy,
        lat,
        lon,
        carrier: req(Field::Carrier),
        network: Network::parse(req(Field::Network)),
        download,
        upload,
        latency,
        device_id: req(Field::DeviceId),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[(Field, &str)]) -> RawRow {
        let mut r = RawRow::new(2);
        for (f, v) in values {
            r.set(*f, v);
        }
        r
    }

    fn good() -> Vec<(Field, &'static str)> {
        vec![
            (Field::TestId, "t1"),
            (Field::Timestamp, "2025-03-31T17:00:00Z"),
            (Field::Lat, "21.5"),
            (Field::Lon, "105.8"),
            (Field::Carrier, "viettel"),
            (Field::Network, "LTE"),
            (Field::Download, "12.5"),
            (Field::DeviceId, "d1"),
        ]
    }

    fn with(field: Field, value: &str) -> RawRow {
        let mut v = good();
        v.retain(|(f, _)| *f != field);
        v.push((field, value));
        row(&v)
    }

    #[test]
    fn typed_coordinates_check_as_their_text_does() {
        // Parsed once ahead of the checks, coordinates give the same checked
        // row or the same reject as their text; text that is no number stays.
        for text in [
            "21.444461",
            "-0.0",
            "0",
            "91",
            "inf",
            "NaN",
            "1e1",
            "abc",
            "",
            "2,5",
        ] {
            for field in [Field::Lat, Field::Lon] {
                let row = with(field, text);
                let mut typed = row.clone();
                typed.type_coordinates();
                assert_eq!(check_row(&typed), check_row(&row), "{field:?} = {text:?}");
                let bits = |r: &RawRow| r.number(field).map(|v| v.map(f64::to_bits));
                assert_eq!(bits(&typed), bits(&row), "{field:?} = {text:?}");
            }
        }
    }

    #[test]
    fn typed_numbers_check_as_their_text_does() {
        // Each numeric field as a value and as the text a CSV would hold:
        // the same checked row, or the same reject reason.
        let cases: [(Field, f64, &str); 9] = [
            (Field::Lat, 21.444461, "21.444461"),
            (Field::Lon, 106.031648, "106.031648"),
            (Field::Download, 0.0, "0"),
            (Field::Download, -3.5, "-3.5"),
            (Field::Download, f64::NAN, "NaN"),
            (Field::Lat, f64::INFINITY, "inf"),
            (Field::Upload, 7.97, "7.97"),
            (Field::Latency, -1.0, "-1"),
            (Field::Accuracy, 25.0, "25"),
        ];
        for (field, value, text) in cases {
            let as_text = with(field, text);
            let mut as_number = row(&good()
                .into_iter()
                .filter(|(f, _)| *f != field)
                .collect::<Vec<_>>());
            as_number.set_number(field, value);
            assert!(as_number.has(field) && as_number.get(field).is_none());
            let (a, b) = (check_row(&as_text), check_row(&as_number));
            match (&a, &b) {
                (Ok(x), Ok(y)) => assert_eq!(
                    (x.lat, x.lon, x.download, x.upload, x.latency, x.accuracy),
                    (y.lat, y.lon, y.download, y.upload, y.latency, y.accuracy),
                    "{field:?} {text}"
                ),
                (Err(x), Err(y)) => assert_eq!(x, y, "{field:?} {text}"),
                _ => panic!("{field:?} {text}: {:?} against {:?}", a.err(), b.err()),
            }
        }
        // A typed required field counts as present; a missing one still fails.
        let mut r = row(&good()
            .into_iter()
            .filter(|(f, _)| *f != Field::Lat)
            .collect::<Vec<_>>());
        assert_eq!(check_row(&r).err(), Some(RejectReason::MissingField));
        r.set_number(Field::Lat, 21.5);
        assert!(check_row(&r).is_ok());
    }

    #[test]
    fn good_row_passes_and_month_is_local() {
        let r = row(&good());
        let c = check_row(&r).expect("valid");
        // 17:00Z on 31 March is midnight on 1 April in UTC+7.
        assert_eq!(c.month.to_string(), "2025-04");
        assert_eq!(c.network, Network::G4);
        assert_eq!(c.upload, None);
    }

    #[test]
    fn month_boundaries_in_utc_plus_7() {
        assert_eq!(
            local_month("2025-03-31T16:59:59Z")
                .map(|m| m.to_string())
                .as_deref(),
            Some("2025-03")
        );
        assert_eq!(
            local_month("2025-03-31T17:00:00Z")
                .map(|m| m.to_string())
                .as_deref(),
            Some("2025-04")
        );
        assert_eq!(
            local_month("2025-04-01T00:30:00+09:00")
                .map(|m| m.to_string())
                .as_deref(),
            Some("2025-03")
        );
        assert_eq!(
            local_month("2024-12-31T23:59:59-05:00")
                .map(|m| m.to_string())
                .as_deref(),
            Some("2025-01")
        );
        assert_eq!(local_month("2025-03-31 12:00:00"), None, "no offset");
        // Days: 1970-01-01 local is day 0; 16:59:59Z on 31 March is still 31 March local.
        assert_eq!(
            local_month_day("1970-01-01T00:00:00+07:00").map(|x| x.1),
            Some(0)
        );
        let a = local_month_day("2025-03-31T16:59:59Z").expect("valid").1;
        let b = local_month_day("2025-03-31T17:00:00Z").expect("valid").1;
        assert_eq!(b - a, 1, "midnight local");
        assert_eq!(local_month("2025-02-30T00:00:00Z"), None);
    }

    #[test]
    fn each_reason_in_order() {
        assert_eq!(
            check_row(&with(Field::DeviceId, "  ")),
            Err(RejectReason::MissingField)
        );
        let mut truncated = row(&good());
        truncated.truncated = true;
        assert_eq!(check_row(&truncated), Err(RejectReason::MissingField));
        assert_eq!(
            check_row(&with(Field::Timestamp, "yesterday")),
            Err(RejectReason::BadTimestamp)
        );
        assert_eq!(
            check_row(&with(Field::Lat, "inf")),
            Err(RejectReason::BadCoordinates)
        );
        assert_eq!(
            check_row(&with(Field::Lat, "91")),
            Err(RejectReason::BadCoordinates)
        );
        assert_eq!(
            check_row(&with(Field::Lon, "-180.5")),
            Err(RejectReason::BadCoordinates)
        );
        let zero = {
            let mut v = good();
            v.retain(|(f, _)| !matches!(f, Field::Lat | Field::Lon));
            v.extend([(Field::Lat, "0"), (Field::Lon, "0.0")]);
            row(&v)
        };
        assert_eq!(check_row(&zero), Err(RejectReason::BadCoordinates));
        assert_eq!(
            check_row(&with(Field::Download, "-1")),
            Err(RejectReason::BadSpeed)
        );
        assert_eq!(
            check_row(&with(Field::Download, "NaN")),
            Err(RejectReason::BadSpeed)
        );
        assert_eq!(
            check_row(&with(Field::Download, "10000.01")),
            Err(RejectReason::BadSpeed)
        );
        assert_eq!(
            check_row(&with(Field::Upload, "fast")),
            Err(RejectReason::BadSpeed)
        );
        assert_eq!(
            check_row(&with(Field::Latency, "-3")),
            Err(RejectReason::BadSpeed)
        );
        // Earlier checks win: bad timestamp and bad speed together is a timestamp reject.
        let mut v = good();
        v.retain(|(f, _)| !matches!(f, Field::Timestamp | Field::Download));
        v.extend([(Field::Timestamp, "x"), (Field::Download, "-1")]);
        assert_eq!(check_row(&row(&v)), Err(RejectReason::BadTimestamp));
    }

    #[test]
    fn zero_and_limit_speeds_are_valid() {
        assert_eq!(
            check_row(&with(Field::Download, "0")).map(|c| c.download),
            Ok(0.0)
        );
        assert_eq!(
            check_row(&with(Field::Download, "10000")).map(|c| c.download),
            Ok(10_000.0)
        );
    }

    #[test]
    fn fields_trim_as_str_trim_does() {
        // Oracle: str::trim. Unicode spaces (no-break, ideographic), the
        // vertical tab and controls that are no whitespace, at either end.
        for v in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\tLTE\r\n",
            "\u{a0}t1",
            "t1\u{a0}",
            "\u{3000}x\u{3000}",
            "\u{b}x",
            "x\u{b}",
            "\u{1}x\u{1}",
            "~",
            "!a~",
            "Việt",
            "ệ",
            "\u{85}x",
        ] {
            assert_eq!(trim_field(v), v.trim(), "{v:?}");
        }
    }

    #[test]
    fn fast_timestamps_equal_chrono() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut cases: Vec<String> = [
            "2025-06-30T16:59:59Z",
            "2025-06-30T17:00:00Z",
            "2024-02-29T23:59:59-01:30",
            "2023-02-29T10:00:00Z",
            "2025-12-31T23:59:60Z",
            "2025-06-01T00:00:00.123456789+07:00",
            "2025-06-01T00:00:00.+07:00",
            "2025-06-01t00:00:00z",
            "2025-06-01 00:00:00Z",
            "2025-06-01T24:00:00Z",
            "2025-06-01T00:00:00+24:00",
            "1970-01-01T00:00:00Z",
            "0001-01-01T00:00:00+07:00",
            "9999-12-31T23:59:59-07:00",
            "2025-13-01T00:00:00Z",
            "2025-06-01T00:00:00",
            "2025-06-01T00:00:00+0700",
        ]
        .map(str::to_owned)
        .to_vec();
        for _ in 0..100_000 {
            let frac = if rng.random_bool(0.3) {
                format!(".{}", rng.random_range(0..1_000_000))
            } else {
                String::new()
            };
            let zone = match rng.random_range(0..3) {
                0 => "Z".to_owned(),
                1 => format!(
                    "+{:02}:{:02}",
                    rng.random_range(0..25),
                    rng.random_range(0..61)
                ),
                _ => format!(
                    "-{:02}:{:02}",
                    rng.random_range(0..25),
                    rng.random_range(0..61)
                ),
            };
            cases.push(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{zone}",
                rng.random_range(1900..2100),
                rng.random_range(0..14),
                rng.random_range(0..33),
                rng.random_range(0..25),
                rng.random_range(0..61),
                rng.random_range(0..61),
            ));
        }
        let mut fast_hits = 0;
        for c in &cases {
            let fast = local_time_fast(c);
            fast_hits += usize::from(fast.is_some());
            if fast.is_some() {
                assert_eq!(fast, local_time_chrono(c), "{c}");
            }
            assert_eq!(local_time(c), local_time_chrono(c), "{c}");
        }
        // Most random cases are in range: the fast path is exercised.
        assert!(fast_hits > 50_000, "{fast_hits}");
    }

    #[test]
    fn networks_and_aliases() {
        for (s, n) in [
            ("lte", Network::G4),
            ("NR", Network::G5),
            ("wcdma", Network::G3),
            ("UMTS", Network::G3),
            ("HSPA", Network::G3),
            ("gsm", Network::G2),
            ("EDGE", Network::G2),
            ("Wi-Fi", Network::Wifi),
            ("wlan", Network::Wifi),
            ("wifi", Network::Wifi),
            ("satellite", Network::Unknown),
            ("5g", Network::G5),
        ] {
            assert_eq!(Network::parse(s), n, "{s}");
        }
    }

    #[test]
    fn column_mappings() {
        let m = ColumnMap::with_mappings(&["lat=latitude", "download_mbps = dl"]).expect("valid");
        assert_eq!(m.column(Field::Lat), "latitude");
        assert_eq!(m.column(Field::Download), "dl");
        assert_eq!(m.column(Field::Lon), "lon");
        assert!(ColumnMap::with_mappings(&["latitude"]).is_err());
        assert!(ColumnMap::with_mappings(&["height=h"]).is_err());
    }
}
