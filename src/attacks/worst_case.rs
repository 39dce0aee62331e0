//! `worst_case(attacks: [a, b, ...])`: the strongest of several attacks, per example, as
//! AutoAttack reports robustness (Croce & Hein 2020): an example counts as broken when any
//! of the attacks breaks it.
//!
//! The attacks run in the order given. Each one attacks only the examples that every attack
//! before it left classified as their label (examples the model already gets wrong are not
//! attacked), and an example keeps the output of the first attack that makes the model
//! misclassify it. An example no attack breaks is returned clean, as AutoAttack does, so
//! `evaluate`'s perturbation norms measure the successful attacks only. The error under
//! `worst_case` is therefore at least each component's error on the same examples, and a
//! cheap attack listed first spares the expensive ones the examples it already breaks.
//!
//! Each component keeps its own options (its budget, norm, clip, labels, target); this
//! attack's `clip` is applied to the result as for any attack. Untargeted itself (`target`
//! stays "none"); `labels: "predicted"` counts an example as broken when its predicted class
//! changes. The components' versions are in the key of every node that uses it (they are in
//! its parameters).
//!
//! ```text
//! attack strongest = worst_case(attacks: [fgsm(eps: 0.1), pgd(eps: 0.1, steps: 40), square(eps: 0.1)])
//! ```

#[cfg(feature = "compute")]
use super::AttackContext;
use super::{params_from, Attack, AttackKind, Crafter};
use crate::params::{ParamDef, ParamType};
use serde::Deserialize;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "worst_case",
    doc: "per example, the first of several attacks that breaks it (AutoAttack's ensemble rule)",
    params: WorstCaseParams::PARAMS,
    build,
};

crate::declare_params! {
    /// `worst_case`'s parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct WorstCaseParams {
        /// the attacks, run in this order on the examples still standing
        attacks: Vec<serde_json::Value> = ParamDef::required(ParamType::AttackList),
    }
}

/// The components, built.
pub struct WorstCase {
    /// In the order they run.
    pub components: Vec<Crafter>,
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    if super::asks_for_a_target(json) {
        return Err("worst_case is untargeted (an example is broken when it is misclassified): leave `target` at \"none\"; a component may be targeted".into());
    }
    let params = params_from::<WorstCaseParams>(json)?;
    if params.attacks.is_empty() {
        return Err("worst_case needs at least one attack".into());
    }
    let components = params
        .attacks
        .iter()
        .enumerate()
        .map(|(i, a)| Crafter::from_json(a).map_err(|e| format!("attack {} of the list: {e}", i + 1)))
        .collect::<Result<_, _>>()?;
    Ok(Box::new(WorstCase { components }))
}

