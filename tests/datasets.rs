//! Datasets beyond MNIST: `idx(...)` over any folder and `tensors(...)` over `.npz` and
//! `.safetensors` files, on data these tests generate. The same bytes through every source
//! give the same results; shapes, classes and names are checked before anything runs; the
//! manifest records the files read.

use crate::support::{run_text, write_tiny_mnist};
use advpipe::data::arrays::{self, Dtype, Header};
use advpipe::data::idx;
use advpipe::diagnostics::Source;
use std::path::Path;

/// Re-writes the tiny MNIST test split (in `data`) as arrays: `test.npz` with uint8
/// `[n, 28, 28]` images and int64 labels, and `test.safetensors` with float32 `[n, 28, 28, 1]`
/// images (channels last, already divided by 255) and int32 labels.
fn export_test_split(data: &Path) {
    let images = idx::read(&data.join("t10k-images-idx3-ubyte")).unwrap();
    let labels = idx::read(&data.join("t10k-labels-idx1-ubyte")).unwrap();
    let n = labels.dims[0];
    let labels64: Vec<u8> = labels.data.iter().flat_map(|&l| (l as i64).to_le_bytes()).collect();
    arrays::write_npz(
        &data.join("test.npz"),
        &[
            (
                "x_test",
                &Header {
                    dims: vec![n, 28, 28],
                    dtype: Dtype::U8,
                },
                &images.data,
            ),
            (
                "y_test",
                &Header {
                    dims: vec![n],
                    dtype: Dtype::I64,
                },
                &labels64,
            ),
        ],
    )
    .unwrap();
    let floats: Vec<u8> = images.data.iter().flat_map(|&b| (b as f32 / 255.0).to_le_bytes()).collect();
    let labels32: Vec<u8> = labels.data.iter().flat_map(|&l| (l as i32).to_le_bytes()).collect();
    let views = vec![
        (
            "images",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, 28, 28, 1], &floats).unwrap(),
        ),
        (
            "labels",
            safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![n], &labels32).unwrap(),
        ),
    ];
    std::fs::write(data.join("test.safetensors"), safetensors::tensor::serialize(views, &None).unwrap()).unwrap();
}

const DIGITS: &str = "[\"zero\", \"one\", \"two\", \"three\", \"four\", \"five\", \"six\", \"seven\", \"eight\", \"nine\"]";

fn pipeline(data: &Path) -> String {
    let d = data.display();
    format!(
        "seed 7\n\
         data train = mnist(split: \"train\")\n\
         data by_mnist = mnist(split: \"test\")\n\
         data by_idx = idx(dir: \"{d}\", split: \"test\", name: \"digits\", class_names: {DIGITS})\n\
         data by_npz = tensors(path: \"{d}/test.npz\", images: \"x_test\", labels: \"y_test\")\n\
         data by_safetensors = tensors(path: \"{d}/test.safetensors\", layout: \"nhwc\")\n\
         data sevens_and_ones = idx(dir: \"{d}\", images: \"t10k-images-idx3-ubyte\", labels: \"t10k-labels-idx1-ubyte\", classes: [7, 1], class_names: {DIGITS})\n\
         net softmax = input([1, 28, 28]) >> flatten >> linear(10)\n\
         model soft = fit(softmax, train, epochs: 3, batch: 20, lr: 0.5, momentum: 0.5)\n\
         attack fgsm25 = fgsm(eps: 0.15)\n\
         eval on_mnist = evaluate(soft, by_mnist, attack: fgsm25)\n\
         eval on_idx = evaluate(soft, by_idx, attack: fgsm25)\n\
         eval on_npz = evaluate(soft, by_npz, attack: fgsm25)\n\
         eval on_safetensors = evaluate(soft, by_safetensors, attack: fgsm25)\n\
         examples grid = examples(soft, by_idx, fgsm25, n: 4)\n\
         table \"sources\" {{\n\
           row \"mnist\" value: on_mnist.error\n\
           row \"mnist confidence\" value: on_mnist.mean_confidence\n\
           row \"idx\" value: on_idx.error\n\
           row \"idx confidence\" value: on_idx.mean_confidence\n\
           row \"npz\" value: on_npz.error\n\
           row \"npz confidence\" value: on_npz.mean_confidence\n\
           row \"safetensors\" value: on_safetensors.error\n\
           row \"safetensors confidence\" value: on_safetensors.mean_confidence\n\
           row \"examples\" value: on_safetensors.examples\n\
         }}\n"
    )
}

