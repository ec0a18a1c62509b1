//! HTTP for registries, token servers and downloads: one blocking client (ureq, with rustls
//! under the `https` feature), bodies read up to a bound, a minimum speed, whole calls
//! bounded in time, and redirects followed here so that credentials never leave the origin
//! they belong to.

use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ureq::http;

use crate::diagnostic::escape;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one read may wait for any byte.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// After this long, a body must average at least [`MIN_BYTES_PER_SECOND`].
const SPEED_GRACE: Duration = Duration::from_secs(10);
const MIN_BYTES_PER_SECOND: u64 = 1024;
/// Redirects followed for one request.
const MAX_REDIRECTS: u32 = 5;

/// Whether this engine speaks TLS: its `https` feature.
const TLS: bool = cfg!(feature = "https");

/// The fix for an engine compiled without TLS.
const TLS_HELP: &str = "turn on the engine's `https` feature where your xtask depends on it: \
     `multiarch = { ..., features = [\"https\"] }` in its Cargo.toml (cargo-multiarch and \
     vendored copies have it)";

/// Refuses `url` before anything is sent when it is `https://` and this engine was
/// compiled without TLS; `what` names what lives there.
pub(crate) fn require_tls(url: &str, what: &str) -> anyhow::Result<()> {
    if TLS || !url.to_ascii_lowercase().starts_with("https://") {
        return Ok(());
    }
    Err(crate::diagnostic::diagnostic(
        format!(
            "{what} is served over HTTPS ({}), and this engine was compiled without TLS",
            escape(url)
        ),
        TLS_HELP,
    ))
}

/// A request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
}

impl Method {
    fn as_http(self) -> http::Method {
        match self {
            Method::Get => http::Method::GET,
            Method::Head => http::Method::HEAD,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Patch => http::Method::PATCH,
        }
    }
}

/// Scheme, host (lowercase) and port: what a credential is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) scheme: String,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Origin {
    /// The origin of an absolute http(s) URL.
    pub(crate) fn of(url: &str) -> Result<Origin, Failure> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| Failure::Refused(format!("`{}` is not a URL", escape(url))))?;
        let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => {
                return Err(Failure::Refused(format!(
                    "`{}` is not an http or https URL",
                    escape(url)
                )))
            }
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Failure::Refused(format!("`{}` names no host", escape(url))))?;
        Ok(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port: uri.port_u16().unwrap_or(default_port),
        })
    }
}

/// An `Authorization` value and the one origin it may be sent to.
#[derive(Clone)]
pub(crate) struct Authorization {
    pub(crate) origin: Origin,
    pub(crate) value: String,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Authorization({}://{}:{}, <secret>)",
            self.origin.scheme, self.origin.host, self.origin.port
        )
    }
}

/// What a request sends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body<'a> {
    Bytes(&'a [u8]),
    /// `len` bytes of the file at `path` from `offset`, read as they are sent (a blob is
    /// never held in memory), with progress on stderr under `label` for a long upload.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
        label: &'a str,
    },
}

/// Where a streamed answer's body goes: written as it arrives, and started over when a
/// request is tried again.
pub(crate) trait Sink: Write {
    /// Forgets everything written so far.
    fn restart(&mut self) -> std::io::Result<()>;
}

/// One request, with the bounds its answer must keep.
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Option<Body<'a>>,
    /// Sent only while the URL is on the authorization's origin.
    pub(crate) authorization: Option<Authorization>,
    /// The largest body accepted.
    pub(crate) limit: u64,
    /// The whole call, redirects and body included.
    pub(crate) deadline: Duration,
    /// How long one read may wait for any byte.
    pub(crate) stall: Duration,
}

impl<'a> Request<'a> {
    pub(crate) fn new(
        method: Method,
        url: impl Into<String>,
        limit: u64,
        deadline: Duration,
    ) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            authorization: None,
            limit,
            deadline,
            stall: READ_TIMEOUT,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// An answer: status, headers (names lowercase), the bounded body and the final URL.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) url: String,
}

