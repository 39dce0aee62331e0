//! Check: AST -> [`ir::Program`], or every problem found, each with a span.
//!
//! Names are resolved in any order (a declaration may use one written below it; a circle
//! is an error). Every call is matched against a registry (node kinds, layers, attacks)
//! and its arguments are bound, typed and range-checked against the kind's
//! [`ParamSpec`]s. Shapes are inferred through every layer stack and checked where a net
//! meets a dataset. Diagnostics are collected, never thrown: one run reports them all.

mod bind;
mod calls;
pub mod expand;
pub mod ir;
pub mod kinds;
mod resolve;
mod tables;

use crate::diagnostics::{codes, Diagnostic, Span};
use crate::nn::layers::{show_shape, LayerSpec, NetSpec};
use crate::params::Category;
use crate::syntax::ast::{self, ExprKind, Item};
use ir::{NodeId, Program};
pub use kinds::NodeKind;
use serde_json::{Map, Value as Json};

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
        /// Its metric names (shared: every reference to the evaluation carries them).
        fields: std::sync::Arc<[std::borrow::Cow<'static, str>]>,
    },
    /// An example grid (for the report).
    Examples,
    /// A figure (for the report).
    Figure,
    /// Tensors for other tools (written into the results folder).
    Export,
    /// One metric of an evaluation.
    MetricRef {
        /// The evaluation node.
        node: NodeId,
        /// The metric.
        field: String,
    },
}

impl Value {
    pub(super) fn category(&self) -> Option<Category> {
        match self {
            Value::Data { .. } => Some(Category::Data),
            Value::Net(_) | Value::Layer(_) => Some(Category::Net),
            Value::Model { .. } => Some(Category::Model),
            Value::Attack(_) => Some(Category::Attack),
            Value::Metrics { .. } => Some(Category::Eval),
            Value::Examples => Some(Category::Examples),
            Value::Figure => Some(Category::Figure),
            Value::Export => Some(Category::Export),
            _ => None,
        }
    }

