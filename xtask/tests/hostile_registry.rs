//! The OCI backend against a registry that lies: a small fake registry on loopback plays
//! the attacker (tokens that carry curl configuration, uploads that point elsewhere,
//! content served for another digest, misreported digests, endless bodies), and the tool
//! must refuse, publish nothing, and keep credentials at home. Everything else is real:
//! cargo, cross-compiled binaries, the tool's own HTTP client.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use multiarch::digest::Digest;

/// One request as the fake registry saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
}

/// An answer: status line, headers, body.
struct Answer {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send the body a byte at a time with this pause between bytes.
    drip: Option<Duration>,
}

impl Answer {
    fn new(status: &'static str, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: body.into(),
            drip: None,
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Answer {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

type Hook = Box<dyn Fn(&Seen, &[u8]) -> Option<Answer> + Send + Sync>;

/// What the fake registry stores and how it lies.
#[derive(Default)]
struct State {
    blobs: BTreeMap<String, Vec<u8>>,
    manifests: BTreeMap<String, (String, Vec<u8>)>,
    uploads: usize,
    seen: Vec<Seen>,
}

/// A registry in memory: blobs, monolithic uploads, manifests; each request may be
/// answered by a hook first (the lie), and every request is recorded.
struct FakeRegistry {
    host: String,
    state: Arc<Mutex<State>>,
}

impl FakeRegistry {
    fn start(ip: &str, hook: Hook) -> FakeRegistry {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let hook = Arc::new(hook);
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, hook) = (shared.clone(), hook.clone());
                std::thread::spawn(move || serve(stream, &state, hook.as_ref()));
            }
        });
        FakeRegistry {
            host: format!("{ip}:{port}"),
            state,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The tags (not digests) that got a manifest.
    fn tags(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .manifests
            .keys()
            .filter(|r| !r.starts_with("sha256:"))
            .cloned()
            .collect()
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>, hook: &Hook) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if stream.read_exact(&mut body).is_err() {
        return;
    }
    let seen = Seen {
        method,
        path,
        headers,
    };
    state.lock().unwrap().seen.push(seen.clone());
    let answer = hook(&seen, &body).unwrap_or_else(|| registry_answer(&seen, body, state));
    let mut response = format!(
        "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    let _ = stream.write_all(response.as_bytes());
    match answer.drip {
        None => {
            let _ = stream.write_all(&answer.body);
        }
        Some(pause) => {
            for byte in &answer.body {
                if stream.write_all(&[*byte]).is_err() {
                    return;
                }
                std::thread::sleep(pause);
            }
        }
    }
}

/// What an honest registry would answer.
fn registry_answer(seen: &Seen, body: Vec<u8>, state: &Mutex<State>) -> Answer {
    let mut state = state.lock().unwrap();
    let path = seen.path.split('?').next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default().to_owned();
    match (seen.method.as_str(), path) {
        ("HEAD", p) if p.contains("/blobs/") => match state.blobs.get(&last) {
            Some(blob) => {
                Answer::new("200 OK", Vec::new()).header("X-Size", blob.len().to_string())
            }
            None => Answer::new("404 Not Found", Vec::new()),
        },
        ("POST", p) if p.ends_with("/blobs/uploads/") => {
            state.uploads += 1;
            let location = format!("{p}{}", state.uploads);
            Answer::new("202 Accepted", Vec::new()).header("Location", location)
        }
        ("PUT", p) if p.contains("/blobs/uploads/") => {
            let digest = seen
                .path
                .split("digest=")
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            state.blobs.insert(digest, body);
            Answer::new("201 Created", Vec::new())
        }
        ("PUT", p) if p.contains("/manifests/") => {
            let digest = Digest::of(&body).to_string();
            let media_type = seen
                .headers
                .get("content-type")
                .cloned()
                .unwrap_or_default();
            state
                .manifests
                .insert(last, (media_type.clone(), body.clone()));
            state.manifests.insert(digest.clone(), (media_type, body));
            Answer::new("201 Created", Vec::new()).header("Docker-Content-Digest", digest)
        }
        ("GET", p) if p.contains("/manifests/") => match state.manifests.get(&last) {
            Some((media_type, bytes)) => {
                Answer::new("200 OK", bytes.clone()).header("Content-Type", media_type.clone())
            }
            None => Answer::new(
                "404 Not Found",
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#,
            ),
        },
        ("GET", p) if p.contains("/blobs/") => match state.blobs.get(&last) {
            Some(blob) => Answer::new("200 OK", blob.clone()),
            None => Answer::new("404 Not Found", Vec::new()),
        },
        _ => Answer::new("404 Not Found", Vec::new()),
    }
}

/// A registry that answers everything but its token server with a Bearer challenge
/// pointing there, and whose token server answers with `token_answer`.
fn behind_tokens(token_answer: impl Fn() -> Answer + Send + Sync + 'static) -> Hook {
    Box::new(move |seen, _| {
        if seen.path.starts_with("/token") {
            return Some(token_answer());
        }
        let host = seen.headers.get("host").cloned().unwrap_or_default();
        let realm = format!("Bearer realm=\"http://{host}/token\",service=\"fake\"");
        Some(Answer::new("401 Unauthorized", "").header("WWW-Authenticate", realm))
    })
}

/// No request `host` saw carried an `Authorization`.
fn assert_no_credentials(seen: &[Seen], host: &str) {
    for request in seen {
        assert!(
            !request.headers.contains_key("authorization"),
            "credentials reached {host}: {request:?}"
        );
    }
}

/// A registry whose `base:1` is `document` (of `media_type`), answering everything else
/// with `rest` (then honestly).
fn base_at_tag_1(
    document: String,
    media_type: &'static str,
    rest: impl Fn(&Seen) -> Option<Answer> + Send + Sync + 'static,
) -> Hook {
    Box::new(move |seen, _| {
        if seen.path.ends_with("/manifests/1") {
            return Some(
                Answer::new("200 OK", document.clone()).header("Content-Type", media_type),
            );
        }
        rest(seen)
    })
}

/// An amd64 image config with no layers of its own.
const AMD64_CONFIG: &[u8] =
    br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;

/// A gzip layer's descriptor.
fn layer_descriptor(digest: &str, size: usize) -> serde_json::Value {
    serde_json::json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size })
}

