//! Check: AST -> [`ir::Program`], or every problem found, each with a span.
//!
//! Names are resolved in any order (a declaration may use one written below it; a circle
//! is an error). Every call is matched against a registry (node kinds, layers, attacks)
//! and its arguments are bound, typed and range-checked against the kind's
//! [`ParamSpec`]s. Shapes are inferred through every layer stack and checked where a net
//! meets a dataset. Diagnostics are collected, never thrown: one run reports them all.

pub mod expand;
pub mod ir;
pub mod kinds;

use crate::attacks::{self, COMMON_PARAMS};
use crate::diagnostics::{codes, did_you_mean, Diagnostic, Span};
use crate::nn::layers::{show_shape, LayerSpec, NetSpec, LAYERS};
use crate::params::{Category, Default, ParamSpec, ParamType};
use crate::syntax::ast::{self, Expr, ExprKind, Item};
use ir::{NodeId, Program};
pub use kinds::NodeKind;
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;

/// What an expression evaluates to while checking.
#[derive(Clone, Debug)]
pub enum Value {
    /// A number; `percent` when written with `%` (already divided by 100).
    Number {
        /// Its value.
        value: f64,
        /// Written as a percentage.
        percent: bool,
    },
    /// A string.
    Str(String),
    /// A list, each item with its span.
    List(Vec<(Value, Span)>),
    /// A dataset node.
    Data {
        /// The node that makes it.
        node: NodeId,
        /// One example's shape.
        shape: Vec<usize>,
        /// How many classes its labels have.
        classes: usize,
    },
    /// A net (a layer stack with its input shape).
    Net(NetSpec),
    /// One layer.
    Layer(LayerSpec),
    /// A model node.
    Model {
        /// The node that makes it.
        node: NodeId,
        /// Its architecture.
        net: NetSpec,
    },
    /// An attack's canonical parameters.
    Attack(Json),
    /// Weighted terms; `None` is the clean loss, `Some` an attack's JSON.
    Loss(Vec<(f64, Option<Json>)>),
    /// An evaluation node and the metrics it produces.
    Metrics {
        /// The node.
        node: NodeId,
        /// Its metric names.
        fields: Vec<String>,
    },
    /// An example grid (for the report).
    Examples,
    /// A figure (for the report).
    Figure,
    /// One metric of an evaluation.
    MetricRef {
        /// The evaluation node.
        node: NodeId,
        /// The metric.
        field: String,
    },
}

impl Value {
    fn category(&self) -> Option<Category> {
        match self {
            Value::Data { .. } => Some(Category::Data),
            Value::Net(_) | Value::Layer(_) => Some(Category::Net),
            Value::Model { .. } => Some(Category::Model),
            Value::Attack(_) => Some(Category::Attack),
            Value::Metrics { .. } => Some(Category::Eval),
            Value::Examples => Some(Category::Examples),
            Value::Figure => Some(Category::Figure),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Value::Number { percent: true, .. } => "a percentage".into(),
            Value::Number { .. } => "a number".into(),
            Value::Str(_) => "a string".into(),
            Value::List(_) => "a list".into(),
            Value::Data { shape, classes, .. } => format!("a dataset of {} images, {classes} classes", show_shape(shape)),
            Value::Net(n) => format!(
                "a net {} -> {}",
                show_shape(&n.input),
                n.output_shape().map_or("?".into(), |s| show_shape(&s))
            ),
            Value::Layer(_) => "a layer".into(),
            Value::Model { .. } => "a model".into(),
            Value::Attack(_) => "an attack".into(),
            Value::Metrics { .. } => "an evaluation".into(),
            Value::Examples => "an example grid".into(),
            Value::Figure => "a figure".into(),
            Value::MetricRef { .. } => "a metric".into(),
            Value::Loss(_) => "a loss mixture".into(),
        }
    }
}

enum DeclState {
    Pending(usize),
    InProgress,
    Done(Option<Value>),
}

/// The checker's state; node kinds' check rules (`crate::kinds`) use its public methods.
pub struct Checker<'a> {
    kinds: &'a [&'static NodeKind],
    decls: Vec<&'a ast::Decl>,
    state: HashMap<&'a str, DeclState>,
    program: Program,
    diags: Vec<Diagnostic>,
    source: &'a str,
    /// The declaration being checked: inline calls get names relative to it.
    current_decl: Option<(&'a str, Span)>,
}

