//! The builtin prompts on the bundled datasets: compact, schema first, question last, one
//! shared prefix per database.

use std::path::Path;

use sqlora_data::list_domains;
use sqlora_sql::schema::Schema;
use sqlora_sqlgen::PromptBuilder;

/// The builtin prompt for a real bundled schema: compact, schema first,
/// question last, and identical up to the question for two questions.
#[test]
fn bundled_prompts_share_the_domain_prefix() {
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
