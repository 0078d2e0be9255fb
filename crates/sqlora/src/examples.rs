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

/// Reads a JSONL examples file (`question` and `sql` on every line) into an index.
pub fn load_index(path: &Path) -> Result<Arc<ExampleIndex>> {
    let index = ExampleIndex::from_jsonl(path)
        .with_context(|| format!("reading the examples {}", path.display()))?;
    if index.is_empty() {
        bail!("no examples in {}", path.display());
    }
    Ok(Arc::new(index))
}

/// `k` examples per prompt from the file `path` (none when `k` is 0: the file is not read).
pub fn few_shot(path: &Path, k: usize) -> Result<Option<FewShot>> {
    if k == 0 {
        return Ok(None);
    }
    let mut f = FewShot::new(load_index(path)?, k);
    f.source = Some(path.to_path_buf());
    Ok(Some(f))
}

/// The training split of the bundled domain `name` (`datasets/<name>/train.jsonl`), when
/// there is one.
pub fn domain_train(name: &str) -> Option<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return None;
    }
    let p = paths::datasets_dir().join(name).join("train.jsonl");
    p.is_file().then_some(p)
}

/// The bundled domain a `--db` argument stands for: a domain name, or a fixture file laid out
/// as `<dir>/<name>/<name>.sqlite` whose name is a bundled domain.
pub fn domain_of_db(db: &str) -> Option<String> {
    let as_path = Path::new(db);
    if !as_path.is_file() {
        return Some(db.trim_end_matches(".sqlite").to_string());
    }
    let stem = as_path.file_stem()?.to_str()?;
    let parent = as_path.parent()?.file_name()?.to_str()?;
    (stem == parent).then(|| stem.to_string())
}

/// The examples for a database: `--examples FILE` when given, else the bundled domain's
/// training split; `k` from `--examples-k`, else [`DEFAULT_EXAMPLES_K`] when there is a source
/// (0 without one). An explicit `k` > 0 with no source is an error.
pub fn for_database(db: &str, file: Option<&Path>, k: Option<usize>) -> Result<Option<FewShot>> {
    let source = match file {
        Some(f) => Some(f.to_path_buf()),
        None => domain_of_db(db).and_then(|d| domain_train(&d)),
    };
    match (source, k) {
        (_, Some(0)) => Ok(None),
        (Some(src), k) => few_shot(&src, k.unwrap_or(DEFAULT_EXAMPLES_K)),
        (None, Some(k)) => bail!(
            "--examples-k {k}: '{db}' is not a bundled domain with a training split; give the examples with --examples FILE.jsonl"
        ),
        (None, None) => Ok(None),
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
        assert_eq!(domain_train("../x"), None);
    }

    #[test]
    fn an_explicit_k_needs_a_source_and_a_bad_file_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mine.sqlite");
        std::fs::write(&db, b"").unwrap();
        let db = db.to_str().unwrap();
        assert!(for_database(db, None, None).unwrap().is_none());
        assert!(for_database(db, None, Some(0)).unwrap().is_none());
        let err = for_database(db, None, Some(2)).unwrap_err().to_string();
        assert!(err.contains("--examples FILE"), "{err}");
        let file = dir.path().join("ex.jsonl");
        std::fs::write(
            &file,
            "{\"question\": \"q\", \"sql\": \"SELECT 1\"}\nnot json\n",
        )
        .unwrap();
        let err = format!("{:#}", for_database(db, Some(&file), None).unwrap_err());
        assert!(err.contains("ex.jsonl") && err.contains("line 2"), "{err}");
        std::fs::write(&file, "{\"question\": \"q\", \"sql\": \"SELECT 1\"}\n").unwrap();
        let f = for_database(db, Some(&file), Some(4)).unwrap().unwrap();
        assert_eq!((f.k, f.index.len()), (4, 1));
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "\n").unwrap();
        let err = for_database(db, Some(&empty), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no examples"), "{err}");
    }
}
