//! The input pipeline (SIMCLR.md §2.1): identical global batches for any
//! number of worker threads or replicas, shuffle-buffer coverage, padded eval
//! batches that count every example once, and errors that surface instead of
//! hanging.

use crate::data_common;

use std::collections::HashSet;
use std::sync::Arc;

use simclr::data::cifar::Cifar10;
use simclr::data::pipeline::{shuffle_buffer_order, Batch, Pipeline, PipelineConfig};
use simclr::data::{Dataset, Error, Example, ImageU8, Split};

/// A small in-memory dataset: image bytes derived from the index.
struct Synth {
    n: usize,
    h: usize,
    w: usize,
    fail_at: Option<usize>,
}

impl Dataset for Synth {
    fn len(&self) -> usize {
        self.n
    }
    fn num_classes(&self) -> usize {
        10
    }
    fn get(&self, i: usize) -> Result<Example, Error> {
        if Some(i) == self.fail_at {
            return Err(Error::Decode {
                path: format!("synthetic/{i}.jpg"),
                reason: "broken on purpose".into(),
            });
        }
        let data = (0..self.h * self.w * 3)
            .map(|k| ((k * 7 + i * 13) % 251) as u8)
            .collect();
        Ok(Example {
            image: ImageU8 {
                height: self.h,
                width: self.w,
                data,
            },
            label: (i % 10) as i32,
        })
    }
    fn describe(&self) -> String {
        "synthetic".into()
    }
}

fn synth(n: usize) -> Arc<dyn Dataset> {
    Arc::new(Synth {
        n,
        h: 36,
        w: 40,
        fail_at: None,
    })
}

/// Global batch as (images of view 0 for all replicas, then view 1, ...,
/// labels, indices), independent of the replica split.
fn global(b: &Batch) -> (Vec<f32>, Vec<i32>, Vec<usize>) {
    let views = b.replicas[0].num_views;
    let mut images = Vec::new();
    for v in 0..views {
        for r in &b.replicas {
            images.extend_from_slice(r.view(v));
        }
    }
    let labels = b.replicas.iter().flat_map(|r| r.labels.clone()).collect();
    let idx = b.replicas.iter().flat_map(|r| r.indices.clone()).collect();
    (images, labels, idx)
}

fn run(
    ds: Arc<dyn Dataset>,
    mut cfg: PipelineConfig,
    workers: usize,
    steps: usize,
) -> Vec<(Vec<f32>, Vec<i32>, Vec<usize>)> {
    cfg.num_workers = workers;
    let mut p = Pipeline::new(ds, cfg).unwrap();
    (0..steps)
        .map(|_| global(&p.next_batch().unwrap().unwrap()))
        .collect()
}

#[test]
fn same_seed_same_global_batches_for_1_or_4_workers_and_1_or_2_replicas() {
    let ds = synth(50);
    let base = PipelineConfig::pretrain(8, 1, 32, 0.5, 1234);
    let reference = run(ds.clone(), base.clone(), 1, 8);
    let four = run(ds.clone(), base.clone(), 4, 8);
    assert!(reference == four, "1 vs 4 workers differ");
    let small_chunks = PipelineConfig {
        examples_per_task: 3,
        prefetch: 3,
        ..base.clone()
    };
    assert!(
        reference == run(ds.clone(), small_chunks, 4, 8),
        "chunks of 3 on 4 workers differ"
    );
    let two_rep = PipelineConfig {
        num_replicas: 2,
        examples_per_task: 1,
        ..base.clone()
    };
    assert!(
        reference == run(ds.clone(), two_rep.clone(), 1, 8),
        "1 vs 2 replicas differ"
    );
    assert!(
        reference == run(ds.clone(), two_rep, 3, 8),
        "2 replicas with 3 workers differ"
    );
    let other_seed = run(ds, PipelineConfig { seed: 99, ..base }, 2, 8);
    assert!(
        reference != other_seed,
        "a different seed must change the batches"
    );
    // 8 steps of 8 = 64 > 50: the stream ran into epoch 2 within a batch.
    let first_epoch: Vec<usize> = reference
        .iter()
        .flat_map(|b| b.2.clone())
        .take(50)
        .collect();
    assert_eq!(
        first_epoch.iter().collect::<HashSet<_>>().len(),
        50,
        "epoch 1 covers every example once"
    );
}

