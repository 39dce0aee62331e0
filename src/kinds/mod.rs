//! Node kinds: the extension point for things that compute. One file per kind, one line in
//! [`KINDS`].
//!
//! A kind file declares one [`Kind`]: its checker side ([`NodeKind`]: name, category,
//! version, source files, parameters and check rule), its executor side ([`Runner`]: how it
//! runs, which files it reads) and its resource estimate. The checker, the executor and the
//! estimator are handed this registry and never name a kind, so a kind that leaves out a
//! part does not compile. Kinds defined outside the crate join with [`register`].
//!
//! Adding one: see "Adding a node kind" in the README; `evaluate.rs` is the worked example.

pub mod agreement;
pub mod craft;
pub mod ensemble;
pub mod evaluate;
pub mod examples;
pub mod export;
pub mod fit;
pub mod gaussian;
pub mod idx;
pub mod input;
pub mod labelled;
pub mod load;
pub mod mnist;
pub mod rubbish;
pub mod tensors;
pub mod transfer;
pub mod weights;

use crate::check::NodeKind;
use crate::estimate::EstimateRule;
#[cfg(feature = "compute")]
use crate::exec::Runner;
use crate::params::{Default, ParamDef, ParamType};
use crate::versions::CodeUnit;

/// Everything about a node kind.
pub struct Kind {
    /// The checker's side: name, category, version, parameters, check rule.
    pub spec: NodeKind,
    /// The executor's side: how it runs and what files it reads.
    #[cfg(feature = "compute")]
    pub runner: Runner,
    /// Its resource estimate (see `crate::estimate`).
    pub estimate: EstimateRule,
}

/// Every built-in node kind. A new kind adds its `KIND` here.
pub const KINDS: &[&Kind] = &[
    &mnist::KIND,
    &idx::KIND,
    &tensors::KIND,
    &gaussian::KIND,
    &craft::KIND,
    &fit::KIND,
    &load::KIND,
    &ensemble::KIND,
    &evaluate::KIND,
    &agreement::KIND,
    &rubbish::KIND,
    &transfer::KIND,
    &examples::KIND,
    &weights::KIND,
    &export::KIND,
    &input::KIND,
];

static REGISTERED: std::sync::RwLock<Vec<&'static Kind>> = std::sync::RwLock::new(Vec::new());

/// Adds a node kind defined outside this crate (a plugin, or a test) for the rest of the
/// process. A name any kind, layer or attack already has is refused.
pub fn register(kind: &'static Kind) -> Result<(), String> {
    let name = kind.spec.name;
    let taken = find(name).is_some() || crate::attacks::find(name).is_some() || crate::nn::layers::find(name).is_some();
    if taken {
        return Err(format!("a node kind, layer or attack named `{name}` already exists"));
    }
    REGISTERED.write().unwrap_or_else(|e| e.into_inner()).push(kind);
    Ok(())
}

/// Every kind: the built-in [`KINDS`], then the [`register`]ed ones.
pub fn every() -> Vec<&'static Kind> {
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    KINDS.iter().copied().chain(registered.iter().copied()).collect()
}

/// Looks a kind up by name.
pub fn find(name: &str) -> Option<&'static Kind> {
    every().into_iter().find(|k| k.spec.name == name)
}

/// The checker's view of every kind (what `check::check_with` takes).
pub fn specs() -> Vec<&'static NodeKind> {
    every().into_iter().map(|k| &k.spec).collect()
}

/// The executor's view of a kind (what `exec::RunOptions::runners` takes).
#[cfg(feature = "compute")]
pub fn runner(name: &str) -> Option<&'static Runner> {
    find(name).map(|k| &k.runner)
}

/// The estimator's view of a kind (what `estimate::estimate` takes).
pub fn estimate_rule(name: &str) -> Option<EstimateRule> {
    find(name).map(|k| k.estimate)
}

/// Every code unit whose version enters cache keys: node kinds, attacks and what they
/// share, layers and what every net shares, optimizers (see `crate::versions`).
pub fn code_units() -> Vec<CodeUnit> {
    let mut all: Vec<CodeUnit> = every()
        .iter()
        .map(|k| CodeUnit::new(format!("kind/{}", k.spec.name), k.spec.version, k.spec.sources))
        .collect();
    all.extend(crate::versions::units());
    all
}

/// `batch` of the kinds that score or craft: examples per batch, which bounds memory.
pub const EVAL_BATCH: ParamDef = ParamDef::or(ParamType::Int, Default::Int(500)).range(1.0, 100000.0);

/// `seed` of the kinds that draw random numbers (random attacks, noise); the checker fills
/// in the file's seed when it is left out.
pub const NODE_SEED: ParamDef = ParamDef::optional(ParamType::Int).range(0.0, 9.0e15);
