//! Chat templates: the model's own Jinja template rendered the way transformers'
//! `apply_chat_template` does (minijinja with Python string methods, `trim_blocks` and
//! `lstrip_blocks`, `raise_exception`, `bos_token`/`eos_token`, `add_generation_prompt`, and a
//! `tojson` filter that writes JSON like Python's `json.dumps(ensure_ascii=False)`).

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// One chat turn.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text of the turn.
    pub content: String,
}

impl Message {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template together with the special tokens it may reference.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

fn template_err(e: Error) -> ModelError {
    // minijinja's Display omits the chain of causes; include the detail when present.
    let mut msg = e.to_string();
    if let Some(detail) = e.detail() {
        if !msg.contains(detail) {
            msg = format!("{msg}: {detail}");
        }
    }
    ModelError::Template(msg)
}

fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// `tojson` as transformers defines it: `json.dumps(value, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`; keys keep their order unless `sort_keys`.
fn tojson(
    value: &Value,
    indent: Option<Value>,
    kwargs: Kwargs,
) -> std::result::Result<Value, Error> {
    let indent = match indent.or(kwargs.get::<Option<Value>>("indent")?) {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => Some(
            v.as_i64()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson indent must be a non-negative integer",
                    )
                })?,
        ),
    };
    let sort_keys: bool = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let (item_sep, key_sep) = match kwargs.get::<Option<Vec<String>>>("separators")? {
        Some(s) if s.len() == 2 => (s[0].clone(), s[1].clone()),
        Some(_) => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "tojson separators must be a pair",
            ))
        }
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    kwargs.assert_all_used()?;
    let mut out = String::new();
    let fmt = PyJson {
        indent,
        item_sep: &item_sep,
        key_sep: &key_sep,
        sort_keys,
    };
    fmt.write(value, 0, &mut out)?;
    Ok(Value::from(out))
}

struct PyJson<'a> {
    indent: Option<usize>,
    item_sep: &'a str,
    key_sep: &'a str,
    sort_keys: bool,
}

impl PyJson<'_> {
    fn newline(&self, level: usize, out: &mut String) {
        if let Some(n) = self.indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    }

    fn write(&self, v: &Value, level: usize, out: &mut String) -> std::result::Result<(), Error> {
        match v.kind() {
            ValueKind::Undefined | ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number => {
                if let Some(i) = v.as_i64().filter(|_| v.is_integer()) {
                    out.push_str(&i.to_string());
                } else {
                    let f = f64::try_from(v.clone())?;
                    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
                        out.push_str(&format!("{f:.1}"));
                    } else if f.is_finite() {
                        out.push_str(&f.to_string());
                    } else if f.is_nan() {
                        out.push_str("NaN");
                    } else if f > 0.0 {
                        out.push_str("Infinity");
                    } else {
                        out.push_str("-Infinity");
                    }
                }
            }
            ValueKind::String => out.push_str(&json_string(v.as_str().unwrap_or_default())),
            ValueKind::Map => {
                let mut keys: Vec<Value> = v.try_iter()?.collect();
                if self.sort_keys {
                    keys.sort();
                }
                if keys.is_empty() {
                    out.push_str("{}");
                    return Ok(());
                }
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.item_sep);
                    }
                    self.newline(level + 1, out);
                    let key = match k.as_str() {
                        Some(s) => s.to_string(),
                        None => k.to_string(),
                    };
                    out.push_str(&json_string(&key));
                    out.push_str(self.key_sep);
                    self.write(&v.get_item(k)?, level + 1, out)?;
                }
                self.newline(level, out);
                out.push('}');
            }
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                if items.is_empty() {
                    out.push_str("[]");
                    return Ok(());
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.item_sep);
                    }
                    self.newline(level + 1, out);
                    self.write(item, level + 1, out)?;
                }
                self.newline(level, out);
                out.push(']');
            }
            _ => out.push_str(&json_string(&v.to_string())),
        }
        Ok(())
    }
}

/// A message as the template sees it: a map with keys `role` then `content` (ordered like
/// the Python dict transformers passes, which matters to `tojson` and `items()`).
impl minijinja::value::Object for Message {
    fn get_value(self: &std::sync::Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "role" => Some(Value::from(self.role.as_str())),
            "content" => Some(Value::from(self.content.as_str())),
            _ => None,
        }
    }

    fn enumerate(self: &std::sync::Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(&["role", "content"])
    }
}

/// The messages as a list of template objects.
fn messages_value(messages: &[Message]) -> Value {
    messages
        .iter()
        .map(|m| Value::from_object(m.clone()))
        .collect::<Vec<Value>>()
        .into()
}

