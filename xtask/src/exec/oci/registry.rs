//! The registry's HTTP API (distribution spec) for the OCI backend: blob existence checks,
//! monolithic uploads, manifests by tag. Requests go through curl with every value as its
//! own argument; bodies and responses pass through files, never the command line.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::config::image_ref::ImageRef;
use crate::diagnostic::diagnostic;

/// One repository of one registry.
pub struct Registry {
    /// `http://host` or `https://host`.
    base: String,
    repository: String,
    /// Where request and response bodies pass.
    scratch: PathBuf,
}

struct Response {
    status: u16,
    headers: String,
}

impl Registry {
    /// The registry of `image`; plain HTTP for loopback or `insecure_registry`.
    pub fn of(image: &ImageRef, insecure: bool, scratch: &Path) -> Registry {
        let host = match image.registry_host() {
            "docker.io" => "registry-1.docker.io",
            host => host,
        };
        let scheme = if insecure { "http" } else { "https" };
        Registry {
            base: format!("{scheme}://{host}"),
            repository: image.path.clone(),
            scratch: scratch.to_path_buf(),
        }
    }

    /// Whether the registry already has the blob, so it need not be sent again.
    pub fn has_blob(&self, digest: &str) -> Result<bool> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let response = self.request("HEAD", &url, None, None)?;
        Ok(response.status == 200)
    }

    /// Uploads a blob in one request (POST for a session, then PUT with the digest).
    pub fn upload_blob(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        if self.has_blob(digest)? {
            return Ok(());
        }
        let url = format!("{}/v2/{}/blobs/uploads/", self.base, self.repository);
        let started = self.expect(
            self.request("POST", &url, None, None)?,
            202,
            "start an upload",
        )?;
        let location = header(&started.headers, "location")
            .context("the registry started an upload without a Location")?;
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        let response = self.request("PUT", &url, Some("application/octet-stream"), Some(bytes))?;
        self.expect(response, 201, "upload a blob").map(drop)
    }

    /// Puts a manifest or index under `reference`; returns the digest the registry gives.
    pub fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<String> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repository);
        let response = self.request("PUT", &url, Some(media_type), Some(bytes))?;
        let response = self.expect(response, 201, "put a manifest")?;
        Ok(header(&response.headers, "docker-content-digest")
            .unwrap_or_else(|| format!("sha256:{}", crate::emulation::sha256::hex_digest(bytes))))
    }

    fn expect(&self, response: Response, status: u16, what: &str) -> Result<Response> {
        match response.status {
            found if found == status => Ok(response),
            401 | 403 => Err(diagnostic(
                format!("{} refused to {what} for `{}` (HTTP {})", self.base, self.repository, response.status),
                "backend = \"oci\" pushes only to registries that need no login, for now; use backend = \"docker\" (credentials stay in Docker's store)",
            )),
            other => Err(diagnostic(
                format!("{} could not {what} for `{}`: HTTP {other}", self.base, self.repository),
                "check the registry and `image`; nothing was tagged",
            )),
        }
    }

    /// One request; the body goes through a file, headers and status come back.
    fn request(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Response> {
        let sh = Shell::new()?;
        std::fs::create_dir_all(&self.scratch)?;
        let unique = format!("{}-{:?}", std::process::id(), std::thread::current().id())
            .replace(['(', ')'], "");
        let headers_file = self.scratch.join(format!("headers-{unique}"));
        let body_file = self.scratch.join(format!("body-{unique}"));
        let data = match body {
            Some(bytes) => {
                std::fs::write(&body_file, bytes)?;
                Some(format!("@{}", body_file.display()))
            }
            None => None,
        };
        let data_flag = data.as_ref().map(|_| "--data-binary");
        let content_type = content_type.map(|t| format!("Content-Type: {t}"));
        let header_flag = content_type.as_ref().map(|_| "--header");
        let request: Vec<&str> = match method {
            "HEAD" => vec!["--head"],
            other => vec!["--request", other],
        };
        let write_out = "%{http_code}";
        let status = cmd!(
            sh,
            "curl --silent --show-error --proto =http,https --connect-timeout 30 --max-time 600 {request...} {header_flag...} {content_type...} {data_flag...} {data...} --dump-header {headers_file} --output /dev/null --write-out {write_out} --url {url}"
        )
        .quiet()
        .read()
        .map_err(|err| {
            diagnostic(
                format!("cannot reach {}: {err}", self.base),
                "check that the registry runs and `image` names it",
            )
        });
        let headers = std::fs::read_to_string(&headers_file).unwrap_or_default();
        let _ = std::fs::remove_file(&headers_file);
        let _ = std::fs::remove_file(&body_file);
        let status = status?;
        Ok(Response {
            status: status.trim().parse().unwrap_or(0),
            headers,
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
