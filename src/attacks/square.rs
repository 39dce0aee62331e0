//! `square(eps: 0.3, queries: 5000)`: the Square Attack (Andriushchenko, Croce, Flammarion &
//! Hein, "Square Attack: a query-efficient black-box adversarial attack via random search",
//! ECCV 2020), the score-based black-box attack of AutoAttack. It never takes a gradient: it
//! reads the model's scores only ([`AttackContext::scores`], which counts the queries), so a
//! model that hides its gradients does not hide from it.
//!
//! Random search on the ball's surface. L-infinity: start from vertical stripes (each column
//! of each channel `+-eps`); at every query, pick a square window of side
//! `s = round(sqrt(p * h * w))` at a random place and give it a new random `+-eps` per
//! channel; keep the change if it lowered the loss. L2: start from a grid of `h/5`-sided
//! tiles, each a pair of opposite "pseudo-Gaussian" bumps with a random sign, scaled to norm
//! `eps`; at every query, move the mass of a second random window into a first one (a new
//! bump added to the first window's old content, the second window zeroed) and rescale the
//! whole perturbation to norm `eps`. The share `p` of the image a window covers starts at
//! `p_init` (AutoAttack's 0.8) and halves at iterations 10, 50, 200, 500, 1000, 2000, 4000,
//! 6000 and 8000 of 10,000 (rescaled to `queries`). The loss is the margin `z_y - max_(j != y)
//! z_j` (untargeted) or the cross-entropy to the target; an example stops once fooled.
//!
//! For inputs that are not images (one dimension), windows are `1 x s` with `s = round(p w)`.
//! Positions are drawn among all that fit (the authors' code leaves out the last row and
//! column). The context counts the queries ([`AttackContext::queries`]); `evaluate` does not
//! report them yet.
//!
//! ```text
//! attack square_linf = square(eps: 0.3, queries: 5000)
//! attack square_l2   = square(eps: 2, norm: "l2")
//! ```

pub use super::pgd::Norm;
#[cfg(feature = "compute")]
use super::AttackContext;
use super::{params_from, Attack, AttackKind};
use crate::params::{Default, ParamDef, ParamType};
#[cfg(feature = "compute")]
use rand::Rng;
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "square",
    doc: "Square Attack (Andriushchenko et al. 2020): score-based black-box random search over square windows (L-inf or L2)",
    params: Square::PARAMS,
    build,
};

crate::declare_params! {
    /// The Square Attack's parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct Square {
        /// radius of the ball
        eps: f32 = ParamDef::required(ParamType::Number).range(0.0, 100.0),
        /// which ball
        norm: Norm = ParamDef::or(ParamType::Choice(&["linf", "l2"]), Default::Str("linf")),
        /// most model queries per example (AutoAttack's 5000)
        queries: usize = ParamDef::or(ParamType::Int, Default::Int(5000)).range(1.0, 1000000.0),
        /// the share of the image the first windows cover (AutoAttack's 0.8)
        p_init: f32 = ParamDef::or(ParamType::Number, Default::Number(0.8)).range(0.0, 1.0),
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    let square = params_from::<Square>(json)?;
    if square.p_init <= 0.0 {
        return Err("p_init must be above 0: it is the share of the image the windows cover".into());
    }
    Ok(Box::new(square))
}

/// The window share at iteration `it` of `total` (the authors' schedule, defined on 10,000).
pub fn window_share(p_init: f32, it: usize, total: usize) -> f32 {
    let at = (it as f64 / total.max(1) as f64 * 10000.0) as usize;
    let halvings = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]
        .iter()
        .filter(|&&mark| at > mark)
        .count();
    p_init / (1u32 << halvings) as f32
}

/// An example's layout: channels, height, width.
#[cfg(feature = "compute")]
#[derive(Clone, Copy)]
struct Layout {
    c: usize,
    h: usize,
    w: usize,
}

