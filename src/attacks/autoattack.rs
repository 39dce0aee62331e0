//! `autoattack(eps: 0.3, norm: "linf")`: AutoAttack's standard ensemble (Croce & Hein,
//! "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
//! attacks", ICML 2020), the robustness number RobustBench reports.
//!
//! Four attacks run in turn, each on the examples the ones before left standing, and an
//! example counts as broken by the first that breaks it ([`super::worst_case`]):
//!
//! 1. APGD-CE: `apgd(eps, norm, loss: "ce", steps: 100, restarts: 1)`
//! 2. APGD-T: `apgd(eps, norm, loss: "dlr_targeted", targets: 9, steps: 100, restarts: 1)`
//! 3. FAB-T: `fab(eps, norm, targets: 9, steps: 100, restarts: 1)`
//! 4. Square: `square(eps, norm, queries: 5000, p_init: 0.8)`
//!
//! the authors' `version='standard'` settings for both norms. Each component is the attack
//! of its own file, with this attack's `clip`, `labels` and `mode`. Writing the same list as
//! `worst_case(attacks: [...])` gives the same result. The components and their settings
//! are part of this attack's version: a test below fails when one of them changes version
//! without this one.
//!
//! ```text
//! attack aa     = autoattack(eps: 0.3)
//! attack aa_l2  = autoattack(eps: 2, norm: "l2")
//! ```

use super::worst_case::WorstCase;
use super::{Attack, AttackKind, Crafter};
use crate::params::{Default, ParamDef, ParamType};
use serde::Deserialize;
use serde_json::json;

/// The registry entry.
pub const KIND: AttackKind = AttackKind {
    version: 2,
    source: file!(),
    name: "autoattack",
    doc: "AutoAttack (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T and Square in turn; an example falls to the first that breaks it",
    params: AutoAttack::PARAMS,
    build,
};

crate::declare_params! {
    /// AutoAttack's parameters.
    #[derive(Clone, Debug, Deserialize)]
    pub struct AutoAttack {
        /// radius of the ball
        eps: f32 = ParamDef::required(ParamType::Number).range(0.0, 100.0),
        /// which ball
        norm: super::pgd::Norm = ParamDef::or(ParamType::Choice(&["linf", "l2"]), Default::Str("linf")),
        /// which suite: "standard" (APGD-CE, APGD-T, FAB-T, Square)
        version: String = ParamDef::or(ParamType::Choice(&["standard"]), Default::Str("standard")),
    }
}

/// The components of the standard version, as attack JSON with `shared` (the clip, labels
/// and mode of the whole) in each.
pub fn standard_components(eps: f32, norm: &str, shared: &serde_json::Map<String, serde_json::Value>) -> Vec<serde_json::Value> {
    let mut components = vec![
        json!({"attack": "apgd", "eps": eps, "norm": norm, "loss": "ce", "steps": 100, "restarts": 1, "targets": 9}),
        json!({"attack": "apgd", "eps": eps, "norm": norm, "loss": "dlr_targeted", "steps": 100, "restarts": 1, "targets": 9}),
        json!({"attack": "fab", "eps": eps, "norm": norm, "steps": 100, "restarts": 1, "targets": 9, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9}),
        json!({"attack": "square", "eps": eps, "norm": norm, "queries": 5000, "p_init": 0.8}),
    ];
    for component in &mut components {
        for (key, value) in shared {
            component[key] = value.clone();
        }
        component["target"] = "none".into();
        component["target_class"] = serde_json::Value::Null;
    }
    components
}

fn build(json: &serde_json::Value) -> Result<Box<dyn Attack>, String> {
    if super::asks_for_a_target(json) {
        return Err("autoattack is untargeted (APGD-T and FAB-T choose their own targets): leave `target` at \"none\"".into());
    }
    let params: AutoAttack = super::params_from(json)?;
    let norm = match params.norm {
        super::pgd::Norm::Linf => "linf",
        super::pgd::Norm::L2 => "l2",
    };
    let shared: serde_json::Map<String, serde_json::Value> = ["clip", "labels", "mode"]
        .iter()
        .filter_map(|k| Some((k.to_string(), json.get(*k)?.clone())))
        .collect();
    let components = standard_components(params.eps, norm, &shared)
        .iter()
        .map(Crafter::from_json)
        .collect::<Result<_, _>>()?;
    Ok(Box::new(WorstCase { components }))
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::*;
    use crate::attacks::testing::{craft, model_and_batch, norms};

    #[test]
    fn a_component_changing_version_changes_this_one() {
        let components = standard_components(0.1, "linf", &serde_json::Map::new());
        let versions: Vec<(String, u32)> = components
            .iter()
            .map(|c| {
                let name = c["attack"].as_str().unwrap();
                (name.to_string(), crate::attacks::find(name).unwrap().version)
            })
            .collect();
        // When this fails: bump KIND.version above, then write the new versions here.
        let pinned = [("apgd", 4), ("apgd", 4), ("fab", 1), ("square", 1)];
        let pinned: Vec<(String, u32)> = pinned.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        assert_eq!((KIND.version, versions), (2, pinned));
    }

    #[test]
    fn it_is_the_worst_case_of_its_components_and_holds_the_budget() {
        let (dev, model, x, _) = model_and_batch();
        let y = crate::attacks::AttackContext::new(&model, &dev, 0).predict(&x);
        let common = json!({"clip": [0.0, 1.0], "labels": "true", "mode": "eval"});
        let aa = craft(
            json!({"attack": "autoattack", "eps": 0.3, "norm": "linf", "version": "standard"}),
            &model,
            &dev,
            &x,
            &y,
        );
        let list = standard_components(0.3, "linf", common.as_object().unwrap());
        let worst = craft(json!({"attack": "worst_case", "attacks": list}), &model, &dev, &x, &y);
        assert_eq!(aa, worst);
        assert!(norms(&aa, &x, 6).0 <= 0.3 + 1e-6);
        // It breaks every example that any of its components breaks alone.
        let ctx = crate::attacks::AttackContext::new(&model, &dev, 0);
        let broken = |a: &[f32]| -> Vec<bool> { ctx.predict(a).iter().zip(&y).map(|(p, l)| p != l).collect() };
        let under_aa = broken(&aa);
        for component in &list {
            let alone = broken(&craft(component.clone(), &model, &dev, &x, &y));
            assert!(
                alone.iter().zip(&under_aa).all(|(a, b)| !a || *b),
                "{component}: {alone:?} against {under_aa:?}"
            );
        }
        assert!(under_aa.iter().any(|&b| b), "{under_aa:?}");
        let l2 = craft(
            json!({"attack": "autoattack", "eps": 0.5, "norm": "l2", "version": "standard"}),
            &model,
            &dev,
            &x,
            &y,
        );
        assert!(norms(&l2, &x, 6).1 <= 0.5 + 1e-5);
    }
}
