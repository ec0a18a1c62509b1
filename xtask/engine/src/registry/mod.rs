//! One registry client (distribution spec) over the ground floor's HTTP layer: blob checks,
//! monolithic uploads, manifests by tag or digest, and the login a registry asks for. Every
//! answer is data to verify: what is fetched by digest is hashed and compared, digests the
//! registry reports must equal the local ones, bodies are bounded, and credentials go only
//! to the origin they belong to.

pub mod auth;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::image_ref::ImageRef;
use crate::diagnostic::{diagnostic, escape};
use crate::digest::Digest;
use crate::http::{self, Authorization, Body, Failure, Method, Origin, Request, Response};
use crate::retry::Verdict;

/// The largest manifest, index or config read, as distribution itself limits them.
pub(crate) const DOCUMENT_LIMIT: u64 = 4 << 20;
/// The largest error body read (for its code and message).
const ERROR_LIMIT: u64 = 64 << 10;
/// How long a request for a document (manifest, index, config, upload start) may take.
const DOCUMENT_DEADLINE: Duration = Duration::from_secs(60);

/// An OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's image manifest (schema 2).
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list.
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

pub(crate) const MEDIA_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// One repository of one registry.
#[derive(Debug)]
pub(crate) struct Registry {
    /// `http://host[:port]` or `https://host[:port]`.
    base: String,
    origin: Origin,
    /// The registry's name in Docker's config (`127.0.0.1:5000`, `ghcr.io`).
    host: String,
    repository: String,
    /// The `Authorization` the registry accepted, bound to its origin.
    login: Mutex<Option<Authorization>>,
}

impl Registry {
    /// The registry of `image`; plain HTTP for loopback or `insecure_registry`.
    pub(crate) fn of(image: &ImageRef, insecure: bool) -> Result<Registry> {
        let host = image.registry_host().to_ascii_lowercase();
        let api_host = match host.as_str() {
            "docker.io" => "registry-1.docker.io",
            host => host,
        };
        let scheme = if insecure { "http" } else { "https" };
        // Docker Hub's official images live under `library/`.
        let repository = if host == "docker.io" && !image.path.contains('/') {
            format!("library/{}", image.path)
        } else {
            image.path.clone()
        };
        let base = format!("{scheme}://{api_host}");
        crate::http::require_tls(&base, &format!("the registry of {image}"))?;
        let origin = Origin::of(&base).map_err(|err| {
            diagnostic(
                format!("cannot talk to the registry of {image}: {err}"),
                "check `image` and the base image names",
            )
        })?;
        Ok(Registry {
            base,
            origin,
            host,
            repository,
            login: Mutex::new(None),
        })
    }

    fn url(&self, kind: &str, reference: &str) -> String {
        format!("{}/v2/{}/{kind}/{reference}", self.base, self.repository)
    }

    /// Whether the registry answers its API root (`/v2/`) within ten seconds, for `doctor`:
    /// the status it gave (200, or 401 before a login), or why it gave none.
    pub(crate) fn ping(&self) -> std::result::Result<u16, String> {
        let request = Request::new(
            Method::Get,
            format!("{}/v2/", self.base),
            ERROR_LIMIT,
            Duration::from_secs(10),
        );
        http::send(&request)
            .map(|r| r.status)
            .map_err(|err| err.to_string())
    }

