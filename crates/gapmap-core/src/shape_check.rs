//! Checks and repairs of boundary polygons as provincial offices send them:
//! projected or swapped coordinates, unclosed rings, clockwise exteriors,
//! self-intersecting rings, degenerate parts and holes outside their polygon.
//!
//! Each problem is either an error naming the feature and the fix, or a
//! repair reported as a [`Repair`] (the caller turns it into a warning).

use geo::algorithm::bool_ops::{BooleanOps, FillRule, OpType};
use geo::algorithm::validation::{InvalidPolygon, RingRole};
use geo::{
    Area, Intersects, MultiPolygon, Orient, Polygon, Validation, Winding, orient::Direction,
};

/// What was repaired in one feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepairKind {
    /// A ring whose last position differs from its first was closed.
    UnclosedRing,
    /// An exterior ring given clockwise (or a hole counter-clockwise) was reoriented.
    Winding,
    /// A self-intersecting or crossing ring set was rebuilt by a polygon union.
    SelfIntersection,
    /// A part or hole with fewer than three distinct points was dropped.
    DegeneratePart,
}

impl RepairKind {
    /// Every kind, in report order.
    pub const ALL: [Self; 4] = [
        Self::UnclosedRing,
        Self::Winding,
        Self::SelfIntersection,
        Self::DegeneratePart,
    ];

    /// What the warning says was done.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::UnclosedRing => "a ring was not closed; closed by repeating its first position",
            Self::Winding => {
                "a ring had the wrong winding (RFC 7946: exteriors counter-clockwise); \
                 reoriented, which does not change which points it contains"
            }
            Self::SelfIntersection => {
                "a ring crosses itself or another ring; rebuilt as the union of its parts \
                 (check the unit's area in QGIS)"
            }
            Self::DegeneratePart => {
                "a part or hole has fewer than three distinct points, or a hole lies outside \
                 its polygon; dropped, which changes no point's unit"
            }
        }
    }
}

/// One repair, with the detail the warning names.
#[derive(Debug, Clone, PartialEq)]
pub struct Repair {
    /// What kind.
    pub kind: RepairKind,
    /// Where and by how much, e.g. "polygon 0, exterior; area 1.2 → 0.9 km²".
    pub detail: String,
}

/// Checks that every raw position is a WGS84 longitude/latitude: the usual
/// wrong inputs are projected files (VN-2000, UTM metres) and swapped axes.
///
/// # Errors
/// A message naming the polygon, ring and position, and the fix.
pub fn check_positions(rings: &[&[geojson::Position]], polygon: usize) -> Result<(), String> {
    for (ri, ring) in rings.iter().enumerate() {
        for (pi, p) in ring.iter().enumerate() {
            let (x, y) = (p[0], p[1]);
            if !(x.is_finite() && y.is_finite()) {
                return Err(format!(
                    "polygon {polygon}, ring {ri}, position {pi} is not a finite number"
                ));
            }
            if !(-180.0..=180.0).contains(&x) || !(-90.0..=90.0).contains(&y) {
                return Err(format!(
                    "polygon {polygon}, ring {ri}, position {pi} is ({x}, {y}), outside \
                     longitude -180..180 / latitude -90..90; the file must be in WGS84 degrees \
                     (EPSG:4326) as [lon, lat]: reproject it (e.g. ogr2ogr -t_srs EPSG:4326) \
                     or swap the axes"
                ));
            }
        }
    }
    Ok(())
}

/// Rings of a raw polygon whose last position is not its first.
#[must_use]
pub fn unclosed_rings(rings: &[&[geojson::Position]]) -> Vec<usize> {
    rings
        .iter()
        .enumerate()
        .filter(|(_, r)| r.len() >= 2 && r.first() != r.last())
        .map(|(i, _)| i)
        .collect()
}

