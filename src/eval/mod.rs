//! Evaluations: what a model (or an ensemble) does on a dataset, clean or under attack.
//!
//! [`evaluate`] gives error and confidences; [`craft_set`] turns a dataset into its
//! adversarial version (a cached artifact, so one crafted set serves many evaluations:
//! transfer is `evaluate(target, craft(source, data, attack))`); [`agreement`],
//! [`rubbish`] and [`transfer`] are the paper's sections 8, appendix A and 6. All stream
//! the dataset in batches. Confidence is the largest softmax probability. [`weights`] reads
//! the first-layer filters the report draws as the paper's figure 3.

mod paper;
#[cfg(feature = "compute")]
pub mod weights;

pub use paper::Over;
#[cfg(feature = "compute")]
pub use paper::{agreement, rubbish, transfer};

#[cfg(feature = "compute")]
use crate::attacks::{AttackContext, Crafter};
use crate::data::Dataset;
#[cfg(feature = "compute")]
use crate::nn::{Classifier, Dev};
use crate::tensor::argmax;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Named measurements of one evaluation node, as stored and as tables cite them.
pub type MetricMap = BTreeMap<String, f64>;

/// What an evaluation measures. Every field a table may cite is listed in [`Metrics::FIELDS`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Examples scored.
    pub examples: usize,
    /// Fraction misclassified (over all examples).
    pub error: f64,
    /// Mean top probability over the misclassified examples (0 when there are none).
    pub confidence_on_mistakes: f64,
    /// Mean top probability over all examples.
    pub mean_confidence: f64,
    /// Under an attack: of the examples classified correctly before it, the fraction it
    /// makes wrong (the error "over the correctly classified" some papers report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_on_correct: Option<f64>,
    /// Under an attack: how many examples were classified correctly before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct_before: Option<usize>,
    /// Under an attack: the size of its perturbations, `adversarial - clean` per example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perturbation: Option<Perturbation>,
    /// Under an attack: the mean number of score-only model queries per example that it
    /// made (a black-box attack's cost, e.g. `square`'s; 0 for attacks that use gradients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries_mean: Option<f64>,
}

/// Per-example perturbation norms, over every example and over the fooled ones (classified
/// correctly before the attack and wrongly after it): what a minimal-perturbation attack
/// such as DeepFool reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Perturbation {
    /// Mean L2 norm.
    pub l2_mean: f64,
    /// Median L2 norm.
    pub l2_median: f64,
    /// Mean L-infinity norm.
    pub linf_mean: f64,
    /// Median L-infinity norm.
    pub linf_median: f64,
    /// Mean L2 norm over the fooled examples (0 when none).
    pub l2_mean_fooled: f64,
    /// Median L2 norm over the fooled examples (0 when none).
    pub l2_median_fooled: f64,
    /// Mean L-infinity norm over the fooled examples (0 when none).
    pub linf_mean_fooled: f64,
    /// Median L-infinity norm over the fooled examples (0 when none).
    pub linf_median_fooled: f64,
}

impl Perturbation {
    /// From each example's (L2, L-infinity, fooled).
    fn of(norms: &[(f64, f64, bool)]) -> Perturbation {
        let pick = |l2: bool, fooled_only: bool| -> Vec<f64> {
            norms
                .iter()
                .filter(|n| !fooled_only || n.2)
                .map(|n| if l2 { n.0 } else { n.1 })
                .collect()
        };
        Perturbation {
            l2_mean: mean(&pick(true, false)),
            l2_median: median(pick(true, false)),
            linf_mean: mean(&pick(false, false)),
            linf_median: median(pick(false, false)),
            l2_mean_fooled: mean(&pick(true, true)),
            l2_median_fooled: median(pick(true, true)),
            linf_mean_fooled: mean(&pick(false, true)),
            linf_median_fooled: median(pick(false, true)),
        }
    }

    fn field(&self, name: &str) -> Option<f64> {
        Some(match name {
            "l2_mean" => self.l2_mean,
            "l2_median" => self.l2_median,
            "linf_mean" => self.linf_mean,
            "linf_median" => self.linf_median,
            "l2_mean_fooled" => self.l2_mean_fooled,
            "l2_median_fooled" => self.l2_median_fooled,
            "linf_mean_fooled" => self.linf_mean_fooled,
            "linf_median_fooled" => self.linf_median_fooled,
            _ => return None,
        })
    }
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// The middle value (the mean of the two middle ones for an even count); 0 for none.
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

impl Metrics {
    /// Field names a pipeline may access, with a doc line each.
    pub const FIELDS: &'static [(&'static str, &'static str)] = &[
        ("error", "fraction of examples misclassified"),
        ("confidence_on_mistakes", "mean top softmax probability on misclassified examples"),
        ("mean_confidence", "mean top softmax probability on all examples"),
        ("examples", "number of examples scored"),
    ];