/// Checks a parsed file with the profile and parameter values the command line chose,
/// against the node kinds in `kinds` (`advpipe::kinds::all()`). Returns the program, or all
/// diagnostics found.
pub fn check_with(
    file: &ast::File,
    source: &str,
    choices: &expand::Choices,
    kinds: &[&'static NodeKind],
) -> Result<Program, Vec<Diagnostic>> {
    let expanded = expand::expand(file, choices)?;
    let file = &expanded.file;
    let mut c = Checker {
        kinds,
        decls: Vec::new(),
        state: HashMap::new(),
        program: Program {
            seed: 0,
            nodes: Vec::new(),
            tables: Vec::new(),
            plots: Vec::new(),
            params: expanded.params.clone(),
            profiles: expanded.profiles.clone(),
            profile: choices.profile.clone().or_else(|| expanded.profiles.first().cloned()),
        },
        diags: Vec::new(),
        source,
        current_decl: None,
    };
    let mut seed_span: Option<Span> = None;
    for item in &file.items {
        match item {
            Item::Decl(d) => {
                if BUILTIN_NAMES.contains(&d.name.name.as_str()) {
                    c.diags.push(
                        Diagnostic::new(codes::DUPLICATE_NAME, d.name.span, format!("`{}` is a built-in name", d.name.name))
                            .label("cannot be declared")
                            .help("`clean` is the clean training loss (`loss: 0.5 * clean + 0.5 * fgsm25`); pick another name"),
                    );
                    continue;
                }
                if let Some(DeclState::Pending(first)) = c.state.get(d.name.name.as_str()) {
                    let first_span = c.decls[*first].name.span;
                    c.diags.push(
                        Diagnostic::new(codes::DUPLICATE_NAME, d.name.span, format!("`{}` is declared twice", d.name.name))
                            .label("declared again here")
                            .note(first_span, "first declared here")
                            .help("rename one of the two declarations"),
                    );
                    continue;
                }
                c.state.insert(&d.name.name, DeclState::Pending(c.decls.len()));
                c.decls.push(d);
            }
            Item::Seed { value, span } => {
                if let Some(first) = seed_span {
                    c.diags
                        .push(Diagnostic::new(codes::BAD_SETTING, *span, "`seed` is set twice").note(first, "first set here"));
                    continue;
                }
                seed_span = Some(*span);
                match &value.kind {
                    ExprKind::Number { value: v, percent: false } if v.fract() == 0.0 && *v >= 0.0 && *v < 9.0e15 => {
                        c.program.seed = *v as u64
                    }
                    ExprKind::Number { value: v, percent: false } if v.fract() == 0.0 && *v >= 9.0e15 => c.diags.push(
                        Diagnostic::new(codes::BAD_SETTING, value.span, "the seed must be below 9e15")
                            .label("too large")
                            .help("seeds are whole numbers from 0 to 8999999999999999; write e.g. `seed 1234`"),
                    ),
                    _ => c.diags.push(
                        Diagnostic::new(codes::BAD_SETTING, value.span, "the seed must be a whole number >= 0")
                            .label("not a whole number")
                            .help("write e.g. `seed 1234`"),
                    ),
                }
            }
            Item::Table(_) | Item::Import { .. } => {}
            Item::Sweep(_) => unreachable!("sweeps are expanded before checking"),
        }
    }
    for i in 0..c.decls.len() {
        let name = c.decls[i].name.name.as_str();
        c.resolve(name, None);
    }
    for item in &file.items {
        match item {
            Item::Table(t) if t.plot => c.plot(t),
            Item::Table(t) => c.table(t),
            _ => {}
        }
    }
    if c.diags.is_empty() {
        Ok(c.program)
    } else {
        c.diags.sort_by_key(|d| d.span.start);
        Err(c.diags)
    }
}

impl<'a> Checker<'a> {
    /// Records a diagnostic; returns `None` so a rule can `return c.error(...)`.
    pub fn error<T>(&mut self, d: Diagnostic) -> Option<T> {
        self.diags.push(d);
        None
    }

    /// The file's seed (`seed N`).
    pub fn file_seed(&self) -> u64 {
        self.program.seed
    }

    /// The value of a declared name, checking its declaration on first use.
    fn resolve(&mut self, name: &str, used_at: Option<Span>) -> Option<Option<Value>> {
        let index = match self.state.get(name)? {
            DeclState::Done(v) => return Some(v.clone()),
            DeclState::InProgress => {
                let decl = self.decls.iter().find(|d| d.name.name == name).expect("declared");
                let span = used_at.unwrap_or(decl.name.span);
                self.diags.push(
                    Diagnostic::new(codes::CYCLE, span, format!("`{name}` depends on itself"))
                        .label("used here, inside its own definition")
                        .note(decl.name.span, "declared here")
                        .help("a pipeline is a DAG: break the circle"),
                );
                return Some(None);
            }
            DeclState::Pending(i) => *i,
        };
        let decl: &'a ast::Decl = self.decls[index];
        self.state.insert(&decl.name.name, DeclState::InProgress);
        let outer = self.current_decl.replace((&decl.name.name, decl.name.span));
        let value = self.declaration(decl);
        self.current_decl = outer;
        self.state.insert(&decl.name.name, DeclState::Done(value.clone()));
        Some(value)
    }

    fn declaration(&mut self, decl: &'a ast::Decl) -> Option<Value> {
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
    fn expr(&mut self, expr: &'a Expr, decl_name: Option<&str>) -> Option<Value> {
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
                        if fields.contains(&field.name) {
                            Some(Value::MetricRef {
                                node,
                                field: field.name.clone(),
                            })
                        } else {
                            let fields: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
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
                let mut mixture = Vec::new();
                for term in terms {
                    let value = self.expr(term, None)?;
                    mixture.extend(self.loss_terms(value, term.span)?);
                }
                Some(Value::Loss(mixture))
            }
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
    fn loss_terms(&mut self, value: Value, span: Span) -> Option<Vec<(f64, Option<Json>)>> {
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

    fn name(&mut self, name: &str, span: Span) -> Option<Value> {
        if let Some(v) = self.resolve(name, Some(span)) {
            return v;
        }
        if name == "clean" {
            return Some(Value::Loss(vec![(1.0, None)]));
        }
        // A bare registered layer (`flatten`) is a call without arguments.
        if let Some(layer) = LAYERS.iter().find(|l| l.name == name) {
            if layer.params.iter().all(|p| p.default != Default::Required) {
                let defaults = layer
                    .params
                    .iter()
                    .filter_map(|p| Some((p.name.to_string(), p.default_json()?)))
                    .collect();
                return self.layer(name, &defaults);
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
        candidates.extend(LAYERS.iter().map(|l| l.name));
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

    fn stack(&mut self, parts: &'a [Expr]) -> Option<Value> {
        let first = self.expr(&parts[0], None)?;
        let mut net = match first {
            Value::Net(net) => net,
            other => {
                return self.error(
                    Diagnostic::new(
                        codes::WRONG_TYPE,
                        parts[0].span,
                        format!("a layer stack must start with a net, found {}", other.describe()),
                    )
                    .label("not a net")
                    .help("start with `input([1, 28, 28])` or the name of a net"),
                )
            }
        };
        let mut shape = net.output_shape().ok()?;
        for part in &parts[1..] {
            let layers = match self.expr(part, None)? {
                Value::Layer(l) => vec![l],
                Value::Net(other) => {
                    if other.input != shape {
                        return self.error(
                            Diagnostic::new(
                                codes::SHAPE_MISMATCH,
                                part.span,
                                "this net's input does not fit what comes before it",
                            )
                            .label(format!("expects {}", show_shape(&other.input)))
                            .help(format!("the stack so far produces {}", show_shape(&shape))),
                        );
                    }
                    other.layers
                }
                other => {
                    return self.error(
                        Diagnostic::new(
                            codes::WRONG_TYPE,
                            part.span,
                            format!("only layers and nets can be stacked, found {}", other.describe()),
                        )
                        .label("not a layer"),
                    )
                }
            };
            for layer in layers {
                if net.layers.last() == Some(&LayerSpec::SigmoidTop) {
                    return self.error(
                        Diagnostic::new(codes::SHAPE_MISMATCH, part.span, "nothing can follow `sigmoid_top`")
                            .label("after the top")
                            .help("`sigmoid_top` marks the outputs as per-class probabilities: put it last"),
                    );
                }
                match layer.output_shape(&shape) {
                    Ok(next) => shape = next,
                    Err(why) => {
                        return self.error(
                            Diagnostic::new(codes::SHAPE_MISMATCH, part.span, format!("shape mismatch: {why}"))
                                .label(format!("receives {}", show_shape(&shape))),
                        )
                    }
                }
                net.layers.push(layer);
            }
        }
        Some(Value::Net(net))
    }

    fn call(&mut self, callee: &'a ast::Ident, args: &'a [ast::Arg], span: Span, decl_name: Option<&str>) -> Option<Value> {
        let name = callee.name.as_str();
        if let Some(kind) = self.kinds.iter().copied().find(|k| k.name == name) {
            let bound = self.bind(callee, kind.params, args, span)?;
            return self.node(kind, bound, span, decl_name);
        }
        if let Some(layer) = LAYERS.iter().find(|l| l.name == name) {
            let bound = self.bind(callee, layer.params, args, span)?;
            return self.layer(name, &bound.json);
        }
        if let Some(attack) = attacks::find(name) {
            let params: Vec<ParamSpec> = attack.params.iter().chain(COMMON_PARAMS).copied().collect();
            let bound = self.bind(callee, &params, args, span)?;
            let mut json = Json::Object(bound.json);
            json["attack"] = name.into();
            if let Err(why) = attacks::Crafter::from_json(&json) {
                return self.error(
                    Diagnostic::new(codes::OUT_OF_RANGE, span, format!("invalid {name} attack: {why}")).label("rejected by the attack"),
                );
            }
            return Some(Value::Attack(json));
        }
        if self.state.contains_key(name) {
            return self.error(
                Diagnostic::new(
                    codes::UNKNOWN_KIND,
                    callee.span,
                    format!("`{name}` is a declared name, not something to call"),
                )
                .label("called here")
                .help(format!("use it without parentheses: `{name}`")),
            );
        }
        let mut all: Vec<&str> = self.kinds.iter().map(|k| k.name).collect();
        all.extend(LAYERS.iter().map(|l| l.name));
        all.extend(attacks::all().iter().map(|a| a.name));
        let help = match did_you_mean(name, all.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("known kinds: {}", all.join(", ")),
        };
        self.error(
            Diagnostic::new(codes::UNKNOWN_KIND, callee.span, format!("unknown node kind `{name}`"))
                .label("not a registered kind")
                .help(help),
        )
    }

    fn layer(&mut self, name: &str, params: &Map<String, Json>) -> Option<Value> {
        let mut json = Json::Object(params.clone());
        json["layer"] = name.into();
        let layer: LayerSpec = serde_json::from_value(json).expect("bound layer parameters match LayerSpec");
        Some(Value::Layer(layer))
    }

    /// Creates the value of a registered kind from bound arguments: its check rule.
    fn node(&mut self, kind: &'static NodeKind, mut bound: Bound, span: Span, decl_name: Option<&str>) -> Option<Value> {
        // A node's own seed defaults to the file's, and is then part of its parameters.
        if bound.json.get("seed").is_some_and(Json::is_null) {
            bound.json.insert("seed".into(), self.program.seed.into());
        }
        let at = At { kind, span, decl_name };
        (kind.check)(self, bound, &at)
    }

    /// The `model` and `data` arguments, checked to fit each other: (model, data, example
    /// shape, classes).
    pub fn take_model_and_data(&mut self, bound: &mut Bound) -> Option<(NodeId, NodeId, Vec<usize>, usize)> {
        let (model, net) = self.take_model(bound, "model")?;
        let (data, shape, classes) = self.take_data(bound, "data")?;
        self.fits(&net, &shape, classes, bound.spans["model"], bound.spans["data"])?;
        Some((model, data, shape, classes))
    }

    /// A model argument: its node and net.
    pub fn take_model(&mut self, bound: &mut Bound, name: &str) -> Option<(NodeId, NetSpec)> {
        match bound.values.remove(name) {
            Some(Value::Model { node, net }) => Some((node, net)),
            _ => None,
        }
    }

    /// A dataset argument: its node, example shape and classes.
    pub fn take_data(&mut self, bound: &mut Bound, name: &str) -> Option<(NodeId, Vec<usize>, usize)> {
        match bound.values.remove(name) {
            Some(Value::Data { node, shape, classes }) => Some((node, shape, classes)),
            _ => None,
        }
    }

    /// Moves an attack argument into the node's canonical parameters (absent stays null).
    pub fn take_attack(&mut self, bound: &mut Bound, name: &str) {
        if let Some(Value::Attack(a)) = bound.values.remove(name) {
            bound.json.insert(name.into(), a);
        }
    }

    /// A list of models that all take the same input and give the same output width.
    pub fn take_models(&mut self, bound: &mut Bound, name: &str) -> Option<Vec<(NodeId, NetSpec)>> {
        let Some(Value::List(items)) = bound.values.remove(name) else {
            return None;
        };
        let mut models = Vec::new();
        for (item, span) in items {
            match item {
                Value::Model { node, net } => models.push((node, net, span)),
                other => {
                    return self.error(
                        Diagnostic::new(
                            codes::WRONG_TYPE,
                            span,
                            format!("`{name}` lists models, found {}", other.describe()),
                        )
                        .label("not a model")
                        .help("e.g. [mx, mx_at]"),
                    )
                }
            }
        }
        let Some((_, first, first_span)) = models.first().cloned() else {
            return self.error(Diagnostic::new(codes::WRONG_TYPE, bound.spans[name], format!("`{name}` is empty")).label("no models"));
        };
        let signature = |n: &NetSpec| (n.input.clone(), n.output_shape().ok());
        for (_, net, span) in &models[1..] {
            if signature(net) != signature(&first) {
                return self.error(
                    Diagnostic::new(codes::SHAPE_MISMATCH, *span, "these models do not take the same inputs and classes")
                        .label(format!("{} -> {:?}", show_shape(&net.input), net.output_shape().ok()))
                        .note(
                            first_span,
                            format!("{} -> {:?}", show_shape(&first.input), first.output_shape().ok()),
                        ),
                );
            }
        }
        Some(models.into_iter().map(|(n, net, _)| (n, net)).collect())
    }

    /// Checks that a net fits a dataset: input shape and output width.
    pub fn fits(&mut self, net: &NetSpec, shape: &[usize], classes: usize, net_span: Span, data_span: Span) -> Option<()> {
        if net.input != shape {
            return self.error(
                Diagnostic::new(
                    codes::SHAPE_MISMATCH,
                    net_span,
                    format!(
                        "the net takes {} inputs but the dataset's examples are {}",
                        show_shape(&net.input),
                        show_shape(shape)
                    ),
                )
                .label(format!("expects {}", show_shape(&net.input)))
                .note(data_span, format!("examples are {}", show_shape(shape)))
                .help(format!("start the net with `input({})`", show_shape(shape))),
            );
        }
        let out = net.output_shape().ok()?;
        if out != [classes] {
            return self.error(
                Diagnostic::new(
                    codes::CLASS_MISMATCH,
                    net_span,
                    format!("the net outputs {} but the dataset has {classes} classes", show_shape(&out)),
                )
                .label(format!("outputs {}", show_shape(&out)))
                .note(data_span, format!("{classes} classes"))
                .help(format!("end the net with a layer of {classes} units, e.g. `linear({classes})`")),
            );
        }
        Some(())
    }

    /// Adds the node a call makes, with its canonical parameters and inputs (by parameter
    /// name); returns its id.
    pub fn push(&mut self, at: &At<'_>, params: Map<String, Json>, inputs: Vec<(&'static str, NodeId)>) -> NodeId {
        let name = match at.decl_name {
            Some(n) => n.to_string(),
            None => {
                let (line, col) = crate::diagnostics::line_col(self.source, at.span.start);
                format!("{}@{line}:{col}", at.kind.name)
            }
        };
        self.program.nodes.push(ir::Node {
            name,
            kind: at.kind,
            params: Json::Object(params),
            inputs,
            span: at.span,
        });
        self.program.nodes.len() - 1
    }

    /// Matches arguments to parameters and converts each to its type.
    fn bind(&mut self, callee: &ast::Ident, params: &[ParamSpec], args: &'a [ast::Arg], call_span: Span) -> Option<Bound> {
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
            values: HashMap::new(),
            spans: HashMap::new(),
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

    /// A plot: every row is a point `x: NUMBER y: METRIC` of the series its label names.
    fn plot(&mut self, t: &'a ast::Table) {
        let mut points = Vec::new();
        for entry in &t.rows {
            let ast::TableEntry::Row(row) = entry else {
                unreachable!("sweeps are expanded before checking")
            };
            let (mut x, mut y) = (None, None);
            for (name, expr) in &row.fields {
                match (name.name.as_str(), self.expr(expr, None)) {
                    ("x", Some(Value::Number { value, .. })) => x = Some(value),
                    ("y", Some(Value::MetricRef { node, field })) => y = Some((node, field)),
                    ("x" | "y", Some(other)) => self.diags.push(
                        Diagnostic::new(
                            codes::BAD_ROW,
                            expr.span,
                            format!(
                                "`{}` must be {}, found {}",
                                name.name,
                                if name.name == "x" { "a number" } else { "a metric" },
                                other.describe()
                            ),
                        )
                        .label("wrong kind of value")
                        .help("a point is `row \"series\" x: eps y: e[eps].error`"),
                    ),
                    ("x" | "y", None) => {}
                    (other, _) => {
                        let help = match did_you_mean(other, ["x", "y"]) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => "a plot's rows have `x:` (a number) and `y:` (a metric)".into(),
                        };
                        self.diags.push(
                            Diagnostic::new(codes::BAD_ROW, name.span, format!("plot rows have no field `{other}`"))
                                .label("unknown field")
                                .help(help),
                        );
                    }
                }
            }
            match (x, y) {
                (Some(x), Some((node, field))) => points.push(ir::Point {
                    series: row.label.clone(),
                    x,
                    node,
                    field,
                }),
                _ if row.fields.iter().any(|(n, _)| n.name != "x" && n.name != "y") => {}
                _ => self.diags.push(
                    Diagnostic::new(
                        codes::BAD_ROW,
                        row.span,
                        format!("point \"{}\" needs both `x:` and `y:`", row.label),
                    )
                    .label("incomplete point")
                    .help("e.g. `row \"softmax\" x: eps y: e[eps].error`"),
                ),
            }
        }
        self.program.plots.push(ir::Plot {
            title: t.title.clone(),
            points,
        });
    }

    fn table(&mut self, t: &'a ast::Table) {
        let mut rows = Vec::new();
        for entry in &t.rows {
            let ast::TableEntry::Row(row) = entry else {
                unreachable!("sweeps are expanded before checking")
            };
            let mut measured = None;
            let mut paper = None;
            let mut tol = None;
            for (name, expr) in &row.fields {
                match name.name.as_str() {
                    "value" if matches!(&expr.kind, ExprKind::Call { callee, .. } if callee.name == "mean") => {
                        measured = self.mean_of(expr);
                    }
                    "value" => match self.expr(expr, None) {
                        Some(Value::MetricRef { node, field }) => measured = Some(vec![(node, field)]),
                        Some(other) => {
                            self.diags.push(
                                Diagnostic::new(
                                    codes::BAD_ROW,
                                    expr.span,
                                    format!("a row's value must be a metric, found {}", other.describe()),
                                )
                                .label("not a metric")
                                .help("write e.g. `value: adv.error`, where `adv` is an eval"),
                            );
                        }
                        None => {}
                    },
                    "paper" | "tol" => match &expr.kind {
                        ExprKind::Number { value, .. } if name.name == "paper" => paper = Some(*value),
                        ExprKind::Number { value, .. } if *value >= 0.0 => tol = Some((*value, name.span)),
                        _ => self.diags.push(
                            Diagnostic::new(
                                codes::BAD_ROW,
                                expr.span,
                                format!("`{}` must be a non-negative number or percentage", name.name),
                            )
                            .label("not a number")
                            .help("e.g. paper: 99.9% tol: 2%"),
                        ),
                    },
                    other => {
                        let help = match did_you_mean(other, ["value", "paper", "tol"]) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => {
                                "a row has `value:` (a metric) and optionally `paper:` (the published number) and `tol:` (how close counts)"
                                    .into()
                            }
                        };
                        self.diags.push(
                            Diagnostic::new(codes::BAD_ROW, name.span, format!("table rows have no field `{other}`"))
                                .label("unknown field")
                                .help(help),
                        );
                    }
                }
            }
            if let (Some((_, span)), None) = (tol, paper) {
                self.diags.push(
                    Diagnostic::new(codes::BAD_ROW, span, "`tol` without `paper`: there is nothing to be close to")
                        .label("no paper value")
                        .help("add `paper: <the published number>`"),
                );
            }
            match measured {
                Some(sources) => rows.push(ir::Row {
                    label: row.label.clone(),
                    sources,
                    paper,
                    tol: tol.map(|t| t.0),
                }),
                None if !row.fields.iter().any(|(n, _)| n.name == "value") => self.diags.push(
                    Diagnostic::new(codes::BAD_ROW, row.span, format!("row \"{}\" has no `value:`", row.label))
                        .label("nothing measured")
                        .help("add `value: <eval>.<metric>`"),
                ),
                None => {}
            }
        }
        self.program.tables.push(ir::Table {
            title: t.title.clone(),
            rows,
        });
    }
}

impl<'a> Checker<'a> {
    /// `mean([a.error, b.error])` or `mean(adv[seeds].error)`: the metrics a row averages.
    fn mean_of(&mut self, expr: &'a Expr) -> Option<Vec<(NodeId, String)>> {
        let ExprKind::Call { args, .. } = &expr.kind else { return None };
        let list = match args.as_slice() {
            [ast::Arg { name: None, value }] => match &value.kind {
                ExprKind::List(items) if !items.is_empty() => Some(items),
                _ => None,
            },
            _ => None,
        };
        let Some(list) = list else {
            self.diags.push(
                Diagnostic::new(codes::BAD_ROW, expr.span, "`mean` takes one non-empty list of metrics")
                    .label("not a list of metrics")
                    .help("e.g. `mean(adv[seeds].error)` or `mean([a.error, b.error])`"),
            );
            return None;
        };
        let mut sources = Vec::new();
        for item in list {
            match self.expr(item, None) {
                Some(Value::MetricRef { node, field }) => sources.push((node, field)),
                Some(other) => {
                    self.diags.push(
                        Diagnostic::new(
                            codes::BAD_ROW,
                            item.span,
                            format!("`mean` averages metrics, found {}", other.describe()),
                        )
                        .label("not a metric")
                        .help("e.g. `mean(adv[seeds].error)` or `mean([a.error, b.error])`"),
                    );
                    return None;
                }
                None => return None,
            }
        }
        Some(sources)
    }
}

/// A call's arguments, bound to its parameters.
pub struct Bound {
    /// Canonical parameters so far: every plain value, defaults filled in.
    pub json: Map<String, Json>,
    /// Arguments that are values of the language (datasets, nets, models, attacks, lists).
    pub values: HashMap<&'static str, Value>,
    /// Where each given argument was written.
    pub spans: HashMap<&'static str, Span>,
}

/// The call a check rule is making a node for.
pub struct At<'d> {
    /// The node kind.
    pub kind: &'static NodeKind,
    /// The call's span.
    pub span: Span,
    /// The declared name, if the call is a declaration's whole value.
    pub decl_name: Option<&'d str>,
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

fn example_of(c: Category) -> &'static str {
    match c {
        Category::Data => "`mnist(split: \"test\")`",
        Category::Net => "`input([1, 28, 28]) >> flatten >> linear(10)`",
        Category::Model => "`fit(net, train)`",
        Category::Attack => "`fgsm(eps: 0.25)`",
        Category::Eval => "`evaluate(model, test)`",
        Category::Examples => "`examples(model, test, fgsm(eps: 0.25))`",
        Category::Figure => "`weights([mx, mx_at], n: 10)`",
    }
}

/// Names with a built-in meaning that declarations may not take.
pub const BUILTIN_NAMES: &[&str] = &["clean"];

#[cfg(test)]
mod tests {
    #[test]
    fn a_bare_layer_takes_its_defaults() {
        // Found by the mutation property test: `max_pool` written bare once panicked.
        let text = "data d = mnist(split: \"test\")\nnet n = input([1, 28, 28]) >> conv2d(4, kernel: 5) >> max_pool >> flatten >> linear(10)\nmodel m = fit(n, d)";
        let program = crate::compile(&crate::diagnostics::Source::new("t.adv", text)).unwrap();
        let net = &program.nodes[1].params["net"];
        assert_eq!(
            net["layers"][1],
            serde_json::json!({"layer": "max_pool", "size": 2, "stride": null}),
            "{net}"
        );
    }
}