impl Response {
    /// The first value of the header `name` (case-insensitively), if it is text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// `Retry-After` in seconds, when the server sent one.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")?
            .trim()
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The connection could not be made or was lost: worth trying again.
    Lost(String),
    /// The call took longer than its deadline or a read waited past the stall bound, or
    /// the body came slower than the minimum; with the bytes received until then.
    TooSlow { why: String, received: u64 },
    /// The body was larger than the request's limit.
    TooLarge(u64),
    /// The request or a redirect was refused here (bad URL, scheme, too many redirects).
    Refused(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Lost(why) => write!(f, "the connection failed: {why}"),
            Failure::TooSlow { why, .. } => f.write_str(why),
            Failure::TooLarge(limit) => write!(f, "the answer is larger than {}", bytes(*limit)),
            Failure::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Failure {}

/// `n` bytes in the largest whole unit.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .user_agent(concat!("multiarch/", env!("CARGO_PKG_VERSION")))
            .accept_encoding("identity")
            .build()
            .new_agent()
    })
}

/// Sends `request`, following up to five redirects (http and https only). A hop to another
/// origin carries no `Authorization`; a `PUT` or `POST` is never redirected.
pub(crate) fn send(request: &Request<'_>) -> Result<Response, Failure> {
    send_into(request, None)
}

/// Sends `request` as [`send`] does; a `200` body goes into `sink` as it arrives (the
/// response then has none), bounded as a body held in memory would be.
pub(crate) fn send_into(
    request: &Request<'_>,
    mut sink: Option<&mut (dyn Sink + 'static)>,
) -> Result<Response, Failure> {
    let started = Instant::now();
    let mut url = request.url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let left = request
            .deadline
            .checked_sub(started.elapsed())
            .ok_or_else(|| too_slow(request, 0))?;
        let sink = match sink {
            Some(ref mut sink) => {
                sink.restart()
                    .map_err(|err| Failure::Refused(format!("cannot write what arrives: {err}")))?;
                Some(&mut **sink)
            }
            None => None,
        };
        let response = send_once(request, &url, left, sink)?;
        let redirected = matches!(response.status, 301 | 302 | 303 | 307 | 308)
            && matches!(request.method, Method::Get | Method::Head);
        match response.header("location") {
            Some(location) if redirected => url = resolve(&url, location)?,
            _ => return Ok(response),
        }
    }
    Err(Failure::Refused(format!(
        "{} redirected more than {MAX_REDIRECTS} times",
        escape(&request.url)
    )))
}

/// `location` read against `base`: absolute, scheme-relative or path-absolute.
pub(crate) fn resolve(base: &str, location: &str) -> Result<String, Failure> {
    let origin = Origin::of(base)?;
    let joined = if location.contains("://") {
        location.to_owned()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{}://{rest}", origin.scheme)
    } else if location.starts_with('/') {
        let authority = base
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(rest))
            .unwrap_or_default();
        format!("{}://{authority}{location}", origin.scheme)
    } else {
        let path_end = base.find(['?', '#']).unwrap_or(base.len());
        let dir_end = base[..path_end].rfind('/').map_or(base.len(), |i| i + 1);
        format!("{}{location}", &base[..dir_end])
    };
    Origin::of(&joined)?;
    Ok(joined)
}

