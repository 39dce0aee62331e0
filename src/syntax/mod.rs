//! Parse: pipeline text -> spanned AST ([`ast::File`]), or syntax diagnostics.
//!
//! The grammar lives in `grammar/pipeline.pest`; this module lowers pest's pairs into the
//! AST and turns pest's errors into [`Diagnostic`]s with human names for the rules.

pub mod ast;

use crate::diagnostics::{codes, Diagnostic, Span};
use ast::*;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser;

/// Operator precedence, loosest first: `>>`, then `+`, then `*`.
static PRECEDENCE: std::sync::LazyLock<PrattParser<Rule>> = std::sync::LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::stack, Assoc::Left))
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left) | Op::infix(Rule::div, Assoc::Left))
});

/// The parser pest generates from the grammar (its `Rule` enum names the grammar's rules).
mod generated {
    #![allow(missing_docs)]
    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/pipeline.pest"]
    pub struct PipelineParser;
}
use generated::{PipelineParser, Rule};

/// Parses a pipeline file. Syntax errors are returned as diagnostics at the places where
/// parsing stopped: after one, parsing resumes at the next line that starts an item at
/// column 0, so one run reports the file's syntax errors (up to [`MAX_SYNTAX_ERRORS`]).
pub fn parse(text: &str) -> Result<File, Vec<Diagnostic>> {
    check_nesting(text)?;
    let program = PipelineParser::parse(Rule::program, text)
        .map_err(|e| syntax_errors(e, text))?
        .next()
        .expect("the program rule always yields one pair");
    check_chain_lengths(&program)?;
    Ok(File {
        items: program.into_inner().filter(|p| p.as_rule() != Rule::EOI).map(lower_item).collect(),
    })
}

fn lower_item(pair: Pair<Rule>) -> Item {
    match pair.as_rule() {
        Rule::seed => {
            let span = pair.as_span().into();
            Item::Seed {
                value: lower_expr(pair.into_inner().next().expect("seed has a value")),
                span,
            }
        }
        Rule::decl => Item::Decl(lower_decl(pair)),
        Rule::import => {
            let span = pair.as_span().into();
            Item::Import {
                path: unescape(pair.into_inner().next().expect("import path")),
                span,
            }
        }
        Rule::table | Rule::plot => Item::Table(lower_table(pair)),
        Rule::sweep => Item::Sweep(lower_sweep(pair, lower_item)),
        r => unreachable!("unexpected top-level rule {r:?}"),
    }
}

fn lower_sweep<T>(pair: Pair<Rule>, body: fn(Pair<Rule>) -> T) -> Sweep<T> {
    let span = pair.as_span().into();
    let mut inner = pair.into_inner();
    let var = ident(inner.next().expect("loop variable"));
    let over = lower_expr(inner.next().expect("what the sweep runs over"));
    Sweep {
        var,
        over,
        body: inner.map(body).collect(),
        span,
    }
}

fn ident(pair: Pair<Rule>) -> Ident {
    Ident {
        name: pair.as_str().to_string(),
        span: pair.as_span().into(),
    }
}

fn lower_decl(pair: Pair<Rule>) -> Decl {
    let span = pair.as_span().into();
    let mut inner = pair.into_inner();
    let category = ident(inner.next().expect("category"));
    let mut target = inner.next().expect("name").into_inner();
    let name = ident(target.next().expect("name"));
    let indices = target.map(lower_expr).collect();
    let value = lower_expr(inner.next().expect("value"));
    Decl {
        category,
        name,
        indices,
        value,
        span,
    }
}

fn lower_table(pair: Pair<Rule>) -> Table {
    let span = pair.as_span().into();
    let plot = pair.as_rule() == Rule::plot;
    let mut inner = pair.into_inner();
    let title_pair = inner.next().expect("title");
    let title_span = title_pair.as_span().into();
    let title = unescape(title_pair);
    let rows = inner.map(lower_table_entry).collect();
    Table {
        title,
        title_span,
        rows,
        span,
        plot,
    }
}

