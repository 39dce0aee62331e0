//! Named arrays inside a `.npz` (numpy's `savez`, stored or compressed) or a
//! `.safetensors` file: what the `tensors(...)` source reads.
//!
//! [`peek`] reads only an array's header (its shape and element type), so the checker can
//! learn a dataset's shape before anything runs; [`read`] reads the whole array. Both go
//! through `crate::files`' bounded reads and refuse what they cannot interpret (big-endian,
//! Fortran order, object arrays) with a message naming the file and the array.

use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use std::io::Read;
use std::path::Path;

/// An element type a dataset array may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// Unsigned bytes: pixels 0..255 (scaled by 1/255) or labels.
    U8,
    /// Signed bytes.
    I8,
    /// 16-bit unsigned.
    U16,
    /// 16-bit signed.
    I16,
    /// 32-bit unsigned.
    U32,
    /// 32-bit signed.
    I32,
    /// 64-bit unsigned.
    U64,
    /// 64-bit signed.
    I64,
    /// Single-precision floats: pixels taken as they are.
    F32,
    /// Double-precision floats: pixels taken as they are (rounded to f32).
    F64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::U16 | Dtype::I16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }

    /// Whether the elements are integers (labels must be).
    pub fn is_integer(self) -> bool {
        !matches!(self, Dtype::F32 | Dtype::F64)
    }

    /// numpy's little-endian type string without the byte order, e.g. `u1`, `f4`.
    fn from_numpy(code: &str) -> Option<Dtype> {
        Some(match code {
            "u1" => Dtype::U8,
            "i1" => Dtype::I8,
            "u2" => Dtype::U16,
            "i2" => Dtype::I16,
            "u4" => Dtype::U32,
            "i4" => Dtype::I32,
            "u8" => Dtype::U64,
            "i8" => Dtype::I64,
            "f4" => Dtype::F32,
            "f8" => Dtype::F64,
            _ => return None,
        })
    }

    fn from_safetensors(code: &str) -> Option<Dtype> {
        Some(match code {
            "U8" => Dtype::U8,
            "I8" => Dtype::I8,
            "U16" => Dtype::U16,
            "I16" => Dtype::I16,
            "U32" => Dtype::U32,
            "I32" => Dtype::I32,
            "U64" => Dtype::U64,
            "I64" => Dtype::I64,
            "F32" => Dtype::F32,
            "F64" => Dtype::F64,
            _ => return None,
        })
    }
}

/// An array's shape and element type.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Dimensions; the first counts the examples.
    pub dims: Vec<usize>,
    /// Element type.
    pub dtype: Dtype,
}

impl Header {
    /// Elements in the array, or `None` if the product overflows.
    pub fn elements(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// Bytes of data, or `None` if the size overflows.
    pub fn byte_len(&self) -> Option<usize> {
        self.elements()?.checked_mul(self.dtype.size())
    }
}

/// A whole array: its header and its little-endian element bytes, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Shape and type.
    pub header: Header,
    /// `elements * dtype.size()` bytes.
    pub bytes: Vec<u8>,
}

impl Array {
    /// Element `i` as an f64 (exact for every integer a label can be).
    pub fn get(&self, i: usize) -> f64 {
        let size = self.header.dtype.size();
        let b = &self.bytes[i * size..(i + 1) * size];
        match self.header.dtype {
            Dtype::U8 => b[0] as f64,
            Dtype::I8 => b[0] as i8 as f64,
            Dtype::U16 => u16::from_le_bytes([b[0], b[1]]) as f64,
            Dtype::I16 => i16::from_le_bytes([b[0], b[1]]) as f64,
            Dtype::U32 => u32::from_le_bytes(b.try_into().expect("4 bytes")) as f64,
            Dtype::I32 => i32::from_le_bytes(b.try_into().expect("4 bytes")) as f64,
            Dtype::U64 => u64::from_le_bytes(b.try_into().expect("8 bytes")) as f64,
            Dtype::I64 => i64::from_le_bytes(b.try_into().expect("8 bytes")) as f64,
            Dtype::F32 => f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64,
            Dtype::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / self.header.dtype.size()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The kind of container a path names, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// numpy's `.npz` (a zip of `.npy` files).
    Npz,
    /// Hugging Face's `.safetensors`.
    Safetensors,
}

impl Container {
    /// The container `path` names, or a message saying which are read.
    pub fn of(path: &Path) -> Result<Container, String> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("npz") => Ok(Container::Npz),
            Some("safetensors") => Ok(Container::Safetensors),
            _ => Err(format!(
                "`{}` is neither a .npz nor a .safetensors file (save arrays with numpy.savez or safetensors' save_file)",
                path.display()
            )),
        }
    }
}