#[test]
fn the_same_bytes_through_every_source_give_the_same_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_tiny_mnist(&data, 300, 120);
    export_test_split(&data);
    let (program, outcome, _) = run_text(&pipeline(&data), &data, &dir.path().join("cache"));
    let tables = advpipe::report::tables(&program, &outcome);
    let rows = &tables[0].rows;
    let errors: Vec<f64> = rows[..8].iter().step_by(2).map(|r| r.measured).collect();
    let confidences: Vec<f64> = rows[1..8].iter().step_by(2).map(|r| r.measured).collect();
    // Mean confidence under attack is a continuous figure: equal means equal pixels.
    assert!(confidences[0] > 0.1 && confidences[0] < 1.0, "confidence {}", confidences[0]);
    assert_eq!(errors, vec![errors[0]; 4], "mnist, idx, npz, safetensors");
    assert_eq!(confidences, vec![confidences[0]; 4], "mnist, idx, npz, safetensors");
    assert_eq!(rows[8].measured, 120.0);

    // The manifest's record of what was read: both IDX files with their digests.
    let record = outcome.records.iter().find(|r| r.name == "by_idx").unwrap();
    let paths: Vec<&str> = record.files.iter().map(|f| f.path.as_str()).collect();
    assert!(
        paths[0].ends_with("t10k-images-idx3-ubyte") && paths[1].ends_with("t10k-labels-idx1-ubyte"),
        "{paths:?}"
    );
    let bytes = std::fs::read(data.join("t10k-labels-idx1-ubyte")).unwrap();
    assert_eq!(record.files[1].blake3, blake3::hash(&bytes).to_hex().to_string());
    assert_eq!(record.files[1].bytes, bytes.len() as u64);

    // Class names reach the example grid, and its title says model, attack and data.
    let out = dir.path().join("out");
    advpipe::report::write(&out, Path::new("test.adv"), &program, &outcome, &tables, 1.0).unwrap();
    let svg = std::fs::read_to_string(out.join("examples-grid.svg")).unwrap();
    assert!(svg.contains("grid: soft under fgsm eps 0.15, on by_idx"), "title");
    let named = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    assert!(named
        .iter()
        .any(|n| svg.contains(&format!("label {} {n}", named.iter().position(|m| m == n).unwrap()))));
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(manifest.contains(&record.files[0].blake3));
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("<h2>Data</h2>") && page.contains("digits"));
}

#[test]
fn a_class_filter_relabels_and_keeps_the_names_of_what_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_tiny_mnist(&data, 300, 120);
    export_test_split(&data);
    let source = Source::new("t.adv", pipeline(&data));
    let program = advpipe::compile(&source).unwrap();
    let node = program.nodes.iter().find(|n| n.name == "sevens_and_ones").unwrap();
    assert_eq!(
        advpipe::data::source::class_names(&node.params),
        Some(vec!["seven".to_string(), "one".into()])
    );
}

/// Three colours on 8x8 RGB images: class c is bright in channel c. Channels last, bytes.
fn write_colours(path: &Path, n: usize) {
    let mut pixels = Vec::with_capacity(n * 8 * 8 * 3);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 3;
        labels.push(class as u8);
        for p in 0..64 {
            for ch in 0..3 {
                let noise = ((i * 31 + p * 7 + ch * 13) % 60) as u8;
                pixels.push(if ch == class { 150 + noise } else { noise });
            }
        }
    }
    arrays::write_npz(
        path,
        &[
            (
                "images",
                &Header {
                    dims: vec![n, 8, 8, 3],
                    dtype: Dtype::U8,
                },
                &pixels,
            ),
            (
                "labels",
                &Header {
                    dims: vec![n],
                    dtype: Dtype::U8,
                },
                &labels,
            ),
        ],
    )
    .unwrap();
}

