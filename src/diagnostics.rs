//! Diagnostics: what went wrong in a pipeline file, where, and what to do about it.
//!
//! Every stage that reads user input (parse, check) collects [`Diagnostic`]s instead of
//! stopping at the first one. A diagnostic carries a stable code, a byte span into the
//! source, a message, optional secondary labels and a help line; [`render`] turns a batch
//! of them into miette's report format, which starts each one with `file:line:col`.

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use std::fmt;
use std::sync::Arc;

/// A byte range in a pipeline file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The span from `start` to `end` (bytes).
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl From<pest::Span<'_>> for Span {
    fn from(s: pest::Span<'_>) -> Self {
        Span::new(s.start(), s.end())
    }
}

impl From<Span> for SourceSpan {
    fn from(s: Span) -> Self {
        SourceSpan::new(s.start.into(), s.end.saturating_sub(s.start))
    }
}

/// A pipeline file's name and text, shared by every diagnostic about it.
#[derive(Clone, Debug)]
pub struct Source {
    /// The name shown in reports (the path as the user gave it).
    pub name: String,
    /// The file's text, followed by the text of every file it imports.
    pub text: Arc<str>,
    /// Which file each stretch of `text` came from: (start offset, file name), in order.
    pub files: Vec<(usize, String)>,
}

impl Source {
    /// A source named `name` with contents `text`.
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let name = name.into();
        Source {
            files: vec![(0, name.clone())],
            name,
            text: text.into(),
        }
    }

    /// Appends an imported file's text (with a newline, so items never run together) and
    /// returns the offset at which it starts.
    pub fn append(&mut self, name: impl Into<String>, text: &str) -> usize {
        let start = self.text.len() + 1;
        self.text = format!("{}\n{text}", self.text).into();
        self.files.push((start, name.into()));
        start
    }

    /// The file a byte offset falls in: its name and the range of `text` it spans.
    pub fn file_of(&self, offset: usize) -> (&str, std::ops::Range<usize>) {
        let i = self.files.iter().rposition(|(start, _)| *start <= offset).unwrap_or(0);
        let end = self.files.get(i + 1).map_or(self.text.len(), |(next, _)| next - 1);
        (&self.files[i].1, self.files[i].0..end)
    }

    /// 1-based line and column of a byte offset (columns count characters).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }
}

/// 1-based line and column of a byte offset in `text` (columns count characters).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// One problem found in a pipeline file.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    /// Stable identifier of the kind of error, e.g. `E0101`; see [`codes`].
    pub code: &'static str,
    /// What is wrong, in one sentence.
    pub message: String,
    /// Where (the primary, underlined span) and a short label for it.
    pub span: Span,
    /// The text printed under the primary span.
    pub label: String,
    /// Other places worth showing (e.g. where a name was first defined).
    pub notes: Vec<(Span, String)>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with a code, a message and a primary span.
    pub fn new(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            span,
            label: "here".into(),
            notes: vec![],
            help: None,
        }
    }
    /// Replaces the label under the primary span.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    /// Adds a secondary span with its label.
    pub fn note(mut self, span: Span, label: impl Into<String>) -> Self {
        self.notes.push((span, label.into()));
        self
    }
    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// The stable error codes, one per kind of mistake. Tests and docs refer to these.
pub mod codes {
    /// The text does not match the grammar.
    pub const SYNTAX: &str = "E0001";
    /// A name that no declaration defines and no registry knows.
    pub const UNKNOWN_NAME: &str = "E0101";
    /// A name declared twice.
    pub const DUPLICATE_NAME: &str = "E0102";
    /// A declaration category other than data, net, model, attack, eval.
    pub const UNKNOWN_CATEGORY: &str = "E0103";
    /// A declaration whose value is not of its category.
    pub const CATEGORY_MISMATCH: &str = "E0104";
    /// Declarations that depend on each other in a circle.
    pub const CYCLE: &str = "E0105";
    /// A call to something that is not a registered node kind.
    pub const UNKNOWN_KIND: &str = "E0201";
    /// A named argument the node kind does not take.
    pub const UNKNOWN_PARAM: &str = "E0202";
    /// A required argument left out.
    pub const MISSING_PARAM: &str = "E0203";
    /// An argument given twice, or more positional arguments than parameters.
    pub const EXTRA_ARG: &str = "E0204";
    /// A value of the wrong type.
    pub const WRONG_TYPE: &str = "E0205";
    /// A number outside the parameter's allowed range, or a string not among its choices.
    pub const OUT_OF_RANGE: &str = "E0206";
    /// Tensor shapes that do not fit together.
    pub const SHAPE_MISMATCH: &str = "E0301";
    /// A data file that is missing, unreadable, or does not fit its call (shape, labels,
    /// class names).
    pub const BAD_DATA: &str = "E0303";
    /// A net's output width that differs from the dataset's number of classes.
    pub const CLASS_MISMATCH: &str = "E0302";
    /// A field that a value does not have (e.g. a metric an evaluation does not produce).
    pub const UNKNOWN_FIELD: &str = "E0401";
    /// A table row without a measured value, or with a field tables do not know.
    pub const BAD_ROW: &str = "E0402";
    /// An import that cannot be read, or that imports itself through a chain of files.
    pub const BAD_IMPORT: &str = "E0106";
    /// A top-level setting given an unusable value, or given twice.
    pub const BAD_SETTING: &str = "E0501";
    /// A sweep over something that is not a list or range, or an index that is not a value.
    pub const BAD_SWEEP: &str = "E0601";
    /// A `param` misused: inside a sweep, declared twice, or a `profile(...)` without the
    /// chosen profile.
    pub const BAD_PARAM: &str = "E0602";
}