/// The header of array `name` in the file at `path`, reading as little of it as it can.
pub fn peek(path: &Path, name: &str) -> Result<Header> {
    let located = |m: String| Error::msg(format!("{}: array `{name}`: {m}", path.display()));
    match Container::of(path).map_err(Error::msg)? {
        Container::Safetensors => {
            let (entries, _) = safetensors_header(path)?;
            entry_of(&entries, name, path).map(|(h, _)| h)
        }
        Container::Npz => {
            let mut archive = open_npz(path)?;
            let member = npz_member(&mut archive, name, path)?;
            let mut entry = archive.by_name(&member).map_err(|e| located(e.to_string()))?;
            let (header, _) = npy_header(&mut entry).map_err(located)?;
            Ok(header)
        }
    }
}

/// The whole array `name` in the file at `path`.
pub fn read(path: &Path, name: &str) -> Result<Array> {
    let located = |m: String| Error::msg(format!("{}: array `{name}`: {m}", path.display()));
    match Container::of(path).map_err(Error::msg)? {
        Container::Safetensors => {
            let (entries, start) = safetensors_header(path)?;
            let (header, (begin, end)) = entry_of(&entries, name, path)?;
            let expected = header
                .byte_len()
                .ok_or_else(|| located("its shape multiplies past any file size".into()))?;
            if end < begin || end - begin != expected {
                return Err(located(format!(
                    "its offsets cover {} bytes, its shape {:?} needs {expected}",
                    end.saturating_sub(begin),
                    header.dims
                )));
            }
            // Only this array's bytes: a file holds other arrays (the labels beside the images).
            let mut file = files::open(path, FileKind::Tensors)?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start((start + begin) as u64)).map_err(|e| Error::io(path, e))?;
            let bytes = read_exactly(&mut file, expected).map_err(located)?;
            Ok(Array { header, bytes })
        }
        Container::Npz => {
            let mut archive = open_npz(path)?;
            let member = npz_member(&mut archive, name, path)?;
            let mut entry = archive.by_name(&member).map_err(|e| located(e.to_string()))?;
            let (header, _) = npy_header(&mut entry).map_err(located)?;
            let expected = header
                .byte_len()
                .ok_or_else(|| located("its shape multiplies past any file size".into()))?;
            let bytes = read_exactly(&mut entry, expected).map_err(located)?;
            Ok(Array { header, bytes })
        }
    }
}

