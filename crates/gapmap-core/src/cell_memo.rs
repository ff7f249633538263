//! H3 cells of points well inside a hexagon met before, without h3o's
//! projection (the largest cost per sample at national scale).
//!
//! Why the answer is h3o's. At a resolution, h3o puts a point on its
//! closest icosahedron face, projects it gnomonically onto that face's
//! plane and rounds to the hexagon of the face's lattice holding it. On a
//! face, lattice hexagons are straight-edged in the plane, so on the sphere
//! a cell is bounded by great circles through its vertices (what
//! [`h3o::CellIndex::boundary`] returns). A memo hexagon is used only when
//! it is not a pentagon, lies on one face (`icosahedron_faces`), and is far
//! from every face centre (there h3o's `acos` loses precision). A point is
//! given the cell only when it is inside all six great circles by a margin
//! of 1/1000 of the cell's edge (at resolution 8, 46 cm). Points nearer an
//! edge, in other cells or in unmet squares take h3o itself.
//!
//! The margin against what h3o does: h3o's cells and its own boundaries
//! disagree by a little (a point inside a boundary can be given the
//! neighbour), growing about sevenfold per resolution. Measured over Vietnam
//! (1.8 M points next to edges per resolution): at most 1.9e-9 of an edge
//! at resolution 8, 2.2e-8 at 9, 1.7e-6 at 11, 1.2e-5 at 12, 4.3e-3 at 15.
//! So the memo answers at resolutions up to [`MAX_RESOLUTION`] only, where
//! the margin is over 500 times the largest disagreement seen (500 000
//! times at resolution 8); a unit test measures it again and fails below
//! 100 times. `--exact-placement` turns the memo off; a CI test compares
//! the two on national samples, and a unit test compares the memo with h3o
//! on points placed next to cell edges and vertices.

/// Hash maps with a fixed, fast hasher: the keys are ours.
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// Candidate cells remembered per square (a square two cell edges wide
/// meets about eight).
const CANDIDATES: usize = 8;

/// No candidate.
const NONE: u32 = u32::MAX;

/// The finest resolution the memo answers at (see the module's note).
pub const MAX_RESOLUTION: h3o::Resolution = h3o::Resolution::Eleven;

/// Closest distance (radians) from a memo hexagon to any face centre.
const FACE_CENTRE_CLEARANCE: f64 = 1e-4;

/// Centres of the 20 icosahedron faces as unit vectors, as h3o has them
/// (`face::CENTER_POINT`, h3o 0.11, BSD-3-Clause; from H3's `faceCenterPoint`).
const FACE_CENTRES: [[f64; 3]; 20] = [
    [
        0.219_930_779_140_460_6,
        0.658_369_178_027_499_6,
        0.719_847_537_892_618_2,
    ],
    [
        -0.213_923_483_450_142_1,
        0.147_817_182_955_070_3,
        0.965_601_793_521_420_5,
    ],
    [
        0.109_262_527_878_479_7,
        -0.481_195_157_287_321,
        0.869_777_512_128_725_3,
    ],
    [
        0.742_856_730_158_679_1,
        -0.359_394_167_827_802_8,
        0.564_800_593_651_703_3,
    ],
    [
        0.811_253_470_914_096_9,
        0.344_895_323_763_938_4,
        0.472_138_773_641_393,
    ],
    [
        -0.105_549_814_961_392_1,
        0.979_445_729_641_141_3,
        0.171_887_461_000_936_5,
    ],
    [
        -0.807_540_757_997_009_2,
        0.153_355_248_589_881_8,
        0.569_526_199_488_268_8,
    ],
    [
        -0.284_614_806_978_790_7,
        -0.864_408_097_265_420_6,
        0.414_479_255_247_353_9,
    ],
    [
        0.740_562_147_385_448_2,
        -0.667_329_956_456_552_4,
        -0.078_983_764_632_673_7,
    ],
    [
        0.851_230_398_647_429_3,
        0.472_234_378_858_268_1,
        -0.228_913_738_868_780_8,
    ],
    [
        -0.740_562_147_385_448_1,
        0.667_329_956_456_552_4,
        0.078_983_764_632_673_7,
    ],
    [
        -0.851_230_398_647_429_2,
        -0.472_234_378_858_268_2,
        0.228_913_738_868_780_8,
    ],
    [
        0.105_549_814_961_391_9,
        -0.979_445_729_641_141_3,
        -0.171_887_461_000_936_5,
    ],
    [
        0.807_540_757_997_009_2,
        -0.153_355_248_589_881_9,
        -0.569_526_199_488_268_8,
    ],
    [
        0.284_614_806_978_790_8,
        0.864_408_097_265_420_4,
        -0.414_479_255_247_353_9,
    ],
    [
        -0.742_856_730_158_679_1,
        0.359_394_167_827_802_7,
        -0.564_800_593_651_703_3,
    ],
    [
        -0.811_253_470_914_097,
        -0.344_895_323_763_938_2,
        -0.472_138_773_641_393,
    ],
    [
        -0.219_930_779_140_460_7,
        -0.658_369_178_027_499_6,
        -0.719_847_537_892_618_2,
    ],
    [
        0.213_923_483_450_142,
        -0.147_817_182_955_070_4,
        -0.965_601_793_521_420_5,
    ],
    [
        -0.109_262_527_878_479_6,
        0.481_195_157_287_321,
        -0.869_777_512_128_725_3,
    ],
];

