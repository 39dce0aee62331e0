//! advpipe against the PyTorch CPU reference, side by side, in one sitting.
//!
//! For each workload (one training step; FGSM crafting plus classification; one step of
//! adversarial training, 0.5 clean + 0.5 FGSM) on the paper's maxout net (784 -> maxout
//! U x 5 -> maxout U x 5 -> 10, batch 100), it alternates advpipe and the peer
//! (`../shared/peer/torch_reference.py`, same model, same batch) for several rounds and
//! prints both medians in examples per second and their ratio.
//!
//! Run: `cargo bench --bench throughput`. The peer needs torch in a virtual environment:
//! `python3 -m venv .venv-peer && .venv-peer/bin/pip install torch`; set
//! `ADVPIPE_PEER_PYTHON` to another interpreter if yours lives elsewhere. Without it the
//! peer's column says so and only advpipe is measured. `ADVPIPE_BENCH_UNITS` picks the
//! widths (default `240,1600`), `ADVPIPE_BENCH_WORKLOADS` the workloads (default
//! `train,fgsm,advtrain`), `ADVPIPE_BENCH_ROUNDS` the rounds (default 3).

// As in the advpipe binary (src/main.rs): the allocator is part of what is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use advpipe::attacks::{AttackContext, Crafter};
use advpipe::nn::layers::activations::Relu;
use advpipe::nn::layers::{conv2d::Conv2d, flatten::Flatten, linear::Linear, max_pool::MaxPool, maxout::Maxout};
use advpipe::nn::{Dev, Model, NetSpec};
use advpipe::train::{FitParams, LossTerm, Trainer};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const BATCH: usize = 100;
const WORKLOADS: [&str; 4] = ["train", "fgsm", "advtrain", "pgd"];
const MODELS: [&str; 3] = ["maxout240", "maxout1600", "lenet"];
/// The peer's PGD: `--pgd-steps` and `--pgd-step-size` of `benches/peer/torch_throughput.py`.
const PGD_STEPS: usize = 10;

fn fgsm_json() -> serde_json::Value {
    serde_json::json!({"attack": "fgsm", "eps": 0.25, "clip": [0.0, 1.0], "labels": "true", "target": "none", "target_class": null, "mode": "eval"})
}

fn pgd_json() -> serde_json::Value {
    serde_json::json!({"attack": "pgd", "eps": 0.25, "norm": "linf", "steps": PGD_STEPS, "step_size": 0.01, "start": "random", "restarts": 1, "clip": [0.0, 1.0], "labels": "true", "target": "none", "target_class": null, "mode": "eval"})
}

/// A net of the harness by name: `maxoutU` (the paper's, U units per layer) or `lenet`.
fn net(name: &str) -> NetSpec {
    if name == "lenet" {
        let conv = |filters| Conv2d {
            filters,
            kernel: 5,
            stride: 1,
            padding: 0,
        };
        let pool = || MaxPool { size: 2, stride: None };
        return NetSpec {
            input: vec![1, 28, 28],
            layers: vec![
                conv(16).into(),
                Relu {}.into(),
                pool().into(),
                conv(32).into(),
                Relu {}.into(),
                pool().into(),
                Flatten {}.into(),
                Linear { units: 10 }.into(),
            ],
        };
    }
    let units: usize = name
        .strip_prefix("maxout")
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("unknown model {name}: maxoutU or lenet"));
    NetSpec {
        input: vec![784],
        layers: vec![
            Maxout { units, pieces: 5 }.into(),
            Maxout { units, pieces: 5 }.into(),
            Linear { units: 10 }.into(),
        ],
    }
}

/// Examples per second of one workload, timed over about `budget` after a warm-up.
fn ours(dev: &Dev, model: &Model, workload: &str, x: &[f32], y: &[usize], budget: Duration) -> f64 {
    let plain = FitParams::sgd(1, BATCH, 0.01, 0.5, 0);
    let loss = match workload {
        "advtrain" => vec![
            LossTerm { weight: 0.5, attack: None },
            LossTerm {
                weight: 0.5,
                attack: Some(fgsm_json()),
            },
        ],
        _ => plain.loss.clone(),
    };
    let mut trainer = Trainer::new(dev, model.clone(), &FitParams { loss, ..plain }).expect("valid attack");
    let fgsm = Crafter::from_json(&fgsm_json()).expect("valid attack");
    let pgd = Crafter::from_json(&pgd_json()).expect("valid attack");
    let mut once = || match workload {
        "fgsm" | "pgd" => {
            let mut ctx = AttackContext::new(model, dev, 0);
            let attack = if workload == "fgsm" { &fgsm } else { &pgd };
            let adv = attack.craft(&mut ctx, x, y);
            std::hint::black_box(ctx.predict(&adv));
        }
        _ => {
            std::hint::black_box(trainer.step(dev, x.to_vec(), y));
        }
    };
    for _ in 0..3 {
        once();
    }
    let (start, mut iters) = (Instant::now(), 0);
    while iters < 3 || start.elapsed() < budget {
        once();
        iters += 1;
    }
    (iters * BATCH) as f64 / start.elapsed().as_secs_f64()
}

