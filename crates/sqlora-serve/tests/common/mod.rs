//! Test helpers: tiny Llama folders on disk (a random one, and a "scripted" one whose greedy
//! continuation of `SELECT` is a fixed valid query), PEFT adapter folders, a SQLite database,
//! and a minimal HTTP/1.0 client.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlora_model::lora::LoraConfig;
use sqlora_model::testing::{random_adapter, TinyLlama};
use sqlora_model::LoadedModel;

pub const HIDDEN: usize = 32;
pub const FFN: usize = 48;
pub const LAYERS: usize = 2;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const HEAD_DIM: usize = 8;

/// The words of the tiny vocabulary after `<unk>` (0) and `</s>` (1).
pub const WORDS: &[&str] = &[
    "SELECT",
    "COUNT",
    "(",
    "*",
    ")",
    "FROM",
    "customers",
    "orders",
    "name",
    "id",
    "WHERE",
    "=",
    "How",
    "many",
    "are",
    "there",
    "?",
    "What",
    "is",
    "the",
    "of",
    "Which",
    "one",
    "largest",
    "rows",
    "city",
    "total",
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
    "h",
    "i",
    "j",
    "k",
    "l",
    "m",
    "n",
    "o",
    "p",
    "q",
    "r",
    "s",
    "t",
    "u",
    "v",
    "w",
    "x",
    "y",
    "z",
    "table",
    "column",
    "and",
    "or",
    "to",
    "in",
    "on",
    "SQL",
    "query",
    "database",
    "schema",
    "question",
    "answer",
    "You",
    "write",
    "one",
    "SQLite",
    "for",
    "with",
    "by",
];

/// The greedy continuation the scripted model writes after `SELECT` (` COUNT ( * ) FROM
/// customers`, then the end token).
pub const SCRIPT: &[&str] = &[
    "\u{120}COUNT",
    "\u{120}(",
    "\u{120}*",
    "\u{120})",
    "\u{120}FROM",
    "\u{120}customers",
    "</s>",
];

/// `<unk>`, `</s>`, every word, then every word with a leading space (`Ġ`, byte-level style),
/// so decoding puts spaces where a real BPE tokenizer would.
pub fn vocab() -> Vec<String> {
    let mut v = vec!["<unk>".to_string(), "</s>".to_string()];
    for prefix in ["", "\u{120}"] {
        for w in WORDS {
            let t = format!("{prefix}{w}");
            if !v.contains(&t) {
                v.push(t);
            }
        }
    }
    v
}

/// Which tiny model to write.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Random weights everywhere.
    Random,
    /// Attention and MLP outputs zeroed, so the logits depend on the last token only, and the
    /// head maps each token of [`SCRIPT`] (starting at `SELECT`) to the next one.
    Scripted,
}

fn shape() -> TinyLlama {
    TinyLlama {
        vocab: vocab().len(),
        hidden: HIDDEN,
        ffn: FFN,
        layers: LAYERS,
        heads: HEADS,
        kv_heads: KV_HEADS,
        max_positions: 4096,
        tie_embeddings: false,
        ..TinyLlama::default()
    }
}

