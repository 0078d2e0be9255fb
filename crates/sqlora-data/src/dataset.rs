//! Datasets on disk: JSONL example files and the `datasets/<domain>/` layout.
//!
//! A domain directory holds `schema.sql` (CREATE statements), `data.sql`
//! (INSERT statements) and split files `train.jsonl`, `dev.jsonl`,
//! `test.jsonl` — one [`Example`] per line. Imported (Spider) domains may hold
//! other `*.jsonl` files instead of the three splits.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::deps::Difficulty;
use crate::error::DataError;

/// One (question, gold SQL) pair for a database domain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Example {
    /// Unique id within the dataset, e.g. `library_train_12`.
    pub id: String,
    /// The domain (database) the question is about.
    pub db_id: String,
    /// The natural-language question.
    pub question: String,
    /// The gold SQLite query.
    pub sql: String,
    /// Spider hardness of `sql`.
    pub difficulty: Difficulty,
}

impl Example {
    /// The evaluator's view of this example: id, database, gold SQL and difficulty.
    pub fn eval_item(&self) -> sqlora_eval::report::EvalItem {
        sqlora_eval::report::EvalItem {
            id: self.id.clone(),
            db_id: self.db_id.clone(),
            gold: self.sql.clone(),
            difficulty: Some(self.difficulty),
        }
    }
}

/// Reads a JSONL file of examples. Blank lines are skipped; a malformed line
/// gives an error naming the file and its 1-based line number.
pub fn read_jsonl(path: &Path) -> Result<Vec<Example>, DataError> {
    let file = fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| DataError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let ex: Example = serde_json::from_str(&line).map_err(|source| DataError::Json {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        out.push(ex);
    }
    Ok(out)
}

/// Writes examples as JSONL, atomically: the data goes to a temporary file in
/// the same directory which is then renamed over `path`. Parent directories
/// are created.
pub fn write_jsonl(path: &Path, examples: &[Example]) -> Result<(), DataError> {
    let mut buf = Vec::new();
    for ex in examples {
        serde_json::to_writer(&mut buf, ex).map_err(|source| DataError::Json {
            path: path.to_path_buf(),
            line: 0,
            source,
        })?;
        buf.push(b'\n');
    }
    write_atomic(path, &buf)
}

/// Writes `bytes` to `path` via a temporary file and a rename, so readers
/// never see a half-written file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(DataError::io(path, e));
    }
    Ok(())
}

/// A temporary sibling path of `path` (same directory, so rename is atomic).
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// A database domain: `datasets/<name>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// The directory name, which is also every example's `db_id`.
    pub name: String,
    /// The domain directory.
    pub dir: PathBuf,
}

/// The split names a bundled domain has.
pub const SPLITS: [&str; 3] = ["train", "dev", "test"];

impl Domain {
    /// The domain at `dir`; its name is the directory's name.
    pub fn open(dir: &Path) -> Result<Self, DataError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| DataError::Invalid {
                path: dir.to_path_buf(),
                message: "not a domain directory".into(),
            })?;
        if !dir.join("schema.sql").is_file() {
            return Err(DataError::Missing(dir.join("schema.sql")));
        }
        Ok(Domain {
            name,
            dir: dir.to_path_buf(),
        })
    }

    /// The path of split `name` (`train`, `dev` or `test`).
    pub fn split_path(&self, name: &str) -> Result<PathBuf, DataError> {
        if !SPLITS.contains(&name) {
            return Err(DataError::UnknownSplit(name.to_string()));
        }
        Ok(self.dir.join(format!("{name}.jsonl")))
    }

    /// Whether the split file exists.
    pub fn has_split(&self, name: &str) -> bool {
        self.split_path(name).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Reads split `name` (`train`, `dev` or `test`).
    pub fn split(&self, name: &str) -> Result<Vec<Example>, DataError> {
        let path = self.split_path(name)?;
        if !path.is_file() {
            return Err(DataError::Missing(path));
        }
        read_jsonl(&path)
    }

    /// Every `*.jsonl` file in the domain directory, sorted by name.
    pub fn example_files(&self) -> Result<Vec<PathBuf>, DataError> {
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| DataError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| DataError::io(&self.dir, e))?;
            let p = entry.path();
            if p.is_file() && p.extension().is_some_and(|e| e == "jsonl") {
                files.push(p);
            }
        }
        files.sort();
        Ok(files)
    }

    /// All examples of all `*.jsonl` files of the domain.
    pub fn all_examples(&self) -> Result<Vec<Example>, DataError> {
        let mut out = Vec::new();
        for f in self.example_files()? {
            out.extend(read_jsonl(&f)?);
        }
        Ok(out)
    }

    /// The text of `schema.sql`.
    pub fn schema_sql(&self) -> Result<String, DataError> {
        read_text(&self.dir.join("schema.sql"))
    }

    /// The text of `data.sql` (empty when the domain has no data file).
    pub fn data_sql(&self) -> Result<String, DataError> {
        let p = self.dir.join("data.sql");
        if p.is_file() {
            read_text(&p)
        } else {
            Ok(String::new())
        }
    }
}

