//! The databases a running server answers about, and the routes that add and remove them:
//! `POST /v1/databases {name, path, examples?}` and `DELETE /v1/databases/{name}`.
//!
//! Adding is on only when the server has a database root (`sqlora serve --db-root DIR`,
//! [`crate::ServeConfig::db_root`]); without one both routes answer 403 and say so. A path
//! (relative to the root, or absolute) is accepted only when it lies under the root once `..`
//! and symbolic links are resolved (`std::fs::canonicalize`), names a regular file that starts
//! with SQLite's header, and opens read-only (`ReadOnlyDb`, as every served database). The
//! schema is introspected and the prompt prefix and the schema constraint are computed on a
//! blocking thread before the database is listed, so it answers at once, with the base model
//! (or the adapter of the same name, as any database) and the examples file given with it.
//!
//! Invariants:
//! - A request holds an `Arc` of its [`Database`]: removing a database while a request uses
//!   it is safe, the request finishes on the old one, and its connection closes when the
//!   last request lets go.
//! - Each opened database has a process-unique id ([`Database::id`]), and the prefix cache
//!   keys its entries by [`Database::prefix_key`] (`name#id`): a database added later under a
//!   removed one's name never meets the old one's cached prefix (which the LRU evicts in time).
//! - Databases given on the command line stay for the server's life (DELETE: 403); only
//!   added ones can be removed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};
use sqlora_sqlgen::{Constrainer, ExampleIndex};

use crate::database::Database;
use crate::error::{Result, ServeError};
use crate::http::{parse_body, ApiError, AppState};

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The served databases by name, shared by the request handlers; added and removed at runtime
/// when the server has a database root.
pub struct Registry {
    dbs: RwLock<BTreeMap<String, Arc<Database>>>,
    /// The database root as given (made absolute) and resolved (`None`: adding is off).
    root: Option<(PathBuf, PathBuf)>,
    /// The vocabulary as bytes, for the constraints of databases added later.
    constrainer: Constrainer,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("databases", &self.names())
            .field("root", &self.root())
            .finish_non_exhaustive()
    }
}

/// Whether `name` may name a database: 1-64 letters, digits, `-`, `_` or `.`, not starting
/// with `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `path` with `.` and `..` applied without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn off() -> ServeError {
    ServeError::Forbidden {
        code: "databases_fixed",
        message: "adding and removing databases is off: start the server with --db-root DIR \
                  to serve SQLite files under DIR on the fly"
            .into(),
    }
}