fn weights(kind: Kind, seed: u64) -> HashMap<String, Tensor> {
    let mut w = shape().weights(seed);
    let v = vocab().len();
    let head = match kind {
        Kind::Random => {
            // The end token's logit is 0 while the best of the others is almost surely
            // positive: generations run to max_tokens.
            let h = &w["lm_head.weight"];
            let zero = Tensor::zeros((1, HIDDEN), candle_core::DType::F32, &Device::Cpu).unwrap();
            Tensor::cat(
                &[
                    h.narrow(0, 0, 1).unwrap(),
                    zero,
                    h.narrow(0, 2, v - 2).unwrap(),
                ],
                0,
            )
            .unwrap()
        }
        Kind::Scripted => {
            for (name, t) in w.iter_mut() {
                if name.ends_with("o_proj.weight") || name.ends_with("down_proj.weight") {
                    *t = t.zeros_like().unwrap();
                }
            }
            w.insert(
                "model.norm.weight".to_string(),
                Tensor::ones(HIDDEN, candle_core::DType::F32, &Device::Cpu).unwrap(),
            );
            let e: Vec<Vec<f32>> = w["model.embed_tokens.weight"].to_vec2().unwrap();
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5c41);
            let mut rows: Vec<Vec<f32>> = (0..v)
                .map(|_| {
                    (0..HIDDEN)
                        .map(|_| 0.05 * (rng.gen::<f32>() * 2.0 - 1.0))
                        .collect()
                })
                .collect();
            let words = vocab();
            let id = |w: &str| words.iter().position(|x| x == w).unwrap();
            let mut prev = id("SELECT");
            for next in SCRIPT {
                let n = id(next);
                rows[n] = e[prev].iter().map(|x| 10.0 * x).collect();
                prev = n;
            }
            Tensor::new(rows, &Device::Cpu).unwrap()
        }
    };
    w.insert("lm_head.weight".to_string(), head);
    w
}

fn tokenizer_json() -> String {
    let mut vocab_map = serde_json::Map::new();
    for (i, w) in vocab().iter().enumerate() {
        vocab_map.insert(w.clone(), i.into());
    }
    let added = |id: u32, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [added(0, "<unk>"), added(1, "</s>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "WordLevel", "vocab": vocab_map, "unk_token": "<unk>"}
    })
    .to_string()
}

/// Writes a tiny Llama folder (config, tokenizer, weights) into `dir`.
pub fn write_model(dir: &Path, kind: Kind, seed: u64) {
    let cfg = shape().config_json();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"eos_token": "</s>", "pad_token": "<unk>"}"#,
    )
    .unwrap();
    candle_core::safetensors::save(&weights(kind, seed), dir.join("model.safetensors")).unwrap();
}

/// A tiny model folder in a temp dir, and the model loaded from it.
pub fn tiny_model(kind: Kind, seed: u64) -> (tempfile::TempDir, LoadedModel) {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), kind, seed);
    let m = sqlora_model::load(dir.path(), &Device::Cpu).unwrap();
    (dir, m)
}

/// A PEFT folder `dir/name` holding an adapter with random non-zero A and B for `targets`.
pub fn write_adapter(
    dir: &Path,
    name: &str,
    m: &LoadedModel,
    targets: &[&str],
    seed: u64,
) -> PathBuf {
    let config = LoraConfig::new(4, 8.0, targets);
    let adapter = random_adapter(name, &m.model, config, seed, 0.5);
    let out = dir.join(name);
    sqlora_model::peft::save_adapter(&adapter, &out).unwrap();
    out
}

/// A small shop database with 3 customers and 5 orders.
pub fn write_db(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), total REAL);
         INSERT INTO customers VALUES (1, 'Ada', 'Paris'), (2, 'Bob', 'Oslo'), (3, 'Cy', NULL);
         INSERT INTO orders VALUES (1, 1, 9.5), (2, 1, 3.0), (3, 2, 7.25), (4, 3, 1.0), (5, 3, 2.0);",
    )
    .unwrap();
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request (the server closes the connection after the response, so the body
/// runs to the end of the stream, streamed responses included).
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // The server may answer (e.g. 413) and close before reading a large body: keep what
    // was received.
    let _ = s.write_all(req.as_bytes());
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => panic!("no response from {addr}{path}: {e}"),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {text}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

pub fn post(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Resp {
    request(addr, "POST", path, Some(&body.to_string()))
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, None)
}

/// A server running `app` on a loopback port in a thread of its own; dropping it stops the
/// server and joins the thread.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Serves `app` on `127.0.0.1` at a port the system picks.
    pub fn spawn(app: sqlora_serve::App) -> Running {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                app.serve(listener, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        Running {
            addr: addr_rx.recv().unwrap(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
