//! A labelled image set from files: what `idx(...)` and `tensors(...)` share with `mnist`.
//!
//! A source stores an image array (first dimension counts examples) and a label array.
//! [`survey`] reads the image header and the labels (never the pixels), so the checker knows
//! the example shape, the count and the classes before anything runs; [`assemble`] picks the
//! examples a call asks for (`skip`, `take`, a class filter) and lays pixels out as
//! `[channels, height, width]`, scaled to [0, 1] for bytes and taken as they are for floats.

use super::arrays::{Array, Dtype, Header};
use super::Dataset;
use crate::error::{Error, Result};

/// How a four-dimensional image array orders its last three dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[n, channels, height, width]` (PyTorch).
    Nchw,
    /// `[n, height, width, channels]` (numpy images, TensorFlow).
    Nhwc,
}

impl Layout {
    /// The layout a `layout:` argument names.
    pub fn parse(text: Option<&str>) -> Option<Layout> {
        match text? {
            "nchw" => Some(Layout::Nchw),
            "nhwc" => Some(Layout::Nhwc),
            _ => None,
        }
    }
}

/// The shape of one example as advpipe computes on it (`[channels, height, width]`, or
/// `[features]` for flat vectors), from the stored dimensions. The error names the argument
/// that would fix it.
pub fn example_shape(dims: &[usize], layout: Option<Layout>) -> Result<Vec<usize>, (&'static str, String)> {
    match (dims, layout) {
        ([_, d], _) => Ok(vec![*d]),
        ([_, h, w], _) => Ok(vec![1, *h, *w]),
        ([_, c, h, w], Some(Layout::Nchw)) => Ok(vec![*c, *h, *w]),
        ([_, h, w, c], Some(Layout::Nhwc)) => Ok(vec![*c, *h, *w]),
        ([_, a, b, c], None) => Err((
            "layout",
            format!(
                "the images are [n, {a}, {b}, {c}]: say which order that is, layout: \"nchw\" \
                 (channels first, as PyTorch) or \"nhwc\" (channels last, as numpy images)"
            ),
        )),
        _ => Err((
            "images",
            format!("images must be [n, features], [n, height, width] or [n, channels, height, width]; these are {dims:?}"),
        )),
    }
}

/// What the checker learns from a source's headers and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Survey {
    /// One example's shape.
    pub shape: Vec<usize>,
    /// Stored examples.
    pub count: usize,
    /// One more than the largest stored label (0 with no examples).
    pub labels_up_to: usize,
}

/// Surveys an image header and the label array. Errors name the argument to blame.
pub fn survey(images: &Header, labels: &Array, layout: Option<Layout>) -> Result<Survey, (&'static str, String)> {
    let shape = example_shape(&images.dims, layout)?;
    if !matches!(images.dtype, Dtype::U8 | Dtype::F32 | Dtype::F64) {
        return Err((
            "images",
            format!(
                "images of element type {:?} are not read: store bytes (0-255, scaled to [0, 1]) or floats (taken as they are)",
                images.dtype
            ),
        ));
    }
    let count = images.dims[0];
    if labels.header.dims != [count] {
        return Err((
            "labels",
            format!("{count} images but labels of shape {:?} (expected [{count}])", labels.header.dims),
        ));
    }
    if !labels.header.dtype.is_integer() {
        return Err(("labels", "labels must be integers (class indices from 0)".into()));
    }
    let mut up_to = 0usize;
    for i in 0..labels.len() {
        let l = labels.get(i);
        if !(0.0..256.0).contains(&l) {
            return Err(("labels", format!("label {l} (example {i}) is not a class index from 0 to 255")));
        }
        up_to = up_to.max(l as usize + 1);
    }
    Ok(Survey {
        shape,
        count,
        labels_up_to: up_to,
    })
}

/// Which examples a call takes.
#[derive(Clone, Debug, Default)]
pub struct Pick<'a> {
    /// Examples dropped from the front (after the class filter).
    pub skip: usize,
    /// Examples kept after `skip` (default: the rest).
    pub take: Option<usize>,
    /// Keep only these classes, relabelled 0, 1, ... in this order.
    pub classes: Option<&'a [usize]>,
}

