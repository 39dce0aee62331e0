//! Sweeps, expanded before checking: `for eps in [0.1, 0.25] { eval e[eps] = ... }`
//! becomes one declaration per element, named `e[0.1]` and `e[0.25]`, with `eps` replaced
//! by the element. Indexed references (`e[0.1]`, or `e[eps]` inside a sweep) become plain
//! names, and `{eps}` in a row label becomes the element. Sweeps nest; what a sweep runs
//! over is a list written in the file or `range(start, stop, step)` (stop included when a
//! step lands on it).
//!
//! Parameters are expanded here too: `param units = 240` makes `units` stand for 240
//! everywhere, and `param units = profile(quick: 240, full: 1600)` takes the value of the
//! profile the command line chose (`--profile full`; the first one listed by default).
//! `--set units=800` overrides either. Indexing by a list (`m[[1, 2]]`, `m[seeds]`,
//! `m[range(1, 12, 1)]`) gives the list of indexed names, and a field of a list is the list
//! of fields, so `ensemble(member[seeds])` and `mean(adv[seeds].error)` follow a parameter.

use crate::diagnostics::{codes, Diagnostic, Span};
use crate::syntax::ast::*;

/// What the command line chose: a profile and parameter overrides.
#[derive(Clone, Debug, Default)]
pub struct Choices {
    /// `--profile NAME`: which value of every `profile(...)` to take.
    pub profile: Option<String>,
    /// `--set NAME=VALUE`, the values already parsed.
    pub overrides: Vec<(String, Expr)>,
}

/// One `param` as this run took it, for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ParamChoice {
    /// The parameter's name.
    pub name: String,
    /// Its value, as text.
    pub value: String,
    /// Where the value came from: `profile quick`, `--set` or `file`.
    pub from: String,
}

/// A file after expansion, with the parameter values it was expanded with.
pub struct Expanded<'f> {
    /// Declarations, tables and plots, with no sweeps, params or indices left; borrowed
    /// from the file where expansion leaves them as written.
    pub items: Vec<std::borrow::Cow<'f, Item>>,
    /// Every `param`, in file order.
    pub params: Vec<ParamChoice>,
    /// Every profile name a `profile(...)` offers, in order of first appearance.
    pub profiles: Vec<String>,
}

/// The file with every sweep expanded, every parameter replaced by its value and every index
/// resolved to a name.
pub fn expand<'f>(file: &'f File, choices: &Choices) -> Result<Expanded<'f>, Vec<Diagnostic>> {
    use std::borrow::Cow;
    let mut diags = Vec::new();
    let (scope, params, profiles) = params(file, choices, &mut diags);
    let mut items = Vec::new();
    let mut expanded = Vec::new();
    let mut budget = Budget(MAX_SWEEP_ELEMENTS);
    for item in &file.items {
        match item {
            Item::Decl(d) if d.category.name == "param" => {}
            _ if as_written(item, &scope) => items.push(Cow::Borrowed(item)),
            _ => {
                expand_item(item, &scope, false, &mut expanded, &mut diags, &mut budget);
                items.extend(expanded.drain(..).map(Cow::Owned));
            }
        }
    }
    // A mistake inside a sweep's body is made once per element; say it once.
    diags.sort_by_key(|d| d.span.start);
    diags.dedup_by(|a, b| a.span == b.span && a.code == b.code && a.message == b.message);
    if diags.is_empty() {
        Ok(Expanded { items, params, profiles })
    } else {
        Err(diags)
    }
}

