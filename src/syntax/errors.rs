//! Syntax errors: pest's error -> a [`Diagnostic`] in the user's words (human names for
//! the rules, the bracket most likely left open), and resuming after one to find the next.

use super::{PipelineParser, Rule};
use crate::diagnostics::{codes, Diagnostic, Span};
use pest::Parser;

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
pub(super) fn syntax_errors(first: pest::error::Error<Rule>, text: &str) -> Vec<Diagnostic> {
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
