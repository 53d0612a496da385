// Tribunal's UI: a client of the REST API. Everything that comes from a trace is put in the
// page as text (textContent), never parsed as HTML.
"use strict";

const state = { role: null, project: null, csrf: null, token_id: null };

// ---------------------------------------------------------------------------------------
// DOM helpers

/** An element with attributes and children; strings become text nodes. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
  main.focus();
}

function text(v) {
  if (v === null || v === undefined) return "";
  return typeof v === "string" ? v : JSON.stringify(v);
}

function badge(decision) {
  return el("span", { class: "badge " + decision }, decision || "—");
}

// ---------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, code, message, data) {
    super(message);
    this.status = status;
    this.code = code;
    this.data = data;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const r = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await r.json();
  } catch (_) {
    data = null;
  }
  if (!r.ok) {
    const err = (data && data.error) || {};
    // A session that ended while in use: back to signing in (the first probe of a page
    // that is not signed in renders the form itself).
    if (r.status === 401 && state.role) {
      state.role = null;
      location.hash = "#/signin";
    }
    throw new ApiError(r.status, err.code || "error", err.message || r.statusText, data);
  }
  return data;
}

function can(permission) {
  const grants = {
    admin: ["read", "annotate", "review", "admin"],
    reviewer: ["read", "annotate", "review"],
    annotator: ["read", "annotate"],
    viewer: ["read"],
  };
  return (grants[state.role] || []).includes(permission);
}

function failure(e) {
  return el("p", { class: "error", role: "alert" }, e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
}

// ---------------------------------------------------------------------------------------
// Pages

function signInPage(message) {
  const input = el("input", { id: "token", type: "password", autocomplete: "off", required: true, "aria-label": "API token" });
  const status = el("p", { id: "signin-status", role: "status" }, message || "");
  const form = el(
    "form",
    {
      id: "signin",
      class: "card narrow",
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          const s = await api("POST", "/api/v1/sessions", { token: input.value });
          Object.assign(state, { role: s.role, project: s.project, csrf: s.csrf, token_id: s.token_id });
          input.value = "";
          chrome();
          location.hash = "#/traces";
          route();
        } catch (e) {
          status.replaceChildren(failure(e));
        }
      },
    },
    el("h1", {}, "Sign in"),
    el("label", { for: "token" }, "Token"),
    input,
    el("button", { type: "submit" }, "Sign in"),
    status,
  );
  show(form);
  input.focus();
}

const FILTERS = ["source", "decision", "rule", "q", "since", "judge", "value"];

async function tracesPage(params) {
  const form = el("form", { id: "filters", class: "filters", role: "search" });
  const field = (name, label, control) =>
    el("label", {}, label, control);
  const select = (name, options) =>
    el("select", { name }, options.map((o) => el("option", { value: o, selected: params.get(name) === o }, o || "any")));
  const input = (name, placeholder) => el("input", { name, value: params.get(name) || "", placeholder });
  form.append(
    field("source", "Source", select("source", ["", "gate", "otlp"])),
    field("decision", "Decision", select("decision", ["", "allow", "escalate", "block"])),
    field("rule", "Rule", input("rule", "c2.indirect_injection")),
    field("q", "Text", input("q", "words in the trace")),
    field("since", "Since", input("since", "2026-01-01T00:00:00Z")),
    field("judge", "Judge", input("judge", "refund_policy")),
    field("value", "Judge's value", input("value", "false")),
    el("button", { type: "submit" }, "Filter"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const name of FILTERS) {
      const v = form.elements[name].value.trim();
      if (v) next.set(name, v);
    }
    location.hash = "#/traces?" + next.toString();
  });
  const limit = 50;
  const offset = Number(params.get("offset") || 0);
  const query = new URLSearchParams();
  for (const name of FILTERS) if (params.get(name)) query.set(name, params.get(name));
  query.set("limit", String(limit));
  query.set("offset", String(offset));
  show(el("h1", {}, "Traces"), form, el("p", {}, "Loading…"));
  let rows;
  try {
    rows = await api("GET", "/api/v1/traces?" + query.toString());
  } catch (e) {
    show(el("h1", {}, "Traces"), form, failure(e));
    return;
  }
  const list = rows.traces || rows;
  const table = el(
    "table",
    { id: "traces", class: "grid" },
    el("thead", {}, el("tr", {}, ["Trace", "Source", "Decision", "Spans", "Last seen"].map((h) => el("th", { scope: "col" }, h)))),
    el(
      "tbody",
      {},
      list.map((t) =>
        el(
          "tr",
          { "data-trace": t.trace_id },
          el("td", {}, el("a", { href: "#/traces/" + encodeURIComponent(t.trace_id) }, t.trace_id)),
          el("td", {}, t.source),
          el("td", {}, badge(t.decision)),
          el("td", { class: "num" }, t.span_count),
          el("td", {}, t.last_seen),
        ),
      ),
    ),
  );
  const page = (delta) => {
    const next = new URLSearchParams(params);
    next.set("offset", String(Math.max(0, offset + delta)));
    return "#/traces?" + next.toString();
  };
  const pager = el(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    offset > 0 ? el("a", { href: page(-limit) }, "← Newer") : null,
    el("span", {}, `${offset + 1}–${offset + list.length}`),
    list.length === limit ? el("a", { href: page(limit) }, "Older →") : null,
  );
  show(el("h1", {}, "Traces"), form, list.length ? table : el("p", { id: "no-traces" }, "No trace matches."), pager);
}

function evidenceOf(result) {
  const ids = new Set();
  for (const v of (result && result.violations) || []) for (const id of v.evidence || []) ids.add(id);
  return ids;
}

const UNTRUSTED = new Set(["tool", "retrieval", "agent"]);

function messageView(m, evidence) {
  const source = (m.provenance && m.provenance.source) || m.role;
  const untrusted = UNTRUSTED.has(source);
  const cited = evidence.has(m.id) || (m.tool_calls || []).some((c) => evidence.has(c.id));
  return el(
    "li",
    { id: "msg-" + m.id, class: "message" + (cited ? " evidence" : "") + (untrusted ? " untrusted" : ""), "data-id": m.id },
    el(
      "div",
      { class: "meta" },
      el("span", { class: "role" }, m.role),
      el("span", { class: "source" }, source + (m.name ? ` (${m.name})` : "")),
      untrusted ? el("span", { class: "tag untrusted-tag", title: "content from a tool, a document or another agent" }, "untrusted") : null,
      cited ? el("span", { class: "tag evidence-tag" }, "evidence") : null,
      el("code", { class: "id" }, m.id),
    ),
    m.content ? el("pre", { class: "content" }, text(m.content)) : null,
    (m.tool_calls || []).map((c) =>
      el(
        "div",
        { class: "call" + (evidence.has(c.id) ? " evidence" : ""), id: "call-" + c.id },
        el("span", { class: "tag" }, "tool call"),
        " ",
        el("strong", {}, c.name),
        el("pre", { class: "args" }, text(c.arguments)),
      ),
    ),
  );
}

async function tracePage(id) {
  show(el("p", {}, "Loading…"));
  let t;
  try {
    t = await api("GET", "/api/v1/traces/" + encodeURIComponent(id));
  } catch (e) {
    show(el("h1", {}, "Trace"), failure(e));
    return;
  }
  const result = t.result || {};
  const evidence = evidenceOf(result);
  const trace = t.trace || {};
  const messages = trace.messages || [];
  const violations = result.violations || [];
  const verdict = el(
    "section",
    { class: "card", id: "verdict" },
    el("h2", {}, "Verdict ", badge(result.decision || t.summary.decision)),
    violations.length
      ? el(
          "ul",
          { class: "violations" },
          violations.map((v) =>
            el(
              "li",
              { class: "violation " + v.severity },
              el("code", { class: "rule" }, v.rule),
              " ",
              el("span", { class: "severity" }, v.severity),
              " ",
              el("span", {}, v.message),
              " ",
              (v.evidence || []).map((e) => el("a", { class: "cite", href: "#/traces/" + encodeURIComponent(id) + "?at=" + encodeURIComponent(e) }, e)),
            ),
          ),
        )
      : el("p", {}, "No rule fired."),
  );
  const feedback = result.feedback || [];
  const judges = el(
    "section",
    { class: "card", id: "judges" },
    el("h2", {}, "Judges"),
    el(
      "table",
      { class: "grid" },
      el("thead", {}, el("tr", {}, ["Judge", "Value", "Rationale", "Version"].map((h) => el("th", { scope: "col" }, h)))),
      el(
        "tbody",
        {},
        feedback.map((f) =>
          el(
            "tr",
            { class: f.error ? "judge-error" : "" },
            el("td", {}, f.name),
            el("td", {}, f.error ? el("span", { class: "error" }, "error: " + f.error) : text(f.value)),
            el("td", {}, f.rationale || ""),
            el("td", {}, el("code", {}, (f.source && f.source.version) || "")),
          ),
        ),
      ),
    ),
  );
  const conversation = el(
    "section",
    { class: "card", id: "conversation" },
    el("h2", {}, `Conversation (${messages.length} messages)`),
    el("ol", { class: "messages" }, messages.map((m) => messageView(m, evidence))),
    t.pending
      ? el(
          "div",
          { class: "pending" + ([...evidence].some((e) => e === "pending" || e.startsWith("pending.")) ? " evidence" : ""), id: "msg-pending" },
          el("h3", {}, "Pending step"),
          el("pre", { class: "content" }, text(t.pending)),
        )
      : null,
  );
  // The tools the trace offers: their definitions are untrusted text the agent reads.
  const offered = trace.tools || [];
  const tools = offered.length
    ? el(
        "section",
        { class: "card", id: "tools" },
        el("h2", {}, `Tools offered (${offered.length})`),
        el(
          "ul",
          { class: "tools" },
          offered.map((d) => {
            const cited = evidence.has("tools." + d.name);
            return el(
              "li",
              { id: "tool-" + d.name, class: "tool untrusted" + (cited ? " evidence" : "") },
              el("strong", {}, d.name),
              " ",
              cited ? el("span", { class: "tag evidence-tag" }, "evidence") : null,
              d.description ? el("pre", { class: "content" }, text(d.description)) : null,
              d.parameters ? el("pre", { class: "args" }, text(d.parameters)) : null,
            );
          }),
        ),
      )
    : null;
  const spans = trace.spans || [];
  const tree = el(
    "section",
    { class: "card", id: "spans" },
    el("h2", {}, `Spans (${spans.length})`),
    spanTree(spans, evidence),
  );
  // The decision-log entry of the gate's decision, when there is one.
  let logEntry = null;
  if (typeof result.decision_id === "number") {
    try {
      const entry = await api("GET", "/api/v1/audit/entries/" + result.decision_id);
      logEntry = el(
        "section",
        { class: "card", id: "log-entry" },
        el("h2", {}, `Decision-log entry ${entry.seq}`),
        el("p", { class: "dim" }, `${entry.kind} at ${entry.at} · hash `, el("code", {}, entry.hash.slice(0, 16)), " · previous ", el("code", {}, (entry.prev_hash || "").slice(0, 16))),
        el("pre", { class: "content" }, JSON.stringify(entry.body, null, 2)),
      );
    } catch (e) {
      logEntry = el("section", { class: "card", id: "log-entry" }, failure(e));
    }
  }
  const monitored = (t.monitors || []).length
    ? el(
        "section",
        { class: "card", id: "monitored" },
        el("h2", {}, "Monitoring"),
        el("ul", {}, t.monitors.map((x) => el("li", {}, el("span", { class: "tag result " + x.status }, x.status), " ", text(x.value), " · judge version ", String(x.judge_version), " ", el("code", {}, (x.judge_hash || "").slice(0, 12)), x.rationale ? " · " + x.rationale : ""))),
      )
    : null;
  show(
    el("p", {}, el("a", { href: "#/traces" }, "← Traces")),
    el("h1", {}, "Trace ", el("code", {}, id)),
    el("p", { class: "summary" }, `${t.summary.source} · first seen ${t.summary.first_seen} · last seen ${t.summary.last_seen}`),
    verdict,
    conversation,
    tools,
    judges,
    monitored,
    spans.length ? tree : null,
    logEntry,
  );
  const at = new URLSearchParams(location.hash.split("?")[1] || "").get("at");
  const target =
    at &&
    (document.getElementById("msg-" + at) ||
      document.getElementById("call-" + at) ||
      (at.startsWith("tools.") && document.getElementById("tool-" + at.slice(6))));
  if (target) target.scrollIntoView();
}

// The span tree, built without recursion: each span is shown once, whatever its parent links
// say. Spans below the deepest level shown are listed at it with their depth; spans that no
// root reaches (a span that is its own parent, a loop of parents) are shown at the top,
// marked, with what hangs below them.
const SPAN_DEPTH = 40;

function spanTree(spans, evidence) {
  const children = new Map();
  const ids = new Set(spans.map((s) => s.id));
  for (const s of spans) {
    const parent = s.parent_id && ids.has(s.parent_id) && s.parent_id !== s.id ? s.parent_id : "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(s);
  }
  const item = (s, depth, note) =>
    el(
      "li",
      { class: evidence.has(s.id) ? "evidence" : "" },
      el("span", { class: "tag" }, s.kind),
      " ",
      s.name,
      s.start_ns && s.end_ns ? el("span", { class: "dim" }, ` ${((s.end_ns - s.start_ns) / 1e6).toFixed(1)} ms`) : null,
      depth > SPAN_DEPTH ? el("span", { class: "dim" }, ` depth ${depth}`) : null,
      note ? el("span", { class: "dim" }, ` ${note}`) : null,
    );
  const top = el("ul", { class: "tree" });
  const seen = new Set();
  const place = (root, note) => {
    const stack = [[root, top, 1]];
    while (stack.length) {
      const [s, list, depth] = stack.pop();
      if (seen.has(s)) continue;
      seen.add(s);
      const li = item(s, depth, depth === 1 ? note : "");
      list.appendChild(li);
      const kids = (children.get(s.id) || []).filter((c) => !seen.has(c));
      if (!kids.length) continue;
      let under = list;
      if (depth < SPAN_DEPTH) {
        under = el("ul", {});
        li.appendChild(under);
      }
      for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], under, depth + 1]);
    }
  };
  for (const s of children.get("") || []) place(s, "");
  for (const s of spans) if (!seen.has(s)) place(s, "(its parents loop)");
  return top;
}

async function reviewsPage() {
  show(el("h1", {}, "Reviews"), el("p", {}, "Loading…"));
  let data;
  try {
    data = await api("GET", "/api/v1/escalations?status=pending");
  } catch (e) {
    show(el("h1", {}, "Reviews"), failure(e));
    return;
  }
  const items = data.escalations || data;
  const list = el(
    "ul",
    { id: "reviews", class: "reviews" },
    items.map((item) => {
      const summary = item.summary || {};
      const rules = (summary.violations || []).map((v) => v.rule);
      const comment = el("input", { class: "comment", placeholder: "comment (optional)", "aria-label": "comment" });
      const status = el("span", { role: "status" });
      const decide = (decision) => async () => {
        try {
          const r = await api("POST", `/api/v1/escalations/${encodeURIComponent(item.id)}/decision`, { decision, note: comment.value || undefined });
          status.replaceChildren(`${r.status} (${r.decision})`);
        } catch (e) {
          status.replaceChildren(failure(e));
        }
      };
      return el(
        "li",
        { class: "card", "data-escalation": item.id },
        el("div", {}, el("a", { href: "#/traces/" + encodeURIComponent(summary.trace_id || "") }, summary.trace_id || "?"), " ", el("code", {}, rules.join(", "))),
        el("p", {}, (summary.reasons || []).map(text).join("; ")),
        summary.pending ? el("pre", { class: "content" }, text(summary.pending)) : null,
        el("p", { class: "dim" }, `decision ${item.decision_id} · expires ${new Date(item.deadline_ms).toISOString()}`),
        comment,
        can("review") ? el("button", { type: "button", class: "approve", onclick: decide("approve") }, "Approve") : null,
        can("review") ? el("button", { type: "button", class: "deny", onclick: decide("deny") }, "Deny") : null,
        status,
      );
    }),
  );
  show(
    el("h1", {}, "Reviews"),
    items.length ? list : el("p", {}, "Nothing is waiting for a decision."),
    await toolChangesSection(),
  );
}

// Tool definitions that changed since the gate pinned them: calls of such a tool are
// blocked until a reviewer approves the new definition (or an admin removes the pin).
async function toolChangesSection() {
  let data;
  try {
    data = await api("GET", "/api/v1/tools/pins?changed=true");
  } catch (e) {
    return el("section", { id: "tool-changes" }, el("h2", {}, "Changed tool definitions"), failure(e));
  }
  const pins = data.pins || [];
  const definition = (d) => el("pre", { class: "content untrusted" }, JSON.stringify(d, null, 2));
  const cards = pins.map((p) => {
    const status = el("span", { role: "status" });
    const act = (path, body, done) => async () => {
      try {
        await api("POST", path, body);
        status.replaceChildren(done);
      } catch (e) {
        status.replaceChildren(failure(e));
      }
    };
    return el(
      "li",
      { class: "card", "data-pin": `${p.agent}/${p.tool}` },
      el("div", {}, el("code", {}, p.tool), " offered to ", el("strong", {}, p.agent)),
      el("p", { class: "dim" }, `pinned ${p.pinned_at} (sha256 ${p.hash.slice(0, 12)}…) · changed ${p.changed.at} (sha256 ${p.changed.hash.slice(0, 12)}…)`),
      el("div", { class: "side-by-side" },
        el("div", { class: "pinned" }, el("h3", {}, "Pinned"), definition(p.definition)),
        el("div", { class: "changed" }, el("h3", {}, "Now offered (untrusted)"), definition(p.changed.definition)),
      ),
      can("review") ? el("button", { type: "button", class: "approve", onclick: act("/api/v1/tools/pins/approve", { tool: p.tool, agent: p.agent, hash: p.changed.hash }, "approved: the new definition is pinned") }, "Approve the new definition") : null,
      can("admin") ? el("button", { type: "button", class: "deny", onclick: act("/api/v1/tools/pins/remove", { tool: p.tool, agent: p.agent }, "pin removed") }, "Remove the pin") : null,
      status,
    );
  });
  return el(
    "section",
    { id: "tool-changes" },
    el("h2", {}, "Changed tool definitions"),
    pins.length ? el("ul", { class: "reviews" }, cards) : el("p", {}, "No tool definition changed since it was pinned."),
  );
}

// ---------------------------------------------------------------------------------------
// Judges

const VARIABLES = ["inputs", "outputs", "expectations", "conversation", "trace"];
const OUTPUTS = ["yes_no", "bool", "int 1..5", "float 0..1", "one of [safe, unsafe]", "text"];

function usageText(u) {
  if (!u) return "";
  const cost = typeof u.cost_usd === "number" ? ` · $${u.cost_usd.toFixed(6)}` : "";
  return `${u.input_tokens || 0} in + ${u.output_tokens || 0} out tokens${cost}`;
}

async function judgesPage() {
  show(el("h1", {}, "Judges"), el("p", {}, "Loading…"));
  let data;
  try {
    data = await api("GET", "/api/v1/judges");
  } catch (e) {
    show(el("h1", {}, "Judges"), failure(e));
    return;
  }
  const stored = data.stored || [];
  const configured = data.judges || [];
  show(
    el("h1", {}, "Judges"),
    can("admin") ? el("p", {}, el("a", { href: "#/judges/new", id: "new-judge", class: "button" }, "New judge")) : null,
    el("h2", {}, "Made here"),
    stored.length
      ? el(
          "table",
          { class: "grid", id: "stored-judges" },
          el("thead", {}, el("tr", {}, ["Judge", "Kind", "Version", "Updated"].map((h) => el("th", { scope: "col" }, h)))),
          el(
            "tbody",
            {},
            stored.map((j) =>
              el(
                "tr",
                { "data-judge": j.name },
                el("td", {}, el("a", { href: "#/judges/" + encodeURIComponent(j.name) + "/versions" }, j.name)),
                el("td", {}, j.kind),
                el("td", { class: "num" }, "v" + j.latest_version),
                el("td", {}, j.updated_at || ""),
              ),
            ),
          ),
        )
      : el("p", {}, "None yet."),
    el("h2", {}, "From the configuration"),
    el(
      "ul",
      { id: "configured-judges" },
      configured.map((j) => el("li", {}, el("code", {}, typeof j === "string" ? j : j.name || text(j)), j.kind ? ` (${j.kind})` : "")),
    ),
  );
}

/** The editor: a new judge (optionally from a built-in) or a new version of one. */
async function judgeEditor(name, params) {
  if (!can("admin")) return forbiddenPage("the judge editor");
  show(el("h1", {}, name ? `Judge ${name}` : "New judge"), el("p", {}, "Loading…"));
  let builtins = [];
  let versions = [];
  try {
    builtins = (await api("GET", "/api/v1/judges/builtins")).builtins || [];
    if (name) versions = (await api("GET", `/api/v1/judges/${encodeURIComponent(name)}/versions`)).versions || [];
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) {
      show(el("h1", {}, "Judge"), failure(e));
      return;
    }
  }
  const latest = versions[versions.length - 1];
  const settings = Object.assign({}, latest ? latest.settings : {});
  const nameInput = el("input", { id: "judge-name", value: name || "", required: true, readonly: !!name, pattern: "[A-Za-z0-9_-]+" });
  const from = el(
    "select",
    { id: "judge-from" },
    el("option", { value: "" }, "blank"),
    builtins.filter((b) => b.model_judge).map((b) => el("option", { value: b.kind }, `${b.kind} — ${b.description}`)),
  );
  const instructions = el("textarea", { id: "judge-instructions", rows: 10 }, settings.instructions || "");
  const output = el("input", { id: "judge-output", list: "outputs", value: settings.output || "yes_no" });
  const outputs = el("datalist", { id: "outputs" }, OUTPUTS.map((o) => el("option", { value: o })));
  const model = el("input", { id: "judge-model", value: settings.model || "", placeholder: "openai:/gpt-4o-mini" });
  const extraSettings = Object.assign({}, settings);
  delete extraSettings.instructions;
  delete extraSettings.output;
  delete extraSettings.model;
  const extra = el("textarea", { id: "judge-extra", rows: 3 }, Object.keys(extraSettings).length ? JSON.stringify(extraSettings) : "");
  const note = el("input", { id: "judge-note", placeholder: "what changed (optional)" });
  from.addEventListener("change", () => {
    const b = builtins.find((x) => x.kind === from.value);
    if (!b) return;
    instructions.value = b.instructions || "";
    output.value = b.output || "yes_no";
  });
  const insertButtons = VARIABLES.map((v) =>
    el(
      "button",
      {
        type: "button",
        class: "insert",
        "data-var": v,
        onclick: () => {
          const at = instructions.selectionStart ?? instructions.value.length;
          const token = `{{ ${v} }}`;
          instructions.value = instructions.value.slice(0, at) + token + instructions.value.slice(instructions.selectionEnd ?? at);
          instructions.focus();
          instructions.selectionStart = instructions.selectionEnd = at + token.length;
        },
      },
      `{{ ${v} }}`,
    ),
  );
  const status = el("div", { id: "judge-status", role: "status" });
  /** The definition as the API takes it, or an error naming the field. */
  const definition = () => {
    const s = { instructions: instructions.value, output: output.value.trim() };
    if (model.value.trim()) s.model = model.value.trim();
    if (extra.value.trim()) {
      let more;
      try {
        more = JSON.parse(extra.value);
      } catch (e) {
        throw new Error("other settings: not JSON: " + e.message);
      }
      if (typeof more !== "object" || Array.isArray(more) || more === null) throw new Error("other settings: expected a JSON object");
      Object.assign(s, more);
    }
    return { kind: (latest && latest.kind) || "llm", settings: s };
  };
  const traceIds = el("textarea", { id: "try-traces", rows: 3, placeholder: "trace ids, one per line" });
  const pickRule = el("input", { id: "try-rule", placeholder: "rule, e.g. c6.dangerous_command" });
  const pickDecision = el("select", { id: "try-decision" }, ["", "allow", "escalate", "block"].map((d) => el("option", { value: d }, d || "any")));
  const results = el("div", { id: "try-results" });
  const pick = async () => {
    const q = new URLSearchParams({ limit: "10" });
    if (pickRule.value.trim()) q.set("rule", pickRule.value.trim());
    if (pickDecision.value) q.set("decision", pickDecision.value);
    try {
      const r = await api("GET", "/api/v1/traces?" + q.toString());
      traceIds.value = (r.traces || []).map((t) => t.trace_id).join("\n");
    } catch (e) {
      results.replaceChildren(failure(e));
    }
  };
  const tryIt = async () => {
    const ids = traceIds.value.split(/\s+/).filter(Boolean);
    results.replaceChildren(el("p", {}, `Trying on ${ids.length} traces…`));
    try {
      const body = Object.assign(definition(), { trace_ids: ids });
      if (name && latest) body.compare = { name, version: latest.version };
      const r = await api("POST", "/api/v1/judges/try", body);
      const cell = (fb) => {
        const f = (fb || [])[0];
        if (!f) return el("td", {}, "—");
        return el("td", {}, f.error ? el("span", { class: "error" }, "error: " + f.error) : text(f.value));
      };
      results.replaceChildren(
        el(
          "table",
          { class: "grid", id: "try-table" },
          el("thead", {}, el("tr", {}, ["Trace", "Value", "Rationale", "Evidence", "Tokens and cost", latest ? `v${latest.version}` : null].filter(Boolean).map((h) => el("th", { scope: "col" }, h)))),
          el(
            "tbody",
            {},
            r.results.map((row) => {
              const f = (row.feedback || [])[0] || {};
              return el(
                "tr",
                { "data-trace": row.trace_id },
                el("td", {}, el("a", { href: "#/traces/" + encodeURIComponent(row.trace_id) }, row.trace_id)),
                cell(row.feedback),
                el("td", {}, f.rationale || ""),
                el("td", {}, (f.evidence || []).join(", ")),
                el("td", {}, usageText(row.usage)),
                latest ? cell(row.compare && row.compare.feedback) : null,
              );
            }),
          ),
        ),
        el(
          "p",
          { id: "try-totals" },
          "Total: " + usageText(r.totals) + (r.totals.errors ? ` · ${r.totals.errors} of ${r.totals.traces} traces got no answer (errors)` : ""),
        ),
        ...(r.compare_totals && latest
          ? [
              el(
                "p",
                { id: "try-compare-totals" },
                `v${latest.version}: ` + usageText(r.compare_totals) + (r.compare_totals.errors ? ` · ${r.compare_totals.errors} of ${r.compare_totals.traces} traces got no answer (errors)` : ""),
              ),
            ]
          : []),
      );
    } catch (e) {
      results.replaceChildren(failure(e));
    }
  };
  const save = async () => {
    const n = nameInput.value.trim();
    try {
      const body = Object.assign(definition(), note.value.trim() ? { note: note.value.trim() } : {});
      const r = await api("POST", `/api/v1/judges/${encodeURIComponent(n)}/versions`, body);
      status.replaceChildren(`Saved ${r.name} v${r.version}`);
      location.hash = "#/judges/" + encodeURIComponent(r.name) + "/versions";
    } catch (e) {
      status.replaceChildren(failure(e));
    }
  };
  show(
    el("p", {}, el("a", { href: "#/judges" }, "← Judges")),
    el("h1", {}, name ? `Judge ${name}` : "New judge", latest ? el("span", { class: "dim" }, ` (editing v${latest.version})`) : null),
    el(
      "form",
      { id: "judge-form", class: "card editor", onsubmit: (ev) => { ev.preventDefault(); save(); } },
      el("label", { for: "judge-name" }, "Name"),
      nameInput,
      name ? null : el("label", { for: "judge-from" }, "Start from"),
      name ? null : from,
      el("label", { for: "judge-instructions" }, "Instructions"),
      el("div", { class: "inserts", role: "group", "aria-label": "Insert a template variable" }, insertButtons),
      instructions,
      el("label", { for: "judge-output" }, "Output"),
      output,
      outputs,
      el("label", { for: "judge-model" }, "Model (provider:/model)"),
      model,
      el("label", { for: "judge-extra" }, "Other settings (JSON: base_url, temperature, max_tokens, timeout_ms, …)"),
      extra,
      el("label", { for: "judge-note" }, "Note"),
      note,
      el("button", { type: "submit", id: "judge-save" }, "Save as a new version"),
      status,
    ),
    el(
      "section",
      { class: "card", id: "try" },
      el("h2", {}, "Try it"),
      el("div", { class: "filters" }, el("label", {}, "Rule", pickRule), el("label", {}, "Decision", pickDecision), el("button", { type: "button", id: "try-pick", onclick: pick }, "Pick traces")),
      traceIds,
      el("button", { type: "button", id: "try-run", onclick: tryIt }, "Try"),
      results,
    ),
  );
  if (params.get("from")) {
    from.value = params.get("from");
    from.dispatchEvent(new Event("change"));
  }
}