fn lower_table_entry(pair: Pair<Rule>) -> TableEntry {
    if pair.as_rule() == Rule::row_sweep {
        return TableEntry::Sweep(lower_sweep(pair, lower_table_entry));
    }
    let span = pair.as_span().into();
    let mut parts = pair.into_inner();
    let label = unescape(parts.next().expect("label"));
    let fields = parts
        .map(|field| {
            let mut f = field.into_inner();
            let name = ident(f.next().expect("field name"));
            (name, lower_expr(f.next().expect("field value")))
        })
        .collect();
    TableEntry::Row(Row { label, span, fields })
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

fn lower_expr(pair: Pair<Rule>) -> Expr {
    let span: Span = pair.as_span().into();
    match pair.as_rule() {
        Rule::expr => {
            let mut operands = pair.clone().into_inner();
            let first = operands.next().expect("an expression has an operand");
            if operands.next().is_none() {
                // Most expressions are one operand: no precedence to apply.
                return lower_expr(first);
            }
            PRECEDENCE
                .map_primary(lower_expr)
                .map_infix(|lhs, op, rhs| join(op.as_rule(), lhs, rhs))
                .parse(pair.into_inner())
        }
        Rule::postfix => {
            let mut inner = pair.into_inner();
            let mut expr = lower_expr(inner.next().expect("atom"));
            for suffix in inner {
                let suffix_span: Span = suffix.as_span().into();
                let span = expr.span.to(suffix_span);
                let kind = if suffix.as_rule() == Rule::index {
                    ExprKind::Index {
                        base: Box::new(expr),
                        index: Box::new(lower_expr(suffix.into_inner().next().expect("index"))),
                    }
                } else {
                    ExprKind::Field {
                        base: Box::new(expr),
                        field: ident(suffix),
                    }
                };
                expr = Expr { kind, span };
            }
            expr
        }
        Rule::call => {
            let mut inner = pair.into_inner();
            let callee = ident(inner.next().expect("callee"));
            let Some(args) = inner.next() else {
                // The rule's span can include whitespace after the name; the name's cannot.
                return Expr {
                    kind: ExprKind::Name(callee.name),
                    span: callee.span,
                };
            };
            let args = args
                .into_inner()
                .map(|arg| {
                    let mut parts: Vec<Pair<Rule>> = arg.into_inner().collect();
                    let value = lower_expr(parts.pop().expect("argument value"));
                    Arg {
                        name: parts.pop().map(ident),
                        value,
                    }
                })
                .collect();
            Expr {
                kind: ExprKind::Call { callee, args },
                span,
            }
        }
        Rule::list => Expr {
            kind: ExprKind::List(pair.into_inner().map(lower_expr).collect()),
            span,
        },
        Rule::number => {
            let text = pair.as_str();
            let (digits, percent) = match text.strip_suffix('%') {
                Some(d) => (d, true),
                None => (text, false),
            };
            // `99.9%` is read as `99.9e-2`, which rounds once (to 0.999) instead of twice.
            let text = if percent { format!("{digits}e-2") } else { digits.to_string() };
            let text = if percent && digits.contains(['e', 'E']) {
                format!("{}", digits.parse::<f64>().unwrap_or(f64::NAN) / 100.0)
            } else {
                text
            };
            let value: f64 = text.parse().expect("the grammar only admits float syntax");
            Expr {
                kind: ExprKind::Number { value, percent },
                span,
            }
        }
        Rule::string => Expr {
            kind: ExprKind::Str(unescape(pair)),
            span,
        },
        Rule::ident => Expr {
            kind: ExprKind::Name(pair.as_str().to_string()),
            span,
        },
        r => unreachable!("unexpected expression rule {r:?}"),
    }
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

/// Human phrases for grammar rules, used in "expected ..." messages.
fn rule_phrase(rule: &Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::seed => "`seed`",
        Rule::decl => "a declaration (e.g. `data train = mnist(split: \"train\")`)",
        Rule::table => "`table`",
        Rule::row => "`row`",
        Rule::field => "a field (`name: value`)",
        Rule::expr | Rule::postfix => "a value",
        Rule::args => "arguments",
        Rule::sweep | Rule::row_sweep => "`for`",
        Rule::import => "`import`",
        Rule::plot => "`plot`",
        Rule::target => "a name",
        Rule::index => "an index",
        Rule::stack | Rule::add | Rule::sub | Rule::mul | Rule::div => "an operator",

        Rule::call => "a call",
        Rule::arg => "an argument",
        Rule::list => "a list",
        Rule::number => "a number",
        Rule::exponent => "an exponent",
        Rule::string => "a string",
        Rule::text => "string text",
        Rule::ident | Rule::name => "a name",
        Rule::reserved => "a reserved word",
        _ => "something else",
    }
}

/// How many syntax errors one run reports.
pub const MAX_SYNTAX_ERRORS: usize = 20;

/// The first syntax error and those found by resuming after each.
fn syntax_errors(first: pest::error::Error<Rule>, text: &str) -> Vec<Diagnostic> {
    let mut diags = vec![syntax_error(first, text, 0)];
    let mut resumed_at = 0;
    while diags.len() < MAX_SYNTAX_ERRORS {
        let after = diags.last().expect("one error at least").span.start;
        let Some(resume) = next_item_start(text, after.max(resumed_at + 1)) else {
            break;
        };
        resumed_at = resume;
        match PipelineParser::parse(Rule::program, &text[resume..]) {
            Ok(_) => break,
            Err(e) => diags.push(syntax_error(e, text, resume)),
        }
    }
    diags
}

/// The first line start at or after `from` whose line begins with a letter at column 0:
/// where a declaration, `table`, `plot`, `for`, `seed` or `import` begins in a file laid out
/// as the README's are.
fn next_item_start(text: &str, from: usize) -> Option<usize> {
    let mut at = from;
    while at < text.len() {
        let line_start = at == 0 || text.as_bytes()[at - 1] == b'\n';
        if line_start && text.as_bytes()[at].is_ascii_alphabetic() {
            return Some(at);
        }
        at += text[at..].find('\n')? + 1;
    }
    None
}

/// The innermost bracket still open at `at`, counting from `from` (strings and comments
/// skipped): where a forgotten `)` began.
fn open_bracket(text: &str, from: usize, at: usize) -> Option<(usize, char)> {
    let mut open = Vec::new();
    let (mut in_string, mut in_comment, mut escaped) = (false, false, false);
    for (i, c) in text[from..at].char_indices() {
        match c {
            _ if in_comment => in_comment = c != '\n',
            _ if in_string => {
                in_string = escaped || c != '"';
                escaped = c == '\\' && !escaped;
            }
            '#' => in_comment = true,
            '"' => in_string = true,
            '(' | '[' | '{' => open.push((from + i, c)),
            ')' | ']' | '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

fn syntax_error(err: pest::error::Error<Rule>, text: &str, offset: usize) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let at = offset
        + match err.location {
            InputLocation::Pos(p) => p,
            InputLocation::Span((s, _)) => s,
        };
    // What stands where parsing stopped: a word, or else one character.
    let rest = &text[at.min(text.len())..];
    let word_len = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let token_len = if word_len > 0 {
        word_len
    } else {
        rest.chars().next().map_or(0, char::len_utf8)
    };
    let found = match &rest[..token_len] {
        "" => "the end of the file".to_string(),
        "\n" => "the end of the line".to_string(),
        t => format!("`{t}`"),
    };
    let (message, label) = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut expected: Vec<&str> = positives.iter().map(rule_phrase).filter(|p| *p != "something else").collect();
            expected.dedup();
            match expected.len() {
                0 => (format!("syntax error: unexpected {found}"), "unexpected here".to_string()),
                n => {
                    let list = if n == 1 {
                        expected[0].to_string()
                    } else {
                        let (last, rest) = expected.split_last().expect("non-empty");
                        format!("{} or {}", rest.join(", "), last)
                    };
                    (format!("syntax error: expected {list}, found {found}"), format!("expected {list}"))
                }
            }
        }
        ErrorVariant::CustomError { message } => (format!("syntax error: {message}"), message.clone()),
    };
    let span = Span::new(at, at + token_len.max(1));
    // Stopped on a later line than a bracket still open, and not at its closing bracket:
    // most likely that bracket was never closed, and the place to fix is where it opened.
    match open_bracket(text, offset, at) {
        Some((open, bracket)) if text[open..at].contains('\n') && !rest.starts_with(closing(bracket)) => {
            let (line, _) = crate::diagnostics::line_col(text, open);
            Diagnostic::new(
                codes::SYNTAX,
                span,
                format!(
                    "syntax error: the `{bracket}` opened on line {line} is not closed ({})",
                    message.trim_start_matches("syntax error: ")
                ),
            )
            .label(label)
            .note(Span::new(open, open + 1), format!("this `{bracket}` is not closed"))
            .help(format!("close it with `{}`", closing(bracket)))
        }
        _ => Diagnostic::new(codes::SYNTAX, span, message)
            .label(label)
            .help("see the language reference in the README"),
    }
}

fn closing(bracket: char) -> char {
    match bracket {
        '(' => ')',
        '[' => ']',
        _ => '}',
    }
}

/// How deep brackets may nest. The parser recurses once per level; this keeps any input,
/// however hostile, from exhausting the stack.
pub const MAX_NESTING: usize = 64;

fn check_nesting(text: &str) -> Result<(), Vec<Diagnostic>> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut in_comment = false;
    let mut escaped = false;
    let mut string_start = 0;
    for (at, c) in text.char_indices() {
        match c {
            _ if in_comment => in_comment = c != '\n',
            '\n' if in_string => return Err(vec![unclosed_string(string_start)]),
            _ if in_string => {
                in_string = escaped || c != '"';
                escaped = c == '\\' && !escaped;
            }
            '#' => in_comment = true,
            '"' => {
                in_string = true;
                string_start = at;
            }
            _ if !c.is_ascii() => {
                let what = if c.is_alphanumeric() {
                    "names are ASCII letters, digits and `_`"
                } else {
                    "outside strings and comments, a pipeline is ASCII"
                };
                return Err(vec![Diagnostic::new(
                    codes::SYNTAX,
                    Span::new(at, at + c.len_utf8()),
                    format!("unexpected character `{c}` (U+{:04X}): {what}", c as u32),
                )
                .label("not allowed here")]);
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(vec![Diagnostic::new(
                        codes::SYNTAX,
                        Span::new(at, at + 1),
                        format!("brackets nested more than {MAX_NESTING} deep"),
                    )
                    .label("too deep")
                    .help("a pipeline never needs this much nesting; declare the inner part under a name")]);
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if in_string {
        return Err(vec![unclosed_string(string_start)]);
    }
    Ok(())
}

fn unclosed_string(start: usize) -> Diagnostic {
    Diagnostic::new(codes::SYNTAX, Span::new(start, start + 1), "this string is not closed")
        .label("opened here")
        .help("close it with `\"` on the same line; a `\"` inside a string is written `\\\"`")
}

/// How many `.field`s and `[index]`es may follow one value, and how many operands one
/// expression may join. Lowering and checking recurse once per link, so these keep any
/// input from exhausting the stack; real pipelines use a handful.
pub const MAX_CHAIN: usize = 64;
/// See [`MAX_CHAIN`]: a layer stack or a loss mixture longer than this is refused.
pub const MAX_OPERANDS: usize = 1024;

fn check_chain_lengths(program: &Pair<Rule>) -> Result<(), Vec<Diagnostic>> {
    // `flatten` walks pest's token queue without recursing.
    for pair in program.clone().into_inner().flatten() {
        if pair.as_rule() == Rule::number {
            let digits = pair.as_str().trim_end_matches('%');
            if !digits.parse::<f64>().is_ok_and(f64::is_finite) {
                let span = pair.as_span();
                return Err(vec![Diagnostic::new(
                    codes::SYNTAX,
                    Span::new(span.start(), span.end()),
                    format!("`{}` is too large to be a number (at most about 1.8e308)", pair.as_str()),
                )
                .label("too large")]);
            }
            continue;
        }
        let (limit, what) = match pair.as_rule() {
            Rule::postfix => (MAX_CHAIN + 1, "field accesses and indices after one value"),
            Rule::expr => (2 * MAX_OPERANDS - 1, "operands (`>>`, `+`, `*`) in one expression"),
            _ => continue,
        };
        let links = pair.clone().into_inner().count();
        if links > limit {
            let shown = if pair.as_rule() == Rule::postfix { MAX_CHAIN } else { MAX_OPERANDS };
            let span = pair.as_span();
            return Err(vec![Diagnostic::new(
                codes::SYNTAX,
                Span::new(span.start(), span.start() + 1),
                format!("more than {shown} {what}"),
            )
            .label("this chain is too long")
            .help("a pipeline never needs this many; split it into named declarations")]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(src: &str) -> String {
        parse(src).expect("parses").to_string()
    }

    #[test]
    fn long_chains_are_an_error_not_a_crash() {
        let fields = format!("eval f = e{}\n", ".error".repeat(10_000));
        assert!(parse(&fields).unwrap_err()[0].message.contains("more than 64 field accesses"));
        let indices = format!("eval f = e{}\n", "[1]".repeat(10_000));
        assert!(parse(&indices).unwrap_err()[0].message.contains("more than 64"));
        let stack = format!("net n = input([1, 28, 28]){} >> linear(10)\n", " >> relu".repeat(5000));
        assert!(parse(&stack).unwrap_err()[0].message.contains("more than 1024 operands"));
        assert!(parse("data d = mnist(split: \"train)\n").unwrap_err()[0]
            .message
            .contains("not closed"));
        let bad = parse("net caf\u{e9} = x\n").unwrap_err();
        assert!(
            bad[0].message.contains("unexpected character `\u{e9}`") && bad[0].span.start == 7,
            "{bad:?}"
        );
        assert!(parse("# caf\u{e9}\ndata d = mnist(split: \"\u{e9}\")\n").is_ok());
        assert!(parse("seed 1e400\n").unwrap_err()[0]
            .message
            .contains("`1e400` is too large to be a number"));
        let ok = format!("net n = input([1, 28, 28]){} >> linear(10)\n", " >> relu".repeat(1000));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn numbers_percentages_and_leading_dots() {
        assert_eq!(show("seed 1234"), "(seed 1234)\n");
        assert_eq!(show("attack a = fgsm(eps: .25)"), "(attack a (fgsm eps: 0.25))\n");
        let file = parse("table \"t\" { row \"r\" paper: 99.9% }").unwrap();
        let Item::Table(t) = &file.items[0] else { panic!() };
        let TableEntry::Row(row) = &t.rows[0] else { panic!() };
        let ExprKind::Number { value, percent } = row.fields[0].1.kind else {
            panic!()
        };
        assert!(percent && (value - 0.999).abs() < 1e-12);
    }

    #[test]
    fn stacks_and_fields() {
        assert_eq!(
            show("net n = input([1, 28, 28]) >> flatten >> linear(10)"),
            "(net n (>> (input [1 28 28]) flatten (linear 10)))\n"
        );
        assert_eq!(show("eval e = x.error"), "(eval e x.error)\n");
    }

    #[test]
    fn reserved_words_are_not_names_but_may_be_argument_names() {
        assert!(parse("data table = mnist()").is_err());
        assert!(parse("model m = fit(n, d, seed: 3)").is_ok());
    }

    #[test]
    fn errors_point_at_the_problem() {
        let err = parse("data train = mnist(split: )").unwrap_err();
        assert_eq!(err[0].code, codes::SYNTAX);
        assert_eq!(err[0].span.start, 26);
    }
}
