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

/// The builtin prompt for a real bundled schema: compact, schema first,
/// question last, and identical up to the question for two questions.
#[test]
fn bundled_prompts_share_the_domain_prefix() {
    use sqlora_data::{list_domains, PromptBuilder};
    use sqlora_sql::schema::Schema;

    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let out = tempfile::tempdir().unwrap();
    let pb = PromptBuilder::builtin();
    for d in list_domains(&datasets).unwrap() {
        let built = sqlora_data::build_domain(&d, out.path(), 1).unwrap();
        let schema = Schema::introspect(&built[0].path).unwrap();
        let exs = d.split("dev").unwrap();
        let a = pb.messages(&exs[0].question, &schema).unwrap();
        let b = pb.messages(&exs[1].question, &schema).unwrap();
        assert_eq!(a[0], b[0]);
        let q = format!("Question: {}", exs[0].question);
        assert!(a[1].content.ends_with(&q), "{}", a[1].content);
        let prefix = &a[1].content[..a[1].content.len() - exs[0].question.len()];
        assert!(b[1].content.starts_with(prefix));
        for t in &schema.tables {
            assert!(prefix.contains(&format!("\n{}(", t.name)), "{prefix}");
        }
        // small models need short prompts: a few thousand characters at most
        assert!(
            a[1].content.len() < 6000,
            "{} prompt is {} chars",
            d.name,
            a[1].content.len()
        );
        if d.name == "library" {
            eprintln!("{}\n---\n{}", a[0].content, a[1].content);
        }
    }
}
