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

/// Values per task of [`sign_step_linf`].
const STEP_CHUNK: usize = 1 << 14;

/// One step of BIM and L-inf PGD in one pass over memory, split across threads:
/// `adv += alpha * sign(g)`, then [`project_linf`], then the clip range, each value's
/// arithmetic exactly that of the three passes one after another. Run on one thread between
/// two gradient passes, those passes had been a thirtieth of PGD's time with the gemm's
/// workers idle.
pub fn sign_step_linf(adv: &mut [f32], g: &[f32], x: &[f32], alpha: f32, eps: f32, clip: Option<[f32; 2]>) {
    use rayon::prelude::*;
    assert!(adv.len() == g.len() && adv.len() == x.len());
    adv.par_chunks_mut(STEP_CHUNK)
        .zip(g.par_chunks(STEP_CHUNK))
        .zip(x.par_chunks(STEP_CHUNK))
        .for_each(|((adv, g), x)| {
            for ((a, &g), &c) in adv.iter_mut().zip(g).zip(x) {
                let stepped = (*a + alpha * sign(g)).clamp(c - eps, c + eps);
                *a = match clip {
                    Some([lo, hi]) => stepped.clamp(lo, hi),
                    None => stepped,
                };
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_one_pass_step_equals_the_three_passes_bit_for_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let n = 3 * STEP_CHUNK + 17;
        let x: Vec<f32> = (0..n).map(|_| rng.gen_range(0.0..1.0)).collect();
        let start: Vec<f32> = x.iter().map(|v| v + rng.gen_range(-0.2..0.2)).collect();
        let mut g: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        g[5] = 0.0;
        for clip in [None, Some([0.0, 1.0])] {
            let mut expected = start.clone();
            expected.iter_mut().zip(&g).for_each(|(a, gi)| *a += 0.07 * sign(*gi));
            project_linf(&mut expected, &x, 0.1);
            if let Some([lo, hi]) = clip {
                expected.iter_mut().for_each(|v| *v = v.clamp(lo, hi));
            }
            let mut fused = start.clone();
            sign_step_linf(&mut fused, &g, &x, 0.07, 0.1, clip);
            assert!(
                fused.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()),
                "clip {clip:?}"
            );
            assert!(fused != start);
        }
    }
}
