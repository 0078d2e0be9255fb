//! Serving any SQLite file on the fly: `POST /v1/databases` under `--db-root` and
//! `DELETE /v1/databases/{name}` on a real server on a loopback port. A database added is
//! listed and answers at once (the real SmolLM2 model; the answer's shape is checked, not its
//! correctness), removed it is gone, added again under its name it starts a fresh prefix
//! cache entry; paths outside the root (by `..`, a link, an absolute path), missing files,
//! folders, files that are not SQLite, taken or bad names get their 4xx; without `--db-root`
//! the routes are off.
//!
//! The model comes from `SQLORA_MODEL` or the default path; when it is absent the tests that
//! need it skip with a message, unless `SQLORA_REQUIRE_MODEL=1`, where they fail.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::json;
use sqlora_model::LoadedModel;
use sqlora_serve::{App, DatabaseSpec, ServeConfig};

use common::{get, post, request, Kind};

fn start(model: LoadedModel, dbs: Vec<DatabaseSpec>, db_root: Option<PathBuf>) -> common::Running {
    let app = App::new(
        model,
        dbs,
        Vec::new(),
        ServeConfig {
            model_id: Some("base".to_string()),
            db_root,
            ..ServeConfig::default()
        },
    )
    .unwrap();
    common::Running::spawn(app)
}

/// The quirk fixture (tests/fixtures/quirks/quirks.sql) written to `path`.
fn quirks_db(path: &Path) {
    let sql = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/quirks/quirks.sql"),
    )
    .unwrap();
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
}

fn delete(addr: SocketAddr, path: &str) -> common::Resp {
    request(addr, "DELETE", path, None)
}

#[track_caller]
fn refused(r: &common::Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], code, "{}", r.body);
}

