//! Code versions: every piece of code that decides a result has a version, and a node's
//! cache key covers the versions of everything it uses.
//!
//! The pieces ("code units") are the node kinds, the attacks and their shared machinery, the
//! layers and what every net shares, and the optimizers. Each names the source files it
//! covers; `tests/code_versions.rs` compares those files against a checked-in table of
//! digests and fails when one changed while no version covering it did, so a change to,
//! say, `src/attacks/fgsm.rs` cannot leave stale FGSM results valid in anyone's cache.

use crate::check::ir::Node;
use std::collections::BTreeMap;

/// A piece of code whose version enters the keys of the nodes that use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeUnit {
    /// `kind/fit`, `attack/fgsm`, `attacks`, `layer/linear`, `net`, `optimizer/sgd`.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// The source files it covers, relative to the crate root.
    pub sources: Vec<&'static str>,
}

impl CodeUnit {
    /// A unit named `name` at `version`, covering `sources`.
    pub fn new(name: String, version: u32, sources: &[&'static str]) -> CodeUnit {
        CodeUnit {
            name,
            version,
            sources: sources.to_vec(),
        }
    }
}

/// Every code unit below the node kinds: attacks and what they share, layers and what every
/// net shares, optimizers (and attacks registered at run time). `crate::kinds::code_units`
/// adds the kinds.
pub fn units() -> Vec<CodeUnit> {
    let mut all = Vec::new();
    all.push(CodeUnit::new(
        "attacks".into(),
        crate::attacks::MACHINERY_VERSION,
        &["src/attacks/mod.rs", "src/tensor.rs"],
    ));
    for attack in crate::attacks::all() {
        all.push(CodeUnit::new(format!("attack/{}", attack.name), attack.version, &[attack.source]));
    }
    all.push(CodeUnit::new(
        "net".into(),
        crate::nn::layers::NET_VERSION,
        crate::nn::layers::NET_SOURCES,
    ));
    for layer in crate::nn::layers::all() {
        all.push(CodeUnit::new(format!("layer/{}", layer.name), layer.version, layer.sources));
    }
    for (name, version, sources) in crate::train::Optimizer::VERSIONS {
        all.push(CodeUnit::new(format!("optimizer/{name}"), *version, sources));
    }
    all
}

/// The versions of the code units a node uses: its kind, and every attack, layer and
/// optimizer its parameters name. Upstream code is covered through the input keys.
pub fn used_by(node: &Node) -> BTreeMap<String, u32> {
    let mut names = Vec::new();
    collect(&node.params, &mut names);
    let mut used: BTreeMap<String, u32> = names.into_iter().filter_map(|name| version_of(&name).map(|v| (name, v))).collect();
    used.insert(format!("kind/{}", node.kind.name), node.kind.version);
    used
}

/// The version of the unit named `name`, looked up without building [`units`] (keys are
/// computed for every node of a plan).
fn version_of(name: &str) -> Option<u32> {
    let (family, member) = name.split_once('/').unwrap_or((name, ""));
    match family {
        "attacks" => Some(crate::attacks::MACHINERY_VERSION),
        "attack" => crate::attacks::find(member).map(|a| a.version),
        "net" => Some(crate::nn::layers::NET_VERSION),
        "layer" => crate::nn::layers::find(member).map(|l| l.version),
        "optimizer" => crate::train::Optimizer::VERSIONS
            .iter()
            .find(|(n, ..)| *n == member)
            .map(|(_, v, _)| *v),
        _ => None,
    }
}

/// Names the units a parameter value refers to: `{"layer": ..}`, `{"attack": ..}` and
/// `"optimizer": ..` wherever they appear.
fn collect(value: &serde_json::Value, names: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner.as_str()) {
                    ("layer", Some(layer)) => {
                        names.push("net".into());
                        names.push(format!("layer/{layer}"));
                    }
                    ("attack", Some(attack)) => {
                        names.push("attacks".into());
                        names.push(format!("attack/{attack}"));
                    }
                    ("optimizer", Some(optimizer)) => names.push(format!("optimizer/{optimizer}")),
                    _ => collect(inner, names),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, names)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_below_the_kinds_is_found_by_name() {
        for unit in units() {
            assert_eq!(version_of(&unit.name), Some(unit.version), "{}", unit.name);
        }
    }

    #[test]
    fn unit_names_are_unique() {
        let units = crate::kinds::code_units();
        let mut names: Vec<&str> = units.iter().map(|u| u.name.as_str()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn a_fit_uses_its_layers_attacks_and_optimizer() {
        let source = crate::diagnostics::Source::new(
            "t.adv",
            "data d = mnist(split: \"train\")\n\
             net n = input([1, 28, 28]) >> flatten >> maxout(10, pieces: 2) >> linear(10)\n\
             attack a = fgsm(eps: 0.1)\n\
             model m = fit(n, d, loss: 0.5 * clean + 0.5 * a, optimizer: \"adam\")\n",
        );
        let program = crate::compile(&source).expect("checks");
        let fit = program.nodes.iter().find(|n| n.kind.name == "fit").unwrap();
        let used: Vec<String> = used_by(fit).into_keys().collect();
        assert_eq!(
            used,
            [
                "attack/fgsm",
                "attacks",
                "kind/fit",
                "layer/flatten",
                "layer/linear",
                "layer/maxout",
                "net",
                "optimizer/adam"
            ]
        );
    }
}
