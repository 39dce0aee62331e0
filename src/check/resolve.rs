//! Names and expressions: declarations resolved in any order (a circle is an error),
//! values of numbers, strings, lists, names, fields, indices and loss mixtures.

use super::*;
use crate::diagnostics::{codes, did_you_mean, Diagnostic, Span};
use crate::nn::layers;
use crate::params::{Category, Default};
use crate::syntax::ast::{self, Expr, ExprKind};
use serde_json::Value as Json;

impl<'a> Checker<'a> {
    /// The value of a declared name, checking its declaration on first use.
    pub(super) fn resolve(&mut self, name: &str, used_at: Option<Span>) -> Option<Option<Value>> {
        if !self.check_declaration(name, used_at)? {
            return Some(None);
        }
        match self.state.get(name) {
            Some(DeclState::Done(v)) => Some(v.clone()),
            _ => unreachable!("checked just now"),
        }
    }

    /// Checks the declaration of `name` unless it has been: `None` when nothing is declared
    /// so, `Some(false)` when it depends on itself.
    pub(super) fn check_declaration(&mut self, name: &str, used_at: Option<Span>) -> Option<bool> {
        let index = match self.state.get(name)? {
            DeclState::Done(_) => return Some(true),
            DeclState::InProgress => {
                let decl = self.decls.iter().find(|d| d.name.name == name).expect("declared");
                let span = used_at.unwrap_or(decl.name.span);
                self.diags.push(
                    Diagnostic::new(codes::CYCLE, span, format!("`{name}` depends on itself"))
                        .label("used here, inside its own definition")
                        .note(decl.name.span, "declared here")
                        .help("a pipeline is a DAG: break the circle"),
                );
                return Some(false);
            }
            DeclState::Pending(i) => *i,
        };
        let decl: &'a ast::Decl = self.decls[index];
        self.state.insert(&decl.name.name, DeclState::InProgress);
        let outer = self.current_decl.replace((&decl.name.name, decl.name.span));
        let value = self.declaration(decl);
        self.current_decl = outer;
        self.state.insert(&decl.name.name, DeclState::Done(value));
        Some(true)
    }

    pub(super) fn declaration(&mut self, decl: &'a ast::Decl) -> Option<Value> {
        let word = decl.category.name.as_str();
        let Some(category) = Category::ALL.into_iter().find(|c| c.word() == word) else {
            let words: Vec<&str> = Category::ALL.iter().map(|c| c.word()).collect();
            let help = match did_you_mean(word, words.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("declarations start with one of: {}", words.join(", ")),
            };
            self.expr(&decl.value, Some(&decl.name.name));
            return self.error(
                Diagnostic::new(
                    codes::UNKNOWN_CATEGORY,
                    decl.category.span,
                    format!("unknown declaration kind `{word}`"),
                )
                .label("not a declaration kind")
                .help(help),
            );
        };
        let value = self.expr(&decl.value, Some(&decl.name.name))?;
        if value.category() != Some(category) {
            let help = match value.category() {
                Some(c) => format!("declare it as `{} {} = ...`", c.word(), decl.name.name),
                None => format!("a `{word}` declaration needs a value such as {}", example_of(category)),
            };
            return self.error(
                Diagnostic::new(
                    codes::CATEGORY_MISMATCH,
                    decl.value.span,
                    format!("`{}` is declared as {word} but its value is {}", decl.name.name, value.describe()),
                )
                .label(format!("this is {}", value.describe()))
                .note(decl.category.span, format!("declared as {word} here"))
                .help(help),
            );
        }
        Some(value)
    }

