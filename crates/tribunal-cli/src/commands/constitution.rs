//! `tribunal constitution critique`: a model critiques each trace's final reply against the
//! principles of a constitution and revises it (critique → revision, Bai et al. 2022); each
//! revision becomes a preference record (revision ≻ original). With `--compare` the input is
//! a preference file and the model says which of each pair's two replies follows a principle
//! better, asked in both orders. Every step (principle, prompt, answer, error) goes to the run
//! log; only usable answers make records.

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use tribunal_core::terminal::escape as for_terminal;
use tribunal_core::{ModelUsage, Role, Trace};
use tribunal_formats::InputFormat;
use tribunal_judges::llm::constitution::{
    compare_request, critique_request, parse_choice, parse_critique, parse_revision,
    revision_request, Critic, CriticSettings,
};
use tribunal_prefs::{Constitution, Format, PreferenceRecord, Turns};

#[derive(Subcommand)]
pub enum ConstitutionCommand {
    /// Critique and revise each trace's final reply against the constitution's principles,
    /// writing revision ≻ original preference records (JSONL); with `--compare`, ask which
    /// reply of each pair in a preference file follows each principle better, in both orders.
    /// Exit 1 when any model call failed or gave an unusable answer (its step makes no record).
    Critique(CritiqueArgs),
    /// Check a constitution file and print its name, version and principles.
    Show(ShowArgs),
    /// What was built from an older version of this constitution: stored preference records
    /// and reward models (`--model`) are listed as current or stale. Exit 1 when anything is
    /// stale.
    Status(StatusArgs),
}

#[derive(Args)]
pub struct StatusArgs {
    pub constitution: PathBuf,
    /// Reward model files (`tribunal rm train -o …`) to check.
    #[arg(long)]
    pub model: Vec<PathBuf>,
    /// The store whose preference records are checked.
    #[arg(long)]
    pub db: Option<PathBuf>,
}

#[derive(Args)]
pub struct ShowArgs {
    pub constitution: PathBuf,
}

#[derive(Args)]
pub struct CritiqueArgs {
    /// The constitution (TOML).
    pub constitution: PathBuf,
    /// Traces (any format `tribunal eval` reads), or with `--compare` a preference file.
    pub input: PathBuf,
    /// Where the preference records go (the record's JSONL); standard output by default.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// A JSONL log of every step: principle, prompt sent, answer, critique, revision, error.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Compare the two replies of each pair in a preference file instead.
    #[arg(long)]
    pub compare: bool,
    /// The preference file's format with `--compare`.
    #[arg(long, default_value = "jsonl", value_parser = super::prefs::parse_format)]
    pub format: Format,
    /// Principles drawn per item (default: every principle).
    #[arg(long)]
    pub principles: Option<usize>,
    /// Seed of the principle draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// `provider:/model` (default `TRIBUNAL_JUDGE_MODEL`, else `openai:/gpt-4o-mini`).
    #[arg(long)]
    pub model: Option<String>,
    /// An OpenAI-compatible server, or another Anthropic/Ollama host.
    #[arg(long)]
    pub base_url: Option<String>,
    /// The environment variable holding the API key (default: the provider's).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Per attempt, in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Retries after the first attempt.
    #[arg(long)]
    pub max_retries: Option<u32>,
}

pub fn run(cmd: ConstitutionCommand) -> Result<u8> {
    match cmd {
        ConstitutionCommand::Show(a) => {
            let c = load(&a.constitution)?;
            // The name and the principles are the file's text: escaped for the terminal, one
            // principle a line.
            println!("{} {}", for_terminal(&c.name), c.version);
            for p in &c.principles {
                println!("{}\t{}", for_terminal(&p.id), for_terminal(&p.text));
            }
            Ok(0)
        }
        ConstitutionCommand::Critique(a) => critique(a),
        ConstitutionCommand::Status(a) => status(a),
    }
}

/// Current and stale things built from a constitution.
fn status(a: StatusArgs) -> Result<u8> {
    let c = load(&a.constitution)?;
    println!("{} {}", for_terminal(&c.name), c.version);
    let mut stale = false;
    let cfg = super::load_config(None)?;
    let location = super::store_location(&cfg, a.db.as_deref());
    let rows = super::runtime()?.block_on(async {
        let store = tribunal_store::Store::open(&location).await?;
        let rows = store.preferences(Some("constitution"), None).await;
        store.close().await;
        rows
    })?;
    let (mut current, mut old) = (0usize, std::collections::BTreeMap::<String, usize>::new());
    for row in &rows {
        let r: PreferenceRecord = serde_json::from_str(&row.record).with_context(|| {
            format!(
                "the stored record {} is not a preference record",
                row.content_id
            )
        })?;
        if r.provenance.constitution.as_deref() != Some(c.name.as_str()) {
            continue;
        }
        if c.is_stale(&r) {
            *old.entry(
                r.provenance
                    .constitution_version
                    .clone()
                    .unwrap_or_default(),
            )
            .or_default() += 1;
        } else {
            current += 1;
        }
    }
    println!("stored preference records: {current} current");
    for (version, n) in &old {
        stale = true;
        println!(
            "stored preference records: {n} stale (made by version {})",
            for_terminal(version)
        );
    }
    for path in &a.model {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let m = tribunal_prefs::RewardModel::load(std::io::BufReader::new(file))
            .with_context(|| format!("reading {}", path.display()))?;
        let versions = m
            .training
            .as_ref()
            .and_then(|t| t.constitutions.get(&c.name))
            .cloned()
            .unwrap_or_default();
        let older: Vec<String> = versions
            .iter()
            .filter(|(v, _)| **v != c.version)
            .map(|(v, n)| format!("{n} records of version {}", for_terminal(v)))
            .collect();
        let shown = path.display().to_string();
        let shown = for_terminal(&shown);
        if versions.is_empty() {
            println!("{shown}: trained on no record of this constitution");
        } else if older.is_empty() {
            println!("{shown}: current");
        } else {
            stale = true;
            println!("{shown}: stale, trained on {}", older.join(", "));
        }
    }
    Ok(u8::from(stale))
}

