//! The paper's figure 3: the first layer's weights of a model, one image per unit and
//! maxout piece, for the report to draw side by side (naive against adversarially trained).

use crate::nn::model::Model;
use dfdx::shapes::HasShape;
use serde::{Deserialize, Serialize};

/// The first-layer filters of several models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightsFigure {
    /// One input's shape: every filter has this shape.
    pub shape: Vec<usize>,
    /// One panel per model, in the order given.
    pub panels: Vec<WeightsPanel>,
}

/// One model's filters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightsPanel {
    /// The model's name in the pipeline.
    pub model: String,
    /// `units[u][p]`: the incoming weights of unit `u`'s piece `p` (one piece for linear
    /// layers), as many values as the input has.
    pub units: Vec<Vec<Vec<f32>>>,
}

/// The first `n` units of `model`'s first layer with weights (linear or maxout; the checker
/// allows no other). Maxout's column `u * pieces + p` is unit `u`'s piece `p`.
pub fn first_layer(name: &str, model: &Model, n: usize) -> WeightsPanel {
    let (index, layer) = model
        .net
        .layers
        .iter()
        .enumerate()
        .find(|(i, _)| model.params[*i].is_some())
        .expect("checked: the net has a layer with weights");
    let pieces = layer.columns_per_output();
    let affine = model.params[index].as_ref().expect("found above");
    let (inputs, outputs) = *affine.weight().shape();
    let weights = affine.weight().as_vec();
    let column = |c: usize| -> Vec<f32> { (0..inputs).map(|r| weights[r * outputs + c]).collect() };
    let units = (0..(outputs / pieces).min(n))
        .map(|u| (0..pieces).map(|p| column(u * pieces + p)).collect())
        .collect();
    WeightsPanel {
        model: name.to_string(),
        units,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::{maxout::Maxout, NetSpec};
    use crate::nn::Dev;
    use rand::SeedableRng;

    #[test]
    fn maxout_columns_group_into_units_and_pieces() {
        let dev = Dev::default();
        let net = NetSpec {
            input: vec![2],
            layers: vec![Maxout { units: 2, pieces: 3 }.into()],
        };
        let mut model = Model::init(&dev, &net, 0.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
        // Row r (input r), column c: 10 r + c.
        let w: Vec<f32> = (0..2).flat_map(|r| (0..6).map(move |c| (10 * r + c) as f32)).collect();
        model.params[0].as_mut().unwrap().weight_mut().copy_from(&w);
        let panel = first_layer("m", &model, 5);
        assert_eq!(panel.units.len(), 2, "n is capped by the layer's units");
        assert_eq!(panel.units[1][2], vec![5.0, 15.0], "unit 1, piece 2 is column 5");
        assert_eq!(first_layer("m", &model, 1).units.len(), 1);
    }
}
