//! Recall and precision of the weak rule on the simulator's ground truth, at
//! the simulator's default volume (30 000 tests in one month over the
//! embedded Bắc Kạn + Quảng Ninh data, seed 42, default rule). The figures
//! are printed (run with `--nocapture`) and quoted in the README.

use std::collections::HashMap;

use crate::util::{gapmap_ok, read_csv, s};

#[test]
fn weak_rule_against_ground_truth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    // One month (June 2025, on the 2009 communes), the volume the README quotes.
    gapmap_ok(&["demo", "--out", s(&out), "--from", "2025-06"]);
    let (th, truth) = read_csv(&out.join("truth.csv"));
    let (vh, villages) = read_csv(&out.join("villages.csv"));
    let tc = |n: &str| th.iter().position(|h| h == n).unwrap();
    let vc = |n: &str| vh.iter().position(|h| h == n).unwrap();
    let status: HashMap<(&str, &str), &str> = villages
        .iter()
        .map(|r| {
            (
                (r[vc("village_id")].as_str(), r[vc("carrier")].as_str()),
                r[vc("status")].as_str(),
            )
        })
        .collect();
    let mut n: HashMap<(bool, &str), u64> = HashMap::new();
    for r in &truth {
        let key = (r[tc("village_id")].as_str(), r[tc("carrier")].as_str());
        let Some(st) = status.get(&key) else { continue }; // Gmobile is not in the default --carriers
        *n.entry((r[tc("dead_zone")] == "true", st)).or_default() += 1;
    }
    let get = |dead: bool, st: &str| n.get(&(dead, st)).copied().unwrap_or(0);
    let dead_total: u64 = ["no_data", "insufficient", "weak", "ok"]
        .iter()
        .map(|s| get(true, s))
        .sum();
    let flagged = get(true, "weak") + get(false, "weak");
    let judged_dead = get(true, "weak") + get(true, "ok");
    let precision = get(true, "weak") as f64 / flagged.max(1) as f64;
    let recall_judged = get(true, "weak") as f64 / judged_dead.max(1) as f64;
    let recall_all = get(true, "weak") as f64 / dead_total.max(1) as f64;
    println!(
        "dead zones {dead_total}: weak {}, ok {}, insufficient {}, no_data {}; flagged weak {flagged}, \
         of which not dead {}; precision {precision:.3}, recall among judged {recall_judged:.3}, recall overall {recall_all:.3}",
        get(true, "weak"),
        get(true, "ok"),
        get(true, "insufficient"),
        get(true, "no_data"),
        get(false, "weak"),
    );
    assert!(
        dead_total > 100,
        "the default simulation has dead zones ({dead_total})"
    );
    assert!(precision >= 0.9, "precision {precision}");
    assert!(
        recall_judged >= 0.75,
        "recall among judged dead zones {recall_judged}"
    );
    // Unmeasured dead zones are not lost: each is in the plan with its carrier,
    // unless its commune already met the quota.
    let (ph, plan) = read_csv(&out.join("plan.csv"));
    let pc = |n: &str| ph.iter().position(|h| h == n).unwrap();
    let lacking: HashMap<&str, &str> = plan
        .iter()
        .map(|r| (r[pc("village_id")].as_str(), r[pc("lacking")].as_str()))
        .collect();
    let (_, quota) = read_csv(&out.join("quota.csv"));
    let met: HashMap<&str, bool> = quota
        .iter()
        .filter(|r| r[1] == "commune")
        .map(|r| (r[2].as_str(), r[8] == "true"))
        .collect();
    let mut checked = 0;
    for r in &truth {
        let key = (r[tc("village_id")].as_str(), r[tc("carrier")].as_str());
        let Some(st) = status.get(&key) else { continue };
        if r[tc("dead_zone")] != "true"
            || !matches!(*st, "no_data" | "insufficient")
            || met[r[tc("unit_code")].as_str()]
        {
            continue;
        }
        let listed = lacking
            .get(key.0)
            .is_some_and(|l| l.split(';').any(|x| x == format!("{}:{st}", key.1)));
        assert!(listed, "dead zone {key:?} ({st}) missing from plan.csv");
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
}
