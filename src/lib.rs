//! advpipe: adversarial-robustness pipelines.
//!
//! A pipeline file goes through its stages, one module each: [`load_source`] gathers the
//! file and the files it imports into one [`Source`]; [`syntax`] (parse) -> [`check`]
//! (expand, then check) -> [`plan`] (with [`estimate`] and [`versions`]) -> [`exec`]
//! (execute) -> [`report`]. Node kinds, the extension point for things that compute, live
//! in [`kinds`], one file each, above the stages that use them. The work behind execution
//! lives in [`train`], [`nn`] (models), [`attacks`], [`eval`], [`data`] and [`tensor`];
//! [`cache`] stores every artifact by content; [`files`] reads every file, bounded.
//!
//! The `compute` feature (on by default) brings dfdx and everything that runs; without it
//! the crate is the front end alone (load, parse, expand, check, plan, keys, estimates).

#![warn(missing_docs)]
// Without `compute` the crate is the front end: the halves of kind, attack and layer files
// that run are left out, and what only they used is then unused.
#![cfg_attr(not(feature = "compute"), allow(unused_imports, dead_code))]

pub mod attacks;
pub mod cache;
pub mod check;
pub mod config;
pub mod data;
pub mod diagnostics;
pub mod error;
pub mod estimate;
pub mod eval;
#[cfg(feature = "compute")]
pub mod exec;
pub mod files;
pub mod kinds;
pub mod nn;
pub mod params;
pub mod plan;
#[cfg(feature = "compute")]
pub mod report;
pub mod syntax;
pub mod tensor;
pub mod train;
pub mod versions;

pub use error::{Error, Result};

use diagnostics::{Diagnostic, Source};

/// Parse and check: the front end every command shares.
pub fn compile(source: &Source) -> std::result::Result<check::ir::Program, Vec<Diagnostic>> {
    compile_with(source, &check::expand::Choices::default())
}

/// Parse and check with the profile and `--set` values the command line chose.
pub fn compile_with(source: &Source, choices: &check::expand::Choices) -> std::result::Result<check::ir::Program, Vec<Diagnostic>> {
    let file = syntax::parse(&source.text)?;
    check::check_with(&file, &source.text, choices, &kinds::specs())
}

/// A `--set NAME=VALUE` override: the name and the value, which must be a number, a string
/// or a list of them, written as in a pipeline file (`units=1600`, `seeds=[1,2,3]`).
pub fn parse_override(text: &str) -> std::result::Result<(String, syntax::ast::Expr), String> {
    use syntax::ast::{ExprKind, Item};
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!("`--set {text}`: write NAME=VALUE, e.g. `--set units=1600`"));
    };
    let (name, value) = (name.trim(), value.trim());
    let parsed = syntax::parse(&format!("param {name} = {value}"));
    let expr = match parsed.as_ref().map(|f| f.items.as_slice()) {
        Ok([Item::Decl(d)]) if d.name.name == name && d.indices.is_empty() => d.value.clone(),
        _ => return Err(format!("`--set {text}`: `{name}` is not a name or `{value}` is not a value")),
    };
    fn literal(e: &syntax::ast::Expr) -> bool {
        match &e.kind {
            ExprKind::Number { .. } | ExprKind::Str(_) => true,
            ExprKind::List(items) => items.iter().all(literal),
            _ => false,
        }
    }
    if !literal(&expr) {
        return Err(format!(
            "`--set {text}`: the value must be a number, a \"string\" or a [list] of them"
        ));
    }
    Ok((name.to_string(), expr))
}

/// Why a pipeline file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file itself could not be read.
    Io(Error),
    /// An `import` failed (missing file, or a cycle); the diagnostics point at it.
    Imports(Source, Vec<Diagnostic>),
}

/// Reads a pipeline file and, recursively, every file it imports (paths relative to the
/// importing file; each file once; a cycle is an error) into one [`Source`], whose text is
/// the file followed by its imports, so that [`compile`] sees every declaration.
pub fn load_source(path: &std::path::Path) -> std::result::Result<Source, LoadError> {
    let text = read_pipeline_text(path).map_err(|e| match e {
        PipelineText::Unreadable(e) => LoadError::Io(Error::msg(format!("cannot read pipeline file: {e}"))),
        PipelineText::NotUtf8(bad) => LoadError::Imports(bad.0, vec![bad.1]),
    })?;
    let root = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut source = Source::new(path.display().to_string(), text.clone());
    let mut diags = Vec::new();
    let mut seen = std::collections::HashSet::from([root.clone()]);
    let dir = path.parent().unwrap_or(std::path::Path::new("")).to_path_buf();
    include_imports(&mut source, 0, &text, &dir, &mut vec![root], &mut seen, &mut diags);
    if diags.is_empty() {
        Ok(source)
    } else {
        Err(LoadError::Imports(source, diags))
    }
}

