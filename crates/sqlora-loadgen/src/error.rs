//! [`LoadgenError`]: everything that can stop a load run.
//!
//! A failure of one timed request is not an error of the run: it is counted (see
//! [`crate::load::Outcome`]). These are the failures that leave nothing to measure.

use std::path::PathBuf;

/// Everything that can go wrong before or around a measurement.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The base URL is not `http://...` (the load generator speaks plain HTTP only).
    #[error("--url must start with http:// (got '{0}')")]
    UrlScheme(String),
    /// The base URL has no host.
    #[error("--url has no host: '{0}'")]
    UrlHost(String),
    /// The host name did not resolve.
    #[error("resolving {addr}")]
    Resolve {
        /// `host:port` as looked up.
        addr: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The host name resolved to nothing.
    #[error("{addr} resolves to no address")]
    NoAddress {
        /// `host:port` as looked up.
        addr: String,
    },
    /// The request could not be sent or its answer not read (connection refused, timeout,
    /// a malformed response).
    #[error("{method} {path}")]
    Transport {
        /// `GET` or `POST`.
        method: &'static str,
        /// The request path.
        path: String,
        /// What the HTTP client reported.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The server answered with a status other than the expected one.
    #[error("{method} {path}: {message}")]
    Status {
        /// `GET` or `POST`.
        method: &'static str,
        /// The request path.
        path: String,
        /// `HTTP <status>: <code>: <message>` from the server's JSON error, else the start
        /// of the body.
        message: String,
    },
    /// A 200 answer whose body is not JSON.
    #[error("HTTP {status}: the body is not JSON: {snippet}")]
    NotJson {
        /// The HTTP status.
        status: u16,
        /// The first 200 bytes of the body.
        snippet: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The server's listings could not be read: most likely nothing listens at the URL.
    #[error("is `sqlora serve` running at {url}?")]
    Unreachable {
        /// The base URL that was asked.
        url: String,
        /// The failed request.
        #[source]
        source: Box<LoadgenError>,
    },
    /// `GET /v1/databases` lists nothing to ask about.
    #[error("the server lists no databases")]
    NoDatabases,
    /// The `--questions` file could not be read.
    #[error("reading questions from {}", path.display())]
    Questions {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// No question could be found or made for a database.
    #[error("no questions for database '{0}': give --questions FILE.jsonl")]
    NoQuestions(String),
    /// Zero clients or zero requests.
    #[error("--clients and --requests must be at least 1")]
    NoLoad,
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, LoadgenError>;

/// An error and its chain of sources on one line, `outer: inner: ...` (how a failed request
/// is reported in the results).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
