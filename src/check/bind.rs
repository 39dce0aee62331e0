//! Binding: a call's arguments matched to its parameters (positional, then named), each
//! converted to its parameter's type and range-checked.

use super::*;
use crate::diagnostics::{codes, did_you_mean, Diagnostic, Span};
use crate::params::{Default, ParamSpec, ParamType};
use crate::syntax::ast::{self};
use serde_json::{json, Map, Value as Json};

impl<'a> Checker<'a> {
    /// Matches arguments to parameters and converts each to its type.
    pub(super) fn bind(&mut self, callee: &ast::Ident, params: &[ParamSpec], args: &'a [ast::Arg], call_span: Span) -> Option<Bound> {
        let mut given: Vec<Option<&'a ast::Arg>> = vec![None; params.len()];
        let mut ok = true;
        let mut positional = 0;
        for arg in args {
            let slot = match &arg.name {
                None => {
                    positional += 1;
                    if positional > params.len() {
                        ok = false;
                        self.diags.push(
                            Diagnostic::new(
                                codes::EXTRA_ARG,
                                arg.value.span,
                                format!(
                                    "`{}` takes {} argument{}, this is one too many",
                                    callee.name,
                                    params.len(),
                                    if params.len() == 1 { "" } else { "s" }
                                ),
                            )
                            .label("extra argument")
                            .help(signature(&callee.name, params)),
                        );
                        continue;
                    }
                    positional - 1
                }
                Some(name) => match params.iter().position(|p| p.name == name.name) {
                    Some(i) => i,
                    None => {
                        ok = false;
                        let help = match did_you_mean(&name.name, params.iter().map(|p| p.name)) {
                            Some(s) => {
                                format!("did you mean `{s}`? {}", signature(&callee.name, params))
                            }
                            None => signature(&callee.name, params),
                        };
                        self.diags.push(
                            Diagnostic::new(
                                codes::UNKNOWN_PARAM,
                                name.span,
                                format!("`{}` has no parameter `{}`", callee.name, name.name),
                            )
                            .label("unknown parameter")
                            .help(help),
                        );
                        continue;
                    }
                },
            };
            if let Some(previous) = given[slot] {
                ok = false;
                let prev_span = previous.name.as_ref().map_or(previous.value.span, |n| n.span);
                self.diags.push(
                    Diagnostic::new(
                        codes::EXTRA_ARG,
                        arg.name.as_ref().map_or(arg.value.span, |n| n.span),
                        format!("`{}` is given twice", params[slot].name),
                    )
                    .label("given again")
                    .note(prev_span, "first given here"),
                );
                continue;
            }
            given[slot] = Some(arg);
        }
        let mut bound = Bound {
            json: Map::new(),
            values: ArgMap::new(),
            spans: ArgMap::new(),
        };
        for (spec, arg) in params.iter().zip(given) {
            let Some(arg) = arg else {
                match spec.default {
                    Default::Required => {
                        ok = false;
                        self.diags.push(
                            Diagnostic::new(
                                codes::MISSING_PARAM,
                                call_span,
                                format!("`{}` needs `{}` ({})", callee.name, spec.name, spec.doc),
                            )
                            .label(format!("`{}` missing", spec.name))
                            .help(signature(&callee.name, params)),
                        );
                    }
                    _ => {
                        bound.json.insert(spec.name.into(), spec.default_json().unwrap_or(Json::Null));
                    }
                }
                continue;
            };
            let Some(value) = self.expr(&arg.value, None) else {
                ok = false;
                continue;
            };
            bound.spans.insert(spec.name, arg.value.span);
            match self.coerce(spec, value, arg.value.span, &callee.name) {
                Some(Coerced::Json(j)) => {
                    bound.json.insert(spec.name.into(), j);
                }
                Some(Coerced::Value(v)) => {
                    bound.values.insert(spec.name, v);
                }
                None => ok = false,
            }
        }
        ok.then_some(bound)
    }