#[test]
fn batches_have_documented_shapes_ranges_and_two_distinct_views() {
    let ds = synth(20);
    let mut p = Pipeline::new(ds, PipelineConfig::pretrain(4, 2, 32, 1.0, 5)).unwrap();
    let b = p.next_batch().unwrap().unwrap();
    assert_eq!(b.replicas.len(), 2);
    let r = &b.replicas[0];
    assert_eq!(r.image_shape(), [2, 2, 32, 32, 3]);
    assert_eq!(r.images.len(), 2 * 2 * 32 * 32 * 3);
    assert!(r.images.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(r.mask, vec![1.0, 1.0]);
    assert_ne!(r.view(0), r.view(1), "two independent augmentations");
    for (l, i) in r.labels.iter().zip(&r.indices) {
        assert_eq!(*l as usize, i % 10);
    }
    let s = p.stats();
    assert!(s.images >= 8 && s.images_per_s > 0.0, "{s:?}");
}

#[test]
fn host_blur_keeps_values_in_range_and_is_deterministic() {
    let ds = synth(16);
    let cfg = PipelineConfig {
        blur: true,
        ..PipelineConfig::pretrain(8, 2, 64, 1.0, 3)
    };
    let a = run(ds.clone(), cfg.clone(), 1, 2);
    let b = run(ds, cfg, 2, 2);
    assert!(a == b);
    assert!(a[0].0.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn shuffle_buffer_emits_each_element_once_and_depends_on_seed_and_epoch() {
    for (n, buf) in [(100, 10), (100, 1000), (7, 1), (1, 5)] {
        let o = shuffle_buffer_order(n, buf, 1, 0);
        let mut s = o.clone();
        s.sort();
        assert_eq!(s, (0..n).collect::<Vec<_>>(), "n={n} buffer={buf}");
    }
    assert_eq!(
        shuffle_buffer_order(7, 1, 1, 0),
        (0..7).collect::<Vec<_>>(),
        "buffer 1 keeps the order"
    );
    let a = shuffle_buffer_order(1000, 100, 1, 0);
    assert_ne!(a, shuffle_buffer_order(1000, 100, 1, 1), "epochs reshuffle");
    assert_ne!(a, shuffle_buffer_order(1000, 100, 2, 0), "seeds differ");
    // A buffer of 100 cannot emit element i before position i - 99.
    for (pos, &e) in a.iter().enumerate() {
        assert!(e <= pos + 99, "element {e} emitted at {pos}");
    }
}

#[test]
fn eval_covers_every_example_once_with_padding_mask() {
    let ds: Arc<dyn Dataset> = Arc::new(Synth {
        n: 37,
        h: 32,
        w: 32,
        fail_at: None,
    });
    let mut cfg = PipelineConfig::eval(8, 2, 32);
    cfg.num_workers = 3;
    cfg.examples_per_task = 3;
    let mut p = Pipeline::new(ds, cfg).unwrap();
    assert_eq!(p.num_batches(), Some(5));
    let mut seen = Vec::new();
    let mut real = 0.0;
    let mut steps = 0;
    while let Some(b) = p.next_batch().unwrap() {
        steps += 1;
        for r in &b.replicas {
            assert_eq!(r.batch, 4);
            for i in 0..r.batch {
                real += r.mask[i];
                if r.mask[i] > 0.0 {
                    seen.push(r.indices[i]);
                } else {
                    assert_eq!(r.indices[i], usize::MAX);
                    assert!(
                        r.view(0)[i * 32 * 32 * 3..(i + 1) * 32 * 32 * 3]
                            .iter()
                            .all(|&v| v == 0.0),
                        "padding is zero"
                    );
                }
            }
        }
    }
    assert_eq!(steps, 5);
    assert_eq!(real, 37.0);
    assert_eq!(
        seen,
        (0..37).collect::<Vec<_>>(),
        "eval order is dataset order"
    );
    assert!(p.next_batch().unwrap().is_none());
}

#[test]
fn cifar_eval_pipeline_passes_raw_images_through() {
    let test: Arc<dyn Dataset> =
        Arc::new(Cifar10::open(&data_common::cifar_dir(), Split::Eval).unwrap());
    let mut cfg = PipelineConfig::eval(100, 1, 32);
    cfg.num_views = 2;
    let mut p = Pipeline::new(test.clone(), cfg).unwrap();
    assert_eq!(p.num_batches(), Some(100));
    let b = p.next_batch().unwrap().unwrap();
    let r = &b.replicas[0];
    let ex = test.get(0).unwrap();
    let want: Vec<f32> = ex.image.data.iter().map(|&v| v as f32 / 255.0).collect();
    assert_eq!(&r.view(0)[..32 * 32 * 3], &want[..]);
    assert_eq!(r.view(0), r.view(1), "eval views are identical");
    assert_eq!(r.labels[..3], [3, 8, 8]);
}

#[test]
fn reader_errors_surface_instead_of_hanging() {
    let ds: Arc<dyn Dataset> = Arc::new(Synth {
        n: 40,
        h: 32,
        w: 32,
        fail_at: Some(17),
    });
    let mut cfg = PipelineConfig::eval(8, 1, 32);
    cfg.num_workers = 2;
    let mut p = Pipeline::new(ds, cfg).unwrap();
    let mut err = None;
    for _ in 0..6 {
        match p.next_batch() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("the broken example must produce an error");
    assert!(e.to_string().contains("synthetic/17.jpg"), "{e}");
    assert!(
        p.next_batch().is_err(),
        "the pipeline stays stopped after an error"
    );
}

#[test]
fn invalid_configurations_are_rejected() {
    let ds = synth(10);
    let e = Pipeline::new(ds.clone(), PipelineConfig::pretrain(6, 4, 32, 1.0, 0))
        .err()
        .unwrap();
    assert!(matches!(e, Error::Config(_)), "{e}");
    let e = Pipeline::new(ds, PipelineConfig::pretrain(8, 1, 32, 1.5, 0))
        .err()
        .unwrap();
    assert!(e.to_string().contains("color_jitter_strength"), "{e}");
    // Eval at 32 with images of another size is an error naming the example.
    let mut p = Pipeline::new(synth(4), PipelineConfig::eval(2, 1, 32)).unwrap();
    let e = p.next_batch().unwrap_err();
    assert!(e.to_string().contains("36x40"), "{e}");
}

#[test]
fn resuming_at_a_step_reproduces_the_uninterrupted_stream() {
    let ds = synth(30);
    let cfg = PipelineConfig::finetune(8, 2, 32, 77);
    let full = run(ds.clone(), cfg.clone(), 2, 6);
    let mut p = Pipeline::starting_at(ds, cfg, 4).unwrap();
    let b = p.next_batch().unwrap().unwrap();
    assert_eq!(b.step, 4);
    assert!(global(&b) == full[4], "step 4 after resume differs");
    assert_eq!(b.replicas[0].num_views, 1);
}

#[test]
fn cached_in_memory_copy_gives_the_same_batches() {
    use simclr::data::InMemory;
    let ds = synth(20);
    let cached: Arc<dyn Dataset> = Arc::new(InMemory::cache(&*ds).unwrap());
    let cfg = PipelineConfig::pretrain(4, 1, 32, 1.0, 8);
    assert!(run(ds, cfg.clone(), 2, 3) == run(cached, cfg, 1, 3));
    let bad = vec![Example {
        image: ImageU8 {
            height: 1,
            width: 1,
            data: vec![0, 0, 0],
        },
        label: 12,
    }];
    assert!(InMemory::new(bad, 10, "x").is_err());
}

/// Augmentation on the device: the batches carry the resized views, one
/// parameter row per view and the blur filters; applying them on the host
/// gives the host pipeline's batches bit for bit, for 1 or 3 workers and 2
/// replicas (blur on), and the uint8 transfer carries those views rounded.
#[test]
fn device_augmentation_parameters_rebuild_the_host_batches() {
    use simclr::data::augment::{
        apply_device_params, blur_one_of_batch, quantize_u8, DeviceTransfer, DEVICE_PARAMS,
    };
    let ds = synth(40);
    let mut host_cfg = PipelineConfig::pretrain(8, 2, 32, 1.0, 77);
    host_cfg.blur = true;
    host_cfg.examples_per_task = 3;
    let mut host = Pipeline::new(ds.clone(), host_cfg.clone()).unwrap();
    let dev_cfg = |t, workers| PipelineConfig {
        device_augment: Some(t),
        num_workers: workers,
        ..host_cfg.clone()
    };
    let mut dev = Pipeline::new(ds.clone(), dev_cfg(DeviceTransfer::F32, 1)).unwrap();
    let mut dev3 = Pipeline::new(ds.clone(), dev_cfg(DeviceTransfer::F32, 3)).unwrap();
    let mut dev8 = Pipeline::new(ds, dev_cfg(DeviceTransfer::U8, 2)).unwrap();
    let per = 32 * 32 * 3;
    for _ in 0..3 {
        let h = host.next_batch().unwrap().unwrap();
        let d = dev.next_batch().unwrap().unwrap();
        assert_eq!(d, dev3.next_batch().unwrap().unwrap(), "1 vs 3 workers");
        let d8 = dev8.next_batch().unwrap().unwrap();
        for ((hr, dr), qr) in h.replicas.iter().zip(&d.replicas).zip(&d8.replicas) {
            assert_eq!(dr.augment_params.len(), 2 * 4 * DEVICE_PARAMS);
            assert_eq!(dr.blur_filters.len(), 2 * 3, "one 3-tap filter per view");
            assert!(dr.images_u8.is_empty() && qr.images.is_empty());
            let want_u8: Vec<u8> = dr.images.iter().map(|&v| quantize_u8(v)).collect();
            assert_eq!(qr.images_u8, want_u8);
            assert_eq!(qr.augment_params, dr.augment_params);
            let mut views = dr.images.clone();
            let mut scratch = vec![0f32; per];
            for (j, p) in dr.augment_params.chunks(DEVICE_PARAMS).enumerate() {
                let img = &mut views[j * per..(j + 1) * per];
                apply_device_params(img, 32, p).unwrap();
                let v = j / 4;
                let f = &dr.blur_filters[v * 3..(v + 1) * 3];
                blur_one_of_batch(img, 32, 32, f, p[10] != 0.0, &mut scratch);
            }
            assert_eq!(views, hr.images, "rebuilt views differ from the host's");
            assert_eq!((&dr.labels, &dr.indices), (&hr.labels, &hr.indices));
        }
    }
    // Evaluation batches are never augmented on the device.
    let mut eval = PipelineConfig::eval(8, 1, 32);
    eval.device_augment = Some(DeviceTransfer::F32);
    let e = Pipeline::new(synth(10), eval).err().expect("refused");
    assert!(e.to_string().contains("training batches only"), "{e}");
}

#[test]
fn recycled_buffers_give_the_same_batches() {
    use simclr::data::augment::DeviceTransfer;
    // A handed-back buffer still holds an earlier step's views: every
    // element (padding included) must be written again.
    let ds = synth(37);
    let square: Arc<dyn Dataset> = Arc::new(Synth {
        n: 37,
        h: 32,
        w: 32,
        fail_at: None,
    });
    let mut host = PipelineConfig::pretrain(8, 2, 32, 1.0, 5);
    host.blur = true;
    host.examples_per_task = 3;
    let device_u8 = PipelineConfig {
        device_augment: Some(DeviceTransfer::U8),
        ..host.clone()
    };
    let mut eval = PipelineConfig::eval(8, 2, 32);
    eval.examples_per_task = 3;
    for (name, cfg, ds) in [
        ("host", host, &ds),
        ("device uint8", device_u8, &ds),
        ("eval", eval, &square),
    ] {
        let cfg = PipelineConfig {
            num_workers: 2,
            ..cfg
        };
        let mut fresh = Pipeline::new(ds.clone(), cfg.clone()).unwrap();
        let mut recycled = Pipeline::new(ds.clone(), cfg).unwrap();
        let mut steps = 0;
        while let Some(b) = recycled.next_batch().unwrap() {
            let a = fresh.next_batch().unwrap().expect("same length");
            assert!(a == b, "{name}: step {steps} differs after recycling");
            recycled.recycle(b);
            steps += 1;
            if steps == 7 {
                break;
            }
        }
        assert!(steps >= 5, "{name}: {steps} steps");
    }
}
