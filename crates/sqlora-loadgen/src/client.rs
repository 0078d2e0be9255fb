//! The HTTP side: where the server is ([`Endpoint`]) and one blocking request at a time over
//! [`ureq`] ([`Client`]).
//!
//! Every request uses a fresh connection (the client keeps no idle connections), so one
//! measured request costs what it cost a separate client: connect, send, wait for the whole
//! answer. Timeouts are per connect and per socket read/write, no proxy from the environment
//! is used (the server is on this machine) and redirects are not followed.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

use crate::error::{LoadgenError, Result};

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http://host[:port]`, without a path.
    base: String,
    /// The first address the host resolved to.
    addr: SocketAddr,
}

impl Endpoint {
    /// Parses `http://host[:port][/...]` (port 80 by default; a path is ignored) and resolves
    /// the host.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| LoadgenError::UrlScheme(url.to_string()))?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(LoadgenError::UrlHost(url.to_string()));
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|source| LoadgenError::Resolve {
                addr: with_port.clone(),
                source,
            })?
            .next()
            .ok_or_else(|| LoadgenError::NoAddress {
                addr: with_port.clone(),
            })?;
        Ok(Endpoint {
            base: format!("http://{authority}"),
            addr,
        })
    }

    /// The resolved socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
    /// The body, read to its end (chunked encoding already decoded).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn snippet(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|source| LoadgenError::NotJson {
            status: self.status,
            snippet: self.snippet(),
            source,
        })
    }

    /// `HTTP <status>: <code>: <message>` from the server's `{"error":{code, message}}`,
    /// else `HTTP <status>: <start of the body>`.
    pub fn error_message(&self) -> String {
        let from_json = serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?;
                let code = e.get("code").and_then(Value::as_str).unwrap_or("");
                let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
                Some(format!("{code}: {msg}"))
            });
        let text = from_json.unwrap_or_else(|| self.snippet());
        format!("HTTP {}: {}", self.status, text.trim())
    }
}

/// A blocking HTTP client for one server; cheap to share between threads.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `endpoint`.
    pub fn new(endpoint: Endpoint) -> Client {
        let agent = ureq::Agent::config_builder()
            // 4xx/5xx are answers to count, not transport errors.
            .http_status_as_error(false)
            // One connection per request, as separate clients would open.
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .max_redirects(0)
            .proxy(None)
            .no_delay(true)
            .build()
            .new_agent();
        Client { endpoint, agent }
    }

    /// Parses and resolves `url`, then [`Client::new`].
    pub fn connect(url: &str) -> Result<Client> {
        Ok(Client::new(Endpoint::parse(url)?))
    }

    /// The server's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `GET path`, read to the end. `timeout` bounds the connect and every socket read or
    /// write.
    pub fn get(&self, path: &str, timeout: Duration) -> Result<Response> {
        let req = bounded(self.agent.get(self.endpoint.url(path)), timeout);
        finish("GET", path, req.call())
    }

    /// `POST path` with a JSON body, read to the end; `timeout` as in [`Client::get`].
    pub fn post_json(&self, path: &str, body: &[u8], timeout: Duration) -> Result<Response> {
        let req = self
            .agent
            .post(self.endpoint.url(path))
            .header("Content-Type", "application/json");
        finish("POST", path, bounded(req, timeout).send(body))
    }

    /// `GET path` as JSON; any status but 200 is an error.
    pub fn get_json(&self, path: &str, timeout: Duration) -> Result<Value> {
        let r = self.get(path, timeout)?;
        if r.status != 200 {
            return Err(LoadgenError::Status {
                method: "GET",
                path: path.to_string(),
                message: r.error_message(),
            });
        }
        r.json()
    }

    /// `GET /metrics` as text; `None` when the server has none or does not answer.
    pub fn metrics_text(&self) -> Option<String> {
        let r = self.get("/metrics", Duration::from_secs(10)).ok()?;
        (r.status == 200).then(|| String::from_utf8_lossy(&r.body).into_owned())
    }
}

/// A request that accepts JSON, with `timeout` on the connect and on every socket read and
/// write (what a socket's own read/write timeouts would bound).
fn bounded<B>(req: ureq::RequestBuilder<B>, timeout: Duration) -> ureq::RequestBuilder<B> {
    req.header("Accept", "application/json")
        .config()
        .timeout_connect(Some(timeout))
        .timeout_per_read(Some(timeout))
        .timeout_per_write(Some(timeout))
        .build()
}

/// Reads the whole answer of a sent request.
fn finish(
    method: &'static str,
    path: &str,
    sent: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Response> {
    let transport = |source: ureq::Error| LoadgenError::Transport {
        method,
        path: path.to_string(),
        source: Box::new(source),
    };
    let mut resp = sent.map_err(transport)?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).trim().to_string(),
            )
        })
        .collect();
    // `with_config` reads without the convenience methods' 10 MB cap.
    let body = resp
        .body_mut()
        .with_config()
        .read_to_vec()
        .map_err(transport)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let ep = Endpoint::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(ep.addr().port(), 9);
        assert_eq!(ep.url("/v1/query"), "http://127.0.0.1:9/v1/query");
        let ep = Endpoint::parse("http://127.0.0.1/some/path").unwrap();
        assert_eq!(ep.addr().port(), 80);
        assert_eq!(ep.url("/metrics"), "http://127.0.0.1/metrics");
        assert!(matches!(
            Endpoint::parse("https://x"),
            Err(LoadgenError::UrlScheme(_))
        ));
        assert!(matches!(
            Endpoint::parse("http:///v1"),
            Err(LoadgenError::UrlHost(_))
        ));
    }

    #[test]
    fn error_messages_prefer_the_servers_json_error() {
        let r = Response {
            status: 429,
            headers: vec![("retry-after".into(), "1".into())],
            body: br#"{"error":{"code":"overloaded","message":"queue full"}}"#.to_vec(),
        };
        assert_eq!(r.error_message(), "HTTP 429: overloaded: queue full");
        assert_eq!(r.header("retry-after"), Some("1"));
        let r = Response {
            status: 502,
            headers: vec![],
            body: b"  bad gateway \n".to_vec(),
        };
        assert_eq!(r.error_message(), "HTTP 502: bad gateway");
        assert!(matches!(
            r.json(),
            Err(LoadgenError::NotJson { status: 502, .. })
        ));
    }
}
