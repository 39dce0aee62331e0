//! PyTorch both ways, through a real PyTorch when one is installed (`ADVPIPE_PEER_PYTHON`,
//! else `.venv-peer/bin/python`, else `python3`, with torch and safetensors): a state_dict of
//! an `nn.Sequential` loads with `layout: "torch"` and gives PyTorch's logits; `export`
//! writes logits and the weights as a state_dict that PyTorch loads strictly and scores the
//! same. Without torch the test says why it skipped (`ADVPIPE_REQUIRE_TORCH=1` makes that
//! a failure).

use crate::support::{fixture, run_text};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An interpreter that imports torch and safetensors, or why there is none.
fn python_with_torch() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("ADVPIPE_PEER_PYTHON").map(PathBuf::from),
        Some(root.join(".venv-peer/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    for python in candidates.into_iter().flatten() {
        let ok = Command::new(&python)
            .args(["-c", "import torch, safetensors, numpy"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(python);
        }
    }
    Err("no Python here imports torch, safetensors and numpy (python3 -m venv .venv-peer && .venv-peer/bin/pip install torch safetensors numpy)".into())
}

fn script(python: &Path, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(python).arg(fixture("torch/roundtrip.py")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

#[test]
fn a_pytorch_sequential_loads_scores_and_goes_back() {
    let python = match python_with_torch() {
        Ok(p) => p,
        Err(why) if std::env::var_os("ADVPIPE_REQUIRE_TORCH").is_none() => {
            eprintln!("skipped: {why}");
            return;
        }
        Err(why) => panic!("{why}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    script(&python, &["make".as_ref(), d.as_os_str()]);
    let text = format!(
        "seed 1\n\
         data d = tensors(path: \"{dir}/data.safetensors\")\n\
         net n = input([1, 28, 28]) >> conv2d(4, kernel: 3, padding: 1) >> relu >> max_pool >> flatten >> linear(10)\n\
         model m = load(\"{dir}/seq.safetensors\", n, layout: \"torch\")\n\
         export out = export(d, model: m)\n",
        dir = d.display()
    );
    let (program, outcome, _) = run_text(&text, d, &d.join("cache"));
    let results = d.join("results");
    advpipe::report::write(&results, Path::new("t.adv"), &program, &outcome, &[], 1.0).unwrap();

    // PyTorch -> advpipe: the same logits.
    let exported = std::fs::read(results.join("export-out.safetensors")).unwrap();
    let exported = safetensors::SafeTensors::deserialize(&exported).unwrap();
    let ours = f32s(exported.tensor("logits").unwrap().data());
    let theirs = std::fs::read(d.join("torch_logits.safetensors")).unwrap();
    let theirs = f32s(
        safetensors::SafeTensors::deserialize(&theirs)
            .unwrap()
            .tensor("logits")
            .unwrap()
            .data(),
    );
    assert_eq!(ours.len(), 200);
    let largest = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("PyTorch -> advpipe: largest logit difference {largest:e}");
    assert!(largest < 1e-4, "advpipe's logits differ from PyTorch's by {largest}");
    assert_eq!(exported.tensor("images").unwrap().shape(), [20, 1, 28, 28]);
    assert_eq!(exported.tensor("predictions").unwrap().shape(), [20]);

    // advpipe -> PyTorch: the exported state_dict loads strictly and scores the same.
    let back = script(
        &python,
        &[
            "check".as_ref(),
            d.as_os_str(),
            results.join("export-out.safetensors").as_os_str(),
            results.join("export-out.torch.safetensors").as_os_str(),
        ],
    );
    let largest: f32 = back.trim().parse().unwrap();
    eprintln!("advpipe -> PyTorch: largest logit difference {largest:e}");
    assert!(largest < 1e-4, "PyTorch's logits on advpipe's export differ by {largest}");
}