/// An OCI image manifest of `config` and `layers`.
fn manifest_of(config: &[u8], layers: Vec<serde_json::Value>) -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(config).to_string(), "size": config.len() },
        "layers": layers,
    })
    .to_string()
}

fn honest() -> Hook {
    Box::new(|_, _| None)
}

/// A one-platform OCI workspace on `base`, with the demo's static targets.
fn workspace(name: &str, platforms: &str, base: &str) -> PathBuf {
    let dir = fixture_workspace(
        name,
        &format!("platforms = [{platforms}]\nbackend = \"oci\"\n{STATIC_TARGETS}"),
    );
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
        .unwrap()
        .replace("base = \"scratch\"", &format!("base = \"{base}\""));
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    dir
}

/// Docker's config with inline credentials for `host`.
fn config_with_login(name: &str, host: &str) -> PathBuf {
    docker_config_for(name, host, "user:secret-password")
}

/// `image --push --tag t` of a fresh one-platform workspace `name` on `base` to `hello` at
/// `host`, with a Docker config of its own.
fn push_hello(name: &str, base: &str, host: &str) -> std::process::Output {
    let dir = workspace(name, "\"linux/amd64\"", base);
    let image = format!("{host}/hello");
    run(
        &dir,
        &["image", "--push", "--image", &image, "--tag", "t"],
        &scratch_dir(&format!("{name}-config")),
    )
}

fn run(dir: &Path, args: &[&str], docker_config: &Path) -> std::process::Output {
    xtask_with_env(
        dir,
        args,
        &[("DOCKER_CONFIG", docker_config.to_str().unwrap())],
    )
}

