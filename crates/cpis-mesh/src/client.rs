//! The blocking MESH API v2 client.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use crate::auth;
use crate::chunks;
use crate::config::MeshConfig;
use crate::error::{status_is_transient, MeshError};
use crate::headers::{self, MEDIA_TYPE_V2};
use crate::message::{InboundMessage, InboxPage, OutboundMessage, Tracked};
use crate::tls;

/// Most bytes of an error response kept for [`MeshError::Rejected`]'s detail.
const ERROR_BODY_LIMIT: u64 = 4096;
/// Most inbox pages followed in one [`MeshClient::inbox`] call (a loop guard).
const MAX_INBOX_PAGES: usize = 10_000;

/// A client for one MESH mailbox. Blocking (call it from a worker thread); cheap to share by
/// reference across threads.
pub struct MeshClient {
    config: MeshConfig,
    base: String,
    /// Pooled connections, for idempotent calls.
    agent: ureq::Agent,
    /// A new connection for every request, for the first POST of a send: a connection failure
    /// there then proves the request was never written.
    fresh: ureq::Agent,
}

/// A failed HTTP exchange, and whether it certainly never reached the server.
struct Failure {
    error: MeshError,
    not_sent: bool,
}

impl From<MeshError> for Failure {
    fn from(error: MeshError) -> Self {
        Failure {
            error,
            not_sent: false,
        }
    }
}

/// A successful response, read completely.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn json(&self, what: &str) -> Result<Value, MeshError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| MeshError::Protocol(format!("{what}: response is not JSON: {e}")))
    }
}

