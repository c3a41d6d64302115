//! `gs://` and `s3://` through the `object_store` crate: one client per
//! bucket on an internal tokio runtime, credentials found the way Google's
//! and AWS's tools find them, bounded retries, and object-store errors
//! turned into [`Error`]s that name the URL and say what to do.
//!
//! Credentials:
//! - `gs://`: `GOOGLE_SERVICE_ACCOUNT`/`GOOGLE_SERVICE_ACCOUNT_KEY`, then
//!   `GOOGLE_APPLICATION_CREDENTIALS`, then gcloud's
//!   `~/.config/gcloud/application_default_credentials.json`, then the VM's
//!   metadata server when the machine is a Google Cloud VM (its DMI product
//!   name says "Google"); with none of these, requests are anonymous (public
//!   buckets such as `gs://simclr-checkpoints`). A service-account JSON may
//!   carry `gcs_base_url` and `disable_oauth` (an emulator).
//! - `s3://`: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`,
//!   then the profile `AWS_PROFILE` (default `default`) of
//!   `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`) and `~/.aws/config`
//!   (`AWS_CONFIG_FILE`), then web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`)
//!   or container credentials when their variables are set; otherwise
//!   anonymous. Region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile,
//!   else `us-east-1`. Endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`.
//!
//! Retries: `SIMCLR_STORAGE_RETRIES` (default 5) attempts after the first,
//! exponential backoff from 100 ms to 5 s, and at most
//! `SIMCLR_STORAGE_RETRY_TIMEOUT` seconds (default 60) per request.

use super::{Entry, Error, Location, Result, Scheme};
use futures_util::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The runtime every object-store request runs on.
pub(super) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("simclr-storage")
            .enable_all()
            .build()
            .unwrap_or_else(|e| {
                // Without a runtime nothing can reach a bucket; this is an
                // OS resource failure (threads), not something a flag fixes.
                panic!("cannot start the storage runtime: {e}")
            })
    })
}

/// A client for one bucket and how its credentials were found.
#[derive(Clone, Debug)]
pub(super) struct Client {
    pub(super) store: Arc<dyn ObjectStore>,
    /// Where the credentials came from, for error messages.
    pub(super) credentials: String,
}

pub(super) fn retries() -> usize {
    std::env::var("SIMCLR_STORAGE_RETRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

fn retry_config() -> RetryConfig {
    let timeout = std::env::var("SIMCLR_STORAGE_RETRY_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(60);
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: retries(),
        retry_timeout: Duration::from_secs(timeout),
    }
}

fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(300))
}

/// The client of `loc`'s bucket (built once per bucket and process).
pub(super) fn client(loc: &Location) -> Result<Client> {
    let Location::Cloud { scheme, bucket, .. } = loc else {
        return Err(local_here(loc));
    };
    static CLIENTS: OnceLock<Mutex<HashMap<(Scheme, String), Client>>> = OnceLock::new();
    let map = CLIENTS.get_or_init(Default::default);
    let key = (*scheme, bucket.clone());
    if let Some(c) = map.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(c);
    }
    let _guard = runtime().enter();
    let c = match scheme {
        Scheme::Gcs => gcs_client(loc, bucket)?,
        Scheme::S3 => s3_client(loc, bucket)?,
    };
    if let Ok(mut m) = map.lock() {
        m.insert(key, c.clone());
    }
    Ok(c)
}

