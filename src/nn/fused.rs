//! Fused CPU kernels for dense layers, with their own backward on dfdx's tape.
//!
//! dfdx's matmul differentiates both operands whatever the caller needs, so a training step
//! also paid for the gradient of the input batch (a quarter of its FLOPs on the paper's
//! maxout net) and crafting an FGSM example paid for every weight gradient (a third of its
//! FLOPs). [`affine`] computes `x W + b` with one gemm call (the bias preloaded into the
//! output) and its backward computes only the gradients [`Needs`] asks for, accumulating
//! straight into dfdx's gradient buffers. [`maxout`] takes the max over each unit's pieces
//! in one pass and remembers the winner, so its backward is a scatter instead of dfdx's
//! compare-against-the-max pass. [`sgd_momentum`] updates a parameter, its velocity and
//! (for the first layer) the L1 term in one pass over memory, reading the gradient where
//! dfdx left it instead of copying it out. Every op is checked against the composed dfdx
//! version in this file's tests and by the layers' finite-difference checks in `model.rs`.

use super::model::{Affine, Dev, Matrix, Needs};
use dfdx::prelude::*;
use rayon::prelude::*;

/// Elements per task of the element-wise passes split across threads.
pub(super) const ELEMENTS_PER_TASK: usize = 1 << 14;

/// The number of values of `t`, checked to be dense and row-major from `start`, the address
/// of its first element: dense storage puts the last element len - 1 places after the
/// first, row-major order the second element of the last axis right after the first.
fn dense_len<S: Shape, T>(t: &Tensor<S, f32, Dev, T>, start: *const f32) -> usize {
    let dims = t.shape().concrete();
    let len = t.shape().num_elements();
    let (mut last, mut second) = (S::Concrete::default(), S::Concrete::default());
    for (axis, size) in dims.into_iter().enumerate() {
        last[axis] = size - 1;
    }
    let inner = S::NUM_DIMS - 1;
    second[inner] = 1.min(dims[inner] - 1);
    let (end, next) = (&t[last] as *const f32 as usize, &t[second] as *const f32 as usize);
    let step = std::mem::size_of::<f32>();
    assert!(
        end - start as usize == (len - 1) * step && (dims[inner] == 1 || next - start as usize == step),
        "fused kernels take contiguous row-major tensors"
    );
    len
}

/// A contiguous tensor's values, read in place.
pub(super) fn values<S: Shape, T>(t: &Tensor<S, f32, Dev, T>) -> &[f32] {
    if t.shape().num_elements() == 0 {
        return &[];
    }
    let start: *const f32 = &t[S::Concrete::default()];
    let len = dense_len(t, start);
    // SAFETY: a dense tensor's len values start at its first element (dfdx tensors have no
    // offset), and `t` keeps the storage alive and unmodified (it is shared, copy-on-write)
    // for the returned lifetime.
    unsafe { std::slice::from_raw_parts(start, len) }
}

/// The gradient of `$y` as a slice read where dfdx keeps it, inside a backward op (`?` on
/// allocation failure): `Gradients::get` copies the whole buffer, which had cost the conv
/// nets' backward pass a tenth of its time. A macro because dfdx's `Tensorlike`, which
/// `get_or_alloc_mut` takes, cannot be named outside dfdx.
///
/// The caller's SAFETY argument: the slice is used only until its backward op returns, and
/// meanwhile only the gradients of other tensors are allocated or written (the gradient map
/// may move the buffer's owner, never its heap values, and nothing drops or resizes it).
macro_rules! gradient_of {
    ($grads:expr, $y:expr) => {{
        let buffer: &[f32] = $grads.get_or_alloc_mut($y)?;
        std::slice::from_raw_parts(buffer.as_ptr(), buffer.len())
    }};
}
pub(super) use gradient_of;

/// A contiguous tensor's values, writable in place (copy-on-write: shared storage is first
/// made unique, as dfdx does for its own in-place ops).
pub fn values_mut<S: Shape>(t: &mut Tensor<S, f32, Dev>) -> &mut [f32] {
    if t.shape().num_elements() == 0 {
        return &mut [];
    }
    // IndexMut first: making shared storage unique may move it.
    let start: *mut f32 = &mut t[S::Concrete::default()];
    let len = dense_len(t, start);
    // SAFETY: `t[first]` made the storage unique (IndexMut is copy-on-write), and a dense
    // tensor's len values start at its first element; `t` is borrowed mutably for the
    // returned lifetime, so nothing else reads or writes them meanwhile.
    unsafe { std::slice::from_raw_parts_mut(start, len) }
}