impl MeshClient {
    /// A client for `config`; reads the TLS PEM files now. Makes no request.
    pub fn new(config: MeshConfig) -> Result<Self, MeshError> {
        let base = config.url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(MeshError::Config(format!(
                "MESH url must start with https:// or http://: {base:?}"
            )));
        }
        if config.mailbox_id.trim().is_empty() {
            return Err(MeshError::Config("mailbox_id is empty".into()));
        }
        headers::check_value("mailbox_id", &config.mailbox_id)?;
        let tls = tls::client_config(&config.tls)?;
        let build = |pooled: bool| {
            let mut b = ureq::AgentBuilder::new()
                .timeout(config.timeout)
                .timeout_connect(config.timeout.min(Duration::from_secs(30)))
                .redirects(0)
                .user_agent(&headers::user_agent());
            if let Some(tls) = &tls {
                b = b.tls_config(tls.clone());
            }
            if !pooled {
                b = b.max_idle_connections(0).max_idle_connections_per_host(0);
            }
            b.build()
        };
        Ok(MeshClient {
            agent: build(true),
            fresh: build(false),
            base,
            config,
        })
    }

    /// Our mailbox id.
    pub fn mailbox_id(&self) -> &str {
        &self.config.mailbox_id
    }

    /// The configuration in use.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    /// Validates the mailbox and credentials ("handshake"): `POST /messageexchange/{mailbox}`
    /// with `mex-ClientVersion`, `mex-OSName`, `mex-OSVersion`, … as NHS's mesh-client does.
    /// Bad credentials give [`MeshError::Rejected`] (403).
    pub fn handshake(&self) -> Result<(), MeshError> {
        let url = self.mailbox_url("");
        self.config.retry.run("handshake", |_| {
            self.exchange(&self.agent, "POST", &url, &headers::handshake(), Some(&[]))
                .map_err(|f| f.error)
        })?;
        tracing::debug!(mailbox = %self.config.mailbox_id, "MESH handshake ok");
        Ok(())
    }

    /// All message ids in our inbox (oldest first), following `links.next` page by page.
    pub fn inbox(&self) -> Result<Vec<String>, MeshError> {
        let mut ids = Vec::new();
        let mut page = self.inbox_page(None)?;
        let mut pages = 1;
        loop {
            ids.extend(page.messages);
            let Some(next) = page.next else { break };
            pages += 1;
            if pages > MAX_INBOX_PAGES {
                return Err(MeshError::Protocol(format!(
                    "inbox has more than {MAX_INBOX_PAGES} pages"
                )));
            }
            page = self.inbox_page(Some(&next))?;
        }
        tracing::debug!(count = ids.len(), pages, "MESH inbox listed");
        Ok(ids)
    }

    /// One inbox page: the first (`next` = `None`, `max_results` from
    /// [`MeshConfig::inbox_page_size`]) or the one at a previous page's `next` link.
    pub fn inbox_page(&self, next: Option<&str>) -> Result<InboxPage, MeshError> {
        let url = match next {
            None => {
                let mut url = self.mailbox_url("/inbox");
                if let Some(n) = self.config.inbox_page_size {
                    url.push_str(&format!("?max_results={n}"));
                }
                url
            }
            Some(link) => self.resolve_link(link)?,
        };
        let reply = self.config.retry.run("inbox", |_| {
            self.exchange(&self.agent, "GET", &url, &[], None)
                .map_err(|f| f.error)
        })?;
        let json = reply.json("inbox")?;
        let messages = json
            .get("messages")
            .and_then(Value::as_array)
            .ok_or_else(|| MeshError::Protocol("inbox: no \"messages\" list".into()))?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| MeshError::Protocol("inbox: message id not a string".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next = json
            .get("links")
            .and_then(|l| l.get("next"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let approx_inbox_count = json.get("approx_inbox_count").and_then(Value::as_u64);
        Ok(InboxPage {
            messages,
            next,
            approx_inbox_count,
        })
    }

    /// Downloads a message: chunk 1 from `GET …/inbox/{id}`, then chunks 2..n
    /// (`Mex-Chunk-Range` `"1:n"`) from `GET …/inbox/{id}/{k}`, each gzip-decoded when sent
    /// with `Content-Encoding: gzip`, joined in order. Does not acknowledge.
    pub fn download(&self, message_id: &str) -> Result<InboundMessage, MeshError> {
        let id = segment(message_id);
        let first_url = self.mailbox_url(&format!("/inbox/{id}"));
        let first = self.config.retry.run("download", |_| {
            self.exchange(&self.agent, "GET", &first_url, &[], None)
                .map_err(|f| f.error)
        })?;
        let mut body = decoded_body(&first)?;
        let is_report = first
            .header("Mex-MessageType")
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("REPORT"));
        let total = match first.header("Mex-Chunk-Range") {
            Some(range) if !is_report => {
                let (n, total) = chunks::parse_range(&range)?;
                if n != 1 {
                    return Err(MeshError::Protocol(format!(
                        "first chunk of {message_id} came as {range}"
                    )));
                }
                total
            }
            _ => 1,
        };
        for k in 2..=total {
            let url = self.mailbox_url(&format!("/inbox/{id}/{k}"));
            let reply = self.config.retry.run("download chunk", |_| {
                self.exchange(&self.agent, "GET", &url, &[], None)
                    .map_err(|f| f.error)
            })?;
            if let Some(range) = reply.header("Mex-Chunk-Range") {
                if chunks::parse_range(&range)? != (k, total) {
                    return Err(MeshError::Protocol(format!(
                        "chunk {k}:{total} of {message_id} came as {range}"
                    )));
                }
            }
            body.extend(decoded_body(&reply)?);
        }
        let message = headers::inbound(message_id, |n| first.header(n), body);
        tracing::info!(
            message_id = %message.message_id,
            workflow_id = message.workflow_id.as_deref().unwrap_or(""),
            message_type = %message.message_type,
            chunks = total,
            "MESH message downloaded"
        );
        Ok(message)
    }

    /// Acknowledges a downloaded message (`PUT …/inbox/{id}/status/acknowledged`), which
    /// removes it from the inbox. Idempotent: acknowledging again is not an error.
    pub fn acknowledge(&self, message_id: &str) -> Result<(), MeshError> {
        let url = self.mailbox_url(&format!(
            "/inbox/{}/status/acknowledged",
            segment(message_id)
        ));
        self.config.retry.run("acknowledge", |_| {
            self.exchange(&self.agent, "PUT", &url, &[], Some(&[]))
                .map_err(|f| f.error)
        })?;
        tracing::info!(message_id, "MESH message acknowledged");
        Ok(())
    }

    /// Sends a message and returns its MESH message id. A body larger than
    /// [`MeshConfig::max_chunk_bytes`] goes in chunks: `POST …/outbox` with chunk 1, then
    /// `POST …/outbox/{id}/{k}` for the others. `Mex-LocalID` is always sent.
    ///
    /// The first POST is not idempotent (a repeat would make a second message), so it is
    /// retried only when the connection could not even be opened. Any other failure of it
    /// is returned (typically [`MeshError::Unavailable`]): the caller should then look the
    /// message up with [`MeshClient::track_by_local_id`] before sending again. Later chunks
    /// are retried like other idempotent calls.
    pub fn send(&self, msg: &OutboundMessage) -> Result<String, MeshError> {
        let parts = chunks::split(&msg.body, self.config.max_chunk_bytes);
        let total = u32::try_from(parts.len())
            .map_err(|_| MeshError::Config("message needs too many chunks".into()))?;
        let first_headers = headers::first_chunk(msg, total)?;
        let outbox = self.mailbox_url("/outbox");
        let reply = self.config.retry.run_with("send", |_| {
            self.exchange(&self.fresh, "POST", &outbox, &first_headers, Some(parts[0]))
                .map_err(|f| (f.error, f.not_sent))
        })?;
        let json = reply.json("send")?;
        let message_id = json
            .get("message_id")
            .or_else(|| json.get("messageID"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| MeshError::Protocol("send: no message_id in the response".into()))?
            .to_owned();
        let id = segment(&message_id);
        for (k, part) in (2..=total).zip(parts.iter().skip(1)) {
            let url = self.mailbox_url(&format!("/outbox/{id}/{k}"));
            let chunk_headers = headers::later_chunk(k, total);
            self.config.retry.run("send chunk", |attempt| {
                match self.exchange(&self.agent, "POST", &url, &chunk_headers, Some(part)) {
                    // 423 Locked: the message is no longer uploading. On a repeat of the last
                    // chunk that means an earlier try did arrive and completed the message.
                    Err(Failure {
                        error: MeshError::Rejected { status: 423, .. },
                        ..
                    }) if attempt > 1 && k == total => Ok(()),
                    other => other.map(|_| ()).map_err(|f| f.error),
                }
            })?;
        }
        tracing::info!(
            message_id = %message_id,
            workflow_id = %msg.workflow_id,
            local_id = %msg.local_id,
            chunks = total,
            "MESH message sent"
        );
        Ok(message_id)
    }

    /// Looks up a message we sent by our `Mex-LocalID`: `None` when MESH has no such message
    /// (HTTP 404). Uses `GET …/outbox/tracking/{localID}`, the only tracking by local id that
    /// MESH (and mesh-sandbox) offer (v2 tracking takes a message id only). Several messages
    /// with the same local id give [`MeshError::Protocol`].
    pub fn track_by_local_id(&self, local_id: &str) -> Result<Option<Tracked>, MeshError> {
        let url = self.mailbox_url(&format!("/outbox/tracking/{}", segment(local_id)));
        let reply = self.config.retry.run("track by local id", |_| {
            match self.exchange(&self.agent, "GET", &url, &[], None) {
                Err(Failure {
                    error: MeshError::Rejected { status: 404, .. },
                    ..
                }) => Ok(None),
                other => other.map(Some).map_err(|f| f.error),
            }
        })?;
        let Some(reply) = reply else {
            return Ok(None);
        };
        if reply.status == 300 {
            return Err(MeshError::Protocol(format!(
                "several sent messages have local id {local_id}"
            )));
        }
        tracked(&reply.json("tracking")?).map(Some)
    }

    /// MESH's tracking of a message we sent, by message id
    /// (`GET …/outbox/tracking?messageID={id}`). Unknown ids give [`MeshError::Rejected`] 404.
    pub fn track(&self, message_id: &str) -> Result<Tracked, MeshError> {
        let url = self.mailbox_url(&format!(
            "/outbox/tracking?messageID={}",
            segment(message_id)
        ));
        let reply = self.config.retry.run("track", |_| {
            self.exchange(&self.agent, "GET", &url, &[], None)
                .map_err(|f| f.error)
        })?;
        tracked(&reply.json("tracking")?)
    }

    fn mailbox_url(&self, rest: &str) -> String {
        format!(
            "{}/messageexchange/{}{rest}",
            self.base,
            segment(&self.config.mailbox_id)
        )
    }

    /// An absolute URL for a `links.next` value: a path on our server (or a full URL on it).
    fn resolve_link(&self, link: &str) -> Result<String, MeshError> {
        if link.starts_with('/') && !link.starts_with("//") {
            Ok(format!("{}{link}", self.base))
        } else if link.starts_with(&format!("{}/", self.base)) {
            Ok(link.to_owned())
        } else {
            Err(MeshError::Protocol(
                "inbox: links.next points to another server".into(),
            ))
        }
    }

    /// One HTTP exchange with authorization and the v2 headers; the whole body is read.
    fn exchange(
        &self,
        agent: &ureq::Agent,
        method: &str,
        url: &str,
        extra: &[(&'static str, String)],
        body: Option<&[u8]>,
    ) -> Result<Reply, Failure> {
        let mut req = agent
            .request(method, url)
            .set(
                "Authorization",
                &auth::authorization_now(
                    &self.config.mailbox_id,
                    &self.config.password,
                    &self.config.shared_key,
                ),
            )
            .set("Accept", MEDIA_TYPE_V2)
            .set("Accept-Encoding", "gzip");
        for (name, value) in extra {
            req = req.set(name, value);
        }
        let result = match body {
            Some(bytes) => req.send_bytes(bytes),
            None => req.call(),
        };
        match result {
            Ok(resp) => {
                let status = resp.status();
                let headers = resp
                    .headers_names()
                    .into_iter()
                    .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_owned())))
                    .collect();
                let mut body = Vec::new();
                resp.into_reader().read_to_end(&mut body).map_err(|e| {
                    MeshError::Unavailable(format!(
                        "{method} {}: reading the response: {e}",
                        path(url)
                    ))
                })?;
                Ok(Reply {
                    status,
                    headers,
                    body,
                })
            }
            Err(ureq::Error::Status(status, resp)) => {
                let detail = error_detail(resp);
                let error = if status_is_transient(status) {
                    MeshError::Unavailable(format!(
                        "{method} {}: HTTP {status}: {detail}",
                        path(url)
                    ))
                } else {
                    MeshError::Rejected { status, detail }
                };
                Err(error.into())
            }
            Err(ureq::Error::Transport(t)) => {
                use ureq::ErrorKind as K;
                let mut text = format!("{method} {}: {}", path(url), t.kind());
                if let Some(message) = t.message() {
                    text.push_str(&format!(": {message}"));
                }
                if let Some(source) = std::error::Error::source(&t) {
                    text.push_str(&format!(": {source}"));
                }
                Err(match t.kind() {
                    K::InvalidUrl | K::UnknownScheme | K::InsecureRequestHttpsOnly => {
                        MeshError::Config(text).into()
                    }
                    // Nothing was written: the TCP connection never opened.
                    K::Dns | K::ConnectionFailed => Failure {
                        error: MeshError::Unavailable(text),
                        not_sent: true,
                    },
                    _ => MeshError::Unavailable(text).into(),
                })
            }
        }
    }
}

impl std::fmt::Debug for MeshClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The path of a URL, for messages (no scheme, host or query).
fn path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    path.split('?').next().unwrap_or(path)
}

