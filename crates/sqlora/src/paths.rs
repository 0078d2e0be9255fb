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
