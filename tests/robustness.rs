//! No input makes parsing or checking panic: arbitrary text, token soup, and mutations of
//! every fixture in the corpus. (A coverage-guided fuzz target for the same property lives
//! in `fuzz/`; see the README.)

use advpipe::diagnostics::Source;
use proptest::prelude::*;

fn compile(text: &str) {
    let source = Source::new("fuzz.adv", text);
    // The result does not matter; reaching it without a panic does.
    let _ = advpipe::compile(&source);
}

fn corpus() -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["parse", "errors", "run"] {
        for entry in std::fs::read_dir(crate::support::fixture(dir)).unwrap() {
            files.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
    }
    files.push(std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/quickstart.adv")).unwrap());
    files
}

const TOKENS: &[&str] = &[
    "data",
    "net",
    "model",
    "attack",
    "eval",
    "seed",
    "table",
    "row",
    "value:",
    "paper:",
    "tol:",
    "=",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ">>",
    "+",
    "*",
    ".",
    "\"",
    "\"train\"",
    "mnist",
    "fit",
    "evaluate",
    "fgsm",
    "pgd",
    "craft",
    "ensemble",
    "transfer",
    "input",
    "flatten",
    "linear",
    "maxout",
    "conv2d",
    "max_pool",
    "rbf",
    "sigmoid_top",
    "dropout",
    "clean",
    "eps:",
    "0.25",
    "99.9%",
    ".5",
    "1e9",
    "-3",
    "10",
    "0",
    "x",
    "y",
    "\n",
    " ",
    "#c\n",
    "[1, 28, 28]",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        compile(&text);
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 0..60)) {
        compile(&tokens.join(" "));
    }

    #[test]
    fn mutated_corpus_never_panics(
        file in proptest::sample::select(corpus()),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<proptest::sample::Index>(), 0u8..4), 1..6),
    ) {
        let mut bytes = file.into_bytes();
        for (at, from, how) in edits {
            if bytes.is_empty() {
                break;
            }
            let (i, j) = (at.index(bytes.len()), from.index(bytes.len()));
            match how {
                0 => { bytes.remove(i); }
                1 => { let b = bytes[j]; bytes.insert(i, b); }
                2 => { let end = (j + 12).min(bytes.len()); let chunk = bytes[j..end].to_vec(); bytes.splice(i..i, chunk); }
                _ => { bytes.truncate(i); }
            }
        }
        compile(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("attack a = {}fgsm(eps: 0.1){}", "(".repeat(100_000), ")".repeat(100_000));
    let diags = advpipe::compile(&Source::new("deep.adv", deep)).unwrap_err();
    assert!(diags[0].message.contains("nested"), "{:?}", diags[0]);
    let deep_list = format!("data d = mnist({}", "[".repeat(50_000));
    assert!(advpipe::compile(&Source::new("deep.adv", deep_list)).is_err());
}