/// The body of a reply, gzip-decoded when it says `Content-Encoding: gzip`.
fn decoded_body(reply: &Reply) -> Result<Vec<u8>, MeshError> {
    let gzip = reply
        .header("Content-Encoding")
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(reply.body.clone());
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&reply.body[..])
        .read_to_end(&mut out)
        .map_err(|e| MeshError::Protocol(format!("bad gzip body: {e}")))?;
    Ok(out)
}

/// MESH's error description from an error response: v2 `detail[0].msg`, v1
/// `errorDescription`, else the start of the body.
fn error_detail(resp: ureq::Response) -> String {
    let mut raw = Vec::new();
    let _ = resp
        .into_reader()
        .take(ERROR_BODY_LIMIT)
        .read_to_end(&mut raw);
    if let Ok(json) = serde_json::from_slice::<Value>(&raw) {
        let found = json
            .get("detail")
            .and_then(|d| d.get(0))
            .and_then(|d| d.get("msg"))
            .or_else(|| json.get("errorDescription"))
            .or_else(|| json.get("detail"))
            .or_else(|| json.get("message"));
        if let Some(v) = found {
            return v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        }
    }
    let text = String::from_utf8_lossy(&raw).trim().to_owned();
    if text.is_empty() {
        "(no detail)".to_owned()
    } else {
        text.chars().take(300).collect()
    }
}