#[cfg(feature = "compute")]
impl Layout {
    fn of(shape: &[usize]) -> Layout {
        match *shape {
            [c, h, w] => Layout { c, h, w },
            [h, w] => Layout { c: 1, h, w },
            _ => Layout {
                c: 1,
                h: 1,
                w: shape.iter().product(),
            },
        }
    }

    /// A window's (height, width) for share `p` of the image, at least `least` a side
    /// where the image allows, and short of the image's side (the authors' `h - 1`).
    fn window(&self, p: f32, least: usize) -> (usize, usize) {
        if self.h == 1 {
            let s = ((p * self.w as f32).round() as usize).max(least);
            return (1, s.min(self.w.saturating_sub(1)).max(1));
        }
        let s = ((p * (self.h * self.w) as f32).sqrt().round() as usize).max(least);
        let s = s.min(self.h.min(self.w).saturating_sub(1)).max(1);
        (s, s)
    }

    fn index(&self, ch: usize, row: usize, col: usize) -> usize {
        (ch * self.h + row) * self.w + col
    }
}

/// The attacker's loss per row (lower is better) and whether the row is fooled.
#[cfg(feature = "compute")]
fn loss_and_fooled(ctx: &AttackContext, logits: &[f32], labels: &[usize]) -> Vec<(f32, bool)> {
    let classes = logits.len() / labels.len();
    logits
        .chunks(classes)
        .zip(labels)
        .map(|(z, &y)| {
            let other = super::largest_other(z, y);
            if ctx.is_targeted() {
                (ctx.model.top().example_loss(z, y), z[y] > other)
            } else {
                (z[y] - other, z[y] < other)
            }
        })
        .collect()
}

/// A bump of `rows x cols` whose rings around its centre weigh `1 / (ring + 1)^2`, unit norm
/// (the authors' `pseudo_gaussian_pert_rectangles`).
#[cfg(feature = "compute")]
fn bump(rows: usize, cols: usize) -> Vec<f32> {
    let (cr, cc) = (rows / 2, cols / 2);
    let mut out: Vec<f32> = (0..rows * cols)
        .map(|i| {
            let ring = (i / cols).abs_diff(cr).max((i % cols).abs_diff(cc));
            (ring..(rows / 2 + 1).max(cols / 2 + 1))
                .map(|k| 1.0 / ((k + 1) * (k + 1)) as f32)
                .sum()
        })
        .collect();
    normalize(&mut out);
    out
}

/// Two opposite bumps side by side, unit norm, transposed half the time when square (the
/// authors' `meta_pseudo_gaussian_pert`).
#[cfg(feature = "compute")]
fn bump_pair(rows: usize, cols: usize, rng: &mut impl Rng) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * cols];
    if rows >= 2 {
        let top = rows / 2;
        out[..top * cols].copy_from_slice(&bump(top, cols));
        out[top * cols..].iter_mut().zip(bump(rows - top, cols)).for_each(|(o, b)| *o = -b);
    } else {
        let left = (cols / 2).max(1);
        let (a, b) = (bump(1, left), bump(1, cols - left));
        out[..left].copy_from_slice(&a);
        out[left..].iter_mut().zip(b).for_each(|(o, v)| *o = -v);
    }
    normalize(&mut out);
    if rows == cols && rng.gen_bool(0.5) {
        out = (0..rows * cols).map(|i| out[(i % cols) * cols + i / cols]).collect();
    }
    out
}

/// Scales `v` to unit L2 norm (zeros, and an empty bump, stay as they are).
#[cfg(feature = "compute")]
fn normalize(v: &mut [f32]) {
    super::l2_normalize_rows(v, v.len().max(1));
}

