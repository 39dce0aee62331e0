//! One integration-test binary (one link instead of many): fixtures under `fixtures/`
//! are data, and the snapshots under `snapshots/` are the expected outputs.
//! Refresh snapshots after an intended change with `INSTA_UPDATE=always cargo test`.

mod support;

mod code_versions;
mod datasets;
mod diagnostics;
mod docs;
mod extension;
mod fuzz_seeds;
mod hostile;
mod imports;
mod jobs;
mod parse;
mod pytorch;
mod report;
mod resume;
mod robustness;
mod run;
mod slurm;
