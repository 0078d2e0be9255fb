//! `sqlora train`: fit a LoRA adapter on a bundled domain, on several at once (`--domain all`),
//! or on any dataset in the documented JSONL format with its SQLite database.
//!
//! The run folder (`--run-dir`, default `runs/<name>`) holds metrics.jsonl, the checkpoints
//! and the trainer's output; the final adapter (the best by dev-set execution accuracy) is
//! copied to `--out` (default `adapters/<name>`) with `sqlora_meta.json`, the loss and dev-EX
//! curves and the metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use sqlora_data::dataset::{self, Example};
use sqlora_eval::report::{evaluate, EvalItem, EvalOptions, Report};
use sqlora_model::lora::LoraAdapter;
use sqlora_model::LoadedModel;
use sqlora_sql::schema::Schema;
use sqlora_sqlgen::{progress_bar, ExampleIndex, FewShot, PredictOptions, PromptBuilder, Shot};
use sqlora_train::batch::{dataset_hash, render, tokenize, TokenizedExample};
use sqlora_train::trainer::{
    latest_checkpoint, train_with, Meta, RunInfo, TrainData, TrainHooks, TrainOptions, META_FILE,
};
use sqlora_train::{TrainConfig, TrainError};

use crate::cmd_model::{load_model_on, ModelArg};
use crate::predict::predict;

#[derive(Args)]
pub struct TrainArgs {
    /// A bundled domain (see `datasets/`), or `all` for one general adapter over every domain.
    #[arg(long, conflicts_with = "dataset")]
    pub domain: Option<String>,
    /// A training set in the documented JSONL format (id, db_id, question, sql, difficulty)
    /// instead of a bundled domain; needs --db. The adapter is named after its database when
    /// every example is about one (else after the file).
    #[arg(long, requires = "db")]
    pub dataset: Option<PathBuf>,
    /// The dev set of --dataset (for dev EX during training); optional.
    #[arg(long, requires = "dataset")]
    pub dev: Option<PathBuf>,
    /// The test set of --dataset, evaluated once after training; optional.
    #[arg(long, requires = "dataset")]
    pub test: Option<PathBuf>,
    /// The database of --dataset: a SQLite file, or a folder with `<db_id>/<db_id>.sqlite` or
    /// `<db_id>.sqlite` per database.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// A TOML training config (every key optional; see crates/sqlora-train/train.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one config key, e.g. `--set lr=1e-3 --set target_modules=["q","v"]`
    /// (TOML values; repeatable; applied after --config and before the flags below).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// LoRA rank.
    #[arg(long)]
    pub rank: Option<usize>,
    /// LoRA alpha.
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Passes over the training set.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Sequences per forward pass.
    #[arg(long)]
    pub micro_batch: Option<usize>,
    /// Micro-batches per optimizer step.
    #[arg(long)]
    pub grad_accum: Option<usize>,
    /// Seed of the initialisation, data order and dropout.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train every rank up to --rank at once (DyLoRA).
    #[arg(long)]
    pub dylora: bool,
    /// Where the adapter goes. Default: adapters/<base model name>/<name>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where metrics and checkpoints go. Default: runs/<name>.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Continue from the newest checkpoint in the run folder.
    #[arg(long)]
    pub resume: bool,
    /// More training examples in the dataset JSONL format (e.g. `sqlora feedback export`'s),
    /// added to the training split; each must be about a database of this run and its SQL must
    /// pass the guard and run. Repeatable. With --extra the run continues the domain's adapter
    /// (adapters/<base model name>/<name>) when there is one, unless --init or --fresh.
    #[arg(long, value_name = "FILE.jsonl")]
    pub extra: Vec<PathBuf>,
    /// Start from this adapter folder instead of a fresh adapter; the LoRA shape (rank, alpha,
    /// target modules, layers) defaults to the one in its sqlora_meta.json.
    #[arg(long, value_name = "DIR", conflicts_with = "fresh")]
    pub init: Option<PathBuf>,
    /// With --extra, start a fresh adapter instead of continuing the domain's.
    #[arg(long)]
    pub fresh: bool,
    /// Dev questions scored (execution accuracy) at each evaluation; 0 turns it off.
    /// Default: the whole dev split.
    #[arg(long)]
    pub dev_questions: Option<usize>,
    /// Dev examples whose loss is logged at each evaluation (0 = none).
    #[arg(long, default_value_t = 16)]
    pub dev_loss_examples: usize,
    /// Test questions scored after training: the first N of each database's split, the same
    /// ones `sqlora eval --limit N` scores on that database's test file. Default: all.
    #[arg(long)]
    pub test_questions: Option<usize>,
    /// Skip the test-split evaluation after training.
    #[arg(long)]
    pub no_test: bool,
    /// Skip the memory check before the first step. By default the trainer estimates the
    /// largest step's memory, switches activation checkpointing on when the run would not fit
    /// without it, and warns when it may not fit even so.
    #[arg(long)]
    pub no_memory_check: bool,
    /// Retrieved training examples per prompt when dev and test EX are scored (BM25 over the
    /// run's pool: the --extra files first, then the training split, as the service puts a
    /// domain's hand-written examples before its generated ones), so the checkpoint kept is the
    /// best under the service's decoding (which shows 3). 0: the adapter's own zero-shot
    /// answers. One database per run only.
    #[arg(long, default_value_t = 0)]
    pub examples_k: usize,
    /// Retrieved examples shown in every training prompt (from the same pool; never the
    /// example itself nor one with the same SQL), so the adapter learns on the prompts the
    /// service shows it. 0: zero-shot training prompts. One database per run only.
    #[arg(long, default_value_t = 0)]
    pub train_examples_k: usize,
    /// Beams tried when a scored dev or test answer fails the guard or SQLite, as `eval` and
    /// the service do (0: score the greedy answer as it is).
    #[arg(long, value_name = "BEAMS", default_value_t = sqlora_sqlgen::DEFAULT_FALLBACK)]
    pub fallback: usize,
    /// `cpu` or `cuda:N` (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub model: ModelArg,
}

