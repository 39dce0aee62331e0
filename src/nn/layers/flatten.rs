//! `flatten`: collapses `[c, h, w]` into one dimension. Activations are already
//! `(batch, features)` matrices, channel-major, so it costs nothing at run time.

#[cfg(feature = "compute")]
use super::Pass;
use super::{show_shape, Layer};
#[cfg(feature = "compute")]
use crate::nn::model::{Dev, Matrix};
#[cfg(feature = "compute")]
use dfdx::prelude::{Merge, Tape};
use serde::{Deserialize, Serialize};

crate::declare_params! {
    /// `flatten` has no parameters.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Flatten {}
}

impl Layer for Flatten {
    const NAME: &'static str = "flatten";
    const DOC: &'static str = "collapse [c, h, w] into one dimension";
    const VERSION: u32 = 1;
    const SOURCES: &'static [&'static str] = &[file!()];
    const PARAMS: &'static [crate::params::ParamSpec] = Flatten::PARAMS;

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        input
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .map(|n| vec![n])
            .ok_or_else(|| format!("flatten of {} overflows", show_shape(input)))
    }

    #[cfg(feature = "compute")]
    fn forward<T: Tape<f32, Dev> + Merge<T>>(&self, h: Matrix<T>, _: &Pass<'_>) -> Matrix<T> {
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_every_dimension() {
        assert_eq!(Flatten {}.output_shape(&[3, 4, 5]).unwrap(), vec![60]);
        assert!(Flatten {}.output_shape(&[usize::MAX, 2]).is_err());
    }
}