    /// Evaluates an expression. `decl_name` names the node a top-level call creates.
    pub(super) fn expr(&mut self, expr: &'a Expr, decl_name: Option<&str>) -> Option<Value> {
        match &expr.kind {
            ExprKind::Number { value, percent } => Some(Value::Number {
                value: *value,
                percent: *percent,
            }),
            ExprKind::Str(s) => Some(Value::Str(s.clone())),
            ExprKind::List(items) => {
                let values: Vec<Option<(Value, Span)>> = items.iter().map(|e| self.expr(e, None).map(|v| (v, e.span))).collect();
                values.into_iter().collect::<Option<Vec<_>>>().map(Value::List)
            }
            ExprKind::Name(name) => self.name(name, expr.span),
            ExprKind::Call { callee, args } => self.call(callee, args, expr.span, decl_name),
            ExprKind::Field { base, field } => {
                let base_value = self.expr(base, None)?;
                match base_value {
                    Value::Metrics { node, fields } => {
                        if fields.iter().any(|f| *f == field.name) {
                            Some(Value::MetricRef {
                                node,
                                field: field.name.clone(),
                            })
                        } else {
                            let fields: Vec<&str> = fields.iter().map(|f| f.as_ref()).collect();
                            let help = match did_you_mean(&field.name, fields.iter().copied()) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None => format!("an evaluation has: {}", fields.join(", ")),
                            };
                            self.error(
                                Diagnostic::new(
                                    codes::UNKNOWN_FIELD,
                                    field.span,
                                    format!("an evaluation has no metric `{}`", field.name),
                                )
                                .label("unknown metric")
                                .help(help),
                            )
                        }
                    }
                    other => self.error(
                        Diagnostic::new(codes::UNKNOWN_FIELD, field.span, format!("{} has no fields", other.describe()))
                            .label(format!("`.{}` on {}", field.name, other.describe()))
                            .help("only evaluations have fields (their metrics)"),
                    ),
                }
            }
            ExprKind::Stack(parts) => self.stack(parts),
            ExprKind::Index { .. } => unreachable!("indices are resolved before checking"),
            ExprKind::Sum(terms) => {
                let values = terms.iter().map(|t| self.expr(t, None)).collect::<Option<Vec<Value>>>()?;
                if let Some(total) = values.iter().map(Value::as_number).sum::<Option<f64>>() {
                    return Some(Value::Number {
                        value: total,
                        percent: false,
                    });
                }
                let mut mixture = Vec::new();
                for (value, term) in values.into_iter().zip(terms) {
                    mixture.extend(self.loss_terms(value, term.span)?);
                }
                Some(Value::Loss(mixture))
            }
            ExprKind::Negate(term) => match self.expr(term, None)? {
                Value::Number { value, .. } => Some(Value::Number {
                    value: -value,
                    percent: false,
                }),
                other => self.error(
                    Diagnostic::new(
                        codes::WRONG_TYPE,
                        term.span,
                        format!("only numbers can be subtracted, found {}", other.describe()),
                    )
                    .label("subtracted")
                    .help("a loss mixture adds weighted terms: `0.5 * clean + 0.5 * fgsm25`"),
                ),
            },
            ExprKind::Reciprocal(divisor) => match self.expr(divisor, None)? {
                Value::Number { value, .. } if value != 0.0 => Some(Value::Number {
                    value: 1.0 / value,
                    percent: false,
                }),
                Value::Number { .. } => self.error(
                    Diagnostic::new(codes::OUT_OF_RANGE, divisor.span, "division by zero")
                        .label("is zero")
                        .help("divide by a number other than 0"),
                ),
                other => self.error(
                    Diagnostic::new(
                        codes::WRONG_TYPE,
                        divisor.span,
                        format!("only numbers can divide, found {}", other.describe()),
                    )
                    .label("divisor")
                    .help("e.g. `eps: 8 / 255`, or `fgsm25 / 2` for half a loss"),
                ),
            },
            ExprKind::Product(factors) => {
                let mut weight = 1.0;
                let mut loss: Option<Vec<(f64, Option<Json>)>> = None;
                for factor in factors {
                    match self.expr(factor, None)? {
                        Value::Number { value, .. } => weight *= value,
                        other if loss.is_none() => loss = Some(self.loss_terms(other, factor.span)?),
                        other => {
                            return self.error(
                                Diagnostic::new(
                                    codes::WRONG_TYPE,
                                    factor.span,
                                    format!("cannot multiply two losses ({})", other.describe()),
                                )
                                .label("second loss in one product")
                                .help("weight each loss by a number: `0.5 * clean + 0.5 * fgsm25`"),
                            )
                        }
                    }
                }
                match loss {
                    Some(terms) => Some(Value::Loss(terms.into_iter().map(|(w, s)| (w * weight, s)).collect())),
                    None => Some(Value::Number {
                        value: weight,
                        percent: false,
                    }),
                }
            }
        }
    }

    /// A value used as part of a loss mixture: `clean`, an attack, or a mixture.
    pub(super) fn loss_terms(&mut self, value: Value, span: Span) -> Option<Vec<(f64, Option<Json>)>> {
        match value {
            Value::Loss(terms) => Some(terms),
            Value::Attack(a) => Some(vec![(1.0, Some(a))]),
            other => self.error(
                Diagnostic::new(
                    codes::WRONG_TYPE,
                    span,
                    format!("a loss mixture is made of `clean` and attacks, found {}", other.describe()),
                )
                .label("not a loss")
                .help("e.g. `loss: 0.5 * clean + 0.5 * fgsm(eps: 0.25)`"),
            ),
        }
    }

    pub(super) fn name(&mut self, name: &str, span: Span) -> Option<Value> {
        if let Some(v) = self.resolve(name, Some(span)) {
            return v;
        }
        if name == "clean" {
            return Some(Value::Loss(vec![(1.0, None)]));
        }
        // A bare registered layer (`flatten`) is a call without arguments.
        if let Some(layer) = layers::find(name) {
            if layer.params.iter().all(|p| p.default != Default::Required) {
                let defaults = layer
                    .params
                    .iter()
                    .filter_map(|p| Some((p.name.to_string(), p.default_json()?)))
                    .collect();
                return self.layer(layer, &defaults);
            }
            return self.error(
                Diagnostic::new(codes::MISSING_PARAM, span, format!("`{name}` needs arguments"))
                    .label("used without arguments")
                    .help(format!(
                        "write `{name}({})`",
                        layer
                            .params
                            .iter()
                            .filter(|p| p.default == Default::Required)
                            .map(|p| p.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
            );
        }
        let mut candidates: Vec<&str> = self.decls.iter().map(|d| d.name.name.as_str()).collect();
        candidates.extend(layers::all().iter().map(|l| l.name));
        let help = match did_you_mean(name, candidates.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "declare it first, e.g. `data train = mnist(split: \"train\")`".into(),
        };
        self.error(
            Diagnostic::new(codes::UNKNOWN_NAME, span, format!("unknown name `{name}`"))
                .label("not declared")
                .help(help),
        )
    }
}