/// The top-level `param` declarations: each name with the value this run takes.
#[allow(clippy::type_complexity)]
fn params<'f>(file: &'f File, choices: &Choices, diags: &mut Vec<Diagnostic>) -> (Vec<(&'f str, Expr)>, Vec<ParamChoice>, Vec<String>) {
    let decls: Vec<&Decl> = file
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Decl(d) if d.category.name == "param" => Some(d),
            _ => None,
        })
        .collect();
    let mut profiles: Vec<String> = Vec::new();
    for d in &decls {
        let ExprKind::Call { callee, args } = &d.value.kind else { continue };
        for name in args.iter().filter_map(|a| a.name.as_ref()).filter(|_| callee.name == "profile") {
            if !profiles.contains(&name.name) {
                profiles.push(name.name.clone());
            }
        }
    }
    // A profile no param offers is the command line's mistake, reported by the caller.
    let chosen = choices.profile.as_ref().filter(|p| profiles.contains(p));
    let mut scope: Vec<(&str, Expr)> = Vec::new();
    let mut taken = Vec::new();
    for (i, d) in decls.iter().enumerate() {
        if let Some(first) = decls[..i].iter().find(|f| f.name.name == d.name.name) {
            diags.push(
                Diagnostic::new(codes::BAD_PARAM, d.name.span, format!("param `{}` is declared twice", d.name.name))
                    .label("declared again here")
                    .note(first.name.span, "first declared here"),
            );
            continue;
        }
        if let Some(index) = d.indices.first() {
            diags.push(
                Diagnostic::new(codes::BAD_PARAM, index.span, "a param takes no index")
                    .label("index")
                    .help("a param is one value, e.g. `param seeds = [1, 2, 3]`"),
            );
        }
        let overridden = choices.overrides.iter().rev().find(|(n, _)| *n == d.name.name);
        let (value, from) = match (overridden, &d.value.kind) {
            (Some((_, e)), _) => (
                Expr {
                    kind: e.kind.clone(),
                    span: d.value.span,
                },
                "--set".to_string(),
            ),
            (None, ExprKind::Call { callee, args }) if callee.name == "profile" => match profile_value(d, args, chosen, diags) {
                Some(pick) => pick,
                None => continue,
            },
            _ => (d.value.clone(), "file".to_string()),
        };
        let value = substitute(&value, &scope, diags);
        taken.push(ParamChoice {
            name: d.name.name.clone(),
            value: source_text(&value),
            from,
        });
        scope.push((&d.name.name, value));
    }
    for item in &file.items {
        let Item::Decl(d) = item else { continue };
        if d.category.name == "param" {
            continue;
        }
        if let Some(p) = decls.iter().find(|p| p.name.name == d.name.name) {
            diags.push(
                Diagnostic::new(codes::DUPLICATE_NAME, d.name.span, format!("`{}` is already a param", d.name.name))
                    .label("declared again here")
                    .note(p.name.span, "the param")
                    .help("rename one of the two"),
            );
        }
    }
    (scope, taken, profiles)
}

/// A param's value as it would be written in a file: `240`, `"best"`, `[1, 2]`.
fn source_text(e: &Expr) -> String {
    match &e.kind {
        ExprKind::List(items) => format!("[{}]", items.iter().map(source_text).collect::<Vec<_>>().join(", ")),
        _ => e.to_string(),
    }
}

/// The value a `profile(quick: .., full: ..)` takes: the chosen profile's, else the first.
fn profile_value(d: &Decl, args: &[Arg], chosen: Option<&String>, diags: &mut Vec<Diagnostic>) -> Option<(Expr, String)> {
    if let Some(positional) = args.iter().find(|a| a.name.is_none()) {
        diags.push(
            Diagnostic::new(
                codes::BAD_PARAM,
                positional.value.span,
                "every value of `profile(...)` needs a profile name",
            )
            .label("no name")
            .help("e.g. `param units = profile(quick: 240, full: 1600)`"),
        );
        return None;
    }
    let pick = match chosen {
        Some(p) => args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.name == *p)),
        None => args.first(),
    };
    match pick {
        Some(a) => Some((a.value.clone(), format!("profile {}", a.name.as_ref().expect("named").name))),
        None => {
            let offered: Vec<&str> = args.iter().filter_map(|a| a.name.as_ref().map(|n| n.name.as_str())).collect();
            let wanted = chosen.map_or("", |p| p.as_str());
            diags.push(
                Diagnostic::new(
                    codes::BAD_PARAM,
                    d.value.span,
                    format!("param `{}` has no value for profile `{wanted}`", d.name.name),
                )
                .label(if offered.is_empty() {
                    "no profiles given".to_string()
                } else {
                    format!("offers {}", offered.join(", "))
                })
                .help(format!("add `{wanted}: VALUE` to this `profile(...)`")),
            );
            None
        }
    }
}