#[test]
fn a_token_that_carries_configuration_is_refused_and_writes_nothing() {
    let trap = scratch_dir("hostile-token-trap").join("x");
    let token = format!("abc\noutput = {}\ncreate-dirs\nx", trap.display());
    let registry = FakeRegistry::start(
        "127.0.0.1",
        behind_tokens(move || {
            let body = serde_json::json!({ "token": token }).to_string();
            Answer::new("200 OK", body)
        }),
    );
    let base = format!("{}/base:1", registry.host);
    let dir = workspace("hostile-token", "\"linux/amd64\"", &base);
    let output = run(&dir, &["image"], &scratch_dir("hostile-token-config"));
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("answer for `base` was unreadable: the token is not a valid HTTP token"),
        "{message}"
    );
    assert!(
        !trap.exists(),
        "the registry's answer was written to {}",
        trap.display()
    );
    // The token never went back to the registry.
    let sent_token = registry.seen().iter().any(|s| {
        s.headers
            .get("authorization")
            .is_some_and(|a| a.contains("abc"))
    });
    assert!(!sent_token);
}

#[test]
fn a_huge_or_endless_token_answer_stops_with_a_message() {
    let registry = FakeRegistry::start(
        "127.0.0.1",
        behind_tokens(|| {
            let body = format!("{{\"token\": \"{}\"}}", "a".repeat(1 << 20));
            Answer::new("200 OK", body)
        }),
    );
    let dir = workspace(
        "hostile-big-token",
        "\"linux/amd64\"",
        &format!("{}/base:1", registry.host),
    );
    let started = Instant::now();
    let output = run(&dir, &["image"], &scratch_dir("hostile-big-token-config"));
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("the answer is larger than 64 KiB"),
        "{message}"
    );
    assert!(
        message.lines().last().unwrap().starts_with("help: "),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn a_token_server_that_drips_is_given_up_on_in_seconds() {
    let registry = FakeRegistry::start(
        "127.0.0.1",
        behind_tokens(|| {
            let mut answer =
                Answer::new("200 OK", format!("{{\"token\": \"{}\"}}", "a".repeat(4096)));
            answer.drip = Some(Duration::from_millis(200));
            answer
        }),
    );
    let dir = workspace(
        "hostile-drip",
        "\"linux/amd64\"",
        &format!("{}/base:1", registry.host),
    );
    let started = Instant::now();
    let output = run(&dir, &["image"], &scratch_dir("hostile-drip-config"));
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("slower than 1 KiB per second"),
        "{message}"
    );
    // The 10 s grace, the compile before it, and no retry of a stall.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let tokens = registry
        .seen()
        .iter()
        .filter(|s| s.path.starts_with("/token"))
        .count();
    assert_eq!(tokens, 1);
}

#[test]
fn a_token_that_expires_during_a_push_is_renewed_and_the_push_completes() {
    // Each token serves three requests, then the registry calls it `invalid_token`.
    let tokens = Arc::new(Mutex::new((0_usize, 0_usize)));
    let registry = FakeRegistry::start(
        "127.0.0.1",
        Box::new(move |seen, _| {
            let mut tokens = tokens.lock().unwrap();
            if seen.path.starts_with("/token") {
                *tokens = (tokens.0 + 1, 0);
                let body =
                    serde_json::json!({ "token": format!("t{}", tokens.0), "expires_in": 300 });
                return Some(Answer::new("200 OK", body.to_string()));
            }
            let current = format!("Bearer t{}", tokens.0);
            if tokens.0 > 0 && seen.headers.get("authorization") == Some(&current) && tokens.1 < 3 {
                tokens.1 += 1;
                return None;
            }
            let host = seen.headers.get("host").cloned().unwrap_or_default();
            let mut challenge = format!("Bearer realm=\"http://{host}/token\",service=\"fake\"");
            if seen.headers.contains_key("authorization") {
                challenge.push_str(",error=\"invalid_token\"");
            }
            Some(Answer::new("401 Unauthorized", "").header("WWW-Authenticate", challenge))
        }),
    );
    let output = push_hello("hostile-expiry", "scratch", &registry.host);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(registry.tags(), ["amd64-t", "t"]);
    let logins = registry
        .seen()
        .iter()
        .filter(|s| s.path.starts_with("/token"))
        .count();
    assert!(logins >= 3, "the token was renewed: {logins} logins");
}

