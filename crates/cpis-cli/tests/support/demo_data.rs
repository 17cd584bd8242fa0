//! The bundled demo data (`demo/`) as the tests that drive a real `cpis serve --demo` read it:
//! which children the demo uploads hold, children new to every LA, the emergency clinicians'
//! tokens, and a config that keeps the anomaly throttle out of the way of fast test traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A file under `demo/`.
pub fn demo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../demo")
        .join(name)
}

/// CSV rows of a demo file (header skipped), split on commas (the demo files quote nothing).
pub fn csv_rows(name: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(demo(name))
        .expect("a demo file")
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

/// An NHS number as the API writes it (the demo files space some as `999 123 4567`).
pub fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The NHS numbers in the bundled demo uploads, with the LAs whose file names them. The
/// `errors-…` file (rows meant to be rejected) counts only `with_errors`.
pub fn uploaded_children(with_errors: bool) -> BTreeMap<String, BTreeSet<String>> {
    let mut held: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(demo("uploads")).expect("demo/uploads") {
        let name = entry
            .expect("a demo upload")
            .file_name()
            .into_string()
            .expect("a UTF-8 name");
        if name.starts_with("errors-") && !with_errors {
            continue;
        }
        let la = name
            .trim_end_matches(".csv")
            .trim_start_matches("errors-")
            .to_owned();
        for row in csv_rows(&format!("uploads/{name}")) {
            held.entry(digits(&row[1])).or_default().insert(la.clone());
        }
    }
    held
}

/// Children in the demographics index (active, not sensitive) that no demo upload mentions,
/// with their dates of birth: new to every LA.
pub fn new_children(n: usize) -> Vec<(String, String)> {
    let taken = uploaded_children(true);
    let picked: Vec<(String, String)> = csv_rows("demographics.csv")
        .into_iter()
        .filter(|r| r[1] == "active" && r[4] == "false" && !taken.contains_key(&digits(&r[0])))
        .map(|r| (digits(&r[0]), r[3].clone()))
        .take(n)
        .collect();
    assert_eq!(picked.len(), n, "enough unused children in the demo index");
    picked
}

/// Tokens of the emergency-care clinicians (their lookups notify), one per setting.
pub fn emergency_tokens() -> Vec<String> {
    csv_rows("care_settings.csv")
        .into_iter()
        .filter(|r| {
            matches!(
                r[2].as_str(),
                "emergency-department" | "urgent-treatment-centre" | "ambulance"
            )
        })
        .map(|r| format!("demo-{}", r[0]))
        .collect()
}

/// A config file's `[anomaly]` section for tests whose lookups are many and fast, from few
/// identities: the throttle never fires.
pub const HIGH_ANOMALY_LIMITS: &str = "\
[anomaly]
max_per_minute = 1000000000
max_distinct_children = 1000000000
org_max_lookups = 1000000000
sequential_run = 1000000000
sequential_gap = 0
miss_window = 1000000000
max_miss_ratio = 1.0
throttle_minutes = 1
";
