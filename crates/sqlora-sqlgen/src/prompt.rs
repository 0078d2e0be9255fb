//! Prompts: chat messages for a (question, schema) pair, rendered from the
//! minijinja templates in `prompts/` (see `prompts/README.md` for the
//! variables), the one chat renderer ([`render_chat`]: the model's own chat
//! template), the answer prime ([`ANSWER_PRIME`]), the full inference prompt
//! ([`PromptBuilder::prompt`]) and its shared prefix ([`prefix_tokens`]), and
//! training examples with a marked answer span.
//!
//! The templates put everything that depends on the database before the
//! question, so all prompts of a domain share one prefix.

use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::Path;

use minijinja::{Environment, Value};
use serde::{Deserialize, Serialize};

use sqlora_model::LoadedModel;
use sqlora_sql::schema::{quote_ident, Schema};

use crate::error::SqlgenError;
use crate::fit::ColumnRanking;
use crate::retrieve::Shot;
use crate::sql::one_line_sql;

/// Sample values per column shown in the prompt.
const PROMPT_SAMPLES: usize = 2;
/// Longest sample value (characters) worth showing.
const SAMPLE_MAX_CHARS: usize = 40;

/// The text the assistant's answer is primed with at inference: the prompt (rendered with the
/// generation prompt) gets it appended, and the generated continuation is prefixed with it
/// again to form the answer. Every bundled gold query starts with `SELECT` (a test of this
/// module checks it), so the trainer's answers, which are the gold queries, already start with
/// these tokens: training and inference see the same text. Without it the base model tends to
/// answer in prose.
pub const ANSWER_PRIME: &str = "SELECT";

const BUILTIN_SYSTEM: &str = include_str!("../../../prompts/system.jinja");
const BUILTIN_USER: &str = include_str!("../../../prompts/user.jinja");

/// One chat message (`system`, `user` or `assistant`): the model runtime's own message type,
/// so prompts go to the chat template as they are.
pub use sqlora_model::chat::Message as ChatMessage;

/// [`ANSWER_PRIME`] when `primed`, else nothing: the text appended to the rendered prompt
/// before generating, and put back in front of the generated text. `ask`, `eval`, `serve` and
/// the trainer's dev evaluation all use it, so they agree on the prompt.
pub fn prime(primed: bool) -> &'static str {
    if primed {
        ANSWER_PRIME
    } else {
        ""
    }
}

/// The answer a generation stands for: `prime(primed) + generated`.
pub fn primed_answer(primed: bool, generated: &str) -> String {
    format!("{}{generated}", prime(primed))
}

/// Renders chat messages with the model's own chat template (plain paragraphs when it has
/// none), with the generation prompt for the assistant's turn. The one renderer of
/// inference prompts: `ask`, `eval`, the trainer's dev evaluation and every server endpoint
/// use it.
pub fn render_chat(model: &LoadedModel, messages: &[ChatMessage]) -> Result<String, SqlgenError> {
    match &model.chat_template {
        Some(t) => Ok(t.render(messages, true)?),
        None => Ok(messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
            + "\n"),
    }
}

/// The token ids shared by every prompt about `schema`: the text common to two prompts with
/// different questions, tokenized, minus its last token (a token may merge across the
/// boundary; users check that a prompt's ids start with these before reusing them).
///
/// Empty when the whole schema does not fit the prompt budget
/// ([`PromptBuilder::schema_fits`]): such prompts show the columns relevant to each question
/// ([`crate::fit`]), so they share no schema prefix worth caching.
pub fn prefix_tokens(
    model: &LoadedModel,
    builder: &PromptBuilder,
    schema: &Schema,
) -> Result<Vec<u32>, SqlgenError> {
    if !builder.schema_fits(model, schema)? {
        return Ok(Vec::new());
    }
    let a = builder.prompt(model, schema, "How many rows are there?", true)?;
    let b = builder.prompt(model, schema, "Which one is the largest?", true)?;
    // A prompt with retrieved examples shares the same prefix (they come after the schema).
    let c = builder.prompt_with_examples(
        model,
        schema,
        "How many rows are there?",
        &[Shot::new("", "Which one is the largest?", "SELECT 1")],
        true,
    )?;
    let common = common_prefix_len(&a, &b).min(common_prefix_len(&a, &c));
    let mut ids = model.tokenizer.encode(&a[..common], false)?;
    ids.pop();
    Ok(ids)
}

