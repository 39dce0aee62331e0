//! Any bytes, read as an IDX file (plain, or as the compressed bytes of a `.gz` one), must
//! give an array or an error: never a panic, and never more memory than the limits allow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = advpipe::data::idx::parse(data);
    if let Ok(inflated) = advpipe::files::gunzip(std::path::Path::new("fuzz.gz"), data, 1 << 24) {
        let _ = advpipe::data::idx::parse(&inflated);
    }
});
