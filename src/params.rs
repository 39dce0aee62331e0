//! Typed parameter signatures shared by every registry (layers, attacks, node kinds).
//!
//! A parameter is declared once: [`declare_params!`] writes the params struct (the field,
//! its Rust type and its doc) and the [`ParamSpec`] list the checker binds arguments
//! against (name, type, default, allowed range and the same doc line) from one list of
//! fields. The bound values become a JSON object that the struct reads back with serde: one
//! declaration serves checking, cache keys and execution, and cannot drift.

/// What values a parameter accepts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamType {
    /// A whole number.
    Int,
    /// A real number (percentages allowed: `25%` is 0.25).
    Number,
    /// Any string (a path, a label).
    Text,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
    /// A tensor shape, e.g. `[1, 28, 28]`.
    Shape,
    /// A list of distinct class indices, e.g. `[3, 7]`.
    Classes,
    /// A list of distinct, non-empty strings, e.g. `["cat", "dog"]` (class names).
    Names,
    /// A clip range: `[lo, hi]`, or the string `"none"`.
    ClipRange,
    /// A dataset (a `data` declaration or call).
    Dataset,
    /// A network architecture (a `net` declaration or a `>>` stack).
    Net,
    /// A trained model.
    Model,
    /// A list of models, e.g. `[m1, m2]`.
    ModelList,
    /// An attack.
    Attack,
    /// A list of attacks, e.g. `[apgd_ce, square5000]`.
    AttackList,
    /// A training loss: `clean`, an attack, or a weighted sum such as `0.5 * clean + 0.5 * fgsm25`.
    Loss,
}

impl ParamType {
    /// How the type is named in messages.
    pub fn describe(&self) -> String {
        match self {
            ParamType::Int => "a whole number".into(),
            ParamType::Number => "a number".into(),
            ParamType::Text => "a string".into(),
            ParamType::Choice(c) => format!("one of {}", c.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")),
            ParamType::Shape => "a shape such as [1, 28, 28]".into(),
            ParamType::Classes => "a list of distinct digits such as [3, 7]".into(),
            ParamType::Names => "a list of distinct names such as [\"cat\", \"dog\"]".into(),
            ParamType::ClipRange => "a range [lo, hi] or \"none\"".into(),
            ParamType::Dataset => "a dataset".into(),
            ParamType::Net => "a net".into(),
            ParamType::Model => "a model".into(),
            ParamType::ModelList => "a list of models".into(),
            ParamType::Attack => "an attack".into(),
            ParamType::AttackList => "a list of attacks such as [fgsm25, pgd40]".into(),
            ParamType::Loss => "a loss such as `0.5 * clean + 0.5 * fgsm25`".into(),
        }
    }
}

/// A parameter's default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Default {
    /// The argument must be given.
    Required,
    /// The argument may be left out and then is absent.
    Optional,
    /// A whole-number default.
    Int(i64),
    /// A real-number default.
    Number(f64),
    /// A string default.
    Str(&'static str),
    /// A clip range default `[lo, hi]`.
    Range(f64, f64),
}

/// One parameter of a node kind.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    /// Its name in argument lists.
    pub name: &'static str,
    /// What it accepts.
    pub ty: ParamType,
    /// Its default.
    pub default: Default,
    /// Inclusive bounds for numbers.
    pub range: Option<(f64, f64)>,
    /// One line for the language reference and help messages.
    pub doc: &'static str,
}

impl ParamSpec {
    /// A parameter that must be given.
    pub const fn required(name: &'static str, ty: ParamType, doc: &'static str) -> Self {
        ParamSpec {
            name,
            ty,
            default: Default::Required,
            range: None,
            doc,
        }
    }
    /// A parameter with a default.
    pub const fn with_default(name: &'static str, ty: ParamType, default: Default, doc: &'static str) -> Self {
        ParamSpec {
            name,
            ty,
            default,
            range: None,
            doc,
        }
    }
    /// Restricts a numeric parameter to `[lo, hi]`.
    pub const fn range(mut self, lo: f64, hi: f64) -> Self {
        self.range = Some((lo, hi));
        self
    }
    /// The default as JSON, if there is one.
    pub fn default_json(&self) -> Option<serde_json::Value> {
        match self.default {
            Default::Required | Default::Optional => None,
            Default::Int(i) => Some(i.into()),
            Default::Number(n) => Some(n.into()),
            Default::Str(s) => Some(s.into()),
            Default::Range(lo, hi) => Some(serde_json::json!([lo, hi])),
        }
    }
}

