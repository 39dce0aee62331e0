//! Any bytes, read as a checkpoint (`load(...)`), must give a model or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dev = advpipe::nn::model::Dev::default();
    let _ = advpipe::nn::Model::from_safetensors(&dev, data);
});
