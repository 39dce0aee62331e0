//! Hostile input, as a user (or a broken disk) can supply it: every case ends in a clear
//! message and exit code from the real binary, never a panic (101), an abort (134), a hang
//! or lost files. One table row per case; files too large to check in are generated here.

use crate::support::{advpipe, fixture, write_tiny_mnist};
use std::path::Path;
use std::time::Duration;

/// One case: what to write into a fresh folder, the arguments (`{dir}` is that folder), and
/// what must come out.
struct Case {
    name: &'static str,
    setup: fn(&Path),
    args: &'static [&'static str],
    code: i32,
    says: &'static [&'static str],
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::write(path, bytes).unwrap();
}

fn tiny_pipeline(dir: &Path) {
    write(&dir.join("p.adv"), std::fs::read(fixture("run/tiny.adv")).unwrap());
    write_tiny_mnist(&dir.join("data"), 40, 20);
}

const CASES: &[Case] = &[
    Case {
        name: "a device as the pipeline",
        setup: |_| {},
        args: &["check", "/dev/zero"],
        code: 3,
        says: &["/dev/zero: expected a pipeline file, but it is not a regular file"],
    },
    Case {
        name: "a FIFO as the pipeline does not hang",
        setup: |d| {
            std::process::Command::new("mkfifo").arg(d.join("f.adv")).status().unwrap();
        },
        args: &["check", "{dir}/f.adv"],
        code: 3,
        says: &["named pipe (FIFO)"],
    },
    Case {
        name: "a non-UTF-8 pipeline is a located pipeline error",
        setup: |d| write(&d.join("p.adv"), b"seed 1\nnet x\xff = 1\n"),
        args: &["check", "{dir}/p.adv"],
        code: 1,
        says: &["the file is not valid UTF-8", "p.adv:2:6"],
    },
    Case {
        name: "an import of a non-pipeline file shows none of it",
        setup: |d| write(&d.join("p.adv"), "import \"/proc/self/environ\"\n"),
        args: &["check", "{dir}/p.adv"],
        code: 1,
        says: &["only pipeline files (`.adv`) can be imported"],
    },
    Case {
        name: "an import of a FIFO does not hang",
        setup: |d| {
            std::process::Command::new("mkfifo").arg(d.join("x.adv")).status().unwrap();
            write(&d.join("p.adv"), "import \"x.adv\"\n");
        },
        args: &["check", "{dir}/p.adv"],
        code: 1,
        says: &["cannot import", "named pipe (FIFO)"],
    },
    Case {
        name: "10,000 field accesses",
        setup: |d| write(&d.join("p.adv"), format!("eval f = e{}\n", ".error".repeat(10_000))),
        args: &["check", "{dir}/p.adv"],
        code: 1,
        says: &["more than 64 field accesses and indices"],
    },
    Case {
        name: "10,000 indices, in graph too",
        setup: |d| write(&d.join("p.adv"), format!("eval f = e{}\n", "[1]".repeat(10_000))),
        args: &["graph", "{dir}/p.adv"],
        code: 1,
        says: &["more than 64 field accesses and indices"],
    },
    Case {
        name: "a 70,000-character name",
        setup: |d| write(&d.join("p.adv"), format!("net {} = foo\n", "a".repeat(70_000))),
        args: &["check", "{dir}/p.adv"],
        code: 1,
        says: &["unknown name `foo`", "p.adv:1:70008"],
    },
    Case {
        name: "control characters are not echoed",
        setup: |d| write(&d.join("p.adv"), "data d = mnist(split: \"\x1b[31mred\x07\")\n"),
        args: &["check", "{dir}/p.adv"],
        code: 1,
        says: &["?[31mred?"],
    },
    Case {
        name: "a non-ASCII name is reported at the character",
        setup: |d| write(&d.join("p.adv"), "seed 1\nnet caf\u{e9} = foo\n"),
        args: &["check", "{dir}/p.adv"],
        code: 1,
        says: &["unexpected character `\u{e9}`", "p.adv:2:8"],
    },
    Case {
        name: "a number beyond f64",
        setup: |d| write(&d.join("p.adv"), "seed 1e400\n"),
        args: &["check", "{dir}/p.adv"],
        code: 1,
        says: &["`1e400` is too large to be a number"],
    },
    Case {
        name: "a seed beyond the limit names the limit",
        setup: |d| write(&d.join("p.adv"), "seed 18446744073709551616\n"),
        args: &["check", "{dir}/p.adv"],
        code: 1,
        says: &["the seed must be below 9e15"],
    },
    Case {
        name: "a shape dimension beyond the limit names the limit",
        setup: |d| write(&d.join("p.adv"), "net n = input([1, 1e9]) >> flatten >> linear(10)\n"),
        args: &["check", "{dir}/p.adv"],
        code: 1,
        says: &["from 1 to 1000000"],
    },
    Case {
        name: "a repeated --set",
        setup: |d| write(&d.join("p.adv"), "param a = 1\n"),
        args: &["check", "{dir}/p.adv", "--set", "a=2", "--set", "a=3"],
        code: 2,
        says: &["--set a is given twice"],
    },
    Case {
        name: "the cache never deletes a folder it did not write (issue 11, item 1)",
        setup: |d| {
            tiny_pipeline(d);
            std::fs::create_dir_all(d.join("cache/tmp/p")).unwrap();
            write(&d.join("cache/tmp/p/thesis.tex"), "years of work");
        },
        args: &["plan", "{dir}/p.adv", "--data-dir", "{dir}/data", "--cache-dir", "{dir}/cache"],
        code: 3,
        says: &["is not an advpipe cache"],
    },
    Case {
        name: "--out naming a file",
        setup: |d| {
            tiny_pipeline(d);
            write(&d.join("out"), "mine");
        },
        args: &[
            "run",
            "{dir}/p.adv",
            "--data-dir",
            "{dir}/data",
            "--cache-dir",
            "{dir}/c",
            "--out",
            "{dir}/out",
        ],
        code: 3,
        says: &["results folder", "is a file"],
    },
    Case {
        name: "--out holding a user's files",
        setup: |d| {
            tiny_pipeline(d);
            std::fs::create_dir(d.join("out")).unwrap();
            write(&d.join("out/notes.txt"), "mine");
        },
        args: &[
            "run",
            "{dir}/p.adv",
            "--data-dir",
            "{dir}/data",
            "--cache-dir",
            "{dir}/c",
            "--out",
            "{dir}/out",
        ],
        code: 3,
        says: &["holds files advpipe did not write (notes.txt)"],
    },
    Case {
        name: "--data-dir naming a file",
        setup: |d| {
            tiny_pipeline(d);
            write(&d.join("notdata"), "x");
        },
        args: &["run", "{dir}/p.adv", "--data-dir", "{dir}/notdata", "--cache-dir", "{dir}/c"],
        code: 3,
        says: &["data folder", "is a file"],
    },
    Case {
        name: "MNIST images that are not 28 x 28",
        setup: |d| {
            tiny_pipeline(d);
            let images = advpipe::data::idx::encode(&[40, 14, 56], &vec![0; 40 * 14 * 56]);
            write(&d.join("data/train-images-idx3-ubyte"), images);
        },
        args: &["run", "{dir}/p.adv", "--data-dir", "{dir}/data", "--cache-dir", "{dir}/c"],
        code: 3,
        says: &["MNIST images are 28 x 28", "[40, 14, 56]"],
    },
    Case {
        name: "IDX dimensions that multiply past 2^64",
        setup: |d| {
            tiny_pipeline(d);
            let mut bytes = vec![0, 0, 8, 4];
            for _ in 0..4 {
                bytes.extend_from_slice(&65536u32.to_be_bytes());
            }
            write(&d.join("data/train-images-idx3-ubyte"), bytes);
        },
        args: &["run", "{dir}/p.adv", "--data-dir", "{dir}/data", "--cache-dir", "{dir}/c"],
        code: 3,
        says: &["not a valid IDX file", "multiply past"],
    },
    Case {
        name: "a gzip bomb in the data folder",
        setup: |d| {
            tiny_pipeline(d);
            std::fs::remove_file(d.join("data/train-images-idx3-ubyte")).unwrap();
            // 2 GiB + 1 of zeros compress to about 2 MB; only the limit is inflated.
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let chunk = vec![0u8; 1 << 20];
            for _ in 0..2049 {
                std::io::Write::write_all(&mut enc, &chunk).unwrap();
            }
            write(&d.join("data/train-images-idx3-ubyte.gz"), enc.finish().unwrap());
        },
        args: &["run", "{dir}/p.adv", "--data-dir", "{dir}/data", "--cache-dir", "{dir}/c"],
        code: 3,
        says: &["inflates to more than 2 GiB"],
    },
    Case {
        name: "a net too large for memory is refused before it runs",
        setup: |d| {
            write_tiny_mnist(&d.join("data"), 40, 20);
            write(
                &d.join("p.adv"),
                "data d = mnist(split: \"train\")\n\
                 net n = input([1, 28, 28]) >> flatten >> linear(65536) >> linear(65536) >> linear(10)\n\
                 model m = fit(n, d, epochs: 1)\n",
            );
        },
        args: &["run", "{dir}/p.adv", "--data-dir", "{dir}/data", "--cache-dir", "{dir}/c"],
        code: 3,
        says: &["node `m` (fit) would need about 4", "GiB of memory (4.3e9 parameters)"],
    },
    Case {
        name: "data too large for memory is refused by plan",
        setup: |d| write(&d.join("p.adv"), "data g = gaussian(n: 10, shape: [1e5, 1e5, 1e5])\n"),
        args: &["plan", "{dir}/p.adv", "--cache-dir", "{dir}/c"],
        code: 3,
        says: &["node `g` (gaussian) would need about"],
    },
    Case {
        name: "a 200,000-layer stack",
        setup: |d| {
            write(
                &d.join("p.adv"),
                format!(
                    "net n = input([1, 28, 28]) >> flatten{} >> linear(10)\n",
                    " >> relu".repeat(200_000)
                ),
            )
        },
        args: &["check", "{dir}/p.adv"],
        code: 1,
        says: &["more than 1024 operands"],
    },
    Case {
        name: "a checkpoint of NaNs",
        setup: |d| {
            write_tiny_mnist(&d.join("data"), 40, 20);
            use advpipe::nn::layers::{flatten::Flatten, linear::Linear};
            let net = advpipe::nn::layers::NetSpec {
                input: vec![1, 28, 28],
                layers: vec![Flatten {}.into(), Linear { units: 10 }.into()],
            };
            let dev = advpipe::nn::model::Dev::default();
            let mut model = advpipe::nn::Model::init(&dev, &net, 0.0, &mut rand::rngs::mock::StepRng::new(0, 0));
            let p = model.params[1].as_mut().unwrap();
            p.weight_mut().copy_from(&vec![f32::NAN; 7840]);
            write(&d.join("m.safetensors"), model.to_safetensors(&[]).unwrap());
            write(
                &d.join("p.adv"),
                "data test = mnist(split: \"test\")\n\
                 net n = input([1, 28, 28]) >> flatten >> linear(10)\n\
                 model m = load(\"{dir}/m.safetensors\", net: n)\n\
                 eval e = evaluate(m, test)\n\
                 table \"t\" { row \"error\" value: e.error }\n"
                    .replace("{dir}", d.to_str().unwrap()),
            );
        },
        args: &["run", "{dir}/p.adv", "--data-dir", "{dir}/data", "--cache-dir", "{dir}/c"],
        code: 3,
        says: &["node `m` (load) failed", "holds NaN at index 0"],
    },
    Case {
        name: "a checkpoint that is not safetensors is refused by check, at its path",
        setup: |d| {
            write_tiny_mnist(&d.join("data"), 40, 20);
            write(&d.join("m.safetensors"), b"\x05\0\0\0\0\0\0\0hello");
            write(
                &d.join("p.adv"),
                "data test = mnist(split: \"test\")\n\
                 net n = input([1, 28, 28]) >> flatten >> linear(10)\n\
                 model m = load(\"{dir}/m.safetensors\", net: n)\n\
                 eval e = evaluate(m, test)\n\
                 table \"t\" { row \"error\" value: e.error }\n"
                    .replace("{dir}", d.to_str().unwrap()),
            );
        },
        args: &["run", "{dir}/p.adv", "--data-dir", "{dir}/data", "--cache-dir", "{dir}/c"],
        code: 1,
        says: &["p.adv:3:16", "E0303", "cannot read the checkpoint", "does not start with `{`"],
    },
];

