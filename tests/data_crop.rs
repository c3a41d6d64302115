//! Statistics of the crop sampler over 100,000 draws follow TF's
//! `sample_distorted_bounding_box` rules (SIMCLR.md §2.3, §12.7): effective
//! minimum area 10 %, aspect ratio in [3/4, 4/3] up to rounding, uniform
//! height, offsets never at the last position, fallback only when no crop fits.

use simclr::data::augment::{self, AugmentConfig, CropParams};
use simclr::data::rng::Rng;
use simclr::data::ImageU8;

const DRAWS: u64 = 100_000;

fn draw(h: usize, w: usize, p: &CropParams, i: u64) -> augment::CropWindow {
    let mut rng = Rng::new(7, &[i]);
    augment::sample_distorted_crop(h, w, p, &mut rng)
}

#[test]
fn area_and_aspect_follow_the_rules_and_never_fall_back_on_square_images() {
    let (h, w) = (224usize, 224usize);
    let p = CropParams::simclr(1.0);
    let (mut min_frac, mut max_frac) = (f64::MAX, 0f64);
    let (mut min_ar, mut max_ar) = (f64::MAX, 0f64);
    let mut fallbacks = 0;
    let mut below_11 = 0;
    for i in 0..DRAWS {
        let c = draw(h, w, &p, i);
        if c.fallback {
            fallbacks += 1;
            continue;
        }
        assert!(
            c.y + c.height <= h && c.x + c.width <= w,
            "crop {c:?} leaves the image"
        );
        let frac = (c.height * c.width) as f64 / (h * w) as f64;
        min_frac = min_frac.min(frac);
        max_frac = max_frac.max(frac);
        if frac < 0.11 {
            below_11 += 1;
        }
        let ar = c.width as f64 / c.height as f64;
        // width = round(height·a): the ratio can miss [3/4, 4/3] by 0.5/height.
        let slack = 0.5 / c.height as f64 + 1e-9;
        assert!(
            ar >= 0.75 - slack && ar <= 4.0 / 3.0 + slack,
            "aspect {ar} of {c:?}"
        );
        min_ar = min_ar.min(ar);
        max_ar = max_ar.max(ar);
    }
    assert_eq!(
        fallbacks, 0,
        "a 224x224 image always admits a crop within 100 attempts"
    );
    assert!(
        min_frac >= 0.1,
        "effective minimum area is 10 % (min_object_covered), got {min_frac}"
    );
    assert!(
        min_frac < 0.102,
        "areas just above 10 % must occur, smallest was {min_frac}"
    );
    assert!(
        below_11 > 100,
        "the 10-11 % band must be populated ({below_11})"
    );
    assert!(
        max_frac > 0.99,
        "near-full crops must occur, largest was {max_frac}"
    );
    assert!(
        min_ar < 0.76 && max_ar > 1.32,
        "aspect range covered: [{min_ar}, {max_ar}]"
    );
}

#[test]
fn height_is_uniform_for_a_fixed_aspect_ratio() {
    // Aspect fixed at 1 on 224x224: candidate heights 64..=224 (63 is bumped
    // to 64 because 63² < 8 %), accepted when h² >= 10 % => 71..=224.
    let p = CropParams {
        aspect_ratio_range: (1.0, 1.0),
        ..CropParams::simclr(1.0)
    };
    let mut counts = vec![0u64; 225];
    for i in 0..DRAWS {
        let c = draw(224, 224, &p, i);
        assert!(!c.fallback);
        assert_eq!(c.height, c.width);
        counts[c.height] += 1;
    }
    assert!(
        counts[..71].iter().all(|&c| c == 0),
        "heights below 71 must be rejected"
    );
    let bins = &counts[71..=224];
    let expected = DRAWS as f64 / bins.len() as f64;
    let chi2: f64 = bins
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    let dof = (bins.len() - 1) as f64;
    // chi² with 153 dof: mean 153, sd ~17.5; a uniform-area sampler gives
    // thousands here.
    assert!(
        chi2 < dof + 6.0 * (2.0 * dof).sqrt(),
        "heights not uniform: chi2 {chi2:.1} for {dof} dof"
    );
}

#[test]
fn offsets_never_take_the_last_position() {
    let p = CropParams {
        aspect_ratio_range: (1.0, 1.0),
        ..CropParams::simclr(1.0)
    };
    let (mut at_max_minus_1, mut at_max) = (0, 0);
    for i in 0..DRAWS / 4 {
        let c = draw(32, 32, &p, i);
        if c.height < 32 {
            assert!(
                c.y + c.height < 32 && c.x + c.width < 32,
                "TF quirk: last offset never chosen, {c:?}"
            );
            if c.y + c.height == 31 {
                at_max_minus_1 += 1;
            }
        } else {
            at_max += 1;
        }
    }
    assert!(
        at_max_minus_1 > 0 && at_max > 0,
        "{at_max_minus_1} {at_max}"
    );
}

#[test]
fn impossible_shapes_fall_back_to_the_whole_image() {
    let p = CropParams::simclr(1.0);
    for i in 0..1000 {
        let c = draw(1, 100, &p, i);
        assert!(
            c.fallback,
            "1x100 admits no crop of aspect 3/4..4/3 covering 8 %"
        );
        assert_eq!((c.y, c.x, c.height, c.width), (0, 0, 1, 100));
    }
}

#[test]
fn train_preprocessing_is_in_range_and_deterministic_per_stream() {
    let img = ImageU8 {
        height: 40,
        width: 50,
        data: (0..40 * 50 * 3).map(|i| (i * 37 % 256) as u8).collect(),
    };
    let cfg = AugmentConfig::pretrain(32, 1.0);
    for i in 0..50 {
        let a = augment::preprocess_for_train(&img, &cfg, &mut Rng::new(1, &[i])).unwrap();
        let b = augment::preprocess_for_train(&img, &cfg, &mut Rng::new(1, &[i])).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.height, a.width, a.data.len()), (32, 32, 32 * 32 * 3));
        assert!(a.data.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
