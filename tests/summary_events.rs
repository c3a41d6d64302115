//! Event files written by `summary::EventWriter` read back by the crate's own
//! reader: framing, both CRCs, the file-version header, scalar and image
//! values and steps, corruption detection, new files on resume, and errors
//! that name the path.

use std::fs;
use std::path::PathBuf;

use simclr::summary::proto::{event, summary, Event};
use simclr::summary::record::{decode_records, encode_record};
use simclr::summary::{event_files, read_events, scalars_by_tag, Error, EventWriter, Image};

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("summary_events")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

#[test]
fn scalars_round_trip_with_steps_and_file_version_header() {
    let dir = scratch("round_trip").join("train");
    let mut w = EventWriter::create(&dir).unwrap();
    let name = w.path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("events.out.tfevents.") && name.split('.').count() >= 5,
        "file name {name}"
    );
    let secs: u64 = name
        .split('.')
        .nth(3)
        .unwrap()
        .parse()
        .expect("unix seconds in name");
    assert!(secs > 1_600_000_000, "{secs}");

    let steps = [1i64, 2, 10, 1000];
    for &s in &steps {
        w.scalars(
            &[
                ("train/contrast_loss", 5.0 / s as f32),
                ("learning_rate", 0.3 * s as f32),
            ],
            s,
        )
        .unwrap();
    }
    w.scalar("train/contrast_acc", f32::NAN, 1001).unwrap();

    let events = read_events(w.path()).unwrap();
    assert_eq!(events.len(), 1 + steps.len() + 1);
    assert_eq!(
        events[0].what,
        Some(event::What::FileVersion("brain.Event:2".into())),
        "first event must be the file version"
    );
    assert!(events.iter().all(|e| e.wall_time > 1.6e9));

    let by_tag = scalars_by_tag(&events);
    let loss: Vec<(i64, f32)> = steps.iter().map(|&s| (s, 5.0 / s as f32)).collect();
    let lr: Vec<(i64, f32)> = steps.iter().map(|&s| (s, 0.3 * s as f32)).collect();
    assert_eq!(by_tag["train/contrast_loss"], loss);
    assert_eq!(by_tag["learning_rate"], lr);
    let acc = &by_tag["train/contrast_acc"];
    assert_eq!(acc.len(), 1);
    assert_eq!(acc[0].0, 1001);
    assert!(acc[0].1.is_nan(), "NaN survives the round trip");
}

#[test]
fn image_summary_holds_a_png_of_the_right_shape() {
    let dir = scratch("image");
    let mut w = EventWriter::create(&dir).unwrap();
    let values: Vec<f32> = (0..4 * 6 * 3).map(|i| i as f32 / 71.0).collect();
    let img = Image::from_unit_f32(4, 6, 3, &values).unwrap();
    w.image("image", &img, 7).unwrap();
    let events = read_events(w.path()).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].step, 7);
    let Some(event::What::Summary(s)) = &events[1].what else {
        panic!("second event is not a summary: {:?}", events[1].what)
    };
    let Some(summary::value::Value::Image(png)) = &s.value[0].value else {
        panic!("not an image value")
    };
    assert_eq!(s.value[0].tag, "image");
    assert_eq!((png.height, png.width, png.colorspace), (4, 6, 3));
    assert_eq!(png.encoded_image_string, img.to_png());
    assert!(png.encoded_image_string.starts_with(b"\x89PNG\r\n\x1a\n"));
}

#[test]
fn a_corrupted_byte_is_detected_by_the_crc() {
    let dir = scratch("corrupt");
    let mut w = EventWriter::create(&dir).unwrap();
    w.scalar("loss", 1.5, 3).unwrap();
    let path = w.path().to_path_buf();
    drop(w);
    let good = fs::read(&path).unwrap();
    // Flip one bit inside the last record's data (its value), then inside
    // its length field: both CRCs must catch it.
    let records = decode_records(&good, &path).unwrap();
    let last = records.last().unwrap().offset as usize;
    for (at, what) in [(good.len() - 6, "data CRC"), (last, "length CRC")] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        fs::write(&path, &bad).unwrap();
        match read_events(&path) {
            Err(Error::Corrupt {
                path: p,
                offset,
                what: msg,
            }) => {
                assert_eq!(p, path);
                assert_eq!(offset as usize, last, "offset of the bad record");
                assert!(msg.contains(what), "{msg:?} should mention {what}");
            }
            other => panic!("flip at byte {at}: expected a {what} error, got {other:?}"),
        }
    }
    // A truncated tail (a run killed mid-write) is reported, not misread.
    fs::write(&path, &good[..good.len() - 3]).unwrap();
    let err = read_events(&path).unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_resumed_run_writes_a_new_file_and_keeps_the_old_one() {
    let dir = scratch("resume");
    let mut first = EventWriter::create(&dir).unwrap();
    first.scalar("loss", 2.0, 1).unwrap();
    let mut second = EventWriter::create(&dir).unwrap();
    second.scalar("loss", 1.0, 2).unwrap();
    assert_ne!(first.path(), second.path());
    let files = event_files(&dir).unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    // Name order is the order TensorBoard reads; the older file comes first.
    assert_eq!(files[0], first.path());
    let all: Vec<Event> = files.iter().flat_map(|f| read_events(f).unwrap()).collect();
    assert_eq!(scalars_by_tag(&all)["loss"], vec![(1, 2.0), (2, 1.0)]);
}

#[test]
fn every_event_is_on_disk_as_soon_as_it_is_logged() {
    let dir = scratch("flush");
    let mut w = EventWriter::create(&dir).unwrap();
    for step in 0..5 {
        w.scalar("x", step as f32, step).unwrap();
        // Read through another handle while the writer is still open.
        let n = read_events(w.path()).unwrap().len();
        assert_eq!(n, 2 + step as usize, "after logging step {step}");
    }
}

#[test]
fn io_errors_name_the_path() {
    let dir = scratch("io_error");
    let blocker = dir.join("not_a_dir");
    fs::write(&blocker, b"x").unwrap();
    let err = EventWriter::create(blocker.join("train")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("not_a_dir"), "{err}");
    let err = read_events(dir.join("missing")).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn framing_matches_the_tfrecord_layout() {
    let framed = encode_record(b"abc");
    assert_eq!(&framed[..8], &3u64.to_le_bytes());
    assert_eq!(&framed[12..15], b"abc");
    // The length's CRC-32C, masked: rotated right by 15, plus 0xa282ead8.
    // (That these CRCs are TensorFlow's is checked by summary_tensorboard.)
    let crc = simclr::crc32c::value(&3u64.to_le_bytes());
    let masked = crc.rotate_right(15).wrapping_add(0xa282_ead8);
    assert_eq!(&framed[8..12], &masked.to_le_bytes());
}
