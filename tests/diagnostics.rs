//! Bad pipelines produce exactly the expected diagnostics (rendered, no colour).

use advpipe::diagnostics::{render, Source};

#[test]
fn error_fixtures_match_their_snapshots() {
    insta::glob!("fixtures/errors/*.adv", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = format!("errors/{}", path.file_name().unwrap().to_string_lossy());
        let source = Source::new(name, text);
        let diags = advpipe::compile(&source).expect_err("an error fixture must not check");
        insta::assert_snapshot!(render(&source, &diags, false));
    });
}

#[test]
fn every_error_code_has_a_fixture() {
    let dir = crate::support::fixture("errors");
    let mut seen = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let source = Source::new("f", std::fs::read_to_string(&path).unwrap());
        for d in advpipe::compile(&source).unwrap_err() {
            seen.insert(d.code);
        }
    }
    let src = include_str!("../src/diagnostics.rs");
    let all: Vec<&str> = src
        .lines()
        .filter_map(|l| l.split("&str = \"").nth(1))
        .map(|s| s.trim_end_matches("\";"))
        .collect();
    assert!(all.len() >= 15, "parsed the code list: {all:?}");
    for code in all {
        assert!(seen.contains(code), "no fixture under tests/fixtures/errors produces {code}");
    }
}

#[test]
fn all_errors_are_reported_at_once() {
    let source = Source::new(
        "f",
        std::fs::read_to_string(crate::support::fixture("errors/many_errors.adv")).unwrap(),
    );
    let diags = advpipe::compile(&source).unwrap_err();
    assert!(diags.len() >= 3, "{diags:?}");
}

#[test]
fn rendered_errors_start_with_file_line_col() {
    let source = Source::new("p.adv", "data train = mnist(split: \"train\")\nmodel m = fit(n, train)\n");
    let text = render(&source, &advpipe::compile(&source).unwrap_err(), false);
    assert!(text.contains("[p.adv:2:15]"), "{text}");
}
