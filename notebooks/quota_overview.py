"""Overview of a gapmap output folder: quota compliance, deficits, village statuses."""
import sys
from pathlib import Path

import pandas as pd

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
quota = pd.read_csv(out / "quota.csv", dtype={"code": str, "parent_code": str})
print("Share of units meeting the quota:")
print(quota.groupby(["month", "level"])["met"].mean().unstack().round(4))
last = quota["month"].max()
finest = quota["level"].iloc[-1]
worst = quota[(quota.month == last) & (quota.level == finest)].nlargest(20, "deficit")
print(f"\nLargest deficits, {finest}, {last}:")
print(worst[["code", "name", "samples", "devices", "deficit"]].to_string(index=False))
villages = out / "villages.csv"
if villages.exists():
    v = pd.read_csv(villages, dtype={"village_id": str, "unit_code": str})
    print("\nVillages per status and carrier:")
    print(v.pivot_table(index="carrier", columns="status", values="village_id", aggfunc="count", fill_value=0))
