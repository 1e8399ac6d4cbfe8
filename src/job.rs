//! The job model every part shares: a job's data in Redis ([`JobSpec`]),
//! the limits it runs under ([`Limits`]), and what it produced
//! ([`JobResult`]) with its [`Verdict`].
//!
//! These types are the wire format between API and worker processes
//! (through Redis), so their serialized names are stable. A Node BullMQ
//! producer may enqueue just `{"language": "...", "code": "..."}`.

use serde::{Deserialize, Serialize};

use crate::compare::Compare;
use crate::limits::RequestedLimits;

/// The BullMQ job name given to every job (Bull Board shows it).
pub const JOB_NAME: &str = "run";

/// A source file of a job.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceFile {
    pub name: String,
    /// The content, as text, or base64 when the job's `base64` is set.
    pub content: String,
}

/// One run of the compiled program: its stdin and, optionally, the output
/// it must print.
#[derive(utoipa::ToSchema, Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TestCase {
    #[serde(default)]
    pub stdin: String,
    #[serde(default)]
    pub expected_output: Option<String>,
    /// How this case's output is compared (else the job's `compare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Compare>,
    /// What passing it is worth (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<f64>,
    /// The subtask it belongs to: a group scores only if all its cases pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A program the problem's author gives to judge a job: a checker (it
/// reads the test's input, the solution's output and the expected answer,
/// and decides, in testlib's convention) or an interactor (it talks with
/// the solution, then decides). It has its own language, code and limits,
/// and runs in its own containers, never the solution's.
#[derive(utoipa::ToSchema, Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct JudgeProgram {
    /// Language id or alias.
    pub language: String,
    /// Its source, as one file (base64 when the job's `base64` is set).
    pub code: String,
    /// Its limits (defaults: the server's, with its language's overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<RequestedLimits>,
}

/// A job as stored in Redis: everything a worker needs to run it.
#[derive(utoipa::ToSchema, Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct JobSpec {
    /// Language id or alias, as submitted (resolved by the worker's table).
    pub language: String,
    /// A version the client asked for (must match the table's, if given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The program, as one file (the language's default file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The program as several files; the first is the entry point.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<SourceFile>,
    /// Standard input of the single run (when there are no test cases).
    #[serde(default)]
    pub stdin: String,
    /// Arguments given to the program.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Arguments added to the compiler's (where the language's compile
    /// command has `{options}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compiler_options: Vec<String>,
    /// The program's stderr goes into its stdout, in write order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stderr_to_stdout: bool,
    /// Limits the client asked for (the API checked them against its
    /// maxima; a worker clamps them to its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<RequestedLimits>,
    /// Output the single run must print (compared after trimming trailing
    /// white space of each line and trailing empty lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_output: Option<String>,
    /// How output is compared with `expected_output` (default: `lines`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Compare>,
    /// Runs against one compilation, each with its own stdin and verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_cases: Vec<TestCase>,
    /// Once a case fails, the rest of its group (or, for a case in no
    /// group, every remaining case) is skipped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_on_first_failure: bool,
    /// Judges each run's output instead of comparing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checker: Option<JudgeProgram>,
    /// Talks with each run over its stdin and stdout, and judges it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactor: Option<JudgeProgram>,
    /// Inputs (code, files, stdin, expected output) are base64, and outputs
    /// are returned base64 (exact bytes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub base64: bool,
    /// Where the finished result is POSTed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// When the API accepted the job (milliseconds since the Unix epoch).
    #[serde(default, alias = "submittedAtMs")]
    pub submitted_at_ms: u64,
    /// The name of the API key that submitted it; only that key sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The caller whose share of the queue it counts in (its key, or its
    /// client address), when shares are kept: the worker gives the share
    /// back when the job ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// Who submitted it: its API key (`key:<name>`), or without keys its
    /// client address (`addr:<address>`). With `CODE_RUNNER_RECYCLE=per-caller`
    /// only one client's jobs share a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The trace of the request that submitted it: the worker's spans for
    /// the job carry the same id, so its logs join up across processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Interactive: the run's stdin is what clients send while it runs
    /// (`/v1/jobs/{id}/stream`), and it stops when idle or left alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
    /// A Judge0 submission's own attributes (it is shown, and its webhook
    /// sent, the way Judge0 does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge0: Option<Judge0Request>,
}