fn read_text(path: &Path) -> Result<String, DataError> {
    if !path.exists() {
        return Err(DataError::Missing(path.to_path_buf()));
    }
    fs::read_to_string(path).map_err(|e| DataError::io(path, e))
}

/// The domains under `datasets_dir`, sorted by name. A subdirectory counts as
/// a domain when it holds a `schema.sql`.
pub fn list_domains(datasets_dir: &Path) -> Result<Vec<Domain>, DataError> {
    let mut names = BTreeSet::new();
    for entry in fs::read_dir(datasets_dir).map_err(|e| DataError::io(datasets_dir, e))? {
        let entry = entry.map_err(|e| DataError::io(datasets_dir, e))?;
        let p = entry.path();
        if p.is_dir() && p.join("schema.sql").is_file() {
            names.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names
        .into_iter()
        .map(|name| Domain {
            dir: datasets_dir.join(&name),
            name,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: &str) -> Example {
        Example {
            id: id.into(),
            db_id: "shop".into(),
            question: "How many \"items\"?\nTwo lines".into(),
            sql: "SELECT count(*) FROM item".into(),
            difficulty: Difficulty::Easy,
        }
    }

    #[test]
    fn jsonl_round_trip_and_atomic_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/train.jsonl");
        let exs = vec![ex("a"), ex("b")];
        write_jsonl(&p, &exs).unwrap();
        assert_eq!(read_jsonl(&p).unwrap(), exs);
        write_jsonl(&p, &exs[..1]).unwrap();
        assert_eq!(read_jsonl(&p).unwrap(), exs[..1]);
        // no temporary file left behind
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.contains("\"difficulty\":\"easy\""), "{text}");
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dev.jsonl");
        let good = serde_json::to_string(&ex("a")).unwrap();
        fs::write(&p, format!("{good}\n\n{{\"id\": 3}}\n")).unwrap();
        let err = read_jsonl(&p).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::Json { line: 3, .. }), "{msg}");
        assert!(msg.contains("dev.jsonl:3"), "{msg}");
    }

    #[test]
    fn domains_are_sorted_and_need_schema() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["zoo", "airline", "notes"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        fs::write(dir.path().join("zoo/schema.sql"), "CREATE TABLE a(x);").unwrap();
        fs::write(dir.path().join("airline/schema.sql"), "CREATE TABLE b(y);").unwrap();
        fs::write(dir.path().join("README.md"), "x").unwrap();
        let ds = list_domains(dir.path()).unwrap();
        let names: Vec<_> = ds.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["airline", "zoo"]);
        assert_eq!(ds[1].schema_sql().unwrap(), "CREATE TABLE a(x);");
        assert_eq!(ds[1].data_sql().unwrap(), "");
        assert!(matches!(ds[0].split("train"), Err(DataError::Missing(_))));
        assert!(matches!(
            ds[0].split("bogus"),
            Err(DataError::UnknownSplit(_))
        ));
        write_jsonl(&ds[0].dir.join("dev.jsonl"), &[ex("x")]).unwrap();
        assert_eq!(ds[0].split("dev").unwrap().len(), 1);
        assert!(ds[0].has_split("dev") && !ds[0].has_split("test"));
    }
}
