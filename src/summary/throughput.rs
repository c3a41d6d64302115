//! A throughput meter for the training loop: times each step, leaves out the
//! first steps (compilation, allocation, warm-up) and reports images per
//! second over a window of recent steps, as a median (robust to a slow step
//! now and then: checkpoints, evaluation) and as a mean (total images over
//! total time). Time between [`Throughput::pause`] and
//! [`Throughput::resume`] is not counted.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Images/s of the recent steps, from [`Throughput::report`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThroughputReport {
    /// Steps in the window the figures cover.
    pub steps: usize,
    /// Median over the window of each step's images / seconds.
    pub median_images_per_sec: f64,
    /// Images of the window / seconds of the window.
    pub mean_images_per_sec: f64,
}

impl ThroughputReport {
    /// The figures divided among `replicas` devices (img/s per replica).
    pub fn per_replica(&self, replicas: usize) -> ThroughputReport {
        let r = replicas.max(1) as f64;
        ThroughputReport {
            steps: self.steps,
            median_images_per_sec: self.median_images_per_sec / r,
            mean_images_per_sec: self.mean_images_per_sec / r,
        }
    }
}

/// Step timer; see the module documentation.
#[derive(Clone, Debug)]
pub struct Throughput {
    warmup_steps: u64,
    window: usize,
    steps_seen: u64,
    mark: Option<Instant>,
    recent: VecDeque<(Duration, u64)>,
}

impl Throughput {
    /// A meter that ignores the first `warmup_steps` steps and reports over
    /// the last `window` measured steps (at least 1).
    pub fn new(warmup_steps: u64, window: usize) -> Self {
        let window = window.max(1);
        Throughput {
            warmup_steps,
            window,
            steps_seen: 0,
            mark: None,
            recent: VecDeque::with_capacity(window),
        }
    }

    /// Starts the clock: call right before the first step and after a
    /// pause. Same as [`Throughput::resume`].
    pub fn start(&mut self) {
        self.mark = Some(Instant::now());
    }

    /// Stops the clock (before evaluation, checkpointing, …): the time until
    /// [`Throughput::resume`] is not part of any step.
    pub fn pause(&mut self) {
        self.mark = None;
    }

    /// Restarts the clock after [`Throughput::pause`].
    pub fn resume(&mut self) {
        self.start();
    }

    /// Ends a step that processed `images` images (global batch size): its
    /// time is the time since the previous step ended or the clock started.
    /// A step ended while the clock is stopped is counted as a warm-up step
    /// would be, untimed, and starts the clock.
    pub fn step(&mut self, images: u64) {
        let now = Instant::now();
        match self.mark.replace(now) {
            Some(t) => self.record(now - t, images),
            None => self.steps_seen += 1,
        }
    }

    /// Records a step of known duration (for steps timed elsewhere).
    pub fn record(&mut self, duration: Duration, images: u64) {
        self.steps_seen += 1;
        if self.steps_seen <= self.warmup_steps {
            return;
        }
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back((duration, images));
    }

    /// Steps ended so far, warm-up included.
    pub fn steps_seen(&self) -> u64 {
        self.steps_seen
    }

    /// Images/s over the window, or `None` before the first measured step
    /// (or when the window took no measurable time).
    pub fn report(&self) -> Option<ThroughputReport> {
        let total_secs: f64 = self.recent.iter().map(|(d, _)| d.as_secs_f64()).sum();
        if self.recent.is_empty() || total_secs <= 0.0 {
            return None;
        }
        let total_images: u64 = self.recent.iter().map(|&(_, n)| n).sum();
        let mut rates: Vec<f64> = self
            .recent
            .iter()
            .map(|&(d, n)| {
                let s = d.as_secs_f64();
                if s > 0.0 {
                    n as f64 / s
                } else {
                    f64::INFINITY
                }
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        let mid = rates.len() / 2;
        let median = if rates.len() % 2 == 1 {
            rates[mid]
        } else {
            (rates[mid - 1] + rates[mid]) / 2.0
        };
        Some(ThroughputReport {
            steps: self.recent.len(),
            median_images_per_sec: median,
            mean_images_per_sec: total_images as f64 / total_secs,
        })
    }
}
