//! The results folder of a run: tables as markdown, CSV and JSON, the pictures, the manifest
//! with params and machine, and `index.html`, which a headless Chromium must render.

use crate::support::{advpipe, fixture, run_args, run_cli, write_tiny_mnist};
use std::path::{Path, PathBuf};

/// Runs `tests/fixtures/run/report.adv` with `extra` arguments; returns the results folder.
fn run_report(dir: &Path, extra: &[&str]) -> PathBuf {
    let data = dir.join("data");
    write_tiny_mnist(&data, 300, 100);
    let out = dir.join("out");
    let file = fixture("run/report.adv");
    let cache = dir.join("c");
    let mut args = run_args(&file, &data, &cache, Some(&out));
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    let (code, _, stderr) = run_cli(&args, None);
    assert_eq!(code, 0, "{stderr}");
    out
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_results_folder_has_every_part() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_report(dir.path(), &[]);
    let results = json(&out.join("results.json"));
    assert_eq!(results["profile"], "quick");
    assert_eq!(results["params"][0]["name"], "epochs");
    assert_eq!(results["params"][0]["value"], "2");
    assert_eq!(results["params"][0]["from"], "profile quick");
    let mean_row = &results["tables"][0]["rows"][0];
    let samples: Vec<f64> = mean_row["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(samples.len(), 2, "one per seed: {mean_row}");
    assert!((mean_row["measured"].as_f64().unwrap() - (samples[0] + samples[1]) / 2.0).abs() < 1e-12);
    assert_eq!(mean_row["node"], "clean[1], clean[2]");
    // Its spread over the seeds: their range holds both, and the mean.
    assert_eq!(mean_row["spread"]["kind"], "seeds", "{mean_row}");
    let (lo, hi) = (
        mean_row["spread"]["min"].as_f64().unwrap(),
        mean_row["spread"]["max"].as_f64().unwrap(),
    );
    assert_eq!((lo, hi), (samples[0].min(samples[1]), samples[0].max(samples[1])));
    // One error rate: a 95% binomial interval over the examples scored, around the rate.
    let single = &results["tables"][0]["rows"][1];
    assert_eq!(single["spread"]["kind"], "binomial", "{single}");
    let measured = single["measured"].as_f64().unwrap();
    assert!(single["spread"]["low"].as_f64().unwrap() <= measured && measured <= single["spread"]["high"].as_f64().unwrap());

    let csv = std::fs::read_to_string(out.join("tables.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "table,row,node,metric,measured,paper,diff,tol,within,spread,low,high,paper_inside,column"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].starts_with("Report test <tiny>,\"clean error, mean over seeds\",\"clean[1], clean[2]\",error,"),
        "{csv}"
    );
    assert!(lines[2].ends_with(",0.999,") || lines[2].contains(",0.999,"), "{csv}");

    // The figure: a panel per model, n units x 2 pieces per panel.
    let figure = std::fs::read_to_string(out.join("figure-filters.svg")).unwrap();
    assert_eq!(figure.matches("data:image/png;base64,").count(), 2 * 3 * 2, "{figure}");
    assert!(figure.contains(">m[1]<") && figure.contains(">m[2]<"));

    let manifest = json(&out.join("manifest.json"));
    assert_eq!(manifest["profile"], "quick");
    assert!(manifest["machine"]["cpu"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(manifest["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["seconds"].is_number() && n["key"].is_string()));

    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("Report test &lt;tiny&gt;"), "titles are escaped");
    assert!(page.contains("clean error, mean over seeds") && page.contains("mean of "));
    // The plot, the example grid, the figure, and a training-loss curve on each model's card.
    let curves = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("curve-"))
        .count();
    assert_eq!(curves, 2, "m[1] and m[2] train for 2 epochs each");
    assert_eq!(page.matches("data:image/svg+xml;base64,").count(), 3 + curves);
    assert!(page.contains("<h2>Models</h2>") && page.contains("parameters;"), "model cards");
    assert!(
        page.contains("<h2>Pipeline</h2>") && page.contains("<span class=\"k\">"),
        "the source, highlighted"
    );
    assert!(page.contains("within") && page.contains("profile <b>quick</b>"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("index.html")).unwrap().permissions().mode();
        assert_eq!(mode & 0o044, 0o044, "results are readable by others: {mode:o}");
    }
}

#[test]
fn profiles_and_set_choose_param_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_report(dir.path(), &["--profile", "long", "--set", "epochs=1"]);
    let results = json(&out.join("results.json"));
    assert_eq!(results["profile"], "long");
    assert_eq!(results["params"][0]["value"], "1");
    assert_eq!(results["params"][0]["from"], "--set");
    assert_eq!(results["params"][1]["value"], "[1, 2, 3]");
    assert_eq!(results["tables"][0]["rows"][0]["samples"].as_array().unwrap().len(), 3);
    let figure = std::fs::read_to_string(out.join("figure-filters.svg")).unwrap();
    assert!(figure.contains(">m[3]<"));

    let file = fixture("run/report.adv");
    for (args, expected) in [
        (vec!["--profile", "lng"], "offers quick, long"),
        (vec!["--set", "epoch=3"], "no param `epoch` (did you mean `epochs`?)"),
        (vec!["--set", "epochs"], "write NAME=VALUE"),
        (vec!["--set", "epochs=train"], "must be a number"),
    ] {
        let output = advpipe().arg("check").arg(&file).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// A Chromium to drive: `ADVPIPE_CHROMIUM`, else the first of the usual names on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ADVPIPE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        let why = "no Chromium found (install Debian's `chromium`, or set ADVPIPE_CHROMIUM)";
        assert!(
            std::env::var_os("ADVPIPE_REQUIRE_BROWSER").is_none(),
            "ADVPIPE_REQUIRE_BROWSER is set but {why}"
        );
        eprintln!("SKIPPED the_html_report_renders_in_headless_chromium: {why}");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = run_report(dir.path(), &[]);
    let url = format!("file://{}", out.join("index.html").canonicalize().unwrap().display());
    let profile = dir.path().join("chromium-profile");
    let headless = |extra: &[&str]| {
        let output = std::process::Command::new(&browser)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{browser:?} failed: {stderr}");
        (String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
    };

    // The page's own script sets data-rendered="ok" when every image decoded and nothing
    // raised an error; Chromium's log would show console errors.
    let (dom, log) = headless(&["--dump-dom"]);
    let body = dom.split("<body").nth(1).and_then(|b| b.split('>').next()).unwrap_or_default();
    assert!(
        body.contains("data-rendered=\"ok\""),
        "page did not render cleanly: <body{body}>\n{log}"
    );
    assert!(
        body.contains("data-images=\"5\"") && body.contains("data-broken=\"0\""),
        "<body{body}>"
    );
    let console_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains("rror")))
        .collect();
    assert!(console_errors.is_empty(), "console errors: {console_errors:#?}");

    // A screenshot: a real picture with the page's colours, not a blank.
    let shot = dir.path().join("report.png");
    headless(&[&format!("--screenshot={}", shot.display()), "--window-size=1200,2000"]);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (1200, 2000));
    let distinct: std::collections::HashSet<&[u8]> = pixels[..info.buffer_size()].chunks(info.color_type.samples()).collect();
    assert!(distinct.len() > 50, "a nearly blank screenshot: {} colours", distinct.len());
    let keep = std::env::var_os("ADVPIPE_KEEP_SCREENSHOT").map(PathBuf::from);
    if let Some(keep) = keep {
        std::fs::copy(&shot, keep).unwrap();
    }
}
