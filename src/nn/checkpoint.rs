//! Which tensors a net's checkpoint holds, under advpipe's names or PyTorch's, and what is
//! wrong when a file's tensors do not fit: used by `check` (from the file's header, before
//! anything runs) and by `load` (reading the values).
//!
//! advpipe's layout: `layers.{i}.weight` `[in, out]` and `layers.{i}.bias` `[out]`, `i`
//! counting the net's layers after `input` (`flatten` counts). PyTorch's (`layout: "torch"`):
//! an `nn.Sequential` with one module per advpipe layer has the same indices, so its
//! `state_dict` holds `{prefix}{i}.weight` in PyTorch's own shape (`nn.Linear`'s `[out, in]`,
//! `nn.Conv2d`'s `[out, in, k, k]`) and `{prefix}{i}.bias`.

use super::NetSpec;
use std::collections::BTreeMap;

/// How a checkpoint names and shapes its tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// advpipe's own: `layers.{i}.weight` `[in, out]`.
    Advpipe,
    /// A PyTorch `nn.Sequential`'s `state_dict`: `{i}.weight` in PyTorch's shape.
    Torch,
}

impl Layout {
    /// The layout a `layout:` argument names (`None`: advpipe's).
    pub fn parse(text: Option<&str>) -> Layout {
        match text {
            Some("torch") => Layout::Torch,
            _ => Layout::Advpipe,
        }
    }
}

/// One tensor a net needs from its checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Wanted {
    /// Its name in the file.
    pub name: String,
    /// Its shape in the file.
    pub shape: Vec<usize>,
    /// advpipe's `(rows, columns)` for a weight, stored transposed (`[columns, rows]` once
    /// flattened) in PyTorch's layout; `None` for a bias or an advpipe-layout weight.
    pub transposed: Option<(usize, usize)>,
}

/// The tensors `net` needs, weight then bias per layer with parameters, or why the layout
/// cannot express the net.
pub fn wanted(net: &NetSpec, layout: Layout, prefix: &str) -> Result<Vec<Wanted>, String> {
    let mut shape = net.input.clone();
    let mut out = Vec::new();
    for (i, layer) in net.layers.iter().enumerate() {
        if let Some((rows, columns)) = layer.weight_shape(&shape)? {
            let (name, weight, transposed) = match layout {
                Layout::Advpipe => (format!("layers.{i}"), vec![rows, columns], None),
                Layout::Torch => {
                    let torch = layer
                        .torch_weight_shape(&shape)
                        .ok_or_else(|| format!("layer {i} ({}) has no PyTorch counterpart to load from", layer.name()))?;
                    (format!("{prefix}{i}"), torch, Some((rows, columns)))
                }
            };
            out.push(Wanted {
                name: format!("{name}.weight"),
                shape: weight,
                transposed,
            });
            out.push(Wanted {
                name: format!("{name}.bias"),
                shape: vec![columns],
                transposed: None,
            });
        }
        shape = layer.output_shape(&shape)?;
    }
    Ok(out)
}

/// A tensor as a file's header describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// Element type, as safetensors names it (`F32`).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
}