/// The length in bytes of the longest common prefix of `a` and `b` that ends on a character
/// boundary.
fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map(|((i, _), _)| i)
        .unwrap_or(a.len().min(b.len()))
}

/// The share of the model's context a prompt may take when the builder does not say
/// ([`PromptBuilder::with_max_prompt_tokens`]): three quarters, the rest is left for the
/// answer.
pub const PROMPT_CONTEXT_SHARE: (usize, usize) = (3, 4);

/// A question used to measure a schema's prompt ([`PromptBuilder::schema_fits`]).
const PROBE_QUESTION: &str = "How many rows are there?";

/// Renders prompts from the `system.jinja` and `user.jinja` templates.
#[derive(Debug, Clone)]
pub struct PromptBuilder {
    env: Environment<'static>,
    /// The most tokens a prompt may take before its schema is cut to the question (`None`:
    /// [`PROMPT_CONTEXT_SHARE`] of the model's context).
    max_prompt_tokens: Option<usize>,
}

impl PromptBuilder {
    /// Loads every `*.jinja` file of `prompts_dir`; `system.jinja` and
    /// `user.jinja` must be among them.
    pub fn from_dir(prompts_dir: &Path) -> Result<Self, SqlgenError> {
        let mut sources = Vec::new();
        let entries = fs::read_dir(prompts_dir).map_err(|e| SqlgenError::io(prompts_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| SqlgenError::io(prompts_dir, e))?;
            let p = entry.path();
            if p.is_file() && p.extension().is_some_and(|e| e == "jinja") {
                let text = fs::read_to_string(&p).map_err(|e| SqlgenError::io(&p, e))?;
                sources.push((entry.file_name().to_string_lossy().into_owned(), text));
            }
        }
        for required in ["system.jinja", "user.jinja"] {
            if !sources.iter().any(|(n, _)| n == required) {
                return Err(SqlgenError::Missing(prompts_dir.join(required)));
            }
        }
        Self::from_sources(sources)
    }

    /// The bundled templates, embedded in the binary.
    pub fn builtin() -> Self {
        // The embedded templates are fixed at compile time and covered by
        // tests, so failing here is a build defect, not a user error.
        #[allow(clippy::expect_used)]
        Self::from_sources(vec![
            ("system.jinja".to_string(), BUILTIN_SYSTEM.to_string()),
            ("user.jinja".to_string(), BUILTIN_USER.to_string()),
        ])
        .expect("the bundled prompt templates are valid")
    }