    /// The fields an evaluation under an attack adds.
    pub const ATTACK_FIELDS: &'static [(&'static str, &'static str)] = &[
        (
            "error_on_correct",
            "of the examples classified correctly before the attack, the fraction it makes wrong",
        ),
        ("correct_before", "number of examples classified correctly before the attack"),
        ("l2_mean", "mean L2 norm of the perturbations (adversarial - clean)"),
        ("l2_median", "median L2 norm of the perturbations"),
        ("linf_mean", "mean L-infinity norm of the perturbations"),
        ("linf_median", "median L-infinity norm of the perturbations"),
        (
            "l2_mean_fooled",
            "mean L2 norm over the fooled examples (right before, wrong after)",
        ),
        ("l2_median_fooled", "median L2 norm over the fooled examples"),
        ("linf_mean_fooled", "mean L-infinity norm over the fooled examples"),
        ("linf_median_fooled", "median L-infinity norm over the fooled examples"),
        (
            "queries_mean",
            "mean score-only model queries per example (black-box attacks such as square; 0 for gradient attacks)",
        ),
    ];

    /// A field by name.
    pub fn field(&self, name: &str) -> Option<f64> {
        match name {
            "error" => Some(self.error),
            "confidence_on_mistakes" => Some(self.confidence_on_mistakes),
            "mean_confidence" => Some(self.mean_confidence),
            "examples" => Some(self.examples as f64),
            "error_on_correct" => self.error_on_correct,
            "correct_before" => self.correct_before.map(|n| n as f64),
            "queries_mean" => self.queries_mean,
            other => self.perturbation.as_ref()?.field(other),
        }
    }

    /// All fields it has, by name.
    pub fn to_map(&self) -> MetricMap {
        Self::FIELDS
            .iter()
            .chain(Self::ATTACK_FIELDS)
            .filter_map(|(f, _)| Some((f.to_string(), self.field(f)?)))
            .collect()
    }
}

/// Calls `each` with every batch of `data` (first index, pixels, labels), reporting progress after each.
#[cfg(feature = "compute")]
fn batches(data: &Dataset, batch: usize, progress: &mut dyn FnMut(usize, usize), mut each: impl FnMut(usize, &[f32], &[usize])) {
    let mut start = 0;
    while start < data.len() {
        let end = (start + batch.max(1)).min(data.len());
        let labels: Vec<usize> = data.labels[start..end].iter().map(|&l| l as usize).collect();
        each(start, data.images_of(start..end), &labels);
        start = end;
        progress(end, data.len());
    }
}

/// `model`'s logits on every example of `data`, `[n, classes]` row-major, in batches.
#[cfg(feature = "compute")]
pub fn logits_of<'a>(
    dev: &Dev,
    model: impl Into<Classifier<'a>>,
    data: &Dataset,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<f32> {
    let ctx = AttackContext::new(model.into(), dev, 0);
    let mut logits = Vec::new();
    batches(data, batch, progress, |_, x, _| logits.extend(ctx.logits(x)));
    logits
}

/// The adversarial version of every example of `data`, crafted against `model`.
#[cfg(feature = "compute")]
pub fn craft_set<'a>(
    dev: &Dev,
    model: impl Into<Classifier<'a>>,
    data: &Dataset,
    attack: &Crafter,
    seed: u64,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Dataset {
    let model: Classifier = model.into();
    let mut ctx = AttackContext::new(model, dev, seed);
    let mut images = Vec::with_capacity(data.images.len());
    batches(data, batch, progress, |_, x, labels| {
        images.extend(attack.craft(&mut ctx, x, labels))
    });
    Dataset {
        images,
        labels: data.labels.clone(),
        shape: data.shape.clone(),
        classes: data.classes,
    }
}

/// Scores `model` on `data`, attacking each batch first when `attack` is given.
/// `progress` gets (examples done, total).
#[allow(clippy::too_many_arguments)]
#[cfg(feature = "compute")]
pub fn evaluate<'a>(
    dev: &Dev,
    model: impl Into<Classifier<'a>>,
    data: &Dataset,
    attack: Option<&Crafter>,
    seed: u64,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Metrics {
    let under = Under {
        attack,
        ..Under::default()
    };
    evaluate_under(dev, model, data, &under, seed, batch, progress)
}

