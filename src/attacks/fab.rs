//! `fab(norm: "linf", steps: 100)`: the Fast Adaptive Boundary attack (Croce & Hein,
//! "Minimally distorted adversarial examples with a fast adaptive boundary attack", ICML
//! 2020), a minimal-perturbation attack and, targeted (FAB-T), the third attack of
//! AutoAttack.
//!
//! Per step and per example still classified as its label `y`, the model is linearised at
//! the iterate `x1`: the nearest boundary `f_l - f_y = 0` (`l = argmin_k |f_k - f_y| /
//! ||grad f_k - grad f_y||_q`, `q` the dual norm) becomes a hyperplane. `d1` and `d2` are the
//! smallest steps (in the attack's norm, inside the clip box) from `x1` and from the clean
//! `x0` onto it, and the next iterate is `(x1 + eta d1)(1 - a) + (x0 + eta d2) a`, clipped,
//! with `a = min(|d1| / (|d1| + |d2|), alpha_max)`: biased towards the original point, so
//! the iterate tracks the boundary near it. Whenever an iterate is misclassified it is
//! kept if it is the closest so far, and the search backs off towards `x0` by `beta`.
//! Restarts after the first begin at a random point at half of `eps` (the norm's AutoAttack
//! default, 0.3 or 1, when `eps` is not given).
//!
//! `targets: k` is FAB-T: instead of the nearest boundary, one run towards each of the `k`
//! classes the model ranks 2nd, 3rd, ... on the clean input, in turn, on the examples no
//! run has broken (AutoAttack's defaults: 9 targets, one restart each).
//!
//! Without `eps` every example returns the closest misclassified point found (clean when none
//! was): report its size with `evaluate`'s `l2_median`, `linf_median`. With `eps` (as inside
//! AutoAttack) only points within `eps` count, and the others return clean. Defaults are the
//! authors' (`alpha_max` 0.1, `eta` 1.05, `beta` 0.9). Deviation: the two projections onto a
//! hyperplane within the box are found by bisection on the step's scale, not by the authors'
//! sorting (the same minimiser, to float rounding).
//!
//! ```text
//! attack fab_l2 = fab(norm: "l2")
//! attack fab_t  = fab(eps: 0.3, targets: 9)
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
    name: "fab",
    doc: "FAB (Croce & Hein 2020): minimal L-inf or L2 steps along the nearest linearised boundary; targeted over the likeliest classes (FAB-T)",
    params: Fab::PARAMS,
    build,
};

crate::declare_params! {
    /// FAB's parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct Fab {
        /// the norm minimised
        norm: Norm = ParamDef::or(ParamType::Choice(&["linf", "l2"]), Default::Str("linf")),
        /// only points within this radius count, the rest return clean (absent: minimal perturbations)
        eps: Option<f32> = ParamDef::optional(ParamType::Number).range(0.0, 100.0),
        /// iterations per run (the authors' 100)
        steps: usize = ParamDef::or(ParamType::Int, Default::Int(100)).range(1.0, 10000.0),
        /// runs per example (per target), the later ones from random starts
        restarts: usize = ParamDef::or(ParamType::Int, Default::Int(1)).range(1.0, 1000.0),
        /// 0: the nearest boundary; k: FAB-T, towards each of the k likeliest other classes in turn
        targets: usize = ParamDef::or(ParamType::Int, Default::Int(0)).range(0.0, 1000.0),
        /// largest weight of the step from the clean point
        alpha_max: f32 = ParamDef::or(ParamType::Number, Default::Number(0.1)).range(0.0, 1.0),
        /// overshoot of each projection
        eta: f32 = ParamDef::or(ParamType::Number, Default::Number(1.05)).range(1.0, 10.0),
        /// back-off towards the clean point after a success
        beta: f32 = ParamDef::or(ParamType::Number, Default::Number(0.9)).range(0.0, 1.0),
    }
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    if super::asks_for_a_target(json) {
        return Err("fab chooses its targets itself (`targets: 9` is FAB-T): leave `target` at \"none\"".into());
    }
    Ok(Box::new(params_from::<Fab>(json)?))
}