fn send_once(
    request: &Request<'_>,
    url: &str,
    left: Duration,
    sink: Option<&mut (dyn Sink + 'static)>,
) -> Result<Response, Failure> {
    let mut builder = http::Request::builder()
        .method(request.method.as_http())
        .uri(url);
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    let origin = Origin::of(url)?;
    if origin.scheme == "https" && !TLS {
        return Err(Failure::Refused(format!(
            "{} is served over HTTPS, and this engine was compiled without TLS (its `https` feature)",
            escape(url)
        )));
    }
    if let Some(authorization) = request
        .authorization
        .as_ref()
        .filter(|a| a.origin == origin)
    {
        builder = builder.header("authorization", &authorization.value);
    }
    let mut source: Box<dyn Read> = match request.body {
        None => Box::new(std::io::empty()),
        Some(Body::Bytes(bytes)) => {
            builder = builder.header("content-length", bytes.len());
            Box::new(std::io::Cursor::new(bytes.to_vec()))
        }
        Some(Body::File {
            path,
            offset,
            len,
            label,
        }) => {
            builder = builder.header("content-length", len);
            Box::new(file_section(path, offset, len, label)?)
        }
    };
    let started = Instant::now();
    let mut response = match request.body {
        None => run(builder, ureq::SendBody::none(), request, url, left),
        Some(_) => run(
            builder,
            ureq::SendBody::from_reader(&mut source),
            request,
            url,
            left,
        ),
    }?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let body = read_body(&mut response, request, started, status, sink)?;
    Ok(Response {
        status,
        headers,
        body,
        url: url.to_owned(),
    })
}

/// The body of an answer: into `sink` when it is a `200` and there is one (nothing
/// returned then), else read into memory within the request's bounds (an error body
/// within 64 KiB when a sink waited for the real one).
fn read_body(
    response: &mut http::Response<ureq::Body>,
    request: &Request<'_>,
    started: Instant,
    status: u16,
    sink: Option<&mut (dyn Sink + 'static)>,
) -> Result<Vec<u8>, Failure> {
    let reader = response.body_mut().as_reader();
    let mut body = Vec::new();
    match sink {
        _ if request.method == Method::Head => {}
        Some(sink) if status == 200 => {
            copy_bounded(reader, request, started, sink)?;
        }
        Some(_) => {
            let bounded = Request {
                limit: request.limit.min(64 << 10),
                ..request.clone()
            };
            copy_bounded(reader, &bounded, started, &mut body)?;
        }
        None => {
            copy_bounded(reader, request, started, &mut body)?;
        }
    }
    Ok(body)
}

/// Runs one request with the agent, its whole call bounded by `left`.
fn run(
    builder: http::request::Builder,
    body: ureq::SendBody<'_>,
    request: &Request<'_>,
    url: &str,
    left: Duration,
) -> Result<http::Response<ureq::Body>, Failure> {
    let http_request = builder.body(body).map_err(|err| {
        Failure::Refused(format!("cannot form a request to {}: {err}", escape(url)))
    })?;
    let http_request = agent()
        .configure_request(http_request)
        .timeout_global(Some(left))
        .timeout_per_read(Some(request.stall))
        .build();
    agent()
        .run(http_request)
        .map_err(|err| failure(request, err))
}

/// `len` bytes of `path` from `offset`, as a reader that reports an upload's progress.
fn file_section(
    path: &Path,
    offset: u64,
    len: u64,
    label: &str,
) -> Result<impl Read + 'static, Failure> {
    let cannot =
        |err: std::io::Error| Failure::Refused(format!("cannot read {}: {err}", path.display()));
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    file.seek(std::io::SeekFrom::Start(offset))
        .map_err(cannot)?;
    Ok(crate::progress::Reading {
        inner: file.take(len),
        progress: crate::progress::Progress::new(label, len),
    })
}

/// Copies at most `request.limit` bytes into `sink`, failing on more, or when the body
/// comes slower than the minimum speed once the grace period is over.
fn copy_bounded(
    mut reader: impl Read,
    request: &Request<'_>,
    started: Instant,
    sink: &mut dyn Write,
) -> Result<u64, Failure> {
    let mut received = 0u64;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let read = match reader.read(&mut chunk) {
            Ok(0) => return Ok(received),
            Ok(read) => read,
            Err(err) => return Err(io_failure(request, err, received)),
        };
        if received + read as u64 > request.limit {
            return Err(Failure::TooLarge(request.limit));
        }
        sink.write_all(&chunk[..read])
            .map_err(|err| Failure::Refused(format!("cannot write what arrives: {err}")))?;
        received += read as u64;
        let elapsed = started.elapsed();
        if elapsed > SPEED_GRACE && received < MIN_BYTES_PER_SECOND * elapsed.as_secs() {
            return Err(Failure::TooSlow {
                why: format!(
                    "{} sent {} in {} s, slower than {} per second",
                    escape(&request.url),
                    bytes(received),
                    elapsed.as_secs(),
                    bytes(MIN_BYTES_PER_SECOND)
                ),
                received,
            });
        }
    }
}

