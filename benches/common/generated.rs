//! The frontend benchmark's generated pipeline, shared with `examples/frontend_stages.rs`.

use std::fmt::Write;

/// A pipeline with `models * attacks + models + 2` nodes.
pub fn generated(models: usize, attacks: usize) -> String {
    let mut s = String::from("seed 1\ndata train = mnist(split: \"train\")\ndata test = mnist(split: \"test\")\n");
    s.push_str("net n = input([1, 28, 28]) >> flatten >> maxout(240, pieces: 5) >> linear(10)\n");
    for j in 0..attacks {
        writeln!(s, "attack a{j} = fgsm(eps: {})", (j + 1) as f64 / 100.0).unwrap();
    }
    for i in 0..models {
        writeln!(s, "model m{i} = fit(n, train, epochs: 5, seed: {i})").unwrap();
        for j in 0..attacks {
            writeln!(s, "eval e{i}_{j} = evaluate(m{i}, test, attack: a{j})").unwrap();
        }
    }
    s.push_str("table \"some\" {\n");
    for i in 0..models.min(100) {
        writeln!(s, "  row \"m{i}\" value: e{i}_0.error paper: 50%").unwrap();
    }
    s.push_str("}\n");
    s
}