/// The training set of a run, resolved.
struct Source {
    name: String,
    train: Vec<Example>,
    dev: Vec<Example>,
    test: Vec<Example>,
    /// The prompt schema's database of each db_id.
    dbs: BTreeMap<String, PathBuf>,
    /// The evaluation layout: `db_dir/<db_id>/*.sqlite`.
    db_dir: Option<PathBuf>,
}

fn bundled(names: &[String]) -> Result<Source> {
    let dir = crate::paths::datasets_dir();
    let mut s = Source {
        name: String::new(),
        train: Vec::new(),
        dev: Vec::new(),
        test: Vec::new(),
        dbs: BTreeMap::new(),
        db_dir: Some(crate::paths::fixtures_dir()),
    };
    for name in names {
        let d = dir.join(name);
        let read = |split: &str| -> Result<Vec<Example>> {
            let p = d.join(format!("{split}.jsonl"));
            dataset::read_jsonl(&p).with_context(|| format!("reading {}", p.display()))
        };
        s.train.extend(read("train")?);
        s.dev.extend(read("dev")?);
        s.test.extend(read("test")?);
        s.dbs.insert(name.clone(), crate::paths::resolve_db(name)?);
    }
    Ok(s)
}

fn resolve_source(a: &TrainArgs) -> Result<Source> {
    if let Some(domain) = &a.domain {
        if domain == "all" {
            let names: Vec<String> = dataset::list_domains(&crate::paths::datasets_dir())?
                .into_iter()
                .map(|d| d.name)
                .collect();
            if names.is_empty() {
                bail!("no domains in {}", crate::paths::datasets_dir().display());
            }
            let mut s = bundled(&names)?;
            s.name = "general".into();
            return Ok(s);
        }
        let mut s = bundled(std::slice::from_ref(domain))?;
        s.name = domain.clone();
        return Ok(s);
    }
    let (Some(train), Some(db)) = (&a.dataset, &a.db) else {
        bail!("say what to train on: --domain NAME, --domain all, or --dataset FILE --db DB");
    };
    let read = |p: &Path| -> Result<Vec<Example>> {
        dataset::read_jsonl(p).with_context(|| format!("reading {}", p.display()))
    };
    let train_ex = read(train)?;
    let dev = a.dev.as_deref().map(read).transpose()?.unwrap_or_default();
    let test = a.test.as_deref().map(read).transpose()?.unwrap_or_default();
    let mut dbs = BTreeMap::new();
    let mut db_dir = None;
    for e in train_ex.iter().chain(&dev).chain(&test) {
        if dbs.contains_key(&e.db_id) {
            continue;
        }
        let path = if db.is_file() {
            db.clone()
        } else if db.is_dir() {
            db_dir = Some(db.clone());
            let nested = db.join(&e.db_id).join(format!("{}.sqlite", e.db_id));
            let flat = db.join(format!("{}.sqlite", e.db_id));
            if nested.is_file() {
                nested
            } else if flat.is_file() {
                flat
            } else {
                bail!("no database for '{}' in {}", e.db_id, db.display());
            }
        } else {
            bail!("no such database file or folder: {}", db.display());
        };
        dbs.insert(e.db_id.clone(), path);
    }
    if db.is_file() {
        db_dir = variants_dir(db, &dbs);
    }
    // One database: the adapter is that database's (`--dataset datasets/hr/train.jsonl` makes
    // `hr`, not `train`); several: the file's name.
    let name = match dbs.keys().next() {
        Some(only) if dbs.len() == 1 => only.clone(),
        _ => train
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "adapter".into()),
    };
    Ok(Source {
        name,
        train: train_ex,
        dev,
        test,
        dbs,
        db_dir,
    })
}