/// The size of `d` in `norm`.
pub fn norm_of(d: &[f32], norm: Norm) -> f32 {
    match norm {
        Norm::Linf => d.iter().fold(0.0f32, |m, v| m.max(v.abs())),
        Norm::L2 => d.iter().map(|v| v * v).sum::<f32>().sqrt(),
    }
}

/// The smallest step `d` (in `norm`) from `t` onto the hyperplane `w . z = b` that keeps
/// `t + d` inside the box `[lo, hi]`; when the box does not reach the plane, the step that
/// comes closest. Moving by `d_i = -s_i min(lambda k_i, room_i)` (`s_i` the side `w` pushes,
/// `k_i = |w_i|` for L2, 1 for L-infinity: the Lagrange conditions of both problems), the
/// distance covered is increasing in `lambda`, whose crossing point is bisected.
pub fn project_onto_plane(t: &[f32], w: &[f32], b: f32, box_: Option<[f32; 2]>, norm: Norm) -> Vec<f32> {
    let excess: f32 = w.iter().zip(t).map(|(wi, ti)| wi * ti).sum::<f32>() - b;
    // Move so that w . (t + d) goes from `excess` to 0: direction -sign(excess) * w.
    let side = if excess >= 0.0 { 1.0 } else { -1.0 };
    let need = excess.abs();
    let (lo, hi) = box_.map_or((f32::NEG_INFINITY, f32::INFINITY), |[lo, hi]| (lo, hi));
    // Per coordinate: how far it may move in the helpful direction, and its rate.
    let room: Vec<f32> = w
        .iter()
        .zip(t)
        .map(|(&wi, &ti)| match side * wi {
            s if s > 0.0 => (ti - lo).max(0.0),
            s if s < 0.0 => (hi - ti).max(0.0),
            _ => 0.0,
        })
        .collect();
    let rate = |wi: f32| match norm {
        Norm::L2 => wi.abs(),
        Norm::Linf => 1.0,
    };
    let covered = |lambda: f32| -> f32 { w.iter().zip(&room).map(|(wi, r)| wi.abs() * (lambda * rate(*wi)).min(*r)).sum() };
    let step = |lambda: f32| -> Vec<f32> {
        w.iter()
            .zip(&room)
            .map(|(&wi, &r)| {
                if wi == 0.0 {
                    0.0
                } else {
                    -side * wi.signum() * (lambda * rate(wi)).min(r)
                }
            })
            .collect()
    };
    if need == 0.0 {
        return vec![0.0; t.len()];
    }
    let reach: f32 = w.iter().zip(&room).map(|(wi, r)| wi.abs() * r).sum();
    if reach <= need {
        // The box stops short of the plane: go as far towards it as the box allows.
        return step(f32::INFINITY);
    }
    // Unconstrained, the crossing is at need / sum(|w_i| k_i); the box only pushes it out.
    let scale: f32 = w.iter().map(|&wi| wi.abs() * rate(wi)).sum();
    let (mut below, mut above) = (0.0f32, need / scale);
    while covered(above) < need && above.is_finite() {
        below = above;
        above *= 2.0;
    }
    for _ in 0..40 {
        let mid = 0.5 * (below + above);
        if covered(mid) < need {
            below = mid;
        } else {
            above = mid;
        }
    }
    step(above)
}

#[cfg(feature = "compute")]
impl Fab {
    /// The radius of random starts.
    fn start_radius(&self) -> f32 {
        self.eps.unwrap_or(match self.norm {
            Norm::Linf => 0.3,
            Norm::L2 => 1.0,
        })
    }