/// A unit vector from latitude and longitude in radians.
fn unit_vector(lat: f64, lng: f64) -> [f64; 3] {
    let (sin_lat, cos_lat) = lat.sin_cos();
    let (sin_lng, cos_lng) = lng.sin_cos();
    [cos_lat * cos_lng, cos_lat * sin_lng, sin_lat]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Boundary sets whose cell-table values a hexagon keeps ([`CellMemo::cell_valued`]).
pub const VALUED_SETS: usize = 2;

/// A cell's six edge planes: unit normals pointing inwards.
#[derive(Debug)]
struct Hexagon {
    cell: h3o::CellIndex,
    /// The centre's latitude and longitude in degrees, copied into the
    /// squares that name the hexagon ([`Square::centres`]).
    centre_degrees: [f32; 2],
    normals: [[f64; 3]; 6],
    margin: f64,
    /// The cell's value in each set's cell table, as the caller last set it
    /// ([`CellMemo::set_value`]; [`crate::cell_table::RESERVED`]: not learned),
    /// so that placing a point the hexagon holds needs no second lookup
    /// (in the same cache lines as the normals just read). A cell table
    /// never changes a value it holds, so a copy can only lag (`RESERVED`),
    /// and a lagging copy sends the point to the exact test: the same answer.
    values: [u32; VALUED_SETS],
}

impl Hexagon {
    /// The hexagon of a cell the memo may answer for, if it is one.
    fn of(cell: h3o::CellIndex) -> Option<Self> {
        if cell.is_pentagon() || cell.icosahedron_faces().len() != 1 {
            return None;
        }
        let boundary = cell.boundary();
        let vertices: Vec<[f64; 3]> = boundary
            .iter()
            .map(|ll| unit_vector(ll.lat_radians(), ll.lng_radians()))
            .collect();
        if vertices.len() != 6 {
            return None;
        }
        let centre_ll = h3o::LatLng::from(cell);
        let centre = unit_vector(centre_ll.lat_radians(), centre_ll.lng_radians());
        let radius = vertices
            .iter()
            .map(|&v| dot(v, centre).clamp(-1.0, 1.0).acos())
            .fold(0.0, f64::max);
        let near_face_centre = FACE_CENTRES
            .iter()
            .any(|&f| dot(f, centre).clamp(-1.0, 1.0).acos() < radius + FACE_CENTRE_CLEARANCE);
        if near_face_centre {
            return None;
        }
        let mut normals = [[0.0; 3]; 6];
        let mut shortest = f64::INFINITY;
        for k in 0..6 {
            let (a, b) = (vertices[k], vertices[(k + 1) % 6]);
            let n = cross(a, b);
            let len = dot(n, n).sqrt();
            if len.is_nan() || len <= 0.0 {
                return None;
            }
            shortest = shortest.min(len); // sin of the edge's angle
            normals[k] = n.map(|x| x / len);
        }
        // Inwards: the centre on the positive side of every plane.
        let side = dot(normals[0], centre);
        if side < 0.0 {
            for n in &mut normals {
                *n = n.map(|x| -x);
            }
        }
        if normals.iter().any(|&n| dot(n, centre) <= 0.0) {
            return None; // not convex as expected: leave it to h3o
        }
        #[allow(
            clippy::cast_possible_truncation,
            reason = "a centre to pick the nearest by, not to answer with"
        )]
        let centre_degrees = [centre_ll.lat() as f32, centre_ll.lng() as f32];
        Some(Self {
            cell,
            centre_degrees,
            normals,
            margin: 1e-3 * shortest,
            values: [crate::cell_table::RESERVED; VALUED_SETS],
        })
    }

    /// Whether a point (unit vector) is inside by the margin.
    fn holds(&self, p: [f64; 3]) -> bool {
        self.normals.iter().all(|&n| dot(n, p) > self.margin)
    }
}