#[test]
fn databases_are_added_queried_and_removed_under_the_root() {
    let Some(path) = sqlora_model::testing::real_model_path() else {
        return;
    };
    let model = sqlora_model::load(&path, &candle_core::Device::Cpu).unwrap();
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    quirks_db(&root.path().join("sub/quirks.sqlite"));
    quirks_db(&outside.path().join("other.sqlite"));
    std::fs::write(root.path().join("notes.txt"), "not a database\n").unwrap();
    std::fs::write(root.path().join("empty.sqlite"), "").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        outside.path().join("other.sqlite"),
        root.path().join("escape.sqlite"),
    )
    .unwrap();
    std::fs::write(
        root.path().join("examples.jsonl"),
        "{\"question\": \"How many customers are there?\", \"sql\": \"SELECT count(*) FROM Customers\"}\n",
    )
    .unwrap();
    let shop = root.path().join("shop.sqlite");
    common::write_db(&shop);
    let srv = start(
        model,
        vec![DatabaseSpec {
            name: "shop".into(),
            path: shop,
        }],
        Some(root.path().to_path_buf()),
    );
    let a = srv.addr;

    // Add: 201 with the database as listed; views are tables marked as views.
    let r = post(
        a,
        "/v1/databases",
        &json!({"name": "quirks", "path": "sub/quirks.sqlite"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let d = r.json();
    assert_eq!(d["name"], "quirks");
    assert_eq!(d["added"], true);
    assert_eq!(d["prefix_cached"], true);
    let tables = d["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 6);
    assert!(tables
        .iter()
        .any(|t| t["name"] == "Big Orders" && t["view"] == true));
    let listed = get(a, "/v1/databases").json();
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["quirks", "shop"]);
    assert_eq!(listed["data"][1]["added"], false);

    // It answers at once, with the base model; the second question reuses the cached prefix.
    let ask = |q: &str| {
        post(
            a,
            "/v1/query",
            &json!({"database": "quirks", "question": q}),
        )
    };
    for (i, q) in ["How many customers are there?", "Which orders are big?"]
        .into_iter()
        .enumerate()
    {
        let r = ask(q);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["database"], "quirks");
        assert!(v["valid"].is_boolean(), "{v}");
        assert!(v["sql"].is_string() || v["sql"].is_null(), "{v}");
        assert!(v["rows"].is_array() || v["rows"].is_null(), "{v}");
        let cached = v["usage"]["cached_prompt_tokens"].as_u64().unwrap();
        if i == 1 {
            assert!(cached > 0, "{v}");
        }
    }

    // Taken name: 409, whatever the path.
    let r = post(
        a,
        "/v1/databases",
        &json!({"name": "shop", "path": "sub/quirks.sqlite"}),
    );
    refused(&r, 409, "conflict");

    // Remove; then it is unknown, and removing it again is a 404.
    let r = delete(a, "/v1/databases/quirks");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["deleted"], "quirks");
    refused(
        &ask("How many customers are there?"),
        404,
        "unknown_database",
    );
    refused(&delete(a, "/v1/databases/quirks"), 404, "unknown_database");
    // A database given on the command line stays.
    refused(&delete(a, "/v1/databases/shop"), 403, "database_fixed");

    // Added again under the same name (with examples): a new prefix cache entry, and the
    // examples are retrieved.
    let abs = std::fs::canonicalize(root.path().join("sub/quirks.sqlite")).unwrap();
    let r = post(
        a,
        "/v1/databases",
        &json!({"name": "quirks", "path": abs, "examples": "examples.jsonl"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["examples"], 1);
    let r = post(
        a,
        "/v1/query",
        &json!({"database": "quirks", "question": "How many orders are there?", "examples": 1}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["usage"]["cached_prompt_tokens"], 0, "{v}");
    assert_eq!(v["examples"].as_array().unwrap().len(), 1, "{v}");

    // Refusals.
    let add = |name: &str, path: serde_json::Value| {
        post(a, "/v1/databases", &json!({"name": name, "path": path}))
    };
    let outside_abs = outside.path().join("other.sqlite");
    refused(&add("x", json!("../other.sqlite")), 403, "outside_db_root");
    refused(
        &add("x", json!("sub/../../../../../../etc/passwd")),
        403,
        "outside_db_root",
    );
    refused(&add("x", json!(outside_abs)), 403, "outside_db_root");
    #[cfg(unix)]
    refused(&add("x", json!("escape.sqlite")), 403, "outside_db_root");
    refused(&add("x", json!("nope.sqlite")), 404, "no_such_file");
    refused(&add("x", json!("sub")), 400, "not_a_file");
    refused(&add("x", json!("notes.txt")), 422, "not_sqlite");
    refused(&add("x", json!("empty.sqlite")), 422, "not_sqlite");
    refused(&add("a/b", json!("sub/quirks.sqlite")), 400, "bad_name");
    refused(&add("..", json!("sub/quirks.sqlite")), 400, "bad_name");
    let r = post(
        a,
        "/v1/databases",
        &json!({"name": "x", "path": "sub/quirks.sqlite", "examples": outside_abs}),
    );
    refused(&r, 403, "outside_db_root");
    let r = post(a, "/v1/databases", &json!({"name": "x"}));
    refused(&r, 400, "bad_request");
    // Nothing refused was added; the file outside was never written.
    let listed = get(a, "/v1/databases").json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
}

#[test]
fn without_a_db_root_adding_and_removing_is_off() {
    let (_dir, model) = common::tiny_model(Kind::Random, 3);
    let ddir = tempfile::tempdir().unwrap();
    let db = ddir.path().join("shop.sqlite");
    common::write_db(&db);
    let srv = start(
        model,
        vec![DatabaseSpec {
            name: "shop".into(),
            path: db.clone(),
        }],
        None,
    );
    let r = post(
        srv.addr,
        "/v1/databases",
        &json!({"name": "again", "path": db}),
    );
    refused(&r, 403, "databases_fixed");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--db-root"));
    refused(
        &delete(srv.addr, "/v1/databases/shop"),
        403,
        "databases_fixed",
    );
    assert_eq!(
        get(srv.addr, "/v1/databases").json()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_missing_db_root_fails_at_start() {
    let (_dir, model) = common::tiny_model(Kind::Random, 3);
    let err = App::new(
        model,
        Vec::new(),
        Vec::new(),
        ServeConfig {
            db_root: Some(PathBuf::from("/no/such/folder")),
            ..ServeConfig::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("/no/such/folder"), "{err}");
}
