//! Dataset examples through the text-to-SQL pipeline's batch prediction
//! ([`sqlora_sqlgen::predict`]): shared by `sqlora eval --adapter/--base` and the trainer's
//! dev-EX hook (`cmd_train`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use sqlora_data::dataset::Example;
use sqlora_model::lora::LoraAdapter;
use sqlora_model::LoadedModel;
use sqlora_sqlgen::{PredictOptions, Prediction, Question};

/// The database a bundled-layout example is asked about: `db_dir/<db_id>/<db_id>.sqlite` when it
/// exists, else the first `*.sqlite` of `db_dir/<db_id>/` (the file whose schema the evaluator's
/// guard uses).
pub fn db_in_dir(db_dir: &Path, db_id: &str) -> Result<PathBuf> {
    let own = db_dir.join(db_id).join(format!("{db_id}.sqlite"));
    if own.is_file() {
        return Ok(own);
    }
    let suite = sqlora_eval::exec_match::suite_paths(db_dir, db_id)
        .with_context(|| format!("no database for '{db_id}' in {}", db_dir.display()))?;
    suite
        .into_iter()
        .next()
        .with_context(|| format!("no database for '{db_id}' in {}", db_dir.display()))
}

/// Predicts SQL for every example, in order; `db_for` names the SQLite file whose schema goes
/// into an example's prompt.
pub fn predict(
    model: &LoadedModel,
    adapter: Option<&LoraAdapter>,
    examples: &[Example],
    db_for: impl Fn(&Example) -> PathBuf,
    opts: &PredictOptions,
    progress: Option<&ProgressBar>,
) -> Result<Vec<Prediction>> {
    let questions: Vec<Question<'_>> = examples
        .iter()
        .map(|e| Question::new(&e.id, &e.db_id, &e.question, db_for(e)))
        .collect();
    Ok(sqlora_sqlgen::predict(
        model, adapter, &questions, opts, progress,
    )?)
}