/// A square's candidate hexagons, with their centres at hand: the nearest
/// is picked from this entry alone, and only its hexagon is read (at
/// national scale, rows of a chunk seldom share a square, and each
/// hexagon read is a cache miss).
#[derive(Debug, Clone, Copy)]
struct Square {
    /// Indices into [`CellMemo::hexagons`], the used ones first (`NONE`: free).
    slots: [u32; CANDIDATES],
    /// Each candidate's [`Hexagon::centre_degrees`].
    centres: [[f32; 2]; CANDIDATES],
}

impl Square {
    const EMPTY: Self = Self {
        slots: [NONE; CANDIDATES],
        centres: [[0.0; 2]; CANDIDATES],
    };
}

/// Hexagons built by [`CellMemo::build_new`], to be remembered by
/// [`CellMemo::insert_built`].
#[derive(Debug)]
pub struct BuiltHexagons(Vec<(h3o::CellIndex, Option<Hexagon>)>);

impl BuiltHexagons {
    /// The cells whose hexagons were built.
    #[must_use]
    pub fn cells(&self) -> Vec<h3o::CellIndex> {
        self.0
            .iter()
            .filter(|c| c.1.is_some())
            .map(|c| c.0)
            .collect()
    }
}

/// H3 cells of points inside hexagons met before in their square.
#[derive(Debug)]
pub struct CellMemo {
    resolution: h3o::Resolution,
    /// Squares per degree (a power of two: a square about two cell edges
    /// wide; at resolution 8 on the 10 M national samples, 3.6 % of the
    /// rows then take h3o, against 5.2 % with squares half as wide and four
    /// candidates each).
    scale: f64,
    /// Square (Morton code) → its candidate hexagons.
    squares: Map<u64, Square>,
    hexagons: Vec<Hexagon>,
    /// Cell → index into `hexagons` (`NONE`: not one the memo answers for).
    slots: Map<u64, u32>,
}

