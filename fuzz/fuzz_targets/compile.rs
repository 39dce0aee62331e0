//! Any bytes, read as a pipeline file, must parse and check without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let source = advpipe::diagnostics::Source::new("fuzz.adv", text.as_ref());
    let _ = advpipe::compile(&source);
});
