//! Traces the gate holds between calls, so an agent can send only the steps taken since its
//! last call (`append` with `offset`) instead of the whole conversation every time.
//!
//! Every gate call leaves its trace here (by project and trace id). An append is checked
//! against what is held: the trace must be held and `offset` must equal its message count
//! (so a retried or out-of-order call is refused, never applied twice); the new messages are
//! imported against the held ones (ids go on, tool results find their tools) and the
//! trace is extended in place. Traces idle longer than the limit, and the least recently
//! used ones beyond the count limit, are let go; a trace let go (or lost in a restart) is
//! read back from the store when it was stored, else the client is told to send it whole.
//!
//! A trace belongs to the agent whose token first sent or extended it: a token bound to
//! another agent may neither replace nor extend it (`trace_owned`), here, when it is read
//! back from the store, nor in the store itself. A token of the whole project may.
//!
//! Held traces are written to the store by [`flush_loop`] (every [`FLUSH_EVERY`], on
//! eviction and at shutdown) rather than once per call: as last sent when sent whole, as the
//! whole normalized trace when grown by appends. Every decision is in the decision log at
//! once either way.

use crate::error::{ApiError, Code};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tribunal_core::size::ALLOCATION;
use tribunal_core::{Heap, Pending, Trace};
use tribunal_engine::Kept;
use tribunal_store::GateTraceRow;

/// How often held traces are written to the store.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// What the store should hold for a held trace: its last request and answer. The request
/// is `request` as sent when the trace came whole, else (grown by appends) the whole held
/// trace written in the normalized format with `pending`.
#[derive(Debug, Clone)]
pub struct Unsaved {
    pub request: Option<String>,
    pub pending: Option<Option<Arc<Pending>>>,
    pub decision: String,
    pub result: StoredAnswer,
    pub at: String,
    pub at_ms: i64,
    /// The agent the call's token is bound to (the held trace's owner, once held).
    pub agent: Option<String>,
    /// The digest of the inputs that built the trace as decided (see
    /// [`tribunal_store::HeadGuard`]).
    pub digest: String,
}

/// The answer stored with a held trace: as sent, or what it is made from, serialized when
/// stored (once per flush rather than on every call).
#[derive(Debug, Clone)]
pub enum StoredAnswer {
    Text(String),
    Later(Box<crate::gate::Outcome>),
}

impl StoredAnswer {
    /// Roughly the memory it takes.
    fn bytes(&self) -> usize {
        match self {
            StoredAnswer::Text(t) => t.heap(),
            StoredAnswer::Later(o) => o.bytes(),
        }
    }

    pub fn into_text(self) -> String {
        match self {
            StoredAnswer::Text(t) => t,
            StoredAnswer::Later(o) => o.stored(),
        }
    }
}

impl Unsaved {
    /// Roughly the memory it takes beyond the trace it belongs to.
    fn bytes(&self) -> usize {
        std::mem::size_of::<Unsaved>()
            + self.request.heap()
            + self
                .pending
                .as_ref()
                .and_then(|p| p.as_deref())
                .map_or(0, |p| p.footprint())
            + self.decision.heap()
            + self.result.bytes()
            + self.at.heap()
            + self.agent.heap()
            + self.digest.heap()
    }
}

/// What a held trace costs besides its trace, its judges' states and its unsaved answer:
/// the entry in the map, its key and digest.
const ENTRY: usize = std::mem::size_of::<((String, String), Held)>() + 8 + 64 + 3 * ALLOCATION;

struct Held {
    trace: Arc<Trace>,
    /// What the judges kept of it; taken out by the call that judges it.
    judged: Option<Kept>,
    /// Changes on every append; an append that read another generation is refused.
    generation: u64,
    /// Chained digest of every request that built the trace.
    digest: String,
    used: Instant,
    unsaved: Option<Unsaved>,
    /// Memory of the trace (its footprint, grown with each append).
    trace_bytes: usize,
    /// Memory of what its judges and screen kept, as of the last decision.
    kept_bytes: usize,
    /// Memory of the key's strings and the owner's name.
    key_bytes: usize,
    /// The agent whose token first sent or extended it (none: only tokens of the whole
    /// project have); see [`claim`].
    owner: Option<String>,
    /// What it is counted as against the budget now: everything above and the unsaved
    /// request and answer.
    bytes: usize,
}

impl Held {
    /// Adds messages and tools to the trace (in place unless a call still reads it: then it
    /// is copied once) as a new generation; answers the bytes it added.
    fn extend(&mut self, new: tribunal_formats::continuation::Continued, digest: String) -> usize {
        let trace = Arc::make_mut(&mut self.trace);
        let mut added: usize = new.messages.iter().map(|m| m.footprint()).sum();
        trace.messages.extend(new.messages);
        // Tools the new items list join those the trace carries (a definition listed again
        // as it was is not repeated; one that differs is kept beside it, as it was given).
        for tool in new.tools {
            if !trace.tools.contains(&tool) {
                added += tool.footprint();
                trace.tools.push(tool);
            }
        }
        self.generation += 1;
        self.digest = digest;
        self.used = Instant::now();
        added
    }