fn local_here(loc: &Location) -> Error {
    Error::Other {
        url: loc.to_string(),
        detail: "a local path reached the object-store client".into(),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

fn home() -> Option<std::path::PathBuf> {
    env("HOME").map(std::path::PathBuf::from)
}

fn on_google_cloud() -> bool {
    std::fs::read_to_string("/sys/class/dmi/id/product_name").is_ok_and(|s| s.contains("Google"))
}

fn no_creds(loc: &Location, detail: String) -> Error {
    Error::NoCredentials {
        url: loc.to_string(),
        detail,
    }
}

fn gcs_client(loc: &Location, bucket: &str) -> Result<Client> {
    use object_store::gcp::GoogleCloudStorageBuilder;
    let mut b = GoogleCloudStorageBuilder::new()
        .with_bucket_name(bucket)
        .with_retry(retry_config());
    let mut base_url: Option<String> = None;
    let mut emulator = false;
    let credentials;
    let sa_file = env("GOOGLE_SERVICE_ACCOUNT")
        .or_else(|| env("GOOGLE_SERVICE_ACCOUNT_PATH"))
        .map(|p| ("GOOGLE_SERVICE_ACCOUNT", p));
    let adc_env =
        env("GOOGLE_APPLICATION_CREDENTIALS").map(|p| ("GOOGLE_APPLICATION_CREDENTIALS", p));
    let gcloud_adc = home()
        .map(|h| h.join(".config/gcloud/application_default_credentials.json"))
        .filter(|p| p.is_file())
        .map(|p| {
            (
                "gcloud's application default credentials",
                p.display().to_string(),
            )
        });
    if let Some(key) = env("GOOGLE_SERVICE_ACCOUNT_KEY") {
        base_url = json_field(&key, "gcs_base_url");
        b = b.with_service_account_key(key);
        credentials = "the service-account key in GOOGLE_SERVICE_ACCOUNT_KEY".to_string();
    } else if let Some((var, path)) = sa_file.or(adc_env).or(gcloud_adc) {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            no_creds(
                loc,
                format!(
                    "{var} names '{path}', which cannot be read ({e}); fix the path or unset it"
                ),
            )
        })?;
        let kind = json_field(&text, "type");
        base_url = json_field(&text, "gcs_base_url");
        emulator = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("disable_oauth")?.as_bool())
            .unwrap_or(false);
        match kind.as_deref() {
            Some("authorized_user") => {
                b = b.with_application_credentials(&path);
                credentials = format!("the user credentials in {path} ({var})");
            }
            Some("service_account") | None => {
                b = b.with_service_account_path(&path);
                credentials = format!("the service account in {path} ({var})");
            }
            Some(other) => {
                return Err(no_creds(
                    loc,
                    format!(
                        "{path} ({var}) holds credentials of type '{other}'; use a service-account \
                         key or `gcloud auth application-default login`"
                    ),
                ))
            }
        }
    } else if on_google_cloud() {
        credentials = "the VM's metadata server (no GOOGLE_APPLICATION_CREDENTIALS, no gcloud \
                       application default credentials)"
            .to_string();
    } else {
        b = b.with_skip_signature(true);
        credentials = "none: anonymous requests (GOOGLE_APPLICATION_CREDENTIALS and \
                       GOOGLE_SERVICE_ACCOUNT unset, no ~/.config/gcloud/\
                       application_default_credentials.json, not a Google Cloud VM); set \
                       GOOGLE_APPLICATION_CREDENTIALS to a service-account key or run `gcloud \
                       auth application-default login`"
            .to_string();
    }
    let allow_http = base_url
        .as_deref()
        .is_some_and(|u| u.starts_with("http://"));
    b = b.with_client_options(client_options(allow_http));
    if emulator {
        b = b.with_http_connector(EmulatorConnector);
    }
    let store = b
        .build()
        .map_err(|e| no_creds(loc, format!("{e}; credentials looked at: {credentials}")))?;
    Ok(Client {
        store: Arc::new(store),
        credentials,
    })
}

/// The HTTP client for a GCS emulator (a service account with
/// `disable_oauth`, which real GCS never has): fake-gcs-server 1.54 stores a
/// `PUT /bucket/object` of the XML API only as a signed-URL upload, so such
/// uploads get a signature-algorithm query parameter. Everything else is
/// sent unchanged.
#[derive(Debug)]
struct EmulatorConnector;

impl object_store::client::HttpConnector for EmulatorConnector {
    fn connect(
        &self,
        options: &ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        let inner = object_store::client::ReqwestConnector {}.connect(options)?;
        Ok(object_store::client::HttpClient::new(EmulatorService(
            inner,
        )))
    }
}

#[derive(Debug)]
struct EmulatorService(object_store::client::HttpClient);

