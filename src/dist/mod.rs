//! Several processes as one job, the way XLA runs one SPMD program across
//! hosts: process 0 serves a small key-value [`store`] that every process
//! joins; the PJRT plugins bootstrap their own multi-process runtime
//! through it (the client's KV callbacks, with `node_id`/`num_nodes` on
//! GPU), and simclr uses it for the global device topology, barriers at
//! checkpoints, summing evaluation counts, agreeing on the step at which a
//! preempted job stops, and noticing a process that died.
//!
//! Collectives themselves are the plugin's (NCCL, ICI); nothing here moves
//! tensors between processes.
//!
//! Not here: the step loop ([`crate::train::Trainer`]), which asks its
//! [`Job`] at each step.

pub mod store;

use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{Server, StoreClient};
use thiserror::Error;

/// Exit status of a process that stops because another process of its job
/// died or the coordinator went away.
pub const EXIT_PEER_LOST: i32 = 76;

/// Errors of a job of several processes.
#[derive(Debug, Error)]
pub enum Error {
    /// The coordinator's address cannot be served.
    #[error("cannot serve the job's key-value store on {addr}: {reason}; pick a free port in --coordinator_address")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The coordinator does not answer.
    #[error("the coordinator at {addr} does not answer ({reason}); check --coordinator_address and that process 0 is running")]
    Unreachable {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A key did not appear in time.
    #[error("timed out after {seconds:.0}s waiting for '{key}' in the job's key-value store")]
    Timeout {
        /// The key.
        key: String,
        /// The wait.
        seconds: f64,
    },
    /// Processes that never joined.
    #[error("process(es) {} of {num_processes} never reached '{what}' within {seconds:.0}s (coordinator {addr}); start every process with the same --coordinator_address and --num_processes={num_processes}, or raise --initialization_timeout", list(.missing))]
    Missing {
        /// What they did not reach (`join`, a checkpoint barrier, ...).
        what: String,
        /// Their ids.
        missing: Vec<usize>,
        /// The job size.
        num_processes: usize,
        /// The coordinator.
        addr: String,
        /// The wait.
        seconds: f64,
    },
    /// Flags that do not describe a job.
    #[error("{0}")]
    Config(String),
    /// The processes do not agree (different platforms, device counts).
    #[error("the processes of the job disagree: {0}")]
    Disagree(String),
}

fn list(ids: &[usize]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How this process is placed in a job: from `--coordinator_address`,
/// `--num_processes`, `--process_id`, else the environment.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSpec {
    /// `host:port` of process 0's key-value store.
    pub coordinator_address: String,
    /// Processes in the job.
    pub num_processes: usize,
    /// This process, `0..num_processes`.
    pub process_id: usize,
    /// How long to wait for every process to join (`--initialization_timeout`).
    pub initialization_timeout: Duration,
    /// Silence after which a process counts as dead (`--heartbeat_timeout_seconds`).
    pub heartbeat_timeout: Duration,
}

/// The JAX port a TPU pod slice's coordinator listens on by default.
pub const TPU_COORDINATOR_PORT: u16 = 8476;

impl JobSpec {
    /// Resolves the job from the flags, then the environment:
    /// `SIMCLR_COORDINATOR_ADDRESS`/`JAX_COORDINATOR_ADDRESS`,
    /// `SIMCLR_NUM_PROCESSES`/`JAX_NUM_PROCESSES`,
    /// `SIMCLR_PROCESS_ID`/`JAX_PROCESS_ID`; with `use_tpu`, a TPU VM's
    /// `TPU_WORKER_HOSTNAMES` (coordinator: the first host, port 8476) and
    /// `TPU_WORKER_ID` (or `CLOUD_TPU_TASK_ID`). No metadata server is
    /// queried. `None`: a single-process run.
    ///
    /// # Errors
    /// [`Error::Config`] for an incomplete or inconsistent description.
    pub fn resolve(
        coordinator_address: Option<&str>,
        num_processes: Option<usize>,
        process_id: Option<usize>,
        use_tpu: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<JobSpec>, Error> {
        let from_env = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
        let parse = |name: &str, v: String| -> Result<usize, Error> {
            v.trim()
                .parse()
                .map_err(|_| Error::Config(format!("{name}={v} is not a non-negative integer")))
        };
        let mut addr = coordinator_address
            .map(str::to_string)
            .or_else(|| from_env(&["SIMCLR_COORDINATOR_ADDRESS", "JAX_COORDINATOR_ADDRESS"]));
        let mut n = match num_processes {
            Some(n) => Some(n),
            None => from_env(&["SIMCLR_NUM_PROCESSES", "JAX_NUM_PROCESSES"])
                .map(|v| parse("SIMCLR_NUM_PROCESSES", v))
                .transpose()?,
        };
        let mut id = match process_id {
            Some(i) => Some(i),
            None => from_env(&["SIMCLR_PROCESS_ID", "JAX_PROCESS_ID"])
                .map(|v| parse("SIMCLR_PROCESS_ID", v))
                .transpose()?,
        };
        if use_tpu {
            if let Some(hosts) = env("TPU_WORKER_HOSTNAMES").filter(|h| !h.is_empty()) {
                let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
                if hosts.len() > 1 {
                    addr = addr.or_else(|| Some(format!("{}:{TPU_COORDINATOR_PORT}", hosts[0])));
                    n = n.or(Some(hosts.len()));
                    if id.is_none() {
                        id = from_env(&["TPU_WORKER_ID", "CLOUD_TPU_TASK_ID"])
                            .map(|v| parse("TPU_WORKER_ID", v))
                            .transpose()?;
                    }
                }
            }
        }
        let n = match n {
            None | Some(1) if addr.is_none() => return Ok(None),
            None => 1,
            Some(0) => return Err(Error::Config("--num_processes must be at least 1".into())),
            Some(n) => n,
        };
        let addr = addr.ok_or_else(|| {
            Error::Config(format!(
                "--num_processes={n} needs --coordinator_address=host:port (process 0 serves it)"
            ))
        })?;
        if !addr.contains(':') {
            return Err(Error::Config(format!(
                "--coordinator_address={addr} must be host:port"
            )));
        }
        let id = match id {
            Some(i) => i,
            None if n == 1 => 0,
            None => {
                return Err(Error::Config(format!(
                    "--num_processes={n} needs --process_id (0 to {})",
                    n - 1
                )))
            }
        };
        if id >= n {
            return Err(Error::Config(format!(
                "--process_id={id} is out of range for --num_processes={n} (0 to {})",
                n - 1
            )));
        }
        Ok(Some(JobSpec {
            coordinator_address: addr,
            num_processes: n,
            process_id: id,
            initialization_timeout: Duration::from_secs(300),
            heartbeat_timeout: Duration::from_secs(100),
        }))
    }
}

/// One process's devices, as it reports them to the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessDevices {
    /// The process.
    pub process_id: usize,
    /// Its plugin's platform (`cpu`, `cuda`, `tpu`).
    pub platform: String,
    /// Its addressable devices, in local order: (global id, kind).
    pub devices: Vec<(i32, String)>,
}

/// The job's devices: every process's, ordered by (process, local device).
/// Replica `r` is the r-th device in that order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// By process id.
    pub processes: Vec<ProcessDevices>,
}

