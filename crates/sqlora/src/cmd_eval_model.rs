//! `eval` with a model: generate the predictions (base model or an adapter, optionally
//! truncated to a lower rank), score them with the Spider test-suite semantics, report EX
//! overall and by difficulty, the valid-SQL and execution-error rates and the latency per
//! question, and optionally write report.json, predictions.jsonl and a chart.
//!
//! With `--predictions` it scores a file exactly like the plain `eval` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use sqlora_data::dataset::{self, Example};
use sqlora_eval::hardness::Difficulty;
use sqlora_eval::report::{evaluate, EvalItem, EvalOptions, Report};

use sqlora_model::lora::LoraAdapter;
use sqlora_model::LoadedModel;

use crate::cmd_data::ScoreArgs;
use crate::cmd_model::{load_adapter, load_model, ModelArg};
use crate::predict::{db_in_dir, predict};
use sqlora_sqlgen::{progress_bar, FewShot, PredictOptions, Prediction};

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
    /// Truncate the adapter to this rank first (DyLoRA: A[:b], B[:, :b]). Several ranks
    /// (`--rank 1,2,4,8`) evaluate each in turn and report EX against rank.
    #[arg(
        long,
        requires = "adapter",
        conflicts_with = "base",
        value_delimiter = ','
    )]
    pub rank: Vec<usize>,
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
    /// Prompt templates: a folder with `system.jinja` and `user.jinja` (see `prompts/README.md`);
    /// default: the bundled ones.
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// Generate freely instead of constraining each answer, token by token, to one SQLite
    /// query over the database's tables and columns.
    #[arg(long)]
    pub no_constrain: bool,
    /// Candidates per question (default 1: greedy). With more: beam search's n-best, each
    /// run on the question's database, the prediction is the result most of them agree on
    /// (as `/v1/query` with `candidates`).
    #[arg(long, default_value_t = 1)]
    pub candidates: usize,
    /// Beams to try when a greedy prediction fails the guard or SQLite: the first beam-search
    /// candidate that passes replaces it (as `ask` and `/v1/query` do; 0: keep the failed
    /// prediction).
    #[arg(long, value_name = "BEAMS", default_value_t = sqlora_sqlgen::DEFAULT_FALLBACK)]
    pub fallback: usize,
    /// Show the K training examples whose questions are most similar to each question (BM25)
    /// in its prompt, after the schema (0: the zero-shot prompt). A question never gets
    /// itself (same id or same words). Default: what `ask` and `serve` do, 3 when there is a
    /// pool (`--examples`, or the human_train.jsonl and train.jsonl next to the dataset, never
    /// the dataset itself), else 0.
    #[arg(long, value_name = "K")]
    pub examples_k: Option<usize>,
    /// The examples for --examples-k (JSONL with question and sql; repeatable, the files make
    /// one pool; default: human_train.jsonl and train.jsonl next to --dataset, the service's
    /// pool of a bundled domain). Never the evaluated file.
    #[arg(long, value_name = "FILE")]
    pub examples: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArg,
    /// Write report.json, predictions.jsonl and ex_by_difficulty.svg into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub score: ScoreArgs,
}

