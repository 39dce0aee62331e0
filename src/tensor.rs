//! Slice helpers that sit below the layers, the attacks and the evaluations, so that none
//! of those has to reach into another for them: the sign and argmax of values, projections
//! onto L-infinity and L2 balls, row normalisation.

/// The index of the largest value (the first, on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

/// `-1`, `0` or `1`.
pub fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Pulls every value of `adv` back within `eps` of `x` (the L-infinity ball).
pub fn project_linf(adv: &mut [f32], x: &[f32], eps: f32) {
    for (a, &c) in adv.iter_mut().zip(x) {
        *a = a.clamp(c - eps, c + eps);
    }
}

/// Scales each row of `adv - x` down to L2 norm at most `eps` (the L2 ball).
pub fn project_l2(adv: &mut [f32], x: &[f32], eps: f32, width: usize) {
    for (a, c) in adv.chunks_mut(width).zip(x.chunks(width)) {
        let norm = a.iter().zip(c).map(|(p, q)| (p - q) * (p - q)).sum::<f32>().sqrt();
        if norm > eps {
            let scale = eps / norm;
            for (p, &q) in a.iter_mut().zip(c) {
                *p = q + (*p - q) * scale;
            }
        }
    }
}

/// The rows of `x` (each `width` values) at `rows`, in that order, as one batch: what an
/// attack that works only on the examples still standing feeds the model.
pub fn gather_rows(x: &[f32], rows: &[usize], width: usize) -> Vec<f32> {
    rows.iter().flat_map(|&r| x[r * width..(r + 1) * width].iter().copied()).collect()
}

/// Each row divided by its L2 norm (rows of zeros stay zero).
pub fn l2_normalize_rows(g: &mut [f32], width: usize) {
    for row in g.chunks_mut(width) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
}
