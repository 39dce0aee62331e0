//! The parameters of a layer that has any (`weight` `[in, out]`, `bias` `[out]`), and a
//! transposed copy of the weight kept for the attacks' many input gradients.
//!
//! An input gradient `dY W^T` reads the weight across its rows; gemm then repacks all of `W`
//! on every call, which made that product run at about half the speed of the forward one
//! (FGSM and PGD spend a third of their arithmetic there). With `W^T` stored row-major the
//! same product reads its rows in order, and gemm sums the same terms in the same order, so
//! the gradient keeps its bits (`fused.rs` tests this over many shapes). The copy is built
//! on the second input-gradient pass over unchanged weights, so a training step that
//! crafts once per update (adversarial training) never pays for it, and the weight can only
//! be changed through [`Affine::weight_mut`], which drops it: a stale copy cannot be read.

use super::model::{Matrix, Vector};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// The parameters of one layer that has any.
#[derive(Clone, Debug)]
pub struct Affine {
    /// `[in, out]`; private so that every change goes through [`Affine::weight_mut`].
    weight: Matrix,
    /// `[out]`
    pub bias: Vector,
    /// `weight` transposed, once built. Clones share it: a clone's weight is copy-on-write,
    /// and changing it through `weight_mut` gives that clone a fresh, empty cache.
    transposed: Arc<Transposed>,
}

impl Affine {
    /// Parameters from a `[in, out]` weight and a `[out]` bias.
    pub fn new(weight: Matrix, bias: Vector) -> Affine {
        Affine {
            weight,
            bias,
            transposed: Arc::default(),
        }
    }

    /// The weight, `[in, out]`.
    pub fn weight(&self) -> &Matrix {
        &self.weight
    }

    /// The weight, to change it; forgets the transposed copy.
    pub fn weight_mut(&mut self) -> &mut Matrix {
        self.transposed = Arc::default();
        &mut self.weight
    }

    /// The handle an input-gradient pass keeps to reach the transposed weight.
    #[cfg_attr(feature = "cuda", allow(dead_code))]
    pub(crate) fn transposed(&self) -> Arc<Transposed> {
        Arc::clone(&self.transposed)
    }
}

/// A weight's transposed copy, built on demand (see the module header).
#[derive(Default)]
pub(crate) struct Transposed {
    /// Input-gradient passes that asked for it before it existed.
    asked: AtomicU32,
    copy: OnceLock<Vec<f32>>,
}

/// Says whether the copy exists, not its values (a model's `Debug` would print them all).
impl std::fmt::Debug for Transposed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transposed").field("built", &self.copy.get().is_some()).finish()
    }
}

#[cfg_attr(feature = "cuda", allow(dead_code))]
impl Transposed {
    /// `W^T` (`[out, in]`, row-major) of the `[rows, cols]` row-major `weight` this cache
    /// belongs to, or `None` on the first request (one input gradient does not repay the
    /// copy).
    pub(crate) fn of(&self, weight: &[f32], rows: usize, cols: usize) -> Option<&[f32]> {
        if let Some(copy) = self.copy.get() {
            return Some(copy);
        }
        if self.asked.fetch_add(1, Ordering::Relaxed) == 0 {
            return None;
        }
        Some(self.copy.get_or_init(|| transpose(weight, rows, cols)))
    }
}

/// Side of the square tiles [`transpose`] moves: 16 x 16 floats read as 16 cache lines and
/// written as 16, where a row-at-a-time loop would touch a new line on every write.
#[cfg_attr(feature = "cuda", allow(dead_code))]
const TILE: usize = 16;

/// `[rows, cols]` row-major -> `[cols, rows]` row-major, tile by tile, in bands of output
/// rows across threads.
#[cfg_attr(feature = "cuda", allow(dead_code))]
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    use rayon::prelude::*;
    assert_eq!(m.len(), rows * cols);
    let mut out = vec![0.0f32; rows * cols];
    if rows == 0 {
        return out;
    }
    // One band: TILE rows of the output (TILE columns of the input).
    out.par_chunks_mut(TILE * rows).enumerate().for_each(|(band, out)| {
        let c0 = band * TILE;
        let width = out.len() / rows;
        for r0 in (0..rows).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                let row = &m[r * cols + c0..r * cols + c0 + width];
                for (c, &v) in row.iter().enumerate() {
                    out[c * rows + r] = v;
                }
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_moves_every_value_across_tile_edges() {
        for (rows, cols) in [(1, 1), (1, 17), (17, 1), (16, 16), (33, 50), (784, 40)] {
            let m: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = transpose(&m, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], m[r * cols + c], "{rows}x{cols} at ({r}, {c})");
                }
            }
        }
    }

    #[test]
    fn the_copy_is_built_on_the_second_request_and_dropped_by_weight_mut() {
        let dev = crate::nn::Dev::default();
        use dfdx::prelude::*;
        let w: Matrix = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3));
        let mut p = Affine::new(w, dev.zeros_like(&(3,)));
        let values = p.weight().as_vec();
        let cache = p.transposed();
        assert_eq!(cache.of(&values, 2, 3), None, "one pass does not repay the copy");
        assert_eq!(cache.of(&values, 2, 3), Some(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0][..]));
        let clone = p.clone();
        p.weight_mut().copy_from(&[0.0; 6]);
        assert!(p.transposed().copy.get().is_none(), "a changed weight has no copy");
        assert!(clone.transposed().copy.get().is_some(), "the unchanged clone keeps it");
    }

    /// The input gradient from the transposed copy has the bits of the one from the weight's
    /// columns: gemm sums the same terms in the same order whichever way its operand is
    /// laid out. Shapes cover gemm's small and threaded paths and odd edges.
    #[cfg(not(feature = "cuda"))]
    #[test]
    fn the_input_gradient_from_the_copy_has_the_same_bits() {
        use crate::nn::model::{Dev, Needs};
        use dfdx::prelude::*;
        use rand::{Rng, SeedableRng};
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut draw = |shape: (usize, usize)| -> Matrix {
            dev.tensor_from_vec((0..shape.0 * shape.1).map(|_| rng.gen_range(-1.0..1.0)).collect(), shape)
        };
        let shapes = [
            (100, 784, 1200),
            (100, 240, 1200),
            (500, 784, 10),
            (37, 300, 17),
            // The edges of `same_sums_either_way`, each side.
            (1, 784, 1200),
            (2, 784, 1200),
            (100, 1, 10),
            (100, 2, 10),
            (100, 784, 2),
            (100, 784, 3),
            (16, 16, 30),
            (16, 17, 30),
            (2, 129, 5),
            (3, 7, 10),
        ];
        for (n, k, o) in shapes {
            let (x, upstream) = (draw((n, k)), draw((n, o)));
            let p = Affine::new(draw((k, o)), dev.zeros_like(&(o,)));
            let gradient = || {
                let y = crate::nn::fused::affine(x.clone().leaky_trace(), &p, Needs::INPUT);
                (y * upstream.clone()).sum().backward().get(&x).as_vec()
            };
            let from_columns = gradient();
            assert!(p.transposed.copy.get().is_none());
            let from_copy = gradient();
            let used = crate::nn::fused::same_sums_either_way(n, k, o);
            assert_eq!(
                p.transposed.copy.get().is_some(),
                used,
                "n {n} k {k} o {o}: the second pass builds the copy"
            );
            let same = from_columns.iter().zip(&from_copy).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "n {n} k {k} o {o}");
        }
    }
}
