//! Times the front end's stages on the frontend benchmark's generated pipeline (10,002
//! nodes): parse, check, plan, keys. `cargo run --release --example frontend_stages`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../benches/common/generated.rs"]
mod generated;

fn main() {
    let text = generated::generated(1000, 9);
    let source = advpipe::diagnostics::Source::new("generated.adv", text);
    let mut best = [f64::MAX; 4];
    for _ in 0..15 {
        let t = std::time::Instant::now();
        let file = advpipe::syntax::parse(&source.text).unwrap();
        let parse = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let program = advpipe::check::check_with(&file, &source.text, &Default::default(), &advpipe::kinds::specs()).unwrap();
        let check = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let plan = advpipe::plan::plan(&program);
        let planned = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        advpipe::plan::keys(&program, &plan, &mut |_| Ok(None)).unwrap();
        let keys = t.elapsed().as_secs_f64();
        for (b, v) in best.iter_mut().zip([parse, check, planned, keys]) {
            *b = b.min(v);
        }
    }
    let [parse, check, plan, keys] = best.map(|s| s * 1000.0);
    println!(
        "best of 15: parse {parse:.1} ms, check {check:.1} ms, plan {plan:.1} ms, keys {keys:.1} ms, total {:.1} ms",
        parse + check + plan + keys
    );
}