#[cfg(feature = "compute")]
impl Square {
    /// The first perturbation of one example (before the clip).
    fn start(&self, layout: Layout, rng: &mut impl Rng) -> Vec<f32> {
        let Layout { c, h, w } = layout;
        let mut delta = vec![0.0f32; c * h * w];
        match self.norm {
            Norm::Linf => {
                for ch in 0..c {
                    for col in 0..w {
                        let v = if rng.gen_bool(0.5) { self.eps } else { -self.eps };
                        (0..h).for_each(|row| delta[layout.index(ch, row, col)] = v);
                    }
                }
            }
            Norm::L2 => {
                let (th, tw) = (
                    (h / 5).max(1),
                    if h == 1 {
                        (w / 5).max(1)
                    } else {
                        (w / 5).max(1).min((h / 5).max(1))
                    },
                );
                let (h0, w0) = ((h - th * (h / th)) / 2, (w - tw * (w / tw)) / 2);
                for ti in 0..h / th {
                    for tj in 0..w / tw {
                        let tile = bump_pair(th, tw, rng);
                        for ch in 0..c {
                            let sign = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
                            for (k, v) in tile.iter().enumerate() {
                                delta[layout.index(ch, h0 + ti * th + k / tw, w0 + tj * tw + k % tw)] += sign * v;
                            }
                        }
                    }
                }
                normalize(&mut delta);
                delta.iter_mut().for_each(|v| *v *= self.eps);
            }
        }
        delta
    }

    /// A candidate: `best`'s perturbation with one random window changed (before the clip).
    fn propose(&self, layout: Layout, x: &[f32], best: &[f32], p: f32, ctx: &mut AttackContext) -> Vec<f32> {
        let Layout { c, h, w } = layout;
        let mut delta: Vec<f32> = best.iter().zip(x).map(|(b, xi)| b - xi).collect();
        let place = |(sh, sw): (usize, usize), rng: &mut rand_chacha::ChaCha8Rng| (rng.gen_range(0..=h - sh), rng.gen_range(0..=w - sw));
        match self.norm {
            Norm::Linf => {
                let (sh, sw) = layout.window(p, 1);
                let (r0, c0) = place((sh, sw), &mut ctx.rng);
                let cells = |ch: usize| (0..sh * sw).map(move |k| layout.index(ch, r0 + k / sw, c0 + k % sw));
                // A new sign per channel, drawn again while it would not change the example
                // (its window already at that sign, or clipped to the same values).
                for _attempt in 0..32 {
                    for ch in 0..c {
                        let v = if ctx.rng.gen_bool(0.5) { self.eps } else { -self.eps };
                        cells(ch).for_each(|i| delta[i] = v);
                    }
                    let changes = |i: usize| {
                        let mut value = [x[i] + delta[i]];
                        ctx.clip(&mut value);
                        (value[0] - best[i]).abs() >= 1e-7
                    };
                    if (0..c).flat_map(cells).any(changes) {
                        break;
                    }
                }
            }
            Norm::L2 => {
                let (sh, sw) = layout.window(p, 3);
                let (sh, sw) = (
                    if sh % 2 == 0 && sh < h { sh + 1 } else { sh },
                    if sw % 2 == 0 && sw < w { sw + 1 } else { sw },
                );
                let first = place((sh, sw), &mut ctx.rng);
                let second = place((sh, sw), &mut ctx.rng);
                let norm_of = |d: &[f32], cells: &mut dyn Iterator<Item = usize>| cells.map(|i| d[i] * d[i]).sum::<f32>();
                let window = |(r0, c0): (usize, usize), ch: usize| (0..sh * sw).map(move |k| layout.index(ch, r0 + k / sw, c0 + k % sw));
                let total = delta.iter().map(|v| v * v).sum::<f32>();
                let bumps = bump_pair(sh, sw, &mut ctx.rng);
                for ch in 0..c {
                    let in_first = norm_of(&delta, &mut window(first, ch)).sqrt();
                    // The mass of both windows together (each cell once).
                    let mut both: Vec<usize> = window(first, ch).chain(window(second, ch)).collect();
                    both.sort_unstable();
                    both.dedup();
                    let in_both = norm_of(&delta, &mut both.into_iter());
                    let sign = if ctx.rng.gen_bool(0.5) { 1.0 } else { -1.0 };
                    let mut new: Vec<f32> = window(first, ch)
                        .zip(&bumps)
                        .map(|(i, b)| sign * b + delta[i] / (1e-10 + in_first))
                        .collect();
                    normalize(&mut new);
                    let room = ((self.eps * self.eps - total).max(0.0) / c as f32 + in_both).sqrt();
                    window(second, ch).for_each(|i| delta[i] = 0.0);
                    window(first, ch).zip(new).for_each(|(i, v)| delta[i] = v * room);
                }
                normalize(&mut delta);
                delta.iter_mut().for_each(|v| *v *= self.eps);
            }
        }
        x.iter().zip(&delta).map(|(a, d)| a + d).collect()
    }
}