    fn coerce(&mut self, spec: &ParamSpec, value: Value, span: Span, callee: &str) -> Option<Coerced> {
        let wrong = |this: &mut Self, value: &Value| -> Option<Coerced> {
            this.error(
                Diagnostic::new(
                    codes::WRONG_TYPE,
                    span,
                    format!(
                        "`{}` of `{callee}` must be {}, found {}",
                        spec.name,
                        spec.ty.describe(),
                        value.describe()
                    ),
                )
                .label(format!("expected {}", spec.ty.describe()))
                .help(format!("{}: {}", spec.name, spec.doc)),
            )
        };
        let number = match (&spec.ty, &value) {
            (ParamType::Int, Value::Number { value: v, percent: false }) if v.fract() == 0.0 => Some(*v),
            (ParamType::Number, Value::Number { value: v, .. }) => Some(*v),
            (ParamType::Int | ParamType::Number, _) => return wrong(self, &value),
            _ => None,
        };
        if let Some(v) = number {
            if let Some((lo, hi)) = spec.range {
                if !(lo..=hi).contains(&v) {
                    return self.error(
                        Diagnostic::new(
                            codes::OUT_OF_RANGE,
                            span,
                            format!("`{}` of `{callee}` must be in [{lo}, {hi}], found {v}", spec.name),
                        )
                        .label("out of range")
                        .help(format!("{}: {}", spec.name, spec.doc)),
                    );
                }
            }
            return Some(Coerced::Json(if spec.ty == ParamType::Int { json!(v as i64) } else { json!(v) }));
        }
        match (&spec.ty, value) {
            (ParamType::Text, Value::Str(s)) => Some(Coerced::Json(Json::String(s))),
            (ParamType::Choice(choices), Value::Str(s)) => {
                if choices.contains(&s.as_str()) {
                    Some(Coerced::Json(Json::String(s)))
                } else {
                    let help = match did_you_mean(&s, choices.iter().copied()) {
                        Some(c) => format!("did you mean \"{c}\"?"),
                        None => format!("`{}` is {}", spec.name, spec.ty.describe()),
                    };
                    self.error(
                        Diagnostic::new(
                            codes::OUT_OF_RANGE,
                            span,
                            format!("`{}` of `{callee}` cannot be \"{s}\"", spec.name),
                        )
                        .label("not an allowed value")
                        .help(help),
                    )
                }
            }
            (ParamType::Classes, Value::List(items)) => {
                let digits: Option<Vec<usize>> = items
                    .iter()
                    .map(|(v, _)| match v {
                        Value::Number { value, percent: false } if value.fract() == 0.0 && (0.0..10.0).contains(value) => {
                            Some(*value as usize)
                        }
                        _ => None,
                    })
                    .collect();
                match digits {
                    Some(d) if d.len() >= 2 && (0..d.len()).all(|i| !d[..i].contains(&d[i])) => Some(Coerced::Json(json!(d))),
                    _ => self.error(
                        Diagnostic::new(codes::WRONG_TYPE, span, "`classes` is a list of two or more distinct digits 0-9")
                            .label("not a class list")
                            .help("e.g. classes: [3, 7]"),
                    ),
                }
            }
            (ParamType::Names, Value::List(items)) if !items.is_empty() => {
                let mut names: Vec<&str> = Vec::with_capacity(items.len());
                for (item, item_span) in &items {
                    let problem = match item {
                        Value::Str(s) if s.trim().is_empty() => "an empty name",
                        Value::Str(s) if names.contains(&s.as_str()) => "named twice",
                        Value::Str(s) => {
                            names.push(s);
                            continue;
                        }
                        _ => "not a string",
                    };
                    return self.error(
                        Diagnostic::new(
                            codes::WRONG_TYPE,
                            *item_span,
                            format!("`{}` of `{callee}` is a list of distinct, non-empty names", spec.name),
                        )
                        .label(problem)
                        .help(format!("{}: {}", spec.name, spec.doc)),
                    );
                }
                Some(Coerced::Json(json!(names)))
            }
            (ParamType::Shape, Value::List(items)) if !items.is_empty() => {
                let dims: Option<Vec<usize>> = items
                    .iter()
                    .map(|(v, _)| match v {
                        Value::Number { value, percent: false } if value.fract() == 0.0 && *value >= 1.0 && *value <= 1e6 => {
                            Some(*value as usize)
                        }
                        _ => None,
                    })
                    .collect();
                match dims {
                    Some(d) => Some(Coerced::Json(json!(d))),
                    None => self.error(
                        Diagnostic::new(
                            codes::WRONG_TYPE,
                            span,
                            "a shape is a list of whole numbers from 1 to 1000000 (each dimension)",
                        )
                        .label("not a shape")
                        .help("e.g. [1, 28, 28]"),
                    ),
                }
            }
            (ParamType::ClipRange, Value::Str(s)) if s == "none" => Some(Coerced::Json(Json::Null)),
            (ParamType::ClipRange, Value::List(items)) => match items.as_slice() {
                [(Value::Number { value: lo, .. }, _), (Value::Number { value: hi, .. }, _)] if lo < hi => {
                    Some(Coerced::Json(json!([lo, hi])))
                }
                _ => self.error(
                    Diagnostic::new(codes::WRONG_TYPE, span, "a clip range is [lo, hi] with lo < hi, or \"none\"")
                        .label("not a clip range")
                        .help("e.g. clip: [0, 1]"),
                ),
            },
            (ParamType::Loss, v @ (Value::Loss(_) | Value::Attack(_))) => {
                let terms = self.loss_terms(v, span)?;
                if let Some((w, _)) = terms.iter().find(|(w, _)| !(*w > 0.0 && w.is_finite())) {
                    return self.error(
                        Diagnostic::new(codes::OUT_OF_RANGE, span, format!("loss weights must be positive, found {w}"))
                            .label("non-positive weight")
                            .help("e.g. `0.5 * clean + 0.5 * fgsm25`"),
                    );
                }
                let json: Vec<Json> = terms
                    .into_iter()
                    .map(|(weight, attack)| json!({"weight": weight, "attack": attack}))
                    .collect();
                Some(Coerced::Json(Json::Array(json)))
            }
            (ParamType::AttackList, Value::List(items)) if !items.is_empty() => {
                let mut attacks = Vec::with_capacity(items.len());
                for (item, item_span) in items {
                    match item {
                        Value::Attack(json) => attacks.push(json),
                        other => {
                            return self.error(
                                Diagnostic::new(
                                    codes::WRONG_TYPE,
                                    item_span,
                                    format!("`{}` of `{callee}` lists attacks, found {}", spec.name, other.describe()),
                                )
                                .label("not an attack")
                                .help(format!("{}: {}", spec.name, spec.doc)),
                            )
                        }
                    }
                }
                Some(Coerced::Json(Json::Array(attacks)))
            }
            (ParamType::Dataset, v @ Value::Data { .. })
            | (ParamType::Model, v @ Value::Model { .. })
            | (ParamType::Attack, v @ Value::Attack(_))
            | (ParamType::Net, v @ Value::Net(_))
            | (ParamType::ModelList, v @ Value::List(_)) => Some(Coerced::Value(v)),

            (ParamType::Net, Value::Layer(_)) => self.error(
                Diagnostic::new(codes::WRONG_TYPE, span, "a layer alone is not a net")
                    .label("a layer")
                    .help("start a net with `input([1, 28, 28]) >> ...`"),
            ),
            (_, v) => wrong(self, &v),
        }
    }
}

enum Coerced {
    Json(Json),
    Value(Value),
}

fn signature(name: &str, params: &[ParamSpec]) -> String {
    let parts: Vec<String> = params
        .iter()
        .map(|p| match p.default_json() {
            Some(d) => format!("{}: {}", p.name, d),
            None if p.default == Default::Optional => format!("{}?", p.name),
            None => p.name.to_string(),
        })
        .collect();
    format!("usage: {name}({})", parts.join(", "))
}