/// A JSON string literal with Python's escaping (non-ASCII kept as is).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl ChatTemplate {
    /// Compiles a Hugging Face chat template.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        let mut syntax = minijinja::syntax::SyntaxConfig::builder();
        syntax.trim_blocks(true).lstrip_blocks(true);
        env.set_syntax(syntax.build().map_err(template_err)?);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(template_err)?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The template stored in a GGUF file (`tokenizer.chat_template`), with the file's bos/eos
    /// token strings; `None` when the file has no template.
    pub fn from_gguf(content: &Content) -> Result<Option<ChatTemplate>> {
        let source = match content.metadata.get("tokenizer.chat_template") {
            None => return Ok(None),
            Some(GgufValue::String(s)) => s,
            Some(_) => {
                return Err(ModelError::Format(
                    "gguf tokenizer.chat_template is not a string".into(),
                ))
            }
        };
        let token = |key: &str| -> String {
            let id = content.metadata.get(key).and_then(|v| v.to_u32().ok());
            match (id, content.metadata.get("tokenizer.ggml.tokens")) {
                (Some(id), Some(GgufValue::Array(tokens))) => tokens
                    .get(id as usize)
                    .and_then(|t| t.to_string().ok())
                    .cloned()
                    .unwrap_or_default(),
                _ => String::new(),
            }
        };
        let bos = token("tokenizer.ggml.bos_token_id");
        let eos = token("tokenizer.ggml.eos_token_id");
        ChatTemplate::new(source, &bos, &eos).map(Some)
    }

    /// The template in a `tokenizer_config.json` (`chat_template`: a string, or a list of
    /// `{name, template}` of which `default` is used), with its `bos_token`/`eos_token`;
    /// `None` when the file has no template.
    pub fn from_tokenizer_config(path: &Path) -> Result<Option<ChatTemplate>> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            ModelError::malformed(format!("{} is not valid JSON", path.display()), e)
        })?;
        let source = match config.get("chat_template") {
            None | Some(serde_json::Value::Null) => return Ok(None),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(named)) => {
                let pick = named
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .or_else(|| named.first());
                match pick
                    .and_then(|t| t.get("template"))
                    .and_then(|t| t.as_str())
                {
                    Some(s) => s.to_string(),
                    None => return Ok(None),
                }
            }
            Some(_) => {
                return Err(ModelError::Format(format!(
                    "{}: chat_template is neither a string nor a list of named templates",
                    path.display()
                )))
            }
        };
        let token = |key: &str| -> String {
            match config.get(key) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Object(o)) => o
                    .get("content")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default()
                    .to_string(),
                _ => String::new(),
            }
        };
        ChatTemplate::new(&source, &token("bos_token"), &token("eos_token")).map(Some)
    }

    /// The template source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders a conversation; with `add_generation_prompt` the opening of the assistant's
    /// turn is appended (as transformers' `apply_chat_template` does).
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self.env.get_template(TEMPLATE_NAME).map_err(template_err)?;
        tmpl.render(minijinja::context! {
            messages => messages_value(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(template_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nDefault<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_with_and_without_system() {
        let t = ChatTemplate::new(CHATML, "<|im_start|>", "<|im_end|>").unwrap();
        let user = [Message::new("user", "hi")];
        assert_eq!(
            t.render(&user, true).unwrap(),
            "<|im_start|>system\nDefault<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        let both = [Message::new("system", "S"), Message::new("user", "q")];
        assert_eq!(
            t.render(&both, false).unwrap(),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq<|im_end|>\n"
        );
    }

    #[test]
    fn block_whitespace_python_methods_and_tokens() {
        // trim_blocks drops the newline after a block tag, lstrip_blocks the indentation before it.
        let src = "{{ bos_token }}\n  {% for m in messages %}\n[{{ m.content.strip().upper() }}]\n  {% endfor %}\n{{ eos_token }}";
        let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
        let out = t
            .render(
                &[Message::new("user", "  a "), Message::new("assistant", "b")],
                false,
            )
            .unwrap();
        assert_eq!(out, "<s>\n[A]\n[B]\n</s>");
    }

    #[test]
    fn raise_exception_is_an_error_with_its_message() {
        let src = "{% if messages[0]['role'] == 'assistant' %}{{ raise_exception('Conversation must start with a user') }}{% endif %}ok";
        let t = ChatTemplate::new(src, "", "").unwrap();
        assert_eq!(t.render(&[Message::new("user", "x")], false).unwrap(), "ok");
        let err = t
            .render(&[Message::new("assistant", "x")], false)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("Conversation must start with a user"),
            "{err}"
        );
    }

    #[test]
    fn tojson_writes_like_python() {
        let src = "{{ messages[0] | tojson }}|{{ [1, 2.0, none, true] | tojson }}|{{ {'b': 'é\"\n'} | tojson(indent=2) }}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        let out = t.render(&[Message::new("user", "<x>")], false).unwrap();
        assert_eq!(
            out,
            "{\"role\": \"user\", \"content\": \"<x>\"}|[1, 2.0, null, true]|{\n  \"b\": \"é\\\"\\n\"\n}"
        );
    }

    #[test]
    fn syntax_errors_and_tokenizer_config() {
        assert!(matches!(
            ChatTemplate::new("{% for %}", "", ""),
            Err(ModelError::Template(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer_config.json");
        std::fs::write(
            &path,
            serde_json::json!({"chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}",
                "bos_token": {"content": "<s>"}, "eos_token": "</s>"})
            .to_string(),
        )
        .unwrap();
        let t = ChatTemplate::from_tokenizer_config(&path).unwrap().unwrap();
        assert_eq!(
            t.render(&[Message::new("user", "x")], false).unwrap(),
            "<s>x</s>"
        );
        std::fs::write(&path, r#"{"eos_token": "</s>"}"#).unwrap();
        assert!(ChatTemplate::from_tokenizer_config(&path)
            .unwrap()
            .is_none());
        std::fs::write(
            &path,
            r#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}"#,
        )
        .unwrap();
        let t = ChatTemplate::from_tokenizer_config(&path).unwrap().unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "D");
    }
}