    fn from_sources(sources: Vec<(String, String)>) -> Result<Self, SqlgenError> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|source| SqlgenError::Template {
                name: "syntax".to_string(),
                source,
            })?;
        env.set_syntax(syntax);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, text) in sources {
            env.add_template_owned(name.clone(), text)
                .map_err(|source| SqlgenError::Template { name, source })?;
        }
        Ok(PromptBuilder {
            env,
            max_prompt_tokens: None,
        })
    }

    /// This builder with prompts of at most `tokens` tokens (`None`: [`PROMPT_CONTEXT_SHARE`]
    /// of the model's context). A prompt over the budget shows only the schema's columns most
    /// relevant to its question ([`crate::fit`]).
    pub fn with_max_prompt_tokens(mut self, tokens: Option<usize>) -> Self {
        self.max_prompt_tokens = tokens;
        self
    }

    /// The most tokens a prompt for `model` may take before its schema is cut.
    pub fn prompt_budget(&self, model: &LoadedModel) -> usize {
        self.max_prompt_tokens.unwrap_or(
            model.config.max_position_embeddings * PROMPT_CONTEXT_SHARE.0 / PROMPT_CONTEXT_SHARE.1,
        )
    }

    /// Whether a zero-shot prompt with the whole of `schema` fits [`prompt_budget`](Self::prompt_budget)
    /// (a short question's). When it does not, every prompt about the database shows the
    /// columns relevant to its own question and [`prefix_tokens`] is empty.
    pub fn schema_fits(&self, model: &LoadedModel, schema: &Schema) -> Result<bool, SqlgenError> {
        let text = self.render_prompt(model, schema, PROBE_QUESTION, &[], true, None)?;
        Ok(model.tokenizer.encode(&text, false)?.len() <= self.prompt_budget(model))
    }

    /// The system and user messages for `question` about `schema`.
    pub fn messages(
        &self,
        question: &str,
        schema: &Schema,
    ) -> Result<Vec<ChatMessage>, SqlgenError> {
        self.messages_with_examples(question, schema, &[])
    }

    /// The system and user messages for `question` about `schema`, showing `examples`
    /// (retrieved (question, SQL) pairs, most similar first; see [`crate::retrieve`]) between
    /// the schema and the question. With no examples, exactly [`messages`](Self::messages).
    pub fn messages_with_examples(
        &self,
        question: &str,
        schema: &Schema,
        examples: &[Shot],
    ) -> Result<Vec<ChatMessage>, SqlgenError> {
        self.messages_omitting(question, schema, examples, None)
    }

    /// The messages, with `omitted[i]` columns of table `i` left out of `schema` (a schema
    /// cut to the question; `None`: nothing left out).
    fn messages_omitting(
        &self,
        question: &str,
        schema: &Schema,
        examples: &[Shot],
        omitted: Option<&[usize]>,
    ) -> Result<Vec<ChatMessage>, SqlgenError> {
        let ctx = template_context(question, schema, examples, omitted);
        let mut out = Vec::with_capacity(2);
        for (role, name) in [("system", "system.jinja"), ("user", "user.jinja")] {
            let text = self
                .env
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|source| SqlgenError::Template {
                    name: name.to_string(),
                    source,
                })?;
            out.push(ChatMessage::new(role, text.trim().to_string()));
        }
        Ok(out)
    }

    /// The full inference prompt for `question` about `schema`: the messages rendered with
    /// the model's chat template ([`render_chat`]), then [`prime`]`(primed)`. `ask`, `eval`,
    /// `serve` and the trainer's dev evaluation all build their prompts here.
    pub fn prompt(
        &self,
        model: &LoadedModel,
        schema: &Schema,
        question: &str,
        primed: bool,
    ) -> Result<String, SqlgenError> {
        self.prompt_with_examples(model, schema, question, &[], primed)
    }

    /// [`prompt`](Self::prompt) with retrieved `examples` (most similar first) shown between
    /// the schema and the question ([`messages_with_examples`](Self::messages_with_examples)).
    ///
    /// A prompt longer than [`prompt_budget`](Self::prompt_budget) tokens shows, of the
    /// schema, the key columns and as many of the others as fit, the most relevant to
    /// `question` first ([`crate::fit::ColumnRanking`]); one that fits is left as it is.
    pub fn prompt_with_examples(
        &self,
        model: &LoadedModel,
        schema: &Schema,
        question: &str,
        examples: &[Shot],
        primed: bool,
    ) -> Result<String, SqlgenError> {
        let full = self.render_prompt(model, schema, question, examples, primed, None)?;
        let budget = self.prompt_budget(model);
        let fits = |text: &str| -> Result<bool, SqlgenError> {
            Ok(model.tokenizer.encode(text, false)?.len() <= budget)
        };
        if fits(&full)? {
            return Ok(full);
        }
        let ranking = ColumnRanking::new(schema, question);
        let render = |k: usize| {
            let (cut, omitted) = ranking.keep(schema, k);
            self.render_prompt(model, &cut, question, examples, primed, Some(&omitted))
        };
        // The most columns that fit: showing all of them does not.
        let (mut lo, mut hi) = (0, ranking.optional().saturating_sub(1));
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(&render(mid)?)? {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        render(lo)
    }

    /// The prompt for `question` over `schema` as it is (`omitted`: see
    /// [`messages_omitting`](Self::messages_omitting)).
    fn render_prompt(
        &self,
        model: &LoadedModel,
        schema: &Schema,
        question: &str,
        examples: &[Shot],
        primed: bool,
        omitted: Option<&[usize]>,
    ) -> Result<String, SqlgenError> {
        let messages = self.messages_omitting(question, schema, examples, omitted)?;
        Ok(render_chat(model, &messages)? + prime(primed))
    }

    /// Whether the templates show retrieved examples at all (the bundled ones do; a
    /// `--prompts` folder whose `user.jinja` never uses `examples` does not), checked by
    /// rendering a question with and without one.
    pub fn shows_examples(&self) -> Result<bool, SqlgenError> {
        let schema = Schema { tables: Vec::new() };
        let q = "How many rows are there?";
        let probe = [Shot::new("", "Which one is the largest?", "SELECT 1")];
        Ok(self.messages(q, &schema)? != self.messages_with_examples(q, &schema, &probe)?)
    }

    /// The prompt messages plus the gold answer (`sql` on one line, no
    /// trailing `;`).
    pub fn training_example(
        &self,
        question: &str,
        schema: &Schema,
        sql: &str,
    ) -> Result<TrainingExample, SqlgenError> {
        self.training_example_with_examples(question, schema, sql, &[])
    }

    /// [`training_example`](Self::training_example) whose prompt shows retrieved `examples`,
    /// as the service's prompts do ([`messages_with_examples`](Self::messages_with_examples)),
    /// so an adapter learns on the prompts it will answer.
    pub fn training_example_with_examples(
        &self,
        question: &str,
        schema: &Schema,
        sql: &str,
        examples: &[Shot],
    ) -> Result<TrainingExample, SqlgenError> {
        Ok(TrainingExample {
            messages: self.messages_with_examples(question, schema, examples)?,
            answer: one_line_sql(sql),
        })
    }
}