/// Loop variables in scope, innermost last, with the element each stands for.
type Scope<'a> = [(&'a str, Expr)];

/// How many sweep elements a file may expand, nested sweeps multiplying: a few nested
/// ranges would otherwise ask for billions of declarations.
pub const MAX_SWEEP_ELEMENTS: usize = 100_000;

/// Sweep elements still allowed in this expansion.
struct Budget(usize);

impl Budget {
    /// Takes one element of the sweep at `span`; false (with a diagnostic, once) when none is left.
    fn take(&mut self, span: Span, diags: &mut Vec<Diagnostic>) -> bool {
        if self.0 == 0 {
            return false;
        }
        self.0 -= 1;
        if self.0 == 0 {
            diags.push(
                Diagnostic::new(
                    codes::BAD_SWEEP,
                    span,
                    format!("the sweeps expand to more than {MAX_SWEEP_ELEMENTS} elements"),
                )
                .label("nested sweeps multiply")
                .help("sweep fewer values, or split the pipeline into files"),
            );
        }
        true
    }
}

/// One item with `scope`'s names replaced; `in_sweep` for the body of a `for` (the scope
/// also holds the file's params, so it is not empty at the top level).
fn expand_item(item: &Item, scope: &Scope, in_sweep: bool, out: &mut Vec<Item>, diags: &mut Vec<Diagnostic>, budget: &mut Budget) {
    match item {
        Item::Import { span, .. } if in_sweep => diags.push(
            Diagnostic::new(
                codes::BAD_IMPORT,
                *span,
                "`import` belongs at the top of a file, not inside a sweep",
            )
            .label("inside a sweep")
            .help("move the import out of the `for`"),
        ),
        // The loader (`advpipe::load_source`) has already brought imported files in.
        Item::Import { .. } => {}
        Item::Seed { value, span } => out.push(Item::Seed {
            value: substitute(value, scope, diags),
            span: *span,
        }),
        Item::Decl(d) if d.category.name == "param" => diags.push(
            Diagnostic::new(
                codes::BAD_PARAM,
                d.category.span,
                "a `param` belongs at the top level, not inside a sweep",
            )
            .label("inside a sweep")
            .help("declare the param before the `for`; the sweep's variable already varies"),
        ),
        Item::Decl(d) => {
            let mut name = d.name.name.clone();
            for index in &d.indices {
                match key(&substitute(index, scope, diags)) {
                    Some(k) => name.push_str(&format!("[{k}]")),
                    None => diags.push(bad_index(index.span)),
                }
            }
            let span = d.indices.last().map_or(d.name.span, |i| d.name.span.to(i.span));
            out.push(Item::Decl(Decl {
                category: d.category.clone(),
                name: Ident { name, span },
                indices: vec![],
                value: substitute(&d.value, scope, diags),
                span: d.span,
            }));
        }
        Item::Table(t) => {
            let mut rows = Vec::new();
            for entry in &t.rows {
                expand_entry(entry, scope, &mut rows, diags, budget);
            }
            // `{param}` in a title, as in a row label.
            let title = fill(&t.title, scope);
            out.push(Item::Table(Table { rows, title, ..t.clone() }));
        }
        Item::Sweep(sweep) => {
            for element in elements(sweep.over.clone(), scope, diags) {
                if !budget.take(sweep.var.span, diags) {
                    return;
                }
                let inner = with(scope, &sweep.var.name, element);
                for item in &sweep.body {
                    expand_item(item, &inner, true, out, diags, budget);
                }
            }
        }
    }
}

/// Whether expansion leaves `item` exactly as written: a declaration or seed that names no
/// parameter or loop variable and holds no index and no arithmetic (which is folded).
fn as_written(item: &Item, scope: &Scope) -> bool {
    fn expr(e: &Expr, scope: &Scope) -> bool {
        match &e.kind {
            ExprKind::Number { .. } | ExprKind::Str(_) => true,
            ExprKind::Name(n) => !scope.iter().any(|(var, _)| var == n),
            ExprKind::List(items) | ExprKind::Stack(items) => items.iter().all(|i| expr(i, scope)),
            ExprKind::Call { args, .. } => args.iter().all(|a| expr(&a.value, scope)),
            ExprKind::Field { base, .. } => expr(base, scope),
            ExprKind::Index { .. } | ExprKind::Sum(_) | ExprKind::Product(_) | ExprKind::Negate(_) | ExprKind::Reciprocal(_) => false,
        }
    }
    match item {
        Item::Decl(d) => d.indices.is_empty() && expr(&d.value, scope),
        Item::Seed { value, .. } => expr(value, scope),
        Item::Import { .. } | Item::Table(_) | Item::Sweep(_) => false,
    }
}