/// What a Judge0 client asked (see [`crate::compat::judge0`]), with
/// Judge0's defaults filled in as this service has them: kept in the job's
/// data, since Judge0 shows it back.
#[derive(utoipa::ToSchema, Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Judge0Request {
    pub language_id: u32,
    pub number_of_runs: u32,
    /// Seconds.
    pub cpu_time_limit: f64,
    pub cpu_extra_time: f64,
    pub wall_time_limit: f64,
    /// KB.
    pub memory_limit: u64,
    pub stack_limit: u64,
    pub max_processes_and_or_threads: i64,
    pub max_file_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiler_options: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line_arguments: Option<String>,
    #[serde(default)]
    pub redirect_stderr_to_stdout: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// A job's verdict.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Ran and exited 0 (and printed the expected output, if one was given).
    Accepted,
    /// Exited 0 but printed something other than the expected output.
    WrongAnswer,
    /// The checker found the output malformed (testlib's `_pe`).
    PresentationError,
    /// The compiler refused the program (or ran out of its limits).
    CompilationError,
    /// Exited non-zero or was killed by a signal.
    RuntimeError,
    /// Ran out of CPU time or wall-clock time (`time_limit` says which).
    TimeLimitExceeded,
    /// Killed by the kernel's OOM killer at the memory limit.
    MemoryLimitExceeded,
    /// stdout or stderr passed its cap.
    OutputLimitExceeded,
    /// Cancelled before it ended.
    Cancelled,
    /// The service could not run it (or the job's checker failed).
    InternalError,
    /// A test case not run: an earlier one failed with
    /// `stop_on_first_failure`, or the checker failed. Never a job's verdict.
    Skipped,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::WrongAnswer => "wrong_answer",
            Verdict::PresentationError => "presentation_error",
            Verdict::CompilationError => "compilation_error",
            Verdict::RuntimeError => "runtime_error",
            Verdict::TimeLimitExceeded => "time_limit_exceeded",
            Verdict::MemoryLimitExceeded => "memory_limit_exceeded",
            Verdict::OutputLimitExceeded => "output_limit_exceeded",
            Verdict::Cancelled => "cancelled",
            Verdict::InternalError => "internal_error",
            Verdict::Skipped => "skipped",
        }
    }
}

/// The proof of concept's coarser `status`, kept for `GET /status`.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Success,
    Error,
    Timeout,
    MemoryLimit,
    OutputLimit,
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

/// Which time limit a run exceeded.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimeLimit {
    Cpu,
    Wall,
    /// An interactive run had no input and no output for its idle limit,
    /// or no client connected to it.
    Idle,
}

/// What one run (the compilation, or one execution) did, as measured.
#[derive(utoipa::ToSchema, Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunFigures {
    /// Standard output, up to the cap (base64 when the job asked for it).
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    /// The signal that ended it, by name (`SIGSEGV`, ...).
    pub signal: Option<String>,
    pub wall_time_ms: u64,
    /// CPU time of all its processes (cgroup).
    pub cpu_time_ms: u64,
    /// The program's own peak memory, in bytes: its processes' peak
    /// resident set, or the anonymous memory they held at once, whichever
    /// is more; never page cache it merely read.
    pub memory_peak_bytes: u64,
    #[serde(default)]
    pub stdout_truncated: bool,
    #[serde(default)]
    pub stderr_truncated: bool,
}