/// Tracking JSON, v2 (`message_id`, `status`, …) or v1 (`messageId`, `status`, …).
fn tracked(json: &Value) -> Result<Tracked, MeshError> {
    let text = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| json.get(*k).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(Tracked {
        message_id: text(&["message_id", "messageId", "dtsId"])
            .ok_or_else(|| MeshError::Protocol("tracking: no message id".into()))?,
        status: text(&["status"])
            .ok_or_else(|| MeshError::Protocol("tracking: no status".into()))?
            .to_ascii_lowercase(),
        local_id: text(&["local_id", "localId"]),
        recipient: text(&["recipient"]),
    })
}

/// Percent-encodes a URL path segment or query value (all but RFC 3986 unreserved bytes).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("ABC_123-x.y~z"), "ABC_123-x.y~z");
        assert_eq!(segment("a/b c?d"), "a%2Fb%20c%3Fd");
    }

    #[test]
    fn paths_for_messages_drop_host_and_query() {
        assert_eq!(
            path("https://h:1/messageexchange/MB/inbox?max_results=10"),
            "/messageexchange/MB/inbox"
        );
        assert_eq!(path("http://h"), "/");
    }

    #[test]
    fn tracking_json_v1_and_v2() {
        let v2 = serde_json::json!({"message_id": "M1", "status": "accepted", "local_id": "L", "recipient": "B"});
        let v1 = serde_json::json!({"messageId": "M1", "status": "Accepted", "localId": "L", "recipient": "B"});
        let want = Tracked {
            message_id: "M1".into(),
            status: "accepted".into(),
            local_id: Some("L".into()),
            recipient: Some("B".into()),
        };
        assert_eq!(tracked(&v2).unwrap(), want);
        assert_eq!(tracked(&v1).unwrap(), want);
        assert!(tracked(&serde_json::json!({"status": "x"})).is_err());
    }

    #[test]
    fn links_resolve_only_on_the_same_server() {
        let c = MeshClient::new(MeshConfig::new("http://127.0.0.1:1/", "MB", "p", "k")).unwrap();
        assert_eq!(
            c.resolve_link("/messageexchange/MB/inbox?continue_from=x")
                .unwrap(),
            "http://127.0.0.1:1/messageexchange/MB/inbox?continue_from=x"
        );
        assert!(c
            .resolve_link("http://127.0.0.1:1/messageexchange/MB/inbox")
            .is_ok());
        assert!(c.resolve_link("http://evil.example/x").is_err());
        assert!(c.resolve_link("//evil.example/x").is_err());
    }

    #[test]
    fn bad_configuration_is_refused() {
        assert!(matches!(
            MeshClient::new(MeshConfig::new("ftp://x", "MB", "p", "k")),
            Err(MeshError::Config(_))
        ));
        assert!(matches!(
            MeshClient::new(MeshConfig::new("http://x", " ", "p", "k")),
            Err(MeshError::Config(_))
        ));
    }

    #[test]
    fn connection_refused_is_unavailable_and_quick() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = MeshConfig::new(format!("http://127.0.0.1:{port}"), "MB", "p", "k");
        config.retry = crate::Retry {
            attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        };
        let c = MeshClient::new(config).unwrap();
        let started = std::time::Instant::now();
        let err = c.handshake().unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn gzip_bodies_are_decoded() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"hello mesh").unwrap();
        let reply = Reply {
            status: 200,
            headers: vec![("content-encoding".into(), "gzip".into())],
            body: enc.finish().unwrap(),
        };
        assert_eq!(decoded_body(&reply).unwrap(), b"hello mesh");
        let plain = Reply {
            status: 200,
            headers: vec![],
            body: b"x".to_vec(),
        };
        assert_eq!(decoded_body(&plain).unwrap(), b"x");
    }
}
