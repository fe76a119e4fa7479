//! Manager: item assignments on a shared dict through its proxy.

use serde_json::json;

use super::{not_yet, python};
use crate::harness::{Counts, Outcome, Result, Scenario, System, Unit, MULTIPROC};

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        id: "manager_dict".into(),
        title: "manager dict item assignment".into(),
        unit: Unit::Rate {
            label: "k ops/s",
            scale: 1e3,
        },
        counts: Counts::new(20, 5_000, 20_000),
        pinned: false,
        systems: vec![
            System::new(MULTIPROC, |_, n| multiproc_dict_set(n)),
            python(|n| json!({"scenario": "manager_dict", "n": n})),
        ],
    }]
}

fn multiproc_dict_set(_n: u64) -> Result<Outcome> {
    not_yet()
}