/// The next `expected` bytes of `stream`: no more is read, and fewer is an error.
fn read_exactly(stream: &mut impl Read, expected: usize) -> Result<Vec<u8>, String> {
    if expected as u64 > FileKind::Tensors.limit() {
        return Err(format!("{expected} bytes is more than advpipe reads as one array"));
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(expected)
        .map_err(|_| "not enough memory to read it".to_string())?;
    stream.take(expected as u64).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() != expected {
        return Err(format!(
            "its header promises {expected} bytes of data, the file has {}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

type Entries = serde_json::Map<String, serde_json::Value>;

/// Every tensor a safetensors file's header lists: name, element type as safetensors
/// writes it (`F32`) and shape, reading only the header.
pub fn safetensors_tensors(path: &Path) -> Result<Vec<(String, String, Vec<usize>)>> {
    let (entries, _) = safetensors_header(path)?;
    Ok(entries
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, entry)| {
            let dtype = entry["dtype"].as_str().unwrap_or("?").to_string();
            let shape = entry["shape"]
                .as_array()
                .map(|d| d.iter().map(|v| v.as_u64().unwrap_or(0) as usize).collect())
                .unwrap_or_default();
            (name.clone(), dtype, shape)
        })
        .collect())
}

/// The JSON header of a safetensors file and where its data starts.
fn safetensors_header(path: &Path) -> Result<(Entries, usize)> {
    let bad = |m: &str| Error::msg(format!("{}: not a valid safetensors file: {m}", path.display()));
    let mut file = files::open(path, FileKind::Tensors)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| bad("shorter than its 8-byte header length"))?;
    let len = u64::from_le_bytes(len);
    // The format caps its header at 100 MB.
    if len > 100_000_000 {
        return Err(bad("header length over 100 MB"));
    }
    let mut text = Vec::new();
    file.take(len).read_to_end(&mut text).map_err(|e| Error::io(path, e))?;
    if text.len() as u64 != len {
        return Err(bad("the file ends inside its header"));
    }
    if text.first() != Some(&b'{') {
        return Err(bad("the header does not start with `{`"));
    }
    let entries: Entries = serde_json::from_slice(&text).map_err(|e| bad(&format!("header is not JSON: {e}")))?;
    Ok((entries, 8 + len as usize))
}

fn entry_of(entries: &Entries, name: &str, path: &Path) -> Result<(Header, (usize, usize))> {
    let Some(entry) = entries.get(name) else {
        let mut found: Vec<&str> = entries.keys().map(String::as_str).filter(|k| *k != "__metadata__").collect();
        found.sort_unstable();
        return Err(Error::msg(format!(
            "{}: no array named `{name}`; the file holds {}",
            path.display(),
            list(&found)
        )));
    };
    let bad = |m: String| Error::msg(format!("{}: array `{name}`: {m}", path.display()));
    let code = entry["dtype"].as_str().unwrap_or("?");
    let dtype = Dtype::from_safetensors(code).ok_or_else(|| bad(format!("element type {code} is not one advpipe reads")))?;
    let dims = entry["shape"]
        .as_array()
        .and_then(|d| d.iter().map(|v| v.as_u64().map(|n| n as usize)).collect::<Option<Vec<_>>>())
        .ok_or_else(|| bad("no valid shape".into()))?;
    let offsets = entry["data_offsets"]
        .as_array()
        .and_then(|o| Some((o.first()?.as_u64()? as usize, o.get(1)?.as_u64()? as usize)))
        .ok_or_else(|| bad("no valid data_offsets".into()))?;
    Ok((Header { dims, dtype }, offsets))
}

fn open_npz(path: &Path) -> Result<zip::ZipArchive<std::fs::File>> {
    let file = files::open(path, FileKind::Tensors)?;
    zip::ZipArchive::new(file).map_err(|e| Error::msg(format!("{}: not a valid .npz (zip) file: {e}", path.display())))
}

/// The member holding array `name` (`name.npy`, as numpy.savez writes it).
fn npz_member(archive: &mut zip::ZipArchive<std::fs::File>, name: &str, path: &Path) -> Result<String> {
    let wanted = format!("{name}.npy");
    if archive.file_names().any(|n| n == wanted) {
        return Ok(wanted);
    }
    let mut found: Vec<&str> = archive.file_names().map(|n| n.strip_suffix(".npy").unwrap_or(n)).collect();
    found.sort_unstable();
    Err(Error::msg(format!(
        "{}: no array named `{name}`; the file holds {}",
        path.display(),
        list(&found)
    )))
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "no arrays".into()
    } else {
        names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
    }
}

/// The header of a `.npy` stream and its length in bytes; the stream is left at the data.
pub fn npy_header(stream: &mut dyn Read) -> Result<(Header, usize), String> {
    let mut start = [0u8; 8];
    stream
        .read_exact(&mut start)
        .map_err(|_| "shorter than a .npy header".to_string())?;
    if &start[..6] != b"\x93NUMPY" {
        return Err("not a .npy array (bad magic string)".into());
    }
    let (len, prefix) = match start[6] {
        1 => {
            let mut l = [0u8; 2];
            stream.read_exact(&mut l).map_err(|_| "truncated .npy header".to_string())?;
            (u16::from_le_bytes(l) as usize, 10)
        }
        2 | 3 => {
            let mut l = [0u8; 4];
            stream.read_exact(&mut l).map_err(|_| "truncated .npy header".to_string())?;
            (u32::from_le_bytes(l) as usize, 12)
        }
        v => return Err(format!(".npy format version {v} is not one advpipe reads")),
    };
    if len > 1 << 20 {
        return Err(".npy header longer than 1 MiB".into());
    }
    let mut text = vec![0u8; len];
    stream.read_exact(&mut text).map_err(|_| "truncated .npy header".to_string())?;
    let text = String::from_utf8_lossy(&text);
    Ok((parse_npy_dict(&text)?, prefix + len))
}

/// Parses numpy's header dict, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }`.
fn parse_npy_dict(text: &str) -> Result<Header, String> {
    let value_after = |key: &str| -> Result<&str, String> {
        let at = text
            .find(&format!("'{key}'"))
            .ok_or_else(|| format!("the .npy header has no '{key}'"))?;
        let rest = &text[at + key.len() + 2..];
        let colon = rest.find(':').ok_or_else(|| format!("the .npy header's '{key}' has no value"))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr = value_after("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| "the .npy header's 'descr' is not a simple type string (structured arrays are not read)".to_string())?;
    let (order, code) = descr.split_at(descr.len().min(1));
    if order == ">" && code != "u1" && code != "i1" {
        return Err(format!(
            "element type {descr} is big-endian; save it little-endian (arr.astype('<{code}'))"
        ));
    }
    let code = if matches!(order, "<" | "|" | "=" | ">") { code } else { descr };
    let dtype = Dtype::from_numpy(code).ok_or_else(|| format!("element type {descr} is not one advpipe reads"))?;
    if value_after("fortran_order")?.starts_with("True") {
        return Err("the array is in Fortran order; save np.ascontiguousarray(arr)".into());
    }
    let shape = value_after("shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| "the .npy header's 'shape' is not a tuple".to_string())?;
    let dims = inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("shape entry `{d}` is not a size"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Header { dims, dtype })
}

/// Writes arrays as a stored `.npz`, the way `numpy.savez` does (tests make data with it).
pub fn write_npz(path: &Path, arrays: &[(&str, &Header, &[u8])]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, header, bytes) in arrays {
        zip.start_file(format!("{name}.npy"), options)
            .map_err(|e| Error::msg(e.to_string()))?;
        std::io::Write::write_all(&mut zip, &npy_bytes(header, bytes)).map_err(|e| Error::io(path, e))?;
    }
    zip.finish().map_err(|e| Error::msg(e.to_string()))?;
    Ok(())
}

/// One `.npy` file's bytes (format 1.0).
pub fn npy_bytes(header: &Header, bytes: &[u8]) -> Vec<u8> {
    let code = match header.dtype {
        Dtype::U8 => "|u1",
        Dtype::I8 => "|i1",
        Dtype::U16 => "<u2",
        Dtype::I16 => "<i2",
        Dtype::U32 => "<u4",
        Dtype::I32 => "<i4",
        Dtype::U64 => "<u8",
        Dtype::I64 => "<i8",
        Dtype::F32 => "<f4",
        Dtype::F64 => "<f8",
    };
    let shape = match header.dims.as_slice() {
        [one] => format!("({one},)"),
        dims => format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut dict = format!("{{'descr': '{code}', 'fortran_order': False, 'shape': {shape}, }}");
    // numpy pads the header with spaces to a multiple of 64 bytes, ending in a newline.
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(dims: &[usize], dtype: Dtype) -> Header {
        Header {
            dims: dims.to_vec(),
            dtype,
        }
    }

    #[test]
    fn numpy_header_dicts_parse() {
        let h = parse_npy_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (50000, 32, 32, 3), }").unwrap();
        assert_eq!(h, header(&[50000, 32, 32, 3], Dtype::F32));
        let h = parse_npy_dict("{'descr': '|u1', 'fortran_order': False, 'shape': (7,), }").unwrap();
        assert_eq!(h, header(&[7], Dtype::U8));
        assert!(parse_npy_dict("{'descr': '>f4', 'fortran_order': False, 'shape': (7,), }")
            .unwrap_err()
            .contains("big-endian"));
        assert!(parse_npy_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (7, 2), }")
            .unwrap_err()
            .contains("Fortran"));
        assert!(parse_npy_dict("{'descr': '|O', 'fortran_order': False, 'shape': (7,), }")
            .unwrap_err()
            .contains("not one advpipe reads"));
        assert!(parse_npy_dict("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (7,), }").is_err());
    }

    #[test]
    fn npz_round_trip_and_missing_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.npz");
        let x = header(&[2, 3], Dtype::F32);
        let xs: Vec<u8> = [0.0f32, 0.5, 1.0, 0.25, 0.75, 0.125].iter().flat_map(|v| v.to_le_bytes()).collect();
        let y = header(&[2], Dtype::I64);
        let ys: Vec<u8> = [3i64, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
        write_npz(&path, &[("x", &x, &xs), ("y", &y, &ys)]).unwrap();
        assert_eq!(peek(&path, "x").unwrap(), x);
        let labels = read(&path, "y").unwrap();
        assert_eq!((labels.get(0), labels.get(1)), (3.0, 1.0));
        assert_eq!(read(&path, "x").unwrap().get(4), 0.75);
        let err = peek(&path, "images").unwrap_err().to_string();
        assert!(err.contains("no array named `images`") && err.contains("`x`, `y`"), "{err}");
    }

    #[test]
    fn safetensors_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.safetensors");
        let xs: Vec<u8> = vec![0, 255, 128, 7];
        let ys: Vec<u8> = [1i32, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let views = vec![
            (
                "images",
                safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![2, 2], &xs).unwrap(),
            ),
            (
                "labels",
                safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![2], &ys).unwrap(),
            ),
        ];
        std::fs::write(&path, safetensors::tensor::serialize(views, &None).unwrap()).unwrap();
        assert_eq!(peek(&path, "images").unwrap(), header(&[2, 2], Dtype::U8));
        let images = read(&path, "images").unwrap();
        assert_eq!(images.bytes, xs);
        assert_eq!(read(&path, "labels").unwrap().get(0), 1.0);
        assert!(peek(&path, "x").unwrap_err().to_string().contains("`images`, `labels`"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            ("a.npz", b"not a zip".to_vec()),
            ("b.safetensors", vec![255; 8]),
            ("c.safetensors", vec![2, 0, 0, 0, 0, 0, 0, 0, b'{']),
            ("d.txt", vec![]),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert!(peek(&path, "x").is_err(), "{name}");
            assert!(read(&path, "x").is_err(), "{name}");
        }
    }

    proptest::proptest! {
        #[test]
        fn npy_headers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = npy_header(&mut &with_magic[..]);
            let _ = npy_header(&mut &bytes[..]);
        }
    }
}
