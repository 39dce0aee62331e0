//! The driver's decisions against a backend whose observations are scripted: the orders in
//! which a real scheduler's reports can arrive, some of them races that real runs hit only
//! under load (the backends themselves are tested for real in tests/jobs.rs and
//! tests/slurm.rs).

use super::*;

/// Reports, per look, what each job (by name) is doing; records what the driver cancels.
struct Scripted {
    looks: Vec<Vec<(&'static str, Seen)>>,
    cancelled: Vec<String>,
}

impl Backend for Scripted {
    fn handle_word(&self) -> &'static str {
        "job"
    }
    fn slots(&self) -> Option<usize> {
        Some(2)
    }
    fn submit(&mut self, job: &Job, _after: &[String]) -> Result<String> {
        Ok(job.name.clone())
    }
    fn observe(&mut self, handles: &[String]) -> Result<Vec<Seen>> {
        let look = if self.looks.len() > 1 {
            self.looks.remove(0)
        } else {
            self.looks[0].clone()
        };
        Ok(handles
            .iter()
            .map(|h| {
                if self.cancelled.contains(h) {
                    return Seen::Failed("cancelled".into());
                }
                look.iter()
                    .find(|(name, _)| name == h)
                    .map_or(Seen::Running, |(_, seen)| seen.clone())
            })
            .collect())
    }
    fn resubmit(&mut self, _handle: &str, job: &Job) -> Result<String> {
        Ok(job.name.clone())
    }
    fn redepend(&mut self, _handle: &str, _after: &[String]) -> Result<()> {
        Ok(())
    }
    fn cancel(&mut self, handles: &[String]) {
        self.cancelled.extend(handles.iter().cloned());
    }
    fn interrupt_cancels_running(&self) -> bool {
        false
    }
    fn log_path(&self, job: &Job, _handle: &str) -> PathBuf {
        PathBuf::from(format!("{}.log", job.name))
    }
}

fn job(node: NodeId, name: &str) -> Job {
    Job {
        node,
        name: name.into(),
        kind: "fit",
        key: format!("{node:064}"),
        after: vec![],
    }
}

#[test]
fn a_failure_seen_in_the_same_look_as_another_jobs_start_does_not_cancel_it() {
    // Found in tests/jobs.rs under load: the first look saw `bad` already failed and `good`
    // running; `good` came later in the loop and was still marked unstarted, so the failure
    // cancelled (killed) a running job whose work should have been kept.
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let jobs = [job(0, "bad"), job(1, "good")];
    let mut backend = Scripted {
        looks: vec![
            vec![("bad", Seen::Failed("it exited with status 3".into()))],
            vec![("good", Seen::Running)],
        ],
        cancelled: vec![],
    };
    let opts = DriverOptions {
        poll: Duration::from_millis(1),
        max_resubmits: 0,
        progress: false,
    };
    // `good` never finishes in this script: end the run by failing it on the third look.
    backend.looks.push(vec![("good", Seen::Failed("done with the test".into()))]);
    let mut log = Vec::new();
    let result = drive(&jobs, &mut backend, &cache, &opts, &mut log);
    assert!(result.is_err());
    assert!(
        !backend.cancelled.contains(&"good".to_string()),
        "a running job was cancelled: {}",
        String::from_utf8_lossy(&log)
    );
}
