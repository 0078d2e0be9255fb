//! The databases the service answers questions about.
//!
//! Prompts, SQL extraction and execution-guided answers come from `sqlora-sqlgen`, exactly as
//! `sqlora ask` uses them; this module keeps what the service adds: a name, one connection
//! shared by the request handlers, the token prefix every prompt about the database starts
//! with (the prefix cache's key material; retrieved examples come after it) and its training
//! examples for few-shot prompts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sqlora_model::LoadedModel;
use sqlora_sql::exec::ReadOnlyDb;
use sqlora_sql::schema::Schema;
use sqlora_sqlgen::{prefix_tokens, Constrainer, ExampleIndex, PromptBuilder, SchemaConstraints};

use crate::error::{Result, ServeError};

/// The next [`Database::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A database the service answers questions about.
pub struct Database {
    /// Its name in requests (`database`).
    pub name: String,
    /// Unique among the databases this process opened (a database added under a removed
    /// one's name gets another).
    pub id: u64,
    /// Added at runtime (`POST /v1/databases`), not given on the command line.
    pub added: bool,
    /// The SQLite file.
    pub path: PathBuf,
    /// Its schema.
    pub schema: Schema,
    db: Mutex<ReadOnlyDb>,
    /// Token ids every prompt about this database starts with; empty when its whole schema
    /// does not fit the prompt budget (prompts then show the columns relevant to each
    /// question, and nothing is cached).
    pub prefix_tokens: Vec<u32>,
    /// Schema-constrained decoding over this database (its schema index, built once).
    pub constraints: SchemaConstraints,
    /// Training examples of this database for few-shot prompts (`examples` of `/v1/query`).
    pub examples: Option<Arc<ExampleIndex>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("added", &self.added)
            .field("path", &self.path)
            .field("prefix_tokens", &self.prefix_tokens.len())
            .field("examples", &self.examples.as_ref().map(|e| e.len()))
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens `path` read-only, introspects it, computes its prompt prefix and its constraints
    /// (for answers primed with `SELECT`, as `/v1/query` primes them).
    pub fn open(
        name: &str,
        path: &Path,
        model: &LoadedModel,
        builder: &PromptBuilder,
        constrainer: &Constrainer,
    ) -> Result<Database> {
        let db = ReadOnlyDb::open(path).map_err(|e| ServeError::Database {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let schema = db.guard().schema().clone();
        let prefix_tokens = prefix_tokens(model, builder, &schema)?;
        let constraints = constrainer.for_schema(&schema, true);
        Ok(Database {
            name: name.to_string(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            added: false,
            path: path.to_path_buf(),
            schema,
            db: Mutex::new(db),
            prefix_tokens,
            constraints,
            examples: None,
        })
    }

    /// The prefix cache's name for this database's prompt prefix: its name and its id, so a
    /// database added later under the same name never meets this one's cached prefix.
    pub fn prefix_key(&self) -> String {
        format!("{}#{}", self.name, self.id)
    }

    /// Runs `f` with the database connection (one query at a time per database).
    pub fn with_db<T>(&self, f: impl FnOnce(&ReadOnlyDb) -> T) -> T {
        let g = self.db.lock().unwrap_or_else(|e| e.into_inner());
        f(&g)
    }
}
