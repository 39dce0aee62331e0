//! Lowering: pest's pairs -> the spanned AST, refusing what later stages must not see
//! (chains and mixtures longer than the limits, numbers too large for an `f64`).
//!
//! A [`Lower`] knows where its text starts in the file, so a file parsed in pieces
//! ([`super::parse`]) gets the same spans as one parsed whole.

use super::ast::*;
use super::{Rule, MAX_CHAIN, MAX_OPERANDS};
use crate::diagnostics::{codes, Diagnostic, Span};
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};

/// Operator precedence, loosest first: `>>`, then `+ -`, then `* /`.
static PRECEDENCE: std::sync::LazyLock<PrattParser<Rule>> = std::sync::LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::stack, Assoc::Left))
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left) | Op::infix(Rule::div, Assoc::Left))
});

/// What lowering refuses: one diagnostic, the first in file order (boxed: the error path
/// is rare and the `Ok` path is every node).
type Lowered<T> = Result<T, Box<Diagnostic>>;

/// Lowers the pairs of a text that starts at byte `offset` of its file.
#[derive(Clone, Copy)]
pub(super) struct Lower {
    pub(super) offset: usize,
}

impl Lower {
    fn span(self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.offset + s.start(), self.offset + s.end())
    }

    /// The items of a `program` pair.
    pub(super) fn program(self, program: Pair<Rule>) -> Lowered<Vec<Item>> {
        program
            .into_inner()
            .filter(|p| p.as_rule() != Rule::EOI)
            .map(|p| self.item(p))
            .collect()
    }

    fn item(self, pair: Pair<Rule>) -> Lowered<Item> {
        Ok(match pair.as_rule() {
            Rule::seed => {
                let span = self.span(&pair);
                Item::Seed {
                    value: self.expr(pair.into_inner().next().expect("seed has a value"))?,
                    span,
                }
            }
            Rule::decl => Item::Decl(self.decl(pair)?),
            Rule::import => {
                let span = self.span(&pair);
                Item::Import {
                    path: unescape(pair.into_inner().next().expect("import path")),
                    span,
                }
            }
            Rule::table | Rule::plot => Item::Table(self.table(pair)?),
            Rule::sweep => Item::Sweep(self.sweep(pair, Self::item)?),
            r => unreachable!("unexpected top-level rule {r:?}"),
        })
    }

    fn sweep<T>(self, pair: Pair<Rule>, body: fn(Self, Pair<Rule>) -> Lowered<T>) -> Lowered<Sweep<T>> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let var = self.ident(inner.next().expect("loop variable"));
        let over = self.expr(inner.next().expect("what the sweep runs over"))?;
        Ok(Sweep {
            var,
            over,
            body: inner.map(|p| body(self, p)).collect::<Lowered<_>>()?,
            span,
        })
    }

    fn ident(self, pair: Pair<Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn decl(self, pair: Pair<Rule>) -> Lowered<Decl> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let category = self.ident(inner.next().expect("category"));
        let mut target = inner.next().expect("name").into_inner();
        let name = self.ident(target.next().expect("name"));
        let indices = target.map(|p| self.expr(p)).collect::<Lowered<_>>()?;
        let value = self.expr(inner.next().expect("value"))?;
        Ok(Decl {
            category,
            name,
            indices,
            value,
            span,
        })
    }

    fn table(self, pair: Pair<Rule>) -> Lowered<Table> {
        let span = self.span(&pair);
        let plot = pair.as_rule() == Rule::plot;
        let mut inner = pair.into_inner();
        let title_pair = inner.next().expect("title");
        let title_span = self.span(&title_pair);
        let title = unescape(title_pair);
        let rows = inner.map(|p| self.table_entry(p)).collect::<Lowered<_>>()?;
        Ok(Table {
            title,
            title_span,
            rows,
            span,
            plot,
        })
    }

    fn table_entry(self, pair: Pair<Rule>) -> Lowered<TableEntry> {
        if pair.as_rule() == Rule::row_sweep {
            return Ok(TableEntry::Sweep(self.sweep(pair, Self::table_entry)?));
        }
        let span = self.span(&pair);
        let mut parts = pair.into_inner();
        let label = unescape(parts.next().expect("label"));
        let fields = parts
            .map(|field| {
                let mut f = field.into_inner();
                let name = self.ident(f.next().expect("field name"));
                Ok((name, self.expr(f.next().expect("field value"))?))
            })
            .collect::<Lowered<_>>()?;
        Ok(TableEntry::Row(Row { label, span, fields }))
    }

    /// Refuses a chain of more than `limit` links (`what` says of what) at `pair`.
    fn limit(self, pair: &Pair<Rule>, links: usize, limit: usize, shown: usize, what: &str) -> Lowered<()> {
        if links <= limit {
            return Ok(());
        }
        let start = self.span(pair).start;
        Err(Box::new(
            Diagnostic::new(codes::SYNTAX, Span::new(start, start + 1), format!("more than {shown} {what}"))
                .label("this chain is too long")
                .help("a pipeline never needs this many; split it into named declarations"),
        ))
    }

    fn expr(self, pair: Pair<Rule>) -> Lowered<Expr> {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::expr => {
                let mut operands = pair.clone().into_inner();
                let what = "operands (`>>`, `+`, `*`) in one expression";
                self.limit(&pair, operands.len(), 2 * MAX_OPERANDS - 1, MAX_OPERANDS, what)?;
                if operands.len() == 1 {
                    // Most expressions are one operand: no precedence to apply.
                    return self.expr(operands.next().expect("an expression has an operand"));
                }
                PRECEDENCE
                    .map_primary(|p| self.expr(p))
                    .map_infix(|lhs, op, rhs| Ok(join(op.as_rule(), lhs?, rhs?)))
                    .parse(pair.into_inner())
            }
            Rule::postfix => {
                let mut inner = pair.clone().into_inner();
                let what = "field accesses and indices after one value";
                self.limit(&pair, inner.len(), MAX_CHAIN + 1, MAX_CHAIN, what)?;
                let mut expr = self.expr(inner.next().expect("atom"))?;
                for suffix in inner {
                    let span = expr.span.to(self.span(&suffix));
                    let kind = if suffix.as_rule() == Rule::index {
                        ExprKind::Index {
                            base: Box::new(expr),
                            index: Box::new(self.expr(suffix.into_inner().next().expect("index"))?),
                        }
                    } else {
                        ExprKind::Field {
                            base: Box::new(expr),
                            field: self.ident(suffix),
                        }
                    };
                    expr = Expr { kind, span };
                }
                Ok(expr)
            }
            Rule::call => {
                let mut inner = pair.into_inner();
                let callee = self.ident(inner.next().expect("callee"));
                let Some(args) = inner.next() else {
                    // The rule's span can include whitespace after the name; the name's cannot.
                    return Ok(Expr {
                        kind: ExprKind::Name(callee.name),
                        span: callee.span,
                    });
                };
                let args = args
                    .into_inner()
                    .map(|arg| {
                        let mut parts = arg.into_inner();
                        let first = parts.next().expect("argument value");
                        Ok(match parts.next() {
                            Some(value) => Arg {
                                name: Some(self.ident(first)),
                                value: self.expr(value)?,
                            },
                            None => Arg {
                                name: None,
                                value: self.expr(first)?,
                            },
                        })
                    })
                    .collect::<Lowered<_>>()?;
                Ok(Expr {
                    kind: ExprKind::Call { callee, args },
                    span,
                })
            }
            Rule::list => Ok(Expr {
                kind: ExprKind::List(pair.into_inner().map(|p| self.expr(p)).collect::<Lowered<_>>()?),
                span,
            }),
            Rule::number => number(pair.as_str(), span),
            Rule::string => Ok(Expr {
                kind: ExprKind::Str(unescape(pair)),
                span,
            }),
            Rule::ident => Ok(Expr {
                kind: ExprKind::Name(pair.as_str().to_string()),
                span,
            }),
            r => unreachable!("unexpected expression rule {r:?}"),
        }
    }
}

