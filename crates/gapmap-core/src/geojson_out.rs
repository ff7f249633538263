//! Hand-written RFC 7946 GeoJSON: lon/lat order, counter-clockwise exterior
//! rings, no `crs`, 6 decimals, properties in a fixed order. Written by hand
//! so that output is byte-stable and property order is the documented one.

use std::path::Path;

use crate::error::Result;
use crate::output::{fmt_decimal, write_atomic};

/// A property value.
#[derive(Debug, Clone, PartialEq)]
pub enum Prop {
    /// A string.
    Str(String),
    /// A number with the given decimals (trailing zeros trimmed).
    Num(Option<f64>, usize),
    /// An integer.
    Int(u64),
    /// A boolean or null.
    Bool(Option<bool>),
    /// A number already formatted (e.g. a p-value), or null when empty.
    Raw(String),
}

/// A feature: a point or a polygon ring (closed, any orientation) and properties.
#[derive(Debug, Clone)]
pub enum Shape {
    /// (lon, lat).
    Point(f64, f64),
    /// One exterior ring of (lon, lat).
    Ring(Vec<(f64, f64)>),
    /// Polygons with holes (written counter-clockwise outside, clockwise inside).
    Multi(geo::MultiPolygon<f64>),
}

fn coord(out: &mut String, x: f64, y: f64) {
    out.push('[');
    out.push_str(&fmt_decimal(Some(x), 6));
    out.push(',');
    out.push_str(&fmt_decimal(Some(y), 6));
    out.push(']');
}

/// Appends a value already rounded to 6 decimals as `fmt_decimal(v, 6)`
/// writes it, without allocating: the rounded value's nearest micro-degree
/// is exact, so integer digits give the same text (tested against it).
fn push_micro(out: &mut String, v: f64) {
    #[allow(clippy::cast_possible_truncation, reason = "|v| ≤ 180 here")]
    let k = (v * 1e6).round() as i64;
    if k < 0 {
        out.push('-');
    }
    let k = k.unsigned_abs();
    let (int, mut frac) = (k / 1_000_000, k % 1_000_000);
    let mut buf = itoa::Buffer::new();
    out.push_str(buf.format(int));
    if frac > 0 {
        let mut digits = 6;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        out.push('.');
        let f = buf.format(frac);
        for _ in f.len()..digits {
            out.push('0');
        }
        out.push_str(f);
    }
}

/// Twice the signed area (positive = counter-clockwise in lon/lat).
#[must_use]
pub fn signed_area2(ring: &[(f64, f64)]) -> f64 {
    ring.windows(2)
        .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
        .sum()
}

/// A ring rounded to 6 decimals, closed, counter-clockwise when `outer`
/// (RFC 7946), clockwise otherwise.
fn ring_coords(s: &mut String, ring: &[(f64, f64)], outer: bool) {
    let mut r: Vec<(f64, f64)> = ring
        .iter()
        .map(|&(x, y)| ((x * 1e6).round() / 1e6, (y * 1e6).round() / 1e6))
        .collect();
    if r.first() != r.last()
        && let Some(&f) = r.first()
    {
        r.push(f);
    }
    if (signed_area2(&r) < 0.0) == outer {
        r.reverse();
    }
    s.push('[');
    for (i, (x, y)) in r.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('[');
        push_micro(s, *x);
        s.push(',');
        push_micro(s, *y);
        s.push(']');
    }
    s.push(']');
}