/// `text` with `{name}` replaced by each name's value in `scope`.
fn fill(text: &str, scope: &Scope) -> String {
    let mut text = text.to_string();
    for (var, element) in scope {
        text = text.replace(&format!("{{{var}}}"), &key(element).unwrap_or_default());
    }
    text
}

fn expand_entry(entry: &TableEntry, scope: &Scope, out: &mut Vec<TableEntry>, diags: &mut Vec<Diagnostic>, budget: &mut Budget) {
    match entry {
        TableEntry::Row(row) => {
            let label = fill(&row.label, scope);
            let fields = row
                .fields
                .iter()
                .map(|(n, e)| {
                    let mut e = substitute(e, scope, diags);
                    // `column: "{attack}"`: a string field fills `{var}` as the label does.
                    if let ExprKind::Str(text) = &e.kind {
                        e.kind = ExprKind::Str(fill(text, scope));
                    }
                    (n.clone(), e)
                })
                .collect();
            out.push(TableEntry::Row(Row {
                label,
                span: row.span,
                fields,
            }));
        }
        TableEntry::Sweep(sweep) => {
            for element in elements(sweep.over.clone(), scope, diags) {
                if !budget.take(sweep.var.span, diags) {
                    return;
                }
                let inner = with(scope, &sweep.var.name, element);
                for e in &sweep.body {
                    expand_entry(e, &inner, out, diags, budget);
                }
            }
        }
    }
}

fn with<'a>(scope: &Scope<'a>, var: &'a str, element: Expr) -> Vec<(&'a str, Expr)> {
    let mut inner = scope.to_vec();
    inner.push((var, element));
    inner
}

/// The canonical text of an index: a number in Rust's shortest form, a string's text, or a
/// name.
fn key(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Number { value, .. } => Some(format!("{value}")),
        ExprKind::Str(s) => Some(s.clone()),
        ExprKind::Name(n) => Some(n.clone()),
        _ => None,
    }
}

fn bad_index(span: Span) -> Diagnostic {
    Diagnostic::new(codes::BAD_SWEEP, span, "an index must be a number, a string or a name")
        .label("not usable as an index")
        .help("index by the sweep's variable, e.g. `e[eps]`, or by a value, e.g. `e[0.25]`")
}

/// What a sweep runs over, one expression per element.
fn elements(over: Expr, scope: &Scope, diags: &mut Vec<Diagnostic>) -> Vec<Expr> {
    let over = substitute(&over, scope, diags);
    match &over.kind {
        ExprKind::List(items) if !items.is_empty() => items.clone(),
        ExprKind::Call { callee, args } if callee.name == "range" => match range(args) {
            Ok(values) => values
                .into_iter()
                .map(|value| Expr {
                    kind: ExprKind::Number { value, percent: false },
                    span: over.span,
                })
                .collect(),
            Err(why) => {
                diags.push(
                    Diagnostic::new(codes::BAD_SWEEP, over.span, format!("bad range: {why}"))
                        .label("here")
                        .help("range(start, stop, step), e.g. range(0.05, 0.25, 0.05)"),
                );
                vec![]
            }
        },
        _ => {
            diags.push(
                Diagnostic::new(codes::BAD_SWEEP, over.span, "a sweep runs over a non-empty list or a range")
                    .label("not a list")
                    .help("e.g. `for eps in [0.1, 0.25] { ... }` or `for eps in range(0.05, 0.25, 0.05) { ... }`"),
            );
            vec![]
        }
    }
}