    /// What it costs now.
    fn cost(&self) -> usize {
        ENTRY
            + self.key_bytes
            + self.trace_bytes
            + self.kept_bytes
            + self.unsaved.as_ref().map_or(0, Unsaved::bytes)
    }
}

/// A trace taken for one gate call.
pub struct Taken {
    pub trace: Arc<Trace>,
    pub digest: String,
    /// The digest of the held copy this call extended.
    pub prev: String,
    /// What the judges kept of it, when the trace only grew since.
    pub judged: Option<Kept>,
    /// Rows of traces let go to keep the byte budget, still to be stored.
    pub evicted: Vec<GateTraceRow>,
}

impl Taken {
    /// A held trace for this call, with what its judges kept.
    fn of(h: &mut Held) -> Taken {
        Taken {
            trace: h.trace.clone(),
            digest: h.digest.clone(),
            prev: h.digest.clone(),
            judged: h.judged.take(),
            evicted: Vec::new(),
        }
    }
}

/// Held traces by (project, trace id).
type Map = hashbrown::HashMap<(String, String), Held>;

/// A key of [`Map`] to look up without building one: hashes as the tuple of strings does.
#[derive(Hash)]
struct KeyRef<'a>(&'a str, &'a str);

impl hashbrown::Equivalent<(String, String)> for KeyRef<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

pub struct Sessions {
    map: Mutex<Map>,
    limit: usize,
    idle: Duration,
    /// Budget for the memory of everything held: traces, what their judges kept, their
    /// answers still to be stored.
    max_bytes: usize,
    /// Their sum now (changed only with `map` locked).
    bytes: AtomicUsize,
}

impl Sessions {
    pub fn new(limit: usize, idle: Duration, max_bytes: usize) -> Sessions {
        Sessions {
            map: Mutex::new(Map::default()),
            limit: limit.max(1),
            idle,
            max_bytes,
            bytes: AtomicUsize::new(0),
        }
    }