async function judgeVersions(name, params) {
  show(el("h1", {}, `Judge ${name}`), el("p", {}, "Loading…"));
  let versions;
  try {
    versions = (await api("GET", `/api/v1/judges/${encodeURIComponent(name)}/versions`)).versions || [];
  } catch (e) {
    show(el("h1", {}, `Judge ${name}`), failure(e));
    return;
  }
  const last = versions.length ? versions[versions.length - 1].version : 0;
  const fromV = Number(params.get("from") || Math.max(1, last - 1));
  const toV = Number(params.get("to") || last);
  const diff = el("div", { id: "judge-diff" });
  if (versions.length > 1) {
    try {
      const d = await api("GET", `/api/v1/judges/${encodeURIComponent(name)}/diff?from=${fromV}&to=${toV}`);
      diff.replaceChildren(
        el("h2", {}, `Changes from v${d.from} to v${d.to}`),
        el("ul", {}, (d.changes || []).map((c) => el("li", {}, el("code", {}, c.path), ": ", el("del", {}, text(c.from)), " → ", el("ins", {}, text(c.to))))),
        el("pre", { class: "diff" }, d.text || ""),
      );
    } catch (e) {
      diff.replaceChildren(failure(e));
    }
  }
  const rollback = (v) => async () => {
    try {
      const r = await api("POST", `/api/v1/judges/${encodeURIComponent(name)}/rollback`, { version: v });
      location.hash = `#/judges/${encodeURIComponent(name)}/versions?from=${v}&to=${r.version}&r=${Date.now()}`;
    } catch (e) {
      diff.replaceChildren(failure(e));
    }
  };
  show(
    el("p", {}, el("a", { href: "#/judges" }, "← Judges")),
    el("h1", {}, `Judge ${name}`),
    can("admin") ? el("p", {}, el("a", { href: `#/judges/${encodeURIComponent(name)}`, id: "edit-judge" }, "Edit (new version)")) : null,
    el(
      "table",
      { class: "grid", id: "versions" },
      el("thead", {}, el("tr", {}, ["Version", "Hash", "Kind", "Note", "Saved", ""].map((h) => el("th", { scope: "col" }, h)))),
      el(
        "tbody",
        {},
        versions.map((v) =>
          el(
            "tr",
            { "data-version": v.version },
            el("td", {}, "v" + v.version),
            el("td", {}, el("code", {}, v.hash)),
            el("td", {}, v.kind),
            el("td", {}, v.note || ""),
            el("td", {}, `${v.created_at} by ${v.created_by || "?"}`),
            el(
              "td",
              {},
              el("a", { href: `#/judges/${encodeURIComponent(name)}/versions?from=${v.version}&to=${last}` }, "diff"),
              can("admin") && v.version !== last ? el("button", { type: "button", class: "rollback", onclick: rollback(v.version) }, "Roll back to this") : null,
            ),
          ),
        ),
      ),
    ),
    diff,
    can("admin") ? await alignSection(name) : null,
  );
}