/// `range(start, stop, step)`: start, start + step, ... up to stop (included when a step
/// lands on it, within 1e-9), each rounded to 12 significant digits so `0.1 * 3` is 0.3.
fn range(args: &[Arg]) -> Result<Vec<f64>, String> {
    let number = |i: usize, name: &str| -> Result<f64, String> {
        let arg = args
            .iter()
            .filter(|a| a.name.is_none())
            .nth(i)
            .or_else(|| args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.name == name)));
        match arg.map(|a| &a.value.kind) {
            Some(ExprKind::Number { value, .. }) => Ok(*value),
            _ => Err(format!("`{name}` must be a number")),
        }
    };
    let (start, stop, step) = (number(0, "start")?, number(1, "stop")?, number(2, "step")?);
    if step.is_nan() || step <= 0.0 || stop < start {
        return Err("it needs step > 0 and stop >= start".into());
    }
    // Counted in f64: a huge range must be refused, not wrap around as an integer.
    let count = ((stop - start) / step + 1e-9).floor() + 1.0;
    if count.is_nan() || count > 10_000.0 {
        return Err(format!("{count:.0} elements; a sweep has at most 10000"));
    }
    let count = count as usize;
    Ok((0..count).map(|i| round12(start + step * i as f64)).collect())
}

fn round12(v: f64) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    let digits = 12 - v.abs().log10().ceil() as i32;
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// The expression with loop variables replaced by their elements and indices resolved.
fn substitute(e: &Expr, scope: &Scope, diags: &mut Vec<Diagnostic>) -> Expr {
    let span = e.span;
    let kind = match &e.kind {
        ExprKind::Name(n) => match scope.iter().rev().find(|(var, _)| var == n) {
            Some((_, element)) => element.kind.clone(),
            None => ExprKind::Name(n.clone()),
        },
        ExprKind::Index { base, index } => {
            let base = substitute(base, scope, diags);
            let index = substitute(index, scope, diags);
            let many = match &index.kind {
                ExprKind::List(items) => Some(items.clone()),
                ExprKind::Call { callee, args } if callee.name == "range" => range(args).ok().map(|values| {
                    values
                        .into_iter()
                        .map(|value| Expr {
                            kind: ExprKind::Number { value, percent: false },
                            span: index.span,
                        })
                        .collect()
                }),
                _ => None,
            };
            match (&base.kind, key(&index), many) {
                (ExprKind::Name(n), _, Some(items)) => ExprKind::List(
                    items
                        .iter()
                        .map(|i| match key(i) {
                            Some(k) => Expr {
                                kind: ExprKind::Name(format!("{n}[{k}]")),
                                span,
                            },
                            None => {
                                diags.push(bad_index(i.span));
                                Expr {
                                    kind: ExprKind::Name(String::new()),
                                    span,
                                }
                            }
                        })
                        .collect(),
                ),
                (ExprKind::Name(n), Some(k), None) => ExprKind::Name(format!("{n}[{k}]")),
                (ExprKind::Name(_), None, None) => {
                    diags.push(bad_index(index.span));
                    ExprKind::Name(String::new())
                }
                _ => {
                    diags.push(
                        Diagnostic::new(codes::BAD_SWEEP, base.span, "only names can be indexed")
                            .label("not a name")
                            .help("index a swept declaration, e.g. `e[0.25]`"),
                    );
                    ExprKind::Name(String::new())
                }
            }
        }
        ExprKind::List(items) => ExprKind::List(items.iter().map(|i| substitute(i, scope, diags)).collect()),
        ExprKind::Call { callee, args } => ExprKind::Call {
            callee: callee.clone(),
            args: args
                .iter()
                .map(|a| Arg {
                    name: a.name.clone(),
                    value: substitute(&a.value, scope, diags),
                })
                .collect(),
        },
        ExprKind::Field { base, field } => match substitute(base, scope, diags) {
            // A field of a list is the list of fields: `adv[seeds].error`.
            Expr {
                kind: ExprKind::List(items),
                ..
            } => ExprKind::List(
                items
                    .into_iter()
                    .map(|item| Expr {
                        span: item.span,
                        kind: ExprKind::Field {
                            base: Box::new(item),
                            field: field.clone(),
                        },
                    })
                    .collect(),
            ),
            base => ExprKind::Field {
                base: Box::new(base),
                field: field.clone(),
            },
        },
        ExprKind::Stack(parts) => ExprKind::Stack(parts.iter().map(|p| substitute(p, scope, diags)).collect()),
        ExprKind::Sum(parts) => ExprKind::Sum(parts.iter().map(|p| substitute(p, scope, diags)).collect()),
        ExprKind::Product(parts) => ExprKind::Product(parts.iter().map(|p| substitute(p, scope, diags)).collect()),
        ExprKind::Negate(e) => ExprKind::Negate(Box::new(substitute(e, scope, diags))),
        ExprKind::Reciprocal(e) => ExprKind::Reciprocal(Box::new(substitute(e, scope, diags))),
        other => other.clone(),
    };
    fold(Expr { kind, span })
}

