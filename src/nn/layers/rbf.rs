//! `rbf(units, precision, output)`: radial basis units (the paper's section 7), output
//! `o_k = -exp(s_k) * ||x - c_k||^2`, a learned centre `c_k` per unit and a log-precision
//! `s_k` per unit (`precision: "per_class"`) or one for all (`"shared"`).
//!
//! The paper gives the binary form `p(y = 1 | x) = exp(-(x - mu)' beta (x - mu))` and leaves
//! the multiclass one open, so both readings are here. `output: "membership"` (the default):
//! as the last layer, `exp(o_k)` is class `k`'s independent membership probability, high
//! only near its centre, trained with binary cross-entropy (see `nn::top`): far from every
//! centre no class is likely. `output: "softmax"`: the classes are exclusive, `p_k` is the
//! softmax of the `o_k` (proportional to `exp(-beta_k ||x - c_k||^2)`), trained with
//! cross-entropy: some class always gets a large share. The centres are stored as `weight`
//! (`[in, units]`, one column per centre) and the log-precisions as `bias` (with a shared
//! precision, `bias[0]` is it and the other entries stay 0).

#[cfg(feature = "compute")]
use super::Pass;
use super::{dense_weights, flat_input, Layer, UNITS};
#[cfg(feature = "compute")]
use crate::nn::model::{Dev, Matrix};
use crate::params::{Default, ParamDef, ParamType};
#[cfg(feature = "compute")]
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

/// How many precisions the units have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// One log-precision per unit (class).
    #[default]
    PerClass,
    /// One log-precision for every unit.
    Shared,
}

/// What the outputs mean when the layer ends a net.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// Independent class memberships `exp(o_k)`, binary cross-entropy.
    #[default]
    Membership,
    /// Exclusive classes, softmax over the `o_k`, cross-entropy.
    Softmax,
}

impl Precision {
    fn is_default(&self) -> bool {
        *self == Precision::default()
    }
}

impl Output {
    fn is_default(&self) -> bool {
        *self == Output::default()
    }
}

crate::declare_params! {
    /// `rbf`'s parameters. The defaults are not serialized, so nets and checkpoints written
    /// before the choices existed read and hash as they did.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Rbf {
        /// output width
        units: usize = UNITS,
        /// a log-precision per unit ("per_class") or one for all ("shared")
        #[serde(default, skip_serializing_if = "Precision::is_default")]
        precision: Precision = ParamDef::or(ParamType::Choice(&["per_class", "shared"]), Default::Str("per_class")),
        /// as the last layer: independent memberships exp(o_k) with binary cross-entropy ("membership"), or a softmax over o_k ("softmax")
        #[serde(default, skip_serializing_if = "Output::is_default")]
        output: Output = ParamDef::or(ParamType::Choice(&["membership", "softmax"]), Default::Str("membership")),
    }
}

impl Layer for Rbf {
    const NAME: &'static str = "rbf";
    const DOC: &'static str = "radial basis units: -exp(s_k) * ||x - c_k||^2 (the paper's shallow RBF network is flatten >> rbf(10))";
    const VERSION: u32 = 2;
    const SOURCES: &'static [&'static str] = &[file!()];
    const PARAMS: &'static [crate::params::ParamSpec] = Rbf::PARAMS;

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        flat_input(input, "rbf").map(|_| vec![self.units])
    }

    fn weight_shape(&self, input: &[usize]) -> Result<Option<(usize, usize)>, String> {
        dense_weights(input, Some(self.units), &format!("{self:?}"))
    }

    fn max_norm_applies(&self) -> bool {
        false
    }

    /// Centres and log-precisions have no PyTorch module to come from.
    fn torch_weight_shape(&self, _input: &[usize]) -> Option<Vec<usize>> {
        None
    }

    /// Expanded as `||x||^2 - 2 x.c_k + ||c_k||^2` so that the cross term is one matmul.
    #[cfg(feature = "compute")]
    fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, pass: &Pass<'_>) -> Matrix<T> {
        let p = pass.affine();
        let (n, units) = (h.shape().0, p.weight().shape().1);
        let (h, tape) = h.split_tape();
        // `x` is used twice: the first use carries the tape, the second starts an empty one
        // that the arithmetic below merges back in.
        let x_sq = h
            .clone()
            .put_tape(tape)
            .square()
            .sum::<(usize,), Axis<1>>()
            .broadcast_like::<(usize, usize), Axis<1>>(&(n, units));
        let cross = h.retaped::<T>().matmul(p.weight().retaped::<T>());
        let c_sq = p
            .weight()
            .retaped::<T>()
            .square()
            .sum::<(usize,), Axis<0>>()
            .broadcast_like::<(usize, usize), Axis<0>>(&(n, units));
        let log_precision = match self.precision {
            Precision::PerClass => p.bias.retaped::<T>(),
            // Every unit reads `bias[0]`; gather's backward sums their gradients into it.
            Precision::Shared => {
                let first = p.bias.device().tensor_from_vec(vec![0usize; units], (units,));
                p.bias.retaped::<T>().gather(first)
            }
        };
        let precision = log_precision.exp().broadcast_like::<(usize, usize), Axis<0>>(&(n, units));
        ((x_sq - cross * 2.0 + c_sq) * precision).negate()
    }
}

#[cfg(all(test, feature = "compute"))]
mod tests {
    use super::{Output, Precision, Rbf};
    use crate::nn::layers::{activations::Tanh, linear::Linear, testing::gradient_check};
    use crate::nn::Top;

    fn rbf(units: usize, precision: Precision, output: Output) -> Rbf {
        Rbf { units, precision, output }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for precision in [Precision::PerClass, Precision::Shared] {
            for output in [Output::Membership, Output::Softmax] {
                gradient_check(vec![5], vec![rbf(3, precision, output).into()]);
                gradient_check(
                    vec![5],
                    vec![Linear { units: 4 }.into(), Tanh {}.into(), rbf(3, precision, output).into()],
                );
            }
        }
    }

    #[test]
    fn the_output_form_decides_the_top_and_defaults_are_not_written() {
        let net = |r: Rbf| crate::nn::NetSpec {
            input: vec![4],
            layers: vec![r.into()],
        };
        assert_eq!(net(rbf(3, Precision::PerClass, Output::Membership)).top(), Top::Rbf);
        assert_eq!(net(rbf(3, Precision::Shared, Output::Softmax)).top(), Top::Softmax);
        let default = crate::nn::layers::LayerSpec::from(rbf(3, Precision::PerClass, Output::Membership));
        assert_eq!(serde_json::to_string(&default).unwrap(), r#"{"layer":"rbf","units":3}"#);
        let chosen = crate::nn::layers::LayerSpec::from(rbf(3, Precision::Shared, Output::Softmax));
        assert_eq!(
            serde_json::to_string(&chosen).unwrap(),
            r#"{"layer":"rbf","units":3,"precision":"shared","output":"softmax"}"#
        );
    }
}