impl object_store::client::HttpService for EmulatorService {
    fn call<'a, 'f>(
        &'a self,
        mut req: object_store::client::HttpRequest,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = std::result::Result<
                        object_store::client::HttpResponse,
                        object_store::client::HttpError,
                    >,
                > + Send
                + 'f,
        >,
    >
    where
        'a: 'f,
    {
        if req.method() == reqwest::Method::PUT && req.uri().query().is_none() {
            let uri = format!("{}?X-Goog-Algorithm=GOOG4-RSA-SHA256", req.uri());
            if let Ok(u) = uri.parse() {
                *req.uri_mut() = u;
            }
        }
        let is_put = req.method() == reqwest::Method::PUT;
        Box::pin(async move {
            let mut resp = self.0.execute(req).await?;
            // Its signed-URL upload answers without an ETag header, which
            // the client needs for the put's result.
            if is_put && resp.status().is_success() && !resp.headers().contains_key("etag") {
                resp.headers_mut().insert(
                    "etag",
                    reqwest::header::HeaderValue::from_static("\"emulator-upload\""),
                );
            }
            Ok(resp)
        })
    }
}

fn json_field(text: &str, field: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()?
        .get(field)?
        .as_str()
        .map(str::to_string)
}

/// `key = value` pairs of section `section` of an INI-style AWS file.
fn ini_section(path: &std::path::Path, section: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_lowercase(), v.trim().to_string());
            }
        }
    }
    out
}