fn ring_name(role: RingRole) -> String {
    match role {
        RingRole::Exterior => "exterior".to_owned(),
        RingRole::Interior(i) => format!("hole {i}"),
    }
}

/// Area in km² at the polygon's latitude (for repair messages only).
fn area_km2(p: &Polygon<f64>) -> f64 {
    let lat = p.exterior().0.first().map_or(0.0, |c| c.y);
    p.unsigned_area() * 111.32 * 111.32 * lat.to_radians().cos()
}

/// Checks and repairs the polygons of one feature (already closed by the
/// conversion from GeoJSON). Returns the repaired shape and what was done.
///
/// # Errors
/// Nothing usable is left (every part degenerate, or a repair came out empty).
pub fn repair_shape(shape: MultiPolygon<f64>) -> Result<(MultiPolygon<f64>, Vec<Repair>), String> {
    let mut repairs = Vec::new();
    let mut out = Vec::with_capacity(shape.0.len());
    let parts = shape.0.len();
    for (k, poly) in shape.0.into_iter().enumerate() {
        // Most polygons are a simple ring without holes: proving that takes
        // O(n log n), where the general validation is far slower on
        // detailed boundaries (26 s for 11 163 communes of ~480 vertices).
        if poly.interiors().is_empty() && is_simple_ring(poly.exterior()) {
            out.push(oriented(poly, k, &mut repairs));
            continue;
        }
        let errors = poly.validation_errors();
        if errors.is_empty() {
            out.push(oriented(poly, k, &mut repairs));
            continue;
        }
        if errors
            .iter()
            .any(|e| matches!(e, InvalidPolygon::NonFiniteCoord(..)))
        {
            return Err(format!(
                "polygon {k} has a coordinate that is not a finite number"
            ));
        }
        if errors
            .iter()
            .any(|e| matches!(e, InvalidPolygon::TooFewPointsInRing(RingRole::Exterior)))
        {
            repairs.push(Repair {
                kind: RepairKind::DegeneratePart,
                detail: format!("polygon {k}, exterior"),
            });
            continue;
        }
        // Degenerate holes are dropped; what remains is re-checked.
        let (exterior, interiors) = poly.into_inner();
        let mut kept = Vec::new();
        for (i, hole) in interiors.into_iter().enumerate() {
            let bad = Polygon::new(hole.clone(), vec![])
                .validation_errors()
                .iter()
                .any(|e| matches!(e, InvalidPolygon::TooFewPointsInRing(_)));
            if bad {
                repairs.push(Repair {
                    kind: RepairKind::DegeneratePart,
                    detail: format!("polygon {k}, hole {i}"),
                });
            } else {
                kept.push(hole);
            }
        }
        // A hole wholly outside its exterior removes nothing: drop it.
        let shell = Polygon::new(exterior.clone(), vec![]);
        let (inside, outside): (Vec<_>, Vec<_>) = kept
            .into_iter()
            .enumerate()
            .partition(|(_, h)| shell.intersects(&Polygon::new(h.clone(), vec![])));
        for (i, _) in &outside {
            repairs.push(Repair {
                kind: RepairKind::DegeneratePart,
                detail: format!("polygon {k}, hole {i} lies wholly outside the exterior"),
            });
        }
        let poly = Polygon::new(exterior, inside.into_iter().map(|(_, h)| h).collect());
        let errors = poly.validation_errors();
        if errors.is_empty() {
            out.push(oriented(poly, k, &mut repairs));
            continue;
        }
        let what: Vec<String> = errors
            .iter()
            .map(|e| match e {
                InvalidPolygon::SelfIntersection(r) => format!("{} crosses itself", ring_name(*r)),
                InvalidPolygon::InteriorRingNotContainedInExteriorRing(r) => {
                    format!("{} is not within the exterior", ring_name(*r))
                }
                InvalidPolygon::IntersectingRingsOnALine(a, b)
                | InvalidPolygon::IntersectingRingsOnAnArea(a, b) => {
                    format!("{} and {} cross", ring_name(*a), ring_name(*b))
                }
                other => other.to_string(),
            })
            .collect();
        let before = area_km2(&poly);
        // Even-odd, as a ray-casting test reads the ring as given: every lobe
        // of a figure-eight stays in the unit.
        let rebuilt = poly.boolean_op_with_fill_rule(
            &MultiPolygon::<f64>::new(vec![]),
            OpType::Union,
            FillRule::EvenOdd,
        );
        let after: f64 = rebuilt.0.iter().map(area_km2).sum();
        if rebuilt.0.is_empty() || after <= 0.0 {
            return Err(format!(
                "polygon {k} is invalid ({}) and nothing is left after repair; fix it in QGIS \
                 (Vector > Geometry Tools > Check Validity)",
                what.join(", ")
            ));
        }
        repairs.push(Repair {
            kind: RepairKind::SelfIntersection,
            detail: format!(
                "polygon {k}: {}; area {before:.3} → {after:.3} km²",
                what.join(", ")
            ),
        });
        out.extend(rebuilt.0.into_iter().map(|p| p.orient(Direction::Default)));
    }
    if out.is_empty() {
        return Err(format!(
            "none of its {parts} polygon(s) has three distinct points; the geometry is empty"
        ));
    }
    Ok((MultiPolygon(out), repairs))
}

