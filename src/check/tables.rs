//! Tables and plots: rows and points resolved to the metrics they show, `mean(...)` rows,
//! paper values and tolerances.

use super::*;
use crate::diagnostics::{codes, did_you_mean, Diagnostic};
use crate::syntax::ast::{self, Expr, ExprKind};
use ir::NodeId;

impl<'a> Checker<'a> {
    /// A plot: every row is a point `x: NUMBER y: METRIC` of the series its label names.
    pub(super) fn plot(&mut self, t: &'a ast::Table) {
        let mut points = Vec::new();
        let mut x_label: Option<String> = None;
        for entry in &t.rows {
            let ast::TableEntry::Row(row) = entry else {
                unreachable!("sweeps are expanded before checking")
            };
            let (mut x, mut y) = (None, None);
            for (name, expr) in &row.fields {
                match (name.name.as_str(), self.expr(expr, None)) {
                    ("x", Some(Value::Number { value, .. })) => {
                        x = Some(value);
                        // Sweeps are expanded, but spans still point at what was written.
                        let written = self.source.get(expr.span.start..expr.span.end).unwrap_or_default();
                        if x_label.is_none() && written.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                            x_label = Some(written.to_string());
                        }
                    }
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
            x_label,
        });
    }

    pub(super) fn table(&mut self, t: &'a ast::Table) {
        let mut rows = Vec::new();
        for entry in &t.rows {
            let ast::TableEntry::Row(row) = entry else {
                unreachable!("sweeps are expanded before checking")
            };
            let mut measured = None;
            let mut paper = None;
            let mut tol = None;
            let mut column = None;
            for (name, expr) in &row.fields {
                match name.name.as_str() {
                    "column" => match &expr.kind {
                        ExprKind::Str(text) => column = Some((text.clone(), expr.span)),
                        _ => {
                            self.diags.push(
                                Diagnostic::new(codes::BAD_ROW, expr.span, "`column` must be a string, the column's heading")
                                    .label("not a string")
                                    .help("e.g. `row \"{eps}\" column: \"FGSM\" value: f[eps].error`"),
                            );
                            // Named, if wrongly: the row is not also missing a column.
                            column = Some((String::new(), expr.span));
                        }
                    },
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
                        let help = match did_you_mean(other, ["value", "paper", "tol", "column"]) {
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
                Some(sources) => rows.push((
                    ir::Row {
                        label: row.label.clone(),
                        sources,
                        paper,
                        tol: tol.map(|t| t.0),
                        column: column.as_ref().map(|c| c.0.clone()),
                    },
                    column.map_or(row.span, |c| c.1),
                )),
                None if !row.fields.iter().any(|(n, _)| n.name == "value") => self.diags.push(
                    Diagnostic::new(codes::BAD_ROW, row.span, format!("row \"{}\" has no `value:`", row.label))
                        .label("nothing measured")
                        .help("add `value: <eval>.<metric>`"),
                ),
                None => {}
            }
        }
        let columns = self.columns_of(&rows);
        self.program.tables.push(ir::Table {
            title: t.title.clone(),
            rows: rows.into_iter().map(|(row, _)| row).collect(),
            columns,
        });
    }

    /// `span` cut at the end of its first line (a row's span runs on to the next item).
    fn line_of(&self, span: Span) -> Span {
        let end = self.source[span.start..span.end].find('\n').map_or(span.end, |n| span.start + n);
        Span {
            start: span.start,
            end: end.max(span.start + 1).min(span.end),
        }
    }

    /// A table's columns: either every row names one (`column:`) or none does, and no two
    /// rows fill the same cell.
    fn columns_of(&mut self, rows: &[(ir::Row, Span)]) -> Vec<String> {
        let mut columns: Vec<String> = Vec::new();
        let mut cells: Vec<(&str, &str)> = Vec::new();
        let named = rows.iter().filter(|(r, _)| r.column.is_some()).count();
        for (row, span) in rows {
            match &row.column {
                None if named > 0 => self.diags.push(
                    Diagnostic::new(
                        codes::BAD_ROW,
                        self.line_of(*span),
                        format!("row \"{}\" names no column, but other rows of its table do", row.label),
                    )
                    .label("no `column:`")
                    .help("give every row of a table with columns a `column: \"...\"`"),
                ),
                None => {}
                Some(column) => {
                    if cells.contains(&(row.label.as_str(), column.as_str())) {
                        self.diags.push(
                            Diagnostic::new(
                                codes::BAD_ROW,
                                *span,
                                format!("row \"{}\" fills column \"{column}\" twice", row.label),
                            )
                            .label("this cell is already filled")
                            .help("rows with the same label share a line; give each a different column"),
                        );
                    }
                    cells.push((&row.label, column));
                    if !columns.contains(column) {
                        columns.push(column.clone());
                    }
                }
            }
        }
        columns
    }
    /// `mean([a.error, b.error])` or `mean(adv[seeds].error)`: the metrics a row averages.
    pub(super) fn mean_of(&mut self, expr: &'a Expr) -> Option<Vec<(NodeId, String)>> {
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