    /// Memory held now, as estimated: every held trace, what its judges kept, its answer
    /// still to be stored.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Counts `h` at what it costs now.
    fn recount(&self, h: &mut Held) {
        let now = h.cost();
        self.bytes.fetch_add(now, Ordering::Relaxed);
        self.bytes.fetch_sub(h.bytes, Ordering::Relaxed);
        h.bytes = now;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Traces held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Holds `trace` as sent whole (replacing what was held under its id); a trace larger
    /// than the whole budget is not held. Returns rows of traces let go to make room that
    /// still had to be stored, and what the judges kept of the trace held before when the
    /// new one only continues it (its messages start with the held ones).
    /// `agent` is the agent the caller's token is bound to: a trace held for another is
    /// refused (`trace_owned`), and left as it was. A trace not held here takes `stored`,
    /// the owner the store gave it (already checked against `agent`), else `agent`.
    pub fn hold(
        &self,
        project: &str,
        trace: Arc<Trace>,
        digest: String,
        (agent, stored): (Option<&str>, Option<String>),
    ) -> Result<(Vec<GateTraceRow>, Option<Kept>), ApiError> {
        let key = (project.to_owned(), trace.id.clone());
        let trace_bytes = trace.footprint();
        let mut map = self.lock();
        let mut owner = stored.or_else(|| agent.map(str::to_owned));
        if let Some(old) = map.get_mut(&key) {
            claim(&mut old.owner, agent, &trace.id)?;
            owner = old.owner.clone();
        }
        let key_bytes = key.0.heap() + key.1.heap() + owner.heap();
        let mut evicted = Vec::new();
        let (generation, judged, carried) = match map.remove(&key) {
            Some(old) => {
                self.bytes.fetch_sub(old.bytes, Ordering::Relaxed);
                let judged = old
                    .judged
                    .filter(|_| trace.messages.starts_with(&old.trace.messages));
                // A request kept as sent stays to be stored until this call's own replaces
                // it; what appends built is written from the trace they built, now.
                let carried = match old.unsaved {
                    Some(u) if u.request.is_some() => Some(u),
                    other => {
                        evicted.extend(row(&key.0, &old.trace, other));
                        None
                    }
                };
                (old.generation + 1, judged, carried)
            }
            None => (0, None, None),
        };
        let mut held = Held {
            trace,
            judged: None,
            generation,
            digest,
            used: Instant::now(),
            unsaved: carried,
            trace_bytes,
            // What the judges kept of the trace before goes on with this call, and is
            // counted again once it is kept.
            kept_bytes: 0,
            key_bytes,
            owner,
            bytes: 0,
        };
        let size = held.cost();
        if size > self.max_bytes {
            evicted.extend(row(&key.0, &held.trace, held.unsaved));
            return Ok((evicted, judged));
        }
        evicted.extend(self.make_room(&mut map, size));
        self.recount(&mut held);
        map.insert(key, held);
        Ok((evicted, judged))
    }

    /// Whether a trace is held.
    pub fn holds(&self, project: &str, trace_id: &str) -> bool {
        self.lock().contains_key(&KeyRef(project, trace_id))
    }

    /// Refuses (`trace_owned`) a token bound to `agent` that names a trace held here for
    /// another agent (spans or events sent for it); a trace not held is the store's to check.
    /// With `take`, a held trace no agent owns yet becomes `agent`'s (once its spans are
    /// stored, as the store's row did), so another agent cannot extend it at the gate.
    pub fn check_owner(
        &self,
        project: &str,
        trace_id: &str,
        (agent, take): (Option<&str>, bool),
    ) -> Result<(), ApiError> {
        let mut map = self.lock();
        let Some(h) = map.get_mut(&KeyRef(project, trace_id)) else {
            return Ok(());
        };
        if !take {
            return claim(&mut h.owner.clone(), agent, trace_id);
        }
        let owned = h.owner.is_some();
        claim(&mut h.owner, agent, trace_id)?;
        if !owned && h.owner.is_some() {
            h.key_bytes += h.owner.heap();
            self.recount(h);
        }
        Ok(())
    }

    /// Extends a held trace with the messages `import` makes of the request, when `offset`
    /// is its message count; `body` is the request, chained into the digest. `agent` is the
    /// agent the caller's token is bound to: another agent's trace is refused
    /// (`trace_owned`) before anything about it is said.
    pub fn append(
        &self,
        project: &str,
        trace_id: &str,
        (offset, body, agent): (usize, &[u8], Option<&str>),
        import: impl FnOnce(&Trace) -> Result<tribunal_formats::continuation::Continued, ApiError>,
    ) -> Result<Taken, ApiError> {
        let key = KeyRef(project, trace_id);
        let (snapshot, generation) = {
            let mut map = self.lock();
            let h = map.get_mut(&key).ok_or_else(|| not_held(trace_id))?;
            // Checked first, so another agent learns nothing of the trace; taken only once
            // the append is made.
            claim(&mut h.owner.clone(), agent, trace_id)?;
            (h.trace.clone(), h.generation)
        };
        let held = snapshot.messages.len();
        if offset != held {
            return Err(ApiError::new(
                Code::OffsetMismatch,
                format!(
                    "offset: the gate holds {held} messages of trace {trace_id:?}, the append starts at {offset}; send the messages from {held} on"
                ),
            ));
        }
        let new = import(&snapshot)?;
        drop(snapshot);
        let mut map = self.lock();
        let h = map.get_mut(&key).ok_or_else(|| not_held(trace_id))?;
        if h.generation != generation {
            let held = h.trace.messages.len();
            return Err(ApiError::new(
                Code::OffsetMismatch,
                format!(
                    "offset: trace {trace_id:?} changed during this call (another call extended it); it now holds {held} messages"
                ),
            ));
        }
        let owned = h.owner.is_some();
        claim(&mut h.owner, agent, trace_id)?;
        if !owned && h.owner.is_some() {
            h.key_bytes += h.owner.heap();
        }
        let prev = h.digest.clone();
        let digest = crate::audit::chain_hash(&h.digest, body);
        h.trace_bytes += h.extend(new, digest);
        self.recount(h);
        let mut taken = Taken::of(h);
        taken.prev = prev;
        // The least recently used go first: this trace was just used, so it goes only if it
        // alone is over the budget (its answer is then stored at once, see `unsaved`).
        taken.evicted = self.make_room(&mut map, 0);
        Ok(taken)
    }

    /// Lets go of `trace` when it is still the copy held under its id (no other call changed
    /// it since), without storing it: another server extended the trace in the store after
    /// this copy was read, so the next call reads it back from there.
    pub fn forget(&self, project: &str, trace: &Arc<Trace>) {
        let mut map = self.lock();
        let key = KeyRef(project, &trace.id);
        if map.get(&key).is_some_and(|h| Arc::ptr_eq(&h.trace, trace)) {
            if let Some(h) = map.remove(&key) {
                self.bytes.fetch_sub(h.bytes, Ordering::Relaxed);
            }
        }
    }

    /// Keeps what the judges kept of `trace` for the next call, when `trace` is still the
    /// one held under its id (no other call changed it meanwhile), counted against the
    /// budget. Returns rows of traces let go to make room that still had to be stored.
    pub fn keep_judged(
        &self,
        project: &str,
        trace: &Arc<Trace>,
        judged: Kept,
    ) -> Vec<GateTraceRow> {
        let mut map = self.lock();
        let Some(h) = map.get_mut(&KeyRef(project, &trace.id)) else {
            return Vec::new();
        };
        if !Arc::ptr_eq(&h.trace, trace) {
            return Vec::new();
        }
        h.kept_bytes = judged.bytes();
        h.judged = Some(judged);
        self.recount(h);
        self.make_room(&mut map, 0)
    }

    /// Marks a held trace as to be stored with this request and answer (at the next
    /// flush: a trace called again within it is written once). When the trace is not held
    /// (let go meanwhile by another call making room, or too large to hold), returns its row
    /// to store now; with it, rows of traces let go to make room for the answer.
    pub fn unsaved(
        &self,
        project: &str,
        trace: &Arc<Trace>,
        unsaved: Unsaved,
    ) -> Vec<GateTraceRow> {
        let mut map = self.lock();
        match map.get_mut(&KeyRef(project, &trace.id)) {
            Some(h) => {
                let mut unsaved = unsaved;
                if h.owner.is_some() {
                    unsaved.agent = h.owner.clone();
                }
                h.unsaved = Some(unsaved);
                self.recount(h);
                self.make_room(&mut map, 0)
            }
            None => row(project, trace, Some(unsaved)).into_iter().collect(),
        }
    }

    /// Lets go of idle traces, then of the least recently used ones: an eighth of the
    /// limit when the count limit is reached, and when `incoming` more bytes do not fit the
    /// budget, as many as it takes for them to fit in seven eighths of it (so the sort this
    /// takes is not made again on the next call). Returns the rows of those that still had
    /// to be stored.
    fn make_room(&self, map: &mut Map, incoming: usize) -> Vec<GateTraceRow> {
        let over_count = map.len() >= self.limit;
        if !over_count && self.bytes() + incoming <= self.max_bytes {
            return Vec::new();
        }
        let low = self.max_bytes - self.max_bytes / 8;
        let over_bytes = |b: usize| b + incoming > low;
        let now = Instant::now();
        let mut by_use: Vec<(bool, Instant, (String, String))> = map
            .iter()
            .map(|(k, h)| (now.duration_since(h.used) <= self.idle, h.used, k.clone()))
            .collect();
        // Idle ones first, then the least recently used.
        by_use.sort_unstable_by_key(|(fresh, used, _)| (*fresh, *used));
        let keep_count = if over_count {
            self.limit - (self.limit / 8).max(1)
        } else {
            usize::MAX
        };
        let mut rows = Vec::new();
        for (fresh, _, k) in by_use {
            if fresh && map.len() <= keep_count && !over_bytes(self.bytes()) {
                break;
            }
            if let Some(h) = map.remove(&k) {
                self.bytes.fetch_sub(h.bytes, Ordering::Relaxed);
                rows.extend(row(&k.0, &h.trace, h.unsaved));
            }
        }
        rows
    }

    /// Rows of every held trace with an unsaved request (marked saved), and lets go of
    /// idle traces.
    pub fn take_unsaved(&self) -> Vec<GateTraceRow> {
        let now = Instant::now();
        let mut todo = Vec::new();
        {
            let mut map = self.lock();
            map.retain(|k, h| {
                if let Some(u) = h.unsaved.take() {
                    todo.push((k.0.clone(), h.trace.clone(), u));
                }
                let keep = now.duration_since(h.used) <= self.idle;
                if keep {
                    self.recount(h);
                } else {
                    self.bytes.fetch_sub(h.bytes, Ordering::Relaxed);
                }
                keep
            });
        }
        // Written outside the lock: a trace is serialized here, not in a gate call.
        todo.into_iter()
            .filter_map(|(p, t, u)| row(&p, &t, Some(u)))
            .collect()
    }
}

/// Stores held traces marked unsaved every [`FLUSH_EVERY`], and what is left when the server
/// stops.
pub async fn flush_loop(state: Arc<crate::AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => false,
            _ = stop.changed() => true,
        };
        for row in state.sessions.take_unsaved() {
            state.store_gate_trace(row).await;
        }
        if stopping || *stop.borrow() {
            return;
        }
    }
}

