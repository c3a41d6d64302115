//! Evaluating representations on the host from extracted features: a
//! weighted k-NN classifier (cosine similarity, the k-NN monitor reported
//! while pretraining) and a multinomial logistic-regression probe (the
//! quick linear evaluation of the README's main command).

/// Scales every row of `x` (`[n, d]`) to unit L2 norm (zero rows stay zero).
pub fn l2_normalize(x: &mut [f32], d: usize) {
    for row in x.chunks_mut(d.max(1)) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|v| *v /= n);
        }
    }
}

/// Top-1 accuracy of a k-NN classifier: each query takes the `k` bank
/// features of highest cosine similarity and votes for their labels with
/// weight `exp(sim / t)` (t = 0.07 is customary). `bank` and `queries`
/// are (features `[n, d]` row-major, labels in `0..num_classes`).
pub fn knn_accuracy(
    (bank, bank_labels): (&[f32], &[i32]),
    (queries, query_labels): (&[f32], &[i32]),
    d: usize,
    k: usize,
    num_classes: usize,
    t: f32,
) -> f64 {
    let mut bank = bank.to_vec();
    let mut queries = queries.to_vec();
    l2_normalize(&mut bank, d);
    l2_normalize(&mut queries, d);
    let n_bank = bank_labels.len();
    let k = k.min(n_bank).max(1);
    let mut correct = 0usize;
    let mut sims = vec![0f32; n_bank];
    let mut votes = vec![0f64; num_classes];
    for (q, &label) in queries.chunks(d).zip(query_labels) {
        for (s, b) in sims.iter_mut().zip(bank.chunks(d)) {
            *s = q.iter().zip(b).map(|(x, y)| x * y).sum();
        }
        let mut idx: Vec<usize> = (0..n_bank).collect();
        idx.select_nth_unstable_by(k - 1, |&a, &b| sims[b].total_cmp(&sims[a]));
        votes.iter_mut().for_each(|v| *v = 0.0);
        for &i in &idx[..k] {
            if let Some(v) = usize::try_from(bank_labels[i])
                .ok()
                .and_then(|c| votes.get_mut(c))
            {
                *v += f64::from((sims[i] / t).exp());
            }
        }
        let pred = votes
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(c, _)| c);
        correct += usize::from(pred as i32 == label);
    }
    correct as f64 / query_labels.len().max(1) as f64
}

/// A trained linear classifier on standardised features.
#[derive(Clone, Debug)]
pub struct LinearProbe {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    d: usize,
    c: usize,
}

/// Fits multinomial logistic regression with L2 penalty `l2` by full-batch
/// gradient descent with momentum (`epochs` passes) on `[n, d]` features.
pub fn fit_linear_probe(
    x: &[f32],
    y: &[i32],
    d: usize,
    c: usize,
    l2: f32,
    epochs: usize,
) -> LinearProbe {
    let n = y.len().max(1);
    let mut mean = vec![0f32; d];
    let mut var = vec![0f32; d];
    for row in x.chunks(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / n as f32;
        }
    }
    for row in x.chunks(d) {
        for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v - m) * (v - m) / n as f32;
        }
    }
    let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v.sqrt() + 1e-6)).collect();
    let xs: Vec<f32> = x
        .chunks(d)
        .flat_map(|row| {
            row.iter()
                .zip(&mean)
                .zip(&inv_std)
                .map(|((v, m), s)| (v - m) * s)
        })
        .collect();
    let mut w = vec![0f32; d * c];
    let mut b = vec![0f32; c];
    let (mut vw, mut vb) = (vec![0f32; d * c], vec![0f32; c]);
    let lr = 0.5f32;
    let mut logits = vec![0f32; c];
    for _ in 0..epochs {
        let mut gw = vec![0f32; d * c];
        let mut gb = vec![0f32; c];
        for (row, &label) in xs.chunks(d).zip(y) {
            for (j, l) in logits.iter_mut().enumerate() {
                *l = b[j]
                    + row
                        .iter()
                        .enumerate()
                        .map(|(i, v)| v * w[i * c + j])
                        .sum::<f32>();
            }
            let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let z: f32 = logits.iter().map(|l| (l - m).exp()).sum();
            for j in 0..c {
                let p = (logits[j] - m).exp() / z - if j as i32 == label { 1.0 } else { 0.0 };
                gb[j] += p / n as f32;
                for (i, v) in row.iter().enumerate() {
                    gw[i * c + j] += p * v / n as f32;
                }
            }
        }
        for i in 0..d * c {
            vw[i] = 0.9 * vw[i] + gw[i] + l2 * w[i];
            w[i] -= lr * vw[i];
        }
        for j in 0..c {
            vb[j] = 0.9 * vb[j] + gb[j];
            b[j] -= lr * vb[j];
        }
    }
    LinearProbe {
        mean,
        inv_std,
        w,
        b,
        d,
        c,
    }
}

impl LinearProbe {
    /// Top-1 accuracy on `[n, d]` features.
    pub fn accuracy(&self, x: &[f32], y: &[i32]) -> f64 {
        let mut correct = 0;
        for (row, &label) in x.chunks(self.d).zip(y) {
            let mut best = (f32::NEG_INFINITY, 0usize);
            for j in 0..self.c {
                let s = self.b[j]
                    + row
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (v - self.mean[i]) * self.inv_std[i] * self.w[i * self.c + j])
                        .sum::<f32>();
                if s > best.0 {
                    best = (s, j);
                }
            }
            correct += usize::from(best.1 as i32 == label);
        }
        correct as f64 / y.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two well-separated clusters: both classifiers get them all right, and
    /// a shuffled labelling brings k-NN to chance.
    #[test]
    fn separable_clusters_are_classified() {
        let d = 4;
        let mut x = vec![];
        let mut y = vec![];
        for i in 0..40 {
            let c = i % 2;
            let s = if c == 0 { 1.0 } else { -1.0 };
            x.extend_from_slice(&[s, s * 0.5, 0.1 * (i as f32 % 3.0), 1.0]);
            y.push(c);
        }
        assert_eq!(knn_accuracy((&x, &y), (&x, &y), d, 5, 2, 0.07), 1.0);
        let probe = fit_linear_probe(&x, &y, d, 2, 1e-4, 50);
        assert_eq!(probe.accuracy(&x, &y), 1.0);
    }
}