/// What is wrong when the tensors `found` do not give the net what it `wants`, with hints
/// for the usual causes (PyTorch's names or shapes without `layout: "torch"`, a prefix,
/// layers counted differently); `None` when they fit.
pub fn mismatch(found: &BTreeMap<String, Found>, wants: &[Wanted], layout: Layout) -> Option<String> {
    let show = |shape: &[usize]| format!("{shape:?}");
    let mut problems = Vec::new();
    let mut missing = Vec::new();
    for want in wants {
        match found.get(&want.name) {
            None => missing.push(want),
            Some(f) if f.dtype != "F32" || f.shape != want.shape => {
                let mut problem = format!(
                    "`{}` is {} {}, the net needs F32 {}",
                    want.name,
                    f.dtype,
                    show(&f.shape),
                    show(&want.shape)
                );
                let reversed: Vec<usize> = want.shape.iter().rev().copied().collect();
                if f.shape == reversed && want.shape.len() == 2 {
                    problem.push_str(match layout {
                        Layout::Advpipe => " (its transpose: a PyTorch [out, in] weight? load it with layout: \"torch\")",
                        Layout::Torch => " (its transpose: an advpipe [in, out] weight? drop layout: \"torch\")",
                    });
                }
                problems.push(problem);
            }
            Some(_) => {}
        }
    }
    if missing.is_empty() && problems.is_empty() {
        return None;
    }
    if !missing.is_empty() {
        let listed: Vec<String> = missing.iter().map(|w| format!("`{}` {}", w.name, show(&w.shape))).collect();
        let held: Vec<String> = found
            .iter()
            .filter(|(name, _)| *name != "__metadata__")
            .take(12)
            .map(|(name, f)| format!("`{name}` {}", show(&f.shape)))
            .collect();
        let more = found.len().saturating_sub(12);
        problems.insert(
            0,
            format!(
                "the net needs {} but the file holds {}{}",
                listed.join(", "),
                if held.is_empty() {
                    "no tensors".to_string()
                } else {
                    held.join(", ")
                },
                if more > 0 { format!(" and {more} more") } else { String::new() }
            ),
        );
        problems.extend(hint(found, &missing, layout));
    }
    Some(problems.join("; "))
}

/// The likely cause of missing names.
fn hint(found: &BTreeMap<String, Found>, missing: &[&Wanted], layout: Layout) -> Option<String> {
    let names: Vec<&str> = found.keys().map(String::as_str).filter(|n| *n != "__metadata__").collect();
    let torch_like = |n: &str| n.rsplit('.').nth(1).is_some_and(|i| i.parse::<usize>().is_ok()) && !n.starts_with("layers.");
    if layout == Layout::Advpipe && !names.is_empty() && names.iter().all(|n| torch_like(n)) {
        return Some("these are PyTorch's names: load it with layout: \"torch\"".into());
    }
    // A common prefix before the index (`net.0.weight`, `model.features.3.bias`).
    if layout == Layout::Torch {
        let prefix_of = |n: &str| {
            let mut parts: Vec<&str> = n.split('.').collect();
            parts.truncate(parts.len().saturating_sub(2));
            parts.iter().map(|p| format!("{p}.")).collect::<String>()
        };
        if let Some(first) = names.first() {
            let prefix = prefix_of(first);
            if !prefix.is_empty() && names.iter().all(|n| prefix_of(n) == prefix) {
                return Some(format!("the file's names start with `{prefix}`: say prefix: \"{prefix}\""));
            }
        }
    }
    let index = |n: &str| n.rsplit('.').nth(1).and_then(|i| i.parse::<i64>().ok());
    let wanted_first = missing.first().and_then(|w| index(&w.name));
    let found_first = names.iter().filter_map(|n| index(n)).min();
    if let (Some(w), Some(f)) = (wanted_first, found_first) {
        if w != f {
            return Some(
                "advpipe counts every layer after `input`, `flatten` included: layer i of the net must be the i-th module \
                 of the nn.Sequential (add a flatten or an nn.Flatten() so the two line up)"
                    .into(),
            );
        }
    }
    None
}

/// advpipe's `[rows, columns]` values from a PyTorch weight stored as `[columns, rows]`
/// (flattened), i.e. its transpose.
pub fn untranspose(values: &[f32], rows: usize, columns: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for c in 0..columns {
        for r in 0..rows {
            out[r * columns + c] = values[c * rows + r];
        }
    }
    out
}

