//! The notebooks in `notebooks/` run top to bottom on the demo's output
//! (each checks its figures against `summary.json` as it goes).

use std::process::Command;

use crate::util::{gapmap_ok, repo, s};

const RUNNER: &str = r#"
import sys, nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
print("ran", path)
"#;

#[test]
fn notebooks_run_on_the_demo_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    gapmap_ok(&["demo", "--out", s(&out), "--samples", "3000"]);
    let check = Command::new("python3")
        .args(["-c", "import polars, matplotlib, nbclient, ipykernel"])
        .output();
    match check {
        Ok(o) if o.status.success() => {}
        _ if std::env::var_os("GAPMAP_SKIP_NOTEBOOKS").is_some() => {
            eprintln!(
                "the notebooks' Python packages are missing; skipped because GAPMAP_SKIP_NOTEBOOKS is set"
            );
            return;
        }
        other => panic!(
            "python3 with the notebooks' packages is needed ({other:?}): \
             pip install -r notebooks/requirements.txt (.ci/run does), or set GAPMAP_SKIP_NOTEBOOKS=1"
        ),
    }
    let nb_dir = repo().join("notebooks");
    let mut ran = 0;
    let mut names: Vec<_> = std::fs::read_dir(&nb_dir)
        .expect("notebooks/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    names.sort();
    for nb in names {
        let o = Command::new("python3")
            .args(["-c", RUNNER, s(&nb), s(&nb_dir)])
            .env("GAPMAP_OUT", &out)
            .output()
            .expect("python3");
        assert!(
            o.status.success(),
            "{} failed:\n{}",
            nb.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        ran += 1;
    }
    assert_eq!(ran, 3, "three notebooks");
    for png in [
        "notebook_planner_deficits.png",
        "notebook_weak_villages.png",
        "notebook_trend.png",
    ] {
        assert!(
            std::fs::metadata(out.join(png)).expect(png).len() > 10_000,
            "{png}"
        );
    }
}
