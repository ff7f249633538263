"""Cut the embedded default data from ../shared/data/vn (run from the repo root's data/ folder).

Communes of Bắc Kạn (207) and Quảng Ninh (225) from boundaries_2009/communes.geojson,
and the villages of villages_wof.geojson that fall inside one of them (ray casting,
the same rule gapmap uses: no snapping for villages). Output is RFC 7946, 6 decimals.
"""
import json, sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "../../shared/data/vn"
PROVINCES = {207, 225}

def inside_ring(x, y, ring):
    c = False
    n = len(ring)
    for i in range(n - 1):
        (x1, y1), (x2, y2) = ring[i][:2], ring[i + 1][:2]
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            c = not c
    return c

def inside(x, y, mp):
    for poly in mp:
        if inside_ring(x, y, poly[0]) and not any(inside_ring(x, y, h) for h in poly[1:]):
            return True
    return False

communes = json.load(open(f"{SRC}/boundaries_2009/communes.geojson", encoding="utf-8"))
keep = [f for f in communes["features"] if f["properties"]["province_id"] in PROVINCES]
boxes = []
for f in keep:
    pts = [p for poly in f["geometry"]["coordinates"] for ring in poly for p in ring]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    boxes.append((min(xs), min(ys), max(xs), max(ys), f["geometry"]["coordinates"]))

villages = json.load(open(f"{SRC}/villages_wof.geojson", encoding="utf-8"))
vkeep = []
for v in villages["features"]:
    x, y = v["geometry"]["coordinates"][:2]
    if any(a <= x <= c and b <= y <= d and inside(x, y, mp) for a, b, c, d, mp in boxes):
        vkeep.append(v)

def dump(name, feats, path):
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"type":"FeatureCollection","name":"%s","features":[\n' % name)
        out.write(",\n".join(json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in feats))
        out.write("\n]}\n")

dump("communes_bac_kan_quang_ninh", keep, "vn_default/communes.geojson")
dump("villages_bac_kan_quang_ninh", vkeep, "vn_default/villages.geojson")
print(len(keep), "communes,", len(vkeep), "villages")