/// Runs the binary with a time limit: a hang is a failure, not a stuck test run.
fn run_with_limit(args: &[String], limit: Duration) -> (Option<i32>, String) {
    let mut child = advpipe()
        .args(args)
        .env_remove("ADVPIPE_DATA")
        .env_remove("ADVPIPE_CACHE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            return (None, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn hostile_inputs_end_in_clear_errors() {
    let mut failures = Vec::new();
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        (case.setup)(dir.path());
        let args: Vec<String> = case.args.iter().map(|a| a.replace("{dir}", dir.path().to_str().unwrap())).collect();
        let (code, text) = run_with_limit(&args, Duration::from_secs(60));
        let missing: Vec<&&str> = case.says.iter().filter(|s| !text.contains(**s)).collect();
        if code != Some(case.code) || !missing.is_empty() {
            failures.push(format!(
                "{}: exit {code:?} (want {}), missing {missing:?}\n{}",
                case.name,
                case.code,
                text.chars().take(1500).collect::<String>()
            ));
        }
        if text.contains('\x1b') {
            failures.push(format!("{}: an escape character reached the terminal", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_cache_leaves_a_users_tmp_folder_alone() {
    // The repro of issue 11's item 1, in a folder that is already a cache.
    let dir = tempfile::tempdir().unwrap();
    tiny_pipeline(dir.path());
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(cache.join("objects")).unwrap();
    let theirs = cache.join("tmp/p");
    std::fs::create_dir_all(&theirs).unwrap();
    write(&theirs.join("thesis.tex"), "years of work");
    let old = std::time::SystemTime::now() - Duration::from_secs(30 * 24 * 3600);
    std::fs::File::open(&theirs).unwrap().set_modified(old).unwrap();
    let d = dir.path().to_str().unwrap();
    for command in ["plan", "run"] {
        let mut args: Vec<String> = [command, "{d}/p.adv", "--data-dir", "{d}/data", "--cache-dir", "{d}/cache"]
            .iter()
            .map(|a| a.replace("{d}", d))
            .collect();
        if command == "run" {
            args.extend(["--out".to_string(), format!("{d}/out")]);
        }
        let (code, text) = run_with_limit(&args, Duration::from_secs(120));
        assert_eq!(code, Some(0), "{text}");
        assert!(theirs.join("thesis.tex").exists(), "`advpipe {command}` deleted a user's file");
    }
}
