//! The extension point: an attack defined here, registered at run time, used from a
//! pipeline file with no grammar or checker change.

use advpipe::attacks::{self, params_from, Attack, AttackContext, AttackKind};
use advpipe::params::{ParamSpec, ParamType};
use serde::Deserialize;

/// `brighten(amount: 0.3)`: adds `amount` to every pixel (then the shared clip applies).
#[derive(Deserialize)]
struct Brighten {
    amount: f32,
}

impl Attack for Brighten {
    fn perturb(&self, _ctx: &mut AttackContext, x: &[f32], _labels: &[usize]) -> Vec<f32> {
        x.iter().map(|v| v + self.amount).collect()
    }
}

static BRIGHTEN: AttackKind = AttackKind {
    version: 1,
    source: file!(),
    name: "brighten",
    doc: "add a constant to every pixel",
    params: &[ParamSpec::required("amount", ParamType::Number, "how much to add").range(0.0, 1.0)],
    build: |json| Ok(Box::new(params_from::<Brighten>(json)?)),
};

#[test]
fn a_registered_attack_runs_from_a_pipeline_file() {
    // Registration is process-wide; other tests in this binary never use the name.
    let _ = attacks::register(&BRIGHTEN);
    assert!(attacks::register(&BRIGHTEN).is_err(), "a name can be registered once");

    let bad = advpipe::diagnostics::Source::new("f.adv", "attack a = brighten(amount: 2)");
    let diags = advpipe::compile(&bad).unwrap_err();
    assert_eq!(diags[0].code, "E0206", "the declared range is checked");

    let dir = tempfile::tempdir().unwrap();
    crate::support::write_tiny_mnist(&dir.path().join("data"), 300, 100);
    let text = std::fs::read_to_string(crate::support::fixture("run/tiny.adv"))
        .unwrap()
        .replace("fgsm(eps: 0.25)", "brighten(amount: 1.0)");
    let (program, outcome, _) = crate::support::run_text(&text, &dir.path().join("data"), &dir.path().join("cache"));
    let rows = &advpipe::report::tables(&program, &outcome)[0].rows;
    // Every pixel at 1.0 (after the clip): one constant image, so one prediction for all.
    assert!(
        rows[1].measured >= 0.8,
        "a blank white image is one class: error {}",
        rows[1].measured
    );
}
