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

/// `mean_pixel(data)`: a node kind defined outside the crate: the mean pixel value of a
/// dataset, as an evaluation with one metric. Parameters, check rule, run and estimate.
mod mean_pixel {
    use advpipe::check::{At, Bound, Checker, NodeKind, Value};
    use advpipe::estimate::{scoring_rule, Estimate, Sizes};
    use advpipe::exec::{Artifact, Executor, Runner};
    use advpipe::kinds::Kind;
    use advpipe::params::{Category, ParamSpec, ParamType};

    pub static KIND: Kind = Kind {
        spec: NodeKind {
            name: "mean_pixel",
            category: Category::Eval,
            version: 1,
            sources: &[file!()],
            cached: true,
            doc: "the mean pixel value of a dataset (metric: mean)",
            params: &[ParamSpec::required("data", ParamType::Dataset, "the examples")],
            check,
        },
        runner: Runner {
            run,
            reads: None,
            prepare: None,
        },
        estimate,
    };

    fn check(c: &mut Checker<'_>, mut bound: Bound, at: &At<'_>) -> Option<Value> {
        let (data, _, _) = c.take_data(&mut bound, "data")?;
        Some(Value::Metrics {
            node: c.push(at, bound.json, vec![("data", data)]),
            fields: ["mean".into()].into(),
        })
    }

    fn run(x: &mut Executor<'_>, id: usize) -> advpipe::Result<Artifact> {
        let data = x.data(x.input(id, "data")?)?;
        let mean = data.images.iter().map(|&v| v as f64).sum::<f64>() / data.images.len() as f64;
        Ok(Artifact::Metrics([("mean".to_string(), mean)].into_iter().collect()))
    }

    fn estimate(sizes: &Sizes) -> Estimate {
        scoring_rule(sizes)
    }
}

#[test]
fn a_registered_node_kind_runs_from_a_pipeline_file() {
    let _ = advpipe::kinds::register(&mean_pixel::KIND);
    assert!(
        advpipe::kinds::register(&mean_pixel::KIND).is_err(),
        "a name can be registered once"
    );

    let bad = advpipe::diagnostics::Source::new("f.adv", "eval e = mean_pixel(3)");
    assert_eq!(
        advpipe::compile(&bad).unwrap_err()[0].code,
        "E0205",
        "its parameter types are checked"
    );

    let dir = tempfile::tempdir().unwrap();
    crate::support::write_tiny_mnist(&dir.path().join("data"), 50, 20);
    let text = "data test = mnist(split: \"test\")\n\
                eval m = mean_pixel(test)\n\
                table \"t\" { row \"mean pixel\" value: m.mean }\n";
    let (program, outcome, log) = crate::support::run_text(text, &dir.path().join("data"), &dir.path().join("cache"));
    let rows = &advpipe::report::tables(&program, &outcome)[0].rows;
    assert!(rows[0].measured > 0.0 && rows[0].measured < 1.0, "{}", rows[0].measured);
    assert!(log.contains("computed   mean_pixel"), "{log}");
    let (_, _, again) = crate::support::run_text(text, &dir.path().join("data"), &dir.path().join("cache"));
    assert!(again.contains("cached     mean_pixel"), "its result is cached: {again}");
}

/// `scale(factor)`: a layer defined outside the crate that multiplies every value by a
/// constant. Parameters, shape rule and forward pass; checkpoints name it like any layer.
mod scale {
    use advpipe::nn::layers::{Layer, LayerKind, Pass};
    use advpipe::nn::model::{Dev, Matrix};
    use advpipe::params::{ParamDef, ParamType};
    use dfdx::prelude::{Merge, Tape};
    use serde::{Deserialize, Serialize};

    advpipe::declare_params! {
        /// `scale`'s parameters.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub struct Scale {
            /// what every value is multiplied by
            factor: f32 = ParamDef::required(ParamType::Number).range(0.0, 10.0),
        }
    }

    impl Layer for Scale {
        const NAME: &'static str = "scale";
        const DOC: &'static str = "multiply every value by a constant";
        const VERSION: u32 = 1;
        const SOURCES: &'static [&'static str] = &[file!()];
        const PARAMS: &'static [advpipe::params::ParamSpec] = Scale::PARAMS;

        fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
            Ok(input.to_vec())
        }

        fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, _: &Pass<'_>) -> Matrix<T> {
            h * self.factor
        }
    }

    pub static KIND: LayerKind = LayerKind::of::<Scale>();
}

#[test]
fn a_registered_layer_runs_from_a_pipeline_file() {
    let _ = advpipe::nn::layers::register(&scale::KIND);
    assert!(
        advpipe::nn::layers::register(&scale::KIND).is_err(),
        "a name can be registered once"
    );
    assert!(
        advpipe::nn::layers::register(&advpipe::nn::layers::LAYERS[1]).is_err(),
        "a built-in layer's name is taken"
    );

    let bad = advpipe::diagnostics::Source::new("f.adv", "net n = input([1, 28, 28]) >> flatten >> scale(factor: 20) >> linear(10)");
    assert_eq!(
        advpipe::compile(&bad).unwrap_err()[0].code,
        "E0206",
        "the declared range is checked"
    );

    let dir = tempfile::tempdir().unwrap();
    crate::support::write_tiny_mnist(&dir.path().join("data"), 300, 100);
    let text = std::fs::read_to_string(crate::support::fixture("run/tiny.adv"))
        .unwrap()
        .replace(">> flatten >>", ">> flatten >> scale(factor: 0.5) >>");
    let (program, outcome, log) = crate::support::run_text(&text, &dir.path().join("data"), &dir.path().join("cache"));
    let rows = &advpipe::report::tables(&program, &outcome)[0].rows;
    assert!(
        rows[0].measured < 0.5,
        "a scaled softmax regression still learns: error {}",
        rows[0].measured
    );
    assert!(log.contains("computed   fit"), "{log}");
    // The second run reads the model back from its checkpoint, which names the layer.
    let (program, again_outcome, again) = crate::support::run_text(&text, &dir.path().join("data"), &dir.path().join("cache"));
    assert!(again.contains("cached     fit"), "{again}");
    assert_eq!(
        advpipe::report::tables(&program, &again_outcome)[0].rows[0].measured,
        rows[0].measured
    );
}
