//! `fixtures`, `eval`, `import-spider`, `dataset`: data and measurement on the command line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use sqlora_data::dataset::{self, Example};
use sqlora_eval::report::{evaluate, read_predictions, EvalItem, EvalOptions};
use sqlora_eval::skeleton::skeleton;

use crate::paths;

#[derive(Subcommand)]
pub enum FixturesCmd {
    /// Build `OUT/<domain>/<domain>.sqlite` (and variants) for every domain.
    Build {
        /// Output folder (Spider layout). Default: $SQLORA_FIXTURES or $SQLORA_HOME/fixtures.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Databases per domain: the base plus N-1 variants (same schema, other data) for
        /// test-suite evaluation.
        #[arg(long, default_value_t = 3)]
        variants: usize,
        /// The datasets folder. Default: $SQLORA_DATASETS or ./datasets.
        #[arg(long)]
        datasets: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum DatasetCmd {
    /// Check every domain: gold queries parse, pass the guard and execute; split sizes;
    /// leakage between splits; unseen-skeleton share of test; difficulty labels.
    Check {
        #[arg(long)]
        datasets: Option<PathBuf>,
        /// Rewrite difficulty labels that disagree with the Spider hardness rules.
        #[arg(long)]
        fix_difficulty: bool,
    },
}

/// How predictions are scored: shared by `eval` with given and with generated predictions.
#[derive(Args, Clone)]
pub struct ScoreArgs {
    /// Write one JSON line per example (id, correct, error, ...).
    #[arg(long)]
    pub details: Option<PathBuf>,
    /// The training set: report EX separately for seen and unseen SQL skeletons.
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Keep DISTINCT (the official evaluator strips it from both queries by default).
    #[arg(long)]
    pub keep_distinct: bool,
    /// Per-query time limit in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// One JSON object on standard output (field `ex`: overall EX in [0, 1]).
    #[arg(long)]
    pub json: bool,
}

impl ScoreArgs {
    /// The evaluator's options (reads `--train` for its skeletons).
    pub fn options(&self) -> Result<EvalOptions> {
        let train_skeletons = match &self.train {
            Some(p) => Some(
                dataset::read_jsonl(p)?
                    .iter()
                    .map(|e| skeleton(&e.sql))
                    .collect::<HashSet<String>>(),
            ),
            None => None,
        };
        Ok(EvalOptions {
            keep_distinct: self.keep_distinct,
            timeout: Duration::from_millis(self.timeout_ms),
            train_skeletons,
        })
    }
}

#[derive(Args)]
pub struct ImportSpiderArgs {
    /// Spider's tables.json.
    #[arg(long)]
    pub tables: PathBuf,
    /// Examples (Spider dev.json/train_spider.json, or BIRD's).
    #[arg(long)]
    pub examples: PathBuf,
    /// The folder holding <db_id>/<db_id>.sqlite.
    #[arg(long)]
    pub db_dir: PathBuf,
    /// Output folder (one sub-folder per database, sqlora layout).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn fixtures(cmd: FixturesCmd) -> Result<ExitCode> {
    match cmd {
        FixturesCmd::Build {
            out,
            variants,
            datasets,
        } => {
            if variants == 0 {
                bail!("--variants must be at least 1 (the base database)");
            }
            let datasets = datasets.unwrap_or_else(paths::datasets_dir);
            let out = out.unwrap_or_else(paths::fixtures_dir);
            let built = sqlora_data::fixtures::build_all(&datasets, &out, variants)
                .with_context(|| format!("building fixtures from {}", datasets.display()))?;
            if built.is_empty() {
                bail!("no domains found in {}", datasets.display());
            }
            for b in &built {
                println!(
                    "{}  {}",
                    &b.checksum[..16.min(b.checksum.len())],
                    b.path.display()
                );
            }
            let domains: HashSet<&str> = built.iter().map(|b| b.domain.as_str()).collect();
            println!(
                "built {} databases for {} domains in {}",
                built.len(),
                domains.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn dataset(cmd: DatasetCmd) -> Result<ExitCode> {
    match cmd {
        DatasetCmd::Check {
            datasets,
            fix_difficulty,
        } => {
            let datasets = datasets.unwrap_or_else(paths::datasets_dir);
            let domains = dataset::list_domains(&datasets)?;
            if domains.is_empty() {
                bail!("no domains found in {}", datasets.display());
            }
            let tmp = tempdir_in_home("check")?;
            let mut problems = 0usize;
            for d in &domains {
                let built = sqlora_data::fixtures::build_domain(d, &tmp, 1)?;
                let base = built
                    .first()
                    .map(|b| b.path.clone())
                    .context("fixture build produced no database")?;
                let report = sqlora_data::check::check_domain(d, &base, fix_difficulty)?;
                for (name, s) in &report.stats {
                    println!("{name}: {}", serde_json::to_string(s)?);
                }
                for i in &report.issues {
                    problems += 1;
                    println!(
                        "  {} {} [{}] {}",
                        i.domain,
                        i.id.as_deref().unwrap_or("-"),
                        i.kind,
                        i.message
                    );
                }
            }
            let _ = std::fs::remove_dir_all(&tmp);
            if problems == 0 {
                println!("ok: {} domains, no problems", domains.len());
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{problems} problems");
                Ok(ExitCode::from(1))
            }
        }
    }
}

fn tempdir_in_home(tag: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("sqlora-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Scores the predictions in `predictions` against the gold examples of `dataset`.
pub fn eval(dataset: &Path, predictions: &Path, db_dir: &Path, a: &ScoreArgs) -> Result<ExitCode> {
    let examples: Vec<Example> = dataset::read_jsonl(dataset)?;
    let items: Vec<EvalItem> = examples.iter().map(Example::eval_item).collect();
    let predictions = read_predictions(predictions, &items)?;
    let opts = a.options()?;
    let report = evaluate(&items, &predictions, db_dir, &opts)?;
    if let Some(path) = &a.details {
        let mut text = String::new();
        for d in &report.details {
            text.push_str(&serde_json::to_string(d)?);
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(obj) = v.as_object_mut() {
            obj.remove("details");
        }
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn import_spider(a: ImportSpiderArgs) -> Result<ExitCode> {
    let s = sqlora_data::spider::import_spider(&a.tables, &a.examples, &a.db_dir, &a.out)?;
    for (db, what) in &s.notes {
        eprintln!("note on {db}: {what}");
    }
    for (what, why) in &s.skipped {
        eprintln!("skipped {what}: {why}");
    }
    println!(
        "imported {} examples over {} databases into {}",
        s.examples,
        s.databases,
        s.out_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
