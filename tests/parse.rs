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
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let files = std::fs::read_dir(root.join("pipelines"))
        .unwrap()
        .chain(std::fs::read_dir(root.join("benches/peer")).unwrap());
    for entry in files {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "adv") {
            continue;
        }
        let source = Source::new(path.display().to_string(), std::fs::read_to_string(&path).unwrap());
        match advpipe::compile(&source) {
            Ok(_) => checked += 1,
            // A pipeline over data a machine may lack (pipelines/fashion-mnist.adv reads
            // Debian's dataset-fashion-mnist): skipped with its reason, unless CI says the
            // data must be there. benches/peer/ files read a checkpoint their user names
            // (`--set checkpoint=...`).
            Err(d)
                if d.iter().all(|d| d.code == advpipe::diagnostics::codes::BAD_DATA)
                    && (std::env::var_os("ADVPIPE_REQUIRE_DATA").is_none() || path.starts_with(root.join("benches"))) =>
            {
                eprintln!(
                    "skipped {}: its data is not on this machine:\n{}",
                    path.display(),
                    render(&source, &d, false)
                );
            }
            Err(d) => panic!("{}", render(&source, &d, false)),
        }
    }
    assert!(checked >= 1);
}

/// `goodfellow2015-ablations.adv` and `robustbench-mnist.adv` promise to share their cached
/// models (and the ablations their evaluations) with `goodfellow2015.adv`: the declarations
/// they have in common must have the same keys.
#[test]
fn the_ablations_share_their_keys_with_the_flagship() {
    let keys = |name: &str| -> std::collections::BTreeMap<String, String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines").join(name);
        let source = Source::new(name, std::fs::read_to_string(path).unwrap());
        let program = advpipe::compile(&source).unwrap_or_else(|d| panic!("{}", render(&source, &d, false)));
        let plan = advpipe::plan::plan(&program);
        // Every data node reads the same (absent) files in both: one stand-in digest.
        let keys = advpipe::plan::keys(&program, &plan, &mut |_| Ok(Some("mnist".into()))).unwrap();
        program.nodes.iter().map(|n| n.name.clone()).zip(keys).collect()
    };
    let (main, ablations, robustbench) = (
        keys("goodfellow2015.adv"),
        keys("goodfellow2015-ablations.adv"),
        keys("robustbench-mnist.adv"),
    );
    // robustbench-mnist.adv evaluates the flagship's two large 240-unit nets.
    assert_eq!(main["big"], robustbench["naive"]);
    assert_eq!(main["big_at[1]"], robustbench["adv"]);
    for (in_main, in_ablations) in [
        ("mx", "mx"),
        ("soft", "soft"),
        ("mx_at", "at[train][true]"),
        ("soft", "soft_e[10]"),
        ("lr37_l1", "l1_fit[0.0025]"),
        ("soft_fgsm", "clip_soft[0.25]"),
        ("mx_fgsm", "clip_mx[0.25]"),
        ("soft_rubbish", "soft_e_rubbish[10]"),
    ] {
        assert_eq!(main[in_main], ablations[in_ablations], "{in_main} / {in_ablations}");
    }
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
