//! The paper's other measurements: class agreement between models (section 8), the
//! rubbish-class rate on noise (appendix A) and transfer between models (section 6).

#[cfg(feature = "compute")]
use super::{batches, craft_set, evaluate, MetricMap};
#[cfg(feature = "compute")]
use crate::attacks::{AttackContext, Crafter};
use crate::data::Dataset;
#[cfg(feature = "compute")]
use crate::nn::{Classifier, Dev};
use crate::tensor::argmax;
use serde::{Deserialize, Serialize};

/// Which examples an agreement rate is taken over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Over {
    /// Every example.
    All,
    /// Those the source model misclassifies (the paper's "examples that maxout gets wrong").
    SourceWrong,
    /// Those both models misclassify.
    BothWrong,
}

/// How often `other` predicts the same class as `source`, over the examples `over` picks.
/// Metrics: `rate`, and `examples` (the size of the subset).
#[cfg(feature = "compute")]
pub fn agreement(dev: &Dev, source: Classifier, other: Classifier, data: &Dataset, over: Over, batch: usize) -> MetricMap {
    let (s_ctx, o_ctx) = (AttackContext::new(source, dev, 0), AttackContext::new(other, dev, 0));
    let (mut counted, mut agreed) = (0usize, 0usize);
    batches(data, batch, &mut |_, _| {}, |_, x, labels| {
        let (s, o) = (s_ctx.predict(x), o_ctx.predict(x));
        for ((&sp, &op), &y) in s.iter().zip(&o).zip(labels) {
            let include = match over {
                Over::All => true,
                Over::SourceWrong => sp != y,
                Over::BothWrong => sp != y && op != y,
            };
            if include {
                counted += 1;
                agreed += usize::from(sp == op);
            }
        }
    });
    let rate = if counted > 0 { agreed as f64 / counted as f64 } else { 0.0 };
    MetricMap::from([("rate".into(), rate), ("examples".into(), counted as f64)])
}

/// Appendix A: on inputs that belong to no class (e.g. Gaussian noise), how often the model
/// gives some class probability above `threshold`. Metrics: `rate`, `confidence` (mean top
/// probability over those), `examples`, and `share_<k>`: the fraction of those assigned to
/// class k.
#[cfg(feature = "compute")]
pub fn rubbish(dev: &Dev, model: Classifier, data: &Dataset, threshold: f64, batch: usize) -> MetricMap {
    let ctx = AttackContext::new(model, dev, 0);
    let mut per_class = vec![0usize; data.classes];
    let mut confidence = 0.0;
    batches(data, batch, &mut |_, _| {}, |_, x, _| {
        let logits = ctx.logits(x);
        for row in logits.chunks(data.classes) {
            let p = ctx.model.top().confidence(row) as f64;
            if p > threshold {
                per_class[argmax(row)] += 1;
                confidence += p;
            }
        }
    });
    let fooled: usize = per_class.iter().sum();
    let share = |k: usize| if fooled > 0 { per_class[k] as f64 / fooled as f64 } else { 0.0 };
    let mut m = MetricMap::from([
        ("rate".into(), fooled as f64 / data.len().max(1) as f64),
        ("confidence".into(), if fooled > 0 { confidence / fooled as f64 } else { 0.0 }),
        ("examples".into(), data.len() as f64),
    ]);
    m.extend((0..data.classes).map(|k| (format!("share_{k}"), share(k))));
    m
}

/// Every model attacks and every model is scored: `error_<i>_<j>` is the error of model `j`
/// on examples crafted against model `i` (indices into the list; `i == j` is the white-box
/// error).
#[cfg(feature = "compute")]
pub fn transfer(dev: &Dev, models: &[Classifier], data: &Dataset, attack: &Crafter, seed: u64, batch: usize) -> MetricMap {
    let mut m = MetricMap::new();
    for (i, source) in models.iter().enumerate() {
        let crafted = craft_set(dev, *source, data, attack, seed, batch, &mut |_, _| {});
        for (j, target) in models.iter().enumerate() {
            let error = evaluate(dev, *target, &crafted, None, seed, batch, &mut |_, _| {}).error;
            m.insert(format!("error_{i}_{j}"), error);
        }
    }
    m
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::attacks::testing::model_and_batch;
    use crate::nn::layers::linear::Linear;
    use crate::nn::{Model, NetSpec};
    use rand::SeedableRng;

    fn data(x: Vec<f32>, labels: Vec<u8>) -> Dataset {
        Dataset {
            images: x,
            labels,
            shape: vec![6],
            classes: 3,
        }
    }

    #[test]
    fn agreement_counts_the_right_subsets() {
        let (dev, a, x, _) = model_and_batch();
        let b = Model::init(&dev, &a.net, 1.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(99));
        let (pa, pb) = (
            AttackContext::new(&a, &dev, 0).predict(&x),
            AttackContext::new(&b, &dev, 0).predict(&x),
        );
        // Labels chosen so that `a` is wrong on rows 0 and 1 only.
        let labels: Vec<u8> = pa
            .iter()
            .enumerate()
            .map(|(i, &p)| if i < 2 { ((p + 1) % 3) as u8 } else { p as u8 })
            .collect();
        let d = data(x, labels.clone());
        let m = agreement(&dev, (&a).into(), (&b).into(), &d, Over::SourceWrong, 3);
        assert_eq!(m["examples"], 2.0);
        let expect = (0..2).filter(|&i| pa[i] == pb[i]).count() as f64 / 2.0;
        assert_eq!(m["rate"], expect);
        let both = (0..4)
            .filter(|&i| pa[i] != labels[i] as usize && pb[i] != labels[i] as usize)
            .count();
        assert_eq!(
            agreement(&dev, (&a).into(), (&b).into(), &d, Over::BothWrong, 3)["examples"],
            both as f64
        );
        assert_eq!(agreement(&dev, (&a).into(), (&a).into(), &d, Over::All, 3)["rate"], 1.0);
    }

    #[test]
    fn rubbish_rate_and_shares() {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![2],
            layers: vec![Linear { units: 2 }.into()],
        };
        let mut model = Model::init(&dev, &net, 0.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
        // Class 1 wins with certainty when x0 > 0; at x0 = 0 both classes are 50/50, which
        // is not above the threshold.
        model.params[0].as_mut().unwrap().weight_mut().copy_from(&[0.0, 50.0, 0.0, 0.0]);
        let d = Dataset {
            images: vec![1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 3.0],
            labels: vec![0; 4],
            shape: vec![2],
            classes: 2,
        };

        let m = rubbish(&dev, (&model).into(), &d, 0.5, 3);
        assert_eq!(m["rate"], 0.5);
        assert_eq!((m["share_0"], m["share_1"]), (0.0, 1.0));
        assert!(m["confidence"] > 0.99);
    }

    #[test]
    fn transfer_diagonal_is_the_white_box_error() {
        let (dev, a, x, y) = model_and_batch();
        let b = Model::init(&dev, &a.net, 1.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(5));
        let d = data(x, y.iter().map(|&l| l as u8).collect());
        let attack = Crafter::from_json(&serde_json::json!({"attack": "fgsm", "eps": 0.3, "clip": [0.0, 1.0], "labels": "true", "target": "none", "target_class": null, "mode": "eval"})).unwrap();
        let m = transfer(&dev, &[(&a).into(), (&b).into()], &d, &attack, 0, 2);
        assert_eq!(m.len(), 4);
        let white_box = evaluate(&dev, &b, &d, Some(&attack), 0, 2, &mut |_, _| {}).error;
        assert_eq!(m["error_1_1"], white_box);
    }
}