/** A confusion matrix: rows are the experts' labels, columns the judge's answers. */
function confusionTable(c, id) {
  const cols = [...c.classes, "no answer"];
  return el(
    "table",
    { class: "grid confusion", id },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "experts \\ judge"), cols.map((k) => el("th", { scope: "col" }, k)))),
    el("tbody", {}, c.classes.map((k, i) => el("tr", {}, el("th", { scope: "row" }, k), (c.counts[i] || []).map((n) => el("td", {}, String(n)))))),
  );
}

function fixed(v, digits) {
  return typeof v === "number" ? v.toFixed(digits) : "—";
}

/** Aligning an llm judge with the people's labels from the queues tied to it. */
async function alignSection(name) {
  let status;
  try {
    status = await api("GET", `/api/v1/judges/${encodeURIComponent(name)}/align`);
  } catch (_) {
    return null; // not an llm judge, or one whose output cannot be compared with labels
  }
  const out = el("div", { id: "align-result", "aria-live": "polite" });
  const optimizer = el("select", { id: "align-optimizer" }, status.optimizers.map((o) => el("option", { value: o }, o)));
  const holdout = el("input", { id: "align-holdout", type: "number", min: "0.05", max: "0.95", step: "0.05", value: "0.3" });
  const seed = el("input", { id: "align-seed", type: "number", min: "0", step: "1", value: "0" });
  const button = el("button", { type: "button", id: "align-run", disabled: status.labels === 0 }, `Align with ${status.labels} labels`);
  button.addEventListener("click", async () => {
    button.disabled = true;
    out.replaceChildren(el("p", {}, "Aligning: the judge answers the train labels, then both versions answer the held-out labels…"));
    try {
      const r = await api("POST", `/api/v1/judges/${encodeURIComponent(name)}/align`, {
        optimizer: optimizer.value,
        holdout: Number(holdout.value),
        seed: Number(seed.value),
      });
      const a = r.aligned;
      const row = (what, f) => el("tr", {}, el("th", { scope: "row" }, what), el("td", {}, f(a.before)), el("td", {}, f(a.after)));
      const d = a.difference;
      const usage = (u) => `${u.calls} model calls, ${u.input_tokens} input and ${u.output_tokens} output tokens`;
      out.replaceChildren(
        el("h3", {}, r.unchanged ? `Unchanged: the aligned judge equals v${r.version}` : `Stored as v${r.version} (from v${r.from_version})`),
        el("p", {}, `${r.usable} usable labels of ${r.read}: ${a.train_ids.length} to align on, ${a.held_out_ids.length} held out (seed ${r.seed}).`),
        el(
          "table",
          { class: "grid", id: "align-table" },
          el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Held-out figure"), el("th", { scope: "col" }, `Before (v${r.from_version})`), el("th", { scope: "col" }, "After"))),
          el(
            "tbody",
            {},
            row("items", (s) => String(s.items)),
            row("agreement", (s) => fixed(s.agreement, 3)),
            row("Cohen's κ", (s) => (s.kappa === null || s.kappa === undefined ? `not computable (${s.kappa_note || "?"})` : s.kappa.toFixed(3))),
            row("no answer", (s) => String(s.no_answer)),
          ),
        ),
        el(
          "p",
          { id: "align-difference" },
          d ? `Agreement difference (after − before): ${d.value >= 0 ? "+" : ""}${d.value.toFixed(3)}, bootstrap 95% interval [${d.low.toFixed(3)}, ${d.high.toFixed(3)}]` : "Agreement difference: not computable",
        ),
        el("div", { class: "cols" }, el("div", {}, el("h4", {}, "Before"), confusionTable(a.before.confusion, "align-confusion-before")), el("div", {}, el("h4", {}, "After"), confusionTable(a.after.confusion, "align-confusion-after"))),
        el("ul", {}, a.notes.map((n) => el("li", {}, n))),
        el("p", {}, `Aligning: ${usage(a.usage_optimizing)}. Scoring: ${usage(a.usage_scoring)}.`),
        r.unchanged ? null : el("p", {}, el("a", { href: `#/judges/${encodeURIComponent(name)}/versions?from=${r.from_version}&to=${r.version}&r=${Date.now()}`, id: "align-see-version" }, `See v${r.version} and what changed`)),
      );
    } catch (e) {
      out.replaceChildren(failure(e));
    } finally {
      button.disabled = false;
    }
  });
  const where = status.labels
    ? `Settled labels from ${((status.found || {}).queues || []).join(", ")}; the held-out share is never shown to the judge while aligning.`
    : status.reason || "No settled labels yet.";
  return el(
    "section",
    { class: "card", id: "align" },
    el("h2", {}, "Align with expert labels"),
    el("p", {}, where),
    el("div", { class: "row" }, el("label", {}, "Optimizer ", optimizer), el("label", {}, "Held out ", holdout), el("label", {}, "Seed ", seed), button),
    out,
  );
}

// ---------------------------------------------------------------------------------------
// Dashboard

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

/** Horizontal bars, each labelled with its name and count (readable without colour). */
function barChart(title, rows) {
  const max = Math.max(1, ...rows.map((r) => r[1]));
  const h = 22 * Math.max(1, rows.length) + 8;
  const chart = svg("svg", { role: "img", "aria-label": title, width: 560, height: h, viewBox: `0 0 560 ${h}` });
  rows.forEach(([name, n], i) => {
    const y = 4 + 22 * i;
    const w = Math.round((n / max) * 300);
    chart.append(
      svg("text", { x: 0, y: y + 13 }, name),
      svg("rect", { x: 200, y, width: w, height: 16, fill: "#5b6472" }),
      svg("text", { x: 206 + w, y: y + 13 }, String(n)),
    );
  });
  return el("figure", { class: "card" }, el("figcaption", {}, title), chart);
}