/// What an evaluation perturbs, and how far a perturbation may go.
#[cfg(feature = "compute")]
#[derive(Default)]
pub struct Under<'a> {
    /// Attack each batch first.
    pub attack: Option<&'a Crafter>,
    /// `data` is already perturbed (a crafted set): these are its clean examples, row for row.
    pub clean: Option<&'a Dataset>,
    /// A perturbation larger than this, in this norm, counts as none: that example is scored
    /// clean (robust error at a budget, from a minimal-perturbation attack).
    pub within: Option<(f64, crate::attacks::pgd::Norm)>,
}

/// [`evaluate`] of an attacked or crafted set, perturbations larger than `within` undone.
/// `under.clean`, when given, has as many examples as `data`.
#[allow(clippy::too_many_arguments)]
#[cfg(feature = "compute")]
pub fn evaluate_under<'a>(
    dev: &Dev,
    model: impl Into<Classifier<'a>>,
    data: &Dataset,
    under: &Under,
    seed: u64,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Metrics {
    let model: Classifier = model.into();
    let mut ctx = AttackContext::new(model, dev, seed);
    let (mut errors, mut conf_sum, mut conf_wrong) = (0usize, 0.0f64, 0.0f64);
    // Under an attack: examples right before it, and of those, wrong after it.
    let (mut correct_before, mut broken) = (0usize, 0usize);
    let mut norms: Vec<(f64, f64, bool)> = Vec::new();
    let width: usize = data.shape.iter().product();
    let perturbed = under.attack.is_some() || under.clean.is_some();
    batches(data, batch, progress, |start, rows, labels| {
        let clean = match under.clean {
            Some(clean) => clean.images_of(start..start + labels.len()),
            None => rows,
        };
        let (mut x, right_before) = if perturbed {
            // Crafted first: an attack's pass at the clean batch (FGSM's one gradient) or at
            // the batch it returns (PGD's objective) leaves those logits in the context
            // (`LastPass`) for the two passes below; the clean pass does not touch the
            // attack's random stream, so the order changes nothing else.
            let x = match under.attack {
                Some(a) => a.craft(&mut ctx, rows, labels),
                None => rows.to_vec(),
            };
            let before: Vec<bool> = ctx
                .logits(clean)
                .chunks(data.classes)
                .zip(labels)
                .map(|(row, &label)| argmax(row) == label)
                .collect();
            (x, before)
        } else {
            (rows.to_vec(), vec![])
        };
        let size = |adv: &[f32], clean: &[f32]| -> (f64, f64) {
            adv.iter().zip(clean).fold((0.0f64, 0.0f64), |(l2, linf), (a, c)| {
                let d = (a - c) as f64;
                (l2 + d * d, linf.max(d.abs()))
            })
        };
        if let Some((budget, norm)) = under.within {
            for (adv, clean) in x.chunks_mut(width).zip(clean.chunks(width)) {
                let (l2, linf) = size(adv, clean);
                let used = match norm {
                    crate::attacks::pgd::Norm::L2 => l2.sqrt(),
                    crate::attacks::pgd::Norm::Linf => linf,
                };
                // A perturbation made at exactly the budget (FGSM's `x + eps`) passes despite
                // the float rounding of `adv - clean`.
                if used > budget * (1.0 + 1e-6) + 1e-6 {
                    adv.copy_from_slice(clean);
                }
            }
        }
        let logits = ctx.logits(&x);
        for (i, (row, &label)) in logits.chunks(data.classes).zip(labels).enumerate() {
            let confidence = ctx.model.top().confidence(row) as f64;
            conf_sum += confidence;
            let wrong = argmax(row) != label;
            if wrong {
                errors += 1;
                conf_wrong += confidence;
            }
            if right_before.get(i) == Some(&true) {
                correct_before += 1;
                broken += wrong as usize;
            }
            if perturbed {
                let (l2, linf) = size(&x[i * width..(i + 1) * width], &clean[i * width..(i + 1) * width]);
                norms.push((l2.sqrt(), linf, wrong && right_before[i]));
            }
        }
    });

    let n = data.len().max(1) as f64;
    Metrics {
        examples: data.len(),
        error: errors as f64 / n,
        confidence_on_mistakes: if errors > 0 { conf_wrong / errors as f64 } else { 0.0 },
        mean_confidence: conf_sum / n,
        error_on_correct: perturbed.then(|| {
            if correct_before > 0 {
                broken as f64 / correct_before as f64
            } else {
                0.0
            }
        }),
        correct_before: perturbed.then_some(correct_before),
        perturbation: perturbed.then(|| Perturbation::of(&norms)),
        queries_mean: perturbed.then(|| ctx.queries() as f64 / n),
    }
}

