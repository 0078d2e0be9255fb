//! End to end: a 10-example dataset on a real database with 3 test-suite
//! files, scored first with the gold queries themselves, then with a
//! corrupted prediction set whose score was worked out by hand.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection};
use sqlora_eval::{
    evaluate, evaluate_with_progress, read_predictions, skeleton, skeleton_set, Bucket, Difficulty,
    EvalError, EvalItem, EvalOptions,
};

type Singer = (i64, &'static str, &'static str, i64);

fn make_db(path: &Path, singers: &[Singer], links: &[(i64, i64)]) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, age INTEGER);
         CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER);
         CREATE TABLE singer_in_concert (concert_id INTEGER REFERENCES concert(concert_id),
                                         singer_id INTEGER REFERENCES singer(singer_id));
         INSERT INTO concert VALUES (1, 'Auditions', 2014), (2, 'Super bootcamp', 2014), (3, 'Home Visits', 2015);",
    )
    .unwrap();
    for (id, name, country, age) in singers {
        conn.execute(
            "INSERT INTO singer VALUES (?1, ?2, ?3, ?4)",
            params![id, name, country, age],
        )
        .unwrap();
    }
    for (c, s) in links {
        conn.execute(
            "INSERT INTO singer_in_concert VALUES (?1, ?2)",
            params![c, s],
        )
        .unwrap();
    }
}

/// `dir/concert_singer/` with the base database and two variants.
fn build_suite(dir: &Path) -> Vec<PathBuf> {
    let suite = dir.join("concert_singer");
    std::fs::create_dir_all(&suite).unwrap();
    let base: Vec<Singer> = vec![
        (1, "Joe Sharp", "Netherlands", 52),
        (2, "Timbaland", "United States", 32),
        (3, "Justin Brown", "France", 29),
        (4, "Rose White", "France", 41),
        (5, "John Nizinik", "France", 43),
        (6, "Tribal King", "France", 25),
    ];
    let links = [(1, 2), (1, 3), (1, 5), (2, 3), (2, 6), (3, 5), (3, 4)];
    make_db(&suite.join("concert_singer.sqlite"), &base, &links);
    // Variant 1: Timbaland is 28 and Joe sings too.
    let mut v1 = base.clone();
    v1[1].3 = 28;
    make_db(
        &suite.join("concert_singer_1.sqlite"),
        &v1,
        &[(1, 2), (1, 1), (2, 4), (3, 6), (3, 3)],
    );
    // Variant 2: a seventh singer, other ages, other line-ups.
    let mut v2 = base.clone();
    v2.push((7, "Ana Lee", "Spain", 35));
    v2[2].3 = 47;
    make_db(
        &suite.join("concert_singer_2.sqlite"),
        &v2,
        &[(2, 7), (2, 5), (1, 5), (3, 1), (3, 2), (1, 6)],
    );
    vec![
        suite.join("concert_singer.sqlite"),
        suite.join("concert_singer_1.sqlite"),
        suite.join("concert_singer_2.sqlite"),
    ]
}

const GOLD: [&str; 10] = [
    // easy
    "SELECT count(*) FROM singer",
    "SELECT name FROM singer WHERE age > 30",
    // medium
    "SELECT name, country, age FROM singer ORDER BY age DESC",
    "SELECT country, count(*) FROM singer GROUP BY country",
    "SELECT avg(age), min(age), max(age) FROM singer WHERE country = 'France'",
    // hard
    "SELECT name FROM singer WHERE singer_id NOT IN (SELECT singer_id FROM singer_in_concert)",
    "SELECT T2.name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id \
     JOIN concert AS T3 ON T1.concert_id = T3.concert_id WHERE T3.year = 2014",
    "SELECT country FROM singer WHERE age > 40 INTERSECT SELECT country FROM singer WHERE age < 30",
    // extra
    "SELECT T2.name, count(*) FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id \
     GROUP BY T1.singer_id ORDER BY count(*) DESC, T2.name LIMIT 1",
    "SELECT name FROM singer WHERE age > 20 AND singer_id IN (SELECT singer_id FROM singer_in_concert)",
];

fn items() -> Vec<EvalItem> {
    GOLD.iter()
        .enumerate()
        .map(|(i, g)| EvalItem {
            id: format!("q{}", i + 1),
            db_id: "concert_singer".to_string(),
            gold: g.to_string(),
            difficulty: None,
        })
        .collect()
}

fn opts() -> EvalOptions {
    EvalOptions {
        timeout: Duration::from_secs(10),
        ..EvalOptions::default()
    }
}

fn bucket(total: usize, correct: usize) -> Bucket {
    Bucket {
        total,
        correct,
        ex: correct as f64 / total as f64,
    }
}