    /// The value of a number.
    pub(super) fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number { value, .. } => Some(*value),
            _ => None,
        }
    }

    pub(super) fn describe(&self) -> String {
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
            Value::Export => "an export".into(),
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
    // Looked up for every name used: foldhash is several times faster than SipHash on
    // short names and still seeded per process, so a file cannot be written to collide.
    state: foldhash::HashMap<&'a str, DeclState>,
    program: Program,
    diags: Vec<Diagnostic>,
    source: &'a str,
    /// The declaration being checked: inline calls get names relative to it.
    current_decl: Option<(&'a str, Span)>,
    /// How many nodes each generated name (`kind@line:col`) has been given so far.
    inline_names: foldhash::HashMap<String, usize>,
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
    let items: Vec<&Item> = expanded.items.iter().map(|item| &**item).collect();
    let mut c = Checker {
        kinds,
        decls: Vec::new(),
        state: Default::default(),
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
        inline_names: Default::default(),
    };
    let mut seed_span: Option<Span> = None;
    for &item in &items {
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
        c.check_declaration(name, None);
    }
    for &item in &items {
        match item {
            Item::Table(t) if t.plot => c.plot(t),
            Item::Table(t) => c.table(t),
            _ => {}
        }
    }
    if c.diags.is_empty() {
        Ok(c.program)
    } else {
        // A sweep's body is checked once per element: the same mistake at the same place is
        // one diagnostic, however many elements repeat it.
        c.diags.sort_by_key(|d| d.span.start);
        let mut seen = std::collections::HashSet::new();
        c.diags.retain(|d| seen.insert((d.code, d.span, d.message.clone())));
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
}

/// A call's arguments, bound to its parameters.
pub struct Bound {
    /// Canonical parameters so far: every plain value, defaults filled in.
    pub json: Map<String, Json>,
    /// Arguments that are values of the language (datasets, nets, models, attacks, lists).
    pub values: ArgMap<Value>,
    /// Where each given argument was written.
    pub spans: ArgMap<Span>,
}

/// A few entries by parameter name, in the order given: a call has a handful of arguments,
/// for which a scan is faster than hashing.
#[derive(Clone, Debug)]
pub struct ArgMap<V>(Vec<(&'static str, V)>);

impl<V> ArgMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        ArgMap(Vec::new())
    }
    /// Sets `name`'s entry.
    pub fn insert(&mut self, name: &'static str, value: V) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name, value)),
        }
    }
    /// `name`'s entry.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
    /// Whether `name` has an entry.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// Takes `name`'s entry out.
    pub fn remove(&mut self, name: &str) -> Option<V> {
        let at = self.0.iter().position(|(n, _)| *n == name)?;
        Some(self.0.remove(at).1)
    }
}

impl<V> Default for ArgMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> std::ops::Index<&str> for ArgMap<V> {
    type Output = V;
    fn index(&self, name: &str) -> &V {
        self.get(name).unwrap_or_else(|| panic!("no argument `{name}`"))
    }
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

fn example_of(c: Category) -> &'static str {
    match c {
        Category::Data => "`mnist(split: \"test\")`",
        Category::Net => "`input([1, 28, 28]) >> flatten >> linear(10)`",
        Category::Model => "`fit(net, train)`",
        Category::Attack => "`fgsm(eps: 0.25)`",
        Category::Eval => "`evaluate(model, test)`",
        Category::Examples => "`examples(model, test, fgsm(eps: 0.25))`",
        Category::Figure => "`weights([mx, mx_at], n: 10)`",
        Category::Export => "`export(test, model: mx)`",
    }
}

/// Names with a built-in meaning that declarations may not take.
pub const BUILTIN_NAMES: &[&str] = &["clean"];

#[cfg(test)]
mod tests {
    #[test]
    fn a_mistake_repeated_by_a_sweep_is_reported_once() {
        // Found by the `compile` fuzz target: 1,264 sweep elements each reported the same
        // unknown name, with a did-you-mean over every declared name: seconds to check.
        let text = "for e in range(0, 50, 0.04) {\n  eval x[e] = evaluate(nosuch, test)\n}\n";
        let diags = crate::compile(&crate::diagnostics::Source::new("t.adv", text)).unwrap_err();
        let unknown: Vec<_> = diags.iter().filter(|d| d.message.contains("`nosuch`")).collect();
        assert_eq!(unknown.len(), 1, "{diags:?}");
    }

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

    #[test]
    fn calls_repeated_by_a_sweep_get_names_of_their_own() {
        // Jobs look nodes up by name: three evaluations from one place in the file once
        // shared one name, and a worker computed the first for all three.
        let text = "data d = mnist(split: \"test\")\nnet n = input([1, 28, 28]) >> flatten >> linear(10)\n\
                    model a = fit(n, d, epochs: 1)\nmodel b = fit(n, d, epochs: 2)\n\
                    table \"t\" {\n  for m in [a, b] {\n    row \"{m}\" value: evaluate(m, d).error\n  }\n}\n";
        let program = crate::compile(&crate::diagnostics::Source::new("t.adv", text)).unwrap();
        let names: Vec<&str> = program
            .nodes
            .iter()
            .filter(|n| n.kind.name == "evaluate")
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(names, ["evaluate@7:22", "evaluate@7:22#2"]);
        assert_eq!(program.node_named("evaluate@7:22#2"), Some(program.nodes.len() - 1));
    }

    #[test]
    fn titles_fill_params_and_plots_name_their_x_axis() {
        let text = "param units = 240\ndata d = mnist(split: \"test\")\nnet n = input([1, 28, 28]) >> flatten >> linear(10)\n\
                    model m = fit(n, d, epochs: 1)\nfor eps in [0.1, 0.2] {\n  eval e[eps] = evaluate(m, d, attack: fgsm(eps: eps))\n}\n\
                    table \"maxout {units}\" {\n  row \"{units} units\" value: e[0.1].error\n}\n\
                    plot \"error against eps\" {\n  for eps in [0.1, 0.2] {\n    row \"m\" x: eps y: e[eps].error\n  }\n}\n\
                    plot \"written out\" {\n  row \"m\" x: 0.1 y: e[0.1].error\n}\n";
        let program = crate::compile(&crate::diagnostics::Source::new("t.adv", text)).unwrap();
        assert_eq!(program.tables[0].title, "maxout 240");
        assert_eq!(program.tables[0].rows[0].label, "240 units");
        assert_eq!(program.plots[0].x_label.as_deref(), Some("eps"));
        assert_eq!(program.plots[1].x_label, None);
    }

    #[test]
    fn rows_naming_columns_make_a_grid_table() {
        let text = "data d = mnist(split: \"test\")\nnet n = input([1, 28, 28]) >> flatten >> linear(10)\n\
                    model a = fit(n, d, epochs: 1)\nmodel b = fit(n, d, epochs: 2)\n\
                    table \"transfer\" {\n  for s in [a, b] {\n    for t in [a, b] {\n      \
                    row \"crafted on {s}\" column: \"scored on {t}\" value: evaluate(t, craft(s, d, fgsm(eps: 0.1))).error\n    }\n  }\n}\n";
        let program = crate::compile(&crate::diagnostics::Source::new("t.adv", text)).unwrap();
        let table = &program.tables[0];
        assert_eq!(table.columns, ["scored on a", "scored on b"]);
        let cells: Vec<(&str, &str)> = table
            .rows
            .iter()
            .map(|r| (r.label.as_str(), r.column.as_deref().unwrap()))
            .collect();
        assert_eq!(cells[1], ("crafted on a", "scored on b"));
        assert_eq!(cells.len(), 4);
    }
}
