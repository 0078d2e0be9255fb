//! `sqlora`: the command-line tool. A thin layer over the library crates: argument parsing,
//! resolving databases and models, printing. All real work lives in `sqlora-*` crates.

mod cmd_bench;
mod cmd_bench_serve;
mod cmd_data;
mod cmd_eval_model;
mod cmd_feedback;
mod cmd_model;
mod cmd_serve;
mod cmd_sql;
mod cmd_train;
mod examples;
mod paths;
mod predict;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sqlora",
    version,
    about = "Text-to-SQL for your own SQLite databases: data, guard, evaluation and a local model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve questions over HTTP: the natural-language query endpoint, OpenAI-compatible
    /// completions, adapters loaded at run time, metrics, and a web page at `/`.
    Serve(Box<cmd_serve::ServeArgs>),
    /// Build the bundled domains' SQLite databases (and test-suite variants).
    Fixtures {
        #[command(subcommand)]
        action: cmd_data::FixturesCmd,
    },
    /// Print the schema of a SQLite file (or bundled domain) as DDL and compact form.
    Schema(cmd_sql::SchemaArgs),
    /// Check a query with the SQL guard; exit status 0 when accepted, 1 when refused.
    Validate(cmd_sql::ValidateArgs),
    /// Validate, then execute a query read-only with time, row and byte budgets.
    Exec(cmd_sql::ExecArgs),
    /// Execution accuracy of predictions against a dataset (Spider test-suite semantics).
    Eval(cmd_eval_model::EvalModelArgs),
    /// Fit a LoRA adapter on a domain (or all of them) or on any dataset, on the base model.
    Train(Box<cmd_train::TrainArgs>),
    /// The answers `sqlora serve` kept and what users said about them.
    Feedback {
        #[command(subcommand)]
        action: cmd_feedback::FeedbackCmd,
    },
    /// Convert Spider/BIRD-format data into sqlora's dataset layout.
    ImportSpider(cmd_data::ImportSpiderArgs),
    /// Lint datasets: gold queries parse, pass the guard and run; split leakage; difficulty labels.
    Dataset {
        #[command(subcommand)]
        action: cmd_data::DatasetCmd,
    },
    /// Manage the base model.
    Model {
        #[command(subcommand)]
        action: cmd_model::ModelCmd,
    },
    /// LoRA adapters in the PEFT format.
    Adapter {
        #[command(subcommand)]
        action: cmd_model::AdapterCmd,
    },
    /// Raw greedy continuation of a prompt (no chat template).
    Generate(cmd_model::GenerateArgs),
    /// Ask a question about a database in plain English: prompt, generate, guard, execute.
    Ask(cmd_model::AskArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        action: cmd_bench::BenchCmd,
    },
}

/// Exit statuses shared by the commands (documented in the README).
pub mod exit {
    /// The query was refused by the guard.
    pub const REFUSED: u8 = 1;
    /// The query was accepted but failed in SQLite.
    pub const EXEC_ERROR: u8 = 3;
    /// A time, row or byte budget was exceeded.
    pub const BUDGET: u8 = 4;
}

fn main() -> ExitCode {
    sqlora_model::quiet_candle_pool();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => cmd_serve::run(&a),
        Command::Fixtures { action } => cmd_data::fixtures(action),
        Command::Schema(a) => cmd_sql::schema(a),
        Command::Validate(a) => cmd_sql::validate(a),
        Command::Exec(a) => cmd_sql::exec(a),
        Command::Eval(a) => cmd_eval_model::run(&a),
        Command::Train(a) => cmd_train::run(&a),
        Command::Feedback { action } => cmd_feedback::feedback(action),
        Command::ImportSpider(a) => cmd_data::import_spider(a),
        Command::Dataset { action } => cmd_data::dataset(action),
        Command::Model { action } => cmd_model::model(action),
        Command::Adapter { action } => cmd_model::adapter(action),
        Command::Generate(a) => cmd_model::generate(a),
        Command::Ask(a) => cmd_model::ask(a),
        Command::Bench { action } => cmd_bench::bench(action),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A path argument that may also be given through an environment variable.
pub fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
