//! Code versions: every piece of code that decides a result has a version, and a node's
//! cache key covers the versions of everything it uses.
//!
//! The pieces ("code units") are the node kinds, the attacks and their shared machinery, the
//! layers and what every net shares, and the optimizers. Each names the source files it
//! covers; `tests/code_versions.rs` compares those files against a checked-in table of
//! digests and fails when one changed while no version covering it did, so a change to,
//! say, `src/attacks/fgsm.rs` cannot leave stale FGSM results valid in anyone's cache.

use crate::check::ir::Node;

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
        &["src/attacks/mod.rs", "src/attacks/last_pass.rs", "src/tensor.rs"],
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
pub fn used_by(node: &Node) -> CodeVersions<'_> {
    let mut used = Vec::new();
    collect(&node.params, &mut used);
    let mut used: Vec<(UnitName<'_>, u32)> = used.into_iter().filter_map(|name| version_of(name).map(|v| (name, v))).collect();
    used.push((UnitName("kind", node.kind.name), node.kind.version));
    used.sort_by(|a, b| a.0.cmp(&b.0));
    used.dedup_by(|a, b| a.0 == b.0);
    CodeVersions(used)
}

/// A unit's name as two parts, `family/member` (`attack/fgsm`), or the family alone when the
/// member is empty (`attacks`); borrowed from the node, since keys are computed for every
/// node of a plan. Ordered as the joined text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitName<'a>(&'static str, &'a str);

impl UnitName<'_> {
    fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let slash: &[u8] = if self.1.is_empty() { b"" } else { b"/" };
        self.0.bytes().chain(slash.iter().copied()).chain(self.1.bytes())
    }
}

impl Ord for UnitName<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes().cmp(other.bytes())
    }
}

impl PartialOrd for UnitName<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for UnitName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            "" => f.write_str(self.0),
            member => write!(f, "{}/{member}", self.0),
        }
    }
}

/// The versions a node uses, sorted by name; serialized as a map from the unit's name to
/// its version (the recipe's `code`).
#[derive(Debug)]
pub struct CodeVersions<'a>(Vec<(UnitName<'a>, u32)>);

impl CodeVersions<'_> {
    /// `(name, version)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (String, u32)> + '_ {
        self.0.iter().map(|(name, v)| (name.to_string(), *v))
    }
}

impl serde::Serialize for CodeVersions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Key<'a>(UnitName<'a>);
        impl serde::Serialize for Key<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0)
            }
        }
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, version) in &self.0 {
            map.serialize_entry(&Key(*name), version)?;
        }
        map.end()
    }
}

/// The version of the unit named `name`, looked up without building [`units`] (keys are
/// computed for every node of a plan).
fn version_of(name: UnitName<'_>) -> Option<u32> {
    let UnitName(family, member) = name;
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
fn collect<'a>(value: &'a serde_json::Value, names: &mut Vec<UnitName<'a>>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("layer", serde_json::Value::String(layer)) => {
                        names.push(UnitName("net", ""));
                        names.push(UnitName("layer", layer));
                    }
                    ("attack", serde_json::Value::String(attack)) => {
                        names.push(UnitName("attacks", ""));
                        names.push(UnitName("attack", attack));
                    }
                    ("optimizer", serde_json::Value::String(optimizer)) => names.push(UnitName("optimizer", optimizer)),
                    (_, serde_json::Value::Object(_) | serde_json::Value::Array(_)) => collect(inner, names),
                    _ => {}
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
            let (family, member) = unit.name.split_once('/').unwrap_or((&unit.name, ""));
            let family: &'static str = Box::leak(family.to_string().into_boxed_str());
            assert_eq!(version_of(UnitName(family, member)), Some(unit.version), "{}", unit.name);
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
        let used: Vec<String> = used_by(fit).iter().map(|(name, _)| name).collect();
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
        // The recipe's `code` reads as the map of names to versions that keys have hashed.
        let as_map: std::collections::BTreeMap<String, u32> = used_by(fit).iter().collect();
        assert_eq!(
            serde_json::to_string(&used_by(fit)).unwrap(),
            serde_json::to_string(&as_map).unwrap()
        );
    }

    #[test]
    fn an_attack_made_of_attacks_uses_each_of_them() {
        let source = crate::diagnostics::Source::new(
            "t.adv",
            "data d = mnist(split: \"test\")\n\
             net n = input([1, 28, 28]) >> flatten >> linear(10)\n\
             model m = fit(n, d)\n\
             attack strongest = worst_case(attacks: [fgsm(eps: 0.1), square(eps: 0.1, queries: 100)])\n\
             eval e = evaluate(m, d, attack: strongest)\n",
        );
        let program = crate::compile(&source).expect("checks");
        let eval = program.nodes.iter().find(|n| n.kind.name == "evaluate").unwrap();
        let used: Vec<String> = used_by(eval).iter().map(|(name, _)| name).collect();
        assert_eq!(
            used,
            ["attack/fgsm", "attack/square", "attack/worst_case", "attacks", "kind/evaluate"]
        );
    }

    #[test]
    fn unit_names_order_as_their_text() {
        let names = [
            UnitName("attack", "fgsm"),
            UnitName("attacks", ""),
            UnitName("attack", "fgsm_x"),
            UnitName("a", "z"),
        ];
        for a in names {
            for b in names {
                assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()), "{a} {b}");
            }
        }
    }
}
