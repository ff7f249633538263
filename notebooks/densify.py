"""Densifies boundary polygons to about N vertices per feature (default 500)
by adding points along every edge, for the detailed-boundary benchmark:
the shapes are unchanged (every new vertex lies on an old edge), only the
vertex count grows, as with official boundaries.

    python3 notebooks/densify.py IN.geojson OUT.geojson [500]
"""
import json
import math
import sys


def densify_ring(ring, factor):
    out = []
    for (x0, y0), (x1, y1) in zip(ring, ring[1:]):
        out.append([x0, y0])
        for k in range(1, factor):
            t = k / factor
            out.append([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t])
    out.append(ring[-1])
    return out


def polygons(geometry):
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    return geometry["coordinates"]


def main():
    src, dst = sys.argv[1], sys.argv[2]
    target = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    with open(src, encoding="utf-8") as f:
        fc = json.load(f)
    before = after = 0
    for feature in fc["features"]:
        geometry = feature["geometry"]
        vertices = sum(len(r) for p in polygons(geometry) for r in p)
        factor = max(1, math.ceil(target / max(vertices, 1)))
        dense = [[densify_ring(r, factor) for r in p] for p in polygons(geometry)]
        if geometry["type"] == "Polygon":
            geometry["coordinates"] = dense[0]
        else:
            geometry["coordinates"] = dense
        before += vertices
        after += sum(len(r) for p in dense for r in p)
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(fc, f, ensure_ascii=False)
    n = len(fc["features"])
    print(f"{n} features: {before / n:.1f} -> {after / n:.1f} vertices on average", file=sys.stderr)


if __name__ == "__main__":
    main()