/// The stored indices of the examples `pick` keeps, with their new labels. `call` describes
/// the call for the error when the range runs past the end.
pub fn pick(labels: impl Fn(usize) -> usize, count: usize, pick: &Pick<'_>, call: &dyn Fn() -> String) -> Result<(Vec<usize>, Vec<u8>)> {
    // With a class filter, the split is the examples of those classes, relabelled 0, 1, ...
    // in the order the filter lists them; skip and take count within it.
    let kept: Vec<usize> = match pick.classes {
        Some(classes) => (0..count).filter(|&i| classes.contains(&labels(i))).collect(),
        None => (0..count).collect(),
    };
    let n = kept.len();
    let end = pick.take.map_or(n, |t| pick.skip.saturating_add(t));
    if pick.skip >= n || end > n {
        return Err(Error::msg(format!(
            "{} asks for examples {}..{end} but there are {n}",
            call(),
            pick.skip
        )));
    }
    let chosen = kept[pick.skip..end].to_vec();
    let relabelled = chosen
        .iter()
        .map(|&i| {
            let l = labels(i);
            pick.classes.map_or(l, |c| c.iter().position(|&k| k == l).expect("kept")) as u8
        })
        .collect();
    Ok((chosen, relabelled))
}

/// The pixels of the `chosen` examples, `[channels, height, width]` each. `value(e)` is
/// stored element `e` as a pixel; `dims` are the stored dimensions.
pub fn pixels(chosen: &[usize], dims: &[usize], layout: Option<Layout>, value: impl Fn(usize) -> f32) -> Result<Vec<f32>> {
    let width: usize = dims[1..].iter().product();
    let mut out = super::try_buffer(chosen.len() * width)?;
    match (dims, layout) {
        ([_, h, w, c], Some(Layout::Nhwc)) => {
            for &i in chosen {
                let base = i * width;
                for ch in 0..*c {
                    out.extend((0..h * w).map(|p| value(base + p * c + ch)));
                }
            }
        }
        _ => {
            for &i in chosen {
                out.extend((i * width..(i + 1) * width).map(&value));
            }
        }
    }
    Ok(out)
}

/// A dataset from a whole image array and label array, as `pick` and `layout` say, with
/// `named` classes when the call names them (else one more than the largest label).
pub fn assemble(
    images: &Array,
    labels: &Array,
    layout: Option<Layout>,
    picked: &Pick<'_>,
    named: Option<usize>,
    call: &dyn Fn() -> String,
) -> Result<Dataset> {
    let survey = survey(&images.header, labels, layout).map_err(|(_, m)| Error::msg(m))?;
    if let Some(n) = named.filter(|&n| n < survey.labels_up_to) {
        return Err(Error::msg(format!(
            "{n} class names, but the labels go up to {}",
            survey.labels_up_to - 1
        )));
    }
    let classes = picked.classes.map_or(named.unwrap_or(survey.labels_up_to), <[usize]>::len);
    let expected = images.header.elements().unwrap_or(usize::MAX);
    if images.len() != expected {
        return Err(Error::msg(format!(
            "the image array holds {} values, its shape needs {expected}",
            images.len()
        )));
    }
    let (chosen, labels) = pick(|i| labels.get(i) as usize, survey.count, picked, call)?;
    let bytes = &images.bytes;
    let images = match images.header.dtype {
        Dtype::U8 => pixels(&chosen, &images.header.dims, layout, |e| bytes[e] as f32 / 255.0)?,
        Dtype::F32 => pixels(&chosen, &images.header.dims, layout, |e| {
            f32::from_le_bytes(bytes[4 * e..4 * e + 4].try_into().expect("4 bytes"))
        })?,
        _ => pixels(&chosen, &images.header.dims, layout, |e| {
            f64::from_le_bytes(bytes[8 * e..8 * e + 8].try_into().expect("8 bytes")) as f32
        })?,
    };
    if let Some(i) = images.iter().position(|v| !v.is_finite()) {
        return Err(Error::msg(format!("pixel {i} of the examples taken is not a finite number")));
    }
    Ok(Dataset {
        images,
        labels,
        shape: survey.shape,
        classes,
    })
}