/// Arithmetic on numbers done here, so that `8 / 255` is a number wherever a number goes
/// (an index, a param shown in the report); what is left (a loss mixture, a division by
/// zero) is the checker's.
fn fold(e: Expr) -> Expr {
    let number = |e: &Expr| match e.kind {
        ExprKind::Number { value, .. } => Some(value),
        _ => None,
    };
    let value = match &e.kind {
        ExprKind::Sum(terms) => terms.iter().map(number).sum::<Option<f64>>(),
        ExprKind::Product(factors) => factors.iter().map(number).product::<Option<f64>>(),
        ExprKind::Negate(x) => number(x).map(|v| -v),
        ExprKind::Reciprocal(x) => number(x).filter(|&v| v != 0.0).map(|v| 1.0 / v),
        _ => None,
    };
    match value {
        Some(value) if value.is_finite() => Expr {
            kind: ExprKind::Number { value, percent: false },
            span: e.span,
        },
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(src: &str) -> String {
        let file = crate::syntax::parse(src).unwrap();
        let items = expand(&file, &Choices::default()).unwrap().items;
        File {
            items: items.into_iter().map(|i| i.into_owned()).collect(),
        }
        .to_string()
    }

    #[test]
    fn an_import_beside_params_is_at_the_top_level() {
        // A file with a `param` that imports another was refused as "inside a sweep" (the
        // params are in the scope at the top level too).
        let src = "param n = 3\nimport \"common.adv\"\nfor k in [1] { import \"other.adv\" }";
        let Err(diags) = expand(&crate::syntax::parse(src).unwrap(), &Choices::default()) else {
            panic!("the import inside the sweep was accepted")
        };
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(&src[diags[0].span.start..diags[0].span.end], "import \"other.adv\"");
    }

    #[test]
    fn arithmetic_on_numbers_is_done_before_checking() {
        let src = "param base = 8 / 255\nfor k in [1, 2] { attack a[k] = fgsm(eps: k * base - 1 / 255) }\neval e[2 * 2] = evaluate(m, t)\nattack z = fgsm(eps: 1 / 0)";
        let text = show(src);
        assert!(text.contains(&format!("eps: {}", 8.0 / 255.0 - 1.0 / 255.0)), "{text}");
        assert!(text.contains(&format!("eps: {}", 2.0 * (8.0 / 255.0) - 1.0 / 255.0)), "{text}");
        assert!(text.contains("e[4]"), "{text}");
        // A division by zero is left for the checker to locate and explain.
        assert!(text.contains("(* 1 (/ 0))"), "{text}");
    }

    #[test]
    fn a_huge_range_is_refused_not_wrapped() {
        // Found by the `compile` fuzz target: the count overflowed (and wrapped to an empty
        // sweep in release builds).
        let src = "for e in range(0, 1e60, 0.2) { eval x[e] = evaluate(m, t) }";
        let Err(diags) = expand(&crate::syntax::parse(src).unwrap(), &Choices::default()) else {
            panic!("a range of 5e60 elements expanded")
        };
        assert!(diags[0].message.contains("a sweep has at most 10000"), "{}", diags[0].message);
    }

    #[test]
    fn nested_sweeps_have_a_total_budget() {
        // Found by the `compile` fuzz target: four nested ranges of 104 asked for 117
        // million declarations (seconds of work before any check).
        let src =
            "for a in range(0, 100, 1) { for b in range(0, 100, 1) { for c in range(0, 100, 1) { eval x[a][b][c] = evaluate(m, t) } } }";
        let Err(diags) = expand(&crate::syntax::parse(src).unwrap(), &Choices::default()) else {
            panic!("a million declarations expanded")
        };
        assert!(diags[0].message.contains("more than 100000 elements"), "{}", diags[0].message);
    }

    #[test]
    fn sweeps_expand_and_indices_become_names() {
        let out = show("for eps in [0.1, 25%] { eval e[eps] = evaluate(m, t, attack: fgsm(eps: eps)) }\neval x = e[0.25].error");
        assert_eq!(out, "(eval e[0.1] (evaluate m t attack: (fgsm eps: 0.1)))\n(eval e[0.25] (evaluate m t attack: (fgsm eps: 25%)))\n(eval x e[0.25].error)\n");
    }

    #[test]
    fn nested_sweeps_ranges_and_labels() {
        let out = show("for m in [a, b] { for s in range(1, 3, 1) { model f[m][s] = fit(n, d, seed: s) } }\ntable \"t\" { for m in [a, b] { row \"model {m}\" value: f[m][1].error } }");
        assert!(
            out.contains("(model f[a][1] (fit n d seed: 1))") && out.contains("(model f[b][3] (fit n d seed: 3))"),
            "{out}"
        );
        assert!(out.contains("(row \"model b\" value: f[b][1].error)"), "{out}");
    }

    fn show_with(src: &str, choices: &Choices) -> (String, Vec<ParamChoice>) {
        let file = crate::syntax::parse(src).unwrap();
        let e = expand(&file, choices).unwrap();
        let items = e.items.into_iter().map(|i| i.into_owned()).collect();
        (File { items }.to_string(), e.params)
    }

    #[test]
    fn params_take_the_first_profile_unless_told_otherwise() {
        let src = "param u = profile(quick: 24, full: 160)\nparam v = [u, 2]\nnet n = maxout(u, pieces: v)";
        let (out, params) = show_with(src, &Choices::default());
        assert_eq!(out, "(net n (maxout 24 pieces: [24 2]))\n");
        assert_eq!((params[1].value.as_str(), params[0].from.as_str()), ("[24, 2]", "profile quick"));
        let full = Choices {
            profile: Some("full".into()),
            overrides: vec![],
        };
        assert_eq!(show_with(src, &full).0, "(net n (maxout 160 pieces: [160 2]))\n");
        let (_, value) = crate::parse_override("u=8").unwrap();
        let set = Choices {
            profile: Some("full".into()),
            overrides: vec![("u".into(), value)],
        };
        let (out, params) = show_with(src, &set);
        assert_eq!(out, "(net n (maxout 8 pieces: [8 2]))\n", "--set wins over the profile");
        assert_eq!(params[0].from, "--set");
    }

    #[test]
    fn a_list_index_gives_a_list_and_fields_map_over_it() {
        let out = show("param seeds = [1, 2]\nmodel e = ensemble(m[seeds])\neval x = mean(e[range(1, 3, 1)].error)");
        assert_eq!(
            out,
            "(model e (ensemble [m[1] m[2]]))\n(eval x (mean [e[1].error e[2].error e[3].error]))\n"
        );
    }

    #[test]
    fn a_missing_profile_value_is_an_error_at_the_param() {
        let src = crate::syntax::parse("param u = profile(quick: 1, full: 2)\nparam w = profile(quick: 3)").unwrap();
        let choices = Choices {
            profile: Some("full".into()),
            overrides: vec![],
        };
        let diags = expand(&src, &choices).err().unwrap();
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].message, "param `w` has no value for profile `full`");
    }

    #[test]
    fn ranges_land_on_round_numbers() {
        let args = crate::syntax::parse("data x = range(0.05, 0.25, 0.05)").unwrap();
        let Item::Decl(d) = &args.items[0] else { panic!() };
        let ExprKind::Call { args, .. } = &d.value.kind else { panic!() };
        assert_eq!(range(args).unwrap(), vec![0.05, 0.1, 0.15, 0.2, 0.25]);
    }
}
