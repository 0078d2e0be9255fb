//! `eval` with a model: generate the predictions (base model or an adapter, optionally
//! truncated to a lower rank), score them with the Spider test-suite semantics, report EX
//! overall and by difficulty, the valid-SQL and execution-error rates and the latency per
//! question, and optionally write report.json, predictions.jsonl and a chart.
//!
//! With `--predictions` it scores a file exactly like the plain `eval` command.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use sqlora_data::dataset::{self, Example};
use sqlora_eval::hardness::Difficulty;
use sqlora_eval::report::{evaluate, EvalItem, EvalOptions, Report};
use sqlora_eval::skeleton::skeleton;

use crate::cmd_model::{load_adapter, load_model, ModelArg};
use crate::predict::{db_in_dir, predict, progress_bar, PredictOptions, Prediction};

#[derive(Args)]
pub struct EvalModelArgs {
    /// Gold examples (JSONL: id, db_id, question, sql, difficulty).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Databases in the Spider layout: DIR/<db_id>/*.sqlite (every file is part of the test
    /// suite; DIR/<db_id>/<db_id>.sqlite, else the first, gives the prompt's schema).
    #[arg(long)]
    pub db_dir: PathBuf,
    /// Score these predictions (JSONL {id, sql}, or one query a line) instead of generating.
    #[arg(long, visible_alias = "pred", conflicts_with_all = ["adapter", "base"])]
    pub predictions: Option<PathBuf>,
    /// Generate the predictions with this PEFT-format LoRA adapter on the base model.
    #[arg(long, conflicts_with = "base")]
    pub adapter: Option<PathBuf>,
    /// Generate the predictions with the base model alone.
    #[arg(long)]
    pub base: bool,
    /// Truncate the adapter to this rank first (DyLoRA: A[:b], B[:, :b]).
    #[arg(long, requires = "adapter")]
    pub rank: Option<usize>,
    /// Questions generated together.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Most new tokens per question.
    #[arg(long, default_value_t = 160)]
    pub max_tokens: usize,
    /// Only the first N examples of the dataset.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Do not start the answers with `SELECT` (see `ask --no-prime`).
    #[arg(long)]
    pub no_prime: bool,
    /// Generate until EOS or --max-tokens even after the SQL statement has ended (by default
    /// a question stops at a `;` or blank line outside quotes; the extracted SQL is the same).
    #[arg(long)]
    pub no_early_stop: bool,
    #[command(flatten)]
    pub model: ModelArg,
    /// Write report.json, predictions.jsonl and ex_by_difficulty.svg into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
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

/// Runs `eval`: scores `--predictions`, or generates predictions with `--adapter` / `--base`.
pub fn run(a: &EvalModelArgs) -> Result<ExitCode> {
    if let Some(pred) = &a.predictions {
        if a.limit.is_some() || a.out.is_some() {
            bail!("--limit and --out apply to generated predictions (--adapter or --base)");
        }
        return crate::cmd_data::eval(crate::cmd_data::EvalArgs {
            dataset: a.dataset.clone(),
            predictions: pred.clone(),
            db_dir: a.db_dir.clone(),
            details: a.details.clone(),
            train: a.train.clone(),
            keep_distinct: a.keep_distinct,
            timeout_ms: a.timeout_ms,
            json: a.json,
        });
    }
    if a.adapter.is_none() && !a.base {
        bail!("give --predictions FILE to score, or --adapter PATH / --base to generate them");
    }
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let mut examples: Vec<Example> = dataset::read_jsonl(&a.dataset)?;
    if let Some(n) = a.limit {
        examples.truncate(n);
    }
    if examples.is_empty() {
        bail!("no examples to evaluate in {}", a.dataset.display());
    }
    // Every database must exist before minutes of generation.
    let mut ids: Vec<&str> = examples.iter().map(|e| e.db_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in &ids {
        db_in_dir(&a.db_dir, id)?;
    }

    let m = load_model(&a.model)?;
    let adapter = match &a.adapter {
        Some(p) => {
            let full = load_adapter(&m, p)?;
            Some(match a.rank {
                Some(b) => full
                    .truncate_rank(b)
                    .with_context(|| format!("truncating {} to rank {b}", p.display()))?,
                None => full,
            })
        }
        None => None,
    };
    let opts = PredictOptions {
        batch_size: a.batch,
        max_new_tokens: a.max_tokens,
        prime: !a.no_prime,
        stop_at_statement_end: !a.no_early_stop,
        ..PredictOptions::default()
    };
    let bar = progress_bar(examples.len());
    let t0 = Instant::now();
    let db_dir = a.db_dir.clone();
    let preds = predict(
        &m,
        adapter.as_ref(),
        &examples,
        |e: &Example| db_in_dir(&db_dir, &e.db_id).unwrap_or_else(|_| db_dir.join(&e.db_id)),
        &opts,
        Some(&bar),
    )?;
    bar.finish_and_clear();
    let generate_s = t0.elapsed().as_secs_f64();

    let items: Vec<EvalItem> = examples
        .iter()
        .map(|e| EvalItem {
            id: e.id.clone(),
            db_id: e.db_id.clone(),
            gold: e.sql.clone(),
            difficulty: Some(e.difficulty),
        })
        .collect();
    let sqls: Vec<String> = preds.iter().map(|p| p.sql.clone()).collect();
    let train_skeletons = match &a.train {
        Some(p) => Some(
            dataset::read_jsonl(p)?
                .iter()
                .map(|e| skeleton(&e.sql))
                .collect::<HashSet<String>>(),
        ),
        None => None,
    };
    let eopts = EvalOptions {
        keep_distinct: a.keep_distinct,
        timeout: Duration::from_millis(a.timeout_ms),
        train_skeletons,
    };
    let report = evaluate(&items, &sqls, &a.db_dir, &eopts)?;

    let latency_ms = preds.iter().map(|p| p.latency_ms).sum::<f64>() / preds.len() as f64;
    let source = json!({
        "model": m.source.display().to_string(),
        "adapter": a.adapter.as_ref().map(|p| p.display().to_string()),
        "rank": adapter.as_ref().map(|ad| ad.config.r),
        "dataset": a.dataset.display().to_string(),
        "questions": preds.len(),
        "batch": a.batch,
        "max_tokens": a.max_tokens,
        "primed": !a.no_prime,
        "early_stop": !a.no_early_stop,
    });
    let mut summary = serde_json::to_value(&report)?;
    if let Some(obj) = summary.as_object_mut() {
        obj.remove("details");
        obj.insert("mean_latency_ms".into(), json!(latency_ms));
        obj.insert("generate_s".into(), json!(generate_s));
        obj.insert(
            "questions_per_s".into(),
            json!(preds.len() as f64 / generate_s.max(1e-9)),
        );
        obj.insert("run".into(), source);
    }

    if let Some(path) = &a.details {
        write_details(path, &report, &preds)?;
    }
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let rp = dir.join("report.json");
        std::fs::write(&rp, serde_json::to_string_pretty(&summary)? + "\n")
            .with_context(|| format!("writing {}", rp.display()))?;
        write_details(&dir.join("predictions.jsonl"), &report, &preds)?;
        let title = match (&a.adapter, adapter.as_ref()) {
            (Some(p), Some(ad)) => format!(
                "EX by difficulty: {} (rank {})",
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                ad.config.r
            ),
            _ => "EX by difficulty: base model".to_string(),
        };
        ex_chart(&dir.join("ex_by_difficulty.svg"), &report, &title)?;
    }

    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", report.to_table());
        println!("mean latency        {latency_ms:.0} ms per question");
        println!(
            "generation          {generate_s:.1} s for {} questions ({:.2} questions/s, batch {})",
            preds.len(),
            preds.len() as f64 / generate_s.max(1e-9),
            a.batch
        );
        if let Some(dir) = &a.out {
            println!("wrote {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One JSON line per example: the evaluator's detail plus the raw answer and latency.
fn write_details(path: &Path, report: &Report, preds: &[Prediction]) -> Result<()> {
    let mut text = String::new();
    for (d, p) in report.details.iter().zip(preds) {
        let mut v = serde_json::to_value(d)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("raw".into(), json!(p.raw));
            obj.insert("new_tokens".into(), json!(p.new_tokens));
            obj.insert("latency_ms".into(), json!(p.latency_ms));
        }
        text.push_str(&serde_json::to_string(&v)?);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The bars of the chart: each difficulty present, in Spider order, then `all`.
fn chart_bars(report: &Report) -> Vec<(String, f64, usize)> {
    let mut bars: Vec<(String, f64, usize)> = Difficulty::ALL
        .iter()
        .map(|d| d.as_str())
        .chain(["unknown"])
        .filter_map(|level| {
            report
                .by_difficulty
                .get(level)
                .map(|b| (level.to_string(), b.ex, b.total))
        })
        .collect();
    bars.push(("all".to_string(), report.ex, report.total));
    bars
}

/// An SVG bar chart of EX (%) by difficulty.
fn ex_chart(path: &Path, report: &Report, title: &str) -> Result<()> {
    use plotters::prelude::*;
    let bars = chart_bars(report);
    let n = bars.len();
    let err = |e: String| anyhow::anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..100f64)
        .map_err(|e| err(e.to_string()))?;
    let labels: Vec<String> = bars
        .iter()
        .map(|(name, _, total)| format!("{name} ({total})"))
        .collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("execution accuracy (%)")
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (name, ex, _))| {
            let color = if name == "all" {
                RGBColor(90, 90, 90)
            } else {
                RGBColor(52, 101, 164)
            };
            let x = i as f64;
            Rectangle::new([(x - 0.35, 0.0), (x + 0.35, ex * 100.0)], color.filled())
        }))
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, ex, _))| {
            Text::new(
                format!("{:.1}", ex * 100.0),
                (i as f64 - 0.15, (ex * 100.0 + 6.0).min(98.0)),
                ("sans-serif", 14),
            )
        }))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlora_eval::report::Bucket;
    use std::collections::BTreeMap;

    fn report() -> Report {
        let mut by_difficulty = BTreeMap::new();
        by_difficulty.insert(
            "hard".to_string(),
            Bucket {
                total: 4,
                correct: 1,
                ex: 0.25,
            },
        );
        by_difficulty.insert(
            "easy".to_string(),
            Bucket {
                total: 2,
                correct: 2,
                ex: 1.0,
            },
        );
        Report {
            ex: 0.5,
            total: 6,
            correct: 3,
            valid_sql_rate: 1.0,
            exec_error_rate: 0.0,
            by_difficulty,
            by_domain: BTreeMap::new(),
            seen_skeleton: None,
            unseen_skeleton: None,
            details: Vec::new(),
        }
    }

    #[test]
    fn bars_follow_spider_order_then_all() {
        let bars = chart_bars(&report());
        let names: Vec<&str> = bars.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(names, vec!["easy", "hard", "all"]);
        assert_eq!(bars[1].1, 0.25);
        assert_eq!(bars[2].2, 6);
    }

    #[test]
    fn the_chart_is_an_svg_with_one_bar_per_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.svg");
        ex_chart(&path, &report(), "EX by difficulty").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for label in ["easy (2)", "hard (4)", "all (6)", "25.0", "100.0"] {
            assert!(svg.contains(label), "{label} missing");
        }
    }
}
