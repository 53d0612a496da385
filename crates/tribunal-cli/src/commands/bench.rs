//! `tribunal bench`: benchmark results scored with their official metrics (τ-bench pass^k,
//! τ²-bench, GAIA accuracy, WebArena success rate) and broken down per task. The scoring is
//! `tribunal-bench`'s; this module picks the loader, the scorer and the output.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};
use tribunal_bench::{gaia, tau, tau2, webarena, ScoreError};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// τ-bench results (a JSON array of runs): pass^1..pass^n and the average reward, as the
    /// reference prints them, then which tasks fail consistently and which are flaky.
    Tau(TauArgs),
    /// τ²-bench results: a results.json, or a directory with results.json and simulations/.
    Tau2(TauArgs),
    /// A GAIA submission (JSON Lines of task_id, model_answer) against the answers: overall
    /// and per-level accuracy.
    Gaia(GaiaArgs),
    /// WebArena results against the task configs: success rate, per evaluator type.
    Webarena(WebArenaArgs),
}

#[derive(Args)]
pub struct TauArgs {
    /// The results file (or, for tau2, directory).
    pub results: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args)]
pub struct GaiaArgs {
    /// The submission: one {"task_id", "model_answer", "reasoning_trace"?} per line.
    pub submission: PathBuf,
    /// The ground truth: GAIA's metadata.jsonl ({"task_id", "Final answer", "Level"} per line).
    #[arg(long)]
    pub answers: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args)]
pub struct WebArenaArgs {
    /// Results: JSON Lines, a JSON array or a directory of JSON files, one
    /// {"task_id", "answer", "url", "score"?, "cost"?} per task.
    pub results: PathBuf,
    /// The task configs: the config_files/ directory or one JSON array of configs.
    #[arg(long)]
    pub tasks: PathBuf,
    /// Grade fuzzy_match answers with this model (`provider:/model`, e.g. openai:/gpt-4o-mini);
    /// without it they are reported as not scored.
    #[arg(long)]
    pub grader_model: Option<String>,
    /// Base URL of the grader's server (an OpenAI-compatible one, for instance).
    #[arg(long)]
    pub grader_base_url: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args)]
pub struct OutputArgs {
    /// Output: table (the reference's own lines, then the breakdown) or json.
    #[arg(long, short = 'f', default_value = "table")]
    pub format: String,
}

pub fn run(cmd: BenchCommand) -> Result<u8> {
    match cmd {
        BenchCommand::Tau(a) => {
            check_format(&a.output)?;
            let runs = tau::load(&a.results)?;
            let report = tau::score(&runs).map_err(|e| score_error(&a.results, e))?;
            print(&a.output, &report, || report.table())
        }
        BenchCommand::Tau2(a) => {
            check_format(&a.output)?;
            let results = tau2::load(&a.results)?;
            let report = tau2::score(&results);
            print(&a.output, &report, || report.table())
        }
        BenchCommand::Gaia(a) => {
            check_format(&a.output)?;
            let answers = gaia::load_answers(&a.answers)?;
            let submission = gaia::load_submission(&a.submission)?;
            let report =
                gaia::score(&answers, &submission).map_err(|e| score_error(&a.answers, e))?;
            print(&a.output, &report, || report.table())
        }
        BenchCommand::Webarena(a) => {
            check_format(&a.output)?;
            let tasks = webarena::load_tasks(&a.tasks)?;
            let results = webarena::load_results(&a.results)?;
            let grader = match &a.grader_model {
                Some(model) => Some(ModelGrader::new(model, a.grader_base_url.as_deref())?),
                None => None,
            };
            let report = webarena::score(
                &tasks,
                &results,
                grader.as_ref().map(|g| g as &dyn webarena::LlmGrader),
            )
            .map_err(|e| score_error(&a.results, e))?;
            print(&a.output, &report, || report.table())
        }
    }
}

/// Score errors name their own place, except "nothing to score", which names the file.
fn score_error(path: &Path, e: ScoreError) -> anyhow::Error {
    match e {
        ScoreError::Empty => anyhow::anyhow!("{}: {e}", path.display()),
        other => anyhow::anyhow!("{other}"),
    }
}

fn check_format(o: &OutputArgs) -> Result<()> {
    if !matches!(o.format.as_str(), "table" | "json") {
        bail!("--format: expected table or json, found {:?}", o.format);
    }
    Ok(())
}

fn print(o: &OutputArgs, report: &impl Serialize, table: impl FnOnce() -> String) -> Result<u8> {
    if o.format == "json" {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", table());
    }
    Ok(0)
}

/// WebArena's fuzzy_match graded by a model: the prediction is quoted as untrusted data and
/// the answer must be one of correct / partially_correct / incorrect.
struct ModelGrader {
    client: tribunal_llm::LlmClient,
    runtime: tokio::runtime::Runtime,
}

impl ModelGrader {
    fn new(model: &str, base_url: Option<&str>) -> Result<ModelGrader> {
        let uri = tribunal_llm::ModelUri::parse(model)
            .map_err(|e| anyhow::anyhow!("--grader-model: {e}"))?;
        let mut config = tribunal_llm::ClientConfig::new(uri);
        if let Some(url) = base_url {
            config = config.with_base_url(url.to_owned());
        }
        let client = tribunal_llm::LlmClient::new(config)
            .map_err(|e| anyhow::anyhow!("--grader-model: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(ModelGrader { client, runtime })
    }
}

impl webarena::LlmGrader for ModelGrader {
    fn grade(
        &self,
        question: &str,
        reference: &str,
        prediction: &str,
    ) -> std::result::Result<webarena::Grade, tribunal_bench::GraderError> {
        use tribunal_judges::llm::{output::OutputType, prompt::quote};
        let ty = OutputType::OneOf(vec![
            "correct".into(),
            "partially_correct".into(),
            "incorrect".into(),
        ]);
        let user = format!(
            "Grade the predicted answer to the question against the reference answer. \
             `correct`: it states the same facts as the reference (wording may differ); \
             `partially_correct`: some but not all; `incorrect`: otherwise.\n\n{}\n\n{}\n\n{}",
            quote("question", question, 4000),
            quote("reference", reference, 4000),
            quote("prediction", prediction, 4000),
        );
        let request = tribunal_llm::ChatRequest::new(user)
            .with_system(tribunal_judges::llm::prompt::SYSTEM_PROMPT)
            .with_schema(tribunal_llm::ResponseSchema::new("grade", ty.schema()))
            .with_temperature(0.0);
        let answer = self
            .runtime
            .block_on(self.client.chat(&request))
            .map_err(|e| tribunal_bench::GraderError(e.to_string()))?;
        let verdict = tribunal_judges::llm::parse_verdict(&answer.text, &ty)
            .map_err(|e| tribunal_bench::GraderError(e.to_string()))?;
        Ok(match verdict.result.as_str() {
            Some("correct") => webarena::Grade::Correct,
            Some("partially_correct") => webarena::Grade::PartiallyCorrect,
            _ => webarena::Grade::Incorrect,
        })
    }
}
