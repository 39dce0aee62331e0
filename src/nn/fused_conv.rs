//! Fused CPU kernels for conv nets: convolution, max-pooling and ReLU, with their own
//! backward on dfdx's tape.
//!
//! The composed path (`nn::conv`: dfdx's `gather` on index tensors, then a matmul) built an
//! index per value of every receptive field on every call (1.4 million for a LeNet's first
//! layer at batch 100), scattered gradients back one index at a time and differentiated
//! every operand: a LeNet trained at a seventh of PyTorch's speed. Here each example is one
//! task on rayon's threads: its receptive fields are copied into a scratch matrix that stays
//! in cache (im2col, `[field, positions]`, whole rows of the input at stride 1) and one
//! single-threaded gemm writes `W^T cols + b` straight into the example's channel-major
//! output. The backward recomputes the example's fields rather than keeping the batch's,
//! and computes only what [`Needs`] asks for: the weight gradient (summed per fixed chunk
//! of examples and then over chunks in order, so the result does not depend on the number
//! of threads) and the input gradient (`W dY`, added back through the fields: col2im).
//! [`max_pool`] remembers each window's winner, so its backward is a scatter; [`relu`] is
//! one pass each way. Each op is checked against the composed dfdx version in this file's
//! tests, and by the layers' finite-difference checks.

use super::conv::Window;
use super::fused::{gemm_on, gradient_of, values, ELEMENTS_PER_TASK};
use super::model::{Affine, Dev, Matrix, Needs};
use dfdx::prelude::*;
use rayon::prelude::*;

/// Examples per chunk whose weight gradients one task adds up; fixed so that the order of
/// the sums, and with it the bits of the result, is the same on any number of threads.
const EXAMPLES_PER_CHUNK: usize = 8;

/// The sum of `values` in 16 interleaved partial sums, which the compiler keeps in vector
/// registers (a plain `sum` is one chain of dependent scalar additions: it had taken a
/// tenth of a LeNet's training step, for its biases' gradients).
fn lane_sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// The output positions `lo..hi` (along one axis of `out` positions) whose input coordinate
/// `position * stride + offset - padding` falls inside `0..len`.
fn inside(out: usize, len: usize, stride: usize, offset: usize, padding: usize) -> (usize, usize) {
    let lo = if offset >= padding {
        0
    } else {
        (padding - offset).div_ceil(stride)
    };
    let hi = if offset > len - 1 + padding {
        0
    } else {
        ((len - 1 + padding - offset) / stride + 1).min(out)
    };
    (lo.min(hi), hi)
}

/// Walks one example's receptive fields: for every field row `r` (channel, kernel row,
/// kernel column) and output row `oy`, hands `visit` the `ow` entries of `cols` at
/// `r * positions + oy * ow`, the input row they read (`None` in the padding) and the
/// inside range of output columns with the input column of the first.
fn each_run(window: &Window, (oh, ow): (usize, usize), mut visit: impl FnMut(usize, Option<usize>, (usize, usize), usize)) {
    let Window {
        channels,
        height,
        width,
        size,
        stride,
        padding,
    } = *window;
    for c in 0..channels {
        for ky in 0..size {
            for kx in 0..size {
                let r = (c * size + ky) * size + kx;
                let (lo, hi) = inside(ow, width, stride, kx, padding);
                let x0 = (lo * stride + kx).saturating_sub(padding);
                for oy in 0..oh {
                    let y = oy * stride + ky;
                    let row = (y >= padding && y - padding < height).then(|| (c * height + y - padding) * width);
                    visit((r * oh + oy) * ow, row, (lo, hi), x0);
                }
            }
        }
    }
}

/// One example's receptive fields as a `[field, positions]` matrix (im2col), zeros where a
/// window hangs over the padding.
fn im2col(window: &Window, out: (usize, usize), x: &[f32], cols: &mut [f32]) {
    let (stride, ow) = (window.stride, out.1);
    if stride == 1 && window.padding == 0 {
        return im2col_unpadded(window, out, x, cols);
    }
    each_run(window, out, |at, row, (lo, hi), x0| {
        let run = &mut cols[at..at + ow];
        let Some(row) = row else {
            run.fill(0.0);
            return;
        };
        run[..lo].fill(0.0);
        run[hi..].fill(0.0);
        if stride == 1 {
            copy_short(&mut run[lo..hi], &x[row + x0..row + x0 + hi - lo]);
        } else {
            for (i, v) in run[lo..hi].iter_mut().enumerate() {
                *v = x[row + x0 + i * stride];
            }
        }
    });
}

