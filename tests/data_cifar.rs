//! CIFAR-10 binary reader: the lossless golden sample byte for byte, the full
//! shared copy with the right label counts, and the documented errors for
//! truncated and corrupted files (SIMCLR.md §2.1).

use crate::data_common;

use proptest::prelude::*;
use simclr::data::cifar::{self, Cifar10, IMAGE_BYTES, RECORD_BYTES};
use simclr::data::{Dataset, Error, Split};

const FOOLBOX_LABELS: [u8; 20] = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6];

fn foolbox_bytes() -> Vec<u8> {
    std::fs::read(data_common::cifar_dir().join("foolbox-first20-test.bin")).unwrap()
}

/// Inverse of the reader's layout change: HWC back to label + R, G, B planes.
fn to_record(label: u8, hwc: &[u8]) -> Vec<u8> {
    let mut rec = vec![label];
    for c in 0..3 {
        rec.extend((0..1024).map(|p| hwc[3 * p + c]));
    }
    rec
}

#[test]
fn foolbox_golden_sample_is_read_byte_exactly() {
    let bytes = foolbox_bytes();
    let (images, labels) = cifar::parse(&bytes, "foolbox-first20-test.bin").unwrap();
    assert_eq!(labels, FOOLBOX_LABELS);
    assert_eq!(images.len(), 20 * IMAGE_BYTES);
    // Record 0: red plane starts 158 159 165 166 160; last three bytes
    // (blue of the last three pixels) are 124 129 110.
    let img0 = &images[..IMAGE_BYTES];
    let red: Vec<u8> = (0..5).map(|p| img0[3 * p]).collect();
    assert_eq!(red, [158, 159, 165, 166, 160]);
    let blue_tail: Vec<u8> = (1021..1024).map(|p| img0[3 * p + 2]).collect();
    assert_eq!(blue_tail, [124, 129, 110]);
    // Converting every record back to the planar layout gives the file.
    let mut rebuilt = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        rebuilt.extend(to_record(
            l,
            &images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES],
        ));
    }
    assert_eq!(rebuilt, bytes);
}

#[test]
fn shared_copy_has_every_record_and_balanced_labels() {
    let dir = data_common::cifar_dir();
    let train = Cifar10::open(&dir, Split::Train).unwrap();
    let test = Cifar10::open(&dir, Split::Eval).unwrap();
    assert_eq!(train.len(), 50_000);
    assert_eq!(test.len(), 10_000);
    assert_eq!(train.num_classes(), 10);
    let count = |l: &[u8]| {
        let mut c = [0usize; 10];
        l.iter().for_each(|&x| c[x as usize] += 1);
        c
    };
    assert_eq!(count(train.labels()), [5000; 10], "train label counts");
    assert_eq!(count(test.labels()), [1000; 10], "test label counts");
    assert_eq!(&train.labels()[..10], &[6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    assert_eq!(&test.labels()[..20], &FOOLBOX_LABELS);
    assert_eq!(
        count(&train.labels()[..10_000]),
        [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981],
        "data_batch_1 label counts"
    );
    let ex = test.get(0).unwrap();
    assert_eq!((ex.image.height, ex.image.width, ex.label), (32, 32, 3));
    // The lossy copy: record 0's red plane starts 167 166 168 177 162.
    assert_eq!(
        &[ex.image.data[0], ex.image.data[3], ex.image.data[6]],
        &[167, 166, 168]
    );
    assert!(
        test.get(10_000).is_err(),
        "out-of-range index must be an error"
    );
}

#[test]
fn truncated_file_names_the_record_and_offset() {
    let bytes = foolbox_bytes();
    let cut = &bytes[..2 * RECORD_BYTES + 100];
    match cifar::parse(cut, "cut.bin") {
        Err(Error::Truncated {
            path,
            record,
            offset,
            ..
        }) => {
            assert_eq!(
                (path.as_str(), record, offset),
                ("cut.bin", 2, 2 * RECORD_BYTES as u64)
            );
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    let msg = cifar::parse(cut, "cut.bin").unwrap_err().to_string();
    assert!(msg.contains("cut.bin") && msg.contains("record 2"), "{msg}");
}

#[test]
fn bad_label_names_the_record_and_offset() {
    let mut bytes = foolbox_bytes();
    bytes[5 * RECORD_BYTES] = 10;
    match cifar::parse(&bytes, "bad.bin") {
        Err(Error::Corrupt { record, offset, .. }) => {
            assert_eq!((record, offset), (5, 5 * RECORD_BYTES as u64))
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn missing_folder_is_a_not_found_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Cifar10::open(dir.path(), Split::Train).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn corrupted_files_give_documented_errors_never_panics(
        cut in 0usize..(3 * RECORD_BYTES + 10),
        pos in 0usize..(3 * RECORD_BYTES),
        val in any::<u8>(),
    ) {
        let mut bytes = foolbox_bytes()[..3 * RECORD_BYTES].to_vec();
        bytes[pos] = val;
        bytes.truncate(cut.min(bytes.len()));
        match cifar::parse(&bytes, "p.bin") {
            Ok((im, lb)) => {
                prop_assert_eq!(bytes.len() % RECORD_BYTES, 0);
                prop_assert_eq!(im.len(), lb.len() * IMAGE_BYTES);
            }
            Err(Error::Truncated { record, .. }) => {
                prop_assert!(bytes.len() % RECORD_BYTES != 0);
                prop_assert_eq!(record as usize, bytes.len() / RECORD_BYTES);
            }
            Err(Error::Corrupt { record, .. }) => {
                prop_assert_eq!(pos % RECORD_BYTES, 0);
                prop_assert_eq!(record as usize, pos / RECORD_BYTES);
                prop_assert!(val > 9);
            }
            Err(e) => prop_assert!(false, "unexpected error {}", e),
        }
    }
}