/// The report's picture of an attack: a few examples, clean and adversarial, with what the
/// model made of each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExampleSet {
    /// One example's shape.
    pub shape: Vec<usize>,
    /// The examples in dataset order.
    pub rows: Vec<ExampleRow>,
}

/// One example of an [`ExampleSet`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExampleRow {
    /// Its label.
    pub label: usize,
    /// Clean pixels.
    pub clean: Vec<f32>,
    /// Adversarial pixels.
    pub adversarial: Vec<f32>,
    /// (class, top probability) on the clean example.
    pub clean_prediction: (usize, f32),
    /// (class, top probability) on the adversarial example.
    pub adversarial_prediction: (usize, f32),
}

/// The first `n` examples of `data`, attacked.
#[cfg(feature = "compute")]
pub fn example_set<'a>(dev: &Dev, model: impl Into<Classifier<'a>>, data: &Dataset, attack: &Crafter, seed: u64, n: usize) -> ExampleSet {
    let model: Classifier = model.into();
    let mut ctx = AttackContext::new(model, dev, seed);
    let n = n.min(data.len());
    let labels: Vec<usize> = data.labels[..n].iter().map(|&l| l as usize).collect();
    let clean = data.images_of(0..n);
    let adversarial = attack.craft(&mut ctx, clean, &labels);
    let width = data.width();
    let predictions = |x: &[f32]| -> Vec<(usize, f32)> {
        ctx.logits(x)
            .chunks(data.classes)
            .map(|row| (argmax(row), ctx.model.top().confidence(row)))
            .collect()
    };
    let (before, after) = (predictions(clean), predictions(&adversarial));
    let rows = (0..n)
        .map(|i| ExampleRow {
            label: labels[i],
            clean: clean[i * width..(i + 1) * width].to_vec(),
            adversarial: adversarial[i * width..(i + 1) * width].to_vec(),
            clean_prediction: before[i],
            adversarial_prediction: after[i],
        })
        .collect();
    ExampleSet {
        shape: data.shape.clone(),
        rows,
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;

    /// The test model, its batch of four, and that batch labelled as the model predicts
    /// except the first row, labelled wrongly.
    fn one_mistake() -> (Dev, crate::nn::Model, Vec<f32>, Dataset) {
        let (dev, model, x, _) = crate::attacks::testing::model_and_batch();
        let predicted = AttackContext::new(&model, &dev, 0).predict(&x);
        let mut labels: Vec<u8> = predicted.iter().map(|&p| p as u8).collect();
        labels[0] = ((predicted[0] + 1) % 3) as u8;
        let data = Dataset {
            images: x.clone(),
            labels,
            shape: vec![6],
            classes: 3,
        };
        (dev, model, x, data)
    }

    #[test]
    fn perturbation_norms_are_measured_per_example() {
        let (dev, model, _, data) = one_mistake();
        let fgsm = Crafter::from_json(&serde_json::json!({"attack": "fgsm", "eps": 0.1, "clip": null})).unwrap();
        let m = evaluate(&dev, &model, &data, Some(&fgsm), 0, 3, &mut |_, _| {});
        let p = m.perturbation.clone().expect("an attacked evaluation measures its perturbations");
        // FGSM moves every pixel by eps (where the gradient is not zero).
        assert!((p.linf_median - 0.1).abs() < 1e-6 && (p.linf_mean - 0.1).abs() < 1e-6, "{p:?}");
        assert!((p.l2_median - 0.1 * 6f64.sqrt()).abs() < 1e-5, "{p:?}");
        assert_eq!(m.field("l2_median"), Some(p.l2_median));
        // DeepFool fools every example it starts on correctly; its fooled norms are its own.
        let df = Crafter::from_json(&serde_json::json!({"attack": "deepfool", "norm": "l2", "steps": 50, "overshoot": 0.02, "clip": null}))
            .unwrap();
        let m = evaluate(&dev, &model, &data, Some(&df), 0, 4, &mut |_, _| {});
        let p = m.perturbation.unwrap();
        assert_eq!(m.error_on_correct, Some(1.0));
        // The already-misclassified example is not moved: all four examples' mean is 3/4 of
        // the three fooled ones' mean.
        assert!(
            (p.l2_mean - 0.75 * p.l2_mean_fooled).abs() < 1e-9 && p.l2_mean_fooled > 0.0,
            "{p:?}"
        );
        let clean = evaluate(&dev, &model, &data, None, 0, 3, &mut |_, _| {});
        assert!(clean.perturbation.is_none() && clean.field("l2_median").is_none());
    }

    #[test]
    fn a_crafted_set_scored_against_its_clean_examples_within_budgets() {
        let (dev, model, _, data) = one_mistake();
        let df = Crafter::from_json(&serde_json::json!({"attack": "deepfool", "norm": "l2", "steps": 50, "overshoot": 0.02})).unwrap();
        let attacked = evaluate(&dev, &model, &data, Some(&df), 0, 4, &mut |_, _| {});
        let crafted = craft_set(&dev, &model, &data, &df, 0, 4, &mut |_, _| {});
        let score = |within: Option<f64>| {
            let under = Under {
                clean: Some(&data),
                within: within.map(|w| (w, crate::attacks::pgd::Norm::L2)),
                ..Under::default()
            };
            evaluate_under(&dev, &model, &crafted, &under, 0, 3, &mut |_, _| {})
        };
        // The crafted set against its clean examples is the attacked evaluation.
        assert_eq!(score(None), attacked);
        // No budget undoes every perturbation; one at the median keeps about half.
        let none = score(Some(0.0));
        assert_eq!((none.error, none.error_on_correct), (0.25, Some(0.0)));
        let p = attacked.perturbation.as_ref().unwrap();
        let largest = score(Some(p.l2_mean_fooled * 10.0));
        assert_eq!(largest.error, attacked.error);
        let half = score(Some(p.l2_median_fooled));
        assert!(half.error > none.error && half.error <= attacked.error, "{half:?}");
    }

    #[test]
    fn black_box_queries_are_counted_per_example() {
        let (dev, model, _, data) = one_mistake();
        let fgsm = Crafter::from_json(&serde_json::json!({"attack": "fgsm", "eps": 0.1})).unwrap();
        let m = evaluate(&dev, &model, &data, Some(&fgsm), 0, 3, &mut |_, _| {});
        assert_eq!(m.queries_mean, Some(0.0));
        let square =
            Crafter::from_json(&serde_json::json!({"attack": "square", "eps": 0.05, "norm": "linf", "queries": 20, "p_init": 0.8}))
                .unwrap();
        let m = evaluate(&dev, &model, &data, Some(&square), 0, 3, &mut |_, _| {});
        let q = m.field("queries_mean").unwrap();
        // Three examples start correct; each costs at most one initial and 20 search queries.
        assert!(q > 0.0 && q <= 21.0 * 3.0 / 4.0 + 1e-9, "{q}");
        assert!(evaluate(&dev, &model, &data, None, 0, 3, &mut |_, _| {}).queries_mean.is_none());
    }

    #[test]
    fn medians_of_odd_even_and_empty_lists() {
        assert_eq!(super::median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(super::median(vec![]), 0.0);
    }

    #[test]
    fn under_an_attack_the_error_over_the_correctly_classified_is_counted_too() {
        let (dev, model, _, data) = one_mistake();
        let clean = evaluate(&dev, &model, &data, None, 0, 3, &mut |_, _| {});
        assert_eq!((clean.error_on_correct, clean.correct_before), (None, None));
        assert!(!clean.to_map().contains_key("error_on_correct"));
        // eps = 0 changes nothing: three right before, none broken.
        let identity = Crafter::from_json(&serde_json::json!({"attack": "fgsm", "eps": 0.0})).unwrap();
        let m = evaluate(&dev, &model, &data, Some(&identity), 0, 3, &mut |_, _| {});
        assert_eq!((m.correct_before, m.error_on_correct, m.error), (Some(3), Some(0.0), 0.25));
        // A strong attack: what it breaks among the three is part of all its errors.
        let strong = Crafter::from_json(&serde_json::json!({"attack": "fgsm", "eps": 0.9, "clip": null})).unwrap();
        let m = evaluate(&dev, &model, &data, Some(&strong), 0, 3, &mut |_, _| {});
        let broken = m.error_on_correct.unwrap() * 3.0;
        assert!((broken - broken.round()).abs() < 1e-9 && broken <= m.error * 4.0 + 1e-9, "{m:?}");
        assert_eq!(m.to_map()["correct_before"], 3.0);
    }

    #[test]
    fn counts_errors_and_confidences() {
        let (dev, model, x, data) = one_mistake();
        let ctx = AttackContext::new(&model, &dev, 0);
        let m = evaluate(&dev, &model, &data, None, 0, 3, &mut |_, _| {});
        assert_eq!(m.examples, 4);
        assert_eq!(m.error, 0.25);
        let first = crate::nn::Top::Softmax.confidence(&ctx.logits(&x[..6])) as f64;
        assert!((m.confidence_on_mistakes - first).abs() < 1e-6);
    }
}
