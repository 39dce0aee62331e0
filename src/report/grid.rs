//! Tables whose rows name columns (`row "{eps}" column: "FGSM" value: ...`), drawn as a
//! grid: a line per distinct row label (in the order labels first appear), a column per
//! distinct `column:` (likewise), each cell the measured value with the paper's in brackets
//! where the row cites one. `results.json` and `tables.csv` keep one entry per row, with its
//! column, so nothing that reads them changes.

use super::{format_value, RowResult, TableResult};

/// A table as text: the header, its lines, and each column's markdown alignment. For a
/// table whose rows name columns, the header is an empty corner then the columns, and a
/// line is the label then a cell per column (`-` where no row fills it).
pub struct Grid {
    /// `["", column, ...]`.
    pub header: Vec<String>,
    /// `[label, cell, ...]` per line.
    pub lines: Vec<Vec<String>>,
    /// Per column, `---` (text) or `---:` (numbers, right-aligned).
    pub rule: Vec<&'static str>,
}

/// The grid of `t`, if its rows name columns.
pub fn grid(t: &TableResult) -> Option<Grid> {
    if t.columns.is_empty() {
        return None;
    }
    let mut labels: Vec<&str> = Vec::new();
    for row in &t.rows {
        if !labels.contains(&row.label.as_str()) {
            labels.push(&row.label);
        }
    }
    let cell = |row: &RowResult| match row.paper {
        Some(paper) => format!("{} ({})", format_value(&row.metric, row.measured), format_value(&row.metric, paper)),
        None => format_value(&row.metric, row.measured),
    };
    let lines = labels
        .iter()
        .map(|label| {
            let mut line = vec![label.to_string()];
            line.extend(t.columns.iter().map(|column| {
                t.rows
                    .iter()
                    .find(|r| r.label == *label && r.column.as_deref() == Some(column))
                    .map_or_else(|| "-".to_string(), cell)
            }));
            line
        })
        .collect();
    let mut header = vec![String::new()];
    header.extend(t.columns.iter().cloned());
    let rule = std::iter::once("---").chain(t.columns.iter().map(|_| "---:")).collect();
    Some(Grid { header, lines, rule })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, column: &str, measured: f64, paper: Option<f64>) -> RowResult {
        RowResult {
            label: label.into(),
            node: "e".into(),
            metric: "error".into(),
            measured,
            samples: vec![],
            paper,
            tol: None,
            spread: None,
            column: Some(column.into()),
        }
    }

    #[test]
    fn rows_pivot_into_lines_and_columns() {
        let t = TableResult {
            title: "t".into(),
            rows: vec![
                row("0.1", "FGSM", 0.5, None),
                row("0.1", "PGD", 0.75, Some(0.8)),
                row("0.2", "FGSM", 0.9, None),
            ],
            columns: vec!["FGSM".into(), "PGD".into()],
        };
        let g = grid(&t).unwrap();
        assert_eq!(g.header, ["", "FGSM", "PGD"]);
        assert_eq!(g.lines, [vec!["0.1", "50.0%", "75.0% (80.0%)"], vec!["0.2", "90.0%", "-"]]);
    }
}