fn s3_client(loc: &Location, bucket: &str) -> Result<Client> {
    use object_store::aws::AmazonS3Builder;
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_retry(retry_config());
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let cred_file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| home().map(|h| h.join(".aws/credentials")));
    let config_file = env("AWS_CONFIG_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| home().map(|h| h.join(".aws/config")));
    let prof_creds = cred_file
        .as_deref()
        .map(|p| ini_section(p, &profile))
        .unwrap_or_default();
    let config_section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let prof_config = config_file
        .as_deref()
        .map(|p| ini_section(p, &config_section))
        .unwrap_or_default();
    let region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| prof_config.get("region").cloned())
        .unwrap_or_else(|| "us-east-1".into());
    b = b.with_region(region);
    let endpoint = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL"));
    if let Some(ep) = &endpoint {
        b = b.with_endpoint(ep);
    }
    let credentials;
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        b = b.with_access_key_id(id).with_secret_access_key(secret);
        if let Some(t) = env("AWS_SESSION_TOKEN") {
            b = b.with_token(t);
        }
        credentials = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_string();
    } else if let (Some(id), Some(secret)) = (
        prof_creds.get("aws_access_key_id"),
        prof_creds.get("aws_secret_access_key"),
    ) {
        b = b.with_access_key_id(id).with_secret_access_key(secret);
        if let Some(t) = prof_creds.get("aws_session_token") {
            b = b.with_token(t);
        }
        credentials = format!(
            "profile '{profile}' of {}",
            cred_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    } else if let (Some(file), Some(role)) =
        (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN"))
    {
        b = b
            .with_config(
                "aws_web_identity_token_file"
                    .parse()
                    .map_err(|e| no_creds(loc, format!("{e}")))?,
                file,
            )
            .with_config(
                "aws_role_arn"
                    .parse()
                    .map_err(|e| no_creds(loc, format!("{e}")))?,
                role,
            );
        credentials = "AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN".to_string();
    } else if let Some(uri) = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        b = b.with_config(
            "aws_container_credentials_relative_uri"
                .parse()
                .map_err(|e| no_creds(loc, format!("{e}")))?,
            uri,
        );
        credentials = "the container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)".into();
    } else {
        b = b.with_skip_signature(true);
        credentials = format!(
            "none: anonymous requests (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unset, no \
             profile '{profile}' in {}); set those variables or AWS_PROFILE",
            cred_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    let allow_http = endpoint
        .as_deref()
        .is_some_and(|u| u.starts_with("http://"));
    b = b.with_client_options(client_options(allow_http));
    let store = b
        .build()
        .map_err(|e| no_creds(loc, format!("{e}; credentials looked at: {credentials}")))?;
    Ok(Client {
        store: Arc::new(store),
        credentials,
    })
}

pub(super) fn obj_path(loc: &Location) -> ObjPath {
    match loc {
        Location::Cloud { key, .. } => ObjPath::from(key.as_str()),
        Location::Local(_) => ObjPath::from(""),
    }
}

/// Turns an object-store error on `loc` into an [`Error`].
pub(super) fn map_err(loc: &Location, client: &Client, e: object_store::Error) -> Error {
    use object_store::Error as E;
    let url = loc.to_string();
    match e {
        E::NotFound { source, .. } => {
            if says_no_bucket(&source.to_string()) {
                return no_bucket(loc, client);
            }
            match bucket_exists(loc, client) {
                Ok(false) => no_bucket(loc, client),
                _ => Error::NotFound {
                    url,
                    hint: String::new(),
                },
            }
        }
        E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => {
            Error::AccessDenied {
                url,
                detail: first_line(&source.to_string()),
                credentials: client.credentials.clone(),
            }
        }
        other => {
            let text = other.to_string();
            let lower = text.to_lowercase();
            if says_no_bucket(&text) {
                no_bucket(loc, client)
            } else if lower.contains("credential")
                || lower.contains("token request")
                || lower.contains("token response")
                || lower.contains("metadata server")
            {
                Error::NoCredentials {
                    url,
                    detail: format!(
                        "{}; credentials looked at: {}",
                        first_line(&text),
                        client.credentials
                    ),
                }
            } else if lower.contains("error sending request")
                || lower.contains("connection refused")
                || lower.contains("connect")
                || lower.contains("timed out")
                || lower.contains("body")
                || (lower.contains("retries") && lower.contains("status code: 5"))
            {
                Error::Network {
                    url,
                    attempts: retries() + 1,
                    detail: first_line(&text),
                }
            } else if lower.contains("403 forbidden")
                || lower.contains("accessdenied")
                || lower.contains("access denied")
            {
                Error::AccessDenied {
                    url,
                    detail: first_line(&text),
                    credentials: client.credentials.clone(),
                }
            } else {
                Error::Other { url, detail: text }
            }
        }
    }
}

/// Whether a server's message says the bucket does not exist (S3's
/// `NoSuchBucket`, GCS's wording, the emulator's).
fn says_no_bucket(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("nosuchbucket")
        || lower.contains("bucket does not exist")
        || lower.contains("no bucket named")
        || lower.contains("bucket not found")
}

fn first_line(s: &str) -> String {
    let s = s.trim();
    let cut: String = s.chars().take(400).collect();
    cut.lines().next().unwrap_or_default().to_string()
}

fn no_bucket(loc: &Location, client: &Client) -> Error {
    let bucket = match loc {
        Location::Cloud { bucket, .. } => bucket.clone(),
        Location::Local(_) => String::new(),
    };
    Error::NoBucket {
        url: loc.to_string(),
        bucket,
        credentials: client.credentials.clone(),
    }
}

fn bucket_exists(_loc: &Location, client: &Client) -> Result<bool> {
    let store = client.store.clone();
    let r = runtime().block_on(async move {
        let mut s = store.list(None);
        s.next().await.transpose()
    });
    match r {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Ok(!says_no_bucket(&e.to_string())),
    }
}

/// The whole object, or `range` of it; checks the length received.
pub(super) fn read(loc: &Location, range: Option<Range<u64>>) -> Result<Vec<u8>> {
    let c = client(loc)?;
    let path = obj_path(loc);
    let store = c.store.clone();
    let want = range.clone();
    let attempts = retries() + 1;
    let mut last = None;
    for attempt in 0..attempts {
        let store = store.clone();
        let path = path.clone();
        let range = want.clone();
        let r: std::result::Result<(Vec<u8>, u64), object_store::Error> =
            runtime().block_on(async move {
                match range {
                    Some(r) => {
                        let n = r.end - r.start;
                        let b = store.get_range(&path, r).await?;
                        Ok((b.to_vec(), n))
                    }
                    None => {
                        let g = store.get(&path).await?;
                        let size = g.meta.size;
                        let b = g.bytes().await?;
                        Ok((b.to_vec(), size))
                    }
                }
            });
        match r {
            Ok((bytes, expected)) if bytes.len() as u64 == expected => return Ok(bytes),
            Ok((bytes, expected)) => {
                return Err(Error::Corrupt {
                    url: loc.to_string(),
                    detail: format!(
                        "{} bytes were received where {expected} were expected",
                        bytes.len()
                    ),
                })
            }
            Err(e) => {
                let body_failure = matches!(e, object_store::Error::Generic { .. })
                    && e.to_string().to_lowercase().contains("body");
                let mapped = map_err(loc, &c, e);
                if !body_failure || attempt + 1 == attempts {
                    if let (Error::Other { detail, .. }, Some(r)) = (&mapped, &want) {
                        if detail.contains("Range") || detail.contains("range") {
                            return Err(Error::Corrupt {
                                url: loc.to_string(),
                                detail: format!(
                                    "bytes {}..{} were asked for: {detail}",
                                    r.start, r.end
                                ),
                            });
                        }
                    }
                    return Err(mapped);
                }
                last = Some(mapped);
                std::thread::sleep(Duration::from_millis(100u64 << attempt.min(5)));
            }
        }
    }
    Err(last.unwrap_or(Error::Other {
        url: loc.to_string(),
        detail: "no attempt was made".into(),
    }))
}

/// The size of the object.
pub(super) fn size(loc: &Location) -> Result<u64> {
    let c = client(loc)?;
    let path = obj_path(loc);
    let store = c.store.clone();
    runtime()
        .block_on(async move { store.head(&path).await })
        .map(|m| m.size)
        .map_err(|e| map_err(loc, &c, e))
}

/// Whether any object lies below the prefix `loc`.
pub(super) fn has_children(loc: &Location) -> Result<bool> {
    let c = client(loc)?;
    let prefix = obj_path(loc);
    let store = c.store.clone();
    let r = runtime().block_on(async move {
        let mut s = store.list(Some(&prefix));
        s.next().await.transpose()
    });
    match r {
        Ok(o) => Ok(o.is_some()),
        Err(e) => Err(map_err(loc, &c, e)),
    }
}

/// Uploads `bytes` as one object (visible only when complete).
pub(super) fn put(loc: &Location, bytes: Vec<u8>) -> Result<()> {
    let c = client(loc)?;
    let path = obj_path(loc);
    let store = c.store.clone();
    runtime()
        .block_on(async move { store.put(&path, PutPayload::from(bytes)).await })
        .map(|_| ())
        .map_err(|e| map_err(loc, &c, e))
}

/// Objects below the prefix `loc`.
pub(super) fn list(loc: &Location, recursive: bool) -> Result<Vec<Entry>> {
    let c = client(loc)?;
    let prefix = obj_path(loc);
    let store = c.store.clone();
    let base = prefix.as_ref().to_string();
    let strip = |full: &str| -> String {
        if base.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(&base)
                .map(|s| s.trim_start_matches('/'))
                .unwrap_or(full)
                .to_string()
        }
    };
    let prefix_opt = (!base.is_empty()).then_some(prefix);
    let metas = runtime()
        .block_on(async move {
            if recursive {
                let mut out = vec![];
                let mut s = store.list(prefix_opt.as_ref());
                while let Some(m) = s.next().await {
                    out.push(m?);
                }
                Ok(out)
            } else {
                store
                    .list_with_delimiter(prefix_opt.as_ref())
                    .await
                    .map(|r| r.objects)
            }
        })
        .map_err(|e| map_err(loc, &c, e))?;
    Ok(metas
        .into_iter()
        .map(|m| Entry {
            name: strip(m.location.as_ref()),
            size: m.size,
        })
        .filter(|e| !e.name.is_empty())
        .collect())
}

/// Deletes the object; a missing one is not an error.
pub(super) fn delete(loc: &Location) -> Result<()> {
    let c = client(loc)?;
    let path = obj_path(loc);
    let store = c.store.clone();
    match runtime().block_on(async move { store.delete(&path).await }) {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(map_err(loc, &c, e)),
    }
}

/// The names of the "folders" directly below the prefix `loc` (the common
/// prefixes of a delimited listing).
pub(super) fn list_dirs(loc: &Location) -> Result<Vec<String>> {
    let c = client(loc)?;
    let prefix = obj_path(loc);
    let store = c.store.clone();
    let base = prefix.as_ref().to_string();
    let prefix_opt = (!base.is_empty()).then_some(prefix);
    let r = runtime()
        .block_on(async move { store.list_with_delimiter(prefix_opt.as_ref()).await })
        .map_err(|e| map_err(loc, &c, e))?;
    Ok(r.common_prefixes
        .into_iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .collect())
}