fn peer_python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("ADVPIPE_PEER_PYTHON").map(PathBuf::from),
        Some(PathBuf::from(".venv-peer/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| p.exists())
}

fn peer_script() -> PathBuf {
    std::env::var_os("ADVPIPE_PEER_SCRIPT").map_or_else(|| PathBuf::from("benches/peer/torch_throughput.py"), PathBuf::from)
}

/// The peer's examples per second, or why there is none.
fn peer(python: &Option<PathBuf>, model: &str, workload: &str) -> Result<f64, String> {
    let python = python.as_ref().ok_or("no torch venv (see this file's header)")?;
    let (kind, units) = match model.strip_prefix("maxout") {
        Some(units) => ("maxout", units),
        None => (model, "240"),
    };
    let slow = model == "maxout1600" || workload == "pgd";
    let iters = if slow { "10" } else { "60" };
    let out = Command::new(python)
        .arg(peer_script())
        .args([
            "--model",
            kind,
            "--units",
            units,
            "--threads",
            "2",
            "--workload",
            workload,
            "--iters",
            iters,
        ])
        .args(["--eps", "0.25", "--pgd-steps", &PGD_STEPS.to_string(), "--pgd-step-size", "0.01"])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("peer printed nothing: {}", String::from_utf8_lossy(&out.stderr)))?;
    let json: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    json["examples_per_s"].as_f64().ok_or_else(|| "no examples_per_s".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn list(var: &str, default: &[&str]) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_else(|_| default.join(","))
        .split(',')
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// The fp32 matmul ceiling: GFLOP/s of the gemm advpipe's dense layers use, on a square
/// product of 2048 (large enough to hide packing), on every thread, best of five.
fn matmul_ceiling() -> f64 {
    let n = 2048;
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        // SAFETY: three distinct n x n row-major buffers, strides within them.
        unsafe {
            gemm::gemm(
                n,
                n,
                n,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                n as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(rayon::current_num_threads()),
            );
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    std::hint::black_box(&c);
    2.0 * (n * n * n) as f64 / best / 1e9
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (a filter) is ignored.
    let models = list("ADVPIPE_BENCH_MODELS", &MODELS);
    let chosen = list("ADVPIPE_BENCH_WORKLOADS", &WORKLOADS);
    let rounds: usize = std::env::var("ADVPIPE_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let python = peer_python();
    let dev = Dev::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let x: Vec<f32> = (0..BATCH * 784).map(|_| rng.gen_range(0.0..1.0)).collect();
    let y: Vec<usize> = (0..BATCH).map(|_| rng.gen_range(0..10)).collect();
    let ceiling = matmul_ceiling();
    println!(
        "fp32 matmul ceiling (gemm, 2048^3, {} threads): {ceiling:.0} GFLOP/s",
        rayon::current_num_threads()
    );
    let mut train_flops = Vec::new();
    println!("| model | workload | advpipe ex/s | PyTorch ex/s | advpipe / PyTorch |");
    println!("|---|---|---:|---:|---:|");
    for name in &models {
        let model = Model::init(&dev, &net(name), 0.005, &mut rng);
        let budget = Duration::from_millis(if name == "maxout1600" { 4000 } else { 1500 });
        for workload in WORKLOADS.into_iter().filter(|w| chosen.iter().any(|c| c == w)) {
            let (mut a, mut b, mut why) = (vec![], vec![], None);
            for _ in 0..rounds {
                a.push(ours(&dev, &model, workload, &x, &y, budget));
                match peer(&python, name, workload) {
                    Ok(v) => b.push(v),
                    Err(e) => why = Some(e),
                }
            }
            let ours = median(a);
            if workload == "train" && name.starts_with("maxout") {
                // A dense training step costs about 6 x parameters FLOPs per example.
                let params: usize = model
                    .params
                    .iter()
                    .flatten()
                    .map(|p| p.weight().as_vec().len() + p.bias.as_vec().len())
                    .sum();
                train_flops.push((name.clone(), ours * 6.0 * params as f64 / 1e9));
            }
            match why {
                None => {
                    let theirs = median(b);
                    println!("| {name} | {workload} | {ours:.0} | {theirs:.0} | {:.2} |", ours / theirs);
                }
                Some(e) => println!("| {name} | {workload} | {ours:.0} | skipped: {e} | - |"),
            }
        }
    }
    for (name, gflops) in train_flops {
        println!(
            "{name} training step: {gflops:.0} GFLOP/s (6 x parameters per example), {:.0}% of the ceiling",
            100.0 * gflops / ceiling
        );
    }
}
