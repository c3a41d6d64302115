//! A job of several processes on this machine: the key-value store under
//! concurrent clients, joining with timeouts, topology and data sharding,
//! the agreed preemption step, and peers that die.
//!
//! Processes are real where it matters: the failure tests start copies of
//! this test binary (`participant`) that join through the store, and kill
//! one of them. What cannot run here: collectives across processes (the CPU
//! plugin keeps each process on its own; see `multi_process_training_on_the_cpu_plugin_is_refused_clearly`).

use simclr::data::pipeline::{Pipeline, PipelineConfig};
use simclr::data::{Dataset, InMemory};
use simclr::dist::store::{Server, StoreClient};
use simclr::dist::{Error, Job, JobSpec, ProcessDevices, EXIT_PEER_LOST};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spec(addr: &str, n: usize, id: usize, init_s: f64, heartbeat_s: f64) -> JobSpec {
    JobSpec {
        coordinator_address: addr.to_string(),
        num_processes: n,
        process_id: id,
        initialization_timeout: Duration::from_secs_f64(init_s),
        heartbeat_timeout: Duration::from_secs_f64(heartbeat_s),
    }
}

#[test]
fn concurrent_clients_see_every_put_and_blocking_gets_wake_up() {
    let server = Server::start("127.0.0.1:0", Duration::from_secs(60)).expect("server");
    let addr = server.addr().to_string();
    let clients = 16;
    let keys = 20;
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let s = StoreClient::new(&addr, c);
                for k in 0..keys {
                    s.put(
                        format!("k/{c}/{k}").as_bytes(),
                        format!("v{c}.{k}").as_bytes(),
                    )
                    .expect("put");
                }
                // Every other client's last key, waiting for the slow ones.
                for o in 0..clients {
                    let v = s
                        .get(
                            format!("k/{o}/{}", keys - 1).as_bytes(),
                            Duration::from_secs(20),
                        )
                        .expect("get");
                    assert_eq!(v, format!("v{o}.{}", keys - 1).into_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    // A blocking get returns as soon as another client puts the key.
    let s = StoreClient::new(&addr, 0);
    let t = Instant::now();
    let a2 = addr.clone();
    let putter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        StoreClient::new(&a2, 1)
            .put(b"late", b"\x00\xffbinary")
            .expect("put");
    });
    assert_eq!(
        s.get(b"late", Duration::from_secs(10)).expect("get"),
        b"\x00\xffbinary"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the get waited {:?}",
        t.elapsed()
    );
    putter.join().expect("putter");
    // ... and times out with an error naming the key when nobody does.
    match s.get(b"never", Duration::from_millis(300)) {
        Err(Error::Timeout { key, .. }) => assert_eq!(key, "never"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(s.try_get(b"never").expect("try_get"), None);
}

#[test]
fn put_if_absent_keeps_the_first_writer_under_contention() {
    let server = Server::start("127.0.0.1:0", Duration::from_secs(60)).expect("server");
    let addr = server.addr().to_string();
    let start = Arc::new(Barrier::new(8));
    let winners: Vec<Vec<u8>> = (0..8)
        .map(|c| {
            let (addr, start) = (addr.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                StoreClient::new(&addr, c)
                    .put_if_absent(b"preempt", format!("{c}").as_bytes())
                    .expect("put_if_absent")
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let first = &winners[0];
    assert!(winners.iter().all(|w| w == first), "{winners:?}");
    let stored = StoreClient::new(&addr, 0).try_get(b"preempt").expect("get");
    assert_eq!(stored.as_ref(), Some(first));
}

#[test]
fn a_coordinator_that_went_away_is_an_error_naming_its_address() {
    let server = Server::start("127.0.0.1:0", Duration::from_secs(60)).expect("server");
    let addr = server.addr().to_string();
    let c = StoreClient::new(&addr, 0);
    c.put(b"k", b"v").expect("put");
    drop(server);
    match c.get(b"k", Duration::from_secs(2)) {
        Err(e @ Error::Unreachable { .. }) => {
            let m = e.to_string();
            assert!(m.contains(&addr) && m.contains("process 0"), "{m}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

/// Joins `n` processes as threads of this test (each with its own store
/// client; process 0 serves) and runs `f` in each.
fn in_threads<T: Send + 'static>(n: usize, f: impl Fn(Job) -> T + Send + Sync + 'static) -> Vec<T> {
    let addr = format!("127.0.0.1:{}", free_port());
    let f = Arc::new(f);
    let hs: Vec<_> = (0..n)
        .map(|id| {
            let (addr, f) = (addr.clone(), f.clone());
            std::thread::spawn(move || {
                let job = Job::join(&spec(&addr, n, id, 30.0, 60.0)).expect("join");
                f(job)
            })
        })
        .collect();
    hs.into_iter()
        .map(|h| h.join().expect("process thread"))
        .collect()
}

#[test]
fn processes_agree_on_the_topology_ordered_by_process_then_device() {
    let tops = in_threads(3, |mut job| {
        let id = job.process_id;
        let local = ProcessDevices {
            process_id: id,
            platform: "cpu".into(),
            devices: (0..id + 1).map(|d| (d as i32, "cpu".to_string())).collect(),
        };
        let topo = job.agree_topology(local).expect("topology").clone();
        let mine = job.local_replicas(6).expect("local replicas");
        job.finished().expect("finished");
        (topo, mine)
    });
    let (first, _) = &tops[0];
    assert!(
        tops.iter().all(|(t, _)| t == first),
        "the processes disagree"
    );
    assert_eq!(first.num_devices(), 6);
    let ranges: Vec<_> = tops.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(ranges, vec![Some(0..1), Some(1..3), Some(3..6)]);
}

#[test]
fn processes_with_different_platforms_are_refused() {
    let errs = in_threads(2, |mut job| {
        let platform = if job.process_id == 0 { "cpu" } else { "cuda" };
        let local = ProcessDevices {
            process_id: job.process_id,
            platform: platform.into(),
            devices: vec![(0, platform.into())],
        };
        let e = job
            .agree_topology(local)
            .map(|_| ())
            .map_err(|e| e.to_string());
        let _ = job.finished();
        e
    });
    for e in errs {
        let m = e.expect_err("mixed platforms must fail");
        assert!(m.contains("cpu") && m.contains("cuda"), "{m}");
    }
}

#[test]
fn a_process_that_never_joins_is_named_after_the_timeout() {
    let addr = format!("127.0.0.1:{}", free_port());
    let hs: Vec<_> = [0usize, 1]
        .into_iter()
        .map(|id| {
            let addr = addr.clone();
            std::thread::spawn(move || Job::join(&spec(&addr, 3, id, 2.0, 60.0)))
        })
        .collect();
    for h in hs {
        match h.join().expect("thread") {
            Err(e @ Error::Missing { .. }) => {
                let m = e.to_string();
                assert!(m.contains("process(es) 2 of 3 never reached 'join'"), "{m}");
            }
            other => panic!("expected Missing, got {other:?}"),
        }
    }
}

#[test]
fn a_signal_on_one_process_stops_every_process_after_the_same_step() {
    let n = 4;
    // Steps in lockstep, as the collectives of a real step force them.
    let lockstep = Arc::new(Barrier::new(n));
    let stops = in_threads(n, move |job| {
        let mut step = 0i64;
        loop {
            lockstep.wait();
            step += 1;
            // Process 2 is signalled after its step 5.
            let local = (job.process_id == 2 && step >= 5).then_some(15);
            if let Some(sig) = job.preemption_with(step, local).expect("preemption") {
                let _ = job.finished();
                return (step, sig);
            }
            assert!(step < 50, "process {} never stopped", job.process_id);
        }
    });
    assert!(stops.iter().all(|s| *s == (6, 15)), "stops: {stops:?}");
}

#[test]
fn evaluation_counts_sum_over_processes() {
    let sums = in_threads(3, |job| {
        let id = job.process_id as f64;
        let s = job.sum("eval/7", [id, 1.0]).expect("sum");
        let _ = job.finished();
        s
    });
    assert!(sums.iter().all(|s| *s == [3.0, 3.0]), "{sums:?}");
}

#[test]
fn every_process_count_feeds_the_same_global_batches() {
    let n = 96;
    let examples = (0..n)
        .map(|i| simclr::data::Example {
            image: simclr::data::ImageU8 {
                height: 8,
                width: 8,
                data: (0..8 * 8 * 3).map(|j| ((i * 7 + j) % 251) as u8).collect(),
            },
            label: (i % 10),
        })
        .collect();
    let ds: Arc<dyn Dataset> = Arc::new(InMemory::new(examples, 10, "toy").expect("dataset"));
    let replicas = 12;
    let base = PipelineConfig {
        num_workers: 2,
        ..PipelineConfig::pretrain(24, replicas, 8, 0.5, 3)
    };
    let steps = 5;
    let batches = |cfg: PipelineConfig| {
        let mut p = Pipeline::starting_at(ds.clone(), cfg, 2).expect("pipeline");
        (0..steps)
            .map(|_| p.next_batch().expect("batch").expect("a batch"))
            .collect::<Vec<_>>()
    };
    let whole = batches(base.clone());
    for procs in 1..=4usize {
        // Replicas split into contiguous, possibly unequal ranges.
        let bounds: Vec<usize> = (0..=procs).map(|p| p * replicas / procs).collect();
        let parts: Vec<_> = (0..procs)
            .map(|p| {
                batches(PipelineConfig {
                    local_replicas: Some(bounds[p]..bounds[p + 1]),
                    ..base.clone()
                })
            })
            .collect();
        for s in 0..steps {
            let mut seen = BTreeSet::new();
            let mut joined = Vec::new();
            for part in &parts {
                for rb in &part[s].replicas {
                    for &i in &rb.indices {
                        assert!(
                            seen.insert(i),
                            "example {i} appears twice at step {s} with {procs} processes"
                        );
                    }
                    joined.push(rb.clone());
                }
            }
            assert_eq!(
                joined, whole[s].replicas,
                "step {s}: {procs} processes do not feed the 1-process global batch"
            );
        }
    }
}

/// Not a test on its own: the body of a process started by the failure
/// tests (`SIMCLR_DIST_ROLE` set). It joins, then heartbeats until its
/// parent kills it or the job fails.
#[test]
fn participant() {
    let Ok(role) = std::env::var("SIMCLR_DIST_ROLE") else {
        return;
    };
    let mut it = role.split(',');
    let addr = it.next().expect("addr").to_string();
    let n: usize = it.next().and_then(|v| v.parse().ok()).expect("n");
    let id: usize = it.next().and_then(|v| v.parse().ok()).expect("id");
    let job = Job::join(&spec(&addr, n, id, 30.0, 2.0)).expect("join");
    eprintln!("joined {id}");
    std::thread::sleep(Duration::from_secs(60));
    drop(job);
    panic!("participant {id} was not stopped within 60 s");
}

#[test]
fn a_process_that_dies_stops_the_others_with_its_id() {
    let exe = std::env::current_exe().expect("test binary");
    let addr = format!("127.0.0.1:{}", free_port());
    let n = 3;
    // The test's name in this binary: its module path without the crate.
    let participant = match module_path!().split_once("::") {
        Some((_, m)) => format!("{m}::participant"),
        None => "participant".to_string(),
    };
    let mut children: Vec<_> = (0..n)
        .map(|id| {
            Command::new(&exe)
                .args(["--exact", &participant, "--nocapture"])
                .env("SIMCLR_DIST_ROLE", format!("{addr},{n},{id}"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a participant")
        })
        .collect();
    // Let them join, then kill process 2 (not the coordinator).
    std::thread::sleep(Duration::from_secs(3));
    children[2].kill().expect("kill");
    let _ = children[2].wait();
    let t = Instant::now();
    for (id, child) in children.into_iter().enumerate().take(2) {
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(EXIT_PEER_LOST),
            "process {id} should stop with {EXIT_PEER_LOST}; stderr:\n{err}"
        );
        assert!(
            err.contains("process(es) 2 of this job stopped answering"),
            "process {id} must name the dead process:\n{err}"
        );
    }
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "the survivors took {:?} to stop",
        t.elapsed()
    );
}

#[test]
fn the_job_comes_from_flags_then_the_environment_then_a_tpu_vm() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let none = env(&[]);
    assert_eq!(
        JobSpec::resolve(None, None, None, false, &none).unwrap(),
        None
    );
    let s = JobSpec::resolve(Some("h:1234"), Some(4), Some(3), false, &none)
        .unwrap()
        .expect("a job");
    assert_eq!(
        (
            s.coordinator_address.as_str(),
            s.num_processes,
            s.process_id
        ),
        ("h:1234", 4, 3)
    );
    // JAX's variables when the flags are absent; flags win over them.
    let jax = env(&[
        ("JAX_COORDINATOR_ADDRESS", "10.0.0.2:8476"),
        ("JAX_NUM_PROCESSES", "2"),
        ("JAX_PROCESS_ID", "1"),
    ]);
    let s = JobSpec::resolve(None, None, None, false, &jax)
        .unwrap()
        .expect("a job");
    assert_eq!((s.num_processes, s.process_id), (2, 1));
    let s = JobSpec::resolve(None, None, Some(0), false, &jax)
        .unwrap()
        .expect("a job");
    assert_eq!(s.process_id, 0);
    // A TPU VM's worker list, only with --use_tpu.
    let tpu = env(&[
        ("TPU_WORKER_HOSTNAMES", "t0,t1,t2,t3"),
        ("TPU_WORKER_ID", "2"),
    ]);
    assert_eq!(
        JobSpec::resolve(None, None, None, false, &tpu).unwrap(),
        None
    );
    let s = JobSpec::resolve(None, None, None, true, &tpu)
        .unwrap()
        .expect("a job");
    assert_eq!(
        (
            s.coordinator_address.as_str(),
            s.num_processes,
            s.process_id
        ),
        ("t0:8476", 4, 2)
    );
    // What cannot form a job says what to add.
    let e = JobSpec::resolve(None, Some(2), Some(0), false, &none)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--coordinator_address"), "{e}");
    let e = JobSpec::resolve(Some("h:1"), Some(2), None, false, &none)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--process_id"), "{e}");
    let e = JobSpec::resolve(Some("h:1"), Some(2), Some(2), false, &none)
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of range"), "{e}");
    let e = JobSpec::resolve(Some("nohostport"), Some(2), Some(0), false, &none)
        .unwrap_err()
        .to_string();
    assert!(e.contains("host:port"), "{e}");
}

#[test]
fn simclr_devices_processes_join_and_print_one_topology() {
    let exe = env!("CARGO_BIN_EXE_simclr");
    let addr = format!("127.0.0.1:{}", free_port());
    let n = 3;
    let children: Vec<_> = (0..n)
        .map(|id| {
            Command::new(exe)
                .args([
                    "devices",
                    "--json",
                    "--cpu_device_count",
                    &(id + 1).to_string(),
                    "--coordinator_address",
                    &addr,
                    "--num_processes",
                    &n.to_string(),
                    "--process_id",
                    &id.to_string(),
                    "--initialization_timeout",
                    "120",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("simclr devices")
        })
        .collect();
    let mut views = Vec::new();
    for (id, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "process {id} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["job"]["process_id"], id);
        views.push(v["job"]["replicas"].clone());
    }
    assert!(
        views.iter().all(|v| *v == views[0]),
        "the processes disagree: {views:?}"
    );
    let owners: Vec<u64> = views[0]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|r| r["process_id"].as_u64().expect("process"))
        .collect();
    // 1 + 2 + 3 CPU devices, ordered by process then device.
    assert_eq!(owners, vec![0, 1, 1, 2, 2, 2]);
}

#[test]
fn multi_process_training_on_the_cpu_plugin_is_refused_clearly() {
    let exe = env!("CARGO_BIN_EXE_simclr");
    let data = std::env::var("SIMCLR_DATA_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/cifar10").to_string()
    });
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = std::env::temp_dir().join(format!("simclr-dist-run-{}", std::process::id()));
    let children: Vec<_> = (0..2)
        .map(|id| {
            Command::new(exe)
                .args([
                    "run",
                    "--dataset=cifar10",
                    &format!("--data_dir={data}"),
                    &format!("--model_dir={}", dir.display()),
                    "--image_size=32",
                    "--resnet_depth=18",
                    "--train_batch_size=8",
                    "--train_steps=1",
                    &format!("--coordinator_address={addr}"),
                    "--num_processes=2",
                    &format!("--process_id={id}"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("simclr run")
        })
        .collect();
    for (id, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "process {id} must refuse:\n{err}");
        assert!(
            err.contains("does not join processes") && err.contains("8 devices in 2 processes"),
            "process {id}:\n{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
