//! The losses: NT-Xent with negatives gathered from every replica (SPEC §5)
//! and softmax cross-entropy for the supervised head, with their metrics.

use crate::ir::{ComparisonDirection, DotDims, ElementType, ReplicaGroups, Shape, Tensor};

/// `LARGE_NUM` of the original: masks each anchor's similarity with itself.
pub const LARGE_NUM: f64 = 1e9;

/// What [`nt_xent`] traces.
#[derive(Clone, Debug)]
pub struct Contrastive {
    /// `loss_a + loss_b` (per replica: mean over its anchors).
    pub loss: Tensor,
    /// `ab = z1·Z2ᵀ/τ`, `[n, N_g]`.
    pub logits_ab: Tensor,
    /// The positive's global column `g(i) = replica_id·n + i`, `s32[n]`.
    pub labels: Tensor,
    /// Fraction of anchors whose largest `ab` logit is the positive.
    pub accuracy: Tensor,
    /// Mean entropy of `softmax(ab)` (`contrast_entropy`).
    pub entropy: Tensor,
}

/// Row-wise log-sum-exp of `[n, m]` logits, computed stably.
pub fn logsumexp(x: &Tensor) -> Tensor {
    let n = x.dims()[0];
    let m = x.reduce_max(&[1]).stop_gradient();
    let shifted = x - m.reshape(&[n, 1]);
    shifted.exp().sum(&[1]).log() + m
}

/// Mean softmax cross-entropy of `[n, m]` logits against one-hot `targets`
/// (`f32[n, m]`), weighted by `weights` (`f32[n]`, normalised by their sum)
/// when given.
pub fn softmax_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    weights: Option<&Tensor>,
) -> Tensor {
    let per_row = logsumexp(logits) - (targets * logits).sum(&[1]);
    match weights {
        Some(w) => (per_row * w).sum(&[0]) / w.sum(&[0]).max(&w.scalar_like(1e-12)),
        None => per_row.mean(&[0]),
    }
}

/// One-hot `f32[n, width]` of `s32[n]` indices.
pub fn one_hot(labels: &Tensor, width: i64) -> Tensor {
    let n = labels.dims()[0];
    let cols = labels.iota_like(Shape::new(ElementType::S32, [n, width]), 1);
    let l = labels.reshape(&[n, 1]).broadcast_to(&[n, width]);
    cols.compare(ComparisonDirection::Eq, &l)
        .convert(ElementType::F32)
}

/// Top-k accuracy of `[n, m]` logits against `s32[n]` labels as an `f32[n]`
/// of 0/1: the label's logit is among the k largest (ties count in favour).
pub fn top_k_correct(logits: &Tensor, labels: &Tensor, k: i64) -> Tensor {
    let d = logits.dims();
    let (n, m) = (d[0], d[1]);
    let target = (one_hot(labels, m) * logits).sum(&[1]).reshape(&[n, 1]);
    let greater = logits
        .compare(ComparisonDirection::Gt, &target.broadcast_to(&[n, m]))
        .convert(ElementType::F32)
        .sum(&[1]);
    greater
        .compare(ComparisonDirection::Lt, &greater.scalar_like(k as f64))
        .convert(ElementType::F32)
}

/// NT-Xent on the projections `z` (`[2n, d]`: view 1 rows, then view 2),
/// exactly as SPEC §5: optional L2 normalisation, gathering of both views
/// from all replicas in replica-major order, the 1e9 self-mask, and
/// `loss_a + loss_b`.
pub fn nt_xent(z: &Tensor, hidden_norm: bool, temperature: f64, gather: bool) -> Contrastive {
    let d = z.dims();
    let (two_n, dim) = (d[0], d[1]);
    let n = two_n / 2;
    let z = if hidden_norm {
        let sq = (z * z).sum(&[1]).max(&z.scalar_like(1e-12));
        z * sq.rsqrt().reshape(&[two_n, 1])
    } else {
        z.clone()
    };
    let z1 = z.slice_dim(0, 0, n);
    let z2 = z.slice_dim(0, n, two_n);
    let replicas = if gather {
        z.builder().num_replicas() as i64
    } else {
        1
    };
    let (big1, big2) = if replicas > 1 {
        (
            z1.all_gather(0, ReplicaGroups::All),
            z2.all_gather(0, ReplicaGroups::All),
        )
    } else {
        (z1.clone(), z2.clone())
    };
    let ng = n * replicas;
    let _ = dim;
    // g(i) = replica_id·n + i.
    let row = z.iota_like(Shape::new(ElementType::S32, [n]), 0);
    let labels = if replicas > 1 {
        let rid = z.builder().replica_id().convert(ElementType::S32);
        row + (rid * n as f64)
    } else {
        row
    };
    let cols = z.iota_like(Shape::new(ElementType::S32, [n, ng]), 1);
    let mask = cols
        .compare(
            ComparisonDirection::Eq,
            &labels.reshape(&[n, 1]).broadcast_to(&[n, ng]),
        )
        .convert(ElementType::F32);
    let sim = |a: &Tensor, b: &Tensor| {
        a.dot_general(
            b,
            DotDims {
                lhs_contracting: vec![1],
                rhs_contracting: vec![1],
                ..Default::default()
            },
        ) * (1.0 / temperature)
    };
    let ab = sim(&z1, &big2);
    let ba = sim(&z2, &big1);
    let aa = sim(&z1, &big1) - &mask * LARGE_NUM;
    let bb = sim(&z2, &big2) - &mask * LARGE_NUM;
    let targets = one_hot(&labels, 2 * ng);
    let loss_a = softmax_cross_entropy(&ab.concat(&[&aa], 1), &targets, None);
    let loss_b = softmax_cross_entropy(&ba.concat(&[&bb], 1), &targets, None);
    let loss = loss_a + loss_b;

    let ab_metric = ab.stop_gradient();
    let accuracy = top_k_correct(&ab_metric, &labels, 1).mean(&[0]);
    let lse = logsumexp(&ab_metric);
    let p = (&ab_metric - lse.reshape(&[n, 1])).exp();
    let entropy = (&p * (&p + 1e-8).log()).sum(&[1]).mean(&[0]).neg();
    Contrastive {
        loss,
        logits_ab: ab,
        labels,
        accuracy,
        entropy,
    }
}