/// One test case's outcome. No default: a case's verdict is always said
/// ([`CaseResult::of`]), never an `accepted` that nobody decided.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaseResult {
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<TimeLimit>,
    /// Why it did not pass (where the output differs, the limit, the
    /// checker's words), or what a checker said of a pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What passing it is worth, and what it earned (a checker may give
    /// part of it).
    #[serde(default)]
    pub points: f64,
    #[serde(default)]
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The checker's own run on this case (its stdout and stderr are its
    /// message), apart from the solution's figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checker: Option<RunFigures>,
    /// The interactor's own run on this case (its stdout is what it sent
    /// the solution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactor: Option<RunFigures>,
    #[serde(flatten)]
    pub figures: RunFigures,
}

impl CaseResult {
    /// A case with `verdict` and nothing else yet (no points, no figures).
    pub fn of(verdict: Verdict) -> CaseResult {
        CaseResult {
            verdict,
            time_limit: None,
            message: None,
            points: 0.0,
            score: 0.0,
            group: None,
            checker: None,
            interactor: None,
            figures: RunFigures::default(),
        }
    }
}

/// A group of test cases (a subtask): it scores only if all its cases pass
/// (with partial points from a checker, by its weakest case).
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupResult {
    pub group: String,
    pub passed: bool,
    pub score: f64,
    pub max_score: f64,
    /// Its cases, by their index in `test_cases`.
    pub cases: Vec<usize>,
}

/// What a job produced: the completed job's return value in Redis.
///
/// For a job without test cases, the run's figures are at the top level;
/// with test cases, each case has its own and the top level repeats the
/// first case that did not pass (or the last one).
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobResult {
    pub verdict: Verdict,
    /// The proof of concept's status, derived from the verdict.
    pub status: RunStatus,
    /// Which limit, for `time_limit_exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<TimeLimit>,
    /// What went wrong, in words, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The compiler's output (stdout then stderr), for compiled languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_output: Option<String>,
    /// The compilation's own figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<RunFigures>,
    #[serde(flatten)]
    pub figures: RunFigures,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_cases: Vec<CaseResult>,
    /// With test cases: the case whose figures the job's own are (its first
    /// that did not pass, else the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures_case: Option<usize>,
    /// With test cases: the points earned and the most there were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_score: Option<f64>,
    /// Each group's outcome, when cases have groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupResult>,
    /// `base64` when outputs are base64, else `utf8` (invalid bytes → U+FFFD).
    pub encoding: String,
    /// The language and version that ran it.
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub version: String,
    /// The worker process that ran it.
    #[serde(default)]
    pub worker_id: String,
    /// Each phase the job went through, with its container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<PhaseMark>,
}

impl JobResult {
    /// The result as Redis keeps it: each output once. The compiler's
    /// output is kept as its `compile` figures' streams (`compile_output`
    /// is their concatenation), and with test cases the job's own output is
    /// its `figures_case`'s. [`JobResult::restore`] puts them back.
    pub fn into_stored(mut self) -> JobResult {
        self.compile_output = None;
        if self.figures_case.is_some_and(|i| i < self.test_cases.len()) {
            self.figures.stdout.clear();
            self.figures.stderr.clear();
        }
        self
    }

    /// A stored result made whole again (see [`JobResult::into_stored`]).
    pub fn restore(&mut self) {
        if self.compile_output.is_none() {
            self.fill_compile_output();
        }
        if let Some(case) = self.figures_case.and_then(|i| self.test_cases.get(i))
            && self.figures.stdout.is_empty()
            && self.figures.stderr.is_empty()
        {
            self.figures.stdout = case.figures.stdout.clone();
            self.figures.stderr = case.figures.stderr.clone();
        }
    }