/// One feature as a JSON line.
#[must_use]
pub fn feature(shape: &Shape, props: &[(&str, Prop)]) -> String {
    let mut s = String::with_capacity(256);
    s.push_str("{\"type\":\"Feature\",\"geometry\":");
    match shape {
        Shape::Point(x, y) => {
            s.push_str("{\"type\":\"Point\",\"coordinates\":");
            coord(&mut s, *x, *y);
            s.push('}');
        }
        Shape::Ring(ring) => {
            s.push_str("{\"type\":\"Polygon\",\"coordinates\":[");
            ring_coords(&mut s, ring, true);
            s.push_str("]}");
        }
        Shape::Multi(mp) => {
            s.push_str("{\"type\":\"MultiPolygon\",\"coordinates\":[");
            for (pi, poly) in mp.0.iter().enumerate() {
                if pi > 0 {
                    s.push(',');
                }
                s.push('[');
                let rings = std::iter::once(poly.exterior()).chain(poly.interiors());
                for (ri, ring) in rings.enumerate() {
                    if ri > 0 {
                        s.push(',');
                    }
                    let pts: Vec<(f64, f64)> = ring.coords().map(|c| (c.x, c.y)).collect();
                    ring_coords(&mut s, &pts, ri == 0);
                }
                s.push(']');
            }
            s.push_str("]}");
        }
    }
    s.push_str(",\"properties\":{");
    for (i, (k, v)) in props.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&serde_json::Value::from(*k).to_string());
        s.push(':');
        match v {
            Prop::Str(x) => s.push_str(&serde_json::Value::from(x.as_str()).to_string()),
            Prop::Num(None, _) | Prop::Bool(None) => s.push_str("null"),
            Prop::Num(Some(x), d) => s.push_str(&fmt_decimal(Some(*x), *d)),
            Prop::Int(x) => s.push_str(&x.to_string()),
            Prop::Bool(Some(b)) => s.push_str(if *b { "true" } else { "false" }),
            Prop::Raw(x) if x.is_empty() => s.push_str("null"),
            Prop::Raw(x) => s.push_str(x),
        }
    }
    s.push_str("}}");
    s
}

/// Writes a FeatureCollection of pre-rendered features atomically. `name` is
/// the layer name GDAL and QGIS show (a foreign member RFC 7946 allows).
///
/// # Errors
/// The file cannot be written.
pub fn write_collection(path: &Path, name: &str, features: &[String]) -> Result<()> {
    write_atomic(path, |w| {
        write!(
            w,
            "{{\"type\":\"FeatureCollection\",\"name\":{},\"features\":[",
            serde_json::Value::from(name)
        )?;
        for (i, f) in features.iter().enumerate() {
            w.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            w.write_all(f.as_bytes())?;
        }
        w.write_all(b"\n]}\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clockwise_rings_are_reversed_and_closed() {
        let cw = vec![(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)];
        let f = feature(&Shape::Ring(cw), &[("a", Prop::Int(1))]);
        let v: serde_json::Value = serde_json::from_str(&f).expect("valid json");
        let ring = v["geometry"]["coordinates"][0].as_array().expect("ring");
        assert_eq!(ring.first(), ring.last());
        let pts: Vec<(f64, f64)> = ring
            .iter()
            .map(|p| (p[0].as_f64().expect("x"), p[1].as_f64().expect("y")))
            .collect();
        assert!(signed_area2(&pts) > 0.0);
    }

    #[test]
    fn micro_degrees_are_written_as_fmt_decimal_writes_them() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut values: Vec<f64> =
            vec![0.0, -0.0, 1e-6, -1e-6, 180.0, -180.0, 0.5, 105.1, -0.000_01];
        values.extend((0..200_000).map(|_| rng.random_range(-180.0..180.0)));
        // Ties at the 7th decimal that are exact in binary (1/128 = 0.0078125).
        values.extend([0.007_812_5, -0.007_812_5, 105.007_812_5]);
        for v in values {
            let r = (v * 1e6).round() / 1e6;
            let mut fast = String::new();
            push_micro(&mut fast, r);
            assert_eq!(fast, fmt_decimal(Some(r), 6), "{v:e}");
        }
    }

    #[test]
    fn six_decimals_and_nulls() {
        let f = feature(
            &Shape::Point(105.123_456_789, 21.1),
            &[
                ("s", Prop::Str("Bản \"A\"".into())),
                ("n", Prop::Num(None, 3)),
                ("p", Prop::Raw(String::new())),
            ],
        );
        assert_eq!(
            f,
            r#"{"type":"Feature","geometry":{"type":"Point","coordinates":[105.123457,21.1]},"properties":{"s":"Bản \"A\"","n":null,"p":null}}"#
        );
    }
}
