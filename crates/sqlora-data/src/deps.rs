//! The parts of sqlora-sql and sqlora-eval this crate builds on, in one place.

pub use sqlora_eval::hardness::{hardness, Difficulty};
pub use sqlora_eval::skeleton::{normalize_sql, skeleton};
pub use sqlora_sql::exec::{ExecLimits, ReadOnlyDb};
pub use sqlora_sql::guard::Guard;
pub use sqlora_sql::schema::Schema;
