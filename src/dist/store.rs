//! The job's key-value store: process 0 serves it over HTTP, every process
//! (process 0 too) talks to it through a [`StoreClient`]. It carries only
//! bootstrap and control keys (the PJRT plugins' rendezvous, device lists,
//! barriers, the agreed preemption step), plus a heartbeat per process so
//! that a process that dies is noticed by the others.
//!
//! Protocol (keys travel hex-encoded, values as raw bodies):
//! - `PUT /kv?k=KEY[&if_absent=1]`: store; the reply is the value now
//!   stored (the earlier one when `if_absent` found one).
//! - `GET /kv?k=KEY[&wait_ms=N]`: the value, waiting up to N ms for it; 404
//!   when absent.
//! - `POST /heartbeat?p=ID`: marks process ID alive; the reply lists the
//!   processes that joined and then went silent for longer than the
//!   heartbeat timeout (`{"stale": [..]}`).
//! - `POST /done?p=ID`: process ID finished cleanly (no longer watched);
//!   `GET /done` lists the finished processes.

use super::Error;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    kv: HashMap<Vec<u8>, Vec<u8>>,
    seen: HashMap<usize, Instant>,
    done: BTreeSet<usize>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    heartbeat_timeout: Duration,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The store's server (run by process 0). Stops when dropped.