/// Whether a closed ring is simple: at least three distinct points, finite
/// coordinates, and no two edges meeting except consecutive edges at their
/// shared vertex. Conservative: `false` sends the ring to the full
/// validation, so a ring with a touching vertex is judged there.
fn is_simple_ring(ring: &geo::LineString<f64>) -> bool {
    use geo::{Intersects, Line};
    let pts = &ring.0;
    let n = pts.len().saturating_sub(1); // edges of the closed ring
    if n < 3
        || pts.first() != pts.last()
        || pts.iter().any(|c| !(c.x.is_finite() && c.y.is_finite()))
    {
        return false;
    }
    let mut distinct: Vec<(u64, u64)> = pts[..n]
        .iter()
        .map(|c| (c.x.to_bits(), c.y.to_bits()))
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != n || n < 3 {
        return false; // a repeated vertex: leave it to the full validation
    }
    // Sweep in x: edges sorted by their left end; each edge meets only the
    // edges that start before its right end and overlap it in y.
    let line = |i: usize| Line::new(pts[i], pts[i + 1]);
    let bounds = |i: usize| {
        let (a, b) = (pts[i], pts[i + 1]);
        (a.x.min(b.x), a.x.max(b.x), a.y.min(b.y), a.y.max(b.y))
    };
    let mut order: Vec<(f64, usize)> = (0..n).map(|i| (bounds(i).0, i)).collect();
    order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (oi, &(_, a)) in order.iter().enumerate() {
        let (_, ax1, ay0, ay1) = bounds(a);
        for &(bx0, b) in &order[oi + 1..] {
            if bx0 > ax1 {
                break;
            }
            let (_, _, by0, by1) = bounds(b);
            if by0 > ay1 || by1 < ay0 {
                continue;
            }
            let (i, j) = (a.min(b), a.max(b));
            let adjacent = j == i + 1 || (i == 0 && j == n - 1);
            let (li, lj) = (line(i), line(j));
            if adjacent {
                // Consecutive edges share one vertex; they must not overlap.
                let shared = if j == i + 1 { pts[j] } else { pts[0] };
                let other_i = if li.start == shared { li.end } else { li.start };
                let other_j = if lj.start == shared { lj.end } else { lj.start };
                if lj.intersects(&other_i) || li.intersects(&other_j) {
                    return false;
                }
                let cross = (other_i.x - shared.x) * (other_j.y - shared.y)
                    - (other_i.y - shared.y) * (other_j.x - shared.x);
                if cross == 0.0 {
                    let dot = (other_i.x - shared.x) * (other_j.x - shared.x)
                        + (other_i.y - shared.y) * (other_j.y - shared.y);
                    if dot > 0.0 {
                        return false; // the ring doubles back on itself
                    }
                }
            } else if li.intersects(&lj) {
                return false;
            }
        }
    }
    true
}

