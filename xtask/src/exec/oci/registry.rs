//! The registry's HTTP API (distribution spec) for the OCI backend: blob existence checks,
//! monolithic uploads, manifests by tag, and the login a registry asks for (Basic, or a
//! Bearer token from its token server). Requests go through curl with every value as its
//! own argument; bodies pass through files and credentials through curl's standard input,
//! never the command line.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::config::image_ref::ImageRef;
use crate::diagnostic::diagnostic;
use crate::exec::oci::auth::{escape, Challenge, Credentials};

/// One repository of one registry.
pub struct Registry {
    /// `http://host` or `https://host`.
    base: String,
    /// The registry's name in Docker's config (`127.0.0.1:5000`, `ghcr.io`).
    host: String,
    repository: String,
    /// Where request and response bodies pass.
    scratch: PathBuf,
    /// curl config lines that authenticate, once the registry asked.
    login: Mutex<Option<String>>,
}

struct Response {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

/// One request, before it is sent.
struct Request<'a> {
    method: &'a str,
    url: &'a str,
    content_type: Option<&'a str>,
    accept: Option<&'a str>,
    body: Option<&'a [u8]>,
    /// `--get --data-urlencode` pairs, for the token server.
    query: &'a [(&'a str, String)],
}

impl Registry {
    /// The registry of `image`; plain HTTP for loopback or `insecure_registry`.
    pub fn of(image: &ImageRef, insecure: bool, scratch: &Path) -> Registry {
        let host = image.registry_host().to_owned();
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
        Registry {
            base: format!("{scheme}://{api_host}"),
            host,
            repository,
            scratch: scratch.to_path_buf(),
            login: Mutex::new(None),
        }
    }