/// PyTorch's `[columns, rows]` (flattened) from advpipe's `[rows, columns]` weight.
pub fn transpose(values: &[f32], rows: usize, columns: usize) -> Vec<f32> {
    untranspose(values, columns, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(layers: Vec<crate::nn::LayerSpec>, input: Vec<usize>) -> NetSpec {
        NetSpec { input, layers }
    }

    fn found(entries: &[(&str, &[usize])]) -> BTreeMap<String, Found> {
        entries
            .iter()
            .map(|(n, s)| {
                (
                    n.to_string(),
                    Found {
                        dtype: "F32".into(),
                        shape: s.to_vec(),
                    },
                )
            })
            .collect()
    }

    fn flatten() -> crate::nn::LayerSpec {
        serde_json::from_value(serde_json::json!({"layer": "flatten"})).unwrap()
    }

    fn linear(units: usize) -> crate::nn::LayerSpec {
        serde_json::from_value(serde_json::json!({"layer": "linear", "units": units})).unwrap()
    }

    #[test]
    fn torch_names_and_shapes_follow_the_sequential() {
        let conv: crate::nn::LayerSpec =
            serde_json::from_value(serde_json::json!({"layer": "conv2d", "filters": 4, "kernel": 3, "stride": 1})).unwrap();
        let n = net(vec![conv, flatten(), linear(10)], vec![1, 6, 6]);
        let w = wanted(&n, Layout::Torch, "").unwrap();
        let names: Vec<(&str, &[usize])> = w.iter().map(|w| (w.name.as_str(), w.shape.as_slice())).collect();
        assert_eq!(
            names,
            [
                ("0.weight", &[4, 1, 3, 3][..]),
                ("0.bias", &[4][..]),
                ("2.weight", &[10, 64][..]),
                ("2.bias", &[10][..])
            ]
        );
        assert_eq!(w[0].transposed, Some((9, 4)));
        let a = wanted(&n, Layout::Advpipe, "").unwrap();
        assert_eq!((a[2].name.as_str(), a[2].shape.as_slice()), ("layers.2.weight", &[64, 10][..]));
        let rbf = net(
            vec![
                flatten(),
                serde_json::from_value(serde_json::json!({"layer": "rbf", "units": 10})).unwrap(),
            ],
            vec![1, 2, 2],
        );
        assert!(wanted(&rbf, Layout::Torch, "").unwrap_err().contains("no PyTorch counterpart"));
    }

    #[test]
    fn a_mismatch_says_what_was_expected_what_was_found_and_why() {
        let n = net(vec![flatten(), linear(10)], vec![1, 28, 28]);
        let advpipe = wanted(&n, Layout::Advpipe, "").unwrap();
        // A PyTorch state_dict loaded without the layout.
        let torch_file = found(&[("1.weight", &[10, 784]), ("1.bias", &[10])]);
        let m = mismatch(&torch_file, &advpipe, Layout::Advpipe).unwrap();
        assert!(
            m.contains("needs `layers.1.weight` [784, 10]") && m.contains("holds `1.bias` [10], `1.weight` [10, 784]"),
            "{m}"
        );
        assert!(m.contains("layout: \"torch\""), "{m}");
        // The right names, a weight transposed.
        let transposed = found(&[("layers.1.weight", &[10, 784]), ("layers.1.bias", &[10])]);
        let m = mismatch(&transposed, &advpipe, Layout::Advpipe).unwrap();
        assert!(m.contains("its transpose"), "{m}");
        // A prefix, and a net without the flatten the Sequential had.
        let torch = wanted(&n, Layout::Torch, "").unwrap();
        let prefixed = found(&[("net.1.weight", &[10, 784]), ("net.1.bias", &[10])]);
        assert!(mismatch(&prefixed, &torch, Layout::Torch).unwrap().contains("prefix: \"net.\""));
        let shifted = found(&[("0.weight", &[10, 784]), ("0.bias", &[10])]);
        assert!(mismatch(&shifted, &torch, Layout::Torch).unwrap().contains("`flatten` included"));
        assert_eq!(
            mismatch(&found(&[("1.weight", &[10, 784]), ("1.bias", &[10])]), &torch, Layout::Torch),
            None
        );
    }

    #[test]
    fn transposes_invert_each_other() {
        let values: Vec<f32> = (0..6).map(|v| v as f32).collect();
        // advpipe [2, 3] = [[0, 1, 2], [3, 4, 5]] is PyTorch [3, 2] = [[0, 3], [1, 4], [2, 5]].
        assert_eq!(transpose(&values, 2, 3), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(untranspose(&transpose(&values, 2, 3), 2, 3), values);
    }
}
