//! The IDX file format of MNIST and Fashion-MNIST, plain or gzipped.
//!
//! Big-endian header: two zero bytes, a type byte (0x08 = unsigned byte), the number of
//! dimensions, then one u32 per dimension, then the data.

use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use std::path::Path;

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// Dimensions, first is the number of items.
    pub dims: Vec<usize>,
    /// The bytes, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file; a name ending in `.gz` is decompressed. Plain or inflated, no more
/// than [`FileKind::Idx`]'s limit is read.
pub fn read(path: &Path) -> Result<IdxArray> {
    let raw = files::read(path, FileKind::Idx)?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        files::gunzip(path, &raw, FileKind::Idx.limit())?
    } else {
        raw
    };
    parse(&bytes).map_err(|m| Error::msg(format!("{}: not a valid IDX file: {m}", path.display())))
}

/// The dimensions in an IDX file's header, reading (and for `.gz`, inflating) only the header.
pub fn peek(path: &Path) -> Result<Vec<usize>> {
    use std::io::Read;
    let file = files::open(path, FileKind::Idx)?;
    let mut stream: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let bad = |m: &str| Error::msg(format!("{}: not a valid IDX file: {m}", path.display()));
    let mut start = [0u8; 4];
    stream.read_exact(&mut start).map_err(|_| bad("shorter than its header"))?;
    if start[0] != 0 || start[1] != 0 {
        return Err(bad("bad magic number"));
    }
    if start[2] != 0x08 {
        return Err(bad(&format!("element type 0x{:02x} is not unsigned byte (0x08)", start[2])));
    }
    let mut dims = vec![0u8; 4 * start[3] as usize];
    stream.read_exact(&mut dims).map_err(|_| bad("truncated header"))?;
    Ok(dims
        .chunks(4)
        .map(|d| u32::from_be_bytes(d.try_into().expect("4 bytes")) as usize)
        .collect())
}

/// An IDX array as a dataset array of bytes.
pub fn to_array(idx: IdxArray) -> super::arrays::Array {
    super::arrays::Array {
        header: super::arrays::Header {
            dims: idx.dims,
            dtype: super::arrays::Dtype::U8,
        },
        bytes: idx.data,
    }
}

/// Parses IDX bytes.
pub fn parse(bytes: &[u8]) -> Result<IdxArray, String> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err("bad magic number".into());
    }
    if bytes[2] != 0x08 {
        return Err(format!("element type 0x{:02x} is not unsigned byte (0x08)", bytes[2]));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err("truncated header".into());
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("header dimensions {dims:?} multiply past any file size"))?;
    let data = &bytes[header..];
    if data.len() != expected {
        return Err(format!("header promises {expected} bytes of data, file has {}", data.len()));
    }
    Ok(IdxArray { dims, data: data.to_vec() })
}

/// Encodes an unsigned-byte IDX array (tests use it to write small datasets).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = encode(&[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let plain = dir.path().join("x-idx3-ubyte");
        std::fs::write(&plain, &bytes).unwrap();
        let gz = dir.path().join("x-idx3-ubyte.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &bytes).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(read(&plain).unwrap(), read(&gz).unwrap());
        assert_eq!(read(&plain).unwrap().dims, vec![2, 2, 2]);
        assert_eq!(peek(&plain).unwrap(), vec![2, 2, 2]);
        assert_eq!(peek(&gz).unwrap(), vec![2, 2, 2]);
    }

    #[test]
    fn rejects_truncated_files() {
        let mut bytes = encode(&[3, 2], &[0; 6]);
        bytes.pop();
        assert!(parse(&bytes).unwrap_err().contains("promises 6"));
    }

    #[test]
    fn dimensions_that_overflow_are_an_error() {
        // 2^32-1 cubed wraps a 64-bit product (to a small number, once to 0).
        let mut bytes = vec![0, 0, 0x08, 3];
        for _ in 0..3 {
            bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        }
        assert!(parse(&bytes).unwrap_err().contains("multiply past"));
        let mut zero_wrap = vec![0, 0, 0x08, 4];
        for _ in 0..4 {
            zero_wrap.extend_from_slice(&65536u32.to_be_bytes());
        }
        assert!(parse(&zero_wrap).unwrap_err().contains("multiply past"));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn encode_then_parse_is_identity(dims in proptest::collection::vec(0usize..5, 0..4)) {
            let n = dims.iter().product::<usize>();
            let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
            proptest::prop_assert_eq!(parse(&encode(&dims, &data)).unwrap(), IdxArray { dims, data });
        }
    }
}