async function dashboardPage(params) {
  const since = params.get("since") || "30d";
  show(el("h1", {}, "Dashboard"), el("p", {}, "Loading…"));
  let r;
  try {
    r = await api("GET", "/api/v1/report/value?since=" + encodeURIComponent(since));
  } catch (e) {
    show(el("h1", {}, "Dashboard"), failure(e));
    return;
  }
  const d = r.decisions;
  const a = r.adoption;
  const l = r.gate_latency;
  const e = r.escalations;
  const fig = (label, value) => el("div", { class: "figure" }, el("div", { class: "value" }, value === null || value === undefined ? "—" : String(value)), el("div", { class: "label" }, label));
  const windows = el("nav", { class: "pager", "aria-label": "Window" }, ["1d", "7d", "30d", "90d"].map((w) => el("a", { href: "#/dashboard?since=" + w, "aria-current": w === since ? "page" : null }, w)));
  const monitors = await monitorsOnDashboard(since);
  show(
    el("h1", {}, "Dashboard"),
    windows,
    el("p", { class: "dim" }, `since ${r.since}`),
    el(
      "section",
      { class: "figures", id: "figures" },
      fig("decisions", d.allow + d.escalate + d.block),
      fig("blocked", d.block),
      fig("escalated", d.escalate),
      fig("gate p99 (µs)", l.p99_us),
      fig("escalations decided in (p50 s)", e.decide_seconds_p50),
      fig("cost per 1,000 decisions ($)", a.cost_per_thousand_decisions_usd === null ? null : a.cost_per_thousand_decisions_usd.toFixed(4)),
      fig("first decision after start (s)", a.seconds_from_start_to_first_decision),
    ),
    barChart("Decisions", [["allow", d.allow], ["escalate", d.escalate], ["block", d.block]]),
    r.blocked_by_kind.length ? barChart("Blocked actions by kind", r.blocked_by_kind) : null,
    r.top_rules.length ? barChart("Top rules", r.top_rules.slice(0, 10)) : null,
    el(
      "section",
      { class: "card" },
      el("h2", {}, "Over time"),
      el(
        "table",
        { class: "grid", id: "over-time" },
        el("thead", {}, el("tr", {}, ["When", "allow", "escalate", "block"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, r.over_time.map((b) => el("tr", {}, el("td", {}, b.at), el("td", { class: "num" }, b.allow), el("td", { class: "num" }, b.escalate), el("td", { class: "num" }, b.block)))),
      ),
    ),
    r.judges.length
      ? el(
          "section",
          { class: "card" },
          el("h2", {}, "Model judges"),
          el(
            "table",
            { class: "grid" },
            el("thead", {}, el("tr", {}, ["Judge", "Model", "Calls", "Input tokens", "Output tokens", "Cost ($)"].map((h) => el("th", { scope: "col" }, h)))),
            el("tbody", {}, r.judges.map((j) => el("tr", {}, el("td", {}, j.judge), el("td", {}, j.model), el("td", { class: "num" }, j.calls), el("td", { class: "num" }, j.input_tokens), el("td", { class: "num" }, j.output_tokens), el("td", { class: "num" }, j.cost_usd.toFixed(6))))),
          ),
        )
      : null,
    monitors,
  );
}

const WINDOW_SECONDS = { "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400 };

/** Each monitor's results over the dashboard's window: judged, pass and error rates. */
async function monitorsOnDashboard(since) {
  let list;
  try {
    list = (await api("GET", "/api/v1/monitors")).monitors || [];
  } catch (_) {
    return null;
  }
  if (!list.length) return null;
  const window = WINDOW_SECONDS[since] || 30 * 86400;
  const rows = await Promise.all(
    list.map(async (m) => {
      try {
        const r = await api("GET", `/api/v1/monitors/${encodeURIComponent(m.id)}/results?window=${window}&bucket=${Math.ceil(window / 100)}&limit=1`);
        return [m, r.totals];
      } catch (e) {
        return [m, null];
      }
    }),
  );
  const pct = (v) => (typeof v === "number" ? (100 * v).toFixed(1) + " %" : "—");
  return el(
    "section",
    { class: "card", id: "dashboard-monitors" },
    el("h2", {}, "Live monitors"),
    el(
      "table",
      { class: "grid" },
      el("thead", {}, el("tr", {}, ["Judge", "State", "Judged", "Pass rate", "Error rate"].map((h) => el("th", { scope: "col" }, h)))),
      el(
        "tbody",
        {},
        rows.map(([m, t]) =>
          el(
            "tr",
            { "data-monitor": m.id },
            el("td", {}, el("a", { href: "#/monitors/" + encodeURIComponent(m.id) }, `${m.judge} v${m.version}`)),
            el("td", {}, m.enabled ? "on" : "off"),
            el("td", { class: "num" }, t ? t.judged : "—"),
            el("td", { class: "num" }, t ? pct(t.pass_rate) : "—"),
            el("td", { class: "num" }, t ? pct(t.error_rate) : "—"),
          ),
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------
// Labeling: the queues (annotators see theirs, reviewers and admins all), the annotator's
// page worked with the keyboard, the reviewer's page of disagreements, the admin's page that
// builds a queue, and a queue's figures with its labels out and in.

const q$ = (id) => `/api/v1/queues/${encodeURIComponent(id)}`;

/** A label as a person reads it: pass/fail for booleans, options joined, "—" for none. */
function valueText(schema, v) {
  if (v === null || v === undefined) return "—";
  if (schema && schema.type === "pass_fail" && typeof v === "boolean") return v ? "pass" : "fail";
  if (schema && schema.type === "pairwise") return { a: "A is better", b: "B is better", tie: "tie" }[v] || text(v);
  if (Array.isArray(v)) return v.map(text).join(", ");
  return text(v);
}

/** A figure from the agreement API: a number (three decimals, the exact value kept in
 * `data-value`), "not computable" with its reason, or "—" when absent. */
function figureText(v, digits) {
  if (typeof v === "number") return el("span", { class: "fig", "data-value": String(v) }, v.toFixed(digits === undefined ? 3 : digits));
  if (v && typeof v === "object" && v.not_computable) return el("span", { class: "not-computable", title: v.not_computable }, "not computable: ", el("span", { class: "reason" }, v.not_computable));
  return el("span", { class: "dim" }, "—");
}

/** A value with its bootstrap interval, or why it has none. */
function intervalText(v) {
  if (v && typeof v.value === "number") {
    return el("span", {}, figureText(v.value), el("span", { class: "dim interval" }, ` (95 % interval ${v.low.toFixed(3)} to ${v.high.toFixed(3)}, ${v.resamples} resamples)`));
  }
  return figureText(v);
}

/** The choices a schema offers as keys 1…n, or null for numbers and text. */
function choicesOf(schema) {
  switch (schema.type) {
    case "pass_fail":
      return [["pass", true], ["fail", false]];
    case "pairwise":
      return [["A is better", "a"], ["B is better", "b"], ["tie", "tie"]];
    case "categorical":
      return schema.multiple ? null : schema.options.map((o) => [o, o]);
    default:
      return null;
  }
}

/** A control for a value of `schema` (for a correction), and how to read it back. */
function valueControl(schema, idAttr) {
  const choices = choicesOf(schema);
  if (choices) {
    const s = el("select", { id: idAttr, "aria-label": "value" }, choices.map(([label], i) => el("option", { value: String(i) }, label)));
    return [s, () => choices[Number(s.value)][1]];
  }
  if (schema.type === "numeric") {
    const i = el("input", { id: idAttr, type: "number", step: "any", min: schema.min, max: schema.max, "aria-label": "value" });
    return [i, () => (i.value.trim() === "" ? null : Number(i.value))];
  }
  const placeholder = schema.type === "categorical" ? "options, separated by commas" : "value";
  const i = el("input", { id: idAttr, placeholder, "aria-label": "value" });
  if (schema.type === "categorical") return [i, () => i.value.split(",").map((x) => x.trim()).filter(Boolean)];
  return [i, () => i.value];
}

/** Flattens an OTLP attribute value to text. */
function anyValue(v) {
  if (!v || typeof v !== "object") return text(v);
  for (const k of ["stringValue", "intValue", "doubleValue", "boolValue"]) if (k in v) return text(v[k]);
  if (v.arrayValue) return (v.arrayValue.values || []).map(anyValue).join(", ");
  return text(v);
}

function conversationView(trace, idAttr) {
  const messages = (trace && trace.messages) || [];
  if (!trace) return el("p", { class: "dim" }, "This trace is not stored.");
  return messages.length ? el("ol", { class: "messages", id: idAttr }, messages.map((m) => messageView(m, new Set()))) : el("p", { class: "dim" }, "No messages.");
}

function spanView(span) {
  if (!span) return null;
  if (span.missing) return el("p", { class: "error" }, `Span ${span.span_id} is not stored.`);
  // A stored span is the OTLP span with its resource and scope around it.
  if (span.span && typeof span.span === "object") span = span.span;
  const start = Number(span.startTimeUnixNano || 0);
  const end = Number(span.endTimeUnixNano || 0);
  const attrs = span.attributes || [];
  return el(
    "section",
    { class: "card span-item", id: "item-span" },
    el("h3", {}, "Span ", el("strong", {}, span.name || span.spanId || "?"), " ", span.kind ? el("span", { class: "tag" }, text(span.kind)) : null, start && end ? el("span", { class: "dim" }, ` ${((end - start) / 1e6).toFixed(1)} ms`) : null),
    attrs.length
      ? el("table", { class: "grid attributes" }, el("tbody", {}, attrs.map((a) => el("tr", {}, el("th", { scope: "row" }, el("code", {}, a.key)), el("td", {}, el("pre", {}, anyValue(a.value)))))))
      : el("pre", {}, JSON.stringify(span, null, 2)),
  );
}

function runView(run) {
  if (!run) return null;
  if (run.missing) return el("p", { class: "error" }, `Eval run ${run.id} has no result for this trace.`);
  const result = run.result || {};
  const violations = result.violations || [];
  return el(
    "section",
    { class: "card run-item", id: "item-run" },
    el("h3", {}, "Eval run result ", badge(run.decision)),
    el("p", { class: "meta" }, "run ", el("code", {}, run.id), run.source && run.source.file ? ` · ${run.source.file}:${run.source.line}` : ""),
    violations.length
      ? el("ul", { class: "violations" }, violations.map((v) => el("li", { class: "violation " + v.severity }, el("code", {}, v.rule), " ", el("span", { class: "severity" }, v.severity), " ", v.message)))
      : el("p", {}, "No rule fired."),
  );
}

function sideView(name, side) {
  const title = name === "a" ? "A" : "B";
  let body;
  if (!side) body = el("p", { class: "error" }, "missing");
  else if (typeof side.text === "string") body = el("pre", { class: "content side-text" }, side.text);
  else body = el("div", {}, el("p", { class: "meta" }, "trace ", el("code", {}, side.trace_id)), conversationView(side.trace));
  return el("section", { class: "side card", id: "side-" + name, "aria-label": "Output " + title }, el("h3", {}, title), body);
}

/** What an item shows: a pair side by side, an eval run's result, a span, a trace. */
function itemContent(content) {
  if (!content) return el("p", { class: "dim" }, "Nothing to show.");
  if (content.pair) {
    const p = content.pair;
    return el(
      "div",
      { class: "item-content" },
      p.prompt ? el("section", { class: "card", id: "pair-prompt" }, el("h3", {}, "Prompt"), el("pre", { class: "content" }, p.prompt)) : null,
      el("div", { class: "pair" }, sideView("a", p.a), sideView("b", p.b)),
    );
  }
  return el(
    "div",
    { class: "item-content" },
    runView(content.run),
    spanView(content.span),
    content.span ? el("h3", {}, "The trace it belongs to") : null,
    content.trace_missing ? el("p", { class: "warning", id: "trace-missing" }, content.trace_missing) : conversationView(content.trace || null, "item-conversation"),
  );
}

async function queuesPage(params) {
  const reviewOnly = params && params.has("review");
  const title = reviewOnly ? "Label review" : can("review") ? "Labeling queues" : "My queues";
  show(el("h1", {}, title), el("p", {}, "Loading…"));
  let data;
  try {
    data = await api("GET", "/api/v1/queues");
  } catch (e) {
    show(el("h1", {}, title), failure(e));
    return;
  }
  const queues = data.queues || [];
  // Each queue's progress (the caller's own, and for reviewers everyone's).
  const details = await Promise.all(queues.map((q) => api("GET", q$(q.id)).catch(() => null)));
  const rows = queues
    .map((q, i) => [q, details[i]])
    .filter(([, d]) => !reviewOnly || (d && d.progress.in_review > 0));
  const table = el(
    "table",
    { class: "grid", id: "queues" },
    el(
      "thead",
      {},
      el("tr", {}, ["Queue", "Schema", "Items", "People per item", "Progress", can("review") ? "In review" : null, ""].filter((h) => h !== null).map((h) => el("th", { scope: "col" }, h))),
    ),
    el(
      "tbody",
      {},
      rows.map(([q, d]) => {
        const p = d ? d.progress : null;
        const actions = [
          el("a", { href: `#/queues/${encodeURIComponent(q.id)}/label`, class: "button" }, "Label"),
          can("review") ? el("a", { href: `#/queues/${encodeURIComponent(q.id)}/review`, class: "button" }, "Review") : null,
          can("review") ? el("a", { href: `#/queues/${encodeURIComponent(q.id)}/figures`, class: "button" }, "Figures") : null,
        ];
        return el(
          "tr",
          { "data-queue": q.id },
          el("td", {}, el("strong", {}, q.id), q.blind ? el("span", { class: "tag" }, " blind") : null),
          el("td", {}, el("code", {}, q.schema)),
          el("td", { class: "num" }, q.items),
          el("td", { class: "num" }, q.overlap),
          el(
            "td",
            { class: "progress" },
            p ? el("progress", { max: p.labels_needed, value: p.labels, "aria-label": "labels given" }) : null,
            p ? ` ${p.labels} of ${p.labels_needed} labels · ${p.mine} yours${can("review") ? ` · ${p.final} final` : ""}` : "—",
          ),
          can("review") ? el("td", { class: "num in-review" }, p ? p.in_review : "—") : null,
          el("td", { class: "actions" }, actions),
        );
      }),
    ),
  );
  show(
    el("h1", {}, title),
    can("admin") && !reviewOnly ? el("p", {}, el("a", { href: "#/queues/new", class: "button", id: "new-queue" }, "Build a queue")) : null,
    rows.length ? table : el("p", { id: "no-queues" }, reviewOnly ? "No queue has items waiting for a reviewer." : can("review") ? "No queue yet." : "No queue is assigned to you."),
  );
}

async function labelPage(id) {
  if (!can("annotate")) return forbiddenPage("labeling");
  let current = null;
  let chosen = 0;
  const status = el("p", { id: "label-status", role: "status" });
  const help = el(
    "div",
    { id: "label-help", class: "card", hidden: true },
    el("h2", {}, "Keys"),
    el("ul", {}, ["1–9: pick an option (for pairs: 1 A, 2 B, 3 tie)", "← →: move between options", "Ctrl+Enter: submit and open the next item", "s: skip (asks for a reason)", "?: show or hide these keys"].map((k) => el("li", {}, k))),
  );
  const pad = el("section", { id: "label-pad", class: "card", tabindex: "0", "aria-label": "Item to label" });
  const load = async () => {
    let r;
    try {
      r = await api("POST", `${q$(id)}/next`);
    } catch (e) {
      pad.replaceChildren(failure(e));
      return;
    }
    if (r.done) {
      current = null;
      pad.replaceChildren(el("p", { id: "label-done" }, "Nothing left to label in this queue. Thank you."));
      return;
    }
    if (r.wait_until_ms) {
      current = null;
      pad.replaceChildren(el("p", {}, "Others hold the remaining items; trying again shortly."));
      setTimeout(load, 2000);
      return;
    }
    current = r;
    chosen = 0;
    render();
    pad.focus();
  };
  // The item's content is drawn once per item; only the choices are drawn again.
  const choicesBox = el("div");
  const drawChoices = () => {
    const schema = current.schema;
    const choices = choicesOf(schema);
    choicesBox.replaceChildren(
      choices
        ? el(
            "div",
            { class: "choices", role: "radiogroup", "aria-label": schema.name },
            choices.map(([label], i) =>
              el("button", { type: "button", role: "radio", "aria-checked": String(i === chosen), class: "choice" + (i === chosen ? " chosen" : ""), "data-index": i, onclick: () => { chosen = i; drawChoices(); pad.focus(); } }, `${i + 1} ${label}`),
            ),
          )
        : el("input", { id: "label-value", type: schema.type === "numeric" ? "number" : "text", step: "any", "aria-label": "label", placeholder: schema.type === "categorical" ? "options, separated by commas" : schema.type === "numeric" ? `${schema.min} to ${schema.max}` : "" }),
    );
  };
  const render = () => {
    const schema = current.schema;
    const content = current.content || { trace: current.trace };
    const kind = content.pair ? "pair" : content.run ? "eval run result" : content.span ? "span" : "trace";
    drawChoices();
    pad.replaceChildren(
      ...[
        el("p", { class: "dim" }, `${kind} · item `, el("code", { id: "label-item" }, current.item)),
        el("p", { class: "instructions" }, schema.instructions || ""),
        itemContent(content),
        choicesBox,
        schema.comment ? el("input", { id: "label-comment", placeholder: "comment (optional)", "aria-label": "comment" }) : null,
        el("button", { type: "button", id: "label-submit", onclick: submit }, "Submit (Ctrl+Enter)"),
      ].filter(Boolean),
    );
  };
  const submit = async () => {
    if (!current) return;
    const choices = choicesOf(current.schema);
    let value;
    if (choices) value = choices[chosen][1];
    else {
      const raw = document.getElementById("label-value").value;
      if (current.schema.type === "numeric") {
        if (raw.trim() === "" || !Number.isFinite(Number(raw))) {
          status.replaceChildren("Give a number first.");
          return;
        }
      }
      value = current.schema.type === "numeric" ? Number(raw) : raw;
      if (current.schema.type === "categorical") value = raw.split(",").map((x) => x.trim()).filter(Boolean);
    }
    const comment = document.getElementById("label-comment");
    try {
      await api("POST", `${q$(id)}/items/${encodeURIComponent(current.item)}/label`, { value, comment: comment && comment.value ? comment.value : undefined });
      status.replaceChildren(`Labelled ${current.item}`);
      await load();
    } catch (e) {
      status.replaceChildren(failure(e));
    }
  };
  const skip = async () => {
    if (!current) return;
    const reason = window.prompt("Why skip this item?");
    if (!reason) return;
    try {
      await api("POST", `${q$(id)}/items/${encodeURIComponent(current.item)}/skip`, { reason });
      status.replaceChildren(`Skipped ${current.item}`);
      await load();
    } catch (e) {
      status.replaceChildren(failure(e));
    }
  };
  pad.addEventListener("keydown", (ev) => {
    if (!current) return;
    const choices = choicesOf(current.schema);
    const inField = ev.target instanceof HTMLInputElement;
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      submit();
    } else if (ev.key === "?" && !inField) {
      help.hidden = !help.hidden;
    } else if (ev.key === "s" && !inField) {
      skip();
    } else if (choices && !inField && /^[1-9]$/.test(ev.key) && Number(ev.key) <= choices.length) {
      chosen = Number(ev.key) - 1;
      drawChoices();
      pad.focus();
    } else if (choices && !inField && (ev.key === "ArrowRight" || ev.key === "ArrowLeft")) {
      ev.preventDefault();
      chosen = (chosen + (ev.key === "ArrowRight" ? 1 : choices.length - 1)) % choices.length;
      drawChoices();
      pad.focus();
    }
  });
  show(el("p", {}, el("a", { href: "#/queues" }, "← Labeling")), el("h1", {}, `Queue ${id}`), el("p", { class: "dim" }, "Press ? for the keys."), help, pad, status);
  await load();
}

// The reviewer's page: items whose labels disagree, decided one by one.

async function queueReviewPage(id) {
  if (!can("review")) return forbiddenPage("label review");
  const back = el("p", {}, el("a", { href: "#/queues?review" }, "← Label review"), " · ", el("a", { href: `#/queues/${encodeURIComponent(id)}/figures` }, "Figures"));
  show(back, el("h1", {}, `Review ${id}`), el("p", {}, "Loading…"));
  let queue, data;
  try {
    [queue, data] = await Promise.all([api("GET", q$(id)), api("GET", `${q$(id)}/review`)]);
  } catch (e) {
    show(back, el("h1", {}, `Review ${id}`), failure(e));
    return;
  }
  const schema = queue.schema_definition;
  const status = el("p", { id: "review-status", role: "status" });
  const help = el(
    "div",
    { id: "review-help", class: "card", hidden: true },
    el("h2", {}, "Keys"),
    el("ul", {}, ["↓ or j, ↑ or k: next or previous item", "Enter or o: open or close the item's content", "a: accept the consensus", "1–9: pick the label people gave in that place", "c: correct (type a label and a note, then Enter)", "?: show or hide these keys"].map((k) => el("li", {}, k))),
  );
  const empty = el("p", { id: "review-empty" }, "Nothing waits for a reviewer in this queue.");
  const list = el("ul", { id: "review-items", class: "reviews" });
  const items = () => [...list.querySelectorAll(".review-item")];

  const card = (it) => {
    const distinct = [];
    for (const l of it.labels) if (!distinct.some((d) => JSON.stringify(d) === JSON.stringify(l.value))) distinct.push(l.value);
    const note = el("input", { class: "note", placeholder: "note (optional)", "aria-label": "note" });
    const [control, read] = valueControl(schema, null);
    control.classList.add("correct-value");
    const out = el("span", { role: "status", class: "item-status" });
    const content = el("div", { class: "review-content", hidden: true });
    const li = el("li", { class: "card review-item", tabindex: "0", "data-item": it.item, "aria-label": `Item ${it.item}: ${it.why}` });
    const decide = async (value) => {
      try {
        const r = await api("POST", `${q$(id)}/items/${encodeURIComponent(it.item)}/adjudicate`, { value, note: note.value || undefined });
        const next = li.nextElementSibling || li.previousElementSibling;
        li.remove();
        status.replaceChildren(`${it.item}: ${r.how} as ${valueText(schema, r.final)}`);
        if (next) next.focus();
        else list.replaceWith(empty);
      } catch (e) {
        out.replaceChildren(failure(e));
      }
    };
    const open = async () => {
      if (!content.hidden) {
        content.hidden = true;
        return;
      }
      content.hidden = false;
      content.replaceChildren("Loading…");
      try {
        const c = await api("GET", `${q$(id)}/items/${encodeURIComponent(it.item)}`);
        content.replaceChildren(itemContent(c));
      } catch (e) {
        content.replaceChildren(failure(e));
      }
    };
    const correct = el(
      "form",
      {
        class: "filters correct",
        onsubmit: (ev) => {
          ev.preventDefault();
          const v = read();
          if (v === null || v === "" || (Array.isArray(v) && !v.length)) {
            out.replaceChildren(el("span", { class: "error" }, "Give the corrected label first."));
            return;
          }
          decide(v);
        },
      },
      el("label", {}, "Correct to", control),
      el("button", { type: "submit", class: "correct-submit" }, "Correct"),
    );
    li.append(
      el("div", { class: "meta" }, el("code", { class: "item-id" }, it.item), el("span", { class: "tag why" }, it.why)),
      el(
        "table",
        { class: "grid labels" },
        el("thead", {}, el("tr", {}, ["Person", "Label", "Comment"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, it.labels.map((l) => el("tr", { "data-person": l.person }, el("td", {}, el("code", {}, l.person)), el("td", { class: "value" }, valueText(schema, l.value)), el("td", {}, l.comment || "")))),
      ),
      el(
        "p",
        { class: "judge-consensus" },
        "Judge: ",
        el("strong", { class: "judge-value" }, it.judge_value === null || it.judge_value === undefined ? "none" : valueText(schema, it.judge_value)),
        " · Consensus: ",
        el("strong", { class: "consensus" }, it.consensus === null || it.consensus === undefined ? "none" : valueText(schema, it.consensus)),
      ),
      el(
        "div",
        { class: "choices" },
        el("button", { type: "button", class: "open", onclick: open }, "Open (Enter)"),
        el("button", { type: "button", class: "accept", disabled: it.consensus === null || it.consensus === undefined, onclick: () => decide(it.consensus) }, "Accept consensus (a)"),
        distinct.map((v, i) => el("button", { type: "button", class: "pick", "data-index": i, onclick: () => decide(v) }, `${i + 1} Pick ${valueText(schema, v)}`)),
      ),
      correct,
      note,
      out,
      content,
    );
    li.addEventListener("keydown", (ev) => {
      if (ev.target !== li) return;
      if (ev.key === "Enter" || ev.key === "o") {
        ev.preventDefault();
        open();
      } else if (ev.key === "a" && it.consensus !== null && it.consensus !== undefined) {
        decide(it.consensus);
      } else if (/^[1-9]$/.test(ev.key) && Number(ev.key) <= distinct.length) {
        decide(distinct[Number(ev.key) - 1]);
      } else if (ev.key === "c") {
        ev.preventDefault();
        control.focus();
      } else return;
      ev.stopPropagation();
    });
    return li;
  };
  list.append(...data.items.map(card));
  list.addEventListener("keydown", (ev) => {
    const all = items();
    const at = all.indexOf(document.activeElement);
    if (ev.key === "?" && !(ev.target instanceof HTMLInputElement)) {
      help.hidden = !help.hidden;
    } else if (at >= 0 && (ev.key === "ArrowDown" || ev.key === "j")) {
      ev.preventDefault();
      (all[at + 1] || all[at]).focus();
    } else if (at >= 0 && (ev.key === "ArrowUp" || ev.key === "k")) {
      ev.preventDefault();
      (all[at - 1] || all[at]).focus();
    }
  });
  show(
    back,
    el("h1", {}, `Review ${id}`),
    el("p", { class: "dim" }, `Schema ${schema.name}: the items whose labels disagree${queue.review_against_judge ? " or go against the judge" : ""}. A decided item leaves the list and never comes back. Press ? for the keys.`),
    help,
    data.items.length ? list : empty,
    status,
  );
  const first = items()[0];
  if (first) first.focus();
}

// The admin's page: a queue built from a schema (picked or made here) and its items.

/** Reads a file of items: JSONL (a trace id as a JSON string, or an item object) or one
 * trace id per line. A line that looks like JSON but is not is refused with its number. */
function readItemsFile(textContent) {
  const items = [];
  const lines = textContent.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].trim();
    if (!line || line.startsWith("#")) continue;
    if (line.startsWith("{") || line.startsWith('"')) {
      try {
        items.push(JSON.parse(line));
      } catch (e) {
        throw new Error(`line ${n + 1}: not JSON (${e.message})`);
      }
    } else items.push(line);
  }
  return items;
}

function schemaForm() {
  const name = el("input", { name: "schema_name", id: "schema-name", placeholder: "helpful", required: true });
  const type = el("select", { name: "schema_type", id: "schema-type" }, ["pass_fail", "categorical", "numeric", "text", "pairwise"].map((t) => el("option", { value: t }, t)));
  const options = el("input", { name: "schema_options", id: "schema-options", placeholder: "good, bad, unclear" });
  const multiple = el("input", { type: "checkbox", name: "schema_multiple" });
  const ordered = el("input", { type: "checkbox", name: "schema_ordered" });
  const min = el("input", { type: "number", step: "any", name: "schema_min", value: "1" });
  const max = el("input", { type: "number", step: "any", name: "schema_max", value: "5" });
  const instructions = el("input", { name: "schema_instructions", id: "schema-instructions", placeholder: "What the person is asked" });
  const comment = el("input", { type: "checkbox", name: "schema_comment" });
  const judge = el("input", { name: "schema_judge", placeholder: "judge name (optional)" });
  const cat = el("span", { class: "filters" }, el("label", {}, "Options", options), el("label", { class: "check" }, el("span", {}, "Several"), multiple), el("label", { class: "check" }, el("span", {}, "A scale (ordered)"), ordered));
  const num = el("span", { class: "filters" }, el("label", {}, "Min", min), el("label", {}, "Max", max));
  const sync = () => {
    cat.hidden = type.value !== "categorical";
    num.hidden = type.value !== "numeric";
  };
  type.addEventListener("change", sync);
  sync();
  const box = el(
    "fieldset",
    { id: "schema-new", class: "filters" },
    el("legend", {}, "New label schema"),
    el("label", {}, "Name", name),
    el("label", {}, "Type", type),
    cat,
    num,
    el("label", {}, "Instructions", instructions),
    el("label", { class: "check" }, el("span", {}, "Comment allowed"), comment),
    el("label", {}, "Tied to judge", judge),
  );
  const value = () => {
    const s = { name: name.value.trim(), type: type.value, instructions: instructions.value, comment: comment.checked };
    if (judge.value.trim()) s.judge = judge.value.trim();
    if (type.value === "categorical") {
      s.options = options.value.split(",").map((x) => x.trim()).filter(Boolean);
      s.multiple = multiple.checked;
      if (ordered.checked) s.ordered = true;
    }
    if (type.value === "numeric") Object.assign(s, { min: Number(min.value), max: Number(max.value) });
    return s;
  };
  return [box, value];
}

async function newQueuePage() {
  if (!can("admin")) return forbiddenPage("building a queue");
  const back = el("p", {}, el("a", { href: "#/queues" }, "← Labeling"));
  show(back, el("h1", {}, "Build a queue"), el("p", {}, "Loading…"));
  let schemas;
  try {
    schemas = (await api("GET", "/api/v1/label-schemas")).schemas || [];
  } catch (e) {
    show(back, el("h1", {}, "Build a queue"), failure(e));
    return;
  }
  const status = el("div", { id: "build-status", role: "status" });
  const id = el("input", { name: "id", id: "queue-id", required: true, pattern: "[A-Za-z0-9_\\-]+", placeholder: "letters, digits, _ or -" });
  const schemaPick = el(
    "select",
    { name: "schema", id: "queue-schema" },
    schemas.map((s) => el("option", { value: s.name }, `${s.name} (${s.type})`)),
    el("option", { value: "" }, "New schema…"),
  );
  const [schemaBox, schemaValue] = schemaForm();
  // A hidden fieldset is also disabled, so its fields are not checked on submit.
  const syncSchema = () => (schemaBox.hidden = schemaBox.disabled = schemaPick.value !== "");
  schemaPick.addEventListener("change", syncSchema);
  syncSchema();

  // Where the items come from.
  const input = (name, attrs) => el("input", Object.assign({ name }, attrs || {}));
  const f = {
    source: el("select", { name: "f_source" }, ["", "gate", "otlp"].map((o) => el("option", { value: o }, o || "any"))),
    decision: el("select", { name: "f_decision" }, ["", "allow", "escalate", "block"].map((o) => el("option", { value: o }, o || "any"))),
    rule: input("f_rule", { placeholder: "c2.indirect_injection" }),
    text: input("f_text", { placeholder: "words in the trace" }),
    since: input("f_since", { placeholder: "2026-01-01T00:00:00Z" }),
    limit: input("f_limit", { type: "number", min: 1, max: 10000, value: "100" }),
  };
  const run = input("run", { placeholder: "run id or a unique prefix" });
  const lc = {
    judge: input("lc_judge", { placeholder: "judge name" }),
    below: input("lc_below", { type: "number", min: 0, max: 1, step: "0.01", value: "0.6" }),
    run: input("lc_run", { placeholder: "eval run (optional)" }),
    limit: input("lc_limit", { type: "number", min: 1, value: "100" }),
  };
  const untrustedJudge = input("untrusted_from", { placeholder: "judge name" });
  const file = el("input", { type: "file", name: "items_file", id: "items-file", accept: ".jsonl,.txt,.json,text/plain" });
  const fileNote = el("span", { id: "items-file-status", class: "dim", role: "status" });
  let fileItems = null;
  file.addEventListener("change", async () => {
    fileItems = null;
    const chosen = file.files && file.files[0];
    if (!chosen) return fileNote.replaceChildren("");
    try {
      fileItems = readItemsFile(await chosen.text());
      fileNote.replaceChildren(`${fileItems.length} items read from ${chosen.name}`);
    } catch (e) {
      fileNote.replaceChildren(el("span", { class: "error" }, `${chosen.name}: ${e.message}`));
    }
  });
  const panels = {
    filter: el("div", { class: "filters source-panel", "data-source": "filter" }, el("label", {}, "Source", f.source), el("label", {}, "Decision", f.decision), el("label", {}, "Rule", f.rule), el("label", {}, "Text", f.text), el("label", {}, "Since", f.since), el("label", {}, "At most", f.limit)),
    run: el("div", { class: "filters source-panel", "data-source": "run" }, el("label", {}, "Eval run", run)),
    low_confidence: el("div", { class: "filters source-panel", "data-source": "low_confidence" }, el("label", {}, "Judge", lc.judge), el("label", {}, "Confidence below", lc.below), el("label", {}, "In eval run", lc.run), el("label", {}, "At most", lc.limit)),
    file: el("div", { class: "filters source-panel", "data-source": "file" }, el("label", {}, "File (JSONL, or one trace id per line)", file), fileNote),
    untrusted: el("div", { class: "filters source-panel", "data-source": "untrusted" }, el("label", {}, "Judge", untrustedJudge), el("span", { class: "dim" }, "The queue starts empty; each trace whose answer from this judge was not trusted joins it as it comes.")),
  };
  const labels = { filter: "Traces that match a filter", run: "The traces of an eval run", low_confidence: "A judge's low-confidence results", file: "A file of items", untrusted: "A judge's untrusted answers, as they come" };
  const sourceRadios = Object.keys(panels).map((k, i) => el("label", { class: "check" }, el("input", { type: "radio", name: "from", value: k, checked: i === 0 }), " ", labels[k]));
  const chosenSource = () => (form.querySelector("input[name=from]:checked") || { value: "filter" }).value;
  const syncSource = () => {
    for (const [k, p] of Object.entries(panels)) p.hidden = k !== chosenSource();
  };

  // Settings.
  const overlap = input("overlap", { type: "number", min: 1, max: 50, value: "1" });
  const people = input("people", { placeholder: "token ids, separated by commas (empty: every annotator)", size: 40 });
  const blind = el("input", { type: "checkbox", name: "blind" });
  const lock = input("lock_s", { type: "number", min: 1, value: "600" });
  const spread = input("spread", { type: "number", min: 0, step: "any", value: "0" });
  const againstJudge = el("input", { type: "checkbox", name: "review_against_judge" });
  const goldRate = input("gold_rate", { type: "number", min: 0, max: 0.5, step: "0.01", value: "0" });
  const gold = el("textarea", { name: "gold", rows: 3, placeholder: '{"trace-id": "known answer", …}', "aria-label": "gold items" });

  const form = el(
    "form",
    {
      id: "build-queue",
      class: "card editor",
      onsubmit: async (ev) => {
        ev.preventDefault();
        status.replaceChildren("Building…");
        const body = { id: id.value.trim(), overlap: Number(overlap.value), lock_s: Number(lock.value), blind: blind.checked, spread: Number(spread.value), review_against_judge: againstJudge.checked, gold_rate: Number(goldRate.value) };
        const who = people.value.split(",").map((x) => x.trim()).filter(Boolean);
        if (who.length) body.people = who;
        if (gold.value.trim()) {
          try {
            body.gold = JSON.parse(gold.value);
          } catch (e) {
            status.replaceChildren(el("p", { class: "error" }, `gold: not a JSON object (${e.message})`));
            return;
          }
        }
        const src = chosenSource();
        if (src === "filter") {
          const spec = { limit: Number(f.limit.value) };
          for (const k of ["source", "decision", "rule", "text", "since"]) if (f[k].value.trim()) spec[k] = f[k].value.trim();
          body.from = { filter: spec };
        } else if (src === "run") body.from = { run: run.value.trim() };
        else if (src === "low_confidence") {
          const spec = { judge: lc.judge.value.trim(), below: Number(lc.below.value), limit: Number(lc.limit.value) };
          if (lc.run.value.trim()) spec.run = lc.run.value.trim();
          body.from = { low_confidence: spec };
        } else if (src === "untrusted") body.untrusted_from = untrustedJudge.value.trim();
        else {
          if (!fileItems) {
            status.replaceChildren(el("p", { class: "error" }, "items: choose a file of items first"));
            return;
          }
          body.items = fileItems;
        }
        try {
          if (schemaPick.value === "") {
            const s = await api("POST", "/api/v1/label-schemas", schemaValue());
            body.schema = s.name;
          } else body.schema = schemaPick.value;
          const r = await api("POST", "/api/v1/queues", body);
          status.replaceChildren(
            el("p", { id: "built" }, `Queue ${r.id} built with ${r.items} items${r.with_judge_value ? `, ${r.with_judge_value} with the judge's value` : ""}. `, el("a", { href: `#/queues/${encodeURIComponent(r.id)}/figures` }, "Open it")),
            ...Object.entries(r.not_found || {}).map(([kind, ids]) =>
              el("p", { class: "warning built-missing" }, kind === "runs" ? `No such eval run result (runs): ${ids.join(", ")}. The items are kept and show that the run has no result for them.` : `Not stored yet (${kind}): ${ids.join(", ")}. The items are kept and show nothing until it arrives.`),
            ),
            ...(r.warnings || []).map((w) => el("p", { class: "warning built-warning" }, w)),
          );
        } catch (e) {
          status.replaceChildren(failure(e));
        }
      },
    },
    el("fieldset", { class: "filters" }, el("legend", {}, "Queue"), el("label", {}, "Id", id), el("label", {}, "Label schema", schemaPick)),
    schemaBox,
    el("fieldset", {}, el("legend", {}, "Items"), el("div", { class: "filters", role: "radiogroup" }, sourceRadios), ...Object.values(panels)),
    el(
      "fieldset",
      { class: "filters" },
      el("legend", {}, "Settings"),
      el("label", {}, "People per item", overlap),
      el("label", {}, "Who may label", people),
      el("label", { class: "check" }, el("span", {}, "Blind (nobody sees others' labels)"), blind),
      el("label", {}, "Lock (seconds)", lock),
      el("label", {}, "Numbers disagree above", spread),
      el("label", { class: "check" }, el("span", {}, "Review people against the judge"), againstJudge),
      el("label", {}, "Gold rate (0–0.5)", goldRate),
      el("label", {}, "Gold items", gold),
    ),
    el("button", { type: "submit", id: "build-submit" }, "Build the queue"),
    status,
  );
  form.addEventListener("change", (ev) => {
    if (ev.target.name === "from") syncSource();
  });
  syncSource();
  show(back, el("h1", {}, "Build a queue"), el("p", { class: "dim" }, "Pick a label schema (or make one), say where the items come from, and how people work on them."), form);
  id.focus();
}

// A queue's figures: settings, progress, agreement, people, the judge, and labels out and in.

async function figuresPage(id) {
  if (!can("review")) return forbiddenPage("a queue's figures");
  const back = el("p", {}, el("a", { href: "#/queues" }, "← Labeling"), " · ", el("a", { href: `#/queues/${encodeURIComponent(id)}/review` }, "Review"));
  show(back, el("h1", {}, `Queue ${id}`), el("p", {}, "Loading…"));
  let queue, f;
  try {
    [queue, f] = await Promise.all([api("GET", q$(id)), api("GET", `${q$(id)}/agreement`)]);
  } catch (e) {
    show(back, el("h1", {}, `Queue ${id}`), failure(e));
    return;
  }
  const p = queue.progress;
  const schema = queue.schema_definition;
  const fig = (label, v, idAttr) => el("div", { class: "figure", id: idAttr }, el("div", { class: "value" }, v instanceof Node ? v : String(v)), el("div", { class: "label" }, label));
  const th = (...hs) => el("thead", {}, el("tr", {}, hs.map((h) => el("th", { scope: "col" }, h))));
  const settings = el(
    "p",
    { class: "summary", id: "queue-settings" },
    `Schema ${queue.schema} (${schema.type}) · ${queue.items} items · ${queue.overlap} per item · lock ${queue.lock_s} s`,
    queue.blind ? " · blind" : "",
    queue.gold_rate ? ` · gold ${pct(queue.gold_rate)}` : "",
    queue.spread ? ` · numbers disagree above ${queue.spread}` : "",
    queue.review_against_judge ? " · people reviewed against the judge" : "",
    queue.people ? ` · people: ${queue.people.join(", ")}` : " · every annotator",
    queue.from ? ` · ${fromText(queue.from)}` : "",
    queue.untrusted_from ? ` · collects the answers ${queue.untrusted_from} did not trust` : "",
  );
  const progress = el(
    "div",
    { class: "figures", id: "queue-progress" },
    fig("labels given", `${p.labels} of ${p.labels_needed}`, "progress-labels"),
    fig("items complete", p.items_complete, "progress-complete"),
    fig("final labels", p.final, "progress-final"),
    fig("in review", p.in_review, "progress-review"),
  );
  let agreement;
  if (f.not_computable) {
    agreement = el("p", { class: "not-computable", id: "agreement-none" }, "not computable: ", f.not_computable);
  } else {
    agreement = el(
      "div",
      {},
      el(
        "div",
        { class: "figures", id: "agreement" },
        fig("percent agreement", figureText(f.percent_agreement), "fig-percent"),
        fig("Cohen's κ (mean over pairs)", figureText(f.cohen_kappa_mean), "fig-kappa"),
        fig(`Krippendorff's α (${f.level})`, figureText(f.krippendorff_alpha), "fig-alpha"),
        fig("Fleiss' κ", figureText(f.fleiss_kappa), "fig-fleiss"),
        fig("unanimous items", f.percent_unanimous === null ? "—" : pct(f.percent_unanimous), "fig-unanimous"),
      ),
      el("p", { class: "dim" }, `${f.items_complete} of ${f.items} labelled items have all their labels.`),
      el("h3", {}, "Pairs of people"),
      f.pairs.length
        ? el(
            "table",
            { class: "grid", id: "pairs" },
            th("Person", "Person", "Shared items", "Agreement", "Cohen's κ", f.pairs.some((x) => x.weighted_kappa) ? "Weighted κ (linear / quadratic)" : null),
            el(
              "tbody",
              {},
              f.pairs.map((x) =>
                el(
                  "tr",
                  { "data-a": x.a, "data-b": x.b },
                  el("td", {}, el("code", {}, x.a)),
                  el("td", {}, el("code", {}, x.b)),
                  el("td", { class: "num" }, x.items),
                  el("td", { class: "num pair-agreement" }, figureText(x.percent_agreement)),
                  el("td", { class: "num pair-kappa" }, figureText(x.cohen_kappa)),
                  x.weighted_kappa ? el("td", { class: "num" }, figureText(x.weighted_kappa.linear), " / ", figureText(x.weighted_kappa.quadratic)) : null,
                ),
              ),
            ),
          )
        : el("p", { class: "dim" }, "No two people share an item yet."),
    );
  }
  const ms = (v) => (typeof v === "number" ? `${(v / 1000).toFixed(1)} s` : "—");
  const peopleTable = (f.people || []).length
    ? el(
        "table",
        { class: "grid", id: "people" },
        th("Person", "Labels", "Skips", "Gold accuracy", "Agreement with others", "Time per item (median / mean)", "Labels per hour"),
        el(
          "tbody",
          {},
          f.people.map((x) =>
            el(
              "tr",
              { "data-person": x.person },
              el("td", {}, el("code", {}, x.person)),
              el("td", { class: "num person-labels" }, x.labels),
              el("td", { class: "num person-skips" }, x.skips),
              el("td", { class: "num person-gold" }, x.gold ? [figureText(x.gold.accuracy), ` (${x.gold.right} of ${x.gold.of})`] : el("span", { class: "dim" }, "no gold item")),
              el("td", { class: "num person-agreement" }, figureText(x.agreement_with_others)),
              el("td", { class: "num" }, `${ms(x.time_per_item_ms.median)} / ${ms(x.time_per_item_ms.mean)}`),
              el("td", { class: "num" }, typeof x.labels_per_hour === "number" ? x.labels_per_hour.toFixed(1) : "—"),
            ),
          ),
        ),
      )
    : el("p", { class: "dim" }, "Nobody has labelled yet.");
  const j = f.judge || { not_computable: "no figures" };
  const judge = j.not_computable
    ? el("p", { class: "not-computable", id: "judge-figures" }, "not computable: ", j.not_computable)
    : el(
        "table",
        { class: "grid", id: "judge-figures" },
        el(
          "tbody",
          {},
          el("tr", {}, el("th", { scope: "row" }, "Judge"), el("td", {}, el("code", {}, j.judge))),
          el("tr", {}, el("th", { scope: "row" }, "Items with the judge's value and people's label"), el("td", { class: "num" }, j.items)),
          el("tr", {}, el("th", { scope: "row" }, "Agreement"), el("td", { id: "judge-agreement" }, intervalText(j.agreement))),
          el("tr", {}, el("th", { scope: "row" }, "Cohen's κ"), el("td", { id: "judge-kappa" }, intervalText(j.kappa))),
          j.judge_values_not_fitting_the_schema ? el("tr", {}, el("th", { scope: "row" }, "Judge values that do not fit the schema"), el("td", { class: "num" }, j.judge_values_not_fitting_the_schema)) : null,
        ),
      );
  const perItem = (f.per_item || []).length
    ? el(
        "details",
        { id: "per-item" },
        el("summary", {}, `Per item (${f.per_item.length})`),
        el("table", { class: "grid" }, th("Item", "Labels", "Share agreeing", "Review"), el("tbody", {}, f.per_item.map((x) => el("tr", { "data-item": x.item }, el("td", {}, el("code", {}, x.item)), el("td", { class: "num" }, x.labels), el("td", { class: "num" }, figureText(x.agreement)), el("td", {}, x.review || ""))))),
      )
    : null;
  const exports = el(
    "p",
    { id: "exports" },
    "Export the labels: ",
    el("a", { href: `${q$(id)}/export?format=jsonl`, download: `${id}.jsonl`, class: "button", id: "export-jsonl" }, "JSONL"),
    " ",
    el("a", { href: `${q$(id)}/export?format=mlflow`, download: `${id}-mlflow.jsonl`, class: "button", id: "export-mlflow" }, "MLflow assessments"),
  );
  show(
    back,
    el("h1", {}, `Queue ${id}`),
    settings,
    ...(queue.warnings || []).map((w) => el("p", { class: "warning queue-warning" }, w)),
    el("h2", {}, "Progress"),
    progress,
    el("h2", {}, "Agreement"),
    agreement,
    el("h2", {}, "People"),
    peopleTable,
    el("h2", {}, "The judge against people"),
    judge,
    perItem,
    el("h2", {}, "Labels out and in"),
    exports,
    can("admin") ? importForm(id) : null,
  );
}

/** Where a queue's items came from, in words. */
function fromText(from) {
  if (from.filter) {
    const parts = Object.entries(from.filter).filter(([k, v]) => v !== null && v !== undefined && k !== "limit").map(([k, v]) => `${k}=${v}`);
    return `from ${parts.length ? "the traces where " + parts.join(", ") : "all traces"} (at most ${from.filter.limit})`;
  }
  if (from.run) return `from eval run ${from.run}`;
  if (from.low_confidence) {
    const lc = from.low_confidence;
    return `from ${lc.judge}'s results with a confidence below ${lc.below}${lc.run ? " in eval run " + lc.run : ""} (at most ${lc.limit})`;
  }
  return "";
}

function importForm(id) {
  const lines = el("textarea", { id: "import-lines", rows: 5, spellcheck: "false", placeholder: "JSONL: export lines, {item, person, value, comment?}, MLflow assessments or trace exports", "aria-label": "labels to import" });
  const file = el("input", { type: "file", id: "import-file", accept: ".jsonl,.json,.txt" });
  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    if (chosen) lines.value = await chosen.text();
  });
  const out = el("div", { id: "import-result", role: "status" });
  return el(
    "form",
    {
      class: "card editor",
      id: "import-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        out.replaceChildren("Importing…");
        try {
          const r = await api("POST", `${q$(id)}/import`, { lines: lines.value });
          out.replaceChildren(report(r));
        } catch (e) {
          // Nothing imported: the answer still lists the refused lines.
          out.replaceChildren(e.data && Array.isArray(e.data.refused) ? report(e.data) : failure(e));
        }
      },
    },
    el("h3", {}, "Import labels"),
    el("label", {}, "From a file ", file),
    lines,
    el("button", { type: "submit", id: "import-submit" }, "Import"),
    out,
  );
}

function report(r) {
  return el(
    "div",
    {},
    el("p", { id: "import-summary" }, `${r.imported} imported, ${r.already_there} already there, ${r.other_lines} lines about something else, ${r.refused.length} refused.`),
    r.refused.length ? el("ul", { class: "error" }, r.refused.map((x) => el("li", {}, `line ${x.line}: ${x.error}`))) : null,
  );
}

// ---------------------------------------------------------------------------------------
// Monitoring: stored judges switched on for incoming traces, their results, their alerts.

function pct(v) {
  return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + " %";
}

function filterText(f) {
  const parts = Object.entries(f || {}).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(", ") : "all traces";
}

/** Pass rate per window as bars labelled with the rate and the counts (not colour alone). */
function passRateChart(windows) {
  const h = 22 * Math.max(1, windows.length) + 8;
  const chart = svg("svg", { role: "img", "aria-label": "Pass rate over time", width: 620, height: h, viewBox: `0 0 620 ${h}` });
  windows.forEach((w, i) => {
    const y = 4 + 22 * i;
    const width = Math.round((w.pass_rate || 0) * 260);
    chart.append(
      svg("text", { x: 0, y: y + 13 }, w.start.replace("T", " ").slice(0, 16)),
      svg("rect", { x: 150, y, width, height: 16, fill: "#1d6b35" }),
      svg("rect", { x: 150, y, width: 260, height: 16, fill: "none", stroke: "#5b6472" }),
      svg("text", { x: 418, y: y + 13 }, `${pct(w.pass_rate)} (${w.pass} pass, ${w.fail} fail, ${w.error} error)`),
    );
  });
  return el("figure", { class: "card", id: "monitor-chart" }, el("figcaption", {}, "Pass rate over time"), chart);
}

async function monitorsPage() {
  show(el("h1", {}, "Monitoring"), el("p", {}, "Loading…"));
  let monitors, judges;
  try {
    [monitors, judges] = await Promise.all([api("GET", "/api/v1/monitors"), api("GET", "/api/v1/judges")]);
  } catch (e) {
    show(el("h1", {}, "Monitoring"), failure(e));
    return;
  }
  const status = el("p", { id: "monitor-status", role: "status" });
  const toggle = (m) =>
    el("input", {
      type: "checkbox",
      class: "switch",
      "aria-label": `Monitor ${m.judge} switched on`,
      "data-monitor": m.id,
      checked: m.enabled,
      disabled: !can("admin"),
      onchange: async (ev) => {
        try {
          await api("PATCH", "/api/v1/monitors/" + encodeURIComponent(m.id), { enabled: ev.target.checked });
          status.textContent = `${m.judge}: switched ${ev.target.checked ? "on" : "off"}.`;
        } catch (e) {
          ev.target.checked = !ev.target.checked;
          status.replaceChildren(failure(e));
        }
      },
    });
  const list = monitors.monitors.length
    ? el(
        "table",
        { class: "grid", id: "monitors" },
        el("thead", {}, el("tr", {}, ["On", "Judge", "Version", "Sample", "Filter", "Alerts"].map((h) => el("th", { scope: "col" }, h)))),
        el(
          "tbody",
          {},
          monitors.monitors.map((m) =>
            el(
              "tr",
              { "data-monitor": m.id },
              el("td", {}, toggle(m)),
              el("td", {}, el("a", { href: "#/monitors/" + encodeURIComponent(m.id) }, m.judge)),
              el("td", { class: "num" }, "v" + m.version),
              el("td", { class: "num" }, pct(m.sample_rate)),
              el("td", {}, filterText(m.filter)),
              el("td", {}, (m.alerts || []).map((a) => el("span", { class: "tag" + (a.firing ? " firing" : "") }, `${a.kind}${a.firing ? " FIRING" : ""}`))),
            ),
          ),
        ),
      )
    : el("p", {}, "No judge is monitoring traces yet.");
  let form = null;
  const stored = judges.stored || [];
  if (can("admin")) {
    const judge = el("select", { name: "judge", id: "monitor-judge" }, stored.map((j) => el("option", { value: j.name }, `${j.name} (v${j.latest_version})`)));
    const rate = el("input", { name: "sample_rate", id: "monitor-rate", type: "number", min: 0, max: 1, step: "0.01", value: "1" });
    const source = el("select", { name: "source" }, ["", "gate", "otlp"].map((o) => el("option", { value: o }, o || "any")));
    const decision = el("select", { name: "decision" }, ["", "allow", "escalate", "block"].map((o) => el("option", { value: o }, o || "any")));
    const rule = el("input", { name: "rule", placeholder: "rule" });
    const q = el("input", { name: "q", placeholder: "text" });
    const threshold = el("input", { name: "pass_threshold", type: "number", step: "any", value: "0.5" });
    form = el(
      "form",
      {
        id: "monitor-form",
        class: "card filters",
        onsubmit: async (ev) => {
          ev.preventDefault();
          try {
            const m = await api("POST", "/api/v1/monitors", {
              judge: judge.value,
              sample_rate: Number(rate.value),
              pass_threshold: Number(threshold.value),
              filter: { source: source.value || null, decision: decision.value || null, rule: rule.value || null, q: q.value || null },
            });
            location.hash = "#/monitors/" + encodeURIComponent(m.id);
          } catch (e) {
            status.replaceChildren(failure(e));
          }
        },
      },
      el("label", {}, "Judge", judge),
      el("label", {}, "Sample rate (0–1)", rate),
      el("label", {}, "Source", source),
      el("label", {}, "Decision", decision),
      el("label", {}, "Rule", rule),
      el("label", {}, "Text", q),
      el("label", {}, "Pass at or above", threshold),
      el("button", { type: "submit", id: "monitor-on", disabled: !stored.length }, "Switch on"),
    );
  }
  show(
    el("h1", {}, "Monitoring"),
    el("p", { class: "dim" }, "A stored judge version judges incoming gate and OTLP traces, off the request path."),
    list,
    form ? el("h2", {}, "Switch a judge on") : null,
    form,
    status,
  );
}

async function monitorPage(id) {
  show(el("h1", {}, "Monitor"), el("p", {}, "Loading…"));
  let r;
  try {
    r = await api("GET", `/api/v1/monitors/${encodeURIComponent(id)}/results?window=3600&bucket=300&limit=50`);
  } catch (e) {
    show(el("p", {}, el("a", { href: "#/monitors" }, "← Monitoring")), el("h1", {}, "Monitor"), failure(e));
    return;
  }
  const m = r.monitor;
  const t = r.totals;
  const figure = (label, value, idAttr) => el("div", { class: "figure", id: idAttr }, el("div", { class: "value" }, String(value)), el("div", { class: "label" }, label));
  const latest = r.latest.length
    ? el(
        "table",
        { class: "grid", id: "monitor-results" },
        el("thead", {}, el("tr", {}, ["Trace", "Result", "Value", "Rationale", "Version", "At"].map((h) => el("th", { scope: "col" }, h)))),
        el(
          "tbody",
          {},
          r.latest.map((x) =>
            el(
              "tr",
              { "data-trace": x.trace_id, class: "result-" + x.status },
              el("td", {}, el("a", { href: "#/traces/" + encodeURIComponent(x.trace_id) }, x.trace_id)),
              el("td", {}, el("span", { class: "tag result " + x.status }, x.status)),
              el("td", {}, x.error ? "error: " + text(x.error) : text(x.value)),
              el("td", {}, x.rationale || ""),
              el("td", {}, "v" + x.judge_version, " ", el("code", {}, (x.judge_hash || "").slice(0, 12))),
              el("td", {}, x.at),
            ),
          ),
        ),
      )
    : el("p", { id: "monitor-empty" }, "No results yet: they appear as traces arrive.");
  const alertsList = await api("GET", `/api/v1/monitors/${encodeURIComponent(id)}/alerts`).then(
    (a) => a.alerts,
    () => [],
  );
  const alerts = el(
    "section",
    { class: "card", id: "alerts" },
    el("h2", {}, "Alerts"),
    alertsList.length
      ? el(
          "ul",
          {},
          alertsList.map((a) =>
            el(
              "li",
              { "data-alert": a.id },
              el("strong", {}, a.firing ? "FIRING " : "ok "),
              `${a.kind}${a.kind === "block" ? (a.rule ? " of " + a.rule : " of any rule") : " above " + pct(a.threshold)} over ${a.last_n ? "the last " + a.last_n + " results" : a.minutes + " minutes"} → `,
              el("code", {}, a.webhook_url),
              el(
                "ul",
                {},
                (a.deliveries || []).map((d) => el("li", { class: "dim" }, `${d.created_at} ${d.event}: ${d.status} after ${d.attempts} attempt(s)${d.last_status ? ", HTTP " + d.last_status : ""}${d.last_error ? ", " + d.last_error : ""}`)),
              ),
            ),
          ),
        )
      : el("p", {}, "No alert rules."),
    can("admin") ? alertForm(id) : null,
  );
  show(
    el("p", {}, el("a", { href: "#/monitors" }, "← Monitoring")),
    el("h1", {}, "Monitor ", el("code", {}, m.judge), ` v${m.version}`),
    el("p", { class: "summary" }, `${m.enabled ? "switched on" : "switched off"} · sample ${pct(m.sample_rate)} · ${filterText(m.filter)} · since ${m.since}`),
    el(
      "div",
      { class: "figures" },
      figure("judged (last hour)", t.judged, "monitor-judged"),
      figure("pass rate", pct(t.pass_rate), "monitor-pass-rate"),
      figure("failed", t.fail, "monitor-failed"),
      figure("errors", t.error, "monitor-errors"),
    ),
    r.windows.length ? passRateChart(r.windows) : null,
    el("h2", {}, "Latest results"),
    latest,
    alerts,
    el("p", {}, el("a", { href: "#/monitors/" + encodeURIComponent(id) + "?r=" + Date.now(), id: "monitor-refresh" }, "Refresh")),
  );
}

function alertForm(id) {
  const kind = el("select", { name: "kind" }, ["failure_rate", "error_rate", "block"].map((k) => el("option", { value: k }, k)));
  const threshold = el("input", { name: "threshold", type: "number", min: 0, max: 1, step: "0.01", value: "0.2" });
  const lastN = el("input", { name: "last_n", type: "number", min: 1, value: "20" });
  const rule = el("input", { name: "rule", placeholder: "rule (block only)" });
  const url = el("input", { name: "webhook_url", type: "url", placeholder: "https://…", required: true });
  const status = el("p", { role: "status" });
  return el(
    "form",
    {
      class: "filters",
      id: "alert-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const body = { kind: kind.value, last_n: Number(lastN.value), webhook_url: url.value };
        if (kind.value === "block") {
          if (rule.value) body.rule = rule.value;
        } else body.threshold = Number(threshold.value);
        try {
          const a = await api("POST", `/api/v1/monitors/${encodeURIComponent(id)}/alerts`, body);
          status.replaceChildren("Added. Signing secret (shown once): ", el("code", { id: "alert-secret" }, a.secret));
        } catch (e) {
          status.replaceChildren(failure(e));
        }
      },
    },
    el("label", {}, "Kind", kind),
    el("label", {}, "Rate above", threshold),
    el("label", {}, "Over the last N results", lastN),
    el("label", {}, "Rule", rule),
    el("label", {}, "Webhook URL", url),
    el("button", { type: "submit" }, "Add alert"),
    status,
  );
}

// ---------------------------------------------------------------------------------------
// Policies: modules and rules, Rego unit tests, a changed module tried on stored traces.

async function policiesPage() {
  show(el("h1", {}, "Policies"), el("p", {}, "Loading…"));
  let p;
  try {
    p = await api("GET", "/api/v1/policies/modules");
  } catch (e) {
    show(el("h1", {}, "Policies"), failure(e));
    return;
  }
  const rules = el(
    "table",
    { class: "grid", id: "policy-rules" },
    el("thead", {}, el("tr", {}, ["Rule", "Severity", "Description", "Module"].map((h) => el("th", { scope: "col" }, h)))),
    el(
      "tbody",
      {},
      p.rules.map((r) =>
        el("tr", { "data-rule": r.rule }, el("td", {}, el("code", {}, r.rule)), el("td", {}, r.severity ? el("span", { class: "badge " + r.severity }, r.severity) : "—"), el("td", {}, r.description || ""), el("td", {}, el("code", {}, r.file))),
      ),
    ),
  );
  const testsOut = el("div", { id: "policy-tests", role: "status" });
  const runTests = el(
    "button",
    {
      type: "button",
      id: "run-policy-tests",
      onclick: async () => {
        testsOut.replaceChildren("Running…");
        try {
          const t = await api("POST", "/api/v1/policies/test");
          testsOut.replaceChildren(
            el("p", { id: "policy-tests-summary" }, `${t.passed} passed, ${t.failed} failed`),
            el(
              "table",
              { class: "grid" },
              el("tbody", {}, t.tests.map((x) => el("tr", { class: x.passed ? "test-pass" : "test-fail" }, el("td", {}, x.passed ? "PASS" : "FAIL"), el("td", {}, el("code", {}, x.name)), el("td", {}, x.file), el("td", {}, x.detail || "")))),
            ),
          );
        } catch (e) {
          testsOut.replaceChildren(failure(e));
        }
      },
    },
    "Run the policy tests",
  );
  let tryForm = null;
  if (can("admin")) {
    const module = el("select", { id: "try-module" }, p.modules.map((m) => el("option", { value: m.path }, m.path)));
    const textArea = el("textarea", { id: "try-text", rows: 16, spellcheck: "false", "aria-label": "Module text" });
    const fill = () => {
      const m = p.modules.find((x) => x.path === module.value);
      textArea.value = m ? m.text : "";
    };
    module.addEventListener("change", fill);
    fill();
    const out = el("div", { id: "try-result", role: "status" });
    tryForm = el(
      "form",
      {
        class: "card editor",
        id: "try-policy",
        onsubmit: async (ev) => {
          ev.preventDefault();
          out.replaceChildren("Replaying…");
          try {
            const r = await api("POST", "/api/v1/policies/try", { path: module.value, text: textArea.value });
            out.replaceChildren(
              el("p", { id: "try-summary" }, `${r.traces} traces replayed: ${r.changes.length} would change, ${r.unchanged} unchanged, ${r.skipped} skipped (policy version ${r.policy_version}, enforced ${r.enforced_version}).`),
              el("ul", {}, r.transitions.map((t) => el("li", {}, `${t.change}: ${t.count}`))),
              el(
                "table",
                { class: "grid", id: "try-changes" },
                el("thead", {}, el("tr", {}, ["Trace", "Before", "After", "Reasons"].map((h) => el("th", { scope: "col" }, h)))),
                el("tbody", {}, r.changes.map((c) => el("tr", { "data-trace": c.trace_id }, el("td", {}, el("a", { href: "#/traces/" + encodeURIComponent(c.trace_id) }, c.trace_id)), el("td", {}, badge(c.before)), el("td", {}, badge(c.after)), el("td", {}, (c.reasons || []).join("; "))))),
              ),
            );
          } catch (e) {
            out.replaceChildren(failure(e));
          }
        },
      },
      el("h2", {}, "Try a change"),
      el("p", { class: "dim" }, "Edit a module and replay the project's stored traces with it; nothing is enforced or written."),
      el("label", {}, "Module ", module),
      textArea,
      el("button", { type: "submit", id: "try-run" }, "Replay stored traces"),
      out,
    );
  }
  show(
    el("h1", {}, "Policies"),
    el("p", { class: "summary" }, `Enforced version ${p.version} · loaded ${p.loaded_at} · ${p.modules.length} modules`),
    el(
      "p",
      { id: "shadow-status" },
      p.shadow ? `Shadow policies: version ${p.shadow.version}, gates ${p.shadow.gates.join(", ") || "none"} — decided and logged, not enforced.` : "No shadow policies.",
    ),
    el("h2", {}, "Rules"),
    rules,
    el("section", { class: "card" }, el("h2", {}, "Tests"), runTests, testsOut),
    tryForm,
  );
}

function forbiddenPage(what) {
  show(el("h1", {}, "Not allowed"), el("p", { id: "forbidden" }, `A ${state.role} may not open ${what}.`));
}

// ---------------------------------------------------------------------------------------
// Routing

function chrome() {
  const signedIn = !!state.role;
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("signout").hidden = !signedIn;
  document.getElementById("who").textContent = signedIn ? `${state.project} · ${state.role}` : "";
  for (const a of document.querySelectorAll("[data-needs]")) a.hidden = !can(a.dataset.needs);
}

async function route() {
  if (!state.role) {
    try {
      const s = await api("GET", "/api/v1/session");
      Object.assign(state, { role: s.role, project: s.project, csrf: s.csrf, token_id: s.token_id });
    } catch (_) {
      chrome();
      signInPage();
      return;
    }
  }
  chrome();
  const hash = location.hash.replace(/^#/, "") || "/traces";
  const [path, qs] = hash.split("?");
  const params = new URLSearchParams(qs || "");
  const parts = path.split("/").filter(Boolean);
  // A link with a malformed escape opens the page it names as written.
  const decode = (part) => {
    try {
      return decodeURIComponent(part);
    } catch (_) {
      return part;
    }
  };
  if (parts[0] === "signin") return signInPage();
  if (parts[0] === "traces" && parts[1]) return tracePage(decode(parts[1]));
  if (parts[0] === "reviews") return can("review") ? reviewsPage() : forbiddenPage("reviews");
  if (parts[0] === "judges" && parts[1] === "new") return judgeEditor(null, params);
  if (parts[0] === "judges" && parts[1] && parts[2] === "versions") return judgeVersions(decode(parts[1]), params);
  if (parts[0] === "judges" && parts[1]) return judgeEditor(decode(parts[1]), params);
  if (parts[0] === "judges") return judgesPage();
  if (parts[0] === "dashboard") return dashboardPage(params);
  if (parts[0] === "monitors" && parts[1]) return monitorPage(decode(parts[1]));
  if (parts[0] === "monitors") return monitorsPage();
  if (parts[0] === "policies") return policiesPage();
  if (parts[0] === "queues" && parts[1] === "new") return newQueuePage();
  if (parts[0] === "queues" && parts[1] && parts[2] === "label") return labelPage(decode(parts[1]));
  if (parts[0] === "queues" && parts[1] && parts[2] === "review") return queueReviewPage(decode(parts[1]));
  if (parts[0] === "queues" && parts[1]) return figuresPage(decode(parts[1]));
  if (parts[0] === "queues") return can("annotate") ? queuesPage(params) : forbiddenPage("labeling");
  return tracesPage(params);
}

document.getElementById("signout").addEventListener("click", async () => {
  try {
    await api("DELETE", "/api/v1/session");
  } finally {
    Object.assign(state, { role: null, project: null, csrf: null, token_id: null });
    chrome();
    location.hash = "#/signin";
  }
});
window.addEventListener("hashchange", route);
route();