impl Topology {
    /// Every device of every process.
    pub fn num_devices(&self) -> usize {
        self.processes.iter().map(|p| p.devices.len()).sum()
    }

    /// The global replicas process `p` feeds.
    pub fn replicas_of(&self, p: usize) -> Range<usize> {
        let start: usize = self.processes[..p.min(self.processes.len())]
            .iter()
            .map(|q| q.devices.len())
            .sum();
        start..start + self.processes.get(p).map_or(0, |q| q.devices.len())
    }

    fn check(&self) -> Result<(), Error> {
        let Some(first) = self.processes.first() else {
            return Err(Error::Disagree("no process reported devices".into()));
        };
        for p in &self.processes {
            if p.platform != first.platform {
                return Err(Error::Disagree(format!(
                    "process {} runs on {} but process {} on {}",
                    first.process_id, first.platform, p.process_id, p.platform
                )));
            }
            if p.devices.is_empty() {
                return Err(Error::Disagree(format!(
                    "process {} has no devices",
                    p.process_id
                )));
            }
        }
        Ok(())
    }
}

struct Connection {
    spec: JobSpec,
    client: StoreClient,
    _server: Option<Server>,
    stop_watch: Arc<AtomicBool>,
    preempt_proposed: AtomicBool,
}

/// This process's place in a job of one or more processes.
pub struct Job {
    /// This process (0 for a single process).
    pub process_id: usize,
    /// Processes in the job.
    pub num_processes: usize,
    conn: Option<Arc<Connection>>,
    topology: Option<Topology>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("process_id", &self.process_id)
            .field("num_processes", &self.num_processes)
            .field("topology", &self.topology)
            .finish()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(c) = &self.conn {
            c.stop_watch.store(true, Ordering::SeqCst);
        }
    }
}