struct Report<'a> {
    diag: &'a Diagnostic,
    source: NamedSource<String>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}
impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}
impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = LabeledSpan::new_primary_with_span(Some(self.diag.label.clone()), self.diag.span);
        let notes = self.diag.notes.iter().map(|(s, l)| LabeledSpan::new_with_span(Some(l.clone()), *s));
        Some(Box::new(std::iter::once(primary).chain(notes)))
    }
}

/// At most this many diagnostics are rendered; the count says how many there were.
const MAX_SHOWN: usize = 100;

/// Lines longer than this are not shown in a snippet.
const MAX_SNIPPET_LINE: usize = 1000;

/// Whether every line a diagnostic underlines is short enough to show.
fn fits_a_snippet(text: &str, diag: &Diagnostic) -> bool {
    std::iter::once(diag.span).chain(diag.notes.iter().map(|(s, _)| *s)).all(|span| {
        let start = text[..span.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
        let end = text[span.start.min(text.len())..]
            .find('\n')
            .map_or(text.len(), |i| i + span.start.min(text.len()));
        end - start <= MAX_SNIPPET_LINE
    })
}

/// The text with control characters (other than newline and tab) shown as `?`, so a file
/// cannot send escape sequences to the terminal. Byte offsets stay where they were.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c) {
                "?".repeat(c.len_utf8())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A message or label made printable and cut to a length a terminal line can show.
fn printable_short(text: &str) -> String {
    const MAX: usize = 400;
    let shown = printable(text);
    if shown.chars().count() <= MAX {
        return shown;
    }
    let cut: String = shown.chars().take(MAX).collect();
    format!("{cut}… ({} characters in all)", shown.chars().count())
}

/// Characters that reorder how a line is displayed (the "Trojan Source" characters).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// A diagnostic shown without its source.
struct Bare<'a>(&'a Diagnostic);

impl fmt::Debug for Bare<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}
impl fmt::Display for Bare<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}
impl std::error::Error for Bare<'_> {}

impl miette::Diagnostic for Bare<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.0.code))
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.0.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
}

/// Renders diagnostics the way `advpipe check` prints them. `color: false` gives plain
/// ASCII-free-of-escapes text, the form the snapshot tests compare.
pub fn render(source: &Source, diagnostics: &[Diagnostic], color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
    let mut out = String::new();
    for diag in diagnostics.iter().take(MAX_SHOWN) {
        // Show the diagnostic in the file it is about, with spans made relative to it;
        // notes that point into another file become a line of text.
        let (name, range) = source.file_of(diag.span.start);
        let local = |span: Span| Span::new(span.start - range.start, span.end.min(range.end) - range.start);
        let inside = |span: &Span| range.contains(&span.start);
        let mut shown = diag.clone();
        shown.span = local(diag.span);
        shown.notes = diag
            .notes
            .iter()
            .filter(|(s, _)| inside(s))
            .map(|(s, l)| (local(*s), l.clone()))
            .collect();
        for (span, label) in diag.notes.iter().filter(|(s, _)| !inside(s)) {
            let (other, other_range) = source.file_of(span.start);
            let (line, col) = line_col(&source.text[other_range.clone()], span.start - other_range.start);
            let note = format!("{label}: {other}:{line}:{col}");
            shown.help = Some(shown.help.map_or(note.clone(), |h| format!("{h}\n{note}")));
        }
        shown.message = printable_short(&shown.message);
        shown.label = printable_short(&shown.label);
        shown.help = shown.help.as_deref().map(printable_short);
        for (_, label) in &mut shown.notes {
            *label = printable_short(label);
        }
        let text = &source.text[range.clone()];
        if !fits_a_snippet(text, &shown) {
            // miette cannot show very long lines (its columns stop at 65,535) and a 3 MB line
            // is no help to anyone: say where instead of showing it.
            let (line, col) = line_col(text, shown.span.start);
            shown.message = format!("{} (at {name}:{line}:{col})", shown.message);
            shown.notes.clear();
            let _ = handler.render_report(&mut out, &Bare(&shown));
            continue;
        }
        let report = Report {
            diag: &shown,
            source: NamedSource::new(name, printable(text)),
        };
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, &report);
    }
    let errors = diagnostics.len();
    if errors > MAX_SHOWN {
        out.push_str(&format!("... and {} more (the first {MAX_SHOWN} are shown)\n", errors - MAX_SHOWN));
    }
    out.push_str(&format!(
        "{} error{} in {}\n",
        errors,
        if errors == 1 { "" } else { "s" },
        source.name
    ));
    out
}

/// The closest candidate to `name` by edit distance, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let allowed = |c: &str| (name.len().max(c.len()) / 3).max(1);
    candidates
        .into_iter()
        // The distance is at least the difference in length: most candidates are ruled out
        // without computing it (a file can declare thousands of names).
        .filter(|c| name.len().abs_diff(c.len()) <= allowed(c))
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= allowed(c))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let s = Source::new("f.adv", "ab\ncd");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(4), (2, 2));
    }

    #[test]
    fn did_you_mean_finds_typos_only() {
        assert_eq!(did_you_mean("fgsn", ["fgsm", "fit"]), Some("fgsm"));
        assert_eq!(did_you_mean("banana", ["fgsm", "fit"]), None);
    }
}
