#[path = "../benches/frontend.rs"]
#[allow(dead_code)]
mod frontend;
fn main() {
    let text = frontend::generated(1000, 9);
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let file = advpipe::syntax::parse(&text).unwrap();
        let t1 = t.elapsed();
        let program = advpipe::check::check(&file, &text).unwrap();
        let t2 = t.elapsed();
        let plan = advpipe::plan::plan(&program);
        let t3 = t.elapsed();
        advpipe::plan::keys(&program, &plan, &mut |_| Ok(None)).unwrap();
        let t4 = t.elapsed();
        drop(program);
        drop(file);
        let t5 = t.elapsed();
        println!(
            "parse {:?} check {:?} plan {:?} keys {:?} drop {:?}",
            t1,
            t2 - t1,
            t3 - t2,
            t4 - t3,
            t5 - t4
        );
    }
}
