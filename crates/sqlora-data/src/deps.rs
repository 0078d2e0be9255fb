//! TEMPORARY stand-ins for the sqlora-sql / sqlora-eval APIs until they land.
//! Replaced by plain re-exports at integration.
#![allow(dead_code, missing_docs)]

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
    Extra,
}

#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub tables: Vec<Table>,
}
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
    pub row_count: u64,
}
#[derive(Debug, Clone, Default)]
pub struct Column {
    pub name: String,
    pub decl_type: String,
    pub not_null: bool,
    pub samples: Vec<String>,
}
#[derive(Debug, Clone, Default)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

pub fn hardness(_sql: &str) -> Result<Difficulty, String> {
    Ok(Difficulty::Easy)
}
impl Schema {
    pub fn to_ddl(&self) -> String {
        String::new()
    }
    pub fn to_compact(&self) -> String {
        String::new()
    }
}