/// The folder `D` when the database file `db` is the only database of the run and sits in the
/// fixtures' layout, `D/<name>/<name>.sqlite`: scoring there uses every test-suite variant
/// beside it, as `eval --db-dir D` does.
fn variants_dir(db: &Path, dbs: &BTreeMap<String, PathBuf>) -> Option<PathBuf> {
    let (name, dir) = crate::examples::fixture_layout(db).filter(|_| db.is_file())?;
    (dbs.len() == 1 && dbs.contains_key(name)).then(|| dir.to_path_buf())
}

/// The LoRA shape keys an adapter's `sqlora_meta.json` config gives a run continuing it.
const SHAPE_KEYS: [&str; 6] = [
    "rank",
    "alpha",
    "use_rslora",
    "target_modules",
    "layers_to_transform",
    "dylora",
];

/// The LoRA shape of the adapter in `dir` (from its `sqlora_meta.json`; empty without one).
fn shape_of(dir: &Path) -> Result<toml::Table> {
    let p = dir.join(META_FILE);
    let mut out = toml::Table::new();
    if !p.is_file() {
        return Ok(out);
    }
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?,
    )
    .with_context(|| format!("{} is not JSON", p.display()))?;
    for key in SHAPE_KEYS {
        if let Some(v) = meta["config"].get(key).filter(|v| !v.is_null()) {
            let v = toml::Value::try_from(v)
                .with_context(|| format!("{}: config.{key}", p.display()))?;
            out.insert(key.to_string(), v);
        }
    }
    Ok(out)
}

