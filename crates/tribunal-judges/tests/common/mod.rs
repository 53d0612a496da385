//! Checks shared by the judge tests.

use tribunal_core::{Feedback, Pending, Trace};
use tribunal_judges::{GrowState, Judge, JudgeInput};

/// Feeds `trace` to `judge.judge_grown` one message more at a time, keeping the state, with
/// `pending` at every prefix, and compares each answer with `judge.judge` of that prefix;
/// then gives the state left by the whole trace a shorter trace, which must be judged
/// afresh. The error names the prefix that differed.
pub fn check_grown(
    judge: &dyn Judge,
    trace: &Trace,
    pending: Option<&Pending>,
) -> Result<(), String> {
    let mut state: GrowState = None;
    let other = Pending {
        kind: "reply".into(),
        tool_calls: Vec::new(),
        content: "Done: nothing else to do here.".into(),
    };
    let mut prefix = trace.clone();
    let judged_with = |t: &Trace,
                       pending: Option<&Pending>,
                       state: &mut GrowState|
     -> (Vec<Feedback>, Vec<Feedback>) {
        let input = JudgeInput { trace: t, pending };
        (judge.judge(&input), judge.judge_grown(&input, state))
    };
    let judged = |t: &Trace, state: &mut GrowState| judged_with(t, pending, state);
    for n in 0..=trace.messages.len() {
        prefix.messages = trace.messages[..n].to_vec();
        // The pending step as given, another, none, and given again, on the same messages.
        for (i, p) in [pending, Some(&other), pending, None, pending]
            .into_iter()
            .enumerate()
        {
            let (whole, grown) = judged_with(&prefix, p, &mut state);
            if whole != grown {
                return Err(format!(
                    "judge_grown after {n} messages (call {i}) differs from judge:\n  judge: {whole:?}\n  grown: {grown:?}"
                ));
            }
        }
    }
    if !trace.messages.is_empty() {
        prefix.messages = trace.messages[..1].to_vec();
        let (whole, grown) = judged(&prefix, &mut state);
        if whole != grown {
            return Err(format!(
                "judge_grown with the state of a longer trace differs from judge:\n  judge: {whole:?}\n  grown: {grown:?}"
            ));
        }
    }
    Ok(())
}