    /// One run on `x0` (rows still standing) with labels `y`, towards `targets` (one per row)
    /// or the nearest boundary: the closest misclassified point of every row, if any.
    fn run(
        &self,
        ctx: &mut AttackContext,
        x0: &[f32],
        y: &[usize],
        targets: Option<&[usize]>,
        random_start: bool,
    ) -> Vec<Option<(f32, Vec<f32>)>> {
        let width = ctx.model.input_width();
        let rows = y.len();
        let box_ = ctx.clip_range();
        let mut x1 = x0.to_vec();
        if random_start {
            let radius = 0.5 * self.start_radius();
            for row in x1.chunks_mut(width) {
                let noise: Vec<f32> = match self.norm {
                    Norm::Linf => (0..width).map(|_| ctx.rng.gen_range(-1.0f32..1.0)).collect(),
                    Norm::L2 => (0..width)
                        .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut ctx.rng))
                        .collect(),
                };
                let size = norm_of(&noise, self.norm).max(1e-12);
                row.iter_mut().zip(&noise).for_each(|(v, n)| *v += radius * n / size);
            }
            ctx.clip(&mut x1);
        }
        let mut best: Vec<Option<(f32, Vec<f32>)>> = vec![None; rows];
        for _ in 0..self.steps {
            let planes = self.boundaries(ctx, &x1, y, targets);
            let mut next = vec![0.0f32; x1.len()];
            for (i, (w, b)) in planes.into_iter().enumerate() {
                let (now, clean) = (&x1[i * width..(i + 1) * width], &x0[i * width..(i + 1) * width]);
                let d1 = project_onto_plane(now, &w, b, box_, self.norm);
                let d2 = project_onto_plane(clean, &w, b, box_, self.norm);
                let (a1, a2) = (norm_of(&d1, self.norm).max(1e-8), norm_of(&d2, self.norm).max(1e-8));
                let alpha = (a1 / (a1 + a2)).clamp(0.0, self.alpha_max);
                for j in 0..width {
                    next[i * width + j] = (now[j] + self.eta * d1[j]) * (1.0 - alpha) + (clean[j] + self.eta * d2[j]) * alpha;
                }
            }
            ctx.clip(&mut next);
            x1 = next;
            let predicted = ctx.predict(&x1);
            for i in (0..rows).filter(|&i| predicted[i] != y[i]) {
                let row = &mut x1[i * width..(i + 1) * width];
                let clean = &x0[i * width..(i + 1) * width];
                let d: Vec<f32> = row.iter().zip(clean).map(|(a, c)| a - c).collect();
                let size = norm_of(&d, self.norm);
                if best[i].as_ref().is_none_or(|(b, _)| size < *b) {
                    best[i] = Some((size, row.to_vec()));
                }
                row.iter_mut().zip(clean).for_each(|(a, c)| *a = c + (*a - c) * self.beta);
            }
        }
        best
    }

    /// The linearised boundary of every row at `x`: `(w, b)` of the plane `w . z = b`.
    fn boundaries(&self, ctx: &AttackContext, x: &[f32], y: &[usize], targets: Option<&[usize]>) -> Vec<(Vec<f32>, f32)> {
        let width = ctx.model.input_width();
        let rows = y.len();
        let plane = |f_diff: f32, w: Vec<f32>, at: &[f32]| {
            let b = w.iter().zip(at).map(|(wi, xi)| wi * xi).sum::<f32>() - f_diff;
            (w, b)
        };
        if let Some(targets) = targets {
            let mut diffs = Vec::with_capacity(rows);
            let (_, gradient) = ctx.logits_and_output_gradient(x, |logits| {
                let classes = logits.len() / rows;
                let mut weights = vec![0.0f32; logits.len()];
                for i in 0..rows {
                    weights[i * classes + targets[i]] += 1.0;
                    weights[i * classes + y[i]] -= 1.0;
                    diffs.push(logits[i * classes + targets[i]] - logits[i * classes + y[i]]);
                }
                weights
            });
            return (0..rows)
                .map(|i| {
                    plane(
                        diffs[i],
                        gradient[i * width..(i + 1) * width].to_vec(),
                        &x[i * width..(i + 1) * width],
                    )
                })
                .collect();
        }
        let logits = ctx.logits(x);
        let classes = logits.len() / rows;
        let gradients = ctx.class_gradients(x, classes);
        (0..rows)
            .map(|i| {
                let row = &logits[i * classes..(i + 1) * classes];
                let grad_y = &gradients[y[i]][i * width..(i + 1) * width];
                let mut nearest: Option<(f32, f32, Vec<f32>)> = None;
                for k in (0..classes).filter(|&k| k != y[i]) {
                    let w: Vec<f32> = gradients[k][i * width..(i + 1) * width]
                        .iter()
                        .zip(grad_y)
                        .map(|(gk, gy)| gk - gy)
                        .collect();
                    let dual = match self.norm {
                        Norm::L2 => w.iter().map(|v| v * v).sum::<f32>().sqrt(),
                        Norm::Linf => w.iter().map(|v| v.abs()).sum::<f32>(),
                    };
                    let f_diff = row[k] - row[y[i]];
                    let distance = f_diff.abs() / (1e-12 + dual);
                    if nearest.as_ref().is_none_or(|(d, ..)| distance < *d) {
                        nearest = Some((distance, f_diff, w));
                    }
                }
                let (_, f_diff, w) = nearest.expect("at least two classes");
                plane(f_diff, w, &x[i * width..(i + 1) * width])
            })
            .collect()
    }
}