#[cfg(feature = "compute")]
impl Attack for Square {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        if self.eps == 0.0 {
            return x.to_vec();
        }
        let width = ctx.model.input_width();
        let layout = Layout::of(ctx.model.input_shape());
        let rows = labels.len();
        let span = |r: usize| r * width..(r + 1) * width;
        // Examples already fooled are left as they are.
        let mut state = loss_and_fooled(ctx, &ctx.scores(x), labels);
        let open: Vec<usize> = (0..rows).filter(|&r| !state[r].1).collect();
        let mut best = x.to_vec();
        let mut start = x.to_vec();
        for &r in &open {
            let delta = self.start(layout, &mut ctx.rng);
            start[span(r)].iter_mut().zip(delta).for_each(|(a, d)| *a += d);
        }
        ctx.clip(&mut start);
        self.try_rows(ctx, &open, &start, labels, &mut best, &mut state, width, true);
        for it in 1..self.queries {
            let open: Vec<usize> = (0..rows).filter(|&r| !state[r].1).collect();
            if open.is_empty() {
                break;
            }
            let p = window_share(self.p_init, it - 1, self.queries);
            let mut candidates = vec![0.0f32; x.len()];
            for &r in &open {
                let mut c = self.propose(layout, &x[span(r)], &best[span(r)], p, ctx);
                ctx.clip(&mut c);
                candidates[span(r)].copy_from_slice(&c);
            }
            self.try_rows(ctx, &open, &candidates, labels, &mut best, &mut state, width, false);
        }
        best
    }
}

#[cfg(feature = "compute")]
impl Square {
    /// Scores the rows `open` of `candidates` (one query each) and keeps each one that lowers
    /// its row's loss (`always`: keep it regardless, for the start).
    #[allow(clippy::too_many_arguments)]
    fn try_rows(
        &self,
        ctx: &mut AttackContext,
        open: &[usize],
        candidates: &[f32],
        labels: &[usize],
        best: &mut [f32],
        state: &mut [(f32, bool)],
        width: usize,
        always: bool,
    ) {
        if open.is_empty() {
            return;
        }
        let batch: Vec<f32> = open
            .iter()
            .flat_map(|&r| candidates[r * width..(r + 1) * width].iter().copied())
            .collect();
        let their_labels: Vec<usize> = open.iter().map(|&r| labels[r]).collect();
        let scored = loss_and_fooled(ctx, &ctx.scores(&batch), &their_labels);
        for (&r, (a, now)) in open.iter().zip(scored.into_iter().enumerate()) {
            if always || now.0 < state[r].0 {
                state[r] = now;
                best[r * width..(r + 1) * width].copy_from_slice(&batch[a * width..(a + 1) * width]);
            }
        }
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::attacks::testing::{craft, model_and_batch, norms};
    use crate::nn::layers::linear::Linear;
    use crate::nn::{Dev, Model, NetSpec};
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn the_window_share_halves_on_the_authors_schedule() {
        assert_eq!(window_share(0.8, 0, 10000), 0.8);
        assert_eq!(window_share(0.8, 10, 10000), 0.8);
        assert_eq!(window_share(0.8, 11, 10000), 0.4);
        assert_eq!(window_share(0.8, 201, 10000), 0.1);
        assert_eq!(window_share(0.8, 9999, 10000), 0.8 / 512.0);
        // Rescaled to the budget: iteration 2500 of 5000 is 5000 of 10,000.
        assert_eq!(window_share(0.8, 2500, 5000), 0.8 / 128.0);
    }

    #[test]
    fn a_bump_pair_has_unit_norm_and_opposite_halves() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for (r, c) in [(5, 5), (3, 3), (1, 6), (4, 7)] {
            let pair = bump_pair(r, c, &mut rng);
            let norm = pair.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{r}x{c}: {norm}");
            if r % 2 == 0 || r == 1 && c % 2 == 0 {
                assert!(pair.iter().sum::<f32>().abs() < 1e-5, "{r}x{c}: equal halves cancel");
            }
        }
        let b = bump(5, 5);
        assert!(b[12] > b[6] && b[6] > b[0], "the centre weighs most");
    }

