//! The feedback routes: `POST /v1/feedback` (a verdict on a `/v1/query` answer, with an
//! optional corrected SQL that is guarded and run before it is accepted) and `POST /v1/sql`
//! (a user's SQL through the same guard and read-only execution, for the page's "edit SQL
//! and run" box), and the `/v1/query` side: [`record_answer`] stores each answer under a new
//! `query_id`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};
use sqlora_sql::exec::{ExecError, ExecLimits, QueryResult};
use sqlora_sqlgen::Answer;

use crate::database::Database;
use crate::error::{Result, ServeError};
use crate::feedback::{
    new_query_id, now_ms, result_digest, FeedbackError, FeedbackStore, NewFeedback, QueryRecord,
    Verdict,
};
use crate::http::{parse_body, AppResult, AppState};
use crate::metrics::Metrics;

/// Stores an answered question and returns its new `query_id`; `None` when feedback is off or
/// the write failed (counted in `sqlora_feedback_store_errors_total` and logged: the answer
/// itself is still given). Runs on a blocking thread.
pub(crate) fn record_answer(
    store: Option<&FeedbackStore>,
    metrics: &Metrics,
    database: &str,
    adapter: Option<&str>,
    question: &str,
    ans: &Answer,
) -> Option<String> {
    let store = store?;
    let ran = ans.valid && !ans.columns.is_empty();
    let rec = QueryRecord {
        query_id: new_query_id(),
        created_ms: now_ms(),
        database: database.to_string(),
        adapter: adapter.map(str::to_string),
        question: question.to_string(),
        sql: ans.sql.clone(),
        valid: ans.valid,
        result_digest: ran.then(|| result_digest(&ans.columns, &ans.rows)),
    };
    match store.record_query(&rec) {
        Ok(()) => Some(rec.query_id),
        Err(e) => {
            metrics.inc("sqlora_feedback_store_errors_total", &[]);
            eprintln!("warning: {e}");
            None
        }
    }
}

fn database(s: &AppState, name: &str) -> Result<Arc<Database>> {
    s.databases.lookup(name)
}

/// Runs a user's SQL through the guard and read-only execution on a blocking thread. A refusal
/// is 422 `guard_refused` with the guard's reason; a failure to run is 422 `sql_failed`.
async fn run_guarded(db: Arc<Database>, sql: String, max_rows: usize) -> Result<QueryResult> {
    let limits = ExecLimits {
        max_rows,
        ..ExecLimits::default()
    };
    let r = tokio::task::spawn_blocking(move || db.with_db(|conn| conn.execute(&sql, &limits)))
        .await
        .map_err(|e| ServeError::Internal(format!("query execution failed: {e}")))?;
    r.map_err(|e| match &e {
        ExecError::Guard(g) => ServeError::unprocessable(
            "guard_refused",
            format!("the SQL was refused by the guard: {g}"),
        ),
        _ => ServeError::unprocessable("sql_failed", format!("the SQL did not run: {e}")),
    })
}

/// Runs `f` with the store on a blocking thread (writes wait for the disk).
async fn with_store<T: Send + 'static>(
    store: Arc<FeedbackStore>,
    f: impl FnOnce(&FeedbackStore) -> std::result::Result<T, FeedbackError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ServeError::Internal(format!("feedback store task failed: {e}")))?
        .map_err(|e| match e {
            FeedbackError::UnknownQuery(id) => ServeError::not_found(
                "unknown_query",
                format!("no answer with query_id '{id}' is known to this server"),
            ),
            other => ServeError::Feedback(other),
        })
}

fn nonempty_sql(sql: &str) -> Result<String> {
    let t = sql.trim();
    if t.is_empty() {
        return Err(ServeError::bad("empty_sql", "the SQL is empty"));
    }
    if t.contains('\0') {
        return Err(ServeError::bad(
            "bad_sql",
            "the SQL contains a NUL character",
        ));
    }
    Ok(t.to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    query_id: String,
    verdict: String,
    #[serde(default)]
    corrected_sql: Option<String>,
}

/// `POST /v1/feedback {query_id, verdict: correct|wrong, corrected_sql?}`: stored (on disk)
/// before the 200. A corrected SQL goes with `wrong` only, and is accepted only when the guard
/// accepts it and it runs on the query's database; its rows come back.
pub(crate) async fn feedback(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> AppResult<Json<Json_>> {
    let b: FeedbackBody = parse_body(body)?;
    let Some(store) = s.feedback.clone() else {
        return Err(ServeError::not_found(
            "feedback_disabled",
            "this server keeps no feedback (it was started with --no-feedback)",
        )
        .into());
    };
    let verdict = Verdict::parse(&b.verdict).ok_or_else(|| {
        ServeError::bad(
            "bad_verdict",
            format!("verdict must be 'correct' or 'wrong', got '{}'", b.verdict),
        )
    })?;
    let corrected = b.corrected_sql.as_deref().map(nonempty_sql).transpose()?;
    if corrected.is_some() && verdict == Verdict::Correct {
        return Err(ServeError::bad(
            "bad_feedback",
            "corrected_sql goes with the verdict 'wrong'",
        )
        .into());
    }
    let id = b.query_id.clone();
    let record = with_store(store.clone(), move |st| st.query(&id))
        .await?
        .ok_or_else(|| {
            ServeError::not_found(
                "unknown_query",
                format!(
                    "no answer with query_id '{}' is known to this server",
                    b.query_id
                ),
            )
        })?;
    let mut result = None;
    if let Some(sql) = &corrected {
        let db = database(&s, &record.database).map_err(|_| {
            ServeError::not_found(
                "unknown_database",
                format!(
                    "the query's database '{}' is not served now, so its corrected SQL cannot \
                     be checked",
                    record.database
                ),
            )
        })?;
        result = Some(run_guarded(db, sql.clone(), ExecLimits::default().max_rows).await?);
    }
    let new = NewFeedback {
        query_id: record.query_id.clone(),
        verdict,
        corrected_sql: corrected.clone(),
        corrected_digest: result.as_ref().map(|r| result_digest(&r.columns, &r.rows)),
    };
    let feedback_id = with_store(store, move |st| st.add_feedback(&new)).await?;
    let kind = match (verdict, &corrected) {
        (_, Some(_)) => "corrected",
        (v, None) => v.as_str(),
    };
    s.metrics.inc("sqlora_feedback_total", &[("verdict", kind)]);
    let mut out = json!({
        "feedback_id": feedback_id,
        "query_id": record.query_id,
        "database": record.database,
        "verdict": verdict.as_str(),
        "corrected_sql": corrected,
    });
    if let Some(r) = result {
        out["columns"] = json!(r.columns);
        out["rows"] = json!(r.rows);
        out["truncated"] = json!(r.truncated);
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlBody {
    database: String,
    sql: String,
    #[serde(default)]
    max_rows: Option<i64>,
}

/// `POST /v1/sql {database, sql, max_rows?}`: the SQL through the guard and read-only
/// execution, as every answer's SQL; rows, or a 422 with the guard's reason or SQLite's error.
pub(crate) async fn run_sql(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> AppResult<Json<Json_>> {
    let b: SqlBody = parse_body(body)?;
    let db = database(&s, &b.database)?;
    let sql = nonempty_sql(&b.sql)?;
    let max_rows = s.limits.rows_of(b.max_rows)?;
    let r = run_guarded(db.clone(), sql.clone(), max_rows).await?;
    Ok(Json(json!({
        "database": db.name,
        "sql": sql,
        "columns": r.columns,
        "rows": r.rows,
        "truncated": r.truncated,
        "timings": {"execute_ms": r.elapsed_ms},
    })))
}