    /// Whether the registry already has the blob, so it need not be sent again.
    pub fn has_blob(&self, digest: &str) -> Result<bool> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let response = self.send("HEAD", &url, None, None)?;
        match response.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => self.expect(response, 200, "check a blob").map(|_| true),
        }
    }

    /// Uploads a blob in one request (POST for a session, then PUT with the digest).
    pub fn upload_blob(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        if self.has_blob(digest)? {
            return Ok(());
        }
        let url = format!("{}/v2/{}/blobs/uploads/", self.base, self.repository);
        let started = self.expect(self.send("POST", &url, None, None)?, 202, "start an upload")?;
        let location = header(&started.headers, "location")
            .context("the registry started an upload without a Location")?;
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        let response = self.send("PUT", &url, Some("application/octet-stream"), Some(bytes))?;
        self.expect(response, 201, "upload a blob").map(drop)
    }

    /// A manifest or index by tag or digest: its media type and bytes.
    pub fn get_manifest(&self, reference: &str) -> Result<(String, Vec<u8>)> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repository);
        let accept = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
        let response = self.send_accepting("GET", &url, accept)?;
        let response = self.expect(response, 200, &format!("read the manifest `{reference}`"))?;
        let media_type = header(&response.headers, "content-type").unwrap_or_default();
        Ok((media_type, response.body))
    }

    /// A blob by digest, checked against it.
    pub fn get_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let response = self.send_accepting("GET", &url, "*/*")?;
        let response = self.expect(response, 200, &format!("read the blob {digest}"))?;
        let actual = format!(
            "sha256:{}",
            crate::emulation::sha256::hex_digest(&response.body)
        );
        if actual != digest {
            return Err(diagnostic(
                format!(
                    "{} sent a blob for {digest} whose digest is {actual}",
                    self.base
                ),
                "check the registry; nothing was tagged",
            ));
        }
        Ok(response.body)
    }

    /// Puts a manifest or index under `reference`; returns the digest the registry gives.
    pub fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<String> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repository);
        let response = self.send("PUT", &url, Some(media_type), Some(bytes))?;
        let response = self.expect(response, 201, "put a manifest")?;
        Ok(header(&response.headers, "docker-content-digest")
            .unwrap_or_else(|| format!("sha256:{}", crate::emulation::sha256::hex_digest(bytes))))
    }

    fn expect(&self, response: Response, status: u16, what: &str) -> Result<Response> {
        match response.status {
            found if found == status => Ok(response),
            401 | 403 => Err(diagnostic(
                format!(
                    "{} refused to {what} for `{}` (HTTP {}): the credentials were not accepted",
                    self.base, self.repository, response.status
                ),
                format!("log in with `docker login {}`; the OCI backend reads Docker's config and credential helpers", self.host),
            )),
            other => Err(diagnostic(
                format!("{} could not {what} for `{}`: HTTP {other}", self.base, self.repository),
                "check the registry and `image`; nothing was tagged",
            )),
        }
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Response> {
        self.send_request(Request {
            method,
            url,
            content_type,
            accept: None,
            body,
            query: &[],
        })
    }

    fn send_accepting(&self, method: &str, url: &str, accept: &str) -> Result<Response> {
        self.send_request(Request {
            method,
            url,
            content_type: None,
            accept: Some(accept),
            body: None,
            query: &[],
        })
    }

    /// Sends a request, logging in and sending it again once when the registry asks.
    fn send_request(&self, request: Request<'_>) -> Result<Response> {
        let login = self.login.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let response = self.curl_retrying(&request, login.as_deref())?;
        if response.status != 401 || login.is_some() {
            return Ok(response);
        }
        let challenge = header(&response.headers, "www-authenticate")
            .and_then(|h| Challenge::parse(&h))
            .ok_or_else(|| {
                diagnostic(
                    format!(
                        "{} answered 401 without a challenge it is possible to answer",
                        self.base
                    ),
                    "use backend = \"docker\" for this registry",
                )
            })?;
        let login = self.log_in(&challenge)?;
        *self.login.lock().unwrap_or_else(|e| e.into_inner()) = Some(login.clone());
        self.curl_retrying(&request, Some(&login))
    }

    /// Sends again after a server error (5xx) or a lost connection, up to four times with
    /// backoff; an answer the registry meant (2xx, 4xx) is final. Every request here may be
    /// repeated: existence checks, uploads by digest, and manifests by tag.
    fn curl_retrying(&self, request: &Request<'_>, login: Option<&str>) -> Result<Response> {
        let mut backoff = std::time::Duration::from_millis(500);
        for attempt in 1..=4 {
            let response = self.curl(request, login);
            let transient = match &response {
                Ok(response) => response.status >= 500 || response.status == 0,
                Err(_) => true,
            };
            if !transient || attempt == 4 {
                return response;
            }
            let what = match &response {
                Ok(response) => format!("HTTP {}", response.status),
                Err(err) => crate::diagnostic::Diagnostic::of(err).cause,
            };
            eprintln!(
                "  transient failure ({what} from {}), retrying in {:.1}s",
                self.base,
                backoff.as_secs_f64()
            );
            std::thread::sleep(backoff);
            backoff *= 2;
        }
        unreachable!("the last attempt returns")
    }

    /// The curl config lines that answer `challenge`, from Docker's config.
    fn log_in(&self, challenge: &Challenge) -> Result<String> {
        let credentials = Credentials::for_registry(&self.host)?;
        match challenge {
            Challenge::Basic => credentials.map(|c| c.curl_user()).ok_or_else(|| {
                diagnostic(
                    format!(
                        "{} asks for credentials, and Docker's config has none for {}",
                        self.base, self.host
                    ),
                    format!(
                        "log in with `docker login {}` (the OCI backend reads the same config)",
                        self.host
                    ),
                )
            }),
            Challenge::Bearer { realm, service, .. } => {
                let scope = format!("repository:{}:pull,push", self.repository);
                let mut query = vec![("scope", scope)];
                if let Some(service) = service {
                    query.push(("service", service.clone()));
                }
                let request = Request {
                    method: "GET",
                    url: realm,
                    content_type: None,
                    accept: None,
                    body: None,
                    query: &query,
                };
                let user = credentials.as_ref().map(Credentials::curl_user);
                let response = self.curl(&request, user.as_deref())?;
                let json: serde_json::Value =
                    serde_json::from_slice(&response.body).unwrap_or_default();
                let token = json["token"]
                    .as_str()
                    .or_else(|| json["access_token"].as_str())
                    .filter(|_| response.status == 200)
                    .ok_or_else(|| {
                        diagnostic(
                            format!(
                                "the token server {realm} refused a token for `{}` (HTTP {})",
                                self.repository, response.status
                            ),
                            format!("log in with `docker login {}`", self.host),
                        )
                    })?;
                Ok(format!(
                    "header = \"Authorization: Bearer {}\"\n",
                    escape(token)
                ))
            }
        }
    }

    /// One curl run; the body goes through a file, `login` through standard input.
    fn curl(&self, request: &Request<'_>, login: Option<&str>) -> Result<Response> {
        let sh = Shell::new()?;
        std::fs::create_dir_all(&self.scratch)?;
        let unique = format!("{}-{:?}", std::process::id(), std::thread::current().id())
            .replace(['(', ')'], "");
        let headers_file = self.scratch.join(format!("headers-{unique}"));
        let body_file = self.scratch.join(format!("body-{unique}"));
        let response_file = self.scratch.join(format!("response-{unique}"));
        let data = match request.body {
            Some(bytes) => {
                std::fs::write(&body_file, bytes)?;
                vec![
                    "--data-binary".to_owned(),
                    format!("@{}", body_file.display()),
                ]
            }
            None => Vec::new(),
        };
        let method: Vec<&str> = match request.method {
            "HEAD" => vec!["--head"],
            "GET" => vec!["--get"],
            other => vec!["--request", other],
        };
        let content_type: Vec<String> = [
            request.content_type.map(|t| format!("Content-Type: {t}")),
            request.accept.map(|a| format!("Accept: {a}")),
        ]
        .into_iter()
        .flatten()
        .flat_map(|header| ["--header".to_owned(), header])
        .collect();
        // Blobs may be served from elsewhere (a redirect to storage).
        let follow = request.accept.map(|_| "--location");
        let query: Vec<String> = request
            .query
            .iter()
            .flat_map(|(key, value)| ["--data-urlencode".to_owned(), format!("{key}={value}")])
            .collect();
        let url = request.url;
        let write_out = "%{http_code}";
        let status = cmd!(
            sh,
            "curl --config - --silent --show-error --proto =http,https --connect-timeout 30 --max-time 600 {method...} {follow...} {content_type...} {data...} {query...} --dump-header {headers_file} --output {response_file} --write-out {write_out} --url {url}"
        )
        .stdin(login.unwrap_or_default())
        .quiet()
        .read()
        .map_err(|err| {
            diagnostic(
                format!("cannot reach {}: {err}", self.base),
                "check that the registry runs and `image` names it",
            )
        });
        let headers = std::fs::read_to_string(&headers_file).unwrap_or_default();
        let body = std::fs::read(&response_file).unwrap_or_default();
        for file in [&headers_file, &body_file, &response_file] {
            let _ = std::fs::remove_file(file);
        }
        Ok(Response {
            status: status?.trim().parse().unwrap_or(0),
            headers,
            body,
        })
    }
}

/// The value of the last `name:` header (after redirects), case-insensitively.
fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().rev().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}
