//! One whole epoch of `fit` against the steps it is made of, on the paper's maxout net.
//!
//! For each workload (the maxout recipe of `pipelines/maxout.adv`: dropout on the pixels and
//! the hidden layers, max-norm, lr decay and the momentum ramp; the same recipe trained
//! adversarially, 0.5 clean + 0.5 FGSM eps .25; and `lenet`, a LeNet-style conv net, conv 16
//! k5, relu, max-pool 2, conv 32 k5, relu, max-pool 2, linear 10, trained by plain SGD with
//! momentum), it alternates, for several rounds, (a) one
//! epoch through `train::fit` on 50,000 examples with a 10,000-example validation set, (b) the
//! same number of `Trainer::step`s on batches built beforehand, and (c) the validation pass
//! alone, and prints the medians and `epoch / (steps + validation)`: what an epoch costs
//! beyond its steps (shuffling, batching, bookkeeping). The target is at most 1.2.
//!
//! The examples are synthetic (seeded, so the benchmark needs no download) but shaped like
//! MNIST's where cost depends on it: a 4-pixel frame that is always 0 (MNIST's digits sit in
//! the centre 20 x 20), whose weights get zero gradients and whose velocities decay through
//! the subnormal range, and four in five of the other pixels 0.
//!
//! Run: `cargo bench --bench epoch`. `ADVPIPE_BENCH_UNITS` picks the width (default 240),
//! `ADVPIPE_BENCH_WORKLOADS` the workloads (default `recipe,adversarial,lenet`),
//! `ADVPIPE_BENCH_ROUNDS` the rounds (default 3).

// As in the advpipe binary (src/main.rs): the allocator is part of what is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use advpipe::data::Dataset;
use advpipe::nn::{Dev, Model, NetSpec};
use advpipe::train::{FitParams, Trainer};
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// The fit of `pipelines/maxout.adv` for one epoch (and, `adversarial`, its training loss
/// mixed with FGSM as the paper's adversarially trained net is), read through the language
/// so that the benchmark runs exactly what a pipeline file asks for.
fn recipe(units: usize, workload: &str) -> (NetSpec, FitParams) {
    let loss = if workload == "adversarial" {
        ", loss: 0.5 * clean + 0.5 * fgsm(eps: 0.25)"
    } else {
        ""
    };
    let data = "data train = mnist(split: \"train\", take: 50000)\n\
                data valid = mnist(split: \"train\", skip: 50000)\n";
    let text = if workload == "lenet" {
        format!(
            "{data}net lenet = input([1, 28, 28]) >> conv2d(16, kernel: 5) >> relu >> max_pool(2)\n\
               >> conv2d(32, kernel: 5) >> relu >> max_pool(2) >> flatten >> linear(10)\n\
             model ln = fit(lenet, train, valid: valid, epochs: 1, batch: 100, lr: 0.05, momentum: 0.5)\n"
        )
    } else {
        format!(
            "{data}net maxout = input([1, 28, 28]) >> flatten >> dropout(0.2, scale: 1)\n\
               >> maxout({units}, pieces: 5) >> dropout(0.5) >> maxout({units}, pieces: 5)\n\
               >> dropout(0.5) >> linear(10)\n\
             model mx = fit(maxout, train, valid: valid, epochs: 1, batch: 100,\n\
               lr: 0.1, lr_decay: 1.000004, lr_min: 1e-6, momentum: 0.5, momentum_end: 0.7,\n\
               momentum_epochs: 250, max_norm: 1.9365, init: 0.005{loss})\n"
        )
    };
    let source = advpipe::diagnostics::Source::new("epoch.adv", text);
    let program = advpipe::compile(&source).expect("the benchmark's pipeline checks");
    let fit = program.nodes.iter().find(|n| n.kind.name == "fit").expect("one fit");
    let net = serde_json::from_value(fit.params["net"].clone()).expect("a net");
    let params = serde_json::from_value(fit.params.clone()).expect("fit parameters");
    (net, params)
}

/// `n` synthetic MNIST-shaped examples.
fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let framed = |i: usize| {
        let (row, col) = ((i % 784) / 28, i % 28);
        !(4..24).contains(&row) || !(4..24).contains(&col)
    };
    let images = (0..n * 784)
        .map(|i| {
            if framed(i) || rng.gen_bool(0.8) {
                0.0
            } else {
                rng.gen_range(0.0..1.0)
            }
        })
        .collect();
    let labels = (0..n).map(|_| rng.gen_range(0..10u8)).collect();
    Dataset {
        images,
        labels,
        shape: vec![1, 28, 28],
        classes: 10,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let units: usize = env("ADVPIPE_BENCH_UNITS", "240").parse().expect("ADVPIPE_BENCH_UNITS: a number");
    let rounds: usize = env("ADVPIPE_BENCH_ROUNDS", "3").parse().expect("ADVPIPE_BENCH_ROUNDS: a number");
    let workloads = env("ADVPIPE_BENCH_WORKLOADS", "recipe,adversarial,lenet");
    let (train, valid) = (synthetic(50_000, 1), synthetic(10_000, 2));
    println!("| workload | units | epoch (s) | its steps alone (s) | validation alone (s) | epoch / (steps + validation) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for workload in workloads.split(',') {
        let (net, p) = recipe(units, workload);
        let batches: Vec<(Vec<f32>, Vec<usize>)> = (0..train.len() / p.batch)
            .map(|b| {
                let rows = b * p.batch..(b + 1) * p.batch;
                (
                    train.images_of(rows.clone()).to_vec(),
                    rows.map(|i| train.labels[i] as usize).collect(),
                )
            })
            .collect();
        let (mut epoch, mut steps, mut validation) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let start = Instant::now();
            let fitted = advpipe::train::fit(&net, &train, Some(&valid), &p, &mut |_| {}).expect("the epoch trains");
            epoch.push(start.elapsed().as_secs_f64());

            let dev = Dev::seed_from_u64(p.seed);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed);
            let mut trainer = Trainer::new(&dev, Model::init_as(&dev, &net, p.init, &mut rng), &p).expect("valid recipe");
            let start = Instant::now();
            for (x, labels) in &batches {
                std::hint::black_box(trainer.step(&dev, x.clone(), labels));
            }
            steps.push(start.elapsed().as_secs_f64());

            let start = Instant::now();
            std::hint::black_box(advpipe::eval::evaluate(&dev, &fitted.0, &valid, None, p.seed, 1000, &mut |_, _| {}));
            validation.push(start.elapsed().as_secs_f64());
        }
        let (e, s, v) = (median(epoch), median(steps), median(validation));
        let units = if workload == "lenet" { "-".to_string() } else { units.to_string() };
        println!("| {workload} | {units} | {e:.2} | {s:.2} | {v:.2} | {:.2} |", e / (s + v));
    }
}
