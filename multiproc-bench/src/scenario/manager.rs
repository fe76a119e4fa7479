//! Manager: item assignments on a shared dict through its proxy.

use serde_json::json;

use super::{not_yet, python};
use crate::harness::{Counts, Outcome, Result, Scenario, System, Unit, MULTIPROC};

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![Scenario::new(
        "manager_dict",
        "manager dict item assignment",
        Unit::rate("k ops/s", 1e3),
        Counts::new(20, 5_000, 20_000),
        vec![
            System::new(MULTIPROC, |_, n| multiproc_dict_set(n)),
            python(|n| json!({"scenario": "manager_dict", "n": n})),
        ],
    )]
}

fn multiproc_dict_set(_n: u64) -> Result<Outcome> {
    not_yet()
}
