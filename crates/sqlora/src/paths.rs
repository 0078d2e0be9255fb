//! Where things live: the datasets folder, the built fixtures, and database names.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The bundled datasets folder: `$SQLORA_DATASETS`, else `./datasets`.
pub fn datasets_dir() -> PathBuf {
    crate::env_path("SQLORA_DATASETS").unwrap_or_else(|| PathBuf::from("datasets"))
}

/// Where `fixtures build` writes by default and where domain names are looked up:
/// `$SQLORA_FIXTURES`, else `$SQLORA_HOME/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    crate::env_path("SQLORA_FIXTURES")
        .unwrap_or_else(|| sqlora_model::fetch::sqlora_home().join("fixtures"))
}

/// Resolves `DB_OR_DOMAIN`: an existing SQLite file, or the name of a bundled domain (its
/// fixture is built on first use from `datasets/<name>/`).
pub fn resolve_db(db: &str) -> Result<PathBuf> {
    let as_path = Path::new(db);
    if as_path.is_file() {
        return Ok(as_path.to_path_buf());
    }
    let name = db.trim_end_matches(".sqlite");
    if name.is_empty() || name.contains(['/', '\\']) {
        bail!("no such database file: {db}");
    }
    let built = fixtures_dir().join(name).join(format!("{name}.sqlite"));
    if built.is_file() {
        return Ok(built);
    }
    let datasets = datasets_dir();
    let domain_dir = datasets.join(name);
    if domain_dir.join("schema.sql").is_file() {
        let domain = sqlora_data::dataset::Domain {
            name: name.to_string(),
            dir: domain_dir,
        };
        sqlora_data::fixtures::build_domain(&domain, &fixtures_dir(), 1)
            .with_context(|| format!("building the fixture for domain '{name}'"))?;
        if built.is_file() {
            return Ok(built);
        }
    }
    let known = sqlora_data::dataset::list_domains(&datasets)
        .map(|d| d.into_iter().map(|d| d.name).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    if known.is_empty() {
        bail!(
            "'{db}' is neither a SQLite file nor a domain in {}",
            datasets.display()
        )
    } else {
        bail!("'{db}' is neither a SQLite file nor a bundled domain (known domains: {known})")
    }
}

/// Resolves the model to load, the same way for every command that runs one: `--model`, else
/// `$SQLORA_MODEL`, each either a path (a `.gguf` file or a Hugging Face folder) or a name of
/// `sqlora model list` (its cached file; a name that is not fetched yet is an error that says
/// `sqlora model fetch NAME`, never an implicit download); with neither, the default model,
/// fetched on first use.
pub fn resolve_model(arg: Option<&Path>) -> Result<PathBuf> {
    match arg
        .map(Path::to_path_buf)
        .or_else(|| crate::env_path("SQLORA_MODEL"))
    {
        Some(spec) => resolve_model_spec(&spec),
        None => Ok(sqlora_model::fetch::ensure_default_model(true)?),
    }
}

/// Like [`resolve_model`], but never fetches: `None` when nothing is given and the default
/// model is not cached.
pub fn resolve_cached_model(arg: Option<&Path>) -> Result<Option<PathBuf>> {
    match arg
        .map(Path::to_path_buf)
        .or_else(|| crate::env_path("SQLORA_MODEL"))
    {
        Some(spec) => resolve_model_spec(&spec).map(Some),
        None => {
            let p = sqlora_model::fetch::default_model_path();
            Ok(p.exists().then_some(p))
        }
    }
}

/// A path as it is when it exists, else a registry name's cached file.
fn resolve_model_spec(spec: &Path) -> Result<PathBuf> {
    if spec.exists() {
        return Ok(spec.to_path_buf());
    }
    match spec.to_str() {
        Some(s) => Ok(sqlora_model::fetch::resolve_model(s)?),
        None => bail!("no such model file or folder: {}", spec.display()),
    }
}

/// Where the adapters of the loaded model live by default: `adapters/<base>`, with `<base>` the
/// registry name of the model (`sqlora model list`) or, for any other file or folder, its name
/// without extension. Adapters fit one base model only, so each base has its own folder.
pub fn adapters_root(m: &sqlora_model::LoadedModel) -> PathBuf {
    let id = sqlora_model::identity::ModelIdentity::of(m);
    let base = match id.named {
        Some(named) => named.name.to_string(),
        None => m
            .source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "base".to_string()),
    };
    PathBuf::from("adapters").join(base)
}

/// The prompt templates: those of `dir` (`--prompts DIR`, with `system.jinja` and `user.jinja`)
/// or the bundled ones.
pub fn prompt_builder(dir: Option<&Path>) -> Result<sqlora_sqlgen::PromptBuilder> {
    match dir {
        Some(d) => sqlora_sqlgen::PromptBuilder::from_dir(d)
            .with_context(|| format!("prompt templates in {}", d.display())),
        None => Ok(sqlora_sqlgen::PromptBuilder::builtin()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_paths_are_taken_as_they_are_and_unknown_names_explained() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.gguf");
        std::fs::write(&f, b"GGUF").unwrap();
        assert_eq!(resolve_model(Some(&f)).unwrap(), f);
        assert_eq!(resolve_cached_model(Some(&f)).unwrap(), Some(f));
        let err = resolve_model(Some(Path::new("no-such-model-xyz")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no-such-model-xyz"), "{err}");
        assert!(err.contains("qwen2.5-coder-1.5b-instruct"), "{err}");
        assert!(err.contains("sqlora model list"), "{err}");
    }
}
