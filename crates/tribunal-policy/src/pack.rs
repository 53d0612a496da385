//! The default policy pack, compiled into the binary: one `.rego` file per threat of the
//! agent checklist, plus its default data (thresholds and lists users override in config).
//! Adding a built-in policy means one file in `pack/` and one line in [`PACK`].

use crate::PolicySource;
use serde_json::Value;

/// (file name, text) of every built-in policy module.
pub const PACK: &[(&str, &str)] = &[
    ("lib.rego", include_str!("../pack/lib.rego")),
    (
        "c1_direct_injection.rego",
        include_str!("../pack/c1_direct_injection.rego"),
    ),
    (
        "c2_indirect_injection.rego",
        include_str!("../pack/c2_indirect_injection.rego"),
    ),
    (
        "c3_goal_hijack.rego",
        include_str!("../pack/c3_goal_hijack.rego"),
    ),
    (
        "c4_exfiltration.rego",
        include_str!("../pack/c4_exfiltration.rego"),
    ),
    ("c5_tool_use.rego", include_str!("../pack/c5_tool_use.rego")),
    (
        "c6_dangerous_commands.rego",
        include_str!("../pack/c6_dangerous_commands.rego"),
    ),
    ("c8_budget.rego", include_str!("../pack/c8_budget.rego")),
    (
        "c9_model_judges.rego",
        include_str!("../pack/c9_model_judges.rego"),
    ),
    (
        "c12_tool_definitions.rego",
        include_str!("../pack/c12_tool_definitions.rego"),
    ),
];

/// Rego unit tests of the pack (`test_` rules), run by `tribunal policy test --builtin`.
pub const PACK_TESTS: &[(&str, &str)] = &[(
    "pack_test.rego",
    include_str!("../pack/tests/pack_test.rego"),
)];

/// The pack's default `data.tribunal.config`.
pub const DEFAULT_DATA: &str = include_str!("../pack/data.json");

pub fn sources() -> Vec<PolicySource> {
    to_sources(PACK)
}

pub fn test_sources() -> Vec<PolicySource> {
    to_sources(PACK_TESTS)
}

/// How the paths of built-in modules start.
pub const PREFIX: &str = "builtin:";

fn to_sources(list: &[(&str, &str)]) -> Vec<PolicySource> {
    list.iter()
        .map(|(name, text)| PolicySource {
            path: format!("{PREFIX}{name}"),
            text: (*text).to_owned(),
        })
        .collect()
}

pub fn default_data() -> Value {
    serde_json::from_str(DEFAULT_DATA).expect("the pack's data.json is valid JSON")
}