/// A number as written (`0.25`, `1e-3`, `99.9%`).
fn number(text: &str, span: Span) -> Lowered<Expr> {
    let (digits, percent) = match text.strip_suffix('%') {
        Some(d) => (d, true),
        None => (text, false),
    };
    let parsed = match digits.parse::<f64>() {
        Ok(v) if v.is_finite() => v,
        _ => {
            return Err(Box::new(
                Diagnostic::new(
                    codes::SYNTAX,
                    span,
                    format!("`{text}` is too large to be a number (at most about 1.8e308)"),
                )
                .label("too large"),
            ))
        }
    };
    // `99.9%` is read as `99.9e-2`, which rounds once (to 0.999) instead of twice.
    let value = if !percent {
        parsed
    } else if digits.contains(['e', 'E']) {
        parsed / 100.0
    } else {
        format!("{digits}e-2").parse().expect("the grammar only admits float syntax")
    };
    Ok(Expr {
        kind: ExprKind::Number { value, percent },
        span,
    })
}

fn unescape(string: Pair<Rule>) -> String {
    let raw = string.into_inner().next().map_or("", |t| t.as_str());
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `lhs op rhs` as one flat list per operator: `a + b + c` is one sum of three terms,
/// however it was grouped; `a - b` is the sum of `a` and `-b`, `a / b` the product of `a`
/// and `1 / b`.
fn join(op: Rule, lhs: Expr, rhs: Expr) -> Expr {
    let span = lhs.span.to(rhs.span);
    let operands = |e: Expr| match (op, e.kind) {
        (Rule::stack, ExprKind::Stack(parts))
        | (Rule::add | Rule::sub, ExprKind::Sum(parts))
        | (Rule::mul | Rule::div, ExprKind::Product(parts)) => parts,
        (_, kind) => vec![Expr { kind, span: e.span }],
    };
    let mut parts = operands(lhs);
    match op {
        Rule::sub => parts.push(Expr {
            span: rhs.span,
            kind: ExprKind::Negate(Box::new(rhs)),
        }),
        Rule::div => parts.push(Expr {
            span: rhs.span,
            kind: ExprKind::Reciprocal(Box::new(rhs)),
        }),
        _ => parts.extend(operands(rhs)),
    }
    let kind = match op {
        Rule::stack => ExprKind::Stack(parts),
        Rule::add | Rule::sub => ExprKind::Sum(parts),
        _ => ExprKind::Product(parts),
    };
    Expr { kind, span }
}