#[test]
fn credentials_go_to_no_plain_http_token_realm_on_another_host() {
    let realm = FakeRegistry::start(
        "127.0.0.2",
        Box::new(|_, _| Some(Answer::new("200 OK", r#"{"token":"from-the-other-host"}"#))),
    );
    let realm_url = format!("http://{}/token", realm.host);
    let registry = FakeRegistry::start(
        "127.0.0.1",
        Box::new(move |_, _| {
            let challenge = format!("Bearer realm=\"{realm_url}\",service=\"fake\"");
            Some(Answer::new("401 Unauthorized", "").header("WWW-Authenticate", challenge))
        }),
    );
    let config = config_with_login("hostile-realm-config", &registry.host);
    let dir = workspace("hostile-realm", "\"linux/amd64\"", "scratch");
    let image = format!("{}/hello", registry.host);
    let output = run(
        &dir,
        &["image", "--push", "--image", &image, "--tag", "t"],
        &config,
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let asked = realm.seen();
    assert!(
        !asked.is_empty(),
        "the token server was asked: {}",
        stderr(&output)
    );
    assert_no_credentials(&asked, &realm.host);
    assert!(!stderr(&output).contains("secret-password"));
}

#[test]
fn credentials_stay_with_their_registry_when_an_upload_points_elsewhere() {
    let elsewhere = FakeRegistry::start("127.0.0.2", honest());
    let target = format!("http://{}/stolen-upload", elsewhere.host);
    let registry = FakeRegistry::start(
        "127.0.0.1",
        Box::new(move |seen, _| {
            if !seen.headers.contains_key("authorization") {
                let answer = Answer::new(
                    "401 Unauthorized",
                    r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
                );
                return Some(answer.header("WWW-Authenticate", "Basic realm=\"fake\""));
            }
            (seen.method == "POST")
                .then(|| Answer::new("202 Accepted", Vec::new()).header("Location", target.clone()))
        }),
    );
    let config = config_with_login("hostile-location-config", &registry.host);
    let dir = workspace("hostile-location", "\"linux/amd64\"", "scratch");
    let image = format!("{}/hello", registry.host);
    let output = run(
        &dir,
        &["image", "--push", "--image", &image, "--tag", "t"],
        &config,
    );
    // The upload went elsewhere, so the registry never saw the blob: the run may fail,
    // but the other host must have had no credentials.
    let uploads = elsewhere.seen();
    assert!(
        !uploads.is_empty(),
        "the upload followed the Location: {}",
        stderr(&output)
    );
    assert_no_credentials(&uploads, &elsewhere.host);
    let home = registry.seen();
    assert!(home.iter().any(|s| s
        .headers
        .get("authorization")
        .is_some_and(|a| a.starts_with("Basic "))));
    assert!(!stderr(&output).contains("secret-password"));
}

#[test]
fn a_base_with_more_layers_than_an_engine_stacks_is_refused_before_any_layer_is_fetched() {
    let config = AMD64_CONFIG.to_vec();
    let config_digest = Digest::of(&config).to_string();
    let layers = (0..200)
        .map(|i| layer_descriptor(&format!("sha256:{i:064x}"), 32))
        .collect();
    let manifest = manifest_of(&config, layers);
    let registry = FakeRegistry::start(
        "127.0.0.1",
        base_at_tag_1(
            manifest,
            "application/vnd.oci.image.manifest.v1+json",
            move |seen| {
                seen.path
                    .ends_with(&config_digest)
                    .then(|| Answer::new("200 OK", config.clone()))
            },
        ),
    );
    let dir = workspace(
        "hostile-layers",
        "\"linux/amd64\"",
        &format!("{}/base:1", registry.host),
    );
    let output = run(&dir, &["image"], &scratch_dir("hostile-layers-config"));
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("has 200 layers for linux/amd64")
            && message.contains("more than the 125 an engine stacks"),
        "{message}"
    );
    let fetched_layers = registry
        .seen()
        .iter()
        .filter(|s| s.path.contains("/blobs/sha256:0000"))
        .count();
    assert_eq!(fetched_layers, 0, "no layer was downloaded");
}

#[test]
fn content_served_for_another_digest_is_refused_before_any_upload() {
    let real = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#.to_vec();
    let named = Digest::of(&real).to_string();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": named,
            "size": real.len(),
            "platform": { "os": "linux", "architecture": "amd64" },
        }],
    })
    .to_string();
    let registry = FakeRegistry::start(
        "127.0.0.1",
        base_at_tag_1(
            index,
            "application/vnd.oci.image.index.v1+json",
            move |seen| {
                // The attacker's manifest, served under the digest of the real one.
                seen.path
                    .contains("/manifests/sha256:")
                    .then(|| Answer::new("200 OK", real.iter().rev().copied().collect::<Vec<u8>>()))
            },
        ),
    );
    let output = push_hello(
        "hostile-digest",
        &format!("{}/base:1", registry.host),
        &registry.host,
    );
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains(&format!("not {named}")), "{message}");
    assert!(
        message.contains("serves other content than it names"),
        "{message}"
    );
    assert!(registry
        .seen()
        .iter()
        .all(|s| s.method != "PUT" && s.method != "POST"));
    assert!(registry.tags().is_empty());
}

