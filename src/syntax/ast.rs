//! The spanned syntax tree that parsing produces and checking consumes.
//!
//! It mirrors the grammar one to one and knows nothing about node kinds: `fgsm(eps: .25)`
//! is just a call. `Display` prints a compact S-expression form used by the parser
//! snapshot tests.

use crate::diagnostics::Span;
use std::fmt;

/// A whole pipeline file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    /// Top-level items in source order.
    pub items: Vec<Item>,
}

/// One top-level statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `seed 1234`
    Seed { value: Expr, span: Span },
    /// `model soft = fit(...)`
    Decl(Decl),
    /// `table "title" { row ... }`
    Table(Table),
}

/// An identifier with its place in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    /// The identifier's text.
    pub name: String,
    /// Where it stands.
    pub span: Span,
}

/// `category name = value`
#[derive(Clone, Debug, PartialEq)]
pub struct Decl {
    /// `data`, `net`, `model`, `attack` or `eval` (checked later).
    pub category: Ident,
    /// The declared name.
    pub name: Ident,
    /// Its value.
    pub value: Expr,
    /// The whole declaration.
    pub span: Span,
}

/// A results table.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The title string.
    pub title: String,
    /// Where the title stands.
    pub title_span: Span,
    /// Its rows in order.
    pub rows: Vec<Row>,
    /// The whole table.
    pub span: Span,
}

/// `row "label" value: ev.error paper: 99.9%`
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The row's label.
    pub label: String,
    /// The whole row.
    pub span: Span,
    /// `name: value` fields in order.
    pub fields: Vec<(Ident, Expr)>,
}

/// An expression with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What kind of expression.
    pub kind: ExprKind,
    /// Where it stands.
    pub span: Span,
}

/// The expression forms of the language.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// `0.25`, `.25`, `1e-3`; `99.9%` is stored as 0.999 with `percent` set.
    Number { value: f64, percent: bool },
    /// `"train"`
    Str(String),
    /// `train`, `flatten`
    Name(String),
    /// `[1, 28, 28]`
    List(Vec<Expr>),
    /// `fit(softmax, train, epochs: 10)`
    Call { callee: Ident, args: Vec<Arg> },
    /// `ev.error`
    Field { base: Box<Expr>, field: Ident },
    /// `input([1, 28, 28]) >> flatten >> linear(10)`, two or more parts.
    Stack(Vec<Expr>),
    /// `a + b`, two or more terms.
    Sum(Vec<Expr>),
    /// `a * b`, two or more factors.
    Product(Vec<Expr>),
}

/// One argument of a call: positional when `name` is `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// `eps` in `eps: 0.25`.
    pub name: Option<Ident>,
    /// The value.
    pub value: Expr,
}

impl fmt::Display for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            match item {
                Item::Seed { value, .. } => writeln!(f, "(seed {value})")?,
                Item::Decl(d) => writeln!(f, "({} {} {})", d.category.name, d.name.name, d.value)?,
                Item::Table(t) => {
                    writeln!(f, "(table {:?}", t.title)?;
                    for row in &t.rows {
                        write!(f, "  (row {:?}", row.label)?;
                        for (name, value) in &row.fields {
                            write!(f, " {}: {}", name.name, value)?;
                        }
                        writeln!(f, ")")?;
                    }
                    writeln!(f, ")")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Number { value, percent: false } => write!(f, "{value}"),
            ExprKind::Number { value, percent: true } => write!(f, "{}%", value * 100.0),
            ExprKind::Str(s) => write!(f, "{s:?}"),
            ExprKind::Name(n) => write!(f, "{n}"),
            ExprKind::List(items) => {
                write!(f, "[")?;
                for (i, e) in items.iter().enumerate() {
                    write!(f, "{}{e}", if i > 0 { " " } else { "" })?;
                }
                write!(f, "]")
            }
            ExprKind::Call { callee, args } => {
                write!(f, "({}", callee.name)?;
                for a in args {
                    match &a.name {
                        Some(n) => write!(f, " {}: {}", n.name, a.value)?,
                        None => write!(f, " {}", a.value)?,
                    }
                }
                write!(f, ")")
            }
            ExprKind::Field { base, field } => write!(f, "{base}.{}", field.name),
            ExprKind::Stack(parts) => write_list(f, ">>", parts),
            ExprKind::Sum(parts) => write_list(f, "+", parts),
            ExprKind::Product(parts) => write_list(f, "*", parts),
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, op: &str, parts: &[Expr]) -> fmt::Result {
    write!(f, "({op}")?;
    for p in parts {
        write!(f, " {p}")?;
    }
    write!(f, ")")
}
