//! `sqlora bench serve`: a load generator for a running `sqlora serve`.
//!
//! The measurement lives in the `sqlora-loadgen` crate (see its docs for what each mode
//! measures); this module maps the command-line flags onto its [`sqlora_loadgen::Config`]
//! and prints the [`sqlora_loadgen::Report`] as tables or, with `--json`, one JSON object.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

/// One measurement of `sqlora bench serve`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// First request to each (database, adapter) against later ones.
    Prefix,
    /// N concurrent clients spread over M adapters.
    Mixed,
    /// The same load, every request on one adapter.
    Single,
    /// The same requests one at a time.
    Serial,
}

/// Arguments of `sqlora bench serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchServeArgs {
    /// The server's base address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Concurrent clients (N) in the mixed and single modes.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Timed requests per mode, spread over the clients.
    #[arg(long, default_value_t = 32)]
    pub requests: usize,
    /// Adapters to spread the clients over (comma-separated); default: every adapter the
    /// server lists. With none, clients spread over databases on the base model.
    #[arg(long, value_delimiter = ',')]
    pub adapters: Vec<String>,
    /// Use at most this many adapters (M).
    #[arg(long)]
    pub max_adapters: Option<usize>,
    /// Questions as JSONL with `question` and `db_id` (or `database`); default: each
    /// database's bundled test split, else questions made from its table names.
    #[arg(long)]
    pub questions: Option<PathBuf>,
    /// Which measurements to run (they always run in the order prefix, mixed, single, serial).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "prefix,mixed,single,serial"
    )]
    pub modes: Vec<Mode>,
    /// `candidates` sent with every request (default: the server's).
    #[arg(long)]
    pub candidates: Option<u32>,
    /// Ask for the SQL only (`execute: false`).
    #[arg(long)]
    pub no_execute: bool,
    /// Later requests per target in the prefix mode.
    #[arg(long, default_value_t = 3)]
    pub prefix_repeats: usize,
    /// Skip the untimed warm-up requests of the concurrent modes.
    #[arg(long)]
    pub no_warmup: bool,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
    /// The counter of generated tokens in `GET /metrics` (tokens/s).
    #[arg(long, default_value = "sqlora_generated_tokens_total")]
    pub tokens_metric: String,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

impl From<Mode> for sqlora_loadgen::Mode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Prefix => sqlora_loadgen::Mode::Prefix,
            Mode::Mixed => sqlora_loadgen::Mode::Mixed,
            Mode::Single => sqlora_loadgen::Mode::Single,
            Mode::Serial => sqlora_loadgen::Mode::Serial,
        }
    }
}

impl BenchServeArgs {
    /// The load generator's configuration for these flags.
    fn config(&self) -> sqlora_loadgen::Config {
        sqlora_loadgen::Config {
            url: self.url.clone(),
            clients: self.clients,
            requests: self.requests,
            adapters: self.adapters.clone(),
            max_adapters: self.max_adapters,
            questions: self.questions.clone(),
            datasets_dir: crate::paths::datasets_dir(),
            modes: self.modes.iter().map(|&m| m.into()).collect(),
            candidates: self.candidates,
            execute: !self.no_execute,
            prefix_repeats: self.prefix_repeats,
            warmup: !self.no_warmup,
            timeout: Duration::from_secs(self.timeout_s.max(1)),
            tokens_metric: self.tokens_metric.clone(),
        }
    }
}

/// Runs `sqlora bench serve`.
pub fn run(args: &BenchServeArgs) -> Result<()> {
    let report = sqlora_loadgen::run(&args.config(), |mode| {
        if !args.json {
            eprintln!("bench serve: {} ...", mode.name());
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.tables());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchServeArgs,
    }

    #[test]
    fn flags_map_onto_the_load_generator() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        let c = cli.args.config();
        assert_eq!(c.url, "http://127.0.0.1:8080");
        assert_eq!((c.clients, c.requests, c.prefix_repeats), (8, 32, 3));
        assert_eq!(
            c.modes,
            [
                sqlora_loadgen::Mode::Prefix,
                sqlora_loadgen::Mode::Mixed,
                sqlora_loadgen::Mode::Single,
                sqlora_loadgen::Mode::Serial
            ]
        );
        assert!(c.execute && c.warmup);
        assert_eq!(c.timeout, Duration::from_secs(300));
        assert_eq!(c.tokens_metric, "sqlora_generated_tokens_total");
        let cli = Cli::try_parse_from([
            "x",
            "--url",
            "http://h:1",
            "--adapters",
            "a,b",
            "--modes",
            "serial,mixed",
            "--no-execute",
            "--no-warmup",
            "--timeout-s",
            "0",
            "--candidates",
            "3",
            "--questions",
            "q.jsonl",
        ])
        .unwrap();
        let c = cli.args.config();
        assert_eq!(c.adapters, ["a", "b"]);
        assert_eq!(
            c.modes,
            [sqlora_loadgen::Mode::Serial, sqlora_loadgen::Mode::Mixed]
        );
        assert!(!c.execute && !c.warmup);
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.candidates, Some(3));
        assert_eq!(c.questions, Some(PathBuf::from("q.jsonl")));
    }

    #[test]
    fn a_server_that_is_not_there_is_an_error_not_a_panic() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let mut cli = Cli::try_parse_from(["x", "--url", &url]).unwrap();
        cli.args.json = true;
        let err = run(&cli.args).unwrap_err();
        assert!(
            format!("{err:#}").contains("is `sqlora serve` running"),
            "{err:#}"
        );
        cli.args.url = "https://x".into();
        let err = run(&cli.args).unwrap_err();
        assert!(format!("{err:#}").contains("--url must start with http://"));
    }
}
