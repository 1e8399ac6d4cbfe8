//! The job model every part shares: what is stored in Redis as a job's data
//! ([`JobSpec`]), the limits it runs under ([`Limits`]), and what a run
//! produced ([`RunResult`]) with its verdict ([`RunStatus`]).
//!
//! These types are the wire format between API and worker processes (through
//! Redis), so their serialized names are stable and camelCase, as the proof
//! of concept's clients (and a Node BullMQ producer) expect.

use serde::{Deserialize, Serialize};

/// The BullMQ job name given to every job (Bull Board shows it).
pub const JOB_NAME: &str = "run";

/// A job as stored in Redis: everything a worker needs to run it.
///
/// A Node BullMQ producer may enqueue `{"language": "...", "code": "..."}`
/// directly; every other field has a default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// Language id or alias, as submitted (resolved by the worker's table).
    pub language: String,
    /// The program's source.
    pub code: String,
    /// Bytes given to the program on standard input.
    #[serde(default)]
    pub stdin: String,
    /// Limits chosen when the job was accepted; a worker clamps them to its
    /// own configured maxima, so a producer cannot raise them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// When the API accepted the job (milliseconds since the Unix epoch).
    #[serde(default)]
    pub submitted_at_ms: u64,
}

/// Resource limits of one run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Wall-clock limit in milliseconds, counted from container start.
    pub wall_time_ms: u64,
    /// Memory limit in bytes (no swap).
    pub memory_bytes: u64,
    /// Maximum processes and threads.
    pub pids: i64,
    /// CPUs (a CFS quota; fractions allowed).
    pub cpus: f64,
    /// Bytes kept of stdout, and separately of stderr.
    pub output_bytes: u64,
    /// Size of the writable tmpfs, in bytes.
    pub tmpfs_bytes: u64,
}

impl Limits {
    /// The stricter of `self` and `max`, field by field.
    pub fn clamp_to(self, max: &Limits) -> Limits {
        Limits {
            wall_time_ms: self.wall_time_ms.min(max.wall_time_ms),
            memory_bytes: self.memory_bytes.min(max.memory_bytes),
            pids: self.pids.min(max.pids),
            cpus: self.cpus.min(max.cpus),
            output_bytes: self.output_bytes.min(max.output_bytes),
            tmpfs_bytes: self.tmpfs_bytes.min(max.tmpfs_bytes),
        }
    }
}

impl From<&crate::config::Config> for Limits {
    fn from(c: &crate::config::Config) -> Self {
        Limits {
            wall_time_ms: c.wall_time_limit_ms,
            memory_bytes: c.memory_limit_mb * 1024 * 1024,
            pids: c.pids_limit,
            cpus: c.cpus,
            output_bytes: c.output_limit_bytes,
            tmpfs_bytes: c.tmpfs_mb * 1024 * 1024,
        }
    }
}

/// How a run ended. A job whose code ran is `completed` whatever the code
/// did; this says how.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The program exited with status 0.
    Success,
    /// The program exited with a non-zero status or was killed by a signal.
    Error,
    /// The wall-clock limit was reached; the container was killed.
    Timeout,
    /// The kernel's OOM killer stopped the program at the memory limit.
    MemoryLimit,
    /// stdout or stderr passed its cap; the container was killed and the
    /// output kept up to the cap.
    OutputLimit,
    /// The service could not run the program (a `failed` job carries this).
    InternalError,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::Error => "error",
            RunStatus::Timeout => "timeout",
            RunStatus::MemoryLimit => "memory_limit",
            RunStatus::OutputLimit => "output_limit",
            RunStatus::InternalError => "internal_error",
        }
    }
}

/// What one run produced: the completed job's return value in Redis.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub status: RunStatus,
    /// Standard output, up to the cap (invalid UTF-8 replaced by U+FFFD).
    pub stdout: String,
    /// Standard error, up to the cap.
    pub stderr: String,
    /// The program's exit status (128 + n when killed by signal n); `None`
    /// when the service stopped it before it exited on its own.
    pub exit_code: Option<i64>,
    /// True when stdout was cut at the cap.
    #[serde(default)]
    pub stdout_truncated: bool,
    /// True when stderr was cut at the cap.
    #[serde(default)]
    pub stderr_truncated: bool,
    /// Wall-clock time from container start to exit, in milliseconds.
    pub wall_time_ms: u64,
    /// The worker process that ran the job.
    #[serde(default)]
    pub worker_id: String,
    /// The container the job ran in (removed by now).
    #[serde(default)]
    pub container_id: String,
}

/// Phases of a running job, as the `JobRegistry` reports them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Claimed from the queue; the container is being created.
    Claimed,
    /// The container exists (created, not yet started).
    Created,
    /// The program is running.
    Running,
    /// The program ended; exit status and OOM flag are being read, and the
    /// container removed.
    Collecting,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_producer_job_needs_only_language_and_code() {
        let spec: JobSpec =
            serde_json::from_str(r#"{"language":"python","code":"print(1)"}"#).unwrap();
        assert_eq!(spec.language, "python");
        assert_eq!(spec.stdin, "");
        assert!(spec.limits.is_none());
    }

    #[test]
    fn statuses_serialize_as_the_proof_of_concept_named_them() {
        let names: Vec<String> = [
            RunStatus::Success,
            RunStatus::Error,
            RunStatus::Timeout,
            RunStatus::MemoryLimit,
            RunStatus::OutputLimit,
            RunStatus::InternalError,
        ]
        .iter()
        .map(|s| {
            serde_json::to_value(s)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
        assert_eq!(
            names,
            [
                "success",
                "error",
                "timeout",
                "memory_limit",
                "output_limit",
                "internal_error"
            ]
        );
    }

    #[test]
    fn clamping_keeps_the_stricter_limit() {
        let max = Limits {
            wall_time_ms: 10_000,
            memory_bytes: 100,
            pids: 64,
            cpus: 1.0,
            output_bytes: 10,
            tmpfs_bytes: 10,
        };
        let asked = Limits {
            wall_time_ms: 60_000,
            memory_bytes: 50,
            pids: 1000,
            cpus: 0.5,
            output_bytes: 10,
            tmpfs_bytes: 100,
        };
        let got = asked.clamp_to(&max);
        assert_eq!(got.wall_time_ms, 10_000);
        assert_eq!(got.memory_bytes, 50);
        assert_eq!(got.pids, 64);
        assert_eq!(got.cpus, 0.5);
        assert_eq!(got.tmpfs_bytes, 10);
    }
}
