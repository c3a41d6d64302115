//! The accuracy metrics of the step (`simclr::simclr::loss::top_k_correct`)
//! break ties as TF does: `argmax` and `top_k` take the lower index first,
//! so a row of equal logits (a zero-initialised head) is right only for
//! class 0, not for every label.

use simclr::interp::{self, Value};
use simclr::ir::{Builder, ElementType, Shape};
use simclr::simclr::loss::top_k_correct;

/// `top_k_correct` of `logits` (`[rows, 3]`) against `labels` for k = 1, 2, 3.
fn correct(logits: &[f64], labels: &[f64]) -> Vec<Vec<f64>> {
    let n = labels.len() as i64;
    let b = Builder::new("top_k", 1);
    let x = b
        .parameter("logits", Shape::new(ElementType::F64, [n, 3]))
        .convert(ElementType::F32);
    let y = b
        .parameter("labels", Shape::new(ElementType::F64, [n]))
        .convert(ElementType::S32);
    let outs: Vec<_> = (1..=3).map(|k| top_k_correct(&x, &y, k)).collect();
    let m = b.build(&outs.iter().collect::<Vec<_>>()).expect("build");
    let args = vec![
        Value::from_f64(&[n, 3], logits.to_vec()).expect("logits"),
        Value::from_f64(&[n], labels.to_vec()).expect("labels"),
    ];
    interp::evaluate(&m, &[args]).expect("evaluate")[0]
        .iter()
        .map(|v| v.to_f64_vec().expect("f64"))
        .collect()
}

#[test]
fn top_k_accuracy_breaks_ties_toward_the_lower_index_like_tf() {
    // Rows: equal logits (labels 0, 1, 2), then (1, 3, 3) (labels 1, 2, 0),
    // then (5, 1, 2) with label 1 (the smallest).
    let logits = [
        0.0, 0.0, 0.0, //
        0.0, 0.0, 0.0, //
        0.0, 0.0, 0.0, //
        1.0, 3.0, 3.0, //
        1.0, 3.0, 3.0, //
        1.0, 3.0, 3.0, //
        5.0, 1.0, 2.0,
    ];
    let labels = [0.0, 1.0, 2.0, 1.0, 2.0, 0.0, 1.0];
    let got = correct(&logits, &labels);
    assert_eq!(
        got[0],
        [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        "top-1 = argmax"
    );
    assert_eq!(got[1], [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0], "top-2");
    assert_eq!(got[2], [1.0; 7], "top-3 of 3 classes");
}
