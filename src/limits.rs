//! Every rule about a job's limits, in one place: what a client may ask
//! ([`RequestedLimits::check`]), what a job runs under (the server's
//! defaults, its language's overrides, the client's values, all within the
//! server's most: [`RequestedLimits::resolve`]), and what each step of it
//! gets ([`Limits::compilation`], [`Limits::run`]). The configuration
//! supplies the defaults and the most (`Config::default_limits`,
//! `Config::max_limits`), the language table its overrides; the sandbox
//! turns a [`StepLimits`] into the container's settings.

use serde::{Deserialize, Serialize};

/// Limits a client asked for; what it leaves out takes the defaults (the
/// server's, with its language's overrides). Stored in the job's data.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestedLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_wall_time_ms: Option<u64>,
    /// The program's stack (`RLIMIT_STACK`), in KiB; the container's by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_kb: Option<u64>,
    /// The largest file the program may write (`RLIMIT_FSIZE`), in KiB;
    /// past it the write fails with SIGXFSZ. Within the container's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_kb: Option<u64>,
    /// An interactive run stops after this long without input or output,
    /// in milliseconds (within the wall-clock limit's most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_time_ms: Option<u64>,
}

/// Limits of one job.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    /// Wall-clock limit of each run, in milliseconds.
    pub wall_time_ms: u64,
    /// CPU-time limit of each run (all its processes), in milliseconds.
    pub cpu_time_ms: u64,
    /// Memory limit of each run, in bytes (no swap).
    pub memory_bytes: u64,
    /// Processes and threads at once.
    pub processes: i64,
    /// Bytes kept of stdout, and separately of stderr, per run.
    pub output_bytes: u64,
    /// Wall-clock limit of the compilation, in milliseconds.
    pub compile_wall_time_ms: u64,
}

/// A language's overrides of the server's default limits (its entry in the
/// language table).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LanguageLimits {
    /// Default memory of a run, in MiB.
    pub memory_mb: Option<u64>,
    /// Default processes of a run.
    pub processes: Option<i64>,
    /// Memory of the compilation, in MiB.
    pub compile_memory_mb: Option<u64>,
    /// Processes of the compilation.
    pub compile_processes: Option<i64>,
    /// Default wall-clock limit of the compilation, in milliseconds.
    pub compile_wall_time_ms: Option<u64>,
}

/// What one step of a job (its compilation, or one run) may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLimits {
    pub wall_ms: u64,
    pub cpu_ms: u64,
    /// Bytes kept of stdout, and of stderr.
    pub output_bytes: u64,
    /// The container's memory (no swap).
    pub memory_bytes: u64,
    /// The container's processes and threads.
    pub processes: i64,
}

/// A requested limit out of its range.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitError {
    /// The field, as `limits.<name>`.
    pub field: String,
    pub message: String,
}

/// The least memory a client may ask for, in MiB.
pub const MIN_MEMORY_MB: u64 = 16;

impl RequestedLimits {
    /// Checks each value the client gave against its range: at least 1
    /// (memory: [`MIN_MEMORY_MB`]), at most `max`'s.
    pub fn check(&self, max: &Limits) -> Result<(), LimitError> {
        let within = |name: &str, value: Option<u64>, min: u64, max: u64| match value {
            Some(v) if v < min || v > max => {
                let field = format!("limits.{name}");
                Err(LimitError {
                    message: format!("{field} must be between {min} and {max}"),
                    field,
                })
            }
            _ => Ok(()),
        };
        within("wall_time_ms", self.wall_time_ms, 1, max.wall_time_ms)?;
        within("cpu_time_ms", self.cpu_time_ms, 1, max.cpu_time_ms)?;
        within(
            "memory_mb",
            self.memory_mb,
            MIN_MEMORY_MB,
            max.memory_bytes >> 20,
        )?;
        if let Some(p) = self.processes
            && (p < 1 || p > max.processes)
        {
            return Err(LimitError {
                field: "limits.processes".into(),
                message: format!("limits.processes must be between 1 and {}", max.processes),
            });
        }
        within("output_bytes", self.output_bytes, 1, max.output_bytes)?;
        within("idle_time_ms", self.idle_time_ms, 1, max.wall_time_ms)?;
        within(
            "compile_wall_time_ms",
            self.compile_wall_time_ms,
            1,
            max.compile_wall_time_ms,
        )
    }