    /// The registry's API root, for messages.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Whether the registry already has the blob, so it need not be sent again.
    pub(crate) fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let request = Request::new(
            Method::Head,
            self.url("blobs", digest.as_str()),
            0,
            DOCUMENT_DEADLINE,
        );
        let response = self.send(request)?;
        match response.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refused(&response, "check a blob")),
        }
    }

    /// Uploads a blob unless the registry has it: a POST for a session, then the bytes in
    /// one PUT, or, for a file larger than [`CHUNK`], in PATCHes of at most that size (the
    /// spec's chunked flow, for registries that limit one request) and a closing PUT. The
    /// upload `Location` may be on another origin; it then gets no credentials.
    pub(crate) fn upload_blob(&self, digest: &Digest, payload: Payload<'_>) -> Result<()> {
        if self.has_blob(digest)? {
            return Ok(());
        }
        self.send_blob(digest, payload)
    }

    /// [`Registry::upload_blob`] without asking first, for a caller that just did.
    pub(crate) fn send_blob(&self, digest: &Digest, payload: Payload<'_>) -> Result<()> {
        let start = Request::new(
            Method::Post,
            self.url("blobs", "uploads/"),
            ERROR_LIMIT,
            DOCUMENT_DEADLINE,
        )
        .header("content-length", "0");
        let started = self.send(start)?;
        if started.status != 202 {
            return Err(self.refused(&started, "start an upload"));
        }
        let mut location = self.upload_location(&started)?;
        let label = format!("uploading {digest} to {}", self.base);
        let size = payload.size();
        let chunk = chunk_size(&started);
        let last = match payload {
            Payload::Bytes(bytes) => Body::Bytes(bytes),
            Payload::File(path) => {
                self.leading_chunks(&mut location, (path, 0, size), chunk, &label)?
            }
            Payload::Part { path, start, len } => {
                self.leading_chunks(&mut location, (path, start, len), chunk, &label)?
            }
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let mut put = Request::new(
            Method::Put,
            format!("{location}{separator}digest={digest}"),
            ERROR_LIMIT,
            blob_deadline(size),
        )
        .header("content-type", "application/octet-stream");
        put.body = Some(last);
        let response = self.send(put)?;
        if response.status != 201 {
            return Err(self.refused(&response, "upload a blob"));
        }
        Ok(())
    }

    /// Sends all but the last `chunk` of the `len` bytes from `start` of the file `path` in
    /// PATCHes, moving `location` along; returns the last piece, for the closing PUT.
    fn leading_chunks<'b>(
        &self,
        location: &mut String,
        (path, start, len): (&'b Path, u64, u64),
        chunk: u64,
        label: &'b str,
    ) -> Result<Body<'b>> {
        let mut offset = 0;
        while len - offset > chunk {
            let body = Body::File {
                path,
                offset: start + offset,
                len: chunk,
                label,
            };
            *location = self.patch(location, offset, chunk, body)?;
            offset += chunk;
        }
        Ok(Body::File {
            path,
            offset: start + offset,
            len: len - offset,
            label,
        })
    }

    /// Sends `len` bytes from `offset` of an upload as one chunk; the next `Location`.
    fn patch(&self, location: &str, offset: u64, len: u64, body: Body<'_>) -> Result<String> {
        let mut patch = Request::new(
            Method::Patch,
            location.to_owned(),
            ERROR_LIMIT,
            blob_deadline(len),
        )
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{offset}-{}", offset + len - 1));
        patch.body = Some(body);
        let response = self.send(patch)?;
        if response.status != 202 {
            return Err(self.refused(&response, "upload a chunk of a blob"));
        }
        self.upload_location(&response)
    }

    /// Mounts a blob from another repository of this registry, so that it need not be
    /// sent; `false` when the registry declines (it then opened an upload session, which
    /// is left to expire) or does not allow it, and the blob must be copied.
    pub(crate) fn mount_blob(&self, digest: &Digest, from: &str) -> Result<bool> {
        let request = Request::new(
            Method::Post,
            self.url(
                "blobs",
                &format!(
                    "uploads/?mount={digest}&from={}",
                    http::percent_encode(from).replace("%2F", "/")
                ),
            ),
            ERROR_LIMIT,
            DOCUMENT_DEADLINE,
        )
        .header("content-length", "0");
        Ok(self.send(request)?.status == 201)
    }

    /// Whether `other` is this registry (the same API root), so a blob can be mounted
    /// from one of its repositories.
    pub(crate) fn same_registry(&self, other: &Registry) -> bool {
        self.base == other.base
    }

    /// This registry's repository.
    pub(crate) fn repository(&self) -> &str {
        &self.repository
    }

    /// The `Location` of an upload session, resolved against the request that gave it.
    fn upload_location(&self, response: &Response) -> Result<String> {
        let location = response.header("location").ok_or_else(|| {
            diagnostic(
                format!("{} started an upload without a Location", self.base),
                "check the registry; nothing was tagged",
            )
        })?;
        http::resolve(&response.url, location).map_err(|err| {
            diagnostic(
                format!(
                    "{} gave an upload Location that cannot be used: {err}",
                    self.base
                ),
                "check the registry; nothing was tagged",
            )
        })
    }

    /// A manifest or index by tag or digest, its bytes as sent. Fetched by digest, its bytes must hash to that
    /// digest; a `Docker-Content-Digest` the registry sends must match them as well.
    pub(crate) fn get_manifest(&self, reference: &str) -> Result<Vec<u8>> {
        let pinned = reference.starts_with("sha256:");
        let pinned = match pinned {
            true => Some(Digest::parse(reference).ok_or_else(|| self.bad_digest(reference))?),
            false => None,
        };
        let request = Request::new(
            Method::Get,
            self.url("manifests", reference),
            DOCUMENT_LIMIT,
            DOCUMENT_DEADLINE,
        )
        .header("accept", MEDIA_TYPES);
        let response = self.send(request)?;
        if response.status != 200 {
            return Err(self.refused(
                &response,
                &format!("read the manifest `{}`", escape(reference)),
            ));
        }
        let digest = Digest::of(&response.body);
        let expected = match pinned {
            Some(pinned) => Some(pinned),
            None => response
                .header("docker-content-digest")
                .map(|d| Digest::parse(d.trim()).ok_or_else(|| self.bad_digest(d)))
                .transpose()?,
        };
        if let Some(expected) = expected.filter(|e| *e != digest) {
            return Err(self.mismatch(
                &format!("the manifest `{}`", escape(reference)),
                &expected,
                &digest,
            ));
        }
        Ok(response.body)
    }

    /// A blob by digest, at most `size` bytes (its descriptor's), checked against the digest.
    pub(crate) fn get_blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>> {
        let request = Request::new(
            Method::Get,
            self.url("blobs", digest.as_str()),
            size,
            blob_deadline(size),
        )
        .header("accept", "*/*");
        let response = self.send(request)?;
        if response.status != 200 {
            return Err(self.refused(&response, &format!("read the blob {digest}")));
        }
        let actual = Digest::of(&response.body);
        if actual != *digest || response.body.len() as u64 != size {
            return Err(self.mismatch(&format!("the blob {digest}"), digest, &actual));
        }
        Ok(response.body)
    }

    /// Streams a blob by digest into the file `to` (written beside it first, moved into
    /// place only once its size and digest are checked), with progress on stderr.
    /// With `until`, the request and its retries end by then, whatever the blob's size.
    pub(crate) fn fetch_blob(
        &self,
        digest: &Digest,
        size: u64,
        to: &Path,
        until: Option<Instant>,
    ) -> Result<()> {
        let left = until.map_or(Duration::MAX, |u| {
            u.saturating_duration_since(Instant::now())
        });
        let request = Request::new(
            Method::Get,
            self.url("blobs", digest.as_str()),
            size,
            blob_deadline(size).min(left),
        )
        .header("accept", "*/*");
        let temporary = crate::layout::temporary_beside(to);
        let written = (|| {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let file = std::fs::File::create(&temporary)
                .with_context(|| format!("cannot create {}", temporary.display()))?;
            let mut sink = BlobFile {
                file: crate::digest::Hashing::new(crate::progress::Writing {
                    inner: file,
                    progress: crate::progress::Progress::new(
                        &format!("fetching {digest} from {}", self.base),
                        size,
                    ),
                }),
            };
            let response = self.send_into(request, Some(&mut sink), until)?;
            if response.status != 200 {
                return Err(self.refused(&response, &format!("read the blob {digest}")));
            }
            let (actual, received) = sink.file.finish();
            if actual != *digest || received != size {
                return Err(self.mismatch(&format!("the blob {digest}"), digest, &actual));
            }
            sink.file.inner.inner.sync_all()?;
            std::fs::rename(&temporary, to)
                .with_context(|| format!("cannot move {} into place", to.display()))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }

    /// Puts a manifest or index under `reference`; returns its digest, computed here. A
    /// registry that reports another digest is an error naming both.
    pub(crate) fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let mut request = Request::new(
            Method::Put,
            self.url("manifests", reference),
            ERROR_LIMIT,
            DOCUMENT_DEADLINE,
        )
        .header("content-type", media_type);
        request.body = Some(http::Body::Bytes(bytes));
        let response = self.send(request)?;
        if response.status != 201 {
            return Err(self.refused(&response, "put a manifest"));
        }
        if let Some(reported) = response.header("docker-content-digest") {
            if Digest::parse(reported.trim()).as_ref() != Some(&digest) {
                return Err(diagnostic(
                    format!(
                        "{} stored the manifest for `{}` as `{}`, but its digest is {digest}",
                        self.base,
                        escape(reference),
                        escape(reported)
                    ),
                    "the registry did not store what was sent; check it before publishing again",
                ));
            }
        }
        Ok(digest)
    }

    /// Sends a request, logging in and sending it again once when the registry asks: at
    /// first, and again when a token it gave expired or was revoked (a 401 for a Bearer
    /// token; Docker Hub's live 300 s). A 401 for Basic credentials is final.
    fn send(&self, request: Request<'_>) -> Result<Response> {
        self.send_into(request, None, None)
    }

    /// [`Registry::send`], a `200` body streamed into `sink`.
    fn send_into(
        &self,
        mut request: Request<'_>,
        mut sink: Option<&mut (dyn http::Sink + 'static)>,
        until: Option<Instant>,
    ) -> Result<Response> {
        let login = self.login.lock().unwrap_or_else(|e| e.into_inner()).clone();
        request.authorization = login.clone();
        let response = self.send_retrying(&request, sink.as_deref_mut(), until)?;
        let renewable = login
            .as_ref()
            .is_none_or(|login| login.value.starts_with("Bearer "));
        if response.status != 401 || !renewable {
            return Ok(response);
        }
        let challenge = response
            .header("www-authenticate")
            .and_then(auth::Challenge::parse)
            .ok_or_else(|| {
                diagnostic(
                    format!(
                        "{} answered 401 without a challenge it is possible to answer",
                        self.base
                    ),
                    format!(
                        "log in to {} first: `docker login {}` (credentials are read from Docker's config and credential helpers)",
                        self.host, self.host
                    ),
                )
            })?;
        let login = auth::log_in(&challenge, &self.login_target())?;
        *self.login.lock().unwrap_or_else(|e| e.into_inner()) = Some(login.clone());
        request.authorization = Some(login);
        self.send_retrying(&request, sink, until)
    }

    fn login_target(&self) -> auth::Target<'_> {
        auth::Target {
            base: &self.base,
            origin: &self.origin,
            host: &self.host,
            repository: &self.repository,
        }
    }

    /// One request under the retry policy: 5xx, 429 and lost connections are tried again,
    /// never past `until`.
    fn send_retrying(
        &self,
        request: &Request<'_>,
        mut sink: Option<&mut (dyn http::Sink + 'static)>,
        until: Option<Instant>,
    ) -> Result<Response> {
        crate::retry::DEFAULT
            .run_until(
                until,
                || http::send_into(request, sink.as_deref_mut()),
                transient,
            )
            .map_err(|err| {
                diagnostic(
                    format!("{} ({}): {err}", self.base, request_name(request)),
                    "check that the registry runs and `image` names it; nothing was tagged",
                )
            })
    }

    fn refused(&self, response: &Response, what: &str) -> anyhow::Error {
        let code = error_code(&response.body);
        let code = code.map(|c| format!(" {c}")).unwrap_or_default();
        match response.status {
            401 | 403 => diagnostic(
                format!(
                    "{} refused to {what} for `{}` (HTTP {}{code}): the credentials were not accepted",
                    self.base, self.repository, response.status
                ),
                format!(
                    "log in to {} first: `docker login {}` (credentials are read from Docker's config and credential helpers)",
                    self.host, self.host
                ),
            ),
            other => diagnostic(
                format!("{} could not {what} for `{}`: HTTP {other}{code}", self.base, self.repository),
                "check the registry and `image`; nothing was tagged",
            ),
        }
    }

    fn mismatch(&self, what: &str, expected: &Digest, actual: &Digest) -> anyhow::Error {
        diagnostic(
            format!(
                "{} sent {what} whose digest is {actual}, not {expected}",
                self.base
            ),
            "the registry serves other content than it names; nothing was tagged",
        )
    }

    fn bad_digest(&self, text: &str) -> anyhow::Error {
        diagnostic(
            format!(
                "{} named a digest `{}` that is not sha256:<64 hex>",
                self.base,
                escape(text)
            ),
            "check the registry; nothing was tagged",
        )
    }
}

/// The largest piece of a blob sent in one request: larger files go up in PATCHes of this
/// size (unless the registry asks for larger ones), under the 100 MB that proxies in front
/// of registries commonly allow one request.
pub(crate) const CHUNK: u64 = 64 << 20;

/// The chunk size for an upload session: [`CHUNK`], or the registry's minimum
/// (`OCI-Chunk-Min-Length`) when that is larger (bounded at 1 GiB).
fn chunk_size(started: &Response) -> u64 {
    let minimum = started
        .header("oci-chunk-min-length")
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(0);
    CHUNK.max(minimum.min(1 << 30))
}

/// What an upload sends: a small document held in memory, or a file (or `len` bytes of
/// one from `start`, such as a blob inside a saved image archive) read as it is sent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Payload<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
    Part {
        path: &'a Path,
        start: u64,
        len: u64,
    },
}

