//! Great-circle distances on a sphere of radius 6 371 008.8 m (the IUGG mean
//! Earth radius), as the issues require.

/// Mean Earth radius in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Metres per degree of latitude on that sphere.
pub const METRES_PER_DEGREE: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

/// Haversine distance in metres between two (lon, lat) points in degrees.
#[must_use]
pub fn haversine_m(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// An upper bound of [`haversine_m`] between any two points whose latitudes
/// span `lat_span` degrees and longitudes `lon_span` (both non-negative):
/// sin² x ≤ x², the cosines are at most 1 and asin y ≤ π/2 · y on [0, 1],
/// then widened by a millionth, far above the formula's rounding. Infinite
/// when a span is not a number.
#[must_use]
pub fn haversine_bound_m(lat_span: f64, lon_span: f64) -> f64 {
    let (dp, dl) = (lat_span.to_radians(), lon_span.to_radians());
    let a_bound = (dp / 2.0).powi(2) + (dl / 2.0).powi(2);
    let bound = 2.0 * EARTH_RADIUS_M * std::f64::consts::FRAC_PI_2 * a_bound.sqrt().min(1.0);
    if bound.is_nan() {
        f64::INFINITY
    } else {
        bound * (1.0 + 1e-6)
    }
}

/// Distance in metres from a point to the segment (a, b), all (lon, lat) in
/// degrees. The closest point is found in a local equirectangular projection
/// centred on the point (exact to well under a metre at the few-kilometre
/// scales gapmap snaps over) and the distance to it is then haversine.
#[must_use]
pub fn point_segment_m(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let k = p[1].to_radians().cos();
    let (ax, ay) = ((a[0] - p[0]) * k, a[1] - p[1]);
    let (bx, by) = ((b[0] - p[0]) * k, b[1] - p[1]);
    let (dx, dy) = (bx - ax, by - ay);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (-(ax * dx + ay * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let lon = a[0] + t * (b[0] - a[0]);
    let lat = a[1] + t * (b[1] - a[1]);
    haversine_m(p[0], p[1], lon, lat)
}

/// Half-widths in degrees (lon, lat) of a box that contains every point within
/// `metres` of a point at latitude `lat`.
#[must_use]
pub fn degree_margins(lat: f64, metres: f64) -> (f64, f64) {
    // 1 % slack covers the flat-earth approximation of the box.
    let dlat = metres / METRES_PER_DEGREE * 1.01;
    let cos = (lat.abs() + dlat).min(89.9).to_radians().cos();
    (dlat / cos, dlat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_degree_of_latitude() {
        // 2πR/360 by hand: 6 371 008.8 × π / 180 = 111 195.08 m.
        let d = haversine_m(105.0, 21.0, 105.0, 22.0);
        assert!((d - 111_195.08).abs() < 0.01, "{d}");
    }

    #[test]
    fn known_city_distance() {
        // Hà Nội (105.8542, 21.0285) to Hải Phòng (106.6881, 20.8449):
        // ~89.5 km by any great-circle calculator on the mean sphere.
        let d = haversine_m(105.8542, 21.0285, 106.6881, 20.8449);
        assert!((d - 89_500.0).abs() < 600.0, "{d}");
    }

    #[test]
    fn segment_distance_perpendicular_and_endpoint() {
        let p = [105.0, 21.001];
        let d = point_segment_m(p, [104.99, 21.0], [105.01, 21.0]);
        assert!((d - 111.195).abs() < 0.05, "{d}");
        let d2 = point_segment_m([105.02, 21.0], [104.99, 21.0], [105.01, 21.0]);
        let want = haversine_m(105.02, 21.0, 105.01, 21.0);
        assert!((d2 - want).abs() < 1e-9);
    }

    #[test]
    fn margins_cover_the_distance() {
        let (dlon, dlat) = degree_margins(21.0, 500.0);
        assert!(haversine_m(105.0, 21.0, 105.0 + dlon, 21.0) >= 500.0);
        assert!(haversine_m(105.0, 21.0, 105.0, 21.0 + dlat) >= 500.0);
    }
}
