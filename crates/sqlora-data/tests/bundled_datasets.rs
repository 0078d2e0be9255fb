//! The bundled datasets (datasets/<domain>/) obey the dataset rules: builds
//! every fixture into a temporary directory and runs the linter over them.
//! Fails with the full list of violations.

use std::path::Path;

use sqlora_data::{build_all, check_all};

#[test]
fn bundled_datasets_pass_the_dataset_checks() {
    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let out = tempfile::tempdir().unwrap();
    let built = build_all(&datasets, out.path(), 1).unwrap();
    assert!(!built.is_empty());
    let report = check_all(&datasets, out.path(), 6, false).unwrap();
    // Always show the numbers (fraction of gold queries returning rows, …).
    eprintln!("{}", report.render());
    assert!(report.is_ok(), "dataset check failed:\n{}", report.render());
}
