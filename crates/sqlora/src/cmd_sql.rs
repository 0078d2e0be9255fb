//! `schema`, `validate`, `exec`: the SQL guard and the read-only executor on the command line.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use sqlora_sql::exec::{ExecError, ExecLimits, ReadOnlyDb};
use sqlora_sql::schema::Schema;

use crate::{exit, paths, table};

#[derive(Args)]
pub struct SchemaArgs {
    /// A SQLite file or the name of a bundled domain.
    pub db: String,
    /// Print the schema as JSON (tables, columns, types, keys, sample values).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ValidateArgs {
    /// A SQLite file or the name of a bundled domain.
    #[arg(long)]
    pub db: String,
    /// The SQL to check.
    pub sql: String,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ExecArgs {
    /// A SQLite file or the name of a bundled domain.
    #[arg(long)]
    pub db: String,
    /// The SQL to run (validated first).
    pub sql: String,
    /// Print the result (or error) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Row budget: more rows than this is a budget overrun.
    #[arg(long, default_value_t = 1000)]
    pub max_rows: usize,
    /// Time budget in milliseconds, enforced inside SQLite.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Byte budget on the result.
    #[arg(long, default_value_t = 8 << 20)]
    pub max_bytes: usize,
}

pub fn schema(a: SchemaArgs) -> Result<ExitCode> {
    let path = paths::resolve_db(&a.db)?;
    let schema = Schema::introspect(&path)
        .with_context(|| format!("reading the schema of {}", path.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&schema)?);
    } else {
        println!("-- {}", path.display());
        println!("{}", schema.to_ddl().trim_end());
        println!();
        println!("-- compact");
        println!("{}", schema.to_compact().trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn validate(a: ValidateArgs) -> Result<ExitCode> {
    let path = paths::resolve_db(&a.db)?;
    let db = ReadOnlyDb::open(&path).with_context(|| format!("opening {}", path.display()))?;
    match db.check(&a.sql) {
        Ok(()) => {
            if a.json {
                println!("{}", json!({"valid": true, "error": null}));
            } else {
                println!("ok: accepted (one read-only statement; every table and column exists)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if a.json {
                println!("{}", json!({"valid": false, "error": e}));
            } else {
                eprintln!("refused [{}]: {}", e.code.as_str(), e.message);
                if let Some(p) = &e.position {
                    eprintln!("  at line {}, column {}", p.line, p.column);
                }
                if let Some(s) = &e.suggestion {
                    eprintln!("  did you mean '{s}'?");
                }
            }
            Ok(ExitCode::from(exit::REFUSED))
        }
    }
}

pub fn exec(a: ExecArgs) -> Result<ExitCode> {
    let path = paths::resolve_db(&a.db)?;
    let db = ReadOnlyDb::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let limits = ExecLimits {
        timeout: Duration::from_millis(a.timeout_ms),
        max_rows: a.max_rows,
        max_bytes: a.max_bytes,
    };
    match db.execute(&a.sql, &limits) {
        Ok(res) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string(
                        &json!({"ok": !res.truncated, "error": if res.truncated { json!({"code": "budget", "message": "row or byte budget exceeded; result truncated"}) } else { json!(null) }, "columns": res.columns, "rows": res.rows, "truncated": res.truncated, "elapsed_ms": res.elapsed_ms})
                    )?
                );
            } else {
                print!("{}", table::render(&res.columns, &res.rows, 60));
                println!(
                    "({} row{}, {:.1} ms)",
                    res.rows.len(),
                    if res.rows.len() == 1 { "" } else { "s" },
                    res.elapsed_ms
                );
            }
            if res.truncated {
                eprintln!(
                    "budget exceeded: the result has more than {} rows or {} bytes; output truncated",
                    a.max_rows, a.max_bytes
                );
                return Ok(ExitCode::from(exit::BUDGET));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let code = match &e {
                ExecError::Guard(_) => exit::REFUSED,
                ExecError::Timeout { .. } => exit::BUDGET,
                _ => exit::EXEC_ERROR,
            };
            if a.json {
                let err = match &e {
                    ExecError::Guard(g) => serde_json::to_value(g)?,
                    other => json!({"code": other.code(), "message": other.to_string()}),
                };
                println!(
                    "{}",
                    json!({"ok": false, "error": err, "columns": [], "rows": []})
                );
            } else {
                eprintln!("error [{}]: {e}", e.code());
            }
            Ok(ExitCode::from(code))
        }
    }
}