    /// The limits a job runs under: `defaults` with the language's
    /// overrides, then the client's values, all clamped to `max`.
    pub fn resolve(&self, defaults: &Limits, language: &LanguageLimits, max: &Limits) -> Limits {
        Limits {
            wall_time_ms: self.wall_time_ms.unwrap_or(defaults.wall_time_ms),
            cpu_time_ms: self.cpu_time_ms.unwrap_or(defaults.cpu_time_ms),
            memory_bytes: self
                .memory_mb
                .or(language.memory_mb)
                .map_or(defaults.memory_bytes, |mb| mb << 20),
            processes: self
                .processes
                .or(language.processes)
                .unwrap_or(defaults.processes),
            output_bytes: self.output_bytes.unwrap_or(defaults.output_bytes),
            compile_wall_time_ms: self
                .compile_wall_time_ms
                .or(language.compile_wall_time_ms)
                .unwrap_or(defaults.compile_wall_time_ms),
        }
        .clamp_to(max)
    }
}

impl Limits {
    /// The stricter of `self` and `max`, field by field.
    pub fn clamp_to(self, max: &Limits) -> Limits {
        Limits {
            wall_time_ms: self.wall_time_ms.min(max.wall_time_ms),
            cpu_time_ms: self.cpu_time_ms.min(max.cpu_time_ms),
            memory_bytes: self.memory_bytes.min(max.memory_bytes),
            processes: self.processes.min(max.processes),
            output_bytes: self.output_bytes.min(max.output_bytes),
            compile_wall_time_ms: self.compile_wall_time_ms.min(max.compile_wall_time_ms),
        }
    }

    /// The compilation's: its own wall-clock limit (as its CPU limit too),
    /// the run's output cap, and at least the run's memory and processes
    /// (more where the language's compiler needs it).
    pub fn compilation(&self, language: &LanguageLimits) -> StepLimits {
        StepLimits {
            wall_ms: self.compile_wall_time_ms,
            cpu_ms: self.compile_wall_time_ms,
            output_bytes: self.output_bytes,
            memory_bytes: language
                .compile_memory_mb
                .map_or(self.memory_bytes, |mb| (mb << 20).max(self.memory_bytes)),
            processes: language
                .compile_processes
                .unwrap_or(self.processes)
                .max(self.processes),
        }
    }