/// The template variables (documented in `prompts/README.md`); `omitted[i]`: how many columns
/// of table `i` the schema leaves out.
fn template_context(
    question: &str,
    schema: &Schema,
    examples: &[Shot],
    omitted: Option<&[usize]>,
) -> Value {
    let tables: Vec<Value> = schema
        .tables
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            let is_pk =
                |c: &str| t.primary_key.len() == 1 && t.primary_key[0].eq_ignore_ascii_case(c);
            let columns: Vec<Value> = t
                .columns
                .iter()
                .map(|c| {
                    let fk = t.foreign_keys.iter().find(|fk| {
                        fk.columns.len() == 1 && fk.columns[0].eq_ignore_ascii_case(&c.name)
                    });
                    let in_key = is_pk(&c.name)
                        || t.primary_key
                            .iter()
                            .any(|p| p.eq_ignore_ascii_case(&c.name))
                        || t.foreign_keys
                            .iter()
                            .any(|fk| fk.columns.iter().any(|f| f.eq_ignore_ascii_case(&c.name)));
                    let samples: Vec<Value> = if in_key {
                        Vec::new()
                    } else {
                        prompt_samples(&c.samples)
                            .into_iter()
                            .map(Value::from)
                            .collect()
                    };
                    let references = fk.map(|fk| {
                        format!(
                            "{}({})",
                            quote_ident(&fk.ref_table),
                            quote_ident(&fk.ref_columns.first().cloned().unwrap_or_default())
                        )
                    });
                    let reference = fk.map(|fk| {
                        format!(
                            "{}.{}",
                            quote_ident(&fk.ref_table),
                            quote_ident(&fk.ref_columns.first().cloned().unwrap_or_default())
                        )
                    });
                    let mut m: BTreeMap<&'static str, Value> = BTreeMap::new();
                    m.insert("name", Value::from(c.name.clone()));
                    m.insert("ident", Value::from(quote_ident(&c.name)));
                    m.insert("ref", Value::from(reference));
                    m.insert("type", Value::from(c.decl_type.clone()));
                    m.insert("not_null", Value::from(c.not_null));
                    m.insert("pk", Value::from(is_pk(&c.name)));
                    m.insert("references", Value::from(references));
                    m.insert("samples", Value::from(samples));
                    Value::from(m)
                })
                .collect();
            let fks: Vec<Value> = t
                .foreign_keys
                .iter()
                .map(|fk| {
                    let mut m: BTreeMap<&'static str, Value> = BTreeMap::new();
                    m.insert("columns", strings(&fk.columns));
                    m.insert("ref_table", Value::from(fk.ref_table.clone()));
                    m.insert("ref_columns", strings(&fk.ref_columns));
                    Value::from(m)
                })
                .collect();
            let mut m: BTreeMap<&'static str, Value> = BTreeMap::new();
            m.insert("name", Value::from(t.name.clone()));
            m.insert("ident", Value::from(quote_ident(&t.name)));
            m.insert("view", Value::from(t.view));
            m.insert(
                "omitted",
                Value::from(omitted.and_then(|o| o.get(ti).copied()).unwrap_or(0)),
            );
            m.insert("columns", Value::from(columns));
            m.insert("primary_key", strings(&t.primary_key));
            m.insert("composite_pk", Value::from(t.primary_key.len() > 1));
            m.insert("foreign_keys", Value::from(fks));
            m.insert("row_count", Value::from(t.row_count));
            Value::from(m)
        })
        .collect();
    let mut m: BTreeMap<&'static str, Value> = BTreeMap::new();
    m.insert("question", Value::from(question));
    let examples: Vec<Value> = examples
        .iter()
        .map(|e| {
            let mut m: BTreeMap<&'static str, Value> = BTreeMap::new();
            m.insert("question", Value::from(e.question.clone()));
            m.insert("sql", Value::from(one_line_sql(&e.sql)));
            Value::from(m)
        })
        .collect();
    m.insert("examples", Value::from(examples));
    m.insert("tables", Value::from(tables));
    m.insert("schema_ddl", Value::from(schema.to_ddl()));
    m.insert("schema_compact", Value::from(schema.to_compact()));
    Value::from(m)
}

