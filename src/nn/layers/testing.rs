//! What every layer's tests share: its gradients, with respect to its input and to every
//! parameter, against central finite differences of the net's loss.

use super::{LayerSpec, NetSpec};
use crate::nn::model::{Dev, Matrix, Model, Vector};
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};

fn loss(model: &Model, dev: &Dev, x: &[f32], y: &[usize]) -> f32 {
    let logits = model.forward(dev.tensor_from_vec(x.to_vec(), (y.len(), x.len() / y.len())));
    model.net.top().loss(dev, logits, y).array()
}

/// Checks the gradients of a net of `layers` on inputs of shape `input` (three examples,
/// labels 0, 2, 1: the net needs at least three outputs).
pub fn gradient_check(input: Vec<usize>, layers: Vec<LayerSpec>) {
    let dev = Dev::default();
    let width: usize = input.iter().product();
    let net = NetSpec { input, layers };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let mut model = Model::init(&dev, &net, 0.7, &mut rng);
    for p in model.params.iter_mut().flatten() {
        let b: Vec<f32> = (0..p.bias.shape().0).map(|_| rng.gen_range(-0.5..0.5)).collect();
        p.bias.copy_from(&b);
    }
    let x: Vec<f32> = (0..3 * width).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let y = vec![0, 2, 1];
    let xt: Matrix = dev.tensor_from_vec(x.clone(), (3, width));
    let logits = model.forward(xt.leaky_trace());
    let grads = model.net.top().loss(&dev, logits, &y).backward();
    let close = |numeric: f32, analytic: f32, what: &str| {
        assert!(
            (numeric - analytic).abs() <= 3e-3 + 0.03 * analytic.abs(),
            "{:?} {what}: numeric {numeric} vs analytic {analytic}",
            net.layers
        );
    };
    let h = 1e-2f32;
    let gx = grads.get(&xt).as_vec();
    for i in 0..x.len() {
        let (mut up, mut down) = (x.clone(), x.clone());
        up[i] += h;
        down[i] -= h;
        close(
            (loss(&model, &dev, &up, &y) - loss(&model, &dev, &down, &y)) / (2.0 * h),
            gx[i],
            &format!("input {i}"),
        );
    }
    for li in 0..model.params.len() {
        let Some(p) = model.params[li].clone() else { continue };
        for (which, analytic) in [("weight", grads.get(p.weight()).as_vec()), ("bias", grads.get(&p.bias).as_vec())] {
            for (i, &a) in analytic.iter().enumerate() {
                let nudge = |delta: f32| {
                    let mut m = model.clone();
                    let q = m.params[li].as_mut().unwrap();
                    if which == "weight" {
                        nudge_matrix(q.weight_mut(), i, delta);
                    } else {
                        nudge_vector(&mut q.bias, i, delta);
                    }
                    loss(&m, &dev, &x, &y)
                };
                close((nudge(h) - nudge(-h)) / (2.0 * h), a, &format!("layer {li} {which} {i}"));
            }
        }
    }
}

fn nudge_matrix(t: &mut Matrix, i: usize, delta: f32) {
    let mut v = t.as_vec();
    v[i] += delta;
    t.copy_from(&v);
}

fn nudge_vector(t: &mut Vector, i: usize, delta: f32) {
    let mut v = t.as_vec();
    v[i] += delta;
    t.copy_from(&v);
}