/// Why a pipeline file's text could not be had.
enum PipelineText {
    /// Not a regular file, too large, or an I/O error.
    Unreadable(Error),
    /// Bytes that are not UTF-8: a diagnostic at the first bad one.
    NotUtf8(Box<(Source, Diagnostic)>),
}

/// Reads a pipeline file: a regular file of at most [`files::FileKind::Pipeline`]'s limit,
/// in UTF-8.
fn read_pipeline_text(path: &std::path::Path) -> std::result::Result<String, PipelineText> {
    let bytes = files::read(path, files::FileKind::Pipeline).map_err(PipelineText::Unreadable)?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let shown = String::from_utf8_lossy(e.as_bytes()).into_owned();
        // The lossy text has the same prefix, so the offset still points at the bad byte.
        let diag = Diagnostic::new(
            diagnostics::codes::SYNTAX,
            diagnostics::Span::new(at, at + 1),
            "the file is not valid UTF-8",
        )
        .label("this byte does not start a UTF-8 character")
        .help("pipeline files are UTF-8 text; re-save the file as UTF-8");
        PipelineText::NotUtf8(Box::new((Source::new(path.display().to_string(), shown), diag)))
    })
}

fn include_imports(
    source: &mut Source,
    start: usize,
    text: &str,
    dir: &std::path::Path,
    chain: &mut Vec<std::path::PathBuf>,
    seen: &mut std::collections::HashSet<std::path::PathBuf>,
    diags: &mut Vec<Diagnostic>,
) {
    // A file that does not parse brings no imports; its syntax error is reported when the
    // whole source is parsed.
    let Ok(file) = syntax::parse(text) else { return };
    for item in &file.items {
        let syntax::ast::Item::Import { path, span } = item else { continue };
        let span = diagnostics::Span::new(span.start + start, span.end + start);
        let target = dir.join(path);
        let canonical = match target.canonicalize() {
            Ok(c) => c,
            Err(e) => {
                diags.push(
                    Diagnostic::new(
                        diagnostics::codes::BAD_IMPORT,
                        span,
                        format!("cannot import {}: {e}", target.display()),
                    )
                    .label("not found")
                    .help("import paths are relative to the importing file"),
                );
                continue;
            }
        };
        if let Some(at) = chain.iter().position(|c| *c == canonical) {
            let names: Vec<String> = chain[at..]
                .iter()
                .chain([&canonical])
                .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
                .collect();
            diags.push(
                Diagnostic::new(
                    diagnostics::codes::BAD_IMPORT,
                    span,
                    format!("import cycle: {}", names.join(" -> ")),
                )
                .label("imports a file that imports this one")
                .help("move the shared declarations into a file that imports neither"),
            );
            continue;
        }
        if !seen.insert(canonical.clone()) {
            continue;
        }
        if canonical.extension().is_none_or(|e| e != "adv") {
            diags.push(
                Diagnostic::new(
                    diagnostics::codes::BAD_IMPORT,
                    span,
                    format!("cannot import {}: only pipeline files (`.adv`) can be imported", target.display()),
                )
                .label("not a .adv file"),
            );
            continue;
        }
        let imported = match read_pipeline_text(&canonical) {
            Ok(t) => t,
            Err(PipelineText::NotUtf8(bad)) => {
                // Say it at the import, and show where in the imported file.
                let (line, col) = bad.0.line_col(bad.1.span.start);
                diags.push(
                    Diagnostic::new(
                        diagnostics::codes::BAD_IMPORT,
                        span,
                        format!("cannot import {}: it is not valid UTF-8 at {line}:{col}", target.display()),
                    )
                    .label("unreadable"),
                );
                continue;
            }
            Err(PipelineText::Unreadable(e)) => {
                diags.push(Diagnostic::new(diagnostics::codes::BAD_IMPORT, span, format!("cannot import: {e}")).label("unreadable"));
                continue;
            }
        };
        let imported_start = source.append(target.display().to_string(), &imported);
        chain.push(canonical.clone());
        let next_dir = canonical.parent().unwrap_or(std::path::Path::new("")).to_path_buf();
        include_imports(source, imported_start, &imported, &next_dir, chain, seen, diags);
        chain.pop();
    }
}