    /// A softmax regression on 1 x 8 x 8 images.
    fn image_model() -> (Dev, Model, Vec<f32>, Vec<usize>) {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![1, 8, 8],
            layers: vec![crate::nn::layers::flatten::Flatten {}.into(), Linear { units: 4 }.into()],
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let model = Model::init(&dev, &net, 0.3, &mut rng);
        let x: Vec<f32> = (0..6 * 64).map(|_| rng.gen_range(0.2..0.8)).collect();
        let ctx = AttackContext::new(&model, &dev, 0);
        let y = ctx.predict(&x);
        (dev, model, x, y)
    }

    #[test]
    fn both_norms_keep_the_budget_clip_and_lower_the_margin_on_images() {
        let (dev, model, x, y) = image_model();
        let ctx = AttackContext::new(&model, &dev, 0);
        let margin = |v: &[f32]| -> f32 { loss_and_fooled(&ctx, &ctx.logits(v), &y).iter().map(|l| l.0).sum() };
        for (norm, eps) in [("linf", 0.05f32), ("l2", 0.5)] {
            let adv = craft(
                json!({"attack": "square", "eps": eps, "norm": norm, "queries": 200, "p_init": 0.8}),
                &model,
                &dev,
                &x,
                &y,
            );
            let (linf, l2) = norms(&adv, &x, 64);
            let used = if norm == "linf" { linf } else { l2 };
            assert!(used <= eps * (1.0 + 1e-4), "{norm}: {used}");
            assert!(adv.iter().all(|v| (0.0..=1.0).contains(v)), "{norm}: clipped");
            assert!(margin(&adv) < margin(&x), "{norm}: the margin went down");
        }
    }

    #[test]
    fn a_large_budget_fools_every_example_and_counts_its_queries() {
        let (dev, model, x, y) = image_model();
        let mut ctx = AttackContext::new(&model, &dev, 0);
        let adv = crate::attacks::Crafter::from_json(&json!({"attack": "square", "eps": 0.5, "norm": "linf", "queries": 300, "p_init": 0.8, "clip": null, "labels": "true", "target": "none", "target_class": null, "mode": "eval"}))
            .unwrap()
            .craft(&mut ctx, &x, &y);
        let after = ctx.predict(&adv);
        assert!(after.iter().zip(&y).all(|(a, b)| a != b), "{after:?} vs {y:?}");
        // The start scores 6 rows, then one query per row still to fool per iteration.
        let spent = ctx.queries();
        assert!((12..=6 * 300 + 6).contains(&spent), "{spent}");
    }

    #[test]
    fn one_dimensional_inputs_work_and_eps_zero_is_the_identity() {
        let (dev, model, x, y) = model_and_batch();
        for norm in ["linf", "l2"] {
            let adv = craft(
                json!({"attack": "square", "eps": 0.1, "norm": norm, "queries": 50, "p_init": 0.8}),
                &model,
                &dev,
                &x,
                &y,
            );
            let (linf, l2) = norms(&adv, &x, 6);
            assert!(if norm == "linf" { linf } else { l2 } <= 0.1 * (1.0 + 1e-4), "{norm}");
            let same = craft(
                json!({"attack": "square", "eps": 0.0, "norm": norm, "queries": 50, "p_init": 0.8}),
                &model,
                &dev,
                &x,
                &y,
            );
            assert_eq!(same, x);
        }
    }
}