#[test]
fn a_registry_that_misreports_digests_gets_no_tag_and_nothing_false_is_printed() {
    let first: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let registry = FakeRegistry::start(
        "127.0.0.1",
        Box::new(move |seen, body| {
            if seen.method != "PUT" || !seen.path.contains("/manifests/") {
                return None;
            }
            // Every manifest is "stored" under the first one's digest.
            let mut first = first.lock().unwrap();
            let reported = first
                .get_or_insert_with(|| Digest::of(body).to_string())
                .clone();
            Some(Answer::new("201 Created", Vec::new()).header("Docker-Content-Digest", reported))
        }),
    );
    let dir = workspace(
        "hostile-misreport",
        "\"linux/amd64\", \"linux/arm64\"",
        "scratch",
    );
    let image = format!("{}/hello", registry.host);
    let metadata = dir.join("metadata.json");
    let output = run(
        &dir,
        &[
            "image",
            "--push",
            "--image",
            &image,
            "--tag",
            "t",
            "--jobs",
            "1",
            "--metadata-file",
            metadata.to_str().unwrap(),
        ],
        &scratch_dir("hostile-misreport-config"),
    );
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("stored the manifest for"), "{message}");
    assert!(message.contains("but its digest is sha256:"), "{message}");
    let indexes = registry
        .seen()
        .iter()
        .filter(|s| s.method == "PUT" && s.path.ends_with("/manifests/t"))
        .count();
    assert_eq!(indexes, 0, "no tag was published");
    assert!(stdout(&output).is_empty());
    assert!(!metadata.exists());
}

#[test]
fn an_oversized_manifest_is_cut_off_at_the_bound() {
    let registry = FakeRegistry::start(
        "127.0.0.1",
        Box::new(|seen, _| {
            seen.path
                .contains("/manifests/")
                .then(|| Answer::new("200 OK", vec![b' '; 5 << 20]))
        }),
    );
    let dir = workspace(
        "hostile-big-manifest",
        "\"linux/amd64\"",
        &format!("{}/base:1", registry.host),
    );
    let output = run(
        &dir,
        &["image"],
        &scratch_dir("hostile-big-manifest-config"),
    );
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("the answer is larger than 4 MiB"),
        "{message}"
    );
    // A bound is final: the manifest was asked for once, not retried as transient.
    let asked = registry
        .seen()
        .iter()
        .filter(|s| s.path.contains("/manifests/"))
        .count();
    assert_eq!(asked, 1, "{message}");
    assert!(!dir.join("target/multiarch/.http").exists());
}