impl Registry {
    /// A registry holding `dbs`; `root`: the folder added databases must lie under (`None`:
    /// adding is off). The root must be an existing folder.
    pub fn new(
        dbs: BTreeMap<String, Arc<Database>>,
        root: Option<&Path>,
        constrainer: Constrainer,
    ) -> Result<Registry> {
        let root = match root {
            None => None,
            Some(r) => {
                let canon = std::fs::canonicalize(r).map_err(|e| {
                    ServeError::Internal(format!("the database root {}: {e}", r.display()))
                })?;
                if !canon.is_dir() {
                    return Err(ServeError::Internal(format!(
                        "the database root {} is not a folder",
                        r.display()
                    )));
                }
                let given = std::path::absolute(r).map(|p| lexical(&p)).map_err(|e| {
                    ServeError::Internal(format!("the database root {}: {e}", r.display()))
                })?;
                Some((given, canon))
            }
        };
        Ok(Registry {
            dbs: RwLock::new(dbs),
            root,
            constrainer,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Database>>> {
        self.dbs.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Database>>> {
        self.dbs.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The database called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Database>> {
        self.read().get(name).cloned()
    }

    /// The database called `name`, or a 404 `unknown_database` that lists the known ones.
    pub fn lookup(&self, name: &str) -> Result<Arc<Database>> {
        self.get(name).ok_or_else(|| {
            ServeError::not_found(
                "unknown_database",
                format!(
                    "no database named '{name}' (known: {})",
                    self.names().join(", ")
                ),
            )
        })
    }

    /// The names of the served databases, sorted.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// The served databases, by name.
    pub fn list(&self) -> Vec<Arc<Database>> {
        self.read().values().cloned().collect()
    }

    /// How many databases are served.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no database is served.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The database root, resolved (`None`: adding is off).
    pub fn root(&self) -> Option<&Path> {
        self.root.as_ref().map(|(_, c)| c.as_path())
    }

    /// The constrainer databases are opened with.
    pub fn constrainer(&self) -> &Constrainer {
        &self.constrainer
    }

    /// `requested` (relative to the root, or absolute) resolved to a regular file under the
    /// root: 403 when adding is off or the path leads outside the root (by `..` or a symbolic
    /// link), 404 when nothing is there, 400 when it is not a regular file.
    pub fn resolve(&self, requested: &Path) -> Result<PathBuf> {
        let (given, canon_root) = self.root.as_ref().ok_or_else(off)?;
        let outside = || ServeError::Forbidden {
            code: "outside_db_root",
            message: format!(
                "{} is not under the database root {} (after resolving '..' and links)",
                requested.display(),
                canon_root.display()
            ),
        };
        let joined = lexical(&canon_root.join(requested));
        // Refuse what is outside by its spelling before touching the file system, so the
        // answer says nothing about files outside the root.
        if !joined.starts_with(canon_root) && !lexical(&given.join(requested)).starts_with(given) {
            return Err(outside());
        }
        let real = match std::fs::canonicalize(canon_root.join(requested)) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ServeError::not_found(
                    "no_such_file",
                    format!("no file {} under the database root", requested.display()),
                ))
            }
            Err(e) => {
                return Err(ServeError::bad(
                    "bad_path",
                    format!("cannot resolve {}: {e}", requested.display()),
                ))
            }
        };
        if !real.starts_with(canon_root) {
            return Err(outside());
        }
        if !real.is_file() {
            return Err(ServeError::bad(
                "not_a_file",
                format!("{} is not a regular file", requested.display()),
            ));
        }
        Ok(real)
    }

    /// Adds `db` unless its name is taken (409).
    pub fn insert(&self, db: Arc<Database>) -> Result<()> {
        let mut dbs = self.write();
        if dbs.contains_key(&db.name) {
            return Err(ServeError::Conflict(format!(
                "a database called '{}' is already served (DELETE /v1/databases/{} first)",
                db.name, db.name
            )));
        }
        dbs.insert(db.name.clone(), db);
        Ok(())
    }

    /// Removes the added database `name`: 403 when adding is off or it was given on the
    /// command line, 404 when there is none. Requests using it finish on it.
    pub fn remove(&self, name: &str) -> Result<Arc<Database>> {
        if self.root.is_none() {
            return Err(off());
        }
        let mut dbs = self.write();
        match dbs.get(name) {
            None => Err(ServeError::not_found(
                "unknown_database",
                format!("no database named '{name}'"),
            )),
            Some(d) if !d.added => Err(ServeError::Forbidden {
                code: "database_fixed",
                message: format!(
                    "'{name}' was given on the command line and is served for the server's life; \
                     only databases added with POST /v1/databases can be removed"
                ),
            }),
            Some(_) => dbs
                .remove(name)
                .ok_or_else(|| ServeError::Internal(format!("'{name}' vanished"))),
        }
    }
}

/// A database as `GET /v1/databases` lists it.
pub(crate) fn describe(s: &AppState, d: &Database) -> Json_ {
    let tables: Vec<Json_> = d
        .schema
        .tables
        .iter()
        .map(|t| {
            json!({"name": t.name,
                   "view": t.view,
                   "columns": t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>()})
        })
        .collect();
    json!({
        "name": d.name,
        "schema": d.schema.to_compact(),
        "tables": tables,
        "adapter": s.engine.shared.has_adapter(&d.name).then(|| d.name.clone()),
        "examples": d.examples.as_ref().map_or(0, |e| e.len()),
        "added": d.added,
        "prefix_cached": !d.prefix_tokens.is_empty(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddDatabaseBody {
    name: String,
    path: PathBuf,
    /// Training examples (JSONL, as `--examples`), also under the root.
    #[serde(default)]
    examples: Option<PathBuf>,
}

/// `POST /v1/databases`: serves a SQLite file under the database root (201 with the
/// database as listed; see the module docs for the refusals).
pub(crate) async fn add_database(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    if s.databases.root().is_none() {
        return Err(off().into());
    }
    let b: AddDatabaseBody = parse_body(body)?;
    if !valid_name(&b.name) {
        return Err(ServeError::bad(
            "bad_name",
            format!(
                "database names are 1-64 letters, digits, '-', '_' or '.', not starting with \
                 '.'; got '{}'",
                b.name
            ),
        )
        .into());
    }
    if s.databases.get(&b.name).is_some() {
        return Err(ServeError::Conflict(format!(
            "a database called '{}' is already served (DELETE /v1/databases/{} first)",
            b.name, b.name
        ))
        .into());
    }
    let path = s.databases.resolve(&b.path)?;
    check_sqlite_header(&path, &b.path)?;
    let examples = b
        .examples
        .as_deref()
        .map(|e| s.databases.resolve(e))
        .transpose()?;
    let s2 = s.clone();
    let name = b.name.clone();
    let db = tokio::task::spawn_blocking(move || -> Result<Database> {
        let model = s2.engine.model();
        let mut db = Database::open(&name, &path, model, &s2.builder, s2.databases.constrainer())
            .map_err(|e| match e {
            ServeError::Database { path, message } => ServeError::Unprocessable {
                code: "unusable_database",
                message: format!("cannot serve {}: {message}", path.display()),
            },
            other => other,
        })?;
        db.added = true;
        if let Some(file) = examples {
            let index = ExampleIndex::from_jsonl(&file).map_err(|e| ServeError::Unprocessable {
                code: "bad_examples",
                message: format!("the examples file: {e}"),
            })?;
            db.examples = Some(Arc::new(index));
        }
        Ok(db)
    })
    .await
    .map_err(|e| ServeError::Internal(format!("opening the database failed: {e}")))??;
    let db = Arc::new(db);
    s.databases.insert(db.clone())?;
    Ok((StatusCode::CREATED, Json(describe(&s, &db))).into_response())
}

/// Refuses (422) a file that does not start with SQLite's header (an empty file included).
fn check_sqlite_header(path: &Path, requested: &Path) -> Result<()> {
    let mut head = [0u8; 16];
    let ok = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == SQLITE_HEADER;
    if ok {
        Ok(())
    } else {
        Err(ServeError::Unprocessable {
            code: "not_sqlite",
            message: format!("{} is not a SQLite database", requested.display()),
        })
    }
}

/// `DELETE /v1/databases/{name}`: stops serving an added database.
pub(crate) async fn remove_database(
    State(s): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
) -> std::result::Result<Json<Json_>, ApiError> {
    s.databases.remove(&name)?;
    Ok(Json(json!({"deleted": name})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lexical_paths() {
        assert!(valid_name("shop-2.v1_x"));
        for bad in ["", ".hidden", "a/b", "a b", "ü", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(lexical(Path::new("/r/a/../b/./c")), Path::new("/r/b/c"));
        assert_eq!(lexical(Path::new("/r/../../etc")), Path::new("/etc"));
    }
}
