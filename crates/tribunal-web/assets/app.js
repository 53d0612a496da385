// Tribunal's UI: a client of the REST API. Everything that comes from a trace is put in the
// page as text (textContent), never parsed as HTML.
"use strict";

const state = { role: null, project: null, csrf: null };

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
  main.replaceChildren(...nodes);
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
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
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
    if (r.status === 401) {
      state.role = null;
      location.hash = "#/signin";
    }
    throw new ApiError(r.status, err.code || "error", err.message || r.statusText);
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
          Object.assign(state, { role: s.role, project: s.project, csrf: s.csrf });
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

const FILTERS = ["source", "decision", "rule", "q", "since"];

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
  const spans = trace.spans || [];
  const tree = el(
    "section",
    { class: "card", id: "spans" },
    el("h2", {}, `Spans (${spans.length})`),
    spanTree(spans, evidence),
  );
  show(
    el("p", {}, el("a", { href: "#/traces" }, "← Traces")),
    el("h1", {}, "Trace ", el("code", {}, id)),
    el("p", { class: "summary" }, `${t.summary.source} · first seen ${t.summary.first_seen} · last seen ${t.summary.last_seen}`),
    verdict,
    conversation,
    judges,
    spans.length ? tree : null,
  );
  const at = new URLSearchParams(location.hash.split("?")[1] || "").get("at");
  const target = at && (document.getElementById("msg-" + at) || document.getElementById("call-" + at));
  if (target) target.scrollIntoView();
}

function spanTree(spans, evidence) {
  const children = new Map();
  const ids = new Set(spans.map((s) => s.id));
  for (const s of spans) {
    const parent = s.parent_id && ids.has(s.parent_id) ? s.parent_id : "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(s);
  }
  const node = (s) =>
    el(
      "li",
      { class: evidence.has(s.id) ? "evidence" : "" },
      el("span", { class: "tag" }, s.kind),
      " ",
      s.name,
      s.start_ns && s.end_ns ? el("span", { class: "dim" }, ` ${((s.end_ns - s.start_ns) / 1e6).toFixed(1)} ms`) : null,
      children.has(s.id) ? el("ul", {}, children.get(s.id).map(node)) : null,
    );
  return el("ul", { class: "tree" }, (children.get("") || []).map(node));
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
  show(el("h1", {}, "Reviews"), items.length ? list : el("p", {}, "Nothing is waiting for a decision."));
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
      Object.assign(state, { role: s.role, project: s.project, csrf: s.csrf });
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
  if (parts[0] === "signin") return signInPage();
  if (parts[0] === "traces" && parts[1]) return tracePage(decodeURIComponent(parts[1]));
  if (parts[0] === "reviews") return can("review") ? reviewsPage() : forbiddenPage("reviews");
  return tracesPage(params);
}

document.getElementById("signout").addEventListener("click", async () => {
  try {
    await api("DELETE", "/api/v1/session");
  } finally {
    Object.assign(state, { role: null, project: null, csrf: null });
    chrome();
    location.hash = "#/signin";
  }
});
window.addEventListener("hashchange", route);
route();