/// Spreads the low 32 bits of `v` to the even bits.
const fn spread(v: u64) -> u64 {
    let mut x = v & 0xffff_ffff;
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

impl CellMemo {
    /// An empty memo for cells at `resolution`.
    #[must_use]
    pub fn new(resolution: h3o::Resolution) -> Self {
        let edge_degrees = resolution.edge_length_rads().to_degrees();
        #[allow(
            clippy::cast_possible_truncation,
            reason = "a small exponent: edges are 1e-7..1.2 rad"
        )]
        let exponent = (0.5 / edge_degrees).log2().floor() as i32;
        Self {
            resolution,
            scale: 2f64.powi(exponent.clamp(0, 30)),
            squares: Map::default(),
            hexagons: Vec::new(),
            slots: Map::default(),
        }
    }

    /// The square of a position: a Morton code, so that sorting by it keeps
    /// neighbouring squares near each other.
    #[must_use]
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "both offsets are non-negative and below 2^32 squares"
    )]
    pub fn square(&self, lat: f64, lon: f64) -> u64 {
        let x = ((lon + 180.0) * self.scale) as u64;
        let y = ((lat + 90.0) * self.scale) as u64;
        spread(x) | (spread(y) << 1)
    }

    /// The cell of a point in `square` when a candidate hexagon holds it
    /// well inside; `None` sends it to h3o.
    #[must_use]
    #[inline]
    pub fn cell(&self, square: u64, lat: f64, lon: f64) -> Option<h3o::CellIndex> {
        self.cell_valued(square, lat, lon).map(|(c, _)| c)
    }

    /// As [`CellMemo::cell`], with the values the caller set for the cell
    /// ([`CellMemo::set_value`]).
    #[must_use]
    #[inline]
    pub fn cell_valued(
        &self,
        square: u64,
        lat: f64,
        lon: f64,
    ) -> Option<(h3o::CellIndex, &[u32; VALUED_SETS])> {
        let sq = self.squares.get(&square)?;
        let used = sq.slots.iter().take_while(|&&i| i != NONE).count();
        // The hexagon of the nearest centre holds the point nearly always:
        // it is tried first, then the others (the answer does not depend
        // on the order: at most one hexagon holds a point by the margin).
        // Nearness on the local plane, from the entry's centres.
        let (lat_r, lon_r) = (lat.to_radians(), lon.to_radians());
        let (sin_lat, cos_lat) = lat_r.sin_cos();
        // Squared, each candidate's once (no `mul_add`: without FMA in the
        // target it is a library call).
        let mut nearest = None;
        let mut best = f64::INFINITY;
        for (k, &[c_lat, c_lon]) in sq.centres[..used].iter().enumerate() {
            let dy = lat - f64::from(c_lat);
            let dx = (lon - f64::from(c_lon)) * cos_lat;
            let d = dx * dx + dy * dy;
            if nearest.is_none() || d < best {
                (nearest, best) = (Some(k), d);
            }
        }
        let nearest = nearest?;
        // `unit_vector`'s, reusing the latitude's sine and cosine.
        let (sin_lng, cos_lng) = lon_r.sin_cos();
        let p = [cos_lat * cos_lng, cos_lat * sin_lng, sin_lat];
        std::iter::once(nearest)
            .chain((0..used).filter(|&k| k != nearest))
            .map(|k| &self.hexagons[sq.slots[k] as usize])
            .find(|h| h.holds(p))
            .map(|h| (h.cell, &h.values))
    }

    /// Keeps `value` as the cell's value in boundary set `set`, when the
    /// memo has the cell's hexagon and the set is one of the first
    /// [`VALUED_SETS`] (the others are not kept).
    pub fn set_value(&mut self, cell: h3o::CellIndex, set: usize, value: u32) {
        if let Some(&slot) = self.slots.get(&u64::from(cell))
            && slot != NONE
            && let Some(kept) = self.hexagons[slot as usize].values.get_mut(set)
        {
            *kept = value;
        }
    }

    /// Remembers the cells h3o gave points of these squares.
    pub fn learn(&mut self, met: &[(u64, h3o::CellIndex)]) {
        let built = self.build_new(met);
        self.insert_built(built, met);
    }

    /// The first half of [`CellMemo::learn`], which only reads the memo:
    /// the hexagons of the cells met that it does not know (in parallel).
    #[must_use]
    pub fn build_new(&self, met: &[(u64, h3o::CellIndex)]) -> BuiltHexagons {
        use rayon::prelude::*;
        if self.resolution > MAX_RESOLUTION {
            return BuiltHexagons(Vec::new()); // nothing learned: every cell from h3o
        }
        let mut new_cells: Vec<h3o::CellIndex> = met
            .iter()
            .map(|&(_, c)| c)
            .filter(|c| {
                c.resolution() == self.resolution && !self.slots.contains_key(&u64::from(*c))
            })
            .collect();
        new_cells.sort_unstable();
        new_cells.dedup();
        BuiltHexagons(
            new_cells
                .into_par_iter()
                .map(|c| (c, Hexagon::of(c)))
                .collect(),
        )
    }

    /// The second half of [`CellMemo::learn`]: remembers the hexagons built
    /// from `met` and makes them candidates of the squares they were met in.
    pub fn insert_built(&mut self, built: BuiltHexagons, met: &[(u64, h3o::CellIndex)]) {
        if self.resolution > MAX_RESOLUTION {
            return;
        }
        for (c, hex) in built.0 {
            if self.slots.contains_key(&u64::from(c)) {
                continue;
            }
            let slot = match hex {
                Some(h) if self.hexagons.len() < NONE as usize => {
                    self.hexagons.push(h);
                    #[allow(clippy::cast_possible_truncation, reason = "checked above")]
                    let s = (self.hexagons.len() - 1) as u32;
                    s
                }
                _ => NONE,
            };
            self.slots.insert(u64::from(c), slot);
        }
        for &(square, c) in met {
            let Some(&slot) = self.slots.get(&u64::from(c)) else {
                continue;
            };
            if slot == NONE {
                continue;
            }
            let centre = self.hexagons[slot as usize].centre_degrees;
            let sq = self.squares.entry(square).or_insert(Square::EMPTY);
            if let Some(free) = sq.slots.iter().position(|&i| i == NONE || i == slot)
                && sq.slots[free] == NONE
            {
                sq.slots[free] = slot;
                sq.centres[free] = centre;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// Points on and next to a cell's edges and vertices (moved towards and
    /// away from the centre by 1e-15 to 1e-1 of the way), and inside it.
    fn hard_points(cell: h3o::CellIndex, rng: &mut impl rand::Rng) -> Vec<(f64, f64)> {
        let ring: Vec<(f64, f64)> = cell
            .boundary()
            .iter()
            .map(|ll| (ll.lat(), ll.lng()))
            .collect();
        let centre = h3o::LatLng::from(cell);
        let mut out = Vec::new();
        for k in 0..ring.len() {
            let (a, b) = (ring[k], ring[(k + 1) % ring.len()]);
            for _ in 0..6 {
                let t: f64 = rng.random_range(0.0..=1.0);
                let on = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
                let exp: i32 = rng.random_range(-15..=-1);
                let d = 10f64.powi(exp);
                // Towards the centre and away from it.
                for s in [-1.0, 1.0] {
                    out.push((
                        on.0 + s * d * (centre.lat() - on.0),
                        on.1 + s * d * (centre.lng() - on.1),
                    ));
                }
                out.push(on);
            }
            out.push(a);
        }
        for _ in 0..20 {
            let t: f64 = rng.random_range(0.0..1.0);
            let k = rng.random_range(0..ring.len());
            out.push((
                centre.lat() + t * (ring[k].0 - centre.lat()),
                centre.lng() + t * (ring[k].1 - centre.lng()),
            ));
        }
        out
    }

    #[test]
    fn the_memo_answers_as_h3o_does_next_to_edges_and_vertices() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut answered = 0_usize;
        let mut asked = 0_usize;
        // Vietnam and the whole globe (face edges, polar cells), at the
        // analysis resolution and others of both classes.
        for res in [5_u8, 7, 8, 9, 10, 11] {
            let resolution = h3o::Resolution::try_from(res).expect("valid");
            let mut memo = CellMemo::new(resolution);
            let cells: Vec<h3o::CellIndex> = (0..400)
                .map(|i| {
                    let (lat, lon) = if i % 2 == 0 {
                        (rng.random_range(8.0..23.5), rng.random_range(102.0..110.0))
                    } else {
                        (
                            rng.random_range(-89.9..89.9),
                            rng.random_range(-180.0..180.0),
                        )
                    };
                    h3o::LatLng::new(lat, lon)
                        .expect("valid")
                        .to_cell(resolution)
                })
                .collect();
            // The same cells twice, new points each time.
            for round in 0..2 {
                let mut points = Vec::new();
                for &cell in &cells {
                    points.extend(hard_points(cell, &mut rng));
                    // Neighbours' edges too: the memo's candidates are per square.
                    for n in cell.grid_disk::<Vec<_>>(1).into_iter().take(3) {
                        points.extend(hard_points(n, &mut rng).into_iter().take(12));
                    }
                }
                let mut met = Vec::new();
                for &(lat, lon) in &points {
                    let Ok(ll) = h3o::LatLng::new(lat, lon) else {
                        continue;
                    };
                    let want = ll.to_cell(resolution);
                    let square = memo.square(lat, lon);
                    asked += 1;
                    match memo.cell(square, lat, lon) {
                        Some(got) => {
                            answered += 1;
                            assert_eq!(
                                got, want,
                                "({lat}, {lon}) at resolution {res}, round {round}"
                            );
                        }
                        None => met.push((square, want)),
                    }
                }
                memo.learn(&met);
            }
        }
        // Most points are within the margin of an edge by design; the
        // memo must still answer the others once their squares are learned.
        assert!(answered * 20 > asked, "memo answered {answered} of {asked}");
    }

    #[test]
    fn pentagons_face_edges_and_face_centres_are_left_to_h3o() {
        for res in [0_u8, 3, 8] {
            let resolution = h3o::Resolution::try_from(res).expect("valid");
            for p in resolution.pentagons() {
                assert!(Hexagon::of(p).is_none(), "pentagon {p}");
            }
        }
        for (i, f) in FACE_CENTRES.iter().enumerate() {
            let ll = h3o::LatLng::new(f[2].asin().to_degrees(), f[1].atan2(f[0]).to_degrees())
                .expect("valid");
            let cell = ll.to_cell(h3o::Resolution::Eight);
            assert!(Hexagon::of(cell).is_none(), "the cell of face centre {i}");
        }
    }

    /// Points next to a cell's edges on the inner side, each with how far
    /// inside its hexagon's planes it is, where h3o gives another cell.
    fn worst_disagreement(
        resolution: h3o::Resolution,
        cells: usize,
        rng: &mut impl rand::Rng,
    ) -> (f64, f64) {
        let mut worst: f64 = 0.0;
        let mut margin = f64::INFINITY;
        for _ in 0..cells {
            let (lat, lon) = (rng.random_range(8.0..23.5), rng.random_range(102.0..110.0));
            let cell = h3o::LatLng::new(lat, lon)
                .expect("valid")
                .to_cell(resolution);
            let Some(hex) = Hexagon::of(cell) else {
                continue;
            };
            margin = margin.min(hex.margin);
            let ring: Vec<(f64, f64)> = cell
                .boundary()
                .iter()
                .map(|ll| (ll.lat(), ll.lng()))
                .collect();
            let c = h3o::LatLng::from(cell);
            for k in 0..6 {
                let (a, b) = (ring[k], ring[(k + 1) % 6]);
                for _ in 0..20 {
                    let t: f64 = rng.random_range(0.05..0.95);
                    let d = 10f64.powi(rng.random_range(-9..=-2));
                    let on = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
                    let p = (on.0 + d * (c.lat() - on.0), on.1 + d * (c.lng() - on.1));
                    let v = unit_vector(p.0.to_radians(), p.1.to_radians());
                    let inside = hex
                        .normals
                        .iter()
                        .map(|&n| dot(n, v))
                        .fold(f64::INFINITY, f64::min);
                    if inside > 0.0
                        && h3o::LatLng::new(p.0, p.1)
                            .expect("valid")
                            .to_cell(resolution)
                            != cell
                    {
                        worst = worst.max(inside);
                    }
                }
            }
        }
        (worst, margin)
    }

    #[test]
    fn the_margin_is_far_above_where_h3o_and_its_boundaries_disagree() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for res in 5..=u8::from(MAX_RESOLUTION) {
            let resolution = h3o::Resolution::try_from(res).expect("valid");
            let (worst, margin) = worst_disagreement(resolution, 1500, &mut rng);
            assert!(
                worst * 100.0 < margin,
                "resolution {res}: h3o disagrees {worst:e} rad inside its boundary, margin {margin:e}"
            );
        }
        // Beyond the memo's resolutions the disagreement would eat the margin.
        let (worst, margin) = worst_disagreement(h3o::Resolution::Fifteen, 1500, &mut rng);
        assert!(
            worst * 100.0 > margin,
            "resolution 15: {worst:e} against {margin:e}"
        );
    }

    #[test]
    fn finer_resolutions_take_every_cell_from_h3o() {
        let resolution = h3o::Resolution::Twelve;
        let mut memo = CellMemo::new(resolution);
        let ll = h3o::LatLng::new(21.0, 105.8).expect("valid");
        let cell = ll.to_cell(resolution);
        let square = memo.square(21.0, 105.8);
        memo.learn(&[(square, cell)]);
        assert_eq!(memo.cell(square, 21.0, 105.8), None);
    }

    #[test]
    fn a_cell_keeps_the_values_of_the_first_sets_only() {
        use crate::cell_table::RESERVED;
        let resolution = h3o::Resolution::Eight;
        let mut memo = CellMemo::new(resolution);
        let cell = h3o::LatLng::new(21.0, 105.8)
            .expect("valid")
            .to_cell(resolution);
        let centre = h3o::LatLng::from(cell);
        let (lat, lon) = (centre.lat(), centre.lng());
        let square = memo.square(lat, lon);
        memo.learn(&[(square, cell)]);
        let values = |memo: &CellMemo| memo.cell_valued(square, lat, lon).map(|(c, v)| (c, *v));
        assert_eq!(values(&memo), Some((cell, [RESERVED; VALUED_SETS])));
        memo.set_value(cell, 0, 5);
        // A set past the kept ones is not kept (its caller looks it up).
        memo.set_value(cell, VALUED_SETS, 7);
        let mut want = [RESERVED; VALUED_SETS];
        want[0] = 5;
        assert_eq!(values(&memo), Some((cell, want)));
    }
}
