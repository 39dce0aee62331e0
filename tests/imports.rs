//! `import`: shared definitions from other files, each file once, cycles refused, and
//! errors shown in the file they are in.

use advpipe::diagnostics::render;
use advpipe::LoadError;

fn load(name: &str) -> Result<advpipe::diagnostics::Source, LoadError> {
    advpipe::load_source(&crate::support::fixture(&format!("imports/{name}")))
}

#[test]
fn imported_declarations_are_visible_and_imported_once() {
    let source = load("main.adv").unwrap();
    assert_eq!(source.files.len(), 2, "common.adv is included once: {:?}", source.files);
    let program = advpipe::compile(&source).unwrap_or_else(|d| panic!("{}", render(&source, &d, false)));
    let names: Vec<&str> = program.nodes.iter().map(|n| n.name.as_str()).collect();
    assert!(names.contains(&"train") && names.contains(&"soft"), "{names:?}");
}

#[test]
fn an_import_cycle_is_an_error_naming_the_chain() {
    let Err(LoadError::Imports(source, diags)) = load("cycle_a.adv") else {
        panic!("a cycle must not load")
    };
    assert_eq!(diags[0].code, "E0106");
    assert!(
        diags[0].message.contains("cycle_a.adv -> cycle_b.adv -> cycle_a.adv"),
        "{}",
        diags[0].message
    );
    assert!(
        render(&source, &diags, false).contains("cycle_b.adv:1:1"),
        "the cycle is reported where it closes"
    );
}

#[test]
fn a_missing_import_points_at_the_import() {
    let Err(LoadError::Imports(source, diags)) = load("missing.adv") else {
        panic!()
    };
    let text = render(&source, &diags, false);
    assert!(text.contains("missing.adv:1:1") && text.contains("nope.adv"), "{text}");
}

#[test]
fn errors_inside_an_imported_file_are_shown_in_that_file() {
    let source = load("uses_broken.adv").unwrap();
    let diags = advpipe::compile(&source).unwrap_err();
    let text = render(&source, &diags, false);
    assert!(text.contains("broken.adv:2:24") && text.contains("unknown name `trian`"), "{text}");
}
