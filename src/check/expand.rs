//! Sweeps, expanded before checking: `for eps in [0.1, 0.25] { eval e[eps] = ... }`
//! becomes one declaration per element, named `e[0.1]` and `e[0.25]`, with `eps` replaced
//! by the element. Indexed references (`e[0.1]`, or `e[eps]` inside a sweep) become plain
//! names, and `{eps}` in a row label becomes the element. Sweeps nest; what a sweep runs
//! over is a list written in the file or `range(start, stop, step)` (stop included when a
//! step lands on it).

use crate::diagnostics::{codes, Diagnostic, Span};
use crate::syntax::ast::*;

/// The file with every sweep expanded and every index resolved to a name.
pub fn expand(file: &File) -> Result<File, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut items = Vec::new();
    for item in &file.items {
        expand_item(item, &[], &mut items, &mut diags);
    }
    if diags.is_empty() {
        Ok(File { items })
    } else {
        Err(diags)
    }
}

/// Loop variables in scope, innermost last, with the element each stands for.
type Scope<'a> = [(&'a str, Expr)];

fn expand_item(item: &Item, scope: &Scope, out: &mut Vec<Item>, diags: &mut Vec<Diagnostic>) {
    match item {
        Item::Import { span, .. } if !scope.is_empty() => diags.push(
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
                expand_entry(entry, scope, &mut rows, diags);
            }
            out.push(Item::Table(Table { rows, ..t.clone() }));
        }
        Item::Sweep(sweep) => {
            for element in elements(sweep.over.clone(), scope, diags) {
                let inner = with(scope, &sweep.var.name, element);
                for item in &sweep.body {
                    expand_item(item, &inner, out, diags);
                }
            }
        }
    }
}

fn expand_entry(entry: &TableEntry, scope: &Scope, out: &mut Vec<TableEntry>, diags: &mut Vec<Diagnostic>) {
    match entry {
        TableEntry::Row(row) => {
            let mut label = row.label.clone();
            for (var, element) in scope {
                label = label.replace(&format!("{{{var}}}"), &key(element).unwrap_or_default());
            }
            let fields = row.fields.iter().map(|(n, e)| (n.clone(), substitute(e, scope, diags))).collect();
            out.push(TableEntry::Row(Row {
                label,
                span: row.span,
                fields,
            }));
        }
        TableEntry::Sweep(sweep) => {
            for element in elements(sweep.over.clone(), scope, diags) {
                let inner = with(scope, &sweep.var.name, element);
                for e in &sweep.body {
                    expand_entry(e, &inner, out, diags);
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
    let count = ((stop - start) / step + 1e-9).floor() as usize + 1;
    if count > 10_000 {
        return Err(format!("{count} elements; a sweep has at most 10000"));
    }
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
            match (&base.kind, key(&index)) {
                (ExprKind::Name(n), Some(k)) => ExprKind::Name(format!("{n}[{k}]")),
                (ExprKind::Name(_), None) => {
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
        ExprKind::Field { base, field } => ExprKind::Field {
            base: Box::new(substitute(base, scope, diags)),
            field: field.clone(),
        },
        ExprKind::Stack(parts) => ExprKind::Stack(parts.iter().map(|p| substitute(p, scope, diags)).collect()),
        ExprKind::Sum(parts) => ExprKind::Sum(parts.iter().map(|p| substitute(p, scope, diags)).collect()),
        ExprKind::Product(parts) => ExprKind::Product(parts.iter().map(|p| substitute(p, scope, diags)).collect()),
        other => other.clone(),
    };
    Expr { kind, span }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(src: &str) -> String {
        expand(&crate::syntax::parse(src).unwrap()).unwrap().to_string()
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

    #[test]
    fn ranges_land_on_round_numbers() {
        let args = crate::syntax::parse("data x = range(0.05, 0.25, 0.05)").unwrap();
        let Item::Decl(d) = &args.items[0] else { panic!() };
        let ExprKind::Call { args, .. } = &d.value.kind else { panic!() };
        assert_eq!(range(args).unwrap(), vec![0.05, 0.1, 0.15, 0.2, 0.25]);
    }
}