/// The polygon with a counter-clockwise exterior and clockwise holes, noting
/// a change of winding.
fn oriented(poly: Polygon<f64>, k: usize, repairs: &mut Vec<Repair>) -> Polygon<f64> {
    let wrong = poly.exterior().is_cw() || poly.interiors().iter().any(Winding::is_ccw);
    if !wrong {
        return poly;
    }
    repairs.push(Repair {
        kind: RepairKind::Winding,
        detail: format!("polygon {k}"),
    });
    poly.orient(Direction::Default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Contains, polygon};

    #[test]
    fn the_simple_ring_check_agrees_with_the_full_validation() {
        use rand::{RngExt, SeedableRng};
        // Random rings of 4..12 points in a small box: many cross, some not.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut simple, mut crossing) = (0, 0);
        for _ in 0..20_000 {
            let n = rng.random_range(3..12);
            let mut pts: Vec<(f64, f64)> = (0..n)
                .map(|_| {
                    (
                        f64::from(rng.random_range(0..6_u8)),
                        f64::from(rng.random_range(0..6_u8)),
                    )
                })
                .collect();
            pts.push(pts[0]);
            let ring = geo::LineString::from(pts);
            let poly = Polygon::new(ring.clone(), vec![]);
            if is_simple_ring(&ring) {
                simple += 1;
                assert!(poly.is_valid(), "{ring:?}: {:?}", poly.validation_errors());
            } else {
                crossing += 1;
            }
        }
        // Both kinds occur, so the check is exercised either way.
        assert!(simple > 1_000 && crossing > 1_000, "{simple} {crossing}");
    }

    #[test]
    fn a_bowtie_is_rebuilt_and_keeps_both_lobes() {
        // Exterior 0,0 → 2,2 → 2,0 → 0,2: two triangles touching at (1, 1).
        let bowtie = polygon![(x: 0., y: 0.), (x: 2., y: 2.), (x: 2., y: 0.), (x: 0., y: 2.)];
        let (fixed, repairs) = repair_shape(MultiPolygon(vec![bowtie])).expect("repaired");
        assert_eq!(repairs.len(), 1);
        assert_eq!(repairs[0].kind, RepairKind::SelfIntersection);
        assert!(
            repairs[0].detail.contains("exterior crosses itself"),
            "{:?}",
            repairs[0]
        );
        assert!(fixed.is_valid(), "{fixed:?}");
        // Hand-worked: each lobe is a triangle of area 1.
        assert!(
            (fixed.unsigned_area() - 2.0).abs() < 1e-9,
            "{fixed:?} {}",
            fixed.unsigned_area()
        );
        assert!(fixed.contains(&geo::point!(x: 1.5, y: 1.0)));
        assert!(fixed.contains(&geo::point!(x: 0.5, y: 1.0)));
        assert!(!fixed.contains(&geo::point!(x: 1.0, y: 1.8)));
    }

    #[test]
    fn clockwise_is_reoriented_and_a_valid_ccw_polygon_untouched() {
        let ccw = polygon![(x: 0., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.), (x: 0., y: 1.)];
        let (same, none) = repair_shape(MultiPolygon(vec![ccw.clone()])).expect("valid");
        assert!(none.is_empty());
        assert_eq!(same.0[0], ccw);
        let cw = polygon![(x: 0., y: 0.), (x: 0., y: 1.), (x: 1., y: 1.), (x: 1., y: 0.)];
        let (fixed, repairs) = repair_shape(MultiPolygon(vec![cw])).expect("valid");
        assert_eq!(repairs[0].kind, RepairKind::Winding);
        assert!(fixed.0[0].exterior().is_ccw());
    }

    #[test]
    fn degenerate_parts_are_dropped_and_an_all_degenerate_shape_is_an_error() {
        let good = polygon![(x: 0., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.), (x: 0., y: 1.)];
        let line = polygon![(x: 5., y: 5.), (x: 6., y: 6.), (x: 5., y: 5.)];
        let (fixed, repairs) =
            repair_shape(MultiPolygon(vec![line.clone(), good])).expect("one part left");
        assert_eq!(fixed.0.len(), 1);
        assert_eq!(repairs[0].kind, RepairKind::DegeneratePart);
        assert!(repairs[0].detail.contains("polygon 0"));
        let e = repair_shape(MultiPolygon(vec![line])).expect_err("empty");
        assert!(e.contains("geometry is empty"), "{e}");
    }

    #[test]
    fn a_hole_outside_its_polygon_is_dropped() {
        let p = Polygon::new(
            geo::LineString::from(vec![(0., 0.), (1., 0.), (1., 1.), (0., 1.), (0., 0.)]),
            vec![geo::LineString::from(vec![
                (5., 5.),
                (5., 6.),
                (6., 6.),
                (6., 5.),
                (5., 5.),
            ])],
        );
        let (fixed, repairs) = repair_shape(MultiPolygon(vec![p])).expect("repaired");
        assert_eq!(repairs[0].kind, RepairKind::DegeneratePart);
        assert!(
            repairs[0].detail.contains("outside the exterior"),
            "{:?}",
            repairs[0]
        );
        assert!(fixed.0[0].interiors().is_empty());
        assert!(fixed.contains(&geo::point!(x: 0.5, y: 0.5)));
        assert!(!fixed.contains(&geo::point!(x: 5.5, y: 5.5)));
    }

    #[test]
    fn a_hole_crossing_its_exterior_is_read_even_odd() {
        // Square 0..2 with a "hole" 1..3 that pokes out: even-odd keeps
        // x 0..1 and the part of the hole outside the square (x 2..3).
        let p = Polygon::new(
            geo::LineString::from(vec![(0., 0.), (2., 0.), (2., 2.), (0., 2.), (0., 0.)]),
            vec![geo::LineString::from(vec![
                (1., 0.5),
                (1., 1.5),
                (3., 1.5),
                (3., 0.5),
                (1., 0.5),
            ])],
        );
        let (fixed, repairs) = repair_shape(MultiPolygon(vec![p])).expect("repaired");
        assert_eq!(repairs[0].kind, RepairKind::SelfIntersection);
        assert!(
            repairs[0].detail.contains("hole 0 is not within"),
            "{:?}",
            repairs[0]
        );
        // Hand-worked: 4 − 1 (hole inside) + 1 (hole outside) = 4.
        assert!((fixed.unsigned_area() - 4.0).abs() < 1e-9, "{fixed:?}");
        assert!(fixed.contains(&geo::point!(x: 0.5, y: 1.0)));
        assert!(!fixed.contains(&geo::point!(x: 1.5, y: 1.0)));
        assert!(fixed.contains(&geo::point!(x: 2.5, y: 1.0)));
    }

    #[test]
    fn projected_coordinates_name_the_position_and_the_fix() {
        let pos =
            |v: &[(f64, f64)]| -> Vec<geojson::Position> { v.iter().map(|&p| p.into()).collect() };
        let ring = pos(&[(105.0, 21.0), (583_000.0, 2_323_000.0), (105.0, 21.0)]);
        let e = check_positions(&[&ring], 2).expect_err("projected");
        assert!(
            e.contains("polygon 2, ring 0, position 1") && e.contains("EPSG:4326"),
            "{e}"
        );
        let open = pos(&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]);
        let closed = pos(&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]);
        assert_eq!(unclosed_rings(&[&closed, &open]), [1]);
    }
}