/// One SGD step with momentum, in one pass: `v = momentum v - lr (g + l1 sign(w))`, then
/// `w += v`.
pub fn sgd_momentum(w: &mut [f32], v: &mut [f32], g: &[f32], momentum: f32, lr: f32, l1: f32) {
    assert!(w.len() == v.len() && w.len() == g.len());
    for ((w, v), g) in w.iter_mut().zip(v.iter_mut()).zip(g) {
        let decay = if l1 == 0.0 { 0.0 } else { l1 * crate::tensor::sign(*w) };
        *v = momentum * *v - lr * (g + decay);
        *w += *v;
    }
}

/// Columns per thread below which [`sgd_momentum_matrix`] stays on one thread.
const MIN_COLUMNS_PER_THREAD: usize = 64;

/// [`sgd_momentum`] on a `[rows, cols]` row-major weight matrix, its columns split into one
/// block per thread. Every element's arithmetic is the one of [`sgd_momentum`], so the result
/// is bit-identical to one pass. With `norms` (`cols` long, zeroed) it also adds up each
/// column's squared L2 norm after the update, over the rows in order as
/// `train::step::clip_columns` does, which spares max-norm its own pass over the weights.
///
/// The update streams three arrays as large as the layer (4.9 MB each on the paper's
/// 240-unit maxout net), so one core's memory bandwidth bounded it: it took about as long as
/// the step's gemms.
#[allow(clippy::too_many_arguments)]
pub fn sgd_momentum_matrix(
    w: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    cols: usize,
    momentum: f32,
    lr: f32,
    l1: f32,
    norms: Option<&mut [f32]>,
) {
    use rayon::prelude::*;
    assert!(cols > 0 && w.len().is_multiple_of(cols) && w.len() == v.len() && w.len() == g.len());
    let rows = w.len() / cols;
    let norms_ptr = match norms {
        Some(n) => {
            assert_eq!(n.len(), cols);
            n.as_mut_ptr()
        }
        None => std::ptr::null_mut(),
    };
    let blocks = rayon::current_num_threads().min(cols / MIN_COLUMNS_PER_THREAD).max(1);
    let width = cols.div_ceil(blocks);
    let shared = Columns {
        w: w.as_mut_ptr(),
        v: v.as_mut_ptr(),
        g: g.as_ptr(),
        norms: norms_ptr,
    };
    let block = |b: usize| {
        let _flush = FlushDenormals::new();
        let (start, end) = (b * width, ((b + 1) * width).min(cols));
        for row in 0..rows {
            // SAFETY: blocks cover disjoint column ranges, so no element of w, v or norms
            // is reached from two blocks; every range lies inside the slices asserted
            // above, which this call borrows (mutably for w, v, norms) until it returns.
            let (w, v, g, n) = unsafe { shared.segment(row * cols + start, start, end - start) };
            sgd_momentum(w, v, g, momentum, lr, l1);
            if let Some(n) = n {
                for (n, w) in n.iter_mut().zip(w.iter()) {
                    *n += w * w;
                }
            }
        }
    };
    if blocks == 1 {
        block(0);
    } else {
        (0..blocks).into_par_iter().for_each(block);
    }
}

/// Subnormal floats treated and produced as zero on this thread until dropped (x86's FTZ and
/// DAZ bits), for the update pass.
///
/// Why: the velocities of weights whose gradient is zero (MNIST's border pixels, which are
/// almost always 0) shrink by the momentum every step and pass through the subnormal range,
/// where every multiply and add takes a microcode assist on x86; in the paper's maxout
/// recipe the update's share of the profile grew from 14% in the first epoch to 42% by the
/// fourth. Flushing cannot change a weight: `w + v` with `|v|` subnormal is `w` whenever
/// `|w| > 2^-100`, and `momentum * v - lr * g` equals `-lr * g` whenever `|lr * g| > 2^-100`;
/// a fit of four epochs of the recipe gives the same model bit for bit (see the README's
/// benchmark section). Other passes keep IEEE arithmetic.
struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    const FTZ_DAZ: u32 = 0x8040;

    fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let mut saved: u32 = 0;
            // SAFETY: stmxcsr/ldmxcsr read and write this thread's SSE control register
            // through a valid u32; the bits set only change how subnormals round, and `drop`
            // puts the register back.
            unsafe {
                std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved, options(nostack));
                let flushing = saved | Self::FTZ_DAZ;
                std::arch::asm!("ldmxcsr [{}]", in(reg) &flushing, options(nostack));
            }
            FlushDenormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushDenormals {}
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: restores the value read in `new` on this same thread.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &self.saved, options(nostack));
        }
    }
}

