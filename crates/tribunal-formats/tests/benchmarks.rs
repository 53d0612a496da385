//! Benchmark trajectories as traces: τ-bench results arrays (element by element, as the
//! streaming reader hands them over, and whole) and τ²-bench results and simulations. The
//! fixtures in `tests/data/benchmarks/` were written for these tests.

use serde_json::{json, Value};
use std::path::PathBuf;
use tribunal_core::{Provenance, Role, Trace};
use tribunal_formats::{detect, import_value, read_paths, InputFormat};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/benchmarks")
        .join(name)
}

fn load(name: &str) -> Value {
    let p = path(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn import(v: &Value) -> Vec<Trace> {
    import_value(v, InputFormat::Auto, "f:1").unwrap_or_else(|e| panic!("{e}"))
}

fn tool(name: &str) -> Provenance {
    Provenance::Tool { name: name.into() }
}

#[test]
fn benchmark_files_are_detected() {
    let tau = load("tau_results.json");
    assert_eq!(detect(&tau), Some(InputFormat::Tau));
    assert_eq!(
        detect(&tau[0]),
        Some(InputFormat::Tau),
        "one run on its own"
    );
    assert_eq!(detect(&load("tau2_results.json")), Some(InputFormat::Tau2));
    assert_eq!(
        detect(&load("tau2_simulation.json")),
        Some(InputFormat::Tau2)
    );
    assert_eq!(
        detect(&load("tau2_dir_results.json")),
        Some(InputFormat::Tau2)
    );
    for name in ["tau", "tau2"] {
        assert!(InputFormat::NAMES.contains(&name));
        assert!(InputFormat::parse(name).is_some());
    }
}

#[test]
fn tau_run_becomes_a_trace_with_task_metadata() {
    let doc = load("tau_results.json");
    let t = import(&doc[0]).remove(0);
    assert_eq!(t.id, "task-7-trial-0");
    assert_eq!(t.messages.len(), 8);
    let roles: Vec<Role> = t.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles[..4],
        [Role::System, Role::User, Role::Assistant, Role::Tool]
    );
    let calls: Vec<_> = t
        .tool_calls()
        .map(|(m, c)| (m.id.as_str(), c.name.as_str()))
        .collect();
    assert_eq!(
        calls,
        [("m2", "get_order_details"), ("m4", "cancel_pending_order")]
    );
    assert_eq!(
        t.messages[4].tool_calls[0].arguments,
        json!({"order_id": "#W100", "reason": "ordered by mistake"})
    );
    assert_eq!(t.messages[3].provenance, tool("get_order_details"));
    assert_eq!(t.messages[3].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(t.final_response(), Some("Order #W100 is cancelled."));

    assert_eq!(t.metadata["task_id"], json!(7));
    assert_eq!(t.metadata["trial"], json!(0));
    assert_eq!(t.metadata["reward"], json!(1.0));
    assert_eq!(t.metadata["success"], json!(true));
    assert_eq!(
        t.metadata["instruction"],
        json!("You are Mia Lane. Cancel your pending order #W100.")
    );
    assert_eq!(t.metadata["user_id"], json!("mia_lane_101"));
    assert_eq!(
        t.metadata["expected_actions"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(t.metadata["user_cost"], json!(0.012));
    assert_eq!(t.metadata["reward_info"]["info"]["r_outputs"], json!(1.0));
    // Expected actions become expected tool calls (the respond action is not a tool call).
    assert_eq!(
        t.expectations,
        Some(json!({
            "expected_tool_calls": [
                {"name": "get_order_details", "arguments": {"order_id": "#W100"}},
                {"name": "cancel_pending_order", "arguments": {"order_id": "#W100", "reason": "ordered by mistake"}}
            ],
            "expected_facts": ["#W100"]
        }))
    );
    assert_eq!(
        t.inputs,
        Some(json!({"instruction": "You are Mia Lane. Cancel your pending order #W100."}))
    );
    assert_eq!(t.tags["benchmark"], "tau-bench");
    assert_eq!(t.tags["trial"], "0");
    let reward = &t.assessments[0];
    assert_eq!(
        (
            reward.name.as_str(),
            reward.source_type.as_str(),
            &reward.value
        ),
        ("reward", "CODE", &json!(1.0))
    );
}

#[test]
fn tau_error_run_keeps_the_error() {
    let doc = load("tau_results.json");
    let t = import(&doc[1]).remove(0);
    assert_eq!(t.id, "task-7-trial-1");
    assert!(t.messages.is_empty());
    assert_eq!(
        t.metadata["error"],
        json!("RateLimitError: too many requests")
    );
    assert_eq!(t.metadata["success"], json!(false));
    assert_eq!(
        t.assessments[0].rationale.as_deref(),
        Some("RateLimitError: too many requests")
    );
}

#[test]
fn tau_results_file_through_the_reader_gives_one_trace_per_run() {
    let mut items = Vec::new();
    read_paths(&[path("tau_results.json")], |r| {
        items.push(r.expect("readable"));
        true
    })
    .expect("reads");
    assert_eq!(items.len(), 2, "the array is split into its runs");
    let ids: Vec<String> = items
        .iter()
        .flat_map(|i| i.import(InputFormat::Auto).expect("imports"))
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["task-7-trial-0", "task-7-trial-1"]);
    // The whole array at once gives the same traces.
    let whole: Vec<String> = import(&load("tau_results.json"))
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(whole, ids);
}

#[test]
fn tau2_simulations_keep_user_side_tool_calls() {
    let traces = import(&load("tau2_results.json"));
    assert_eq!(traces.len(), 2);
    let t = &traces[0];
    assert_eq!(t.id, "task-no_signal_1-trial-0");
    let m = &t.messages;
    assert_eq!(m.len(), 8);
    // The agent's call: dict arguments kept as they are.
    assert_eq!(m[2].role, Role::Assistant);
    assert_eq!(m[2].tool_calls[0].id, "a1");
    assert_eq!(
        m[2].tool_calls[0].arguments,
        json!({"phone_number": "555-0100"})
    );
    assert_eq!(m[3].tool_call_id.as_deref(), Some("a1"));
    assert_eq!(m[3].provenance, tool("get_customer_by_phone"));
    // The user's own call stays on the user's message.
    assert_eq!(m[5].role, Role::User);
    assert_eq!(m[5].provenance, Provenance::User);
    assert_eq!(m[5].tool_calls[0].name, "toggle_airplane_mode");
    assert_eq!(m[6].provenance, tool("toggle_airplane_mode"));
    assert_eq!(t.metadata["user_tool_calls"], json!(["u1"]));

    assert_eq!(t.metadata["simulation_id"], json!("sim-a"));
    assert_eq!(t.metadata["termination_reason"], json!("user_stop"));
    assert_eq!(t.metadata["reward"], json!(1.0));
    assert_eq!(t.metadata["agent_cost"], json!(0.02));
    assert_eq!(
        t.metadata["task_description"],
        json!({"purpose": "Synthetic task."})
    );
    assert_eq!(
        t.expectations,
        Some(json!({
            "expected_tool_calls": [
                {"name": "get_customer_by_phone", "arguments": {"phone_number": "555-0100"}},
                {"name": "toggle_airplane_mode", "arguments": {}}
            ],
            "expected_facts": ["airplane mode"]
        }))
    );
    assert_eq!(t.tags["termination_reason"], "user_stop");

    let stopped = &traces[1];
    assert_eq!(stopped.tags["termination_reason"], "max_steps");
    assert_eq!(
        stopped.assessments[0].rationale.as_deref(),
        Some("terminated with max_steps")
    );
}

#[test]
fn tau2_directory_layout() {
    // results.json of the directory layout has no simulations: nothing to evaluate there.
    assert!(import(&load("tau2_dir_results.json")).is_empty());
    // Each simulations/<id>.json is one trace, without its task's definition.
    let t = import(&load("tau2_simulation.json")).remove(0);
    assert_eq!(t.id, "task-no_signal_1-trial-0");
    assert_eq!(t.messages.len(), 8);
    assert_eq!(t.expectations, None);
}

#[test]
fn bad_benchmark_items_name_the_field() {
    let e = import_value(
        &json!({"task_id": 1, "reward": "high", "traj": []}),
        InputFormat::Auto,
        "f:1",
    )
    .unwrap_err();
    assert_eq!(e.field, "reward");
    let arr = json!([
        {"task_id": 1, "reward": 1.0, "traj": [], "trial": 0},
        {"task_id": 2, "reward": 1.0, "traj": [{"role": "robot", "content": "x"}], "trial": 0}
    ]);
    let e = import_value(&arr, InputFormat::Auto, "f:1").unwrap_err();
    assert_eq!(e.field, "[1].traj[0].role");
    let e = import_value(&json!({"tasks": [], "simulations": [{"task_id": "1", "termination_reason": "user_stop", "messages": 5}]}), InputFormat::Auto, "f:1").unwrap_err();
    assert_eq!(e.field, "simulations[0].messages");
    let e = import_value(
        &json!({"task_id": [1], "reward": 1, "traj": []}),
        InputFormat::Tau,
        "f:1",
    )
    .unwrap_err();
    assert_eq!(e.field, "task_id");
}

#[test]
fn tau2_retried_runs_get_distinct_ids() {
    let sim = |id: &str, term: &str| json!({"id": id, "task_id": "t", "trial": 1, "termination_reason": term, "messages": []});
    let doc = json!({"tasks": [], "simulations": [sim("s1", "infrastructure_error"), sim("s2", "user_stop"), {"id": "s3", "task_id": "t", "trial": 2, "termination_reason": "user_stop", "messages": []}]});
    let ids: Vec<String> = import(&doc).into_iter().map(|t| t.id).collect();
    assert_eq!(
        ids,
        ["task-t-trial-1-s1", "task-t-trial-1-s2", "task-t-trial-2"]
    );
}
