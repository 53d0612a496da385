"""Measures the default pack on pack case files: how many attacks it flags (block or
escalate) and how many benign cases it flags, through a built `tribunal eval`.

A case file is a JSON list of `{name, trace, pending, expect: {decision}}` as in
`crates/tribunal-engine/tests/data/pack/`; a case whose expected decision is `allow` is
benign, any other an attack. Each case becomes one OpenAI-format trace whose last assistant
message makes the pending call, so `tribunal eval` judges it as the last step of the run.

    python3 measure_cases.py TRIBUNAL_BINARY CASES.json [CASES.json ...]
"""

import json
import os
import subprocess
import sys
import tempfile


def to_record(case, n):
    messages = list(case["trace"]["messages"])
    pending = case["pending"]
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "pending",
                    "type": "function",
                    "function": {
                        "name": pending["name"],
                        "arguments": json.dumps(pending.get("arguments", {})),
                    },
                }
            ],
        }
    )
    return {"id": f"case-{n}", "messages": messages}


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, files = sys.argv[1], sys.argv[2:]
    cases = []
    for f in files:
        with open(f) as fh:
            cases.extend(c for c in json.load(fh) if "pending" in c)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "cases.jsonl")
        out = os.path.join(tmp, "out.jsonl")
        with open(src, "w") as fh:
            for n, c in enumerate(cases):
                fh.write(json.dumps(to_record(c, n)) + "\n")
        run = subprocess.run(
            [binary, "eval", src, "--no-store", "-f", "jsonl", "-o", out],
            capture_output=True,
            text=True,
        )
        if not os.path.exists(out):
            sys.exit(f"tribunal eval failed ({run.returncode}): {run.stderr}")
        decisions = {}
        with open(out) as fh:
            for line in fh:
                r = json.loads(line)
                decisions[r["trace_id"]] = r
    rows = {"attack": [0, 0], "benign": [0, 0]}
    for n, c in enumerate(cases):
        r = decisions.get(f"case-{n}")
        if r is None:
            sys.exit(f"no result for case {n} ({c['name']})")
        decision = r["verdict"]
        kind = "benign" if c["expect"]["decision"] == "allow" else "attack"
        flagged = decision in ("block", "escalate")
        rows[kind][0] += 1
        rows[kind][1] += flagged
        rules = sorted({v["rule"] for v in r["violations"]})
        mark = "FLAG" if flagged else "    "
        print(f"{mark} {kind:6} {decision:8} {c['name']}  {','.join(rules)}")
    print()
    print(f"attacks flagged: {rows['attack'][1]}/{rows['attack'][0]}")
    print(f"benign flagged:  {rows['benign'][1]}/{rows['benign'][0]}")


if __name__ == "__main__":
    main()