/// The raw parts [`sgd_momentum_matrix`] hands its blocks.
struct Columns {
    w: *mut f32,
    v: *mut f32,
    g: *const f32,
    norms: *mut f32,
}

impl Columns {
    /// `len` values of w, v and g from `at`, and of norms from `column`.
    ///
    /// # Safety
    /// The ranges must lie inside the arrays, and no other live slice may overlap them.
    #[allow(clippy::mut_from_ref, clippy::type_complexity)]
    unsafe fn segment(&self, at: usize, column: usize, len: usize) -> (&mut [f32], &mut [f32], &[f32], Option<&mut [f32]>) {
        (
            std::slice::from_raw_parts_mut(self.w.add(at), len),
            std::slice::from_raw_parts_mut(self.v.add(at), len),
            std::slice::from_raw_parts(self.g.add(at), len),
            (!self.norms.is_null()).then(|| std::slice::from_raw_parts_mut(self.norms.add(column), len)),
        )
    }
}

// SAFETY: the blocks that share a `Columns` touch disjoint elements (see its use).
unsafe impl Sync for Columns {}

/// `dst (m x n, row-major) = accumulate * dst + lhs (m x k) * rhs (k x n)`, each input given
/// by its slice and its column and row strides, on every thread.
fn gemm(
    shape: (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    let threads = gemm::Parallelism::Rayon(rayon::current_num_threads());
    gemm_on(threads, shape, dst, accumulate, lhs, lhs_strides, rhs, rhs_strides);
}

/// [`gemm`] on the given threads (`gemm::Parallelism::None` inside a task that is already
/// one of several running in parallel).
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_on(
    parallelism: gemm::Parallelism,
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    (lhs_cs, lhs_rs): (usize, usize),
    rhs: &[f32],
    (rhs_cs, rhs_rs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // Bounds the strided reads the unsafe call makes.
    assert!(dst.len() >= m * n);
    assert!(k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(k == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts above keep every access inside the three slices; `dst` does not
    // alias the inputs (it is a distinct &mut).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `x W + b` for a batch `x: [n, k]`, `W: [k, o]`, `b: [o]`; differentiates only what
/// `needs` asks for.
pub fn affine<T: Tape<f32, Dev>>(x: Matrix<T>, p: &Affine, needs: Needs) -> Matrix<T> {
    let (n, k) = *x.shape();
    let o = p.weight().shape().1;
    let (x, mut tape) = x.split_tape();
    let bias = values(&p.bias);
    let mut y: Vec<f32> = Vec::with_capacity(n * o);
    for _ in 0..n {
        y.extend_from_slice(bias);
    }
    gemm((n, o, k), &mut y, true, values(&x), (1, k), values(p.weight()), (1, o));
    let y = x.device().tensor_from_vec(y, (n, o));
    let y_ghost = y.ghost();
    let (weight, bias, transposed) = (p.weight().clone(), p.bias.clone(), p.transposed());
    tape.add_backward_op(move |grads| {
        // SAFETY: only the input's and the parameters' gradients are touched below.
        let gy = unsafe { gradient_of!(grads, &y_ghost) };
        if needs.input {
            // dX [n, k] += dY [n, o] W^T [o, k]: from W^T's rows when the weights stay put
            // (an attack's passes; same bits, see `Affine`), else from W's columns.
            let gx = grads.get_or_alloc_mut(&x)?;
            let w = values(&weight);
            let wt = if needs.params || !same_sums_either_way(n, k, o) {
                None
            } else {
                transposed.of(w, k, o)
            };
            match wt {
                Some(wt) => gemm((n, k, o), gx, true, gy, (1, o), wt, (1, k)),
                None => gemm((n, k, o), gx, true, gy, (1, o), w, (o, 1)),
            }
        }
        if needs.params {
            // dW [k, o] += X^T [k, n] dY [n, o]
            let gw = grads.get_or_alloc_mut(&weight)?;
            gemm((k, o, n), gw, true, values(&x), (k, 1), gy, (1, o));
            let gb = grads.get_or_alloc_mut(&bias)?;
            for row in gy.chunks_exact(o) {
                for (g, d) in gb.iter_mut().zip(row) {
                    *g += d;
                }
            }
        }
        Ok(())
    });
    y.put_tape(tape)
}

/// Whether gemm 0.19 sums `dY [n, o] W^T` in the same order from `W^T`'s rows as from `W`'s
/// columns: its general kernel does, but a single row or column goes to a gemv and a product
/// of at most 256 values to a dot-product kernel, each of which sums in its own order for
/// each layout. `affine.rs` tests both sides of each of these edges.
pub(super) fn same_sums_either_way(n: usize, k: usize, o: usize) -> bool {
    n >= 2 && k >= 2 && o >= 3 && n * k > 256
}

/// Maxout: `[n, units * pieces]` -> `[n, units]`, the largest of each unit's `pieces`
/// consecutive columns. The gradient goes to the first largest piece (dfdx's `max` splits it
/// among ties, which real-valued inputs practically never have).
pub fn maxout<T: Tape<f32, Dev>>(h: Matrix<T>, units: usize, pieces: usize) -> Matrix<T> {
    let (n, width) = *h.shape();
    debug_assert_eq!(width, units * pieces);
    let (h, mut tape) = h.split_tape();
    let input = values(&h);
    let mut out = vec![0.0f32; n * units];
    let mut winners = vec![0u32; n * units];
    // Rows per task: the pass is split across threads, which keeps the gemm's workers busy
    // between products instead of parked (their wake-ups were a tenth of FGSM's profile).
    let rows = (ELEMENTS_PER_TASK / width.max(1)).max(1);
    out.par_chunks_mut(rows * units)
        .zip(winners.par_chunks_mut(rows * units))
        .zip(input.par_chunks(rows * width))
        .enumerate()
        .for_each(|(task, ((out, winners), input))| {
            let base = task * rows * width;
            for (u, group) in input.chunks_exact(pieces).enumerate() {
                let (mut best, mut at) = (group[0], 0);
                for (p, &v) in group.iter().enumerate().skip(1) {
                    if v > best {
                        (best, at) = (v, p);
                    }
                }
                out[u] = best;
                winners[u] = (base + u * pieces + at) as u32;
            }
        });
    let y = h.device().tensor_from_vec(out, (n, units));
    let y_ghost = y.ghost();
    let h_ghost = h.ghost();
    drop(h);
    tape.add_backward_op(move |grads| {
        // SAFETY: only the input's gradient is touched below.
        let gy = unsafe { gradient_of!(grads, &y_ghost) };
        let gh = grads.get_or_alloc_mut(&h_ghost)?;
        gh.par_chunks_mut(rows * width)
            .zip(gy.par_chunks(rows * units))
            .zip(winners.par_chunks(rows * units))
            .enumerate()
            .for_each(|(task, ((gh, gy), winners))| {
                let base = task * rows * width;
                for (&at, &g) in winners.iter().zip(gy) {
                    gh[at as usize - base] += g;
                }
            });
        Ok(())
    });
    y.put_tape(tape)
}

/// Dropout (`p > 0`) exactly as dfdx's op followed by `* factor` computes it, value for
/// value: the seed drawn from the device's stream as dfdx draws it, the same Bernoulli mask
/// from `StdRng`, `x / (1 - p)` on the kept values, then the factor; the backward adds
/// `mask / (1 - p) * (gy * factor)` as the two ops' backwards do. One pass over contiguous
/// values instead of dfdx's strided iterator, and the mask is kept for the backward instead of
/// drawn again: dropout had cost the paper's maxout recipe half an epoch's time.
pub fn dropout<T: Tape<f32, Dev>>(h: Matrix<T>, p: f64, factor: Option<f32>) -> Matrix<T> {
    use dfdx::tensor::RandomU64;
    use rand::{rngs::StdRng, SeedableRng};
    use rand_distr::{Bernoulli, Distribution};
    let shape = *h.shape();
    let mut rng = StdRng::seed_from_u64(h.device().random_u64());
    let dist = Bernoulli::new(p).expect("0 < p < 1 (checked with the pipeline)");
    let (h, mut tape) = h.split_tape();
    let divisor = (1.0 - p) as f32;
    let mut kept: Vec<bool> = Vec::with_capacity(shape.0 * shape.1);
    let out: Vec<f32> = values(&h)
        .iter()
        .map(|&x| {
            let dropped = dist.sample(&mut rng);
            kept.push(!dropped);
            let y = if dropped { 0.0 } else { x / divisor };
            factor.map_or(y, |c| y * c)
        })
        .collect();
    let y = h.device().tensor_from_vec(out, shape);
    let (y_ghost, h_ghost) = (y.ghost(), h.ghost());
    drop(h);
    let recip = (1.0 - p).recip() as f32;
    tape.add_backward_op(move |grads| {
        // As dfdx's dropout: zeros when nothing downstream needed this gradient.
        // SAFETY: only the input's gradient is touched below.
        let gy = unsafe { gradient_of!(grads, &y_ghost) };
        let gh = grads.get_or_alloc_mut(&h_ghost)?;
        for ((gh, &g), &keep) in gh.iter_mut().zip(gy).zip(&kept) {
            let g = factor.map_or(g, |c| g * c);
            *gh += if keep { recip } else { 0.0 } * g;
        }
        Ok(())
    });
    y.put_tape(tape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_matrix_update_equals_one_pass_and_sums_the_column_norms_in_row_order() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let (rows, cols) = (37, 300);
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect() };
        let (w0, v0, g) = (draw(rows * cols), draw(rows * cols), draw(rows * cols));
        let (mut w1, mut v1) = (w0.clone(), v0.clone());
        sgd_momentum(&mut w1, &mut v1, &g, 0.7, 0.1, 0.01);
        let mut expected = vec![0.0f32; cols];
        for row in w1.chunks(cols) {
            for (n, w) in expected.iter_mut().zip(row) {
                *n += w * w;
            }
        }
        let (mut w2, mut v2, mut norms) = (w0, v0, vec![0.0f32; cols]);
        sgd_momentum_matrix(&mut w2, &mut v2, &g, cols, 0.7, 0.1, 0.01, Some(&mut norms));
        assert_eq!((w1, v1), (w2, v2));
        assert_eq!(norms, expected);
    }

    #[test]
    fn the_update_flushes_subnormal_velocities_and_puts_ieee_arithmetic_back() {
        let (mut w, mut v, g) = (vec![1.0f32; 128], vec![f32::MIN_POSITIVE; 128], vec![0.0f32; 128]);
        sgd_momentum_matrix(&mut w, &mut v, &g, 64, 0.5, 0.1, 0.0, None);
        assert!(w.iter().all(|&x| x == 1.0), "a subnormal step leaves a weight as it was");
        #[cfg(target_arch = "x86_64")]
        assert!(v.iter().all(|&x| x == 0.0), "0.5 * MIN_POSITIVE is subnormal: flushed");
        let half = std::hint::black_box(f32::MIN_POSITIVE) * std::hint::black_box(0.5f32);
        assert!(half > 0.0, "subnormals again once the update is done");
    }

    #[test]
    fn dropout_equals_dfdx_dropout_times_the_factor_value_for_value() {
        for (p, factor) in [(0.5, None), (0.2, Some(0.8f32)), (0.3, Some(2.5f32))] {
            let (ours_dev, theirs_dev) = (Dev::seed_from_u64(9), Dev::seed_from_u64(9));
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
            let x = random(&ours_dev, &mut rng, (7, 33));
            let gy = random(&ours_dev, &mut rng, (7, 33));
            let fused = dropout(x.clone().leaky_traced(), p, factor);
            let ours = fused.as_vec();
            let ours_grad = (fused * gy.clone()).sum().backward().get(&x).as_vec();
            let x2 = theirs_dev.tensor_from_vec(x.as_vec(), (7, 33));
            let composed = match factor {
                Some(c) => x2.clone().leaky_traced().dropout(p) * c,
                None => x2.clone().leaky_traced().dropout(p),
            };
            assert_eq!(ours, composed.as_vec(), "p {p} factor {factor:?}");
            let gy2 = theirs_dev.tensor_from_vec(gy.as_vec(), (7, 33));
            let theirs_grad = (composed * gy2).sum().backward().get(&x2).as_vec();
            assert_eq!(ours_grad, theirs_grad, "p {p} factor {factor:?}");
            assert!(ours.contains(&0.0) && ours.iter().any(|&v| v != 0.0));
        }
    }

    fn random(dev: &Dev, rng: &mut impl Rng, shape: (usize, usize)) -> Matrix {
        dev.tensor_from_vec((0..shape.0 * shape.1).map(|_| rng.gen_range(-1.0..1.0)).collect(), shape)
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "at {i}: fused {x}, composed {y}");
        }
    }

    #[test]
    fn sgd_momentum_matches_the_update_rule() {
        let (mut w, mut v, g) = (vec![1.0, -2.0, 0.0], vec![0.5, 0.0, -1.0], vec![0.1, 0.2, 0.3]);
        sgd_momentum(&mut w, &mut v, &g, 0.9, 0.1, 0.5);
        // v = .9 v - .1 (g + .5 sign(w)); w += v
        let expected_v = [0.45 - 0.1 * (0.1 + 0.5), -0.1 * (0.2 - 0.5), -0.9 - 0.1 * 0.3];
        for i in 0..3 {
            assert!((v[i] - expected_v[i]).abs() < 1e-6, "{v:?}");
        }
        assert!(
            (w[0] - (1.0 + expected_v[0])).abs() < 1e-6 && (w[2] - expected_v[2]).abs() < 1e-6,
            "{w:?}"
        );
    }

    #[test]
    fn values_mut_writes_through_and_copies_shared_storage_first() {
        let dev = Dev::default();
        let mut a: Matrix = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0], (2, 2));
        let b = a.clone();
        values_mut(&mut a)[3] = 9.0;
        assert_eq!(a.as_vec(), vec![1.0, 2.0, 3.0, 9.0]);
        assert_eq!(b.as_vec(), vec![1.0, 2.0, 3.0, 4.0], "the clone keeps its values");
    }

    /// The fused affine + maxout + affine against dfdx's composed ops: values and every
    /// gradient, for each choice of `needs`.
    #[test]
    fn fused_ops_match_the_composed_ones() {
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (n, k, units, pieces, o) = (7, 13, 4, 3, 5);
        let x = random(&dev, &mut rng, (n, k));
        let p1 = Affine::new(
            random(&dev, &mut rng, (k, units * pieces)),
            dev.tensor_from_vec((0..units * pieces).map(|_| rng.gen_range(-1.0..1.0)).collect(), (units * pieces,)),
        );
        let p2 = Affine::new(
            random(&dev, &mut rng, (units, o)),
            dev.tensor_from_vec((0..o).map(|_| rng.gen_range(-1.0..1.0)).collect(), (o,)),
        );
        let upstream = random(&dev, &mut rng, (n, o));

        let composed = {
            let t = x.clone().leaky_trace();
            let b1 = p1
                .bias
                .clone()
                .retaped::<OwnedTape<f32, Dev>>()
                .broadcast_like::<(usize, usize), Axis<0>>(&(n, units * pieces));
            let h = t.matmul(p1.weight().clone().retaped::<OwnedTape<f32, Dev>>()) + b1;
            let h = h.reshape_like(&(n, units, pieces)).max::<(usize, usize), Axis<2>>();
            let b2 = p2
                .bias
                .clone()
                .retaped::<OwnedTape<f32, Dev>>()
                .broadcast_like::<(usize, usize), Axis<0>>(&(n, o));
            let y = h.matmul(p2.weight().clone().retaped::<OwnedTape<f32, Dev>>()) + b2;
            let value = y.as_vec();
            let grads = (y * upstream.clone()).sum().backward();
            (value, grads)
        };
        for needs in [Needs::ALL, Needs::PARAMS, Needs::INPUT] {
            let t = x.clone().leaky_trace();
            let h = maxout(affine(t, &p1, needs), units, pieces);
            let y = affine(h, &p2, Needs { input: true, ..needs });
            close(&y.as_vec(), &composed.0);
            let grads = (y * upstream.clone()).sum().backward();
            if needs.input {
                close(&grads.get(&x).as_vec(), &composed.1.get(&x).as_vec());
            }
            if needs.params {
                for t in [p1.weight(), p2.weight()] {
                    close(&grads.get(t).as_vec(), &composed.1.get(t).as_vec());
                }
                for t in [&p1.bias, &p2.bias] {
                    close(&grads.get(t).as_vec(), &composed.1.get(t).as_vec());
                }
            }
        }
    }
}