impl Payload<'_> {
    fn size(&self) -> u64 {
        match self {
            Payload::Bytes(bytes) => bytes.len() as u64,
            Payload::File(path) => std::fs::metadata(path).map_or(0, |m| m.len()),
            Payload::Part { len, .. } => *len,
        }
    }
}

/// A blob being fetched into a file, hashed as it arrives.
struct BlobFile {
    file: crate::digest::Hashing<crate::progress::Writing<std::fs::File>>,
}

impl std::io::Write for BlobFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl http::Sink for BlobFile {
    fn restart(&mut self) -> std::io::Result<()> {
        use std::io::Seek;
        let file = &mut self.file.inner.inner;
        file.set_len(0)?;
        file.rewind()?;
        self.file.reset();
        Ok(())
    }
}

/// A blob may take 30 s plus the time its size needs at 64 KiB/s, up to an hour.
fn blob_deadline(size: u64) -> Duration {
    Duration::from_secs((30 + size / (64 << 10)).min(3600))
}

/// The method and path of a request, for messages (never its query, which may hold state).
fn request_name(request: &Request<'_>) -> String {
    let path = request.url.split('?').next().unwrap_or_default();
    format!("{:?} {}", request.method, escape(path)).to_uppercase()
}

/// Whether an outcome is worth another try: the HTTP layer's rule, with the registry's
/// error code in the reason.
pub(crate) fn transient(outcome: &Result<Response, Failure>) -> Verdict {
    match (http::transient(outcome), outcome) {
        (Verdict::Again { why, after }, Ok(response)) => Verdict::Again {
            why: format!(
                "{why}{}",
                error_code(&response.body)
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default()
            ),
            after,
        },
        (verdict, _) => verdict,
    }
}

