//! `sqlora feedback export`: the confirmed and corrected answers that `sqlora serve` stored in
//! its feedback store, as training JSONL in the dataset format, for `sqlora train --extra`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sqlora_data::dataset::{self, Example};
use sqlora_serve::feedback::{FeedbackStore, GoldSource};

#[derive(Subcommand)]
pub enum FeedbackCmd {
    /// Write a database's confirmed and corrected answers as training JSONL (id, db_id,
    /// question, sql, difficulty): the corrected SQL when a user gave one, else the answer's
    /// SQL when it was marked correct; answers marked wrong without a correction are skipped.
    Export(ExportArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// The feedback store `sqlora serve` wrote. Default: $SQLORA_HOME/feedback.sqlite3.
    #[arg(long, value_name = "FILE")]
    pub feedback_db: Option<PathBuf>,
    /// The database (its name in `/v1/query`, e.g. a bundled domain); becomes `db_id`.
    #[arg(long)]
    pub database: String,
    /// Write to this file (atomically) instead of standard output.
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: Option<PathBuf>,
}

pub fn feedback(cmd: FeedbackCmd) -> Result<ExitCode> {
    match cmd {
        FeedbackCmd::Export(a) => export(&a),
    }
}

fn export(a: &ExportArgs) -> Result<ExitCode> {
    let path = a
        .feedback_db
        .clone()
        .unwrap_or_else(crate::cmd_serve::default_feedback_db);
    let store = FeedbackStore::open_existing(&path)?;
    let found = store.training_examples(&a.database)?;
    let mut examples = Vec::with_capacity(found.examples.len());
    let (mut corrected, mut unclassified) = (0, 0);
    for g in &found.examples {
        let difficulty = match sqlora_eval::hardness::hardness(&g.sql) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("skipped {}: cannot grade its SQL: {e}", g.query_id);
                unclassified += 1;
                continue;
            }
        };
        if g.source == GoldSource::Corrected {
            corrected += 1;
        }
        examples.push(Example {
            id: format!("{}_feedback_{}", a.database, g.query_id),
            db_id: a.database.clone(),
            question: g.question.clone(),
            sql: g.sql.clone(),
            difficulty,
        });
    }
    match &a.out {
        Some(out) => dataset::write_jsonl(out, &examples)
            .with_context(|| format!("writing {}", out.display()))?,
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            for e in &examples {
                serde_json::to_writer(&mut w, e)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
        }
    }
    eprintln!(
        "{}: {} examples ({corrected} corrected, {} confirmed) from {}; skipped {} marked wrong \
         without a correction, {} confirmed but invalid, {} duplicates{}",
        a.database,
        examples.len(),
        examples.len() - corrected,
        path.display(),
        found.skipped_wrong,
        found.skipped_invalid,
        found.duplicates,
        if unclassified > 0 {
            format!(", {unclassified} ungradable")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}