#[test]
fn too_many_requests_is_retried_after_the_pause_it_asks_for_and_other_refusals_name_their_code() {
    let refusals = Arc::new(Mutex::new(0));
    let counter = refusals.clone();
    let registry = FakeRegistry::start(
        "127.0.0.1",
        Box::new(move |seen, _| {
            let mut count = counter.lock().unwrap();
            if seen.method == "PUT" && seen.path.contains("/manifests/") && *count < 1 {
                *count += 1;
                let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#;
                return Some(Answer::new("429 Too Many Requests", body).header("Retry-After", "2"));
            }
            None
        }),
    );
    let dir = workspace("hostile-429", "\"linux/amd64\"", "scratch");
    let image = format!("{}/hello", registry.host);
    let started = Instant::now();
    let output = run(
        &dir,
        &["image", "--push", "--image", &image, "--tag", "t"],
        &scratch_dir("hostile-429-config"),
    );
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(
        message.contains("transient failure (HTTP 429 TOOMANYREQUESTS), retrying in 2.0s"),
        "{message}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(registry.tags(), ["amd64-t", "t"]);
    // Only sha256 digests reach stdout.
    for line in stdout(&output).lines().filter(|l| l.contains("sha256:")) {
        let digest = line.split("sha256:").nth(1).unwrap();
        assert!(
            digest.chars().take(64).all(|c| c.is_ascii_hexdigit()),
            "{line}"
        );
    }

    let denying = FakeRegistry::start(
        "127.0.0.1",
        Box::new(|seen, _| {
            (seen.method == "POST").then(|| {
                Answer::new("403 Forbidden", r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#)
            })
        }),
    );
    let image = format!("{}/hello", denying.host);
    let output = run(
        &dir,
        &["image", "--push", "--image", &image, "--tag", "t"],
        &scratch_dir("hostile-403-config"),
    );
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("(HTTP 403 DENIED)"), "{message}");
    let posts = denying.seen().iter().filter(|s| s.method == "POST").count();
    assert_eq!(posts, 1, "a 403 is final");
}

#[test]
fn a_blob_redirected_to_storage_is_fetched_without_credentials_and_checked() {
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let served = config.clone();
    let storage = FakeRegistry::start(
        "127.0.0.2",
        Box::new(move |seen, _| {
            seen.path
                .starts_with("/storage/")
                .then(|| Answer::new("200 OK", served.clone()))
        }),
    );
    let manifest = manifest_of(&config, Vec::new());
    let storage_url = format!("http://{}/storage/", storage.host);
    let registry = FakeRegistry::start(
        "127.0.0.1",
        Box::new(move |seen, _| {
            if !seen.headers.contains_key("authorization") {
                let answer = Answer::new("401 Unauthorized", "");
                return Some(answer.header("WWW-Authenticate", "Basic realm=\"fake\""));
            }
            if seen.path.ends_with("/manifests/1") {
                let answer = Answer::new("200 OK", manifest.clone());
                return Some(
                    answer.header("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                );
            }
            seen.path.contains("/blobs/sha256:").then(|| {
                let digest = seen.path.rsplit('/').next().unwrap_or_default().to_owned();
                Answer::new("307 Temporary Redirect", "")
                    .header("Location", format!("{storage_url}{digest}"))
            })
        }),
    );
    let docker_config = config_with_login("hostile-redirect-config", &registry.host);
    let base = format!("{}/base:1", registry.host);
    let dir = workspace("hostile-redirect", "\"linux/amd64\"", &base);
    let output = run(&dir, &["image"], &docker_config);
    assert!(output.status.success(), "{}", stderr(&output));
    let fetched = storage.seen();
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    assert!(
        !fetched[0].headers.contains_key("authorization"),
        "credentials reached the storage host"
    );
    // The image's config carries the base's Env: the redirected blob was used.
    let layout = dir.join("target/multiarch/hello/oci/index.json");
    assert!(layout.is_file(), "{}", layout.display());
}

/// A registry holding `base:1` (one amd64 manifest, one layer) whose layer GETs answer
/// `served`, and whose mount requests (`POST ...?mount=`) answer `mount` (`None`: as an
/// honest registry that declines, with an upload session); `hello` is pushed beside it.
fn push_beside_a_base(
    name: &str,
    served: &'static [u8],
    mount: Option<&'static str>,
) -> (FakeRegistry, String, std::process::Output) {
    let layer: &[u8] = b"the base layer's bytes (gzip in real life)";
    let layer_digest = Digest::of(layer).to_string();
    let config = AMD64_CONFIG.to_vec();
    let config_digest = Digest::of(&config).to_string();
    let manifest = manifest_of(&config, vec![layer_descriptor(&layer_digest, layer.len())]);
    let layer_path = format!("/v2/base/blobs/{layer_digest}");
    let mounted_path = format!("/v2/hello/blobs/{layer_digest}");
    // Once mounted, the layer is in `hello` too, as a registry that mounts says.
    let mounted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let registry = FakeRegistry::start(
        "127.0.0.1",
        base_at_tag_1(
            manifest,
            "application/vnd.oci.image.manifest.v1+json",
            move |seen| {
                if seen.path.ends_with(&config_digest) && seen.method == "GET" {
                    return Some(Answer::new("200 OK", config.clone()));
                }
                if seen.path == layer_path && seen.method == "GET" {
                    return Some(Answer::new("200 OK", served));
                }
                use std::sync::atomic::Ordering;
                if seen.path == mounted_path
                    && seen.method == "HEAD"
                    && mounted.load(Ordering::SeqCst)
                {
                    return Some(Answer::new("200 OK", ""));
                }
                let mounting = seen.method == "POST" && seen.path.contains("mount=");
                let answer = mount
                    .filter(|_| mounting)
                    .map(|status| Answer::new(status, ""));
                if answer.is_some() && mount == Some("201 Created") {
                    mounted.store(true, Ordering::SeqCst);
                }
                answer
            },
        ),
    );
    let output = push_hello(name, &format!("{}/base:1", registry.host), &registry.host);
    (registry, layer_digest, output)
}

#[test]
fn a_base_layer_is_mounted_where_the_registry_allows_it_and_copied_checked_where_it_declines() {
    let layer: &[u8] = b"the base layer's bytes (gzip in real life)";
    // Mounted: the layer is neither downloaded nor uploaded.
    let (registry, digest, output) =
        push_beside_a_base("hostile-mount", layer, Some("201 Created"));
    assert!(output.status.success(), "{}", stderr(&output));
    let seen = registry.seen();
    let mounts: Vec<&Seen> = seen.iter().filter(|s| s.path.contains("mount=")).collect();
    assert_eq!(mounts.len(), 1, "{seen:?}");
    assert!(
        mounts[0].path.starts_with("/v2/hello/blobs/uploads/?")
            && mounts[0].path.contains(&format!("mount={digest}"))
            && mounts[0].path.contains("from=base"),
        "{:?}",
        mounts[0]
    );
    assert!(
        !seen
            .iter()
            .any(|s| s.path.ends_with(&digest) && s.method == "GET"),
        "a mounted layer was downloaded: {seen:?}"
    );
    assert_eq!(registry.tags(), ["amd64-t", "t"]);

    // Declined (an upload session instead): fetched, checked, and uploaded.
    let (registry, digest, output) = push_beside_a_base("hostile-mount-declined", layer, None);
    assert!(output.status.success(), "{}", stderr(&output));
    let state = registry.state.lock().unwrap();
    assert_eq!(state.blobs.get(&digest).map(Vec::as_slice), Some(layer));
    assert!(state.manifests.contains_key("t"));
    drop(state);

    // Declined, and the layer served is not the one named: refused, no tag.
    let (registry, digest, output) =
        push_beside_a_base("hostile-mount-lie", b"another layer entirely", None);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains(&format!("the blob {digest}")), "{message}");
    assert!(
        message.contains("serves other content than it names"),
        "{message}"
    );
    assert!(!registry.state.lock().unwrap().blobs.contains_key(&digest));
    assert!(registry.tags().is_empty());
}

/// How a fake registry answers the GET of a layer (its bytes).
type LayerAnswer = fn(Vec<u8>) -> Answer;

/// A registry whose `base:1` has `layers` layers of 1 KiB, each GET of which `answer`s.
fn base_with_layers(layers: usize, answer: LayerAnswer) -> FakeRegistry {
    let blobs: Vec<Vec<u8>> = (0..layers).map(|i| vec![i as u8; 1024]).collect();
    let config = AMD64_CONFIG.to_vec();
    let config_digest = Digest::of(&config).to_string();
    let descriptors = blobs
        .iter()
        .map(|b| layer_descriptor(&Digest::of(b).to_string(), b.len()))
        .collect();
    let manifest = manifest_of(&config, descriptors);
    FakeRegistry::start(
        "127.0.0.1",
        base_at_tag_1(
            manifest,
            "application/vnd.oci.image.manifest.v1+json",
            move |seen| {
                if seen.path.ends_with(&config_digest) {
                    return Some(Answer::new("200 OK", config.clone()));
                }
                let blob = blobs
                    .iter()
                    .find(|b| seen.path.ends_with(&Digest::of(b).to_string()))?;
                Some(answer(blob.clone()))
            },
        ),
    )
}

#[test]
fn a_base_fetch_ends_at_the_runs_deadline_however_many_layers_and_429s() {
    let cases: [(&str, LayerAnswer); 2] = [
        // Ten layers, each answered 429 with a two-second pause for ever: one request's
        // five tries alone take eight seconds, ten of them eighty.
        ("hostile-deadline-429", |_| {
            Answer::new(
                "429 Too Many Requests",
                r#"{"errors":[{"code":"TOOMANYREQUESTS"}]}"#,
            )
            .header("Retry-After", "2")
        }),
        // Ten layers that drip: a byte every 10 ms, ten seconds each.
        ("hostile-deadline-drip", |blob| Answer {
            drip: Some(Duration::from_millis(10)),
            ..Answer::new("200 OK", blob)
        }),
    ];
    for (name, answer) in cases {
        let registry = base_with_layers(10, answer);
        let dir = workspace(
            name,
            "\"linux/amd64\"",
            &format!("{}/base:1", registry.host),
        );
        let config = scratch_dir(&format!("{name}-config"));
        let started = Instant::now();
        let output = xtask_with_env(
            &dir,
            &["image"],
            &[
                ("DOCKER_CONFIG", config.to_str().unwrap()),
                ("MULTIARCH_BASE_DEADLINE", "4"),
            ],
        );
        let took = started.elapsed();
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {message}");
        assert!(
            message
                .contains("fetching base layers took longer than this run allows them (4 s in all"),
            "{name}: {message}"
        );
        assert!(
            message.contains("MULTIARCH_BASE_DEADLINE=SECONDS"),
            "{name}: {message}"
        );
        // Compiling the demo takes a few seconds of its own.
        assert!(took < Duration::from_secs(25), "{name}: took {took:?}");
    }
    let output = xtask_with_env(
        &workspace("hostile-deadline-bad", "\"linux/amd64\"", "scratch"),
        &["image", "--dry-run"],
        &[("MULTIARCH_BASE_DEADLINE", "soon")],
    );
    let message = stderr(&output);
    assert!(
        message.contains("MULTIARCH_BASE_DEADLINE=`soon` is not a number of seconds"),
        "{message}"
    );
}