fn build_config(a: &TrainArgs, init: Option<&Path>) -> Result<TrainConfig> {
    let mut table = match init {
        Some(dir) => shape_of(dir)?,
        None => toml::Table::new(),
    };
    if let Some(p) = &a.config {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let file: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", p.display()))?;
        table.extend(file);
    }
    for kv in &a.set {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--set wants KEY=VALUE, got '{kv}'");
        };
        let parsed: toml::Table = format!("{} = {}", k.trim(), v.trim())
            .parse()
            .or_else(|_| format!("{} = {:?}", k.trim(), v.trim()).parse())
            .with_context(|| format!("--set {kv}: not a TOML value"))?;
        table.extend(parsed);
    }
    let mut cfg = TrainConfig::from_toml_str(&toml::to_string(&table)?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(v) = a.rank {
        cfg.rank = v;
    }
    if let Some(v) = a.alpha {
        cfg.alpha = v;
    }
    if let Some(v) = a.lr {
        cfg.lr = v;
    }
    if let Some(v) = a.epochs {
        cfg.epochs = v;
        cfg.max_steps = None;
    }
    if let Some(v) = a.max_steps {
        cfg.max_steps = Some(v);
    }
    if let Some(v) = a.micro_batch {
        cfg.micro_batch = v;
    }
    if let Some(v) = a.grad_accum {
        cfg.grad_accum = v;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if a.dylora {
        cfg.dylora = true;
    }
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(cfg)
}

/// How a run scores an adapter: the decoding `eval` uses by default (constrained, `fallback`
/// beams, `few_shot` retrieved examples) and the databases to score on.
struct Scorer<'a> {
    model: &'a LoadedModel,
    few_shot: Option<&'a FewShot>,
    fallback: usize,
    dbs: &'a BTreeMap<String, PathBuf>,
    db_dir: Option<&'a Path>,
}

/// Dev-set execution accuracy through the real generator, guard and evaluator.
struct DevEx<'a> {
    scorer: &'a Scorer<'a>,
    examples: Vec<Example>,
}

/// The first `n` examples of every database, in their order.
fn first_per_database(examples: &[Example], n: usize) -> Vec<Example> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    examples
        .iter()
        .filter(|e| {
            let c = seen.entry(e.db_id.as_str()).or_default();
            *c += 1;
            *c <= n
        })
        .cloned()
        .collect()
}

/// Generates SQL for `examples` with `adapter`, constrained to the schema and with the beam
/// fallback as `eval` does by default, and scores it (Spider test-suite EX over the variants
/// when `db_dir` has them).
impl Scorer<'_> {
    fn score(&self, adapter: &LoraAdapter, examples: &[Example], label: &str) -> Result<Report> {
        let Scorer {
            model,
            few_shot,
            fallback,
            dbs,
            db_dir,
        } = *self;
        let bar = progress_bar(examples.len());
        bar.set_message(label.to_string());
        let preds = predict(
            model,
            Some(adapter),
            examples,
            |e: &Example| dbs.get(&e.db_id).cloned().unwrap_or_default(),
            &PredictOptions {
                constrain: Some(sqlora_sqlgen::Constrainer::new(model)),
                fallback,
                examples: few_shot.cloned(),
                ..PredictOptions::default()
            },
            Some(&bar),
        )?;
        bar.finish_and_clear();
        let items: Vec<EvalItem> = examples.iter().map(Example::eval_item).collect();
        let sqls: Vec<String> = preds.into_iter().map(|p| p.sql).collect();
        let opts = EvalOptions {
            keep_distinct: false,
            timeout: Duration::from_secs(10),
            train_skeletons: None,
        };
        let report = match db_dir {
            Some(dir) => evaluate(&items, &sqls, dir, &opts)?,
            None => {
                // A single database file: lay it out as the evaluator expects.
                let tmp = tempfile::tempdir()?;
                for (id, path) in dbs {
                    let d = tmp.path().join(id);
                    std::fs::create_dir_all(&d)?;
                    std::fs::copy(path, d.join(format!("{id}.sqlite")))?;
                }
                evaluate(&items, &sqls, tmp.path(), &opts)?
            }
        };
        Ok(report)
    }
}

impl TrainHooks for DevEx<'_> {
    fn dev_score(
        &mut self,
        adapter: &LoraAdapter,
        step: usize,
    ) -> sqlora_train::Result<Option<f64>> {
        if self.examples.is_empty() {
            return Ok(None);
        }
        self.scorer
            .score(
                adapter,
                &self.examples,
                &format!("dev EX after step {step}"),
            )
            .map(|r| Some(r.ex))
            .map_err(|e| TrainError::Hook(format!("{e:#}")))
    }
}

