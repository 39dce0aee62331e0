//! advpipe: adversarial-robustness pipelines.
//!
//! A pipeline file goes through five stages, one module each:
//! [`syntax`] (parse) -> [`check`] -> [`plan`] -> [`exec`] (execute) -> [`report`].
//! The tensor work behind execution lives in [`nn`] (models and training), [`attacks`],
//! [`eval`] and [`data`]; [`cache`] stores every artifact by content.

pub mod attacks;
pub mod cache;
pub mod check;
pub mod config;
pub mod data;
pub mod diagnostics;
pub mod error;
pub mod eval;
pub mod exec;
pub mod nn;
pub mod params;
pub mod plan;
pub mod report;
pub mod syntax;

pub use error::{Error, Result};

use diagnostics::{Diagnostic, Source};

/// Parse and check: the front end every command shares.
pub fn compile(source: &Source) -> std::result::Result<check::ir::Program, Vec<Diagnostic>> {
    let file = syntax::parse(&source.text)?;
    check::check(&file, &source.text)
}