/// [`im2col`] at stride 1 without padding (a LeNet's layers): every run a whole row of the
/// window's input, copied in one tight loop.
fn im2col_unpadded(window: &Window, (oh, ow): (usize, usize), x: &[f32], cols: &mut [f32]) {
    let (height, width, size) = (window.height, window.width, window.size);
    let mut runs = cols.chunks_exact_mut(ow);
    for c in 0..window.channels {
        for ky in 0..size {
            for kx in 0..size {
                for oy in 0..oh {
                    let from = (c * height + oy + ky) * width + kx;
                    copy_short(runs.next().expect("cols holds field x positions"), &x[from..from + ow]);
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (a row of the output, 8 or 24
/// values in a LeNet) with inline vector moves: `copy_from_slice`, and any copy loop the
/// compiler recognises, becomes a call to the C library's `memcpy`, whose overhead on runs
/// this short had cost a tenth of a training step.
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_loadu_ps, _mm_storeu_ps};
        let blocks = dst.len() / 4;
        for i in (0..blocks * 4).step_by(4) {
            // SAFETY: i + 4 <= len of both slices (asserted equal); SSE is part of every
            // x86_64 target; the loads and stores are unaligned ones.
            unsafe { _mm_storeu_ps(dst.as_mut_ptr().add(i), _mm_loadu_ps(src.as_ptr().add(i))) };
        }
        #[allow(clippy::manual_memcpy, reason = "copy_from_slice is the memcpy call this avoids")]
        for i in blocks * 4..dst.len() {
            dst[i] = src[i];
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// Adds a `[field, positions]` gradient back onto the input it was gathered from (col2im);
/// the padding's share is dropped.
fn col2im_add(window: &Window, out: (usize, usize), cols: &[f32], gx: &mut [f32]) {
    let stride = window.stride;
    if stride == 1 && window.padding == 0 {
        // As im2col_unpadded: each run a whole row of the window's input, in one tight loop.
        let (height, width, size, (oh, ow)) = (window.height, window.width, window.size, out);
        let mut runs = cols.chunks_exact(ow);
        for c in 0..window.channels {
            for ky in 0..size {
                for kx in 0..size {
                    for oy in 0..oh {
                        let from = (c * height + oy + ky) * width + kx;
                        let run = runs.next().expect("cols holds field x positions");
                        for (gx, g) in gx[from..from + ow].iter_mut().zip(run) {
                            *gx += g;
                        }
                    }
                }
            }
        }
        return;
    }
    each_run(window, out, |at, row, (lo, hi), x0| {
        let Some(row) = row else { return };
        let run = &cols[at + lo..at + hi];
        if stride == 1 {
            for (gx, g) in gx[row + x0..row + x0 + run.len()].iter_mut().zip(run) {
                *gx += g;
            }
        } else {
            for (i, g) in run.iter().enumerate() {
                gx[row + x0 + i * stride] += g;
            }
        }
    });
}

/// Convolution of a batch `x` (`[n, c * h * w]`, channel-major) with `p.weight`
/// (`[c * size * size, filters]`) and `p.bias` (`[filters]`): `[n, filters * oh * ow]`.
pub fn conv2d<T: Tape<f32, Dev>>(x: Matrix<T>, window: &Window, p: &Affine, needs: Needs) -> Matrix<T> {
    let n = x.shape().0;
    let out = window.output().expect("checked when the net was built");
    let positions = out.0 * out.1;
    let (field, filters) = *p.weight().shape();
    let in_len = window.channels * window.height * window.width;
    debug_assert_eq!(x.shape().1, in_len);
    let (x, mut tape) = x.split_tape();
    let (weight, bias) = (values(p.weight()), values(&p.bias));
    let mut y = vec![0.0f32; n * filters * positions];
    y.par_chunks_mut(filters * positions)
        .zip(values(&x).par_chunks(in_len))
        .for_each_init(
            || vec![0.0f32; field * positions],
            |cols, (y, x)| convolve_example(window, out, x, weight, bias, cols, y),
        );
    let y = x.device().tensor_from_vec(y, (n, filters * positions));
    let y_ghost = y.ghost();
    let (window, weight, bias) = (*window, p.weight().clone(), p.bias.clone());
    tape.add_backward_op(move |grads| {
        // SAFETY: only the input's and the parameters' gradients are touched below.
        let gy = unsafe { gradient_of!(grads, &y_ghost) };
        let (input, w) = (values(&x), values(&weight));
        if needs.params {
            let chunk_sums: Vec<Vec<f32>> = gy
                .par_chunks(EXAMPLES_PER_CHUNK * filters * positions)
                .zip(input.par_chunks(EXAMPLES_PER_CHUNK * in_len))
                .map(|(gy, x)| {
                    let mut sums = vec![0.0f32; field * filters + filters];
                    let mut cols = vec![0.0f32; field * positions];
                    for (gy, x) in gy.chunks_exact(filters * positions).zip(x.chunks_exact(in_len)) {
                        add_param_gradients(&window, out, x, gy, &mut cols, &mut sums);
                    }
                    sums
                })
                .collect();
            add_weight_sums(grads.get_or_alloc_mut(&weight)?, &chunk_sums, field, filters);
            add_bias_sums(grads.get_or_alloc_mut(&bias)?, &chunk_sums);
        }
        if needs.input {
            let gx = grads.get_or_alloc_mut(&x)?;
            gx.par_chunks_mut(in_len).zip(gy.par_chunks(filters * positions)).for_each_init(
                || vec![0.0f32; field * positions],
                |cols, (gx, gy)| add_input_gradient(&window, out, w, gy, cols, gx),
            );
        }
        Ok(())
    });
    y.put_tape(tape)
}

/// A winner that takes no gradient: its window's largest value was not positive, so the
/// ReLU before the pooling passed nothing back.
const NO_WINNER: u32 = u32::MAX;

/// `max_pool(relu(conv2d(x)))` in one pass per example, with the same values and gradients
/// to the bit as the three kernels above one after the other (the test says so): the
/// convolution's output lives in a per-example scratch buffer and never goes to memory as a
/// batch, so the ReLU's and the pooling's passes over it (four times the pooled output, both
/// ways) cost nothing. Backward, each example's pooled gradient is scattered into a scratch
/// buffer of the convolution's shape, which then goes through [`conv2d`]'s backward.
pub fn conv_relu_pool<T: Tape<f32, Dev>>(x: Matrix<T>, window: &Window, p: &Affine, pool: &Window, needs: Needs) -> Matrix<T> {
    let n = x.shape().0;
    let out = window.output().expect("checked when the net was built");
    let (pooled_h, pooled_w) = pool.output().expect("checked when the net was built");
    let positions = out.0 * out.1;
    let (field, filters) = *p.weight().shape();
    debug_assert_eq!((pool.channels, pool.height, pool.width, pool.padding), (filters, out.0, out.1, 0));
    let in_len = window.channels * window.height * window.width;
    let (conv_len, out_len) = (filters * positions, filters * pooled_h * pooled_w);
    let (x, mut tape) = x.split_tape();
    let (weight, bias) = (values(p.weight()), values(&p.bias));
    let mut y = vec![0.0f32; n * out_len];
    let mut winners = vec![0u32; n * out_len];
    y.par_chunks_mut(out_len)
        .zip(winners.par_chunks_mut(out_len))
        .zip(values(&x).par_chunks(in_len))
        .for_each_init(
            || (vec![0.0f32; field * positions], vec![0.0f32; conv_len]),
            |(cols, conv), ((y, winners), x)| {
                convolve_example(window, out, x, weight, bias, cols, conv);
                relu_pool(pool, (pooled_h, pooled_w), conv, y, winners);
            },
        );
    let y = x.device().tensor_from_vec(y, (n, out_len));
    let y_ghost = y.ghost();
    let (window, weight, bias) = (*window, p.weight().clone(), p.bias.clone());
    tape.add_backward_op(move |grads| {
        // SAFETY: only the input's and the parameters' gradients are touched below.
        let gy = unsafe { gradient_of!(grads, &y_ghost) };
        let (input, w) = (values(&x), values(&weight));
        let chunks = n.div_ceil(EXAMPLES_PER_CHUNK);
        let gx_parts: Vec<Option<&mut [f32]>> = if needs.input {
            grads
                .get_or_alloc_mut(&x)?
                .chunks_mut(EXAMPLES_PER_CHUNK * in_len)
                .map(Some)
                .collect()
        } else {
            (0..chunks).map(|_| None).collect()
        };
        // Per chunk of examples, its sums of the weight and bias gradients.
        let chunk_sums: Vec<Vec<f32>> = gx_parts
            .into_par_iter()
            .enumerate()
            .map(|(chunk, mut gx)| {
                let mut sums = vec![0.0f32; if needs.params { field * filters + filters } else { 0 }];
                let (mut cols, mut conv) = (vec![0.0f32; field * positions], vec![0.0f32; conv_len]);
                let first = chunk * EXAMPLES_PER_CHUNK;
                for b in first..n.min(first + EXAMPLES_PER_CHUNK) {
                    conv.fill(0.0);
                    let at = b * out_len..(b + 1) * out_len;
                    for (&winner, &g) in winners[at.clone()].iter().zip(&gy[at]) {
                        if winner != NO_WINNER {
                            conv[winner as usize] += g;
                        }
                    }
                    if needs.params {
                        add_param_gradients(&window, out, &input[b * in_len..(b + 1) * in_len], &conv, &mut cols, &mut sums);
                    }
                    if let Some(gx) = gx.as_deref_mut() {
                        let example = b - first;
                        add_input_gradient(&window, out, w, &conv, &mut cols, &mut gx[example * in_len..(example + 1) * in_len]);
                    }
                }
                sums
            })
            .collect();
        if needs.params {
            add_weight_sums(grads.get_or_alloc_mut(&weight)?, &chunk_sums, field, filters);
            add_bias_sums(grads.get_or_alloc_mut(&bias)?, &chunk_sums);
        }
        Ok(())
    });
    y.put_tape(tape)
}

/// One example's max-pooling of `relu(conv)` into `y`, each window's winner (an offset into
/// `conv`) into `winners`: the first largest of the ReLU's outputs, as [`max_pool`] after
/// [`relu`] picks it, and [`NO_WINNER`] where that is a zero.
fn relu_pool(pool: &Window, (oh, ow): (usize, usize), conv: &[f32], y: &mut [f32], winners: &mut [u32]) {
    if pool.size == 2 && pool.stride == 2 {
        return relu_pool_2x2(pool, (oh, ow), conv, y, winners);
    }
    each_window(
        pool,
        (oh, ow),
        conv,
        |v| v.max(0.0),
        |at, best, winner| {
            y[at] = best;
            winners[at] = if best > 0.0 { winner as u32 } else { NO_WINNER };
        },
    );
}

/// Every pooling window of one example's `x` (`[channels, height, width]`, no padding), in
/// output order: hands `emit` the output's index, the first largest of `activation` over the
/// window, and that value's offset in `x`.
#[inline(always)]
fn each_window(
    pool: &Window,
    (oh, ow): (usize, usize),
    x: &[f32],
    activation: impl Fn(f32) -> f32,
    mut emit: impl FnMut(usize, f32, usize),
) {
    let Window {
        channels,
        height,
        width,
        size,
        stride,
        ..
    } = *pool;
    let mut at = 0;
    for c in 0..channels {
        for oy in 0..oh {
            for ox in 0..ow {
                let first = (c * height + oy * stride) * width + ox * stride;
                let (mut best, mut winner) = (activation(x[first]), first);
                for ky in 0..size {
                    let row = first + ky * width;
                    for (kx, &v) in x[row..row + size].iter().enumerate() {
                        let v = activation(v);
                        if v > best {
                            (best, winner) = (v, row + kx);
                        }
                    }
                }
                emit(at, best, winner);
                at += 1;
            }
        }
    }
}

/// [`relu_pool`] for the common 2x2 window at stride 2, the same choices: two rows at a
/// time, and selects the compiler makes without branches (which of four values wins is a
/// coin toss that the general loop's branches kept mispredicting).
fn relu_pool_2x2(pool: &Window, (oh, ow): (usize, usize), conv: &[f32], y: &mut [f32], winners: &mut [u32]) {
    let (height, width) = (pool.height, pool.width);
    for c in 0..pool.channels {
        for oy in 0..oh {
            let top = (c * height + 2 * oy) * width;
            let (upper, lower) = (&conv[top..top + width], &conv[top + width..top + 2 * width]);
            let at = (c * oh + oy) * ow;
            let (y, winners) = (&mut y[at..at + ow], &mut winners[at..at + ow]);
            let done = relu_pool_2x2_by_four(upper, lower, y, winners, top);
            for (ox, (y, winner)) in y.iter_mut().zip(winners.iter_mut()).enumerate().skip(done) {
                let left = 2 * ox;
                let mut best = upper[left].max(0.0);
                let mut offset = top + left;
                for (v, o) in [
                    (upper[left + 1], top + left + 1),
                    (lower[left], top + width + left),
                    (lower[left + 1], top + width + left + 1),
                ] {
                    let v = v.max(0.0);
                    let wins = v > best;
                    best = if wins { v } else { best };
                    offset = if wins { o } else { offset };
                }
                *y = best;
                *winner = if best > 0.0 { offset as u32 } else { NO_WINNER };
            }
        }
    }
}

/// One example's convolution into `y` (`[filters, positions]`): its fields into `cols`
/// (im2col), then `Y = W^T cols + b` by one single-threaded gemm on the bias-filled rows.
fn convolve_example(window: &Window, out: (usize, usize), x: &[f32], weight: &[f32], bias: &[f32], cols: &mut [f32], y: &mut [f32]) {
    let positions = out.0 * out.1;
    let (filters, field) = (bias.len(), cols.len() / positions);
    im2col(window, out, x, cols);
    for (row, b) in y.chunks_exact_mut(positions).zip(bias) {
        row.fill(*b);
    }
    // Y [filters, positions] += W^T [filters, field] cols [field, positions]
    gemm_on(
        gemm::Parallelism::None,
        (filters, positions, field),
        y,
        true,
        weight,
        (filters, 1),
        cols,
        (1, positions),
    );
}

/// Adds one example's parameter gradients to `sums` (`[filters, field]`, then `[filters]`):
/// `dW^T += dY cols^T` with the example's fields recomputed into `cols`, and `db += dY`
/// summed over positions. The transposed product gives gemm's micro-kernel the long side
/// (`field`) as its rows.
fn add_param_gradients(window: &Window, out: (usize, usize), x: &[f32], gy: &[f32], cols: &mut [f32], sums: &mut [f32]) {
    let positions = out.0 * out.1;
    let filters = gy.len() / positions;
    let field = cols.len() / positions;
    im2col(window, out, x, cols);
    let (dw, db) = sums.split_at_mut(field * filters);
    // dW^T [filters, field] += dY [filters, positions] cols^T [positions, field]
    gemm_on(
        gemm::Parallelism::None,
        (filters, field, positions),
        dw,
        true,
        gy,
        (1, positions),
        cols,
        (positions, 1),
    );
    for (db, row) in db.iter_mut().zip(gy.chunks_exact(positions)) {
        *db += lane_sum(row);
    }
}

/// Adds one example's input gradient to `gx`: `dcols = W dY` into `cols`, then added back
/// through the fields (col2im).
fn add_input_gradient(window: &Window, out: (usize, usize), w: &[f32], gy: &[f32], cols: &mut [f32], gx: &mut [f32]) {
    let positions = out.0 * out.1;
    let (filters, field) = (gy.len() / positions, cols.len() / positions);
    // dcols [field, positions] = W [field, filters] dY [filters, positions]
    gemm_on(
        gemm::Parallelism::None,
        (field, positions, filters),
        cols,
        false,
        w,
        (1, filters),
        gy,
        (1, positions),
    );
    col2im_add(window, out, cols, gx);
}

/// Adds the per-chunk sums of [`add_param_gradients`] to the weight gradient `gw` (`[field,
/// filters]`; the sums hold it transposed), chunk by chunk in order.
fn add_weight_sums(gw: &mut [f32], chunk_sums: &[Vec<f32>], field: usize, filters: usize) {
    for sums in chunk_sums {
        for (r, row) in gw.chunks_exact_mut(filters).enumerate() {
            for (f, g) in row.iter_mut().enumerate() {
                *g += sums[f * field + r];
            }
        }
    }
}

/// Adds the per-chunk sums of [`add_param_gradients`] to the bias gradient `gb` (the last
/// `gb.len()` values of each chunk's sums), chunk by chunk in order.
fn add_bias_sums(gb: &mut [f32], chunk_sums: &[Vec<f32>]) {
    let filters = gb.len();
    for sums in chunk_sums {
        for (g, s) in gb.iter_mut().zip(&sums[sums.len() - filters..]) {
            *g += s;
        }
    }
}

/// [`relu_pool_2x2`]'s outputs four at a time in SSE registers (part of every x86_64
/// target), the same comparisons in the same order: one pooled row from the conv rows
/// `upper` and `lower` (which start at offset `top`), as far as whole groups of four reach;
/// returns how many outputs it wrote, the rest being left to the scalar loop.
#[cfg(target_arch = "x86_64")]
fn relu_pool_2x2_by_four(upper: &[f32], lower: &[f32], y: &mut [f32], winners: &mut [u32], top: usize) -> usize {
    use std::arch::x86_64::*;
    let groups = y.len() / 4;
    let width = upper.len();
    assert!(lower.len() == width && 8 * groups <= width && winners.len() == y.len());
    for g in 0..groups {
        let mut picks = [0i32; 4];
        // SAFETY: the loads read upper and lower at 8g..8g + 8 <= width (asserted), the store
        // writes y at 4g..4g + 4 <= y.len(); all unaligned; SSE and SSE2 are x86_64's baseline.
        unsafe {
            let zero = _mm_setzero_ps();
            let split = |row: &[f32]| {
                let (a, b) = (_mm_loadu_ps(row.as_ptr().add(8 * g)), _mm_loadu_ps(row.as_ptr().add(8 * g + 4)));
                (
                    _mm_max_ps(_mm_shuffle_ps::<0b10_00_10_00>(a, b), zero),
                    _mm_max_ps(_mm_shuffle_ps::<0b11_01_11_01>(a, b), zero),
                )
            };
            let ((upper_left, upper_right), (lower_left, lower_right)) = (split(upper), split(lower));
            let (mut best, mut pick) = (upper_left, _mm_setzero_si128());
            for (candidate, code) in [(upper_right, 1), (lower_left, 2), (lower_right, 3)] {
                let wins = _mm_cmpgt_ps(candidate, best);
                best = _mm_or_ps(_mm_and_ps(wins, candidate), _mm_andnot_ps(wins, best));
                let wins = _mm_castps_si128(wins);
                pick = _mm_or_si128(_mm_and_si128(wins, _mm_set1_epi32(code)), _mm_andnot_si128(wins, pick));
            }
            _mm_storeu_ps(y.as_mut_ptr().add(4 * g), best);
            _mm_storeu_si128(picks.as_mut_ptr() as *mut __m128i, pick);
        }
        for (lane, pick) in picks.into_iter().enumerate() {
            let ox = 4 * g + lane;
            let offset = top + 2 * ox + [0, 1, width, width + 1][pick as usize];
            winners[ox] = if y[ox] > 0.0 { offset as u32 } else { NO_WINNER };
        }
    }
    4 * groups
}

/// Elsewhere the scalar loop does every output.
#[cfg(not(target_arch = "x86_64"))]
fn relu_pool_2x2_by_four(_: &[f32], _: &[f32], _: &mut [f32], _: &mut [u32], _: usize) -> usize {
    0
}

/// Max-pooling each channel of a batch (no padding): `[n, c * oh * ow]`. The gradient goes
/// to the first largest value of each window, as PyTorch's does (dfdx's `max` gives it to
/// every tied value, which after a ReLU are the zeros of a dead window).
pub fn max_pool<T: Tape<f32, Dev>>(x: Matrix<T>, window: &Window) -> Matrix<T> {
    assert_eq!(window.padding, 0, "max_pool pads nothing");
    let n = x.shape().0;
    let (oh, ow) = window.output().expect("checked when the net was built");
    let channels = window.channels;
    let (in_len, out_len) = (channels * window.height * window.width, channels * oh * ow);
    let (x, mut tape) = x.split_tape();
    let mut y = vec![0.0f32; n * out_len];
    // Each output's winner, as an offset into its example's input.
    let mut winners = vec![0u32; n * out_len];
    y.par_chunks_mut(out_len)
        .zip(winners.par_chunks_mut(out_len))
        .zip(values(&x).par_chunks(in_len))
        .for_each(|((y, winners), x)| {
            each_window(
                window,
                (oh, ow),
                x,
                |v| v,
                |at, best, winner| {
                    y[at] = best;
                    winners[at] = winner as u32;
                },
            );
        });
    let y = x.device().tensor_from_vec(y, (n, out_len));
    let (y_ghost, x_ghost) = (y.ghost(), x.ghost());
    drop(x);
    tape.add_backward_op(move |grads| {
        // SAFETY: only the input's gradient is touched below.
        let gy = unsafe { gradient_of!(grads, &y_ghost) };
        let gx = grads.get_or_alloc_mut(&x_ghost)?;
        gx.par_chunks_mut(in_len)
            .zip(gy.par_chunks(out_len))
            .zip(winners.par_chunks(out_len))
            .for_each(|((gx, gy), winners)| {
                for (&at, &g) in winners.iter().zip(gy) {
                    gx[at as usize] += g;
                }
            });
        Ok(())
    });
    y.put_tape(tape)
}

/// `max(0, x)`, with dfdx's derivative (1 where `x > 0`, else 0), in one pass each way on
/// every thread.
pub fn relu<T: Tape<f32, Dev>>(x: Matrix<T>) -> Matrix<T> {
    let shape = *x.shape();
    let (x, mut tape) = x.split_tape();
    let mut y = vec![0.0f32; shape.0 * shape.1];
    y.par_chunks_mut(ELEMENTS_PER_TASK)
        .zip(values(&x).par_chunks(ELEMENTS_PER_TASK))
        .for_each(|(y, x)| {
            for (y, x) in y.iter_mut().zip(x) {
                *y = x.max(0.0);
            }
        });
    let y = x.device().tensor_from_vec(y, shape);
    // The output says where the input was positive; a clone shares its storage.
    let (y_kept, x_ghost) = (y.clone(), x.ghost());
    drop(x);
    tape.add_backward_op(move |grads| {
        // SAFETY: only the input's gradient is touched below.
        let gy = unsafe { gradient_of!(grads, &y_kept) };
        let y = values(&y_kept);
        let gx = grads.get_or_alloc_mut(&x_ghost)?;
        gx.par_chunks_mut(ELEMENTS_PER_TASK)
            .zip(gy.par_chunks(ELEMENTS_PER_TASK))
            .zip(y.par_chunks(ELEMENTS_PER_TASK))
            .for_each(|((gx, gy), y)| {
                for ((gx, g), y) in gx.iter_mut().zip(gy).zip(y) {
                    if *y > 0.0 {
                        *gx += g;
                    }
                }
            });
        Ok(())
    });
    y.put_tape(tape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv;
    use rand::{Rng, SeedableRng};

    fn random(dev: &Dev, rng: &mut impl Rng, shape: (usize, usize)) -> Matrix {
        dev.tensor_from_vec((0..shape.0 * shape.1).map(|_| rng.gen_range(-1.0..1.0)).collect(), shape)
    }

    fn close(what: &str, a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{what} at {i}: fused {x}, composed {y}");
        }
    }

    /// conv -> relu -> max-pool, fused against dfdx's composed ops (`nn::conv` and `relu`):
    /// values and every gradient, for each choice of `needs`, over strides and paddings,
    /// with a batch that is not a multiple of the chunk.
    #[test]
    fn fused_conv_relu_and_pool_match_the_composed_ops() {
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for (channels, side, size, stride, padding, filters) in
            [(1, 9, 3, 1, 0, 4), (3, 8, 3, 2, 1, 5), (2, 7, 5, 1, 2, 3), (2, 6, 2, 3, 1, 2)]
        {
            let n = 11;
            let window = Window {
                channels,
                height: side,
                width: side + 1,
                size,
                stride,
                padding,
            };
            let (oh, ow) = window.output().unwrap();
            let pool = Window {
                channels: filters,
                height: oh,
                width: ow,
                size: 2.min(oh).min(ow),
                stride: 1,
                padding: 0,
            };
            let (ph, pw) = pool.output().unwrap();
            let x = random(&dev, &mut rng, (n, channels * side * (side + 1)));
            let p = Affine::new(
                random(&dev, &mut rng, (channels * size * size, filters)),
                random(&dev, &mut rng, (1, filters)).reshape_like(&(filters,)),
            );
            let upstream = random(&dev, &mut rng, (n, filters * ph * pw));
            let composed = {
                let h = conv::conv2d(x.clone().leaky_trace(), &window, p.weight(), &p.bias);
                let y = conv::max_pool(h.relu(), &pool);
                let value = y.as_vec();
                (value, (y * upstream.clone()).sum().backward())
            };
            for needs in [Needs::ALL, Needs::PARAMS, Needs::INPUT] {
                let what = format!("{window:?} {needs:?}");
                let y = max_pool(relu(conv2d(x.clone().leaky_trace(), &window, &p, needs)), &pool);
                close(&what, &y.as_vec(), &composed.0);
                let grads = (y * upstream.clone()).sum().backward();
                if needs.input {
                    close(&what, &grads.get(&x).as_vec(), &composed.1.get(&x).as_vec());
                }
                if needs.params {
                    close(&what, &grads.get(p.weight()).as_vec(), &composed.1.get(p.weight()).as_vec());
                    close(&what, &grads.get(&p.bias).as_vec(), &composed.1.get(&p.bias).as_vec());
                }
            }
        }
    }

    /// The fused run against the three kernels one after the other: the same bits, values
    /// and gradients, for each choice of `needs`.
    #[test]
    fn conv_relu_pool_equals_the_three_kernels_to_the_bit() {
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        for (channels, side, size, stride, padding, filters, pool_size, pool_stride) in [
            (1, 16, 5, 1, 0, 4, 2, 2),
            (2, 21, 3, 1, 0, 3, 2, 2),
            (3, 9, 3, 1, 1, 5, 3, 2),
            (2, 8, 3, 2, 1, 3, 2, 1),
        ] {
            let n = 19;
            let window = Window {
                channels,
                height: side,
                width: side,
                size,
                stride,
                padding,
            };
            let (oh, ow) = window.output().unwrap();
            let pool = Window {
                channels: filters,
                height: oh,
                width: ow,
                size: pool_size,
                stride: pool_stride,
                padding: 0,
            };
            let (ph, pw) = pool.output().unwrap();
            let x = random(&dev, &mut rng, (n, channels * side * side));
            let p = Affine::new(
                random(&dev, &mut rng, (channels * size * size, filters)),
                random(&dev, &mut rng, (1, filters)).reshape_like(&(filters,)),
            );
            let upstream = random(&dev, &mut rng, (n, filters * ph * pw));
            for needs in [Needs::ALL, Needs::PARAMS, Needs::INPUT] {
                let run = |fused: bool| {
                    let h = x.clone().leaky_trace();
                    let y = if fused {
                        conv_relu_pool(h, &window, &p, &pool, needs)
                    } else {
                        max_pool(relu(conv2d(h, &window, &p, needs)), &pool)
                    };
                    let value = y.as_vec();
                    let grads = (y * upstream.clone()).sum().backward();
                    let input = needs.input.then(|| grads.get(&x).as_vec());
                    let params = needs.params.then(|| (grads.get(p.weight()).as_vec(), grads.get(&p.bias).as_vec()));
                    (value, input, params)
                };
                assert_eq!(run(true), run(false), "{window:?} {pool:?} {needs:?}");
            }
        }
    }

    #[test]
    fn relu_equals_dfdx_relu_value_for_value() {
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let mut x = random(&dev, &mut rng, (3, 50_000));
        crate::nn::fused::values_mut(&mut x)[..4].copy_from_slice(&[0.0, -0.0, f32::NAN, 1e-40]);
        let upstream = random(&dev, &mut rng, (3, 50_000));
        let ours = relu(x.clone().leaky_trace());
        let theirs = x.clone().leaky_trace().relu();
        let (a, b) = (ours.as_vec(), theirs.as_vec());
        assert!(a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()));
        let ga = (ours * upstream.clone()).sum().backward().get(&x).as_vec();
        let gb = (theirs * upstream).sum().backward().get(&x).as_vec();
        assert_eq!(ga, gb);
    }

    #[test]
    fn max_pool_gives_a_tied_window_one_gradient() {
        let dev = Dev::default();
        let w = Window {
            channels: 1,
            height: 2,
            width: 4,
            size: 2,
            stride: 2,
            padding: 0,
        };
        let x: Matrix = dev.tensor_from_vec(vec![0.0, 0.0, 1.0, 3.0, 0.0, 0.0, 3.0, 2.0], (1, 8));
        let y = max_pool(x.leaky_trace(), &w);
        assert_eq!(y.as_vec(), vec![0.0, 3.0]);
        let g = y.sum::<(), Axes2<0, 1>>().backward().get(&x).as_vec();
        assert_eq!(g, vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], "the first largest of each window");
    }

    /// The weight gradient's bits do not depend on how many threads add it up.
    #[test]
    fn the_weight_gradient_is_the_same_on_one_thread_and_on_several() {
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let window = Window {
            channels: 2,
            height: 10,
            width: 10,
            size: 3,
            stride: 1,
            padding: 1,
        };
        let x = random(&dev, &mut rng, (37, 200));
        let p = Affine::new(random(&dev, &mut rng, (18, 4)), random(&dev, &mut rng, (1, 4)).reshape_like(&(4,)));
        let gradient = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let y = conv2d(x.clone().leaky_trace(), &window, &p, Needs::PARAMS);
                let grads = y.square().sum().backward();
                (grads.get(p.weight()).as_vec(), grads.get(&p.bias).as_vec())
            })
        };
        assert_eq!(gradient(1), gradient(3));
    }
}
