//! What the checker knows of a node kind: its name, category, version, parameter signature
//! and check rule. The kinds themselves live in `crate::kinds`, one file each; the checker
//! is handed the registry, so it never names a kind. Layers live in `nn::layers::LAYERS`,
//! attacks in `attacks::ATTACKS`.
//!
//! `version` is part of every cache key: bump it when a kind's results change for the same
//! parameters, and stale cache entries stop matching.

use super::{At, Bound, Checker, Value};
use crate::params::{Category, ParamSpec};

/// A node kind's check rule: from the bound arguments, the value the call stands for (a
/// node pushed with [`Checker::push`], or a net), or `None` after reporting why not.
pub type CheckRule = fn(&mut Checker<'_>, Bound, &At<'_>) -> Option<Value>;

/// A node kind, as the checker sees it.
#[derive(Debug)]
pub struct NodeKind {
    /// Its name in the language.
    pub name: &'static str,
    /// What it produces.
    pub category: Category,
    /// Bumped whenever its output changes for the same inputs.
    pub version: u32,
    /// The files that compute it, whose changes `tests/code_versions.rs` watches.
    pub sources: &'static [&'static str],
    /// Whether its artifact is stored; cheap kinds (reading data, grouping models) are
    /// recomputed when needed instead.
    pub cached: bool,
    /// One line for the reference.
    pub doc: &'static str,
    /// Its parameters, positional in this order.
    pub params: &'static [ParamSpec],
    /// Its check rule.
    pub check: CheckRule,
}