/// Checks that a token bound to `agent` may act on a trace owned by `owner`, which it then
/// owns if no agent did. A token of the whole project (`agent` none) may act on any.
pub fn claim(
    owner: &mut Option<String>,
    agent: Option<&str>,
    trace_id: &str,
) -> Result<(), ApiError> {
    match (owner.as_deref(), agent) {
        (Some(owner), Some(agent)) if owner != agent => Err(ApiError::new(
            Code::TraceOwned,
            format!(
                "trace_id: trace {trace_id:?} was begun by another agent's token; a token bound to an agent sends and extends only its own agent's traces (give this trace another id)"
            ),
        )),
        (None, Some(agent)) => {
            *owner = Some(agent.to_owned());
            Ok(())
        }
        _ => Ok(()),
    }
}

fn not_held(trace_id: &str) -> ApiError {
    ApiError::new(
        Code::TraceNotHeld,
        format!(
            "trace_id: the gate does not hold trace {trace_id:?} (never sent, idle past the limit or let go); send it whole in \"trace\""
        ),
    )
}

/// The stored form of a held trace: its last request as sent, or for a trace grown by
/// appends a gate request with the whole trace in the normalized format, so listing and
/// replay read it like any other.
fn row(project: &str, trace: &Trace, unsaved: Option<Unsaved>) -> Option<GateTraceRow> {
    #[derive(serde::Serialize)]
    struct Stored<'a> {
        format: &'static str,
        trace: &'a Trace,
        pending: Option<&'a Pending>,
    }
    let u = unsaved?;
    let body = match u.request {
        Some(request) => request,
        None => {
            let body = Stored {
                format: "tribunal",
                trace,
                pending: u.pending.as_ref().and_then(|p| p.as_deref()),
            };
            serde_json::to_string(&body).unwrap_or_else(|e| {
                // Traces are plain data (string-keyed maps), which always serialize.
                tracing::error!(error = %e, trace = %trace.id, "a held trace did not serialize");
                String::new()
            })
        }
    };
    Some(GateTraceRow {
        project: project.to_owned(),
        trace_id: trace.id.clone(),
        body,
        decision: u.decision,
        result: u.result.into_text(),
        at: u.at,
        at_ms: u.at_ms,
        agent: u.agent,
        digest: Some(u.digest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tribunal_core::{Message, Role};

    fn trace(id: &str, n: usize) -> Arc<Trace> {
        Arc::new(Trace {
            id: id.into(),
            messages: (0..n)
                .map(|i| Message::new(format!("m{i}"), Role::User, "hi"))
                .collect(),
            ..Default::default()
        })
    }

    fn one(t: &Trace) -> Result<tribunal_formats::continuation::Continued, ApiError> {
        Ok(vec![Message::new(
            format!("m{}", t.messages.len()),
            Role::Assistant,
            "ok",
        )]
        .into())
    }

    #[test]
    fn a_trace_belongs_to_the_agent_whose_token_began_it() {
        let s = Sessions::new(10, Duration::from_secs(60), 1 << 20);
        let owned = |r: Result<Taken, ApiError>| r.err().map(|e| e.code);
        s.hold("p", trace("t", 2), "d".into(), (Some("a"), None))
            .unwrap();
        // Another agent's token may neither replace the trace nor extend it, and is not
        // told how many messages it holds (an offset it cannot know is refused the same).
        let e = s
            .hold("p", trace("t", 2), "d".into(), (Some("b"), None))
            .err()
            .unwrap();
        assert_eq!(e.code, Code::TraceOwned);
        assert!(!e.message.contains('2'), "{}", e.message);
        for offset in [2, 7] {
            assert_eq!(
                owned(s.append("p", "t", (offset, b"{}", Some("b")), one)),
                Some(Code::TraceOwned)
            );
        }
        // The owner's own and a project token's calls go on, on the owner's trace.
        assert_eq!(owned(s.append("p", "t", (2, b"{}", Some("a")), one)), None);
        assert_eq!(owned(s.append("p", "t", (3, b"{}", None), one)), None);
        s.hold("p", trace("t", 1), "d".into(), (None, None))
            .unwrap();
        assert_eq!(
            owned(s.append("p", "t", (1, b"{}", Some("b")), one)),
            Some(Code::TraceOwned)
        );
        // A trace a project token began is the first agent's to send or extend it.
        s.hold("p", trace("u", 1), "d".into(), (None, None))
            .unwrap();
        assert_eq!(owned(s.append("p", "u", (1, b"{}", Some("b")), one)), None);
        assert_eq!(
            s.hold("p", trace("u", 2), "d".into(), (Some("a"), None))
                .err()
                .map(|e| e.code),
            Some(Code::TraceOwned)
        );
        // An append that fails (here its offset) does not make its agent the owner.
        s.hold("p", trace("v", 1), "d".into(), (None, None))
            .unwrap();
        assert_eq!(
            owned(s.append("p", "v", (9, b"{}", Some("b")), one)),
            Some(Code::OffsetMismatch)
        );
        assert_eq!(owned(s.append("p", "v", (1, b"{}", Some("a")), one)), None);
        // A trace not held here keeps the owner the store gave it, whoever sends it.
        s.hold("p", trace("w", 1), "d".into(), (None, Some("a".into())))
            .unwrap();
        assert_eq!(
            owned(s.append("p", "w", (1, b"{}", Some("b")), one)),
            Some(Code::TraceOwned)
        );
        // The owner goes with its stored row.
        let u = sent("request u");
        assert!(s.unsaved("p", &trace("u", 2), u).is_empty());
        let rows = s.take_unsaved();
        assert_eq!(rows[0].agent.as_deref(), Some("b"));
    }

    #[test]
    fn appends_extend_in_place_and_check_the_offset() {
        let s = Sessions::new(10, Duration::from_secs(60), 1 << 20);
        s.hold("p", trace("t", 2), "d0".into(), (None, None))
            .unwrap();
        let a = s.append("p", "t", (2, b"{}", None), one).unwrap();
        assert_eq!(a.trace.messages.len(), 3);
        assert_ne!(a.digest, "d0");
        let first = Arc::as_ptr(&a.trace);
        drop(a);
        let b = s.append("p", "t", (3, b"{}", None), one).unwrap();
        assert_eq!(Arc::as_ptr(&b.trace), first, "extended without a copy");
        // A retry of the same call (offset 3 again) is refused, the trace unchanged.
        let e = s.append("p", "t", (3, b"{}", None), one).err().unwrap();
        assert_eq!(e.code, Code::OffsetMismatch);
        assert!(e.message.contains("holds 4 messages"), "{}", e.message);
        // Another project's trace of the same id is not visible.
        assert_eq!(
            s.append("q", "t", (4, b"{}", None), one)
                .err()
                .unwrap()
                .code,
            Code::TraceNotHeld
        );
        // A failed import changes nothing.
        let e = s
            .append("p", "t", (4, b"{}", None), |_| {
                Err(ApiError::request("bad"))
            })
            .err()
            .unwrap();
        assert_eq!(e.code, Code::InvalidRequest);
        assert_eq!(
            s.append("p", "t", (4, b"{}", None), one)
                .unwrap()
                .trace
                .messages
                .len(),
            5
        );
    }

    /// Evaluators without judges or policies: which one left a state marks it.
    fn evaluators() -> &'static [Arc<tribunal_engine::Evaluator>] {
        static EVALUATORS: std::sync::OnceLock<Vec<Arc<tribunal_engine::Evaluator>>> =
            std::sync::OnceLock::new();
        EVALUATORS.get_or_init(|| {
            (0..5)
                .map(|_| {
                    tribunal_engine::Evaluator::new(
                        Vec::new(),
                        tribunal_policy::PolicySet::new(Vec::new(), &[], Default::default())
                            .unwrap(),
                        Default::default(),
                    )
                })
                .collect()
        })
    }

    /// What a session kept after deciding with evaluator `mark`.
    fn judged(mark: usize) -> Kept {
        let mut session = tribunal_engine::Session::new(trace("k", 1));
        session.decide(&evaluators()[mark], Default::default());
        session.into_parts().1.unwrap()
    }

    fn mark(j: Option<Kept>) -> Option<usize> {
        let j = j?;
        evaluators().iter().position(|e| j.is_for(e))
    }

    #[test]
    fn judge_states_follow_the_trace_only_while_it_grows() {
        let s = Sessions::new(10, Duration::from_secs(60), 1 << 20);
        let (_, kept) = s
            .hold("p", trace("t", 2), "d".into(), (None, None))
            .unwrap();
        assert!(kept.is_none(), "nothing kept of a new trace");
        let a = s.append("p", "t", (2, b"{}", None), one).unwrap();
        assert!(a.judged.is_none());
        s.keep_judged("p", &a.trace, judged(1));
        drop(a);
        // The next append finds them; they are taken out for that call.
        let mut b = s.append("p", "t", (3, b"{}", None), one).unwrap();
        assert_eq!(mark(b.judged.take()), Some(1));
        s.keep_judged("p", &b.trace, judged(2));
        // Sent whole again with one more message: it continues the held trace.
        let mut longer = (*b.trace).clone();
        drop(b);
        longer.messages.push(Message::new("m4", Role::User, "more"));
        let (_, kept) = s
            .hold("p", Arc::new(longer.clone()), "d".into(), (None, None))
            .unwrap();
        assert_eq!(mark(kept), Some(2));
        // Sent whole with an earlier message changed: the states are dropped.
        let held = s.append("p", "t", (5, b"{}", None), one).unwrap().trace;
        s.keep_judged("p", &held, judged(3));
        let mut edited = (*held).clone();
        edited.messages[1].content = "changed".into();
        let (_, kept) = s
            .hold("p", Arc::new(edited), "d".into(), (None, None))
            .unwrap();
        assert!(
            kept.is_none(),
            "a trace that does not continue the held one starts over"
        );
        // States of a trace replaced meanwhile are not kept for the new one.
        s.keep_judged("p", &held, judged(4));
        assert!(s
            .append("p", "t", (6, b"{}", None), one)
            .unwrap()
            .judged
            .is_none());
        // Nor are they seen by another project.
        s.hold("q", trace("t", 1), "d".into(), (None, None))
            .unwrap();
        let q = s.append("q", "t", (1, b"{}", None), one).unwrap();
        assert!(q.judged.is_none());
    }

    #[test]
    fn unsaved_appends_are_taken_once_and_evicted_ones_are_not_lost() {
        let s = Sessions::new(8, Duration::from_secs(60), 1 << 20);
        s.hold("p", trace("t", 1), "d".into(), (None, None))
            .unwrap();
        s.append("p", "t", (1, b"{}", None), one).unwrap();
        let u = Unsaved {
            request: None,
            pending: None,
            decision: "allow".into(),
            result: StoredAnswer::Text("{}".into()),
            at: "now".into(),
            at_ms: 1,
            agent: None,
            digest: "d2".into(),
        };
        let held = s.append("p", "t", (2, b"{}", None), one).unwrap().trace;
        assert!(s.unsaved("p", &held, u.clone()).is_empty());
        let rows = s.take_unsaved();
        assert_eq!(rows.len(), 1);
        let body: serde_json::Value = serde_json::from_str(&rows[0].body).unwrap();
        assert_eq!(body["trace"]["messages"].as_array().unwrap().len(), 3);
        assert!(s.take_unsaved().is_empty(), "taken once");
        // Filling the sessions lets the oldest go; its unsaved append comes back as a row.
        assert!(s.unsaved("p", &held, u.clone()).is_empty());
        let mut evicted = Vec::new();
        for i in 0..20 {
            evicted.extend(
                s.hold("p", trace(&format!("x{i}"), 1), "d".into(), (None, None))
                    .unwrap()
                    .0,
            );
        }
        assert!(s.len() <= 8);
        assert!(!s.holds("p", "t"));
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].trace_id, "t");
        // An answer for a trace let go meanwhile comes back as a row to store at once.
        let late = s.unsaved("p", &held, u).pop().expect("a row");
        assert_eq!(late.trace_id, "t");
    }

    fn sent(request: &str) -> Unsaved {
        Unsaved {
            request: Some(request.into()),
            pending: None,
            decision: "allow".into(),
            result: StoredAnswer::Text("{}".into()),
            at: "now".into(),
            at_ms: 1,
            agent: None,
            digest: "d".into(),
        }
    }

    #[test]
    fn a_trace_sent_whole_again_and_again_is_stored_once_as_last_sent() {
        let s = Sessions::new(8, Duration::from_secs(60), 64 << 10);
        for n in 1..=3 {
            let t = trace("w", n);
            assert!(s
                .hold("p", t.clone(), "d".into(), (None, None))
                .unwrap()
                .0
                .is_empty());
            assert!(s.unsaved("p", &t, sent(&format!("request {n}"))).is_empty());
        }
        let rows = s.take_unsaved();
        assert_eq!(rows.len(), 1, "written once");
        assert_eq!(rows[0].body, "request 3", "as sent, not re-serialized");
        assert!(s.take_unsaved().is_empty());
        // A request not marked yet (its call still judging) leaves the last one to store.
        s.unsaved("p", &trace("w", 3), sent("request 3"));
        s.hold("p", trace("w", 4), "d".into(), (None, None))
            .unwrap();
        assert_eq!(s.take_unsaved()[0].body, "request 3");
        // Appends after a whole request: the grown trace is stored normalized.
        s.unsaved("p", &trace("w", 4), sent("request 4"));
        let grown = s.append("p", "w", (4, b"{}", None), one).unwrap().trace;
        let mut u = sent("");
        u.request = None;
        s.unsaved("p", &grown, u.clone());
        let rows = s.take_unsaved();
        let body: serde_json::Value = serde_json::from_str(&rows[0].body).unwrap();
        assert_eq!(body["trace"]["messages"].as_array().unwrap().len(), 5);
        // Sent whole after appends: what the appends built is stored at once.
        s.unsaved("p", &grown, u);
        let (evicted, _) = s
            .hold("p", trace("w", 6), "d".into(), (None, None))
            .unwrap();
        assert_eq!(evicted.len(), 1);
        assert!(evicted[0].body.contains("\"format\":\"tribunal\""));
        // A trace too large to hold is stored at once, as sent.
        let big = sized("big", 100 << 10);
        assert!(s
            .hold("p", big.clone(), "d".into(), (None, None))
            .unwrap()
            .0
            .is_empty());
        let row = s
            .unsaved("p", &big, sent("big request"))
            .pop()
            .expect("a row");
        assert_eq!(row.body, "big request");
    }

    /// A trace of one message of `content` bytes.
    fn sized(id: &str, content: usize) -> Arc<Trace> {
        Arc::new(Trace {
            id: id.into(),
            messages: vec![Message::new("m0", Role::User, "x".repeat(content))],
            ..Default::default()
        })
    }

    impl Sessions {
        /// What everything held costs, counted afresh.
        fn recounted(&self) -> usize {
            self.lock().values().map(Held::cost).sum()
        }
    }

    #[test]
    fn held_bytes_stay_within_the_budget() {
        let cost = {
            let s = Sessions::new(10, Duration::from_secs(60), 1 << 30);
            s.hold("p", sized("t0", 3000), "d".into(), (None, None))
                .unwrap();
            s.bytes()
        };
        assert!(cost > 3000, "the text counts: {cost}");
        let max = cost * 7 / 2;
        let s = Sessions::new(1000, Duration::from_secs(60), max);
        for i in 0..50 {
            s.hold("p", sized(&format!("t{i}"), 3000), "d".into(), (None, None))
                .unwrap();
            assert!(s.bytes() <= max, "{}", s.bytes());
        }
        assert_eq!(s.len(), 3);
        // The most recent stay.
        assert!(s.holds("p", "t49") && s.holds("p", "t47") && !s.holds("p", "t46"));
        // Appends count too: the least recently used trace goes to make room, its unsaved
        // request comes back to be stored.
        assert!(s
            .unsaved("p", &sized("t47", 3000), sent("request t47"))
            .is_empty());
        let taken = s
            .append("p", "t49", (1, b"{}", None), |_| {
                Ok(vec![Message::new("m1", Role::Assistant, "y".repeat(2500))].into())
            })
            .unwrap();
        assert!(s.bytes() <= max, "{}", s.bytes());
        assert!(
            s.holds("p", "t49") && s.holds("p", "t48") && !s.holds("p", "t47"),
            "{} {} {} {} of {max}",
            s.holds("p", "t49"),
            s.holds("p", "t48"),
            s.holds("p", "t47"),
            s.bytes()
        );
        assert_eq!(taken.evicted.len(), 1);
        assert_eq!(taken.evicted[0].body, "request t47");
        assert_eq!(s.bytes(), s.recounted());
        // Replacing a trace counts it once; a trace larger than the budget is not held.
        for _ in 0..3 {
            s.hold("p", sized("u", 100), "d".into(), (None, None))
                .unwrap();
        }
        assert!(s.bytes() <= max);
        assert_eq!(s.bytes(), s.recounted());
        s.hold("p", sized("huge", 4 * cost), "d".into(), (None, None))
            .unwrap();
        assert!(!s.holds("p", "huge"));
        // Answers waiting for the next flush count until they are stored.
        let before = s.bytes();
        assert!(s
            .unsaved("p", &sized("u", 100), sent(&"r".repeat(500)))
            .is_empty());
        assert!(s.bytes() >= before + 500, "{before} {}", s.bytes());
        assert_eq!(s.take_unsaved().len(), 1);
        assert_eq!(s.bytes(), before);
    }

    /// A trace of `calls` assistant tool calls, each with `size` bytes of arguments.
    fn with_calls(id: &str, calls: usize, size: usize) -> Trace {
        let mut t = Trace {
            id: id.into(),
            messages: vec![Message::new("m0", Role::User, "go")],
            ..Default::default()
        };
        for i in 0..calls {
            let mut m = Message::new(format!("m{}", i + 1), Role::Assistant, "");
            m.tool_calls.push(tribunal_core::ToolCall {
                id: format!("c{i}"),
                name: "write".into(),
                arguments: serde_json::json!({"n": i, "text": "z".repeat(size)}),
                span_id: None,
            });
            t.messages.push(m);
        }
        t
    }

    #[test]
    fn what_judges_keep_counts_against_the_budget() {
        // The default judges: `repeated_calls` keeps the canonical arguments of every call,
        // about as large as the trace itself.
        let evaluator = tribunal_engine::Evaluator::new(
            tribunal_judges::default_judges(),
            tribunal_policy::PolicySet::new(Vec::new(), &[], Default::default()).unwrap(),
            Default::default(),
        );
        let trace_cost = {
            let s = Sessions::new(10, Duration::from_secs(60), 1 << 30);
            s.hold(
                "p",
                Arc::new(with_calls("t", 20, 2000)),
                "d".into(),
                (None, None),
            )
            .unwrap();
            s.bytes()
        };
        let max = trace_cost * 10;
        let s = Sessions::new(10_000, Duration::from_secs(60), max);
        let mut kept_sizes = Vec::new();
        for i in 0..40 {
            let t = Arc::new(with_calls(&format!("t{i}"), 20, 2000));
            let (_, kept) = s.hold("p", t.clone(), "d".into(), (None, None)).unwrap();
            assert!(kept.is_none());
            let mut session = tribunal_engine::Session::resume(t.clone(), None);
            session.decide(&evaluator, Default::default());
            let (t, kept) = session.into_parts();
            let kept = kept.expect("the judges kept their states");
            kept_sizes.push(kept.bytes());
            s.keep_judged("p", &t, kept);
            assert!(s.bytes() <= max, "{} > {max}", s.bytes());
            assert_eq!(s.bytes(), s.recounted());
        }
        let kept = kept_sizes[0];
        assert!(
            kept * 2 > trace_cost,
            "the states are large: {kept} against a trace of {trace_cost}"
        );
        // Counted with their states, fewer traces fit than the trace bytes alone allow.
        assert!(s.len() < 10, "{} held", s.len());
        assert!(s.len() >= 3, "{} held", s.len());
        // The states follow their trace: an append takes them out, a new decision puts
        // back larger ones, counted again.
        let last = "t39";
        let mut taken = s
            .append("p", last, (21, b"{}", None), |t| {
                Ok(with_calls("x", 22, 2000).messages[t.messages.len()..]
                    .to_vec()
                    .into())
            })
            .unwrap();
        let mut session =
            tribunal_engine::Session::resume(taken.trace.clone(), taken.judged.take());
        session.decide(&evaluator, Default::default());
        let (t, kept) = session.into_parts();
        let kept = kept.unwrap();
        assert!(kept.bytes() > kept_sizes[39], "it grew with the trace");
        s.keep_judged("p", &t, kept);
        assert!(s.bytes() <= max);
        assert_eq!(s.bytes(), s.recounted());
    }
}
