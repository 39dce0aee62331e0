//! Parse + check + plan (DAG and cache keys) of a generated pipeline of about 10,000
//! nodes: 1,000 models, each evaluated under 9 attacks. The target is under 50 ms here.

// mimalloc keeps freed pages for reuse: with the system allocator every step's
// multi-megabyte gradient buffers went back to the kernel and were faulted in again,
// which cost training steps up to half their time (see README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use advpipe::diagnostics::Source;
use criterion::{criterion_group, criterion_main, Criterion};

#[path = "common/generated.rs"]
mod generated;
use generated::generated;

fn frontend(c: &mut Criterion) {
    let text = generated(1000, 9);
    let source = Source::new("generated.adv", text);
    let program = advpipe::compile(&source).expect("the generated pipeline checks");
    assert_eq!(program.nodes.len(), 10_002);
    let mut group = c.benchmark_group("frontend");
    group.sample_size(20);
    group.bench_function("parse_check_plan_10k_nodes", |b| {
        b.iter(|| {
            let program = advpipe::compile(&source).expect("checks");
            let plan = advpipe::plan::plan(&program);
            advpipe::plan::keys(&program, &plan, &mut |_| Ok(None)).expect("keys")
        })
    });
    group.finish();
}

criterion_group!(benches, frontend);
criterion_main!(benches);