pub fn load(path: &Path) -> Result<Constitution> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Constitution::parse(&path.display().to_string(), &text)?)
}

/// What a run did, for the summary line.
#[derive(Default)]
struct Counts {
    items: usize,
    checks: usize,
    violations: usize,
    records: usize,
    inconsistent: usize,
    failed: usize,
    skipped: usize,
}

struct Run {
    constitution: Constitution,
    critic: Critic,
    model: String,
    usage: ModelUsage,
    log: Option<BufWriter<File>>,
    counts: Counts,
    records: Vec<PreferenceRecord>,
}

impl Run {
    fn log(&mut self, entry: Value) -> Result<()> {
        if let Some(w) = &mut self.log {
            serde_json::to_writer(&mut *w, &entry)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

fn critique(a: CritiqueArgs) -> Result<u8> {
    let constitution = load(&a.constitution)?;
    match a.principles {
        Some(0) => anyhow::bail!("--principles: at least one principle must be drawn"),
        Some(n) if n > constitution.principles.len() => anyhow::bail!(
            "--principles: {n} asked, but {} has {} (draw at most that many, or leave --principles out for all)",
            a.constitution.display(),
            constitution.principles.len()
        ),
        _ => {}
    }
    let critic = Critic::new(
        "constitution",
        &CriticSettings {
            model: a.model.clone(),
            base_url: a.base_url.clone(),
            api_key_env: a.api_key_env.clone(),
            timeout_ms: a.timeout_ms,
            max_retries: a.max_retries,
            ..CriticSettings::default()
        },
    )?;
    let log = match &a.log {
        Some(p) => Some(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let model = critic.model();
    let mut run = Run {
        usage: ModelUsage {
            model: model.clone(),
            ..ModelUsage::default()
        },
        constitution,
        critic,
        model,
        log,
        counts: Counts::default(),
        records: Vec::new(),
    };
    let read_errors = if a.compare {
        compare_pairs(&mut run, &a)?
    } else {
        critique_traces(&mut run, &a)?
    };
    if let Some(w) = &mut run.log {
        w.flush()?;
    }
    if run.counts.items == 0 && read_errors == 0 {
        anyhow::bail!(
            "{}: no {} in it",
            a.input.display(),
            if a.compare {
                "preference pair"
            } else {
                "trace"
            }
        );
    }
    match &a.output {
        Some(p) => {
            let f = File::create(p).with_context(|| format!("creating {}", p.display()))?;
            tribunal_prefs::export(&run.records, Format::Jsonl, BufWriter::new(f))
                .with_context(|| format!("writing {}", p.display()))?;
        }
        None => {
            tribunal_prefs::export(&run.records, Format::Jsonl, std::io::stdout().lock())?;
        }
    }
    let c = &run.counts;
    eprintln!(
        "constitution {} ({}), model {}: {} items, {} principle checks, {} {}, {} preference records{}, {} failed steps, {} items without a reply; {} model calls ({} from cache), {} input and {} output tokens",
        run.constitution.name,
        run.constitution.short_version(),
        run.model,
        c.items,
        c.checks,
        c.violations,
        if a.compare { "comparisons" } else { "violations" },
        c.records,
        if a.compare {
            format!(" ({} inconsistent between the two orders)", c.inconsistent)
        } else {
            String::new()
        },
        c.failed,
        c.skipped,
        run.usage.calls,
        run.usage.cached_calls,
        run.usage.input_tokens,
        run.usage.output_tokens,
    );
    Ok(u8::from(c.failed > 0 || read_errors > 0))
}

/// The final reply of a trace and the user message it answers.
fn final_reply(t: &Trace) -> Option<(&str, &str)> {
    let at = t
        .messages
        .iter()
        .rposition(|m| m.role == Role::Assistant && !m.content.trim().is_empty())?;
    let prompt = t.messages[..at]
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.as_str())
        .unwrap_or("");
    Some((prompt, t.messages[at].content.as_str()))
}

fn critique_traces(run: &mut Run, a: &CritiqueArgs) -> Result<usize> {
    let mut traces = Vec::new();
    let mut errors = 0usize;
    tribunal_formats::reader::read_paths(std::slice::from_ref(&a.input), |item| {
        match item.and_then(|i| i.import(InputFormat::Auto)) {
            Ok(ts) => traces.extend(ts),
            Err(e) => {
                eprintln!("{e}");
                errors += 1;
            }
        }
        true
    })?;
    for t in &traces {
        run.counts.items += 1;
        let Some((prompt, reply)) = final_reply(t) else {
            run.counts.skipped += 1;
            run.log(json!({"trace_id": t.id, "skipped": "no assistant reply with text"}))?;
            continue;
        };
        let ids = vec![t.id.clone()];
        let principles: Vec<_> = run
            .constitution
            .sample(a.principles, a.seed, &t.id)
            .into_iter()
            .cloned()
            .collect();
        for p in &principles {
            run.counts.checks += 1;
            let request = critique_request(p, prompt, reply);
            let mut entry = json!({
                "trace_id": t.id,
                "principle": p.id,
                "constitution_version": run.constitution.version,
                "model": run.model,
                "critique_prompt": request.user,
            });
            let critique = run.critic.ask(&request, parse_critique, &mut run.usage);
            let c = match critique {
                Ok((c, _)) => c,
                Err(e) => {
                    run.counts.failed += 1;
                    entry["error"] = json!(format!("critique: {e}"));
                    if let Some(answer) = e.answer {
                        entry["critique_answer"] = json!(answer);
                    }
                    run.log(entry)?;
                    continue;
                }
            };
            entry["critique"] = json!(c.text);
            entry["violates"] = json!(c.violates);
            if !c.violates {
                run.log(entry)?;
                continue;
            }
            run.counts.violations += 1;
            let request = revision_request(p, prompt, reply, &c.text);
            entry["revision_prompt"] = json!(request.user);
            match run.critic.ask(&request, parse_revision, &mut run.usage) {
                Ok((revised, _)) => {
                    entry["revision"] = json!(revised);
                    if revised.trim() == reply.trim() {
                        entry["note"] = json!("the revision is the original reply: no pair");
                    } else {
                        let r = run.constitution.revision_pair(
                            &run.model,
                            &p.id,
                            Turns::Text(prompt.to_owned()),
                            reply,
                            &revised,
                            &ids,
                        );
                        entry["record"] = json!(r.content_id());
                        run.records.push(r);
                        run.counts.records += 1;
                    }
                }
                Err(e) => {
                    run.counts.failed += 1;
                    entry["error"] = json!(format!("revision: {e}"));
                    if let Some(answer) = e.answer {
                        entry["revision_answer"] = json!(answer);
                    }
                }
            }
            run.log(entry)?;
        }
    }
    Ok(errors)
}

fn compare_pairs(run: &mut Run, a: &CritiqueArgs) -> Result<usize> {
    let imported = super::prefs::read(&a.input, a.format)?;
    for (i, pair) in imported.records.iter().enumerate() {
        run.counts.items += 1;
        let key = pair.content_id();
        let prompt = pair.prompt.text();
        let (ra, rb) = (pair.chosen.text(), pair.rejected.text());
        let principles: Vec<_> = run
            .constitution
            .sample(a.principles, a.seed, &key)
            .into_iter()
            .cloned()
            .collect();
        for p in &principles {
            run.counts.checks += 1;
            // A is the file's first reply (its `chosen`); asked with A shown first, then B.
            let mut prefers_a = [false; 2];
            let mut failed = false;
            for (k, a_first) in [true, false].into_iter().enumerate() {
                let (first, second) = if a_first { (&ra, &rb) } else { (&rb, &ra) };
                let request = compare_request(p, &prompt, first, second);
                let mut entry = json!({
                    "pair": key,
                    "line": i + 1,
                    "principle": p.id,
                    "constitution_version": run.constitution.version,
                    "model": run.model,
                    "order_shown": if a_first { "a_first" } else { "b_first" },
                    "prompt": request.user,
                });
                match run.critic.ask(&request, parse_choice, &mut run.usage) {
                    Ok((choice, answer)) => {
                        prefers_a[k] = choice.first == a_first;
                        entry["answer"] = json!(answer);
                        entry["prefers"] = json!(if prefers_a[k] { "A" } else { "B" });
                    }
                    Err(e) => {
                        failed = true;
                        entry["error"] = json!(e.message);
                        if let Some(answer) = e.answer {
                            entry["answer"] = json!(answer);
                        }
                    }
                }
                run.log(entry)?;
            }
            if failed {
                run.counts.failed += 1;
                continue;
            }
            run.counts.violations += 1;
            let r = run.constitution.comparison(
                &run.model,
                &p.id,
                pair.prompt.clone(),
                pair.chosen.clone(),
                pair.rejected.clone(),
                prefers_a[0],
                prefers_a[1],
                &pair.provenance.source_trace_ids,
            );
            run.counts.inconsistent += usize::from(r.provenance.inconsistent);
            run.records.push(r);
            run.counts.records += 1;
        }
    }
    Ok(imported.rejected.len())
}