/// The run's pool of retrievable examples (`--examples-k`, `--train-examples-k`): the --extra
/// examples first, then the training split, each example once (by id), the order the service
/// gives a bundled domain's hand-written and generated examples. `None` when neither flag asks
/// for examples.
fn example_pool(
    src: &Source,
    extra: &[Example],
    examples_k: usize,
    train_examples_k: usize,
) -> Result<Option<Arc<ExampleIndex>>> {
    let flags = [
        ("--examples-k", examples_k),
        ("--train-examples-k", train_examples_k),
    ];
    let Some((flag, k)) = flags.into_iter().find(|(_, k)| *k > 0) else {
        return Ok(None);
    };
    if src.dbs.len() > 1 {
        bail!(
            "{flag} {k}: this run has {} databases; retrieved examples are used one database at a time (train one domain, or score with `sqlora eval --examples-k`)",
            src.dbs.len()
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    let shots: Vec<Shot> = extra
        .iter()
        .chain(&src.train)
        .filter(|e| e.id.is_empty() || seen.insert(e.id.as_str()))
        .map(|e| Shot::new(e.id.clone(), e.question.clone(), e.sql.clone()))
        .collect();
    if shots.is_empty() {
        bail!("{flag} {k}: the training split is empty");
    }
    Ok(Some(Arc::new(ExampleIndex::new(shots))))
}

/// Picks `n` examples spread evenly over `all` (every database and difficulty represented).
fn spread(all: &[Example], n: usize) -> Vec<Example> {
    if n >= all.len() {
        return all.to_vec();
    }
    (0..n).map(|i| all[i * all.len() / n].clone()).collect()
}

fn copy_dir_files(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let dest = to.join(entry.file_name());
            let tmp = to.join(format!(".{}.tmp", entry.file_name().to_string_lossy()));
            std::fs::copy(entry.path(), &tmp)?;
            std::fs::rename(&tmp, &dest)?;
        }
    }
    Ok(())
}

/// Reads `--extra` files: the dataset format, every line about a database of the run (`dbs`),
/// every SQL accepted by the guard and run read-only on it. Errors name the file and line.
fn read_extra(files: &[PathBuf], dbs: &BTreeMap<String, PathBuf>) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    let mut opened: BTreeMap<String, sqlora_sql::exec::ReadOnlyDb> = BTreeMap::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{}:{}", file.display(), i + 1);
            let e: Example = serde_json::from_str(line).with_context(|| {
                format!("{at}: not a training example (id, db_id, question, sql, difficulty)")
            })?;
            let Some(path) = dbs.get(&e.db_id) else {
                bail!(
                    "{at}: db_id '{}' is not a database of this run ({})",
                    e.db_id,
                    dbs.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            };
            if e.question.trim().is_empty() {
                bail!("{at}: the question is empty");
            }
            if !opened.contains_key(&e.db_id) {
                let db = sqlora_sql::exec::ReadOnlyDb::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                opened.insert(e.db_id.clone(), db);
            }
            if let Some(db) = opened.get(&e.db_id) {
                db.execute(&e.sql, &sqlora_sql::exec::ExecLimits::default())
                    .map_err(|err| anyhow::anyhow!("{at}: the SQL of '{}': {err}", e.id))?;
            }
            out.push(e);
        }
    }
    Ok(out)
}