#[cfg(feature = "compute")]
impl Attack for Fab {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        let width = ctx.model.input_width();
        let logits = ctx.logits(x);
        let classes = logits.len() / labels.len();
        let mut adversarial = x.to_vec();
        let mut best_size = vec![f32::INFINITY; labels.len()];
        // Examples the model already gets wrong are left alone.
        let mut standing: Vec<usize> = (0..labels.len())
            .filter(|&i| crate::tensor::argmax(&logits[i * classes..(i + 1) * classes]) == labels[i])
            .collect();
        let ranked: Vec<Vec<usize>> = logits.chunks(classes).map(super::descending).collect();
        // Untargeted: one pass over the nearest boundaries; FAB-T: one per target rank.
        let ranks: Vec<Option<usize>> = if self.targets == 0 {
            vec![None]
        } else {
            (1..=self.targets.min(classes - 1)).map(Some).collect()
        };
        for rank in ranks {
            for restart in 0..self.restarts {
                if standing.is_empty() {
                    return adversarial;
                }
                let x0 = crate::tensor::gather_rows(x, &standing, width);
                let y: Vec<usize> = standing.iter().map(|&i| labels[i]).collect();
                let targets: Option<Vec<usize>> = rank.map(|r| standing.iter().map(|&i| ranked[i][r]).collect());
                let found = self.run(ctx, &x0, &y, targets.as_deref(), restart > 0);
                for (a, &i) in standing.iter().enumerate() {
                    if let Some((size, point)) = &found[a] {
                        if *size < best_size[i] && self.eps.is_none_or(|eps| *size <= eps) {
                            best_size[i] = *size;
                            adversarial[i * width..(i + 1) * width].copy_from_slice(point);
                        }
                    }
                }
                // With a budget, a row broken within it is done; minimal runs keep
                // improving every row through the restarts of one target.
                if self.eps.is_some() || restart + 1 == self.restarts {
                    standing.retain(|&i| best_size[i].is_infinite());
                }
            }
        }
        adversarial
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::attacks::testing::{craft, model_and_batch, norms};
    use serde_json::json;

    fn fab(norm: &str, eps: Option<f64>, targets: usize) -> serde_json::Value {
        json!({"attack": "fab", "norm": norm, "eps": eps, "steps": 30, "restarts": 2, "targets": targets, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9})
    }