/// The class names a data node's parameters give, after its class filter: `class_names`
/// indexed by `classes` when both are given.
pub fn class_names(params: &serde_json::Value) -> Option<Vec<String>> {
    let names: Vec<String> = serde_json::from_value(params.get("class_names")?.clone()).ok()?;
    match params
        .get("classes")
        .and_then(|c| serde_json::from_value::<Vec<usize>>(c.clone()).ok())
    {
        Some(kept) => kept.iter().map(|&k| names.get(k).cloned()).collect(),
        None => Some(names),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(dims: &[usize], dtype: Dtype, bytes: Vec<u8>) -> Array {
        Array {
            header: Header {
                dims: dims.to_vec(),
                dtype,
            },
            bytes,
        }
    }

    #[test]
    fn channels_last_becomes_channels_first() {
        // Two 1x2 RGB images: pixel p, channel c holds 10 * p + c (+ 100 for the second).
        let bytes: Vec<u8> = (0..2u8)
            .flat_map(|i| (0..2u8).flat_map(move |p| (0..3u8).map(move |c| 100 * i + 10 * p + c)))
            .collect();
        let images = array(&[2, 1, 2, 3], Dtype::U8, bytes);
        let labels = array(&[2], Dtype::U8, vec![0, 1]);
        let d = assemble(&images, &labels, Some(Layout::Nhwc), &Pick::default(), None, &|| "t".into()).unwrap();
        assert_eq!(d.shape, vec![3, 1, 2]);
        let got: Vec<u8> = d.images.iter().map(|v| (v * 255.0).round() as u8).collect();
        assert_eq!(got, vec![0, 10, 1, 11, 2, 12, 100, 110, 101, 111, 102, 112]);
    }

    #[test]
    fn channels_first_is_taken_as_stored() {
        let floats = [0.1f32, 0.2, 0.3, 0.4];
        let images = array(&[1, 2, 1, 2], Dtype::F32, floats.iter().flat_map(|v| v.to_le_bytes()).collect());
        let labels = array(&[1], Dtype::I64, 4i64.to_le_bytes().to_vec());
        let d = assemble(&images, &labels, Some(Layout::Nchw), &Pick::default(), Some(5), &|| "t".into()).unwrap();
        assert_eq!(
            (d.images, d.shape, d.labels, d.classes),
            (floats.to_vec(), vec![2, 1, 2], vec![4], 5)
        );
        let err = assemble(&images, &labels, Some(Layout::Nchw), &Pick::default(), Some(3), &|| "t".into()).unwrap_err();
        assert!(err.to_string().contains("3 class names, but the labels go up to 4"), "{err}");
    }

    #[test]
    fn four_dimensions_need_a_layout_and_labels_must_fit() {
        let images = Header {
            dims: vec![3, 32, 32, 3],
            dtype: Dtype::U8,
        };
        let labels = array(&[3], Dtype::U8, vec![0, 9, 2]);
        assert_eq!(survey(&images, &labels, None).unwrap_err().0, "layout");
        let s = survey(&images, &labels, Some(Layout::Nhwc)).unwrap();
        assert_eq!((s.shape, s.count, s.labels_up_to), (vec![3, 32, 32], 3, 10));
        let short = array(&[2], Dtype::U8, vec![0, 1]);
        assert_eq!(survey(&images, &short, Some(Layout::Nhwc)).unwrap_err().0, "labels");
        let negative = array(&[3], Dtype::I8, vec![0, 255, 1]);
        assert!(survey(&images, &negative, Some(Layout::Nhwc)).unwrap_err().1.contains("label -1"));
        let floats = array(&[3], Dtype::F32, [0f32, 1.0, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect());
        assert!(survey(&images, &floats, Some(Layout::Nhwc)).unwrap_err().1.contains("integers"));
    }

    #[test]
    fn class_filter_relabels_in_its_order_and_skip_counts_within_it() {
        let labels = [3usize, 7, 1, 7, 3, 3];
        let p = Pick {
            skip: 1,
            take: Some(3),
            classes: Some(&[7, 3]),
        };
        let (chosen, relabelled) = pick(|i| labels[i], 6, &p, &|| "t".into()).unwrap();
        assert_eq!((chosen, relabelled), (vec![1, 3, 4], vec![0, 0, 1]));
        let all = Pick {
            skip: 4,
            take: Some(2),
            classes: None,
        };
        assert_eq!(pick(|i| labels[i], 6, &all, &|| "call".into()).unwrap().0, vec![4, 5]);
        let too_many = Pick {
            skip: 5,
            take: Some(2),
            classes: None,
        };
        let err = pick(|i| labels[i], 6, &too_many, &|| "call".into()).unwrap_err().to_string();
        assert!(err.contains("call asks for examples 5..7 but there are 6"), "{err}");
    }

    #[test]
    fn class_names_follow_the_filter() {
        let p = serde_json::json!({"class_names": ["a", "b", "c"], "classes": [2, 0]});
        assert_eq!(class_names(&p), Some(vec!["c".to_string(), "a".into()]));
        assert_eq!(class_names(&serde_json::json!({"split": "test"})), None);
    }
}
