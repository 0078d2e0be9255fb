//! Few-shot examples on the command line: where a database's training examples come from and
//! how many go into a prompt (`--examples FILE`, `--examples-k K`), shared by `ask`, `eval`
//! and `serve`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use sqlora_sqlgen::{ExampleIndex, FewShot};

use crate::paths;

/// Retrieved examples per prompt when `ask`, `serve` and `eval` have a training split and no
/// `--examples-k` is given. Measured on the first
/// 10 dev questions of retail, hr and library with Qwen2.5-Coder-0.5B (constrained): EX 6.7%
/// with none, 56.7% with 3, 56.7% with 5; 3 costs less prompt.
pub const DEFAULT_EXAMPLES_K: usize = 3;

/// The files of a bundled domain that make its pool of retrievable examples (stems of
/// `<stem>.jsonl`), in pool order (ties in retrieval go to the earlier file): the hand-written
/// training examples, then the generated training split. The held-out hand-written files
/// ([`sqlora_data::near::HELD_OUT`]) are never in it.
pub const POOL_FILES: [&str; 2] = [sqlora_data::near::HAND_TRAIN, "train"];

/// Reads JSONL examples files (`question` and `sql` on every line) into one index.
pub fn load_index(paths: &[PathBuf]) -> Result<Arc<ExampleIndex>> {
    let index = ExampleIndex::from_jsonl_files(paths)
        .with_context(|| format!("reading the examples {}", show(paths)))?;
    if index.is_empty() {
        bail!("no examples in {}", show(paths));
    }
    Ok(Arc::new(index))
}

/// The files as a user named them, comma-separated.
pub fn show(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `k` examples per prompt from the files `paths`, one pool (none when `k` is 0: the files
/// are not read).
pub fn few_shot(paths: &[PathBuf], k: usize) -> Result<Option<FewShot>> {
    if k == 0 {
        return Ok(None);
    }
    let mut f = FewShot::new(load_index(paths)?, k);
    f.sources = paths.to_vec();
    Ok(Some(f))
}

/// The [`POOL_FILES`] present in the folder `dir`.
pub fn pool_in(dir: &Path) -> Vec<PathBuf> {
    POOL_FILES
        .iter()
        .map(|stem| dir.join(format!("{stem}.jsonl")))
        .filter(|p| p.is_file())
        .collect()
}

/// The pool of the bundled domain `name` ([`POOL_FILES`] under `datasets/<name>/`); empty
/// when there is no such domain.
pub fn domain_examples(name: &str) -> Vec<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Vec::new();
    }
    pool_in(&paths::datasets_dir().join(name))
}

/// The bundled domain a `--db` argument stands for: a domain name, or a fixture file laid out
/// as `<dir>/<name>/<name>.sqlite` whose name is a bundled domain.
pub fn domain_of_db(db: &str) -> Option<String> {
    let as_path = Path::new(db);
    if !as_path.is_file() {
        return Some(db.trim_end_matches(".sqlite").to_string());
    }
    fixture_layout(as_path).map(|(name, _)| name.to_string())
}

/// `(name, D)` when `db` is named `<name>.sqlite` inside a folder `<name>` of `D`: the fixtures'
/// layout (`D/<name>/<name>.sqlite`, the test-suite variants beside it), which `eval --db-dir D`
/// reads.
pub fn fixture_layout(db: &Path) -> Option<(&str, &Path)> {
    let stem = db.file_stem()?.to_str()?;
    let folder = db.parent()?;
    (folder.file_name()?.to_str()? == stem).then_some(())?;
    Some((stem, folder.parent()?))
}

