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
/// of 0/1: the label's rank, counting the larger logits and the equal ones
/// at lower indices, is below k. Ties thus go to the lower index, as TF's
/// `argmax` (top-1) and `top_k` (top-5) break them: a row of equal logits
/// is correct only for label 0 at k = 1.
pub fn top_k_correct(logits: &Tensor, labels: &Tensor, k: i64) -> Tensor {
    let d = logits.dims();
    let (n, m) = (d[0], d[1]);
    let target = (one_hot(labels, m) * logits)
        .sum(&[1])
        .reshape(&[n, 1])
        .broadcast_to(&[n, m]);
    let cols = labels.iota_like(Shape::new(ElementType::S32, [n, m]), 1);
    let before = cols.compare(
        ComparisonDirection::Lt,
        &labels.reshape(&[n, 1]).broadcast_to(&[n, m]),
    );
    let f = |t: Tensor| t.convert(ElementType::F32);
    // Larger, or equal at a lower index (the two never both hold).
    let ahead = f(logits.compare(ComparisonDirection::Gt, &target))
        + f(logits.compare(ComparisonDirection::Eq, &target)) * f(before);
    let rank = ahead.sum(&[1]);
    rank.compare(ComparisonDirection::Lt, &rank.scalar_like(k as f64))
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

/// Index of each row's largest value of `[n, m]` logits as `s32[n]` (the
/// first one on ties).
pub fn argmax(logits: &Tensor) -> Tensor {
    let d = logits.dims();
    let (n, m) = (d[0], d[1]);
    let top = logits
        .reduce_max(&[1])
        .reshape(&[n, 1])
        .broadcast_to(&[n, m]);
    let is_top = logits
        .compare(ComparisonDirection::Eq, &top)
        .convert(ElementType::F32);
    // m − j for a maximal column j, 0 elsewhere: the row maximum is m − first j.
    let rev = logits.scalar_like(m as f64)
        - logits
            .iota_like(Shape::new(ElementType::S32, [n, m]), 1)
            .convert(ElementType::F32);
    (logits.scalar_like(m as f64) - (is_top * rev).reduce_max(&[1])).convert(ElementType::S32)
}

/// Row-wise log-softmax of `[n, m]` logits.
pub fn log_softmax(x: &Tensor) -> Tensor {
    let n = x.dims()[0];
    x - logsumexp(x).reshape(&[n, 1])
}

/// The distillation loss of SimCLRv2 and its metric, on one replica's
/// examples (see [`distillation`]).
#[derive(Clone, Debug)]
pub struct Distillation {
    /// Mean over the rows of `−Σ_y p_T(y) log p_S(y)` (scalar).
    pub loss: Tensor,
    /// Fraction of rows whose student top-1 class is the teacher's.
    pub agreement: Tensor,
}

/// Cross-entropy between the teacher's and the student's class
/// distributions softened by `temperature` τ, averaged over the `n` rows of
/// the `[n, K]` logits:
///
/// `L = −(1/n) Σ_i Σ_y softmax(t_i/τ)_y · log softmax(s_i/τ)_y`.
///
/// The teacher side is a constant (its gradient is stopped).
pub fn distillation(student: &Tensor, teacher: &Tensor, temperature: f64) -> Distillation {
    let inv = 1.0 / temperature;
    let t = teacher.stop_gradient() * inv;
    let p_t = log_softmax(&t).exp();
    let log_p_s = log_softmax(&(student * inv));
    let loss = (&p_t * &log_p_s).sum(&[1]).mean(&[0]).neg();
    let agreement = top_k_correct(&student.stop_gradient(), &argmax(&t), 1).mean(&[0]);
    Distillation { loss, agreement }
}

/// Per-replica share of a mean over the labelled rows of the global batch:
/// `R · Σ_i m_i v_i / max(Σ_replicas Σ_i m_i, 1)` for `f32[n]` values and
/// 0/1 mask, so that the mean over the R replicas is the global mean.
pub fn labelled_mean(values: &Tensor, mask: &Tensor, replicas: usize) -> Tensor {
    let mut count = mask.sum(&[0]);
    if replicas > 1 {
        count = count.all_reduce_sum(ReplicaGroups::All);
    }
    let count = count.max(&count.scalar_like(1.0)).stop_gradient();
    (values * mask).sum(&[0]) * (replicas as f64) / count
}

/// What [`distill_objective`] traces (per replica; the cross-replica mean
/// of each is its global-batch value).
#[derive(Clone, Debug)]
pub struct DistillObjective {
    /// `w · supervised + (1 − w) · distill` (no weight decay).
    pub loss: Tensor,
    /// The distillation cross-entropy at temperature τ.
    pub distill_loss: Tensor,
    /// Fraction of examples whose student top-1 class is the teacher's.
    pub agreement: Tensor,
    /// Softmax cross-entropy (τ = 1) of the student on the labelled examples.
    pub supervised_loss: Tensor,
    /// The student's top-1 accuracy on the labelled examples.
    pub supervised_acc: Tensor,
    /// The teacher's top-1 accuracy on the labelled examples.
    pub teacher_acc: Tensor,
}

/// The objective of the distillation step (formulas at
/// [`super::step::distill_program`]) on `[n, K]` student and teacher
/// logits and `s32[n]` labels (−1: unlabelled), with `label_weight` w, on
/// one of `replicas` replicas.
pub fn distill_objective(
    student: &Tensor,
    teacher: &Tensor,
    labels: &Tensor,
    temperature: f64,
    label_weight: f64,
    replicas: usize,
) -> DistillObjective {
    let k = student.dims()[1];
    let teacher = teacher.stop_gradient();
    let dist = distillation(student, &teacher, temperature);
    let mask = labels
        .compare(ComparisonDirection::Ge, &labels.scalar_like(0.0))
        .convert(ElementType::F32);
    let onehot = one_hot(labels, k);
    let ce = logsumexp(student) - (&onehot * student).sum(&[1]);
    let supervised_loss = labelled_mean(&ce, &mask, replicas);
    let supervised_acc = labelled_mean(
        &top_k_correct(&student.stop_gradient(), labels, 1),
        &mask,
        replicas,
    );
    let teacher_acc = labelled_mean(&top_k_correct(&teacher, labels, 1), &mask, replicas);
    let loss = if label_weight > 0.0 {
        &supervised_loss * label_weight + &dist.loss * (1.0 - label_weight)
    } else {
        dist.loss.clone()
    };
    DistillObjective {
        loss,
        distill_loss: dist.loss,
        agreement: dist.agreement,
        supervised_loss,
        supervised_acc,
        teacher_acc,
    }
}
