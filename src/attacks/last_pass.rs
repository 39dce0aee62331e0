//! The last two inputs an evaluation-mode forward pass ran on, with their logits.
//!
//! An evaluation under an attack asks for the clean batch's logits and the crafted batch's
//! after the attack ran. FGSM's one gradient pass is at the clean batch, and PGD ends with a
//! pass at the batch it returns (its restarts' objective), so each of them has already
//! computed one of the two: answering from here makes FGSM's evaluation a quarter cheaper
//! and saves PGD one of its passes. Two entries, because the evaluation's own clean pass
//! comes between PGD's last pass and the request for it. It gives the same bits: the forward
//! pass is deterministic, and the model cannot change while a context borrows it. Only an
//! input equal bit for bit counts as the same.

use std::cell::RefCell;

/// How many (input, logits) pairs are kept.
const KEPT: usize = 2;

/// The remembered (input, logits) pairs, the latest first.
#[derive(Default)]
pub(crate) struct LastPass(RefCell<Vec<(Vec<f32>, Vec<f32>)>>);

impl LastPass {
    /// Keeps `logits` as the evaluation-mode logits of `x`, forgetting the oldest pair.
    pub(crate) fn remember(&self, x: &[f32], logits: &[f32]) {
        let mut kept = self.0.borrow_mut();
        if kept.len() < KEPT {
            kept.insert(0, (x.to_vec(), logits.to_vec()));
            return;
        }
        // Reuses the oldest pair's buffers: PGD remembers every step's input.
        kept.rotate_right(1);
        let (input, values) = &mut kept[0];
        input.clear();
        input.extend_from_slice(x);
        values.clear();
        values.extend_from_slice(logits);
    }

    /// The logits of `x`, if `x` is one of the inputs remembered.
    pub(crate) fn recall(&self, x: &[f32]) -> Option<Vec<f32>> {
        let kept = self.0.borrow();
        let same = |input: &[f32]| input.len() == x.len() && input.iter().zip(x).all(|(a, b)| a.to_bits() == b.to_bits());
        kept.iter().find(|(input, _)| same(input)).map(|(_, logits)| logits.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_bits_are_recalled() {
        let last = LastPass::default();
        assert_eq!(last.recall(&[1.0]), None);
        last.remember(&[1.0, 0.0], &[3.0]);
        assert_eq!(last.recall(&[1.0, 0.0]), Some(vec![3.0]));
        assert_eq!(last.recall(&[1.0, -0.0]), None, "-0 is another input");
        assert_eq!(last.recall(&[1.0]), None);
        last.remember(&[2.0], &[4.0, 5.0]);
        assert_eq!(last.recall(&[2.0]), Some(vec![4.0, 5.0]));
        assert_eq!(last.recall(&[1.0, 0.0]), Some(vec![3.0]), "two pairs are kept");
        last.remember(&[7.0], &[8.0]);
        assert_eq!(last.recall(&[1.0, 0.0]), None, "the oldest is forgotten");
        assert_eq!(last.recall(&[2.0]), Some(vec![4.0, 5.0]));
        assert_eq!(last.recall(&[7.0]), Some(vec![8.0]));
    }

    /// The logits a gradient pass leaves have the bits of a plain forward pass, for nets with
    /// dropout, convolutions and for an ensemble.
    #[test]
    fn a_gradient_pass_leaves_the_logits_a_plain_pass_computes() {
        use crate::attacks::AttackContext;
        use crate::nn::layers::{conv2d::Conv2d, dropout::Dropout, flatten::Flatten, linear::Linear, max_pool::MaxPool, maxout::Maxout};
        use crate::nn::{Classifier, Combine, Dev, Model, NetSpec};
        use rand::{Rng, SeedableRng};
        use std::sync::Arc;
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let dense = NetSpec {
            input: vec![784],
            layers: vec![
                Dropout { p: 0.2, scale: None }.into(),
                Maxout { units: 40, pieces: 5 }.into(),
                Dropout { p: 0.5, scale: None }.into(),
                Linear { units: 10 }.into(),
            ],
        };
        let conv = NetSpec {
            input: vec![1, 28, 28],
            layers: vec![
                Conv2d {
                    filters: 4,
                    kernel: 5,
                    stride: 1,
                    padding: 2,
                }
                .into(),
                crate::nn::layers::activations::Relu {}.into(),
                MaxPool { size: 2, stride: None }.into(),
                Flatten {}.into(),
                Linear { units: 10 }.into(),
            ],
        };
        let models: Vec<Arc<Model>> = [&dense, &conv, &dense]
            .iter()
            .map(|net| Arc::new(Model::init_fan_in(&dev, net, &mut rng)))
            .collect();
        let x: Vec<f32> = (0..300 * 784).map(|_| rng.gen_range(0.0..1.0)).collect();
        let labels: Vec<usize> = (0..300).map(|i| i % 10).collect();
        let ensemble = [Arc::clone(&models[0]), Arc::clone(&models[2])];
        let classifiers = [
            Classifier::Single(&models[0]),
            Classifier::Single(&models[1]),
            Classifier::Ensemble(&ensemble, Combine::MeanProbabilities),
        ];
        for (i, classifier) in classifiers.into_iter().enumerate() {
            let ctx = AttackContext::new(classifier, &dev, 0);
            ctx.input_gradient(&x, &labels);
            let recalled = ctx.last_pass.recall(&x).expect("the gradient pass remembers its logits");
            let fresh = AttackContext::new(classifier, &dev, 0).model.forward(ctx.batch(&x)).as_vec();
            let same = recalled.iter().zip(&fresh).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same && recalled.len() == fresh.len(), "classifier {i}");
        }
    }
}
