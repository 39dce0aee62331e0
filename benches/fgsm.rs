//! Throughput of the paper's workloads on the CPU, batch 100: one SGD training step,
//! and FGSM crafting plus classification, on softmax regression and on the paper's maxout
//! net (784 -> maxout U x 5 -> maxout U x 5 -> 10, U = 240 and 1600). Criterion reports time per batch;
//! examples/s = 100 / time. `../shared/peer/torch_reference.py` measures the same
//! workloads in PyTorch: run both in one sitting (see the README's "Benchmarks").

// mimalloc keeps freed pages for reuse: with the system allocator every step's
// multi-megabyte gradient buffers went back to the kernel and were faulted in again,
// which cost training steps up to half their time (see README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use advpipe::attacks::{AttackContext, Crafter};
use advpipe::nn::layers::{linear::Linear, maxout::Maxout};
use advpipe::nn::{Dev, Model, NetSpec};
use advpipe::train::{FitParams, Trainer};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};

const BATCH: usize = 100;

fn nets() -> Vec<(&'static str, NetSpec)> {
    let maxout = NetSpec {
        input: vec![784],
        layers: vec![
            Maxout { units: 240, pieces: 5 }.into(),
            Maxout { units: 240, pieces: 5 }.into(),
            Linear { units: 10 }.into(),
        ],
    };
    let softmax = NetSpec {
        input: vec![784],
        layers: vec![Linear { units: 10 }.into()],
    };
    let wide = NetSpec {
        input: vec![784],
        layers: vec![
            Maxout { units: 1600, pieces: 5 }.into(),
            Maxout { units: 1600, pieces: 5 }.into(),
            Linear { units: 10 }.into(),
        ],
    };
    vec![("softmax", softmax), ("maxout240", maxout), ("maxout1600", wide)]
}

fn batch(rng: &mut impl Rng) -> (Vec<f32>, Vec<usize>) {
    (
        (0..BATCH * 784).map(|_| rng.gen_range(0.0..1.0)).collect(),
        (0..BATCH).map(|_| rng.gen_range(0..10)).collect(),
    )
}

fn workloads(c: &mut Criterion) {
    let dev = Dev::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let (x, y) = batch(&mut rng);
    let fgsm = Crafter::from_json(&serde_json::json!({"attack": "fgsm", "eps": 0.25, "clip": [0.0, 1.0], "labels": "true"})).unwrap();
    let mut group = c.benchmark_group("batch100");
    group.throughput(Throughput::Elements(BATCH as u64));
    // A 1600-unit step takes about 0.2 s: ten samples keep a run near a minute.
    group.sample_size(10);
    for (name, net) in nets() {
        let model = Model::init(&dev, &net, 0.005, &mut rng);
        let mut sgd = Trainer::new(&dev, model.clone(), &FitParams::sgd(1, BATCH, 0.01, 0.5, 0)).unwrap();
        group.bench_function(BenchmarkId::new("train_step", name), |b| b.iter(|| sgd.step(&dev, x.clone(), &y)));
        let mut ctx = AttackContext::new(&model, &dev, 0);
        group.bench_function(BenchmarkId::new("fgsm_classify", name), |b| {
            b.iter(|| {
                let adv = fgsm.craft(&mut ctx, &x, &y);

                ctx.predict(&adv)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, workloads);
criterion_main!(benches);