#[cfg(feature = "compute")]
impl WorstCase {
    /// The adversarial batch, and for every row which component broke it first (`None`: no
    /// component did, or it was misclassified already).
    pub fn perturb_and_attribute(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> (Vec<f32>, Vec<Option<usize>>) {
        let width = ctx.model.input_width();
        let mut adversarial = x.to_vec();
        let mut broken_by = vec![None; labels.len()];
        let clean = ctx.predict(x);
        let mut standing: Vec<usize> = (0..labels.len()).filter(|&i| clean[i] == labels[i]).collect();
        for (c, component) in self.components.iter().enumerate() {
            if standing.is_empty() {
                break;
            }
            let batch = crate::tensor::gather_rows(x, &standing, width);
            let batch_labels: Vec<usize> = standing.iter().map(|&i| labels[i]).collect();
            let crafted = component.craft(ctx, &batch, &batch_labels);
            let predicted = ctx.predict(&crafted);
            let mut still = Vec::with_capacity(standing.len());
            for (a, &i) in standing.iter().enumerate() {
                if predicted[a] != labels[i] {
                    adversarial[i * width..(i + 1) * width].copy_from_slice(&crafted[a * width..(a + 1) * width]);
                    broken_by[i] = Some(c);
                } else {
                    still.push(i);
                }
            }
            standing = still;
        }
        (adversarial, broken_by)
    }
}

#[cfg(feature = "compute")]
impl Attack for WorstCase {
    fn perturb(&self, ctx: &mut AttackContext, x: &[f32], labels: &[usize]) -> Vec<f32> {
        self.perturb_and_attribute(ctx, x, labels).0
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::attacks::testing::{craft, model_and_batch};
    use serde_json::json;

    fn attack(name: &str, eps: f64) -> serde_json::Value {
        json!({"attack": name, "eps": eps, "clip": [0.0, 1.0], "labels": "true", "target": "none", "target_class": null, "mode": "eval"})
    }

    fn fooled(model: &crate::nn::Model, dev: &crate::nn::Dev, x: &[f32], y: &[usize]) -> Vec<bool> {
        let predicted = AttackContext::new(model, dev, 0).predict(x);
        predicted.iter().zip(y).map(|(p, l)| p != l).collect()
    }

    #[test]
    fn an_example_is_broken_when_any_component_breaks_it() {
        let (dev, model, x, _) = model_and_batch();
        let y = AttackContext::new(&model, &dev, 0).predict(&x);
        let (weak, strong) = (attack("random_sign", 0.05), attack("fgsm", 0.6));
        let each: Vec<Vec<bool>> = [&weak, &strong]
            .iter()
            .map(|a| fooled(&model, &dev, &craft((*a).clone(), &model, &dev, &x, &y), &y))
            .collect();
        let both = craft(json!({"attack": "worst_case", "attacks": [weak, strong]}), &model, &dev, &x, &y);
        let under_both = fooled(&model, &dev, &both, &y);
        for i in 0..y.len() {
            assert_eq!(under_both[i], each[0][i] || each[1][i], "row {i}");
        }
        assert!(under_both.iter().any(|&f| f), "the strong FGSM should break something");
    }

    #[test]
    fn unbroken_and_misclassified_rows_come_back_clean_and_the_first_success_is_kept() {
        let (dev, model, x, _) = model_and_batch();
        let mut y = AttackContext::new(&model, &dev, 0).predict(&x);
        y[0] = (y[0] + 1) % 3; // misclassified before any attack
        let json = json!({"attack": "worst_case", "attacks": [attack("fgsm", 0.0), attack("fgsm", 0.6), attack("fgm", 0.6)]});
        let crafter = Crafter::from_json(&json).unwrap();
        let worst = WorstCase {
            components: vec![
                Crafter::from_json(&attack("fgsm", 0.0)).unwrap(),
                Crafter::from_json(&attack("fgsm", 0.6)).unwrap(),
                Crafter::from_json(&attack("fgm", 0.6)).unwrap(),
            ],
        };
        let mut ctx = AttackContext::new(&model, &dev, 0);
        let (adv, by) = worst.perturb_and_attribute(&mut ctx, &x, &y);
        assert_eq!(adv, crafter.craft(&mut AttackContext::new(&model, &dev, 0), &x, &y));
        assert_eq!(by[0], None);
        assert_eq!(&adv[..6], &x[..6], "a misclassified row is not attacked");
        let fgsm = craft(attack("fgsm", 0.6), &model, &dev, &x, &y);
        for (i, who) in by.iter().enumerate() {
            let row = &adv[i * 6..(i + 1) * 6];
            match who {
                None => assert_eq!(row, &x[i * 6..(i + 1) * 6], "row {i}"),
                Some(0) => panic!("eps 0 breaks nothing"),
                Some(1) => assert_eq!(row, &fgsm[i * 6..(i + 1) * 6], "row {i}"),
                Some(_) => {}
            }
        }
        // The outer settings survive the components: the final clip is worst_case's own.
        assert!(adv.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn a_target_or_an_empty_list_is_refused() {
        assert!(super::build(&json!({"attack": "worst_case", "attacks": [], "target": "none"})).is_err());
        let targeted = json!({"attack": "worst_case", "attacks": [attack("fgsm", 0.1)], "target": "class", "target_class": 1});
        assert!(super::build(&targeted).err().unwrap().contains("untargeted"));
        let bad = json!({"attack": "worst_case", "attacks": [{"attack": "fgsm", "eps": -1.0}], "target": "none"});
        assert!(super::build(&bad).err().unwrap().contains("attack 1 of the list"));
    }
}