/// Runs `eval`: scores `--predictions`, or generates predictions with `--adapter` / `--base`.
pub fn run(a: &EvalModelArgs) -> Result<ExitCode> {
    if let Some(pred) = &a.predictions {
        if a.limit.is_some() || a.out.is_some() {
            bail!("--limit and --out apply to generated predictions (--adapter or --base)");
        }
        return crate::cmd_data::eval(&a.dataset, pred, &a.db_dir, &a.score);
    }
    if a.adapter.is_none() && !a.base {
        bail!("give --predictions FILE to score, or --adapter PATH / --base to generate them");
    }
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if !a.rank.is_empty() && a.adapter.is_none() {
        bail!("--rank truncates an adapter: give --adapter PATH");
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

    let few_shot = eval_examples(a)?;
    let m = load_model(&a.model)?;
    let full = match &a.adapter {
        Some(p) => Some(load_adapter(&m, p)?),
        None => None,
    };
    let eopts = a.score.options()?;

    let ranks: Vec<Option<usize>> = if a.rank.is_empty() {
        vec![None]
    } else {
        a.rank.iter().map(|&b| Some(b)).collect()
    };
    let several = ranks.len() > 1;
    let mut runs: Vec<(Option<usize>, Report, serde_json::Value)> = Vec::new();
    for rank in ranks {
        let adapter = match (&full, rank) {
            (Some(ad), Some(b)) => Some(ad.truncate_rank(b).with_context(|| {
                format!(
                    "truncating {} to rank {b}",
                    a.adapter
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                )
            })?),
            (Some(ad), None) => Some(ad.clone()),
            (None, _) => None,
        };
        let out_dir = match (&a.out, rank) {
            (Some(d), Some(b)) if several => Some(d.join(format!("rank_{b}"))),
            (d, _) => d.clone(),
        };
        let (report, summary) = one_run(
            a,
            &m,
            adapter.as_ref(),
            few_shot.as_ref(),
            &examples,
            &eopts,
            out_dir.as_deref(),
        )?;
        if !a.score.json {
            if several {
                println!("== rank {} ==", rank.unwrap_or_default());
            }
            print!("{}", report.to_table());
            println!(
                "latency             {:.0} ms per question (mean; p50 {:.0}, p95 {:.0})",
                summary["mean_latency_ms"].as_f64().unwrap_or(0.0),
                summary["p50_latency_ms"].as_f64().unwrap_or(0.0),
                summary["p95_latency_ms"].as_f64().unwrap_or(0.0)
            );
            println!(
                "generation          {:.1} s for {} questions ({:.2} questions/s, batch {})",
                summary["generate_s"].as_f64().unwrap_or(0.0),
                report.total,
                summary["questions_per_s"].as_f64().unwrap_or(0.0),
                a.batch
            );
            if let Some(dir) = &out_dir {
                println!("wrote {}", dir.display());
            }
            println!();
        }
        runs.push((rank, report, summary));
    }

    if several {
        let by_rank: Vec<(usize, f64)> = runs
            .iter()
            .map(|(r, rep, _)| (r.unwrap_or_default(), rep.ex))
            .collect();
        if let Some(dir) = &a.out {
            let summaries: Vec<&serde_json::Value> = runs.iter().map(|r| &r.2).collect();
            let rp = dir.join("ex_by_rank.json");
            std::fs::write(&rp, serde_json::to_string_pretty(&summaries)? + "\n")
                .with_context(|| format!("writing {}", rp.display()))?;
            rank_chart(&dir.join("ex_by_rank.svg"), &by_rank)?;
        }
        if a.score.json {
            let summaries: Vec<&serde_json::Value> = runs.iter().map(|r| &r.2).collect();
            println!("{}", serde_json::to_string(&json!({"ranks": summaries}))?);
        } else {
            println!("rank      EX   valid  exec_err");
            for (r, rep, _) in &runs {
                println!(
                    "{:>4}  {:>6.3}  {:>6.3}  {:>8.3}",
                    r.unwrap_or_default(),
                    rep.ex,
                    rep.valid_sql_rate,
                    rep.exec_error_rate
                );
            }
        }
    } else if a.score.json {
        if let Some((_, _, summary)) = runs.first() {
            println!("{}", serde_json::to_string(summary)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The retrieved examples of `--examples-k`: from `--examples`, else the pool files next to
/// `--dataset` ([`crate::examples::pool_in`]); never the evaluated file itself. Without
/// `--examples-k`, the service's default ([`crate::examples::DEFAULT_EXAMPLES_K`]) when there
/// is such a pool, else none. Read before the model loads, so a bad file fails fast.
fn eval_examples(a: &EvalModelArgs) -> Result<Option<FewShot>> {
    if a.examples_k == Some(0) {
        return Ok(None);
    }
    let same = |x: &Path, y: &Path| match (x.canonicalize(), y.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => x == y,
    };
    let pool = if a.examples.is_empty() {
        // The default never retrieves from the evaluated file (evaluating train.jsonl).
        let dir = a.dataset.parent().unwrap_or(Path::new("."));
        crate::examples::pool_in(dir)
            .into_iter()
            .filter(|p| !same(p, &a.dataset))
            .collect()
    } else {
        a.examples.clone()
    };
    let k = match (pool.is_empty(), a.examples_k) {
        (false, k) => k.unwrap_or(crate::examples::DEFAULT_EXAMPLES_K),
        (true, None) => return Ok(None),
        (true, Some(k)) => bail!(
            "--examples-k {k}: no training examples next to {}; give them with --examples FILE.jsonl",
            a.dataset.display()
        ),
    };
    if let Some(p) = pool.iter().find(|p| same(p, &a.dataset)) {
        bail!(
            "--examples {} is the evaluated dataset: retrieve from the training split",
            p.display()
        );
    }
    crate::examples::few_shot(&pool, k)
}

/// Generates and scores one configuration (model + adapter at one rank); writes its files
/// into `out_dir` when given. Returns the report and its JSON summary (no details).
#[allow(clippy::too_many_arguments)]
fn one_run(
    a: &EvalModelArgs,
    m: &LoadedModel,
    adapter: Option<&LoraAdapter>,
    few_shot: Option<&FewShot>,
    examples: &[Example],
    eopts: &EvalOptions,
    out_dir: Option<&Path>,
) -> Result<(Report, serde_json::Value)> {
    let opts = PredictOptions {
        batch_size: a.batch,
        max_new_tokens: a.max_tokens,
        prime: !a.no_prime,
        stop_at_statement_end: !a.no_early_stop,
        prompts: crate::paths::prompt_builder(a.prompts.as_deref())?,
        constrain: (!a.no_constrain).then(|| sqlora_sqlgen::Constrainer::new(m)),
        candidates: a.candidates.max(1),
        fallback: a.fallback,
        examples: few_shot.cloned(),
    };
    let bar = progress_bar(examples.len());
    let t0 = Instant::now();
    let db_dir = a.db_dir.clone();
    let preds = predict(
        m,
        adapter,
        examples,
        |e: &Example| db_in_dir(&db_dir, &e.db_id).unwrap_or_else(|_| db_dir.join(&e.db_id)),
        &opts,
        Some(&bar),
    )?;
    bar.finish_and_clear();
    let generate_s = t0.elapsed().as_secs_f64();
    let items: Vec<EvalItem> = examples.iter().map(Example::eval_item).collect();
    let sqls: Vec<String> = preds.iter().map(|p| p.sql.clone()).collect();
    let report = evaluate(&items, &sqls, &a.db_dir, eopts)?;

    let latency_ms = preds.iter().map(|p| p.latency_ms).sum::<f64>() / preds.len().max(1) as f64;
    let mut sorted: Vec<f64> = preds.iter().map(|p| p.latency_ms).collect();
    sorted.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * q).round() as usize])
    };
    let source = json!({
        "model": m.source.display().to_string(),
        "adapter": a.adapter.as_ref().map(|p| p.display().to_string()),
        "rank": adapter.map(|ad| ad.config.r),
        "dataset": a.dataset.display().to_string(),
        "questions": preds.len(),
        "batch": a.batch,
        "max_tokens": a.max_tokens,
        "primed": !a.no_prime,
        "early_stop": !a.no_early_stop,
        "constrained": !a.no_constrain,
        "candidates": a.candidates.max(1),
        "fallback": a.fallback,
        "prompts": a.prompts.as_ref().map(|p| p.display().to_string()),
        "examples_k": few_shot.map_or(0, |f| f.k),
        "examples": few_shot.map(|f| crate::examples::show(&f.sources)),
    });
    let mut summary = serde_json::to_value(&report)?;
    if let Some(obj) = summary.as_object_mut() {
        obj.remove("details");
        obj.insert("mean_latency_ms".into(), json!(latency_ms));
        obj.insert("p50_latency_ms".into(), json!(quantile(0.5)));
        obj.insert("p95_latency_ms".into(), json!(quantile(0.95)));
        obj.insert("generate_s".into(), json!(generate_s));
        obj.insert(
            "questions_per_s".into(),
            json!(preds.len() as f64 / generate_s.max(1e-9)),
        );
        obj.insert("run".into(), source);
    }

    if let Some(path) = &a.score.details {
        write_details(path, &report, &preds)?;
    }
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let rp = dir.join("report.json");
        std::fs::write(&rp, serde_json::to_string_pretty(&summary)? + "\n")
            .with_context(|| format!("writing {}", rp.display()))?;
        write_details(&dir.join("predictions.jsonl"), &report, &preds)?;
        let title = match (&a.adapter, adapter) {
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
    Ok((report, summary))
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
            if !p.candidates.is_empty() {
                obj.insert("candidates".into(), serde_json::to_value(&p.candidates)?);
            }
            if !p.examples.is_empty() {
                obj.insert("examples".into(), json!(p.examples));
            }
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

/// An SVG line chart of EX (%) against the adapter's rank (DyLoRA truncation).
fn rank_chart(path: &Path, points: &[(usize, f64)]) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: String| anyhow::anyhow!("drawing {}: {e}", path.display());
    let max_rank = points.iter().map(|p| p.0).max().unwrap_or(1).max(1);
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("EX against rank (DyLoRA truncation)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..(max_rank as f64 + 1.0), 0f64..100f64)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("rank")
        .y_desc("execution accuracy (%)")
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let color = RGBColor(52, 101, 164);
    let pts: Vec<(f64, f64)> = points
        .iter()
        .map(|&(r, ex)| (r as f64, ex * 100.0))
        .collect();
    chart
        .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(pts.iter().map(|&(x, y)| {
            Text::new(
                format!("{y:.1}"),
                (x, (y + 6.0).min(98.0)),
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

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: EvalModelArgs,
    }

    fn parse(args: &[&str]) -> EvalModelArgs {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("eval").chain(args.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn arguments_need_a_source_of_predictions() {
        use clap::Parser;
        let a = parse(&["--dataset", "d.jsonl", "--db-dir", "x", "--base"]);
        assert!(a.base && a.rank.is_empty() && a.batch == 8 && a.max_tokens == 160);
        let a = parse(&[
            "--dataset",
            "d",
            "--db-dir",
            "x",
            "--adapter",
            "p",
            "--rank",
            "1,2,4",
        ]);
        assert_eq!(a.rank, vec![1, 2, 4]);
        let a = parse(&["--dataset", "d", "--db-dir", "x", "--pred", "p.jsonl"]);
        assert_eq!(a.predictions, Some(PathBuf::from("p.jsonl")));
        // Conflicts and requirements are refused by the parser.
        for bad in [
            vec![
                "--dataset",
                "d",
                "--db-dir",
                "x",
                "--base",
                "--adapter",
                "p",
            ],
            vec!["--dataset", "d", "--db-dir", "x", "--base", "--rank", "2"],
            vec!["--dataset", "d", "--db-dir", "x", "--pred", "p", "--base"],
        ] {
            let args = std::iter::once("eval").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
        // Neither predictions nor a model: a clear error before anything is loaded.
        let err = run(&parse(&["--dataset", "d", "--db-dir", "x"])).unwrap_err();
        assert!(err.to_string().contains("--adapter"), "{err}");
    }

    /// With the real model: a fresh adapter (B = 0) changes nothing, at any truncated rank,
    /// so every rank's predictions equal the base model's; the files are all written.
    #[test]
    fn eval_generates_scores_and_writes_reports_per_rank() {
        let path =
            crate::env_path("SQLORA_MODEL").unwrap_or_else(sqlora_model::fetch::default_model_path);
        if !path.exists() {
            assert!(std::env::var("SQLORA_REQUIRE_MODEL").as_deref() != Ok("1"));
            eprintln!("skipped: no model at {}", path.display());
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
        let domain = dataset::Domain::open(&datasets.join("retail")).unwrap();
        let db_dir = tmp.path().join("db");
        sqlora_data::fixtures::build_domain(&domain, &db_dir, 2).unwrap();
        let examples: Vec<Example> = domain.split("test").unwrap()[..2].to_vec();
        let ds = tmp.path().join("test.jsonl");
        dataset::write_jsonl(&ds, &examples).unwrap();
        let m = sqlora_model::load(&path, &candle_core::Device::Cpu).unwrap();
        let fresh = LoraAdapter::init(
            "fresh",
            &m.model,
            sqlora_model::lora::LoraConfig::new(4, 8.0, &["q_proj", "v_proj"]),
            1,
        )
        .unwrap();
        let adir = tmp.path().join("adapter");
        sqlora_model::peft::save_adapter(&fresh, &adir).unwrap();
        let (ds_s, db_s) = (ds.display().to_string(), db_dir.display().to_string());
        let model_s = path.display().to_string();
        let common = [
            "--dataset",
            &ds_s,
            "--db-dir",
            &db_s,
            "--model",
            &model_s,
            "--max-tokens",
            "24",
        ];
        let base_out = tmp.path().join("base");
        let base_s = base_out.display().to_string();
        let mut args: Vec<&str> = common.to_vec();
        args.extend(["--base", "--out", &base_s, "--json"]);
        run(&parse(&args)).unwrap();
        let ranks_out = tmp.path().join("ranks");
        let (ranks_s, adir_s) = (ranks_out.display().to_string(), adir.display().to_string());
        let mut args: Vec<&str> = common.to_vec();
        args.extend(["--adapter", &adir_s, "--rank", "1,4", "--out", &ranks_s]);
        run(&parse(&args)).unwrap();

        let sqls = |dir: &Path| -> Vec<String> {
            std::fs::read_to_string(dir.join("predictions.jsonl"))
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["pred"].as_str().unwrap().to_string()
                })
                .collect()
        };
        let base = sqls(&base_out);
        assert_eq!(base.len(), 2);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(base_out.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(report["total"], 2);
        assert!(report["mean_latency_ms"].as_f64().unwrap() > 0.0);
        assert!(base_out.join("ex_by_difficulty.svg").is_file());
        for r in [1, 4] {
            let dir = ranks_out.join(format!("rank_{r}"));
            assert_eq!(sqls(&dir), base, "rank {r}");
            let rep: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap())
                    .unwrap();
            assert_eq!(rep["run"]["rank"], r);
            assert_eq!(rep["ex"], report["ex"]);
        }
        assert!(ranks_out.join("ex_by_rank.svg").is_file());
        let by_rank: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(ranks_out.join("ex_by_rank.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(by_rank.as_array().unwrap().len(), 2);
        // A rank above the adapter's is refused.
        let mut args: Vec<&str> = common.to_vec();
        args.extend(["--adapter", &adir_s, "--rank", "5"]);
        assert!(run(&parse(&args)).is_err());
    }

    #[test]
    fn the_rank_chart_labels_each_point() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.svg");
        rank_chart(&path, &[(1, 0.4), (2, 0.55), (4, 0.625), (8, 0.7)]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        for label in ["40.0", "55.0", "62.5", "70.0", "rank"] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert_eq!(svg.matches("<circle").count(), 4);
    }
}