/// The examples for a database: the `--examples` files when given, else the bundled domain's
/// pool ([`domain_examples`]); `k` from `--examples-k`, else [`DEFAULT_EXAMPLES_K`] when there
/// is a pool (0 without one). An explicit `k` > 0 with no pool is an error.
pub fn for_database(db: &str, files: &[PathBuf], k: Option<usize>) -> Result<Option<FewShot>> {
    let pool = if files.is_empty() {
        domain_of_db(db)
            .map(|d| domain_examples(&d))
            .unwrap_or_default()
    } else {
        files.to_vec()
    };
    match (pool.is_empty(), k) {
        (_, Some(0)) => Ok(None),
        (false, k) => few_shot(&pool, k.unwrap_or(DEFAULT_EXAMPLES_K)),
        (true, Some(k)) => bail!(
            "--examples-k {k}: '{db}' is not a bundled domain with training examples; give the examples with --examples FILE.jsonl"
        ),
        (true, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_file_or_a_name_is_its_domain() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("retail").join("retail.sqlite");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, b"").unwrap();
        assert_eq!(domain_of_db(f.to_str().unwrap()).as_deref(), Some("retail"));
        let other = dir.path().join("mine.sqlite");
        std::fs::write(&other, b"").unwrap();
        assert_eq!(domain_of_db(other.to_str().unwrap()), None);
        assert_eq!(domain_of_db("hr.sqlite").as_deref(), Some("hr"));
        assert!(domain_examples("../x").is_empty());
    }

    #[test]
    fn an_explicit_k_needs_a_source_and_a_bad_file_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mine.sqlite");
        std::fs::write(&db, b"").unwrap();
        let db = db.to_str().unwrap();
        assert!(for_database(db, &[], None).unwrap().is_none());
        assert!(for_database(db, &[], Some(0)).unwrap().is_none());
        let err = for_database(db, &[], Some(2)).unwrap_err().to_string();
        assert!(err.contains("--examples FILE"), "{err}");
        let file = dir.path().join("ex.jsonl");
        std::fs::write(
            &file,
            "{\"question\": \"q\", \"sql\": \"SELECT 1\"}\nnot json\n",
        )
        .unwrap();
        let err = format!(
            "{:#}",
            for_database(db, std::slice::from_ref(&file), None).unwrap_err()
        );
        assert!(err.contains("ex.jsonl") && err.contains("line 2"), "{err}");
        std::fs::write(&file, "{\"question\": \"q\", \"sql\": \"SELECT 1\"}\n").unwrap();
        let f = for_database(db, std::slice::from_ref(&file), Some(4))
            .unwrap()
            .unwrap();
        assert_eq!((f.k, f.index.len()), (4, 1));
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "\n").unwrap();
        let err = for_database(db, &[empty], None).unwrap_err().to_string();
        assert!(err.contains("no examples"), "{err}");
    }

    #[test]
    fn files_given_together_make_one_pool_and_a_folder_pool_lists_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mine.sqlite");
        std::fs::write(&db, b"").unwrap();
        let hand = dir.path().join("human_train.jsonl");
        let train = dir.path().join("train.jsonl");
        std::fs::write(
            &hand,
            "{\"id\": \"h1\", \"question\": \"Which shoppers are Gold members?\", \"sql\": \"SELECT 1\"}\n",
        )
        .unwrap();
        std::fs::write(
            &train,
            "{\"id\": \"t1\", \"question\": \"How many orders are there?\", \"sql\": \"SELECT 2\"}\n{\"id\": \"t2\", \"question\": \"List the Gold tier customers.\", \"sql\": \"SELECT 3\"}\n",
        )
        .unwrap();
        assert_eq!(pool_in(dir.path()), vec![hand.clone(), train.clone()]);
        let f = for_database(db.to_str().unwrap(), &pool_in(dir.path()), Some(2))
            .unwrap()
            .unwrap();
        assert_eq!(f.index.len(), 3);
        assert_eq!(f.sources, vec![hand.clone(), train.clone()]);
        let ids: Vec<String> = f
            .for_question("which customers are gold members", None)
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["h1", "t2"], "both files are searched");
        std::fs::remove_file(&hand).unwrap();
        assert_eq!(pool_in(dir.path()), vec![train]);
    }
}