#[test]
fn gold_against_itself_scores_one() {
    let dir = tempfile::tempdir().unwrap();
    build_suite(dir.path());
    let items = items();
    let preds: Vec<String> = GOLD.iter().map(|s| s.to_string()).collect();
    let report = evaluate(&items, &preds, dir.path(), &opts()).unwrap();
    assert_eq!(report.total, 10);
    assert_eq!(report.correct, 10);
    assert_eq!(report.ex, 1.0);
    assert_eq!(report.valid_sql_rate, 1.0);
    assert_eq!(report.exec_error_rate, 0.0);
    assert_eq!(report.by_difficulty["easy"], bucket(2, 2));
    assert_eq!(report.by_difficulty["medium"], bucket(3, 3));
    assert_eq!(report.by_difficulty["hard"], bucket(3, 3));
    assert_eq!(report.by_difficulty["extra"], bucket(2, 2));
    assert!(report.seen_skeleton.is_none());
}

/// Predictions, with the verdict worked out by hand for each.
fn corrupted() -> Vec<String> {
    [
        // q1 easy: equivalent (singer_id is never NULL)          -> correct
        "SELECT COUNT(singer_id) FROM singer",
        // q2 easy: the base database's answer hard-coded        -> wrong (variant 1)
        "SELECT name FROM singer WHERE singer_id IN (1, 2, 4, 5)",
        // q3 medium: ascending instead of descending            -> wrong (order matters)
        "SELECT name, country, age FROM singer ORDER BY age ASC",
        // q4 medium: columns swapped                             -> correct
        "select count(*), country from singer group by country",
        // q5 medium: broken (unterminated string)               -> invalid
        "SELECT avg(age), min(age), max(age) FROM singer WHERE country = 'France",
        // q6 hard: extra DISTINCT, removed before execution     -> correct
        "SELECT DISTINCT name FROM singer WHERE singer_id NOT IN (SELECT singer_id FROM singer_in_concert)",
        // q7 hard: a write                                       -> refused by the guard, invalid
        "DELETE FROM singer",
        // q8 hard: same sets, split operators                   -> correct
        "SELECT country FROM singer WHERE age > = 41 INTERSECT SELECT country FROM singer WHERE age < = 29",
        // q9 extra: valid but fails in SQLite                   -> execution error
        "SELECT no_such_function(name) FROM singer",
        // q10 extra: swapped with q6's gold                     -> wrong
        "SELECT name FROM singer WHERE singer_id NOT IN (SELECT singer_id FROM singer_in_concert)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn corrupted_predictions_score_what_was_computed_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let paths = build_suite(dir.path());
    let items = items();
    // Skeletons of q1 and q2 (different literals) occur in training.
    let train = skeleton_set([
        "SELECT count(*) FROM singer",
        "select name from singer where age > 45",
    ]);
    assert_eq!(train.len(), 2);
    assert!(train.contains(&skeleton("SELECT name FROM singer WHERE age > 30")));
    let opts = EvalOptions {
        train_skeletons: Some(train),
        ..opts()
    };
    let mut seen_ids = Vec::new();
    let report = evaluate_with_progress(&items, &corrupted(), dir.path(), &opts, &mut |d| {
        seen_ids.push(d.id.clone())
    })
    .unwrap();
    assert_eq!(seen_ids.len(), 10);
    assert_eq!(seen_ids[9], "q10");

    let correct: Vec<&str> = report
        .details
        .iter()
        .filter(|d| d.correct)
        .map(|d| d.id.as_str())
        .collect();
    assert_eq!(correct, ["q1", "q4", "q6", "q8"]);
    assert_eq!(report.correct, 4);
    assert_eq!(report.ex, 0.4);
    assert_eq!(report.valid_sql_rate, 0.8);
    assert_eq!(report.exec_error_rate, 0.1);

    let invalid: Vec<&str> = report
        .details
        .iter()
        .filter(|d| !d.valid)
        .map(|d| d.id.as_str())
        .collect();
    assert_eq!(invalid, ["q5", "q7"]);
    let q7 = &report.details[6];
    assert!(
        q7.error.as_deref().unwrap().contains("not_read_only"),
        "{q7:?}"
    );
    let q9 = &report.details[8];
    assert!(q9.valid && !q9.correct);
    assert!(q9.error.as_deref().unwrap().starts_with("sqlite"), "{q9:?}");

    assert_eq!(report.by_difficulty.len(), 4);
    assert_eq!(report.by_difficulty["easy"], bucket(2, 1));
    assert_eq!(report.by_difficulty["medium"], bucket(3, 1));
    assert_eq!(report.by_difficulty["hard"], bucket(3, 2));
    assert_eq!(report.by_difficulty["extra"], bucket(2, 0));
    assert_eq!(report.by_domain["concert_singer"], bucket(10, 4));
    assert_eq!(report.seen_skeleton, Some(bucket(2, 1)));
    assert_eq!(report.unseen_skeleton, Some(bucket(8, 3)));
    assert_eq!(report.details[0].difficulty, Some(Difficulty::Easy));
    assert_eq!(report.details[9].difficulty, Some(Difficulty::Extra));

    // The DELETE never ran: every database still has its six or seven singers.
    for (p, want) in paths.iter().zip([6i64, 6, 7]) {
        let conn = Connection::open(p).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM singer", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, want, "{}", p.display());
    }

    let table = report.to_table();
    for needle in [
        "easy",
        "medium",
        "hard",
        "extra",
        "concert_singer",
        "seen",
        "unseen",
        "0.400",
        "0.800",
        "0.100",
    ] {
        assert!(table.contains(needle), "missing {needle} in\n{table}");
    }
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["by_difficulty"]["hard"]["correct"], 2);
    assert_eq!(json["details"][0]["difficulty"], "easy");
}