fn too_slow(request: &Request<'_>, received: u64) -> Failure {
    Failure::TooSlow {
        why: format!(
            "{} did not answer in time ({} s for the call, {} s for any byte)",
            escape(&request.url),
            request.deadline.as_secs(),
            request.stall.as_secs()
        ),
        received,
    }
}

fn failure(request: &Request<'_>, err: ureq::Error) -> Failure {
    match err {
        ureq::Error::Timeout(_) => too_slow(request, 0),
        ureq::Error::BodyExceedsLimit(limit) => Failure::TooLarge(limit),
        ureq::Error::Io(err) => io_failure(request, err, 0),
        ureq::Error::BadUri(uri) => Failure::Refused(format!("`{}` is not a URL", escape(&uri))),
        ureq::Error::Http(err) => Failure::Refused(format!("cannot form a request: {err}")),
        other => Failure::Lost(other.to_string()),
    }
}

fn io_failure(request: &Request<'_>, err: std::io::Error, received: u64) -> Failure {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => too_slow(request, received),
        _ => match err.get_ref().and_then(|e| e.downcast_ref::<ureq::Error>()) {
            Some(ureq::Error::Timeout(_)) => too_slow(request, received),
            Some(ureq::Error::BodyExceedsLimit(limit)) => Failure::TooLarge(*limit),
            _ => Failure::Lost(err.to_string()),
        },
    }
}

/// Whether an outcome is worth another try under the retry policy: server errors (5xx),
/// `429` (with its `Retry-After`) and lost connections; a bound that was hit, or any other
/// answer, is final.
pub(crate) fn transient(outcome: &Result<Response, Failure>) -> crate::retry::Verdict {
    use crate::retry::Verdict;
    match outcome {
        Ok(response) if response.status >= 500 || response.status == 429 => Verdict::Again {
            why: format!("HTTP {}", response.status),
            after: response.retry_after(),
        },
        Err(Failure::Lost(why)) => Verdict::Again {
            why: escape(why),
            after: None,
        },
        _ => Verdict::Final,
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters (query values, purl
/// qualifiers).
pub(crate) fn percent_encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let a = Origin::of("http://LOCALHOST:5000/v2/").unwrap();
        assert_eq!(a, Origin::of("http://localhost:5000/x").unwrap());
        assert_ne!(a, Origin::of("https://localhost:5000/x").unwrap());
        assert_ne!(a, Origin::of("http://127.0.0.2:5000/x").unwrap());
        assert_eq!(Origin::of("https://ghcr.io/v2/").unwrap().port, 443);
        assert!(Origin::of("file:///etc/passwd").is_err());
        assert!(Origin::of("ftp://x/y").is_err());
    }

    #[test]
    fn locations_resolve_against_the_request() {
        let base = "http://127.0.0.1:5000/v2/a/blobs/uploads/?x=1";
        assert_eq!(
            resolve(base, "/v2/a/blobs/uploads/u1?_state=s").unwrap(),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/u1?_state=s"
        );
        assert_eq!(
            resolve(base, "http://127.0.0.2:9/up").unwrap(),
            "http://127.0.0.2:9/up"
        );
        assert_eq!(
            resolve(base, "//cdn.example/b").unwrap(),
            "http://cdn.example/b"
        );
        assert_eq!(
            resolve(base, "u2").unwrap(),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/u2"
        );
        assert!(resolve(base, "file:///etc/passwd").is_err());
    }

    #[test]
    fn sizes_read_as_units() {
        assert_eq!(bytes(4 << 20), "4 MiB");
        assert_eq!(bytes(64 << 10), "64 KiB");
        assert_eq!(bytes(1000), "1000 bytes");
    }
}
