//! Calls: layer stacks (`>>`), and calls of registered node kinds, layers and attacks; the
//! helpers node kinds' check rules use to take their inputs and add their node.

use super::*;
use crate::attacks::{self, COMMON_PARAMS};
use crate::diagnostics::{codes, did_you_mean, Diagnostic, Span};
use crate::nn::layers::{self, show_shape, sigmoid_top::SigmoidTop, NetSpec};
use crate::params::ParamSpec;
use crate::syntax::ast::{self, Expr};
use ir::NodeId;
use serde_json::{Map, Value as Json};

impl<'a> Checker<'a> {
    pub(super) fn stack(&mut self, parts: &'a [Expr]) -> Option<Value> {
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
                if net.layers.last().is_some_and(|l| l.is::<SigmoidTop>()) {
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

    pub(super) fn call(&mut self, callee: &'a ast::Ident, args: &'a [ast::Arg], span: Span, decl_name: Option<&str>) -> Option<Value> {
        let name = callee.name.as_str();
        if let Some(kind) = self.kinds.iter().copied().find(|k| k.name == name) {
            let bound = self.bind(callee, kind.params, args, span)?;
            return self.node(kind, bound, span, decl_name);
        }
        if let Some(layer) = layers::find(name) {
            let bound = self.bind(callee, layer.params, args, span)?;
            return self.layer(layer, &bound.json);
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
        all.extend(layers::all().iter().map(|l| l.name));
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

    pub(super) fn layer(&mut self, kind: &layers::LayerKind, params: &Map<String, Json>) -> Option<Value> {
        let layer = (kind.build)(Json::Object(params.clone())).expect("bound parameters match the layer's declaration");
        Some(Value::Layer(layer))
    }

    /// Creates the value of a registered kind from bound arguments: its check rule.
    pub(super) fn node(&mut self, kind: &'static NodeKind, mut bound: Bound, span: Span, decl_name: Option<&str>) -> Option<Value> {
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
                let name = format!("{}@{line}:{col}", at.kind.name);
                // A call inside a sweep is made once per element from one place in the
                // file; jobs find nodes by name, so the second and later get `#2`, `#3`, ...
                // (in checking order, the same in every process that checks the file).
                let seen = self.inline_names.entry(name.clone()).or_insert(0);
                *seen += 1;
                if *seen == 1 {
                    name
                } else {
                    format!("{name}#{seen}")
                }
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
}