/// The first error code of a distribution error body (`{"errors":[{"code":"DENIED"}]}`),
/// kept only when it reads as one (capital letters and `_`).
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = json["errors"][0]["code"].as_str()?;
    let plain = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    plain.then(|| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_only_when_plain() {
        assert_eq!(
            error_code(br#"{"errors":[{"code":"DENIED","message":"no"}]}"#).as_deref(),
            Some("DENIED")
        );
        assert_eq!(
            error_code(br#"{"errors":[{"code":"TOOMANYREQUESTS"}]}"#).as_deref(),
            Some("TOOMANYREQUESTS")
        );
        assert_eq!(
            error_code(br#"{"errors":[{"code":"x\n::warning::y"}]}"#),
            None
        );
        assert_eq!(error_code(b"<html>"), None);
    }

    #[test]
    fn server_errors_and_429_are_retried_others_are_final() {
        let answer = |status: u16, headers: Vec<(String, String)>| -> Result<Response, Failure> {
            Ok(Response {
                status,
                headers,
                body: Vec::new(),
                url: String::new(),
            })
        };
        assert!(matches!(
            transient(&answer(503, vec![])),
            Verdict::Again { after: None, .. }
        ));
        assert_eq!(
            transient(&answer(429, vec![("retry-after".into(), "2".into())])),
            Verdict::Again {
                why: "HTTP 429".into(),
                after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(transient(&answer(404, vec![])), Verdict::Final);
        assert_eq!(transient(&answer(401, vec![])), Verdict::Final);
        assert_eq!(transient(&Err(Failure::TooLarge(4 << 20))), Verdict::Final);
        assert!(matches!(
            transient(&Err(Failure::Lost("reset".into()))),
            Verdict::Again { .. }
        ));
    }
}