#[test]
fn colour_images_of_another_size_train_through_a_conv_net() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("colours.npz");
    write_colours(&file, 300);
    let text = format!(
        "seed 3\n\
         data train = tensors(path: \"{f}\", layout: \"nhwc\", take: 240, class_names: [\"red\", \"green\", \"blue\"])\n\
         data test = tensors(path: \"{f}\", layout: \"nhwc\", skip: 240)\n\
         net small = input([3, 8, 8]) >> conv2d(4, kernel: 3, padding: 1) >> relu >> flatten >> linear(3)\n\
         model m = fit(small, train, epochs: 5, batch: 20, lr: 0.1, momentum: 0.5, init: 0.1)\n\
         eval on_test = evaluate(m, test)\n\
         table \"colours\" {{\n  row \"clean\" value: on_test.error\n  row \"n\" value: on_test.examples\n}}\n",
        f = file.display()
    );
    let (program, outcome, _) = run_text(&text, dir.path(), &dir.path().join("cache"));
    let rows = &advpipe::report::tables(&program, &outcome)[0].rows;
    assert_eq!(rows[1].measured, 60.0);
    assert!(rows[0].measured < 0.1, "clean error {}", rows[0].measured);
}

/// The first diagnostic `text` gets from the checker, rendered.
fn check_error(text: &str) -> String {
    let source = Source::new("t.adv", text);
    match advpipe::compile(&source) {
        Ok(_) => panic!("checked without an error:\n{text}"),
        Err(d) => advpipe::diagnostics::render(&source, &d, false),
    }
}

#[test]
fn shapes_classes_and_names_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("colours.npz");
    write_colours(&file, 30);
    let f = file.display();
    let cases = [
        // Channels last or first cannot be guessed.
        (format!("data d = tensors(path: \"{f}\")"), vec!["E0303", "layout: \"nchw\"", "[n, 8, 8, 3]"]),
        // The net's input is checked against the file's shape.
        (
            format!("data d = tensors(path: \"{f}\", layout: \"nhwc\")\nnet n = input([1, 28, 28]) >> flatten >> linear(3)\nmodel m = fit(n, d)"),
            vec!["[3, 8, 8]"],
        ),
        // So is the output width against the labels' classes.
        (
            format!("data d = tensors(path: \"{f}\", layout: \"nhwc\")\nnet n = input([3, 8, 8]) >> flatten >> linear(10)\nmodel m = fit(n, d)"),
            vec!["E0302"],
        ),
        (
            format!("data d = tensors(path: \"{f}\", layout: \"nhwc\", class_names: [\"red\", \"green\"])"),
            vec!["E0303", "2 class names", "labels up to 2"],
        ),
        (
            format!("data d = tensors(path: \"{f}\", layout: \"nhwc\", class_names: [\"red\", \"red\", \"blue\"])"),
            vec!["E0205", "named twice"],
        ),
        (format!("data d = tensors(path: \"{f}\", layout: \"nhwc\", classes: [0, 5])"), vec!["E0206", "class 5 does not exist"]),
        (format!("data d = tensors(path: \"{f}\", layout: \"nhwc\", skip: 25, take: 10)"), vec!["E0206", "has 30 examples"]),
        (format!("data d = tensors(path: \"{f}\", images: \"x\")"), vec!["E0303", "no array named `x`", "`images`, `labels`"]),
        (format!("data d = idx(dir: \"{}\", split: \"test\")", dir.path().display()), vec!["E0303", "no file t10k-images-idx3-ubyte"]),
        (format!("data d = idx(dir: \"{}\")", dir.path().display()), vec!["E0303", "say which files"]),
    ];
    for (text, expected) in cases {
        let got = check_error(&text);
        for e in expected {
            assert!(got.contains(e), "expected `{e}` in:\n{got}");
        }
    }
}