pub struct Server {
    addr: SocketAddr,
    http: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves on `bind` (port 0 picks a free port), declaring a process
    /// dead after `heartbeat_timeout` without a heartbeat.
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be bound.
    pub fn start(bind: &str, heartbeat_timeout: Duration) -> Result<Server, Error> {
        let http = tiny_http::Server::http(bind).map_err(|e| Error::Bind {
            addr: bind.to_string(),
            reason: e.to_string(),
        })?;
        let addr = http.server_addr().to_ip().ok_or_else(|| Error::Bind {
            addr: bind.to_string(),
            reason: "not an IP address".into(),
        })?;
        let http = Arc::new(http);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            heartbeat_timeout,
        });
        let h = http.clone();
        let thread = std::thread::Builder::new()
            .name("kv-store".into())
            .spawn(move || {
                for req in h.incoming_requests() {
                    let s = shared.clone();
                    // Blocking gets wait in their own thread.
                    let _ = std::thread::Builder::new()
                        .name("kv-request".into())
                        .spawn(move || handle(&s, req));
                }
            })
            .map_err(|e| Error::Bind {
                addr: bind.to_string(),
                reason: format!("cannot start the server thread: {e}"),
            })?;
        Ok(Server {
            addr,
            http,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.http.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn query(url: &str) -> HashMap<String, String> {
    url.split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn path(url: &str) -> &str {
    url.split_once('?').map_or(url, |(p, _)| p)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn respond(req: tiny_http::Request, code: u16, body: Vec<u8>) {
    let _ = req.respond(tiny_http::Response::from_data(body).with_status_code(code));
}

fn handle(s: &Shared, mut req: tiny_http::Request) {
    let url = req.url().to_string();
    let q = query(&url);
    let method = req.method().clone();
    let pid = q.get("p").and_then(|p| p.parse::<usize>().ok());
    match (method, path(&url)) {
        (tiny_http::Method::Put, "/kv") => {
            let Some(key) = q.get("k").and_then(|k| unhex(k)) else {
                return respond(req, 400, b"bad key".to_vec());
            };
            let mut body = Vec::new();
            if std::io::Read::read_to_end(req.as_reader(), &mut body).is_err() {
                return respond(req, 400, b"unreadable body".to_vec());
            }
            let stored = {
                let mut st = lock(&s.state);
                let if_absent = q.get("if_absent").is_some_and(|v| v == "1");
                let v = if if_absent {
                    st.kv.entry(key).or_insert(body).clone()
                } else {
                    st.kv.insert(key, body.clone());
                    body
                };
                s.changed.notify_all();
                v
            };
            respond(req, 200, stored);
        }
        (tiny_http::Method::Get, "/kv") => {
            let Some(key) = q.get("k").and_then(|k| unhex(k)) else {
                return respond(req, 400, b"bad key".to_vec());
            };
            let wait =
                Duration::from_millis(q.get("wait_ms").and_then(|w| w.parse().ok()).unwrap_or(0));
            let deadline = Instant::now() + wait;
            let mut st = lock(&s.state);
            loop {
                if let Some(v) = st.kv.get(&key) {
                    let v = v.clone();
                    drop(st);
                    return respond(req, 200, v);
                }
                let now = Instant::now();
                if now >= deadline {
                    drop(st);
                    return respond(req, 404, Vec::new());
                }
                st = s
                    .changed
                    .wait_timeout(st, deadline - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        (tiny_http::Method::Post, "/heartbeat") => {
            let Some(p) = pid else {
                return respond(req, 400, b"bad process id".to_vec());
            };
            let stale: Vec<usize> = {
                let mut st = lock(&s.state);
                let now = Instant::now();
                st.seen.insert(p, now);
                let done = st.done.clone();
                let mut v: Vec<usize> = st
                    .seen
                    .iter()
                    .filter(|(id, t)| {
                        !done.contains(id) && now.duration_since(**t) > s.heartbeat_timeout
                    })
                    .map(|(id, _)| *id)
                    .collect();
                v.sort_unstable();
                v
            };
            respond(
                req,
                200,
                serde_json::json!({ "stale": stale })
                    .to_string()
                    .into_bytes(),
            );
        }
        (tiny_http::Method::Post, "/done") => {
            let Some(p) = pid else {
                return respond(req, 400, b"bad process id".to_vec());
            };
            lock(&s.state).done.insert(p);
            s.changed.notify_all();
            respond(req, 200, Vec::new());
        }
        (tiny_http::Method::Get, "/done") => {
            let done: Vec<usize> = lock(&s.state).done.iter().copied().collect();
            respond(
                req,
                200,
                serde_json::json!({ "done": done }).to_string().into_bytes(),
            );
        }
        _ => respond(req, 404, b"unknown request".to_vec()),
    }
}

/// A process's connection to the store.
#[derive(Clone)]
pub struct StoreClient {
    base: String,
    agent: ureq::Agent,
    process_id: usize,
}

impl std::fmt::Debug for StoreClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreClient")
            .field("base", &self.base)
            .field("process_id", &self.process_id)
            .finish()
    }
}

/// Longest single request; longer waits are split into several.
const MAX_WAIT: Duration = Duration::from_secs(30);

impl StoreClient {
    /// A client of the store at `addr` (`host:port`) for process `process_id`.
    pub fn new(addr: &str, process_id: usize) -> StoreClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(MAX_WAIT + Duration::from_secs(10)))
            .http_status_as_error(false)
            // One connection per request: a pooled connection the server
            // already closed would otherwise stall until the timeout.
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
            .into();
        StoreClient {
            base: format!("http://{addr}"),
            agent,
            process_id,
        }
    }

    /// The store's address as given.
    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> Error {
        Error::Unreachable {
            addr: self.address().to_string(),
            reason: e.to_string(),
        }
    }

    fn call(&self, method: &str, url: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>), Error> {
        let resp = match (method, body) {
            ("PUT", Some(b)) => self.agent.put(url).send(b),
            ("POST", _) => self.agent.post(url).send_empty(),
            _ => self.agent.get(url).call(),
        };
        let mut resp = resp.map_err(|e| self.unreachable(e))?;
        let code = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .map_err(|e| self.unreachable(e))?;
        Ok((code, bytes))
    }

    /// Stores `value` under `key`.
    ///
    /// # Errors
    /// [`Error::Unreachable`] when the store does not answer.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.put_query(key, value, "").map(|_| ())
    }

    /// Stores `value` under `key` unless a value is there; returns the value
    /// now stored (the first writer's).
    ///
    /// # Errors
    /// As [`StoreClient::put`].
    pub fn put_if_absent(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, Error> {
        self.put_query(key, value, "&if_absent=1")
    }

    fn put_query(&self, key: &[u8], value: &[u8], extra: &str) -> Result<Vec<u8>, Error> {
        let url = format!("{}/kv?k={}{extra}", self.base, hex(key));
        match self.call("PUT", &url, Some(value))? {
            (200, b) => Ok(b),
            (code, b) => Err(self.unreachable(format!(
                "PUT answered {code}: {}",
                String::from_utf8_lossy(&b)
            ))),
        }
    }

    /// The value of `key` if present now.
    ///
    /// # Errors
    /// As [`StoreClient::put`].
    pub fn try_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.get_waiting(key, Duration::ZERO)
    }

    fn get_waiting(&self, key: &[u8], wait: Duration) -> Result<Option<Vec<u8>>, Error> {
        let url = format!(
            "{}/kv?k={}&wait_ms={}",
            self.base,
            hex(key),
            wait.as_millis()
        );
        match self.call("GET", &url, None)? {
            (200, b) => Ok(Some(b)),
            (404, _) => Ok(None),
            (code, b) => Err(self.unreachable(format!(
                "GET answered {code}: {}",
                String::from_utf8_lossy(&b)
            ))),
        }
    }

    /// The value of `key`, waiting up to `timeout` for a process to put it.
    ///
    /// # Errors
    /// [`Error::Timeout`] naming the key; [`Error::Unreachable`].
    pub fn get(&self, key: &[u8], timeout: Duration) -> Result<Vec<u8>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(v) = self.get_waiting(key, left.min(MAX_WAIT))? {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    key: String::from_utf8_lossy(key).into_owned(),
                    seconds: timeout.as_secs_f64(),
                });
            }
        }
    }

    /// Marks this process alive; returns the processes the store considers
    /// dead (silent past its heartbeat timeout).
    ///
    /// # Errors
    /// [`Error::Unreachable`].
    pub fn heartbeat(&self) -> Result<Vec<usize>, Error> {
        let url = format!("{}/heartbeat?p={}", self.base, self.process_id);
        let (code, body) = self.call("POST", &url, None)?;
        if code != 200 {
            return Err(self.unreachable(format!("heartbeat answered {code}")));
        }
        self.ids(&body, "stale")
    }

    /// The process ids listed under `field` of a JSON reply.
    fn ids(&self, body: &[u8], field: &str) -> Result<Vec<usize>, Error> {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| self.unreachable(e))?;
        Ok(v[field]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64())
                    .map(|x| x as usize)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Says this process finished cleanly.
    ///
    /// # Errors
    /// [`Error::Unreachable`].
    pub fn done(&self) -> Result<(), Error> {
        let url = format!("{}/done?p={}", self.base, self.process_id);
        self.call("POST", &url, None).map(|_| ())
    }

    /// The processes that finished cleanly.
    ///
    /// # Errors
    /// [`Error::Unreachable`].
    pub fn finished(&self) -> Result<Vec<usize>, Error> {
        let (_, body) = self.call("GET", &format!("{}/done", self.base), None)?;
        self.ids(&body, "done")
    }
}

impl crate::pjrt::KeyValueStore for StoreClient {
    fn get(&self, key: &[u8], timeout: Duration) -> Result<Vec<u8>, crate::pjrt::KvError> {
        StoreClient::get(self, key, timeout).map_err(|e| match e {
            Error::Timeout { .. } => crate::pjrt::KvError::Timeout(e.to_string()),
            other => crate::pjrt::KvError::Unavailable(other.to_string()),
        })
    }

    fn try_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, crate::pjrt::KvError> {
        StoreClient::try_get(self, key)
            .map_err(|e| crate::pjrt::KvError::Unavailable(e.to_string()))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), crate::pjrt::KvError> {
        StoreClient::put(self, key, value)
            .map_err(|e| crate::pjrt::KvError::Unavailable(e.to_string()))
    }
}