/// A parameter's type, default and range, as written in [`declare_params!`] (the name and
/// doc line come from the field it declares).
#[derive(Clone, Copy, Debug)]
pub struct ParamDef {
    /// What it accepts.
    pub ty: ParamType,
    /// Its default.
    pub default: Default,
    /// Inclusive bounds for numbers.
    pub range: Option<(f64, f64)>,
}

impl ParamDef {
    /// A parameter that must be given.
    pub const fn required(ty: ParamType) -> Self {
        ParamDef {
            ty,
            default: Default::Required,
            range: None,
        }
    }
    /// A parameter that may be left out.
    pub const fn optional(ty: ParamType) -> Self {
        ParamDef {
            ty,
            default: Default::Optional,
            range: None,
        }
    }
    /// A parameter with a default.
    pub const fn or(ty: ParamType, default: Default) -> Self {
        ParamDef { ty, default, range: None }
    }
    /// Restricts a numeric parameter to `[lo, hi]`.
    pub const fn range(mut self, lo: f64, hi: f64) -> Self {
        self.range = Some((lo, hi));
        self
    }
}

impl ParamSpec {
    /// The spec of a field declared by [`declare_params!`]: its name, its definition and its
    /// doc comment (whose leading space is dropped).
    pub const fn declared(name: &'static str, def: ParamDef, doc: &'static str) -> Self {
        let doc = match doc.as_bytes() {
            [b' ', rest @ ..] => match std::str::from_utf8(rest) {
                Ok(trimmed) => trimmed,
                Err(_) => doc,
            },
            _ => doc,
        };
        ParamSpec {
            name,
            ty: def.ty,
            default: def.default,
            range: def.range,
            doc,
        }
    }
}

/// The Rust type of a parameter that names another node (a dataset, a model): its value
/// travels as an input edge, not in the canonical parameters, so the field holds nothing
/// (declare it `#[serde(default)]`).
#[derive(Clone, Copy, Debug, std::default::Default, PartialEq, Eq)]
pub struct Input;

impl<'de> serde::Deserialize<'de> for Input {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Input)
    }
}

/// Declares a params struct and its [`ParamSpec`] list (`PARAMS`) from one list of fields:
/// each field's doc comment (one line) is its doc in both, its name is the parameter's
/// name, and the expression after `=` is its [`ParamDef`]. Attributes on the struct (derives,
/// serde options) and on fields (after the doc) pass through.
///
/// ```
/// advpipe::declare_params! {
///     /// `fgsm`'s own parameters.
///     #[derive(serde::Deserialize)]
///     pub struct Fgsm {
///         /// size of the perturbation budget
///         eps: f32 = advpipe::params::ParamDef::required(advpipe::params::ParamType::Number).range(0.0, 1.0),
///     }
/// }
/// assert_eq!(Fgsm::PARAMS[0].name, "eps");
/// assert_eq!(Fgsm::PARAMS[0].doc, "size of the perturbation budget");
/// ```
#[macro_export]
macro_rules! declare_params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                #[doc = $doc:literal]
                $(#[$field_meta:meta])*
                $field:ident : $ty:ty = $def:expr
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $(
                #[doc = $doc]
                $(#[$field_meta])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// Its parameters, positional in field order, named and documented by the fields.
            pub const PARAMS: &'static [$crate::params::ParamSpec] = &[
                $( $crate::params::ParamSpec::declared(stringify!($field), $def, $doc), )*
            ];
        }
    };
}

/// What a registered kind produces; the declaration word that goes with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// `data`: a dataset.
    Data,
    /// `net`: a layer or an architecture.
    Net,
    /// `model`: a trained model.
    Model,
    /// `attack`: an attack.
    Attack,
    /// `eval`: metrics.
    Eval,
    /// `examples`: a grid of clean and adversarial images for the report.
    Examples,
    /// `figure`: a picture of models for the report (first-layer weights).
    Figure,
    /// `export`: tensors written into the results folder for other tools (numpy, PyTorch).
    Export,
}

impl Category {
    /// The declaration word.
    pub fn word(self) -> &'static str {
        match self {
            Category::Data => "data",
            Category::Net => "net",
            Category::Model => "model",
            Category::Attack => "attack",
            Category::Eval => "eval",
            Category::Examples => "examples",
            Category::Figure => "figure",
            Category::Export => "export",
        }
    }
    /// All categories, in the order the docs list them.
    pub const ALL: [Category; 8] = [
        Category::Data,
        Category::Net,
        Category::Model,
        Category::Attack,
        Category::Eval,
        Category::Examples,
        Category::Figure,
        Category::Export,
    ];
}