fn strings(v: &[String]) -> Value {
    Value::from(v.iter().cloned().map(Value::from).collect::<Vec<_>>())
}

/// Up to [`PROMPT_SAMPLES`] short, non-numeric samples as SQL literals.
fn prompt_samples(samples: &[String]) -> Vec<String> {
    if samples.is_empty() || samples.iter().all(|s| s.trim().parse::<f64>().is_ok()) {
        return Vec::new();
    }
    samples
        .iter()
        .filter(|s| s.chars().count() <= SAMPLE_MAX_CHARS && !s.ends_with('…'))
        .take(PROMPT_SAMPLES)
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect()
}

/// A prompt plus its gold answer, ready to be rendered with a model's chat
/// template.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainingExample {
    /// System and user messages.
    pub messages: Vec<ChatMessage>,
    /// The gold SQL on one line, without a trailing `;`.
    pub answer: String,
}

/// A rendered training text with the byte range the loss is computed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedExample {
    /// Prompt (chat-formatted, with the generation prompt) + answer + end marker.
    pub text: String,
    /// Byte range of answer + end marker in `text`.
    pub answer_span: Range<usize>,
}

impl TrainingExample {
    /// Renders the prompt with `chat` (the model's chat template, called with
    /// `add_generation_prompt = true`) and appends the answer and
    /// `end_marker` (e.g. the model's end-of-turn token text).
    pub fn render<E>(
        &self,
        chat: impl Fn(&[ChatMessage], bool) -> Result<String, E>,
        end_marker: &str,
    ) -> Result<RenderedExample, E> {
        let prompt = chat(&self.messages, true)?;
        let start = prompt.len();
        let mut text = prompt;
        text.push_str(&self.answer);
        text.push_str(end_marker);
        let end = text.len();
        Ok(RenderedExample {
            text,
            answer_span: start..end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sqlora_sql::schema::{Column, ForeignKey, Table};

    fn col(name: &str, ty: &str, samples: &[&str]) -> Column {
        Column {
            name: name.into(),
            decl_type: ty.into(),
            not_null: false,
            samples: samples.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn schema() -> Schema {
        Schema {
            tables: vec![
                Table {
                    name: "authors".into(),
                    columns: vec![
                        col("author_id", "INTEGER", &["1", "2"]),
                        col("name", "TEXT", &["Ursula O'Neil", "Iain Banks", "Zed"]),
                        col("born", "INTEGER", &["1929", "1954"]),
                    ],
                    primary_key: vec!["author_id".into()],
                    foreign_keys: vec![],
                    row_count: 3,
                    view: false,
                },
                Table {
                    name: "book_authors".into(),
                    columns: vec![
                        col("book_id", "INTEGER", &["7"]),
                        col("author_id", "INTEGER", &["1"]),
                    ],
                    primary_key: vec!["book_id".into(), "author_id".into()],
                    foreign_keys: vec![ForeignKey {
                        columns: vec!["author_id".into()],
                        ref_table: "authors".into(),
                        ref_columns: vec!["author_id".into()],
                    }],
                    row_count: 1,
                    view: false,
                },
            ],
        }
    }

    fn common_prefix(a: &str, b: &str) -> usize {
        a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
    }

    #[test]
    fn builtin_prompt_shows_schema_then_question_last() {
        let pb = PromptBuilder::builtin();
        let m = pb.messages("Who wrote the most books?", &schema()).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].role, "system");
        assert_eq!(m[1].role, "user");
        let user = &m[1].content;
        assert!(
            user.ends_with("Question: Who wrote the most books?"),
            "{user}"
        );
        // one line per table: keys, references and a few sample values, no types
        assert!(user.contains("authors(author_id PK, "), "{user}");
        assert!(
            user.contains("name e.g. 'Ursula O''Neil'/'Iain Banks'"),
            "{user}"
        );
        assert!(
            !user.contains("'Zed'") && !user.contains("'1929'"),
            "{user}"
        );
        assert!(
            user.contains("book_authors(book_id PK, author_id PK -> authors.author_id)\n"),
            "{user}"
        );
        assert!(m[0].content.contains("SQLite"));
    }

    #[test]
    fn every_bundled_gold_query_starts_with_the_answer_prime() {
        let pb = PromptBuilder::builtin();
        assert_eq!(prime(true), "SELECT");
        assert_eq!(prime(false), "");
        assert_eq!(primed_answer(true, " a FROM t"), "SELECT a FROM t");
        assert_eq!(primed_answer(false, " a FROM t"), " a FROM t");
        let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
        let mut checked = 0;
        for domain in fs::read_dir(&datasets).unwrap() {
            let dir = domain.unwrap().path();
            for split in ["train", "dev", "test"] {
                let Ok(text) = fs::read_to_string(dir.join(format!("{split}.jsonl"))) else {
                    continue;
                };
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    let sql = v["sql"].as_str().unwrap();
                    let ex = pb.training_example("q", &schema(), sql).unwrap();
                    assert!(
                        ex.answer.starts_with(ANSWER_PRIME),
                        "{}: {sql}",
                        dir.display()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "only {checked} gold queries found");
    }

    #[test]
    fn prompts_of_a_domain_share_the_schema_prefix() {
        let pb = PromptBuilder::builtin();
        let a = pb
            .messages("How many authors are there?", &schema())
            .unwrap();
        let b = pb.messages("List all books.", &schema()).unwrap();
        assert_eq!(a[0], b[0]);
        let p = common_prefix(&a[1].content, &b[1].content);
        // the two user messages differ only after "Question: "
        assert!(
            a[1].content[..p].ends_with("Question: "),
            "{}",
            &a[1].content[..p]
        );
        assert!(a[1].content[..p].contains("\nbook_authors("));
    }

    /// The `{% if examples %} ... {% endif %}` block of a bundled `user.jinja`, removed: the
    /// template as it was before examples existed.
    fn without_examples_block(template: &str) -> String {
        let start = template.find("{% if examples %}").unwrap();
        let end = template.find("{% endif %}\nQuestion:").unwrap() + "{% endif %}\n".len();
        format!("{}{}", &template[..start], &template[end..])
    }

    #[test]
    fn without_examples_every_bundled_prompt_is_the_zero_shot_one_byte_for_byte() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts");
        for dir in [
            root.clone(),
            root.join("variants/ddl"),
            root.join("variants/ddl_samples"),
        ] {
            let system = fs::read_to_string(dir.join("system.jinja")).unwrap();
            let user = fs::read_to_string(dir.join("user.jinja")).unwrap();
            let old = PromptBuilder::from_sources(vec![
                ("system.jinja".to_string(), system),
                ("user.jinja".to_string(), without_examples_block(&user)),
            ])
            .unwrap();
            let new = PromptBuilder::from_dir(&dir).unwrap();
            assert!(new.shows_examples().unwrap(), "{}", dir.display());
            assert!(!old.shows_examples().unwrap());
            let q = "Which authors were born after 1950?";
            assert_eq!(
                new.messages_with_examples(q, &schema(), &[]).unwrap(),
                old.messages(q, &schema()).unwrap(),
                "{}",
                dir.display()
            );
        }
        // the zero-shot prompt of the bundled template, as it has always been
        let m = PromptBuilder::builtin().messages("Q?", &schema()).unwrap();
        assert_eq!(
            m[1].content,
            "Tables:\nauthors(author_id PK, name e.g. 'Ursula O''Neil'/'Iain Banks', born)\n\
             book_authors(book_id PK, author_id PK -> authors.author_id)\n\nQuestion: Q?"
        );
    }

    #[test]
    fn examples_come_between_the_schema_and_the_question_most_similar_last() {
        let pb = PromptBuilder::builtin();
        let ex = [
            Shot::new("1", "How many authors?", "SELECT count(*)\n  FROM authors;"),
            Shot::new("2", "Name every author.", "SELECT name FROM authors"),
        ];
        let m = pb
            .messages_with_examples("How many books?", &schema(), &ex)
            .unwrap();
        let zero = pb.messages("How many books?", &schema()).unwrap();
        assert_eq!(m[0], zero[0]);
        let user = &m[1].content;
        let schema_part = zero[1]
            .content
            .strip_suffix("Question: How many books?")
            .unwrap();
        assert!(user.starts_with(schema_part), "{user}");
        assert_eq!(
            &user[schema_part.len()..],
            "Examples of questions about this database and their SQL:\n\
             Question: Name every author.\nSQL: SELECT name FROM authors\n\n\
             Question: How many authors?\nSQL: SELECT count(*) FROM authors\n\n\
             Question: How many books?"
        );
        // Two questions with different examples share the whole schema.
        let other = pb
            .messages_with_examples("List books.", &schema(), &ex[1..])
            .unwrap();
        let p = common_prefix(user, &other[1].content);
        assert!(p >= schema_part.len(), "{}", &user[..p]);
    }

    #[test]
    fn from_dir_matches_builtin_and_requires_templates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts");
        let from_dir = PromptBuilder::from_dir(&dir).unwrap();
        let q = "Which authors were born after 1950?";
        assert_eq!(
            from_dir.messages(q, &schema()).unwrap(),
            PromptBuilder::builtin().messages(q, &schema()).unwrap()
        );

        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("system.jinja"), "sys").unwrap();
        assert!(matches!(
            PromptBuilder::from_dir(tmp.path()),
            Err(SqlgenError::Missing(p)) if p.ends_with("user.jinja")
        ));
        fs::write(
            tmp.path().join("user.jinja"),
            "{{ schema_compact }} Q: {{ question }}",
        )
        .unwrap();
        let pb = PromptBuilder::from_dir(tmp.path()).unwrap();
        let m = pb.messages("q?", &schema()).unwrap();
        assert_eq!(m[0].content, "sys");
        assert!(m[1].content.ends_with("Q: q?"));
        fs::write(tmp.path().join("user.jinja"), "{{ no_such_var }}").unwrap();
        let err = PromptBuilder::from_dir(tmp.path())
            .unwrap()
            .messages("q", &schema());
        assert!(matches!(err, Err(SqlgenError::Template { .. })));
        fs::write(tmp.path().join("user.jinja"), "{% if %}").unwrap();
        assert!(matches!(
            PromptBuilder::from_dir(tmp.path()),
            Err(SqlgenError::Template { .. })
        ));
    }

    #[test]
    fn training_example_marks_the_answer_span() {
        let pb = PromptBuilder::builtin();
        let ex = pb
            .training_example(
                "How many authors?",
                &schema(),
                "SELECT count(*)\n FROM authors;",
            )
            .unwrap();
        assert_eq!(ex.answer, "SELECT count(*) FROM authors");
        let chat = |msgs: &[ChatMessage], gen: bool| -> Result<String, String> {
            let mut s = String::new();
            for m in msgs {
                s.push_str(&format!(
                    "<|im_start|>{}\n{}<|im_end|>\n",
                    m.role, m.content
                ));
            }
            if gen {
                s.push_str("<|im_start|>assistant\n");
            }
            Ok(s)
        };
        let r = ex.render(chat, "<|im_end|>").unwrap();
        assert_eq!(
            &r.text[r.answer_span.clone()],
            "SELECT count(*) FROM authors<|im_end|>"
        );
        assert_eq!(r.answer_span.end, r.text.len());
        assert!(r.text[..r.answer_span.start].ends_with("<|im_start|>assistant\n"));
        let failing = |_: &[ChatMessage], _: bool| -> Result<String, String> { Err("no".into()) };
        assert_eq!(ex.render(failing, "</s>"), Err("no".to_string()));
    }
}