pub fn run(a: &TrainArgs) -> Result<ExitCode> {
    // This process trains and nothing else: keep freed tensors' memory for the next step.
    sqlora_train::alloc::keep_freed_memory();
    let device = crate::cmd_model::parse_device(&a.device)?;
    let mut cfg = build_config(a, a.init.as_deref())?;
    let mut src = resolve_source(a)?;
    if src.train.is_empty() {
        bail!("the training set is empty");
    }
    let extra = read_extra(&a.extra, &src.dbs)?;
    if !a.extra.is_empty() {
        eprintln!(
            "{} extra training examples from {}",
            extra.len(),
            crate::examples::show(&a.extra)
        );
    }
    // Before the model loads, so a bad combination fails fast.
    let pool = example_pool(&src, &extra, a.examples_k, a.train_examples_k)?;
    src.train.extend(extra);
    let few_shot = pool
        .clone()
        .filter(|_| a.examples_k > 0)
        .map(|p| FewShot::new(p, a.examples_k));
    if let Some(f) = &few_shot {
        eprintln!(
            "dev and test EX with {} retrieved training examples per prompt",
            f.k
        );
    }
    if let Some(p) = pool.as_ref().filter(|_| a.train_examples_k > 0) {
        eprintln!(
            "{} retrieved examples in every training prompt, from a pool of {}",
            a.train_examples_k,
            p.len()
        );
    }
    // The examples a prompt shows (none without --train-examples-k): a training row's never
    // share its SQL; a dev row's are retrieved as the service would, by its question alone.
    let shots_for = |e: &Example, training: bool| -> Vec<Shot> {
        let (Some(p), k) = (&pool, a.train_examples_k) else {
            return Vec::new();
        };
        let shots = if training {
            p.retrieve_for_training(&e.question, &e.sql, k, Some(&e.id))
        } else {
            p.retrieve(&e.question, k, Some(&e.id))
        };
        shots.into_iter().cloned().collect()
    };
    let model = load_model_on(&a.model, &device)?;
    let own = crate::paths::adapters_root(&model).join(&src.name);
    let init = match &a.init {
        Some(dir) => Some(dir.clone()),
        None if !a.extra.is_empty() && !a.fresh && own.join("adapter_config.json").is_file() => {
            cfg = build_config(a, Some(&own))?;
            Some(own.clone())
        }
        None => None,
    };
    if let Some(dir) = &init {
        if !dir.join("adapter_config.json").is_file() {
            bail!(
                "--init {}: not an adapter folder (no adapter_config.json)",
                dir.display()
            );
        }
        eprintln!("continuing the adapter in {}", dir.display());
    }
    let out = a.out.clone().unwrap_or(own);
    let run_dir = a
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&src.name));
    let Some(chat) = model.chat_template.as_ref() else {
        bail!("the model has no chat template; sqlora trains chat models");
    };
    let end_marker = model
        .tokenizer
        .eos_token_ids()
        .first()
        .map(|&id| model.tokenizer.decode(&[id], false))
        .transpose()?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<|im_end|>".to_string());

    // Prompts: the same builder and chat template as `ask`, `eval` and `serve`.
    let builder = PromptBuilder::builtin();
    let mut schemas: BTreeMap<String, Schema> = BTreeMap::new();
    for (id, path) in &src.dbs {
        schemas.insert(
            id.clone(),
            Schema::introspect(path).with_context(|| format!("reading {}", path.display()))?,
        );
    }
    let group_of: BTreeMap<&str, usize> = src
        .dbs
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    // A row's prompt and answer, with the examples `shots_for` picks.
    let example_for = |e: &Example, schema: &Schema, training: bool| {
        builder.training_example_with_examples(&e.question, schema, &e.sql, &shots_for(e, training))
    };
    let t0 = Instant::now();
    let mut rendered = Vec::with_capacity(src.train.len());
    let mut groups = Vec::with_capacity(src.train.len());
    for e in &src.train {
        let schema = schemas
            .get(&e.db_id)
            .with_context(|| format!("{}: unknown database '{}'", e.id, e.db_id))?;
        let t = example_for(e, schema, true)?;
        rendered.push(render(&t, chat, &end_marker)?);
        groups.push(group_of.get(e.db_id.as_str()).copied().unwrap_or(0));
    }
    // Tokenized whole first: a prompt cut from its start loses the schema prefix it shares with
    // the other rows, and a micro-batch holding one runs every row in full (many times the time
    // and memory). Only when some are too long is everything tokenized again with the cut.
    let full: Vec<TokenizedExample> = rendered
        .iter()
        .map(|r| tokenize(r, &model.tokenizer, usize::MAX))
        .collect::<std::result::Result<_, _>>()?;
    let cut = full.iter().filter(|e| e.len() > cfg.max_seq_len).count();
    let examples: Vec<TokenizedExample> = if cut == 0 {
        full
    } else {
        eprintln!(
            "warning: {cut} of {} prompts are longer than max_seq_len {} and were cut from their \
             start; they lose the shared schema prefix, so their micro-batches run every row in \
             full (slow and memory-hungry). Raise max_seq_len.",
            full.len(),
            cfg.max_seq_len
        );
        rendered
            .iter()
            .map(|r| tokenize(r, &model.tokenizer, cfg.max_seq_len))
            .collect::<std::result::Result<_, _>>()?
    };
    let longest = examples.iter().map(|e| e.len()).max().unwrap_or(0);
    let mut dev_tok = Vec::new();
    for e in &src.dev {
        if let Some(schema) = schemas.get(&e.db_id) {
            let t = example_for(e, schema, false)?;
            dev_tok.push(tokenize(
                &render(&t, chat, &end_marker)?,
                &model.tokenizer,
                cfg.max_seq_len,
            )?);
        }
    }
    let mean = examples.iter().map(|e| e.len()).sum::<usize>() as f64 / examples.len() as f64;
    eprintln!(
        "{}: {} training examples over {} database(s), mean {mean:.0} tokens (longest \
         {longest}); {} dev; prompts built in {:.1}s",
        src.name,
        examples.len(),
        src.dbs.len(),
        dev_tok.len(),
        t0.elapsed().as_secs_f64()
    );
    let data = TrainData {
        dataset_hash: dataset_hash(&rendered),
        examples,
        groups,
    };
    let base_sha = if model.source.is_file() {
        Some(sqlora_model::fetch::sha256_file(&model.source)?)
    } else {
        None
    };
    let info = RunInfo {
        domain: src.name.clone(),
        base_model: Some(
            model
                .source
                .file_name()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
        ),
        base_model_sha256: base_sha,
    };
    let mut opts = TrainOptions::new(&run_dir);
    opts.progress = true;
    opts.pad_id = model.tokenizer.pad_token_id();
    opts.init = init;
    // Read now, with the model loaded: what is left is what the steps can use.
    opts.memory_budget = if a.no_memory_check {
        None
    } else {
        sqlora_train::memory::available_bytes()
    };
    if a.resume {
        match latest_checkpoint(&run_dir) {
            Some(c) => {
                eprintln!("resuming from {}", c.display());
                opts.resume = Some(c);
            }
            None => eprintln!("no checkpoint in {}: starting afresh", run_dir.display()),
        }
    }
    let dev_n = a.dev_questions.unwrap_or(src.dev.len());
    let scorer = Scorer {
        model: &model,
        few_shot: few_shot.as_ref(),
        fallback: a.fallback,
        dbs: &src.dbs,
        db_dir: src.db_dir.as_deref(),
    };
    let mut hooks = DevEx {
        scorer: &scorer,
        examples: spread(&src.dev, dev_n),
    };
    let dev_tok: Vec<TokenizedExample> = if a.dev_loss_examples >= dev_tok.len() {
        dev_tok
    } else {
        (0..a.dev_loss_examples)
            .map(|i| dev_tok[i * dev_tok.len() / a.dev_loss_examples].clone())
            .collect()
    };
    let eval_set = (!dev_tok.is_empty()).then_some(dev_tok.as_slice());
    let (adapter, report) = train_with(
        &model.model,
        &cfg,
        &data,
        eval_set,
        &info,
        &opts,
        &mut hooks,
    )?;
    let Some(adapter_dir) = report.adapter_dir.clone() else {
        bail!("training stopped before the end");
    };
    let meta_path = adapter_dir.join(META_FILE);
    let mut meta: Meta = serde_json::from_str(&std::fs::read_to_string(&meta_path)?)?;
    if !a.no_test && !src.test.is_empty() {
        // The first N of each database, like `sqlora eval --limit N` on its test file, so
        // base-model and adapter numbers are over the same questions.
        let n = a.test_questions.unwrap_or(src.test.len());
        let test = first_per_database(&src.test, n);
        let report = scorer.score(&adapter, &test, "test EX")?;
        meta.test_ex = Some(report.ex);
        meta.test_questions = Some(test.len());
        eprintln!(
            "test EX: {:.1}% ({} questions)",
            100.0 * report.ex,
            test.len()
        );
        if report.by_domain.len() > 1 {
            for (db, b) in &report.by_domain {
                eprintln!(
                    "  {db}: {:.1}% ({} of {})",
                    100.0 * b.ex,
                    b.correct,
                    b.total
                );
                meta.test_ex_by_database.insert(db.clone(), b.ex);
            }
        }
    }
    std::fs::write(&meta_path, serde_json::to_string_pretty(&meta)?)?;
    copy_dir_files(&adapter_dir, &out)?;
    std::fs::copy(run_dir.join("metrics.jsonl"), out.join("metrics.jsonl"))?;
    eprintln!(
        "{} steps in {:.0}s ({:.1} trained tokens/s, prompt tokens included); kept step {}{}; \
         adapter in {}",
        report.steps,
        report.train_seconds,
        report.tokens as f64 / report.train_seconds.max(1e-9),
        report.kept_step,
        report
            .dev_scores
            .iter()
            .find(|(s, _)| *s == report.kept_step)
            .map(|(_, x)| format!(" (dev EX {:.1}%)", 100.0 * x))
            .unwrap_or_default(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: &str, db: &str) -> Example {
        Example {
            id: id.into(),
            db_id: db.into(),
            question: "q".into(),
            sql: "SELECT 1".into(),
            difficulty: sqlora_eval::hardness::Difficulty::Easy,
        }
    }

    #[test]
    fn the_pool_puts_extra_examples_first_and_each_once() {
        let src = Source {
            name: "a".into(),
            train: vec![ex("g1", "a"), ex("h1", "a"), ex("g2", "a")],
            dev: Vec::new(),
            test: Vec::new(),
            dbs: BTreeMap::from([("a".to_string(), PathBuf::from("a.sqlite"))]),
            db_dir: None,
        };
        // --extra given twice (to weight it in training) and overlapping the split.
        let extra = [ex("h1", "a"), ex("h2", "a"), ex("h1", "a"), ex("h2", "a")];
        assert!(example_pool(&src, &extra, 0, 0).unwrap().is_none());
        let pool = example_pool(&src, &extra, 0, 3).unwrap().unwrap();
        let ids: Vec<&str> = pool.shots().iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["h1", "h2", "g1", "g2"]);
        let two = Source {
            dbs: BTreeMap::from([
                ("a".to_string(), PathBuf::from("a.sqlite")),
                ("b".to_string(), PathBuf::from("b.sqlite")),
            ]),
            ..src
        };
        let err = example_pool(&two, &[], 3, 0).unwrap_err().to_string();
        assert!(
            err.contains("--examples-k 3") && err.contains("2 databases"),
            "{err}"
        );
    }

    #[test]
    fn a_fixture_file_is_scored_over_its_folder_of_variants() {
        let dir = tempfile::tempdir().unwrap();
        let hr = dir.path().join("hr").join("hr.sqlite");
        std::fs::create_dir_all(hr.parent().unwrap()).unwrap();
        std::fs::write(&hr, b"").unwrap();
        let only = |id: &str| BTreeMap::from([(id.to_string(), PathBuf::from("any"))]);
        assert_eq!(variants_dir(&hr, &only("hr")).as_deref(), Some(dir.path()));
        assert_eq!(variants_dir(&hr, &only("retail")), None);
        // A file not in its own folder, or missing: scored on itself only.
        let flat = dir.path().join("hr.sqlite");
        std::fs::write(&flat, b"").unwrap();
        assert_eq!(variants_dir(&flat, &only("hr")), None);
        let x = dir.path().join("x").join("x.sqlite");
        assert_eq!(variants_dir(&x, &only("x")), None);
    }

    #[test]
    fn test_questions_are_the_first_n_of_every_database() {
        let all = [
            ex("a1", "a"),
            ex("a2", "a"),
            ex("a3", "a"),
            ex("b1", "b"),
            ex("b2", "b"),
            ex("c1", "c"),
        ];
        let ids = |v: Vec<Example>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(
            ids(first_per_database(&all, 2)),
            ["a1", "a2", "b1", "b2", "c1"]
        );
        assert_eq!(ids(first_per_database(&all, 0)), Vec::<String>::new());
        assert_eq!(ids(first_per_database(&all, 9)).len(), 6);
    }
}
