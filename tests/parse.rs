//! Good pipelines parse to the expected tree and check cleanly.

use advpipe::diagnostics::{render, Source};

#[test]
fn parse_fixtures_match_their_snapshots() {
    insta::glob!("fixtures/parse/*.adv", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let file = advpipe::syntax::parse(&text).unwrap_or_else(|d| panic!("{}", render(&Source::new("f", text.clone()), &d, false)));
        insta::assert_snapshot!(file.to_string());
    });
}

#[test]
fn shipped_pipelines_check() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let source = Source::new(path.display().to_string(), std::fs::read_to_string(&path).unwrap());
        if let Err(d) = advpipe::compile(&source) {
            panic!("{}", render(&source, &d, false));
        }
        checked += 1;
    }
    assert!(checked >= 1);
}

#[test]
fn run_fixtures_check() {
    for name in ["run/tiny.adv", "parse/quickstart_like.adv"] {
        let path = crate::support::fixture(name);
        let source = Source::new(name, std::fs::read_to_string(path).unwrap());
        let program = advpipe::compile(&source).unwrap_or_else(|d| panic!("{}", render(&source, &d, false)));
        assert!(!program.nodes.is_empty());
    }
}

#[test]
fn readme_examples_check() {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```adv\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert!(!blocks.is_empty(), "the README's language reference has ```adv examples");
    for block in blocks {
        let source = Source::new("README.md", block);
        if let Err(d) = advpipe::compile(&source) {
            panic!("a README example does not check:\n{}", render(&source, &d, false));
        }
    }
}