#[test]
fn the_official_suite_check_is_what_catches_q2() {
    // On the base database alone q2 is right: 5 correct.
    let dir = tempfile::tempdir().unwrap();
    build_suite(dir.path());
    let suite = dir.path().join("concert_singer");
    std::fs::remove_file(suite.join("concert_singer_1.sqlite")).unwrap();
    std::fs::remove_file(suite.join("concert_singer_2.sqlite")).unwrap();
    let report = evaluate(&items(), &corrupted(), dir.path(), &opts()).unwrap();
    assert!(report.details[1].correct);
    assert_eq!(report.correct, 5);
}

#[test]
fn gold_failure_names_the_example() {
    let dir = tempfile::tempdir().unwrap();
    build_suite(dir.path());
    let mut items = items();
    items[3].gold = "SELECT colour FROM singer".to_string();
    let preds: Vec<String> = GOLD.iter().map(|s| s.to_string()).collect();
    match evaluate(&items, &preds, dir.path(), &opts()).unwrap_err() {
        EvalError::Example { id, source, .. } => {
            assert_eq!(id, "q4");
            assert!(matches!(*source, EvalError::GoldFailed { .. }));
        }
        other => panic!("expected an example error, got {other}"),
    }
    // Also when the prediction is invalid and never runs.
    let mut preds = preds;
    preds[3] = "DROP TABLE singer".to_string();
    assert!(matches!(
        evaluate(&items, &preds, dir.path(), &opts()),
        Err(EvalError::Example { .. })
    ));
}

#[test]
fn missing_database_and_count_mismatch_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let items = items();
    let preds: Vec<String> = GOLD.iter().map(|s| s.to_string()).collect();
    assert!(matches!(
        evaluate(&items, &preds, dir.path(), &opts()),
        Err(EvalError::Example { .. })
    ));
    build_suite(dir.path());
    assert!(matches!(
        evaluate(&items, &preds[..9], dir.path(), &opts()),
        Err(EvalError::PredictionCount {
            expected: 10,
            got: 9
        })
    ));
}

#[test]
fn predictions_are_read_from_jsonl_by_id_or_plain_text_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let items = items();
    let jsonl = dir.path().join("preds.jsonl");
    std::fs::write(
        &jsonl,
        "\n{\"id\": \"q2\", \"sql\": \"SELECT 2\"}\n{\"id\": \"q1\", \"sql\": \"SELECT 1\"}\n{\"id\": \"zz\", \"sql\": \"x\"}\n",
    )
    .unwrap();
    let preds = read_predictions(&jsonl, &items).unwrap();
    assert_eq!(preds.len(), 10);
    assert_eq!(preds[0], "SELECT 1");
    assert_eq!(preds[1], "SELECT 2");
    assert!(preds[2..].iter().all(|p| p.is_empty()));

    let txt = dir.path().join("preds.sql");
    let lines: Vec<String> = GOLD
        .iter()
        .map(|g| format!("{g}\tconcert_singer"))
        .collect();
    std::fs::write(&txt, lines.join("\n") + "\n\n").unwrap();
    let preds = read_predictions(&txt, &items).unwrap();
    assert_eq!(
        preds,
        GOLD.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );

    std::fs::write(&txt, "SELECT 1\nSELECT 2\n").unwrap();
    assert!(matches!(
        read_predictions(&txt, &items),
        Err(EvalError::PredictionCount {
            expected: 10,
            got: 2
        })
    ));

    std::fs::write(&jsonl, "{\"id\": \"q1\", \"sql\": \"SELECT 1\"}\n{broken\n").unwrap();
    assert!(matches!(
        read_predictions(&jsonl, &items),
        Err(EvalError::BadPrediction { line: 2, .. })
    ));
    std::fs::write(
        &jsonl,
        "{\"id\": 1, \"sql\": \"a\"}\n{\"id\": 1, \"sql\": \"b\"}\n",
    )
    .unwrap();
    assert!(matches!(
        read_predictions(&jsonl, &items),
        Err(EvalError::BadPrediction { line: 2, .. })
    ));
    assert!(matches!(
        read_predictions(&dir.path().join("nope"), &items),
        Err(EvalError::Io { .. })
    ));
}

#[test]
fn placeholder_value_is_replaced_by_one_like_the_official_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    build_suite(dir.path());
    let items = vec![EvalItem {
        id: "v".into(),
        db_id: "concert_singer".into(),
        gold: "SELECT name FROM singer WHERE singer_id = 1".into(),
        difficulty: Some(Difficulty::Easy),
    }];
    let preds = vec!["SELECT name FROM singer WHERE singer_id = value ".to_string()];
    let report = evaluate(&items, &preds, dir.path(), &opts()).unwrap();
    assert!(report.details[0].correct, "{:?}", report.details[0]);
    assert_eq!(report.details[0].pred, preds[0]);
}
