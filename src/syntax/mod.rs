//! Parse: pipeline text -> spanned AST ([`ast::File`]), or syntax diagnostics.
//!
//! The grammar lives in `grammar/pipeline.pest`; [`lower`] turns pest's pairs into the AST
//! and [`errors`] turns pest's errors into [`Diagnostic`]s with human names for the rules.
//! A large file is parsed in pieces on several threads, cut where top-level items start.

pub mod ast;
mod errors;
mod lower;

pub use errors::MAX_SYNTAX_ERRORS;

use crate::diagnostics::{codes, Diagnostic, Span};
use ast::*;
use lower::Lower;
use pest::Parser;

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
    let item_starts = check_nesting(text)?;
    if let Some(items) = parse_in_pieces(text, &item_starts) {
        return Ok(File { items });
    }
    let program = PipelineParser::parse(Rule::program, text)
        .map_err(|e| errors::syntax_errors(e, text))?
        .next()
        .expect("the program rule always yields one pair");
    let items = Lower { offset: 0 }.program(program).map_err(|d| vec![*d])?;
    Ok(File { items })
}

/// The smallest piece worth a thread of its own (the frontend benchmark's 10,000-node file
/// is 470 KB).
const MIN_PIECE_BYTES: usize = 64 * 1024;

/// Parses a large file as pieces on threads, cut at line starts where an item may begin;
/// `None` when the file is small or a piece fails (then the whole file is parsed again, so
/// errors read exactly as they do for one piece).
///
/// Why cutting cannot change the result: a piece that parses ends with complete items and
/// its brackets closed, and the next piece starts with a letter at the start of a line,
/// which cannot continue any expression (that takes `.`, `[`, `(` or an operator). So
/// where every piece parses, the whole file parses into the same items, with the same
/// spans once each piece's offset is added.
fn parse_in_pieces(text: &str, item_starts: &[usize]) -> Option<Vec<Item>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let pieces = threads.min(text.len() / MIN_PIECE_BYTES);
    if pieces < 2 {
        return None;
    }
    let mut cuts = vec![0];
    for k in 1..pieces {
        let at = item_starts[item_starts.partition_point(|&s| s < k * text.len() / pieces)..].first()?;
        if *at > *cuts.last().expect("starts with 0") {
            cuts.push(*at);
        }
    }
    cuts.push(text.len());
    parse_cut(text, &cuts)
}

/// Parses `text` as the pieces between consecutive `cuts` (the first 0, the last the end),
/// each but the first on a thread of its own; `None` if any piece fails.
fn parse_cut(text: &str, cuts: &[usize]) -> Option<Vec<Item>> {
    let piece = |range: (usize, usize)| -> Option<Vec<Item>> {
        let program = PipelineParser::parse(Rule::program, &text[range.0..range.1]).ok()?.next()?;
        Lower { offset: range.0 }.program(program).ok()
    };
    let ranges: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
    std::thread::scope(|scope| {
        // The parser recurses per bracket level (at most MAX_NESTING); the main thread's
        // stack size keeps that margin the same on every thread.
        let spawned: Vec<_> = ranges[1..]
            .iter()
            .map(|&range| {
                std::thread::Builder::new()
                    .stack_size(8 << 20)
                    .spawn_scoped(scope, move || piece(range))
            })
            .collect();
        let mut items = piece(ranges[0]);
        for handle in spawned {
            let more = handle.ok()?.join().ok()??;
            items.as_mut()?.extend(more);
        }
        items
    })
}

/// How deep brackets may nest. The parser recurses once per level; this keeps any input,
/// however hostile, from exhausting the stack.
pub const MAX_NESTING: usize = 64;

/// Checks brackets, strings and characters, and returns where top-level items may start:
/// the line starts outside brackets whose line begins with a letter.
fn check_nesting(text: &str) -> Result<Vec<usize>, Vec<Diagnostic>> {
    let mut item_starts = Vec::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut in_comment = false;
    let mut escaped = false;
    let mut string_start = 0;
    let mut line_start = true;
    for (at, c) in text.char_indices() {
        // A string cannot span lines and a comment ends at one: a line starts outside both.
        if line_start && depth == 0 && c.is_ascii_alphabetic() {
            item_starts.push(at);
        }
        line_start = c == '\n';
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
    Ok(item_starts)
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

    /// The whole file's items, parsed in one piece.
    fn whole(text: &str) -> Vec<Item> {
        let program = PipelineParser::parse(Rule::program, text).unwrap().next().unwrap();
        Lower { offset: 0 }.program(program).unwrap()
    }

    #[test]
    fn a_file_parsed_in_pieces_equals_the_file_parsed_whole() {
        let mut text = String::new();
        for i in 0..3000 {
            text.push_str(&format!(
                "# model {i}\nmodel m{i} = fit(n, train,\n  epochs: 5, seed: {i}) # trailing\n\nfor eps in [0.1, 0.2] {{\neval e{i}[eps] = evaluate(m{i}, test, attack: fgsm(eps: eps / 2))\n}}\ntable \"t{i}\" {{\nrow \"a\" value: e{i}[0.1].error paper: 9.5%\n}}\n"
            ));
        }
        let starts = check_nesting(&text).unwrap();
        // Only `model`, `for` and `table` lines start items; the others are inside brackets.
        assert_eq!(starts.len(), 3 * 3000);
        let expected = whole(&text);
        for pieces in [2, 3, 7] {
            let mut cuts = vec![0];
            cuts.extend((1..pieces).map(|k| starts[k * starts.len() / pieces]));
            cuts.push(text.len());
            assert_eq!(parse_cut(&text, &cuts).as_ref(), Some(&expected), "{pieces} pieces");
        }
        assert_eq!(parse(&text).unwrap().items, expected);
    }

    #[test]
    fn a_cut_inside_an_item_fails_instead_of_changing_it() {
        // `y` starts a line at column 0 but continues the sum above it.
        let text = "eval e = x +\ny\nmodel m = fit(n, d)\n";
        let cut = text.find("y\n").unwrap();
        assert_eq!(parse_cut(text, &[0, cut, text.len()]), None);
        let cut = text.find("model").unwrap();
        assert_eq!(parse_cut(text, &[0, cut, text.len()]).unwrap(), whole(text));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let err = parse("data train = mnist(split: )").unwrap_err();
        assert_eq!(err[0].code, codes::SYNTAX);
        assert_eq!(err[0].span.start, 26);
    }
}