    /// `compile_output` from the compiler's streams: its stdout then its
    /// stderr (decoded and encoded again with base64), with a note when
    /// either was cut.
    pub fn fill_compile_output(&mut self) {
        use base64::Engine;
        let Some(compile) = &self.compile else {
            return;
        };
        if self.encoding == "base64" {
            let b64 = base64::engine::general_purpose::STANDARD;
            let mut bytes = b64.decode(&compile.stdout).unwrap_or_default();
            bytes.extend(b64.decode(&compile.stderr).unwrap_or_default());
            self.compile_output = Some(b64.encode(bytes));
            return;
        }
        let mut output = format!("{}{}", compile.stdout, compile.stderr);
        if compile.stdout_truncated || compile.stderr_truncated {
            output.push_str("\n[output cut]");
        }
        self.compile_output = Some(output);
    }
}

/// One step of a job's run: a phase entered, when, in which container.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseMark {
    pub phase: Phase,
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_id: String,
}

impl JobResult {
    /// A result of `verdict` and nothing else yet: the one place a
    /// result is made (its figures and cases are filled in after).
    pub fn of(verdict: Verdict) -> JobResult {
        JobResult {
            verdict,
            status: status_of(verdict, None),
            time_limit: None,
            message: None,
            compile_output: None,
            compile: None,
            figures: RunFigures::default(),
            test_cases: Vec::new(),
            figures_case: None,
            score: None,
            max_score: None,
            groups: Vec::new(),
            encoding: "utf8".into(),
            language: String::new(),
            version: String::new(),
            worker_id: String::new(),
            timeline: Vec::new(),
        }
    }

    /// A result that says what happened without any run.
    pub fn without_run(verdict: Verdict, message: impl Into<String>) -> JobResult {
        JobResult {
            message: Some(message.into()),
            ..JobResult::of(verdict)
        }
    }
}

/// How a claimed job's attempt ended, as the dispatcher tells the queue.
#[derive(Debug)]
pub enum JobOutcome {
    /// The code ran: the job is completed with this result.
    Finished(Box<JobResult>),
    /// Put the job back in the queue untouched (its run was stopped by a
    /// shutdown); it does not count as an attempt.
    Requeue,
    /// This worker cannot run it yet (its language's image is still being
    /// built): the job goes back to the queue, delayed by
    /// `queue::worker::NOT_READY_DELAY`, without counting as an attempt.
    NotReady(String),
    /// The service could not run it. A `retryable` failure (infrastructure)
    /// is retried with backoff while attempts remain; otherwise, or after
    /// the last attempt, the job is failed with `reason`.
    Failed { reason: String, retryable: bool },
}

/// The proof of concept's status for a verdict.
pub fn status_of(verdict: Verdict, exit_code: Option<i32>) -> RunStatus {
    match verdict {
        Verdict::Accepted | Verdict::WrongAnswer | Verdict::PresentationError
            if exit_code == Some(0) =>
        {
            RunStatus::Success
        }
        Verdict::Accepted | Verdict::WrongAnswer | Verdict::PresentationError => RunStatus::Error,
        Verdict::CompilationError
        | Verdict::RuntimeError
        | Verdict::Cancelled
        | Verdict::Skipped => RunStatus::Error,
        Verdict::TimeLimitExceeded => RunStatus::Timeout,
        Verdict::MemoryLimitExceeded => RunStatus::MemoryLimit,
        Verdict::OutputLimitExceeded => RunStatus::OutputLimit,
        Verdict::InternalError => RunStatus::InternalError,
    }
}

/// Phases of a running job, as the `JobRegistry` reports them.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Claimed from the queue; the first container is being created.
    Claimed,
    /// A container exists (created, not yet started).
    Created,
    /// The compiler is running.
    Compiling,
    /// The program is running.
    Running,
    /// The job's checker (or interactor) is being compiled, or is judging
    /// a run's output.
    Checking,
    /// A run ended; its figures are being read and its container removed.
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
        assert_eq!(spec.code.as_deref(), Some("print(1)"));
        assert_eq!(spec.stdin, "");
        assert!(spec.limits.is_none() && spec.test_cases.is_empty());
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
}
