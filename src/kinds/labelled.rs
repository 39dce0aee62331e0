//! What the file-backed dataset kinds (`idx`, `tensors`) share: the check that reads a
//! source's headers and labels before anything runs, and its resource estimate.
//!
//! A kind supplies how to find its files and read their headers ([`Surveyed`]); this
//! turns that into a located diagnostic or a checked `Value::Data` whose shape and class
//! count the rest of the file is checked against.

use crate::check::{At, Bound, Checker, Value};
use crate::data::source::{Layout, Survey};
use crate::diagnostics::{codes, Diagnostic};
use crate::estimate::{DataShape, Estimate, Sizes};
use crate::params::{Default, ParamDef, ParamType};

/// What a kind found in its files: the survey, or the argument to blame and why.
pub type Surveyed = Result<Survey, (&'static str, String)>;

/// The layout a node's `layout` argument names.
pub fn layout(json: &serde_json::Map<String, serde_json::Value>) -> Option<Layout> {
    Layout::parse(json.get("layout").and_then(|l| l.as_str()))
}

/// Checks a surveyed source against the call's `class_names`, `classes`, `skip` and
/// `take`, and adds the node. `what` names the source in messages (`the IDX files in DIR`).
pub fn check(c: &mut Checker<'_>, bound: Bound, at: &At<'_>, surveyed: Surveyed, what: &str) -> Option<Value> {
    let span_of = |name: &str| bound.spans.get(name).copied().unwrap_or(at.span);
    let survey = match surveyed {
        Ok(s) => s,
        Err((arg, message)) => {
            return c.error(Diagnostic::new(codes::BAD_DATA, span_of(arg), message).label(format!("reading {what}")));
        }
    };
    let names = bound.json.get("class_names").and_then(|n| n.as_array()).map(Vec::len);
    let classes = match names {
        Some(n) if n < survey.labels_up_to => {
            return c.error(
                Diagnostic::new(
                    codes::BAD_DATA,
                    span_of("class_names"),
                    format!("{n} class names, but {what} has labels up to {}", survey.labels_up_to - 1),
                )
                .label("too few names")
                .help("name every class, in label order: class_names: [\"name of 0\", \"name of 1\", ...]"),
            );
        }
        Some(n) => n,
        None => survey.labels_up_to,
    };
    if classes < 2 {
        return c.error(
            Diagnostic::new(
                codes::BAD_DATA,
                at.span,
                format!("{what} has labels of {classes} class(es); a classifier needs two or more"),
            )
            .label("one class"),
        );
    }
    let kept: Option<Vec<usize>> = bound.json.get("classes").and_then(|k| serde_json::from_value(k.clone()).ok());
    if let Some(past) = kept.iter().flatten().find(|&&k| k >= classes) {
        return c.error(
            Diagnostic::new(
                codes::OUT_OF_RANGE,
                span_of("classes"),
                format!("class {past} does not exist: {what} has {classes} classes (0 to {})", classes - 1),
            )
            .label("no such class"),
        );
    }
    examples_fit(c, &bound, at, survey.count, what)?;
    let classes = kept.as_ref().map_or(classes, Vec::len);
    let node = c.push(at, bound.json, vec![]);
    Some(Value::Data {
        node,
        shape: survey.shape,
        classes,
    })
}

/// Checks that `skip` + `take` examples fit in a source's `count`; an error (returned as
/// `None`) otherwise.
pub fn examples_fit(c: &mut Checker<'_>, bound: &Bound, at: &At<'_>, count: usize, what: &str) -> Option<()> {
    let skip = bound.json.get("skip").and_then(|s| s.as_u64()).unwrap_or(0);
    let take = bound.json.get("take").and_then(|t| t.as_u64());
    if skip + take.unwrap_or(1) <= count as u64 {
        return Some(());
    }
    let s = bound.spans.get("take").or(bound.spans.get("skip")).copied().unwrap_or(at.span);
    c.error(
        Diagnostic::new(
            codes::OUT_OF_RANGE,
            s,
            format!(
                "{what} has {count} examples; skip {skip} + take {} exceeds it",
                take.map_or("1".into(), |t| t.to_string())
            ),
        )
        .label("too many examples"),
    )
}

/// `name`: how the report names a dataset.
pub const NAME: ParamDef = ParamDef::optional(ParamType::Text);
/// `class_names`: a name per class, in label order.
pub const CLASS_NAMES: ParamDef = ParamDef::optional(ParamType::Names);
/// `skip`: examples dropped from the front.
pub const SKIP: ParamDef = ParamDef::or(ParamType::Int, Default::Int(0)).range(0.0, 1.0e9);
/// `take`: examples kept after skip.
pub const TAKE: ParamDef = ParamDef::optional(ParamType::Int).range(1.0, 1.0e9);
/// `layout`: the order of 4-dimensional images.
pub const LAYOUT: ParamDef = ParamDef::optional(ParamType::Choice(&["nchw", "nhwc"]));

/// The estimate of a source whose stored image array has dimensions `dims` (the first
/// counting examples), when its header could be read.
pub fn estimate(sizes: &Sizes, dims: Option<Vec<usize>>) -> Estimate {
    let (stored, width) = match dims.as_deref() {
        Some([count, rest @ ..]) => (*count as f64, rest.iter().product::<usize>() as f64),
        _ => (0.0, 0.0),
    };
    let examples = sizes
        .params
        .get("take")
        .and_then(|t| t.as_f64())
        .unwrap_or((stored - sizes.number("skip", 0.0)).max(0.0));
    let data = DataShape { examples, width };
    Estimate {
        // The stored arrays are read whole (as bytes at least) before the examples are chosen.
        memory: data.bytes() + stored * width,
        params: 0.0,
        data: Some(data),
        gradients: None,
    }
}