    /// Each run's.
    pub fn run(&self) -> StepLimits {
        StepLimits {
            wall_ms: self.wall_time_ms,
            cpu_ms: self.cpu_time_ms,
            output_bytes: self.output_bytes,
            memory_bytes: self.memory_bytes,
            processes: self.processes,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The server's most in unit tests (here and in `http::request`).
    pub(crate) fn max() -> Limits {
        Limits {
            wall_time_ms: 10_000,
            cpu_time_ms: 10_000,
            memory_bytes: 512 << 20,
            processes: 128,
            output_bytes: 1 << 20,
            compile_wall_time_ms: 30_000,
        }
    }

    fn defaults() -> Limits {
        Limits {
            wall_time_ms: 5_000,
            cpu_time_ms: 5_000,
            memory_bytes: 256 << 20,
            processes: 64,
            output_bytes: 64 << 10,
            compile_wall_time_ms: 15_000,
        }
    }

    #[test]
    fn clamping_keeps_the_stricter_limit() {
        let max = Limits {
            wall_time_ms: 10_000,
            cpu_time_ms: 5_000,
            memory_bytes: 100,
            processes: 64,
            output_bytes: 10,
            compile_wall_time_ms: 1,
        };
        let asked = Limits {
            wall_time_ms: 60_000,
            cpu_time_ms: 1_000,
            memory_bytes: 50,
            processes: 1000,
            output_bytes: 10,
            compile_wall_time_ms: 100,
        };
        let got = asked.clamp_to(&max);
        assert_eq!(got.wall_time_ms, 10_000);
        assert_eq!(got.cpu_time_ms, 1_000);
        assert_eq!(got.memory_bytes, 50);
        assert_eq!(got.processes, 64);
        assert_eq!(got.compile_wall_time_ms, 1);
    }

    #[test]
    fn the_client_beats_the_language_which_beats_the_default() {
        let language = LanguageLimits {
            memory_mb: Some(384),
            processes: Some(100),
            compile_wall_time_ms: Some(20_000),
            ..LanguageLimits::default()
        };
        let none = RequestedLimits::default().resolve(&defaults(), &language, &max());
        assert_eq!(none.memory_bytes, 384 << 20);
        assert_eq!(none.processes, 100);
        assert_eq!(none.compile_wall_time_ms, 20_000);
        assert_eq!(none.wall_time_ms, 5_000);
        let asked = RequestedLimits {
            memory_mb: Some(128),
            wall_time_ms: Some(9_000),
            ..RequestedLimits::default()
        };
        let resolved = asked.resolve(&defaults(), &language, &max());
        assert_eq!(resolved.memory_bytes, 128 << 20);
        assert_eq!(resolved.wall_time_ms, 9_000);
        // A language above the server's most is held to it.
        let greedy = LanguageLimits {
            memory_mb: Some(4096),
            ..LanguageLimits::default()
        };
        let held = RequestedLimits::default().resolve(&defaults(), &greedy, &max());
        assert_eq!(held.memory_bytes, 512 << 20);
    }

    #[test]
    fn a_request_out_of_range_names_its_field() {
        let ok = RequestedLimits {
            memory_mb: Some(16),
            processes: Some(128),
            ..RequestedLimits::default()
        };
        assert_eq!(ok.check(&max()), Ok(()));
        let cases = [
            (
                RequestedLimits {
                    memory_mb: Some(15),
                    ..Default::default()
                },
                "limits.memory_mb",
            ),
            (
                RequestedLimits {
                    processes: Some(0),
                    ..Default::default()
                },
                "limits.processes",
            ),
            (
                RequestedLimits {
                    wall_time_ms: Some(10_001),
                    ..Default::default()
                },
                "limits.wall_time_ms",
            ),
            (
                RequestedLimits {
                    compile_wall_time_ms: Some(0),
                    ..Default::default()
                },
                "limits.compile_wall_time_ms",
            ),
        ];
        for (asked, field) in cases {
            let error = asked.check(&max()).unwrap_err();
            assert_eq!(error.field, field);
            assert!(error.message.contains("must be between"), "{error:?}");
        }
    }

    #[test]
    fn a_compilation_gets_at_least_the_runs_memory_and_processes() {
        let limits = defaults();
        let plain = limits.compilation(&LanguageLimits::default());
        assert_eq!(plain.memory_bytes, limits.memory_bytes);
        assert_eq!(plain.wall_ms, limits.compile_wall_time_ms);
        assert_eq!(plain.cpu_ms, limits.compile_wall_time_ms);
        let hungry = limits.compilation(&LanguageLimits {
            compile_memory_mb: Some(1024),
            compile_processes: Some(8),
            ..LanguageLimits::default()
        });
        assert_eq!(hungry.memory_bytes, 1024 << 20);
        // Fewer processes than a run's would starve nothing: the run's stand.
        assert_eq!(hungry.processes, limits.processes);
        let run = limits.run();
        assert_eq!((run.wall_ms, run.cpu_ms), (5_000, 5_000));
    }
}