impl Job {
    /// A job of one process: nothing to agree on.
    pub fn single() -> Job {
        Job {
            process_id: 0,
            num_processes: 1,
            conn: None,
            topology: None,
        }
    }

    /// Joins the job `spec` describes: process 0 starts the store on the
    /// coordinator's port; every process connects (retrying until the
    /// initialization timeout), announces itself and waits until all
    /// `num_processes` have. Starts a heartbeat that ends this process with
    /// [`EXIT_PEER_LOST`] when another process goes silent past the
    /// heartbeat timeout or the coordinator stops answering.
    ///
    /// # Errors
    /// [`Error::Bind`], [`Error::Unreachable`], or [`Error::Missing`]
    /// naming the processes that never joined.
    pub fn join(spec: &JobSpec) -> Result<Job, Error> {
        let server = if spec.process_id == 0 {
            let port = spec
                .coordinator_address
                .rsplit_once(':')
                .map(|(_, p)| p)
                .unwrap_or("0");
            let host = spec
                .coordinator_address
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or("");
            // Bind the given IP literal, else every interface.
            let bind = if host.parse::<std::net::IpAddr>().is_ok() {
                spec.coordinator_address.clone()
            } else {
                format!("0.0.0.0:{port}")
            };
            Some(Server::start(&bind, spec.heartbeat_timeout)?)
        } else {
            None
        };
        let client = StoreClient::new(&spec.coordinator_address, spec.process_id);
        let deadline = Instant::now() + spec.initialization_timeout;
        // The coordinator may start after this process: retry.
        loop {
            match client.heartbeat() {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        let conn = Arc::new(Connection {
            spec: spec.clone(),
            client,
            _server: server,
            stop_watch: Arc::new(AtomicBool::new(false)),
            preempt_proposed: AtomicBool::new(false),
        });
        let job = Job {
            process_id: spec.process_id,
            num_processes: spec.num_processes,
            conn: Some(conn.clone()),
            topology: None,
        };
        job.barrier("join")?;
        start_watchdog(&conn);
        Ok(job)
    }

    /// Joins when `spec` is given, else [`Job::single`].
    ///
    /// # Errors
    /// As [`Job::join`].
    pub fn from_spec(spec: Option<&JobSpec>) -> Result<Job, Error> {
        spec.map_or_else(|| Ok(Job::single()), Job::join)
    }

    /// The store as the PJRT plugins' key-value callbacks see it; `None` for
    /// a single process.
    pub fn kv_store(&self) -> Option<Arc<dyn crate::pjrt::KeyValueStore>> {
        self.conn
            .as_ref()
            .map(|c| Arc::new(c.client.clone()) as Arc<dyn crate::pjrt::KeyValueStore>)
    }

    /// `", process i of N"` for a job of several processes, else empty.
    pub fn describe(&self) -> String {
        if self.num_processes > 1 {
            format!(", process {} of {}", self.process_id, self.num_processes)
        } else {
            String::new()
        }
    }

    fn timeout(&self) -> Duration {
        self.conn
            .as_ref()
            .map_or(Duration::ZERO, |c| c.spec.initialization_timeout)
    }

    /// Waits until every process has reached `name`.
    ///
    /// When some process does not arrive in time, every process that did
    /// returns the same [`Error::Missing`]: the coordinator publishes the
    /// list under `abort/<name>` and keeps serving until the others have
    /// read it (or a short grace passed), so nobody sees the store vanish
    /// instead of the verdict.
    ///
    /// # Errors
    /// [`Error::Missing`] naming the processes that did not arrive in time.
    pub fn barrier(&self, name: &str) -> Result<(), Error> {
        let Some(c) = &self.conn else {
            return Ok(());
        };
        let key = |p: usize| format!("barrier/{name}/{p}");
        let abort = format!("abort/{name}");
        let read = |p: usize| format!("abort/{name}/read/{p}");
        c.client.put(key(self.process_id).as_bytes(), b"1")?;
        let deadline = Instant::now() + self.timeout();
        let missing = |ids: Vec<usize>| Error::Missing {
            what: name.to_string(),
            missing: ids,
            num_processes: self.num_processes,
            addr: c.spec.coordinator_address.clone(),
            seconds: self.timeout().as_secs_f64(),
        };
        let poll = Duration::from_millis(250);
        for p in 0..self.num_processes {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match c.client.get(key(p).as_bytes(), left.min(poll)) {
                    Ok(_) => break,
                    Err(Error::Timeout { .. }) => {}
                    Err(e) => return Err(e),
                }
                // The coordinator's verdict, when it gave up first.
                if let Some(v) = c.client.try_get(abort.as_bytes())? {
                    let ids: Vec<usize> = serde_json::from_slice(&v).unwrap_or_default();
                    let _ = c.client.put(read(self.process_id).as_bytes(), b"1");
                    return Err(missing(ids));
                }
                if !left.is_zero() {
                    continue;
                }
                let mut ids = Vec::new();
                for q in 0..self.num_processes {
                    if c.client.try_get(key(q).as_bytes())?.is_none() {
                        ids.push(q);
                    }
                }
                if self.process_id == 0 {
                    let body = serde_json::to_vec(&ids).unwrap_or_default();
                    c.client.put_if_absent(abort.as_bytes(), &body)?;
                    // Keep serving until the processes that arrived have
                    // read the verdict.
                    let grace = Instant::now() + Duration::from_secs(5);
                    for q in (1..self.num_processes).filter(|q| !ids.contains(q)) {
                        let left = grace.saturating_duration_since(Instant::now());
                        let _ = c.client.get(read(q).as_bytes(), left);
                    }
                } else {
                    let _ = c.client.put(read(self.process_id).as_bytes(), b"1");
                }
                return Err(missing(ids));
            }
        }
        Ok(())
    }

    /// Exchanges device lists: returns (and keeps) the job's topology, with
    /// `local` as this process's entry.
    ///
    /// # Errors
    /// [`Error::Missing`] for processes that never reported;
    /// [`Error::Disagree`] for mixed platforms or a process without devices.
    pub fn agree_topology(&mut self, local: ProcessDevices) -> Result<&Topology, Error> {
        let topo = match &self.conn {
            None => Topology {
                processes: vec![local],
            },
            Some(c) => {
                let body = serde_json::to_vec(&local)
                    .map_err(|e| Error::Config(format!("cannot encode the device list: {e}")))?;
                c.client
                    .put(format!("topology/{}", self.process_id).as_bytes(), &body)?;
                self.barrier("topology")?;
                let mut processes = Vec::with_capacity(self.num_processes);
                for p in 0..self.num_processes {
                    let v = c
                        .client
                        .get(format!("topology/{p}").as_bytes(), self.timeout())?;
                    let d: ProcessDevices = serde_json::from_slice(&v).map_err(|e| {
                        Error::Disagree(format!("process {p} sent an unreadable device list: {e}"))
                    })?;
                    processes.push(d);
                }
                Topology { processes }
            }
        };
        topo.check()?;
        Ok(self.topology.insert(topo))
    }

    /// The agreed topology (after [`Job::agree_topology`]).
    pub fn topology(&self) -> Option<&Topology> {
        self.topology.as_ref()
    }

    /// The global replicas this process feeds when the job uses `replicas`
    /// in all: `None` for a single process (it feeds all of them).
    ///
    /// # Errors
    /// [`Error::Config`] when a multi-process job has no topology yet or
    /// `replicas` is not every device of the job.
    pub fn local_replicas(&self, replicas: usize) -> Result<Option<Range<usize>>, Error> {
        if self.num_processes == 1 {
            return Ok(None);
        }
        let topo = self.topology.as_ref().ok_or_else(|| {
            Error::Config("internal: the job's topology was not agreed before training".into())
        })?;
        if topo.num_devices() != replicas {
            return Err(Error::Config(format!(
                "a job of {} processes runs on all its {} devices; drop --num_replicas (it asks for {replicas})",
                self.num_processes,
                topo.num_devices()
            )));
        }
        Ok(Some(topo.replicas_of(self.process_id)))
    }

    /// Whether to stop after `step` because of a signal: for one process,
    /// as soon as one arrives; for several, at the step the first signalled
    /// process proposed (its step + 1, so that every process, at most one
    /// step behind through the collectives, reaches it), agreed through the
    /// store. Returns the signal.
    ///
    /// # Errors
    /// [`Error::Unreachable`] when the store does not answer.
    pub fn preemption(&self, step: i64) -> Result<Option<i32>, Error> {
        self.preemption_with(step, crate::train::preempt::requested())
    }

    /// [`Job::preemption`] with the local signal given.
    ///
    /// # Errors
    /// As [`Job::preemption`].
    pub fn preemption_with(&self, step: i64, local: Option<i32>) -> Result<Option<i32>, Error> {
        let Some(c) = &self.conn else {
            return Ok(local);
        };
        if let Some(sig) = local {
            if !c.preempt_proposed.swap(true, Ordering::SeqCst) {
                let proposal =
                    serde_json::json!({"step": step + 1, "signal": sig, "by": self.process_id});
                c.client
                    .put_if_absent(b"preempt", proposal.to_string().as_bytes())?;
            }
        }
        let Some(v) = c.client.try_get(b"preempt")? else {
            return Ok(None);
        };
        let v: serde_json::Value = serde_json::from_slice(&v)
            .map_err(|e| Error::Disagree(format!("unreadable preemption record: {e}")))?;
        let at = v["step"].as_i64().unwrap_or(step);
        let sig = v["signal"].as_i64().unwrap_or(15) as i32;
        Ok((step >= at).then_some(sig))
    }

    /// Sums `values` over the processes (each contributes once under
    /// `name`).
    ///
    /// # Errors
    /// [`Error::Missing`] / [`Error::Unreachable`].
    pub fn sum<const K: usize>(&self, name: &str, values: [f64; K]) -> Result<[f64; K], Error> {
        let Some(c) = &self.conn else {
            return Ok(values);
        };
        let body = serde_json::to_vec(&values.to_vec())
            .map_err(|e| Error::Config(format!("cannot encode {name}: {e}")))?;
        c.client
            .put(format!("sum/{name}/{}", self.process_id).as_bytes(), &body)?;
        self.barrier(&format!("sum/{name}"))?;
        let mut out = [0.0; K];
        for p in 0..self.num_processes {
            let v = c
                .client
                .get(format!("sum/{name}/{p}").as_bytes(), self.timeout())?;
            let xs: Vec<f64> = serde_json::from_slice(&v)
                .map_err(|e| Error::Disagree(format!("process {p} sent unreadable {name}: {e}")))?;
            for (o, x) in out.iter_mut().zip(xs) {
                *o += x;
            }
        }
        Ok(out)
    }

    /// This process finished its work: stop watching the others; process 0
    /// keeps serving the store until every process has finished (or the
    /// initialization timeout passes), so none loses its coordinator.
    ///
    /// # Errors
    /// [`Error::Unreachable`].
    pub fn finished(&self) -> Result<(), Error> {
        let Some(c) = &self.conn else {
            return Ok(());
        };
        c.client.done()?;
        c.stop_watch.store(true, Ordering::SeqCst);
        if self.process_id == 0 {
            let deadline = Instant::now() + self.timeout();
            while c.client.finished()?.len() < self.num_processes && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

/// Heartbeats every second; ends the process when another one went silent
/// or the coordinator stopped answering for longer than the heartbeat
/// timeout (a process stuck in a collective with a dead peer would
/// otherwise wait forever).
fn start_watchdog(conn: &Arc<Connection>) {
    let c = conn.clone();
    let stop = conn.stop_watch.clone();
    let _ = std::thread::Builder::new()
        .name("job-heartbeat".into())
        .spawn(move || {
            let period = (c.spec.heartbeat_timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
            let mut last_ok = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                match c.client.heartbeat() {
                    Ok(stale) if !stale.is_empty() => {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        eprintln!(
                            "error: process(es) {} of this job stopped answering (no heartbeat for {:.0}s); stopping process {} too",
                            list(&stale),
                            c.spec.heartbeat_timeout.as_secs_f64(),
                            c.spec.process_id
                        );
                        if c.spec.process_id == 0 {
                            // Keep serving a moment so that every other
                            // process learns which one died.
                            std::thread::sleep(period * 3 + Duration::from_secs(1));
                        }
                        std::process::exit(EXIT_PEER_LOST);
                    }
                    Ok(_) => last_ok = Instant::now(),
                    Err(e) => {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        if last_ok.elapsed() > c.spec.heartbeat_timeout {
                            eprintln!("error: {e}; stopping process {}", c.spec.process_id);
                            std::process::exit(EXIT_PEER_LOST);
                        }
                    }
                }
                std::thread::sleep(period);
            }
        });
}