    #[test]
    fn projections_land_on_the_plane_with_the_smallest_step() {
        let t = [0.2f32, 0.5, 0.9, 0.4];
        let w = [1.0f32, -2.0, 0.5, 0.0];
        let b = -0.6;
        for norm in [Norm::L2, Norm::Linf] {
            let d = project_onto_plane(&t, &w, b, Some([0.0, 1.0]), norm);
            let z: Vec<f32> = t.iter().zip(&d).map(|(a, b)| a + b).collect();
            let on: f32 = w.iter().zip(&z).map(|(a, b)| a * b).sum();
            assert!((on - b).abs() < 1e-4, "{norm:?}: {on}");
            assert!(z.iter().all(|v| (-1e-6..=1.0 + 1e-6).contains(v)), "{z:?}");
            assert_eq!(d[3], 0.0, "a coordinate with no slope does not move");
            // No other point of the plane inside the box is closer: try random ones.
            let size = norm_of(&d, norm);
            let mut rng: rand_chacha::ChaCha8Rng = rand::SeedableRng::seed_from_u64(3);
            for _ in 0..2000 {
                let mut e: Vec<f32> = (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
                // Put it on the plane by moving along coordinate 1 (slope -2).
                let on: f32 = w.iter().zip(t.iter().zip(&e)).map(|(wi, (ti, ei))| wi * (ti + ei)).sum();
                e[1] += (on - b) / 2.0;
                let inside = t.iter().zip(&e).all(|(ti, ei)| (0.0..=1.0).contains(&(ti + ei)));
                if inside {
                    assert!(norm_of(&e, norm) >= size - 1e-4, "{norm:?}: {e:?} beats {d:?}");
                }
            }
        }
        // A plane out of the box's reach: the closest the box allows.
        let d = project_onto_plane(&[0.5], &[1.0], 5.0, Some([0.0, 1.0]), Norm::L2);
        assert_eq!(d, vec![0.5]);
        let free = project_onto_plane(&[0.5, 0.5], &[1.0, 1.0], 5.0, None, Norm::L2);
        assert!((free[0] - 2.0).abs() < 1e-4 && (free[1] - 2.0).abs() < 1e-4, "{free:?}");
    }

    #[test]
    fn minimal_runs_fool_every_correct_example_near_deepfool_or_closer() {
        let (dev, model, x, _) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let y = ctx.predict(&x);
        for norm in ["l2", "linf"] {
            let adv = craft(fab(norm, None, 0), &model, &dev, &x, &y);
            assert!(
                ctx.predict(&adv).iter().zip(&y).all(|(p, l)| p != l),
                "{norm}: every example fooled"
            );
            let df = craft(
                json!({"attack": "deepfool", "norm": norm, "steps": 50, "overshoot": 0.02}),
                &model,
                &dev,
                &x,
                &y,
            );
            let measure = |a: &[f32]| -> Vec<f32> {
                let nm = if norm == "l2" { Norm::L2 } else { Norm::Linf };
                a.chunks(6)
                    .zip(x.chunks(6))
                    .map(|(p, q)| norm_of(&p.iter().zip(q).map(|(u, v)| u - v).collect::<Vec<_>>(), nm))
                    .collect()
            };
            let (fab_sizes, df_sizes) = (measure(&adv), measure(&df));
            let (f, d): (f32, f32) = (fab_sizes.iter().sum(), df_sizes.iter().sum());
            assert!(f <= d * 1.05, "{norm}: FAB {fab_sizes:?} against DeepFool {df_sizes:?}");
        }
    }

    #[test]
    fn with_a_budget_only_points_within_it_count_and_fab_t_runs() {
        let (dev, model, x, _) = model_and_batch();
        let ctx = AttackContext::new(&model, &dev, 0);
        let y = ctx.predict(&x);
        for targets in [0, 2] {
            let minimal = craft(fab("linf", None, targets), &model, &dev, &x, &y);
            let (linf, _) = norms(&minimal, &x, 6);
            let eps = 0.9 * linf; // below the largest minimal perturbation: that row returns clean
            let budget = craft(fab("linf", Some(eps as f64), targets), &model, &dev, &x, &y);
            let predicted = ctx.predict(&budget);
            for i in 0..4 {
                let row = &budget[i * 6..(i + 1) * 6];
                let size = norm_of(&row.iter().zip(&x[i * 6..]).map(|(a, b)| a - b).collect::<Vec<_>>(), Norm::Linf);
                assert!(size <= eps + 1e-6, "targets {targets}, row {i}: {size} > {eps}");
                assert!(size == 0.0 || predicted[i] != y[i], "a returned point is adversarial");
            }
            assert!(
                predicted.iter().zip(&y).any(|(p, l)| p != l),
                "targets {targets}: something within the budget"
            );
        }
    }

    #[test]
    fn targets_from_outside_are_refused() {
        let mut j = fab("linf", None, 0);
        j["target"] = json!("class");
        assert!(super::build(&j).err().unwrap().contains("FAB-T"));
    }
}
