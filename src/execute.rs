//! Running one job: compile once (for compiled languages), then one run per
//! test case (or the single run), each in its own fresh container, and the
//! verdicts.
//!
//! The compilation happens in the same hardened sandbox as the runs (it is
//! hostile input too), with its own limits; the work directory it leaves
//! (the binary, class files, ...) is sent back by the monitor and handed to
//! every run. Each run's figures come from its own container's cgroup.

use base64::Engine;
use monitor_protocol::{FileSpec, Input, LimitHit, Report, Task, signal_name};
use tokio_util::sync::CancellationToken;

use crate::compare::Compare;
use crate::job::{
    CaseResult, JobResult, JobSpec, Phase, RunFigures, TimeLimit, Verdict, status_of,
};
use crate::language::Language;
use crate::limits::{Limits, StepLimits};
use crate::sandbox::pool::WarmPool;
use crate::sandbox::{
    ContainerLimits, RunObserver, Sandbox, SandboxError, TaskOutcome, TaskOutput, TaskRequest,
    Unreported,
};

/// Server-side settings of every run.
#[derive(Debug, Clone, Copy)]
pub struct ExecutionSettings {
    /// CPUs of each container (a CFS quota).
    pub cpus: f64,
    /// The writable tmpfs of each container, in bytes; also the cap on what
    /// a compilation may leave for the runs.
    pub tmpfs_bytes: u64,
    /// The uid (and gid) the job's programs run as: the worker's base uid
    /// plus the job's worker slot (the dispatcher adds the slot), so no two
    /// jobs running at once share one, nor with the monitor.
    pub uid: u32,
    /// Most bytes of output one job's result keeps, every case's stdout and
    /// stderr and the compiler's output together (each stream's own cap
    /// applies first): what Redis stores, every read returns and a webhook
    /// carries stays bounded whatever the number of cases.
    pub max_result_bytes: usize,
    /// The host CPU of the job's worker slot, when jobs are pinned (one
    /// CPU each, no more jobs than CPUs): set by the dispatcher per job.
    pub cpuset: Option<u32>,
    /// An interactive run's idle limit when the job sets none, in
    /// milliseconds.
    pub idle_time_ms: u64,
}

/// A job made ready to run: inputs decoded, limits resolved.
#[derive(Debug, Clone)]
pub struct PreparedJob {
    pub job_id: String,
    pub language: Language,
    /// The language's version as this worker's image provides it.
    pub version: String,
    pub files: Vec<FileSpec>,
    pub args: Vec<String>,
    /// Arguments added to the compiler's (its `{options}`).
    pub compiler_options: Vec<String>,
    /// The runs' stderr goes into their stdout.
    pub stderr_to_stdout: bool,
    /// The runs' stack limit, when the job sets one.
    pub stack_bytes: Option<u64>,
    /// The largest file a run may write, when the job sets one.
    pub file_size_bytes: Option<u64>,
    pub cases: Vec<PreparedCase>,
    /// Whether the client gave test cases (the result then lists them).
    pub has_test_cases: bool,
    pub limits: Limits,
    pub base64: bool,
    /// The trace of the request that submitted it (empty if none).
    pub trace_id: String,
    /// Interactive: its one run's stdin comes from its clients while it
    /// runs, and it stops after this long without input or output (`0`:
    /// the server's idle limit).
    pub interactive: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct PreparedCase {
    pub stdin: Vec<u8>,
    pub expected: Option<Vec<u8>>,
    /// How its output is compared with `expected`.
    pub compare: Compare,
}

/// How a job's execution ended.
#[derive(Debug)]
pub enum Execution {
    Finished(Box<JobResult>),
    /// Stopped by its cancellation token before it ended.
    Cancelled,
}

/// The result of a job a client cancelled: before it ran (`job` unknown),
/// or while it ran (with what it had reached).
pub fn cancelled(job: Option<&PreparedJob>, worker_id: &str, detail: &str) -> JobResult {
    let mut result = JobResult::without_run(Verdict::Cancelled, detail);
    if let Some(job) = job {
        result.language = job.language.id.clone();
        result.version = job.version.clone();
        result.worker_id = worker_id.to_string();
    }
    result
}

/// Decodes a job's inputs. Errors are the job's fault (bad base64, a bad
/// file name, no code) and end it as `internal_error` without a run: the API
/// refuses such jobs, so only a foreign producer can send them.
pub fn prepare(
    job_id: &str,
    spec: &JobSpec,
    language: &Language,
    version: &str,
    limits: Limits,
) -> Result<PreparedJob, String> {
    let decode = |field: &str, text: &str| -> Result<Vec<u8>, String> {
        if spec.base64 {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("{field} is not valid base64: {e}"))
        } else {
            Ok(text.as_bytes().to_vec())
        }
    };
    let mut files = Vec::new();
    if let Some(code) = &spec.code {
        files.push(FileSpec {
            name: language.source_file.clone(),
            mode: 0o644,
            content: decode("code", code)?,
        });
    }
    for (i, file) in spec.files.iter().enumerate() {
        if !monitor_protocol::valid_file_name(&file.name) {
            return Err(format!("files[{i}].name is not a plain file name"));
        }
        if files.iter().any(|f: &FileSpec| f.name == file.name) {
            return Err(format!("files[{i}].name is used twice"));
        }
        files.push(FileSpec {
            name: file.name.clone(),
            mode: 0o644,
            content: decode(&format!("files[{i}].content"), &file.content)?,
        });
    }
    if files.is_empty() {
        return Err("the job has neither code nor files".into());
    }
    if spec.interactive && !spec.test_cases.is_empty() {
        return Err("an interactive job has one run, not test cases".into());
    }
    if !spec.compiler_options.is_empty() && !language.takes_compiler_options() {
        return Err(format!("{} takes no compiler options", language.name));
    }
    let compare = spec.compare.unwrap_or_default();
    let cases = if spec.test_cases.is_empty() {
        vec![PreparedCase {
            compare,
            stdin: decode("stdin", &spec.stdin)?,
            expected: spec
                .expected_output
                .as_deref()
                .map(|e| decode("expected_output", e))
                .transpose()?,
        }]
    } else {
        spec.test_cases
            .iter()
            .enumerate()
            .map(|(i, case)| {
                Ok(PreparedCase {
                    compare: case.compare.unwrap_or(compare),
                    stdin: decode(&format!("test_cases[{i}].stdin"), &case.stdin)?,
                    expected: case
                        .expected_output
                        .as_deref()
                        .map(|e| decode(&format!("test_cases[{i}].expected_output"), e))
                        .transpose()?,
                })
            })
            .collect::<Result<_, String>>()?
    };
    Ok(PreparedJob {
        job_id: job_id.to_string(),
        language: language.clone(),
        version: version.to_string(),
        files,
        args: spec.args.clone(),
        compiler_options: spec.compiler_options.clone(),
        stderr_to_stdout: spec.stderr_to_stdout,
        stack_bytes: spec.limits.and_then(|l| l.stack_kb).map(|kb| kb << 10),
        file_size_bytes: spec.limits.and_then(|l| l.file_size_kb).map(|kb| kb << 10),
        cases,
        has_test_cases: !spec.test_cases.is_empty(),
        trace_id: spec.trace_id.clone().unwrap_or_default(),
        interactive: spec
            .interactive
            .then(|| spec.limits.and_then(|l| l.idle_time_ms).unwrap_or(0)),
        limits,
        base64: spec.base64,
    })
}

/// Compiles (if needed) and runs every case; `observer` hears each
/// container's phases and output as they come. An interactive job's run is
/// fed `input`.
pub async fn execute(
    sandbox: &Sandbox,
    pool: Option<&std::sync::Arc<WarmPool>>,
    job: &PreparedJob,
    settings: &ExecutionSettings,
    cancel: &CancellationToken,
    observer: &dyn RunObserver,
    mut input: Option<tokio::sync::mpsc::Receiver<Input>>,
) -> Result<Execution, SandboxError> {
    let language = &job.language;
    let names: Vec<String> = job.files.iter().map(|f| f.name.clone()).collect();
    let env = language.environment();
    let limits = &job.limits;
    let mut result = JobResult {
        verdict: Verdict::Accepted,
        status: status_of(Verdict::Accepted, Some(0)),
        time_limit: None,
        message: None,
        compile_output: None,
        compile: None,
        figures: RunFigures::default(),
        test_cases: Vec::new(),
        encoding: if job.base64 { "base64" } else { "utf8" }.to_string(),
        language: language.id.clone(),
        version: job.version.clone(),
        worker_id: sandbox.settings().worker_id.clone(),
        timeline: Vec::new(),
    };

    let mut run_files = job.files.clone();
    if let Some(compile) = &language.compile {
        let step = limits.compilation(&language.limits);
        let task = Task {
            nonce: [0; 16], // set per container by the sandbox
            wall_ms: step.wall_ms,
            cpu_ms: step.cpu_ms,
            output_bytes: step.output_bytes,
            artifacts: Some(settings.tmpfs_bytes),
            env: env.clone(),
            files: job.files.clone(),
            argv: language
                .expand_with(compile, &names, &job.compiler_options)
                .into_iter()
                .map(String::into_bytes)
                .collect(),
            stdin: Vec::new(),
            uid: Some(settings.uid),
            ..Task::default()
        };
        let container = container_limits(&step, settings, language);
        let request = TaskRequest {
            job_id: &job.job_id,
            image: &language.image,
            limits: container,
            task,
            running_phase: Phase::Compiling,
            step: "compile".to_string(),
            input: None,
        };
        let output = match sandbox.run_task(request, pool, cancel, observer).await? {
            TaskOutcome::Cancelled => return Ok(Execution::Cancelled),
            TaskOutcome::Done(output) => *output,
        };
        let report = &report_of(&output);
        if let Some(lost) = &output.lost {
            return Ok(Execution::Finished(finish(
                result,
                Verdict::CompilationError,
                None,
                Some(lost.clone()),
            )));
        }
        let mut compile_output = output.stdout.clone();
        compile_output.extend_from_slice(&output.stderr);
        result.compile_output = Some(encode(&compile_output, job.base64));
        result.compile = Some(figures(&output, job.base64));
        let failure = if let Some(error) = &report.error {
            return Ok(Execution::Finished(finish(
                result,
                Verdict::InternalError,
                None,
                Some(format!("the compiler could not run: {error}")),
            )));
        } else if let Some(limit) = report.limit {
            Some(match limit {
                LimitHit::Wall | LimitHit::Cpu | LimitHit::Idle | LimitHit::NoClient => {
                    "the compilation ran out of time".to_string()
                }
                LimitHit::Memory => "the compilation ran out of memory".to_string(),
                LimitHit::Output => "the compiler's output passed its cap".to_string(),
            })
        } else if report.oom_killed {
            Some("the compilation ran out of memory".to_string())
        } else if let Some(signal) = report.signal {
            Some(format!(
                "the compiler was killed by {}",
                signal_name(signal)
            ))
        } else if report.exit_code != Some(0) {
            Some(format!(
                "the compiler exited with status {}",
                report.exit_code.unwrap_or(-1)
            ))
        } else if report.artifacts_truncated {
            Some("the compilation left more than the sandbox can carry".to_string())
        } else {
            None
        };
        if let Some(message) = failure {
            return Ok(Execution::Finished(finish(
                result,
                Verdict::CompilationError,
                None,
                Some(message),
            )));
        }
        run_files = output.files;
    }

    let mut argv: Vec<Vec<u8>> = language
        .expand(&language.run, &names)
        .into_iter()
        .map(String::into_bytes)
        .collect();
    argv.extend(job.args.iter().map(|a| a.clone().into_bytes()));
    let step = limits.run();
    let container = container_limits(&step, settings, language);
    let mut cases = Vec::with_capacity(job.cases.len());
    for (index, case) in job.cases.iter().enumerate() {
        let task = Task {
            nonce: [0; 16], // set per container by the sandbox
            wall_ms: step.wall_ms,
            cpu_ms: step.cpu_ms,
            output_bytes: step.output_bytes,
            artifacts: None,
            env: env.clone(),
            files: run_files.clone(),
            argv: argv.clone(),
            stdin: case.stdin.clone(),
            uid: Some(settings.uid),
            stack_bytes: job.stack_bytes,
            file_size_bytes: job.file_size_bytes,
            stderr_to_stdout: job.stderr_to_stdout,
            interactive: job.interactive.map(|idle| {
                if idle == 0 {
                    settings.idle_time_ms
                } else {
                    idle
                }
            }),
        };
        let request = TaskRequest {
            job_id: &job.job_id,
            image: &language.image,
            limits: container.clone(),
            task,
            running_phase: Phase::Running,
            step: format!("run-{index}"),
            input: if job.interactive.is_some() {
                input.take()
            } else {
                None
            },
        };
        let output = match sandbox.run_task(request, pool, cancel, observer).await? {
            TaskOutcome::Cancelled => return Ok(Execution::Cancelled),
            TaskOutcome::Done(output) => *output,
        };
        let (verdict, time_limit, message) =
            judge(&output, case.expected.as_deref(), &case.compare);
        if verdict == Verdict::InternalError {
            // What a compilation made of the user's code cannot be executed
            // (a Go package that is not `main`, a Rust library crate): the
            // user's compilation error, not the service's failure.
            if output.report.exec_failed && language.compile.is_some() {
                return Ok(Execution::Finished(finish(
                    result,
                    Verdict::CompilationError,
                    None,
                    Some(format!(
                        "the compilation produced no runnable program ({})",
                        message.unwrap_or_default()
                    )),
                )));
            }
            return Ok(Execution::Finished(finish(result, verdict, None, message)));
        }
        cases.push((
            CaseResult {
                verdict,
                time_limit,
                figures: figures(&output, job.base64),
            },
            message,
        ));
    }

    share_output(
        &mut result.compile_output,
        &mut cases,
        settings.max_result_bytes,
        job.base64,
    );
    // The job's verdict is its first case that did not pass, else accepted.
    let (headline, message) = cases
        .iter()
        .find(|(c, _)| c.verdict != Verdict::Accepted)
        .or(cases.last())
        .map(|(c, m)| (c.clone(), m.clone()))
        .expect("at least one case");
    result.figures = headline.figures.clone();
    if job.has_test_cases {
        result.test_cases = cases.into_iter().map(|(c, _)| c).collect();
    }
    Ok(Execution::Finished(finish(
        result,
        headline.verdict,
        headline.time_limit,
        message,
    )))
}

/// Keeps the outputs of a job within `budget` bytes in all, sharing it
/// fairly: streams smaller than an even share keep everything, the others
/// are cut at one common length (verdicts were decided on the whole output
/// before this). A cut stream says so in its `*_truncated` flag; a cut
/// compiler output ends with a note.
fn share_output(
    compile_output: &mut Option<String>,
    cases: &mut [(CaseResult, Option<String>)],
    budget: usize,
    base64: bool,
) {
    let mut compile_cut = false;
    let mut streams: Vec<(&mut String, &mut bool)> = Vec::with_capacity(cases.len() * 2 + 1);
    if let Some(output) = compile_output.as_mut() {
        streams.push((output, &mut compile_cut));
    }
    for (case, _) in cases.iter_mut() {
        let figures = &mut case.figures;
        streams.push((&mut figures.stdout, &mut figures.stdout_truncated));
        streams.push((&mut figures.stderr, &mut figures.stderr_truncated));
    }
    let sizes: Vec<usize> = streams.iter().map(|(s, _)| s.len()).collect();
    let Some(level) = fair_level(&sizes, budget) else {
        return;
    };
    for (text, truncated) in streams {
        if text.len() > level {
            let mut end = if base64 { level - level % 4 } else { level };
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            *truncated = true;
        }
    }
    if compile_cut && let Some(output) = compile_output.as_mut() {
        output.push_str("\n[output cut: the job's whole result is capped]");
    }
}

/// The length every stream is cut at so that all of them fit in `budget`
/// (water-filling), or `None` when they already fit.
fn fair_level(sizes: &[usize], budget: usize) -> Option<usize> {
    if sizes.iter().sum::<usize>() <= budget {
        return None;
    }
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    let mut remaining = budget;
    for (i, size) in sorted.iter().enumerate() {
        let left = sorted.len() - i;
        if size * left > remaining {
            return Some(remaining / left);
        }
        remaining -= size;
    }
    None
}

fn finish(
    mut result: JobResult,
    verdict: Verdict,
    time_limit: Option<TimeLimit>,
    message: Option<String>,
) -> Box<JobResult> {
    result.verdict = verdict;
    result.status = status_of(verdict, result.figures.exit_code);
    result.time_limit = time_limit;
    result.message = message;
    Box::new(result)
}

/// The container one step runs in: the step's memory and processes, the
/// worker's CPU share, tmpfs and slot CPU, the language's runtime.
fn container_limits(
    step: &StepLimits,
    settings: &ExecutionSettings,
    language: &Language,
) -> ContainerLimits {
    ContainerLimits {
        memory_bytes: step.memory_bytes,
        processes: step.processes,
        cpus: settings.cpus,
        tmpfs_bytes: settings.tmpfs_bytes,
        runtime: language.runtime.clone(),
        cpuset: settings.cpuset.map(|cpu| cpu.to_string()),
    }
}

/// A run's verdict from what the monitor measured.
fn judge(
    output: &TaskOutput,
    expected: Option<&[u8]>,
    compare: &Compare,
) -> (Verdict, Option<TimeLimit>, Option<String>) {
    let report: &Report = &report_of(output);
    if let Some(lost) = &output.lost {
        return (Verdict::RuntimeError, None, Some(lost.clone()));
    }
    if let Some(error) = &report.error {
        return (Verdict::InternalError, None, Some(error.clone()));
    }
    match report.limit {
        Some(LimitHit::Wall) => {
            return (
                Verdict::TimeLimitExceeded,
                Some(TimeLimit::Wall),
                Some("wall-clock time limit exceeded".into()),
            );
        }
        Some(LimitHit::Cpu) => {
            return (
                Verdict::TimeLimitExceeded,
                Some(TimeLimit::Cpu),
                Some("CPU time limit exceeded".into()),
            );
        }
        Some(LimitHit::Memory) => {
            return (
                Verdict::MemoryLimitExceeded,
                None,
                Some("killed by the OOM killer at the memory limit".into()),
            );
        }
        Some(LimitHit::Output) => {
            return (
                Verdict::OutputLimitExceeded,
                None,
                Some("output passed its cap".into()),
            );
        }
        Some(LimitHit::Idle) => {
            return (
                Verdict::TimeLimitExceeded,
                Some(TimeLimit::Idle),
                Some("no input and no output for the idle time limit".into()),
            );
        }
        Some(LimitHit::NoClient) => {
            return (
                Verdict::TimeLimitExceeded,
                Some(TimeLimit::Idle),
                Some("no client was connected to the interactive run".into()),
            );
        }
        None => {}
    }
    if report.oom_killed {
        return (
            Verdict::MemoryLimitExceeded,
            None,
            Some("killed by the OOM killer at the memory limit".into()),
        );
    }
    if let Some(signal) = report.signal {
        return (
            Verdict::RuntimeError,
            None,
            Some(format!("killed by {}", signal_name(signal))),
        );
    }
    match report.exit_code {
        Some(0) => {}
        Some(code) => {
            return (
                Verdict::RuntimeError,
                None,
                Some(format!("exited with status {code}")),
            );
        }
        None => {
            return (
                Verdict::InternalError,
                None,
                Some("the run ended without an exit status".into()),
            );
        }
    }
    match expected.map(|expected| compare.matches(&output.stdout, expected)) {
        Some(Err(difference)) => (
            Verdict::WrongAnswer,
            None,
            Some(format!(
                "the output differs from the expected output: {difference}"
            )),
        ),
        _ => (Verdict::Accepted, None, None),
    }
}

fn figures(output: &TaskOutput, base64: bool) -> RunFigures {
    let report = &report_of(output);
    RunFigures {
        stdout: encode(&output.stdout, base64),
        stderr: encode(&output.stderr, base64),
        exit_code: report.exit_code,
        signal: report.signal.map(signal_name),
        wall_time_ms: report.wall_ms,
        cpu_time_ms: report.cpu_ms,
        memory_peak_bytes: report.memory_peak_bytes,
        stdout_truncated: report.stdout_truncated,
        stderr_truncated: report.stderr_truncated,
    }
}

/// The monitor's report; where none came, what the engine saw stands for
/// it: an OOM kill of the whole container is the memory limit, the
/// service's deadline the wall-clock limit.
fn report_of(output: &TaskOutput) -> Report {
    match output.unreported {
        None => output.report.clone(),
        Some(Unreported::OomKilled { wall_ms }) => Report {
            oom_killed: true,
            limit: Some(LimitHit::Memory),
            wall_ms,
            ..Report::default()
        },
        Some(Unreported::Deadline { wall_ms }) => Report {
            limit: Some(LimitHit::Wall),
            wall_ms,
            ..Report::default()
        },
    }
}

fn encode(bytes: &[u8], base64: bool) -> String {
    if base64 {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_fairly() {
        assert_eq!(fair_level(&[10, 20], 100), None);
        // Small streams keep everything; the large ones share the rest.
        assert_eq!(fair_level(&[10, 1000, 1000], 210), Some(100));
        assert_eq!(fair_level(&[1000, 1000, 1000, 1000], 400), Some(100));
    }

    #[test]
    fn cut_outputs_say_so_and_stay_valid() {
        let case = |stdout: &str, stderr: &str| {
            (
                CaseResult {
                    verdict: Verdict::Accepted,
                    time_limit: None,
                    figures: RunFigures {
                        stdout: stdout.to_string(),
                        stderr: stderr.to_string(),
                        ..RunFigures::default()
                    },
                },
                None,
            )
        };
        let mut cases = vec![case(&"é".repeat(50), "ok"), case(&"x".repeat(100), "")];
        let mut compile = Some("warning".to_string());
        share_output(&mut compile, &mut cases, 80, false);
        let total: usize = cases
            .iter()
            .map(|(c, _)| c.figures.stdout.len() + c.figures.stderr.len())
            .sum();
        assert!(total + "warning".len() <= 80, "{total}");
        assert!(cases[0].0.figures.stdout_truncated && cases[1].0.figures.stdout_truncated);
        assert!(!cases[0].0.figures.stderr_truncated);
        assert_eq!(cases[0].0.figures.stderr, "ok");
        assert_eq!(compile.as_deref(), Some("warning"));
        // Base64 is cut at a whole group of four.
        let mut cases = vec![case(&"QUJD".repeat(30), "")];
        share_output(&mut None, &mut cases, 10, true);
        assert_eq!(cases[0].0.figures.stdout, "QUJDQUJD");
    }

    fn output(report: Report) -> TaskOutput {
        TaskOutput {
            report,
            stdout: b"42\n".to_vec(),
            stderr: Vec::new(),
            files: Vec::new(),
            container_id: "c".into(),
            lost: None,
            unreported: None,
        }
    }

    fn exited(code: i32) -> Report {
        Report {
            exit_code: Some(code),
            ..Report::default()
        }
    }

    #[test]
    fn a_clean_exit_is_accepted_or_judged_by_its_output() {
        let ok = output(exited(0));
        assert_eq!(
            judge(&ok, None, &Compare::default()),
            (Verdict::Accepted, None, None)
        );
        assert_eq!(
            judge(&ok, Some(b"42"), &Compare::default()).0,
            Verdict::Accepted
        );
        let (verdict, _, message) = judge(&ok, Some(b"41\n"), &Compare::default());
        assert_eq!(verdict, Verdict::WrongAnswer);
        assert!(message.unwrap().contains("differs"));
    }

    #[test]
    fn a_failed_exit_or_a_signal_is_a_runtime_error_saying_which() {
        let (verdict, _, message) = judge(&output(exited(3)), Some(b"42"), &Compare::default());
        assert_eq!(verdict, Verdict::RuntimeError);
        assert_eq!(message.as_deref(), Some("exited with status 3"));
        let segv = Report {
            signal: Some(11),
            ..Report::default()
        };
        let (verdict, _, message) = judge(&output(segv), None, &Compare::default());
        assert_eq!(verdict, Verdict::RuntimeError);
        assert_eq!(message.as_deref(), Some("killed by SIGSEGV"));
        // Neither an exit status nor a signal: the sandbox's fault.
        assert_eq!(
            judge(&output(Report::default()), None, &Compare::default()).0,
            Verdict::InternalError
        );
    }

    #[test]
    fn a_limit_beats_the_signal_it_was_enforced_with() {
        let cases = [
            (
                LimitHit::Wall,
                Verdict::TimeLimitExceeded,
                Some(TimeLimit::Wall),
            ),
            (
                LimitHit::Cpu,
                Verdict::TimeLimitExceeded,
                Some(TimeLimit::Cpu),
            ),
            (LimitHit::Memory, Verdict::MemoryLimitExceeded, None),
            (LimitHit::Output, Verdict::OutputLimitExceeded, None),
        ];
        for (limit, verdict, time_limit) in cases {
            let report = Report {
                limit: Some(limit),
                signal: Some(9),
                ..Report::default()
            };
            let judged = judge(&output(report), Some(b"42"), &Compare::default());
            assert_eq!((judged.0, judged.1), (verdict, time_limit), "{limit:?}");
            assert!(judged.2.is_some(), "{limit:?} says why");
        }
        // The OOM killer, seen by the monitor, without a limit hit.
        let oom = Report {
            oom_killed: true,
            signal: Some(9),
            ..Report::default()
        };
        assert_eq!(
            judge(&output(oom), None, &Compare::default()).0,
            Verdict::MemoryLimitExceeded
        );
    }

    #[test]
    fn no_report_is_judged_from_what_the_engine_and_the_clock_saw() {
        let mut killed = output(Report::default());
        killed.unreported = Some(Unreported::OomKilled { wall_ms: 900 });
        assert_eq!(
            judge(&killed, None, &Compare::default()).0,
            Verdict::MemoryLimitExceeded
        );
        let mut late = output(Report::default());
        late.unreported = Some(Unreported::Deadline { wall_ms: 5000 });
        assert_eq!(
            judge(&late, None, &Compare::default()),
            (
                Verdict::TimeLimitExceeded,
                Some(TimeLimit::Wall),
                Some("wall-clock time limit exceeded".into())
            )
        );
    }

    #[test]
    fn a_tampered_stream_or_a_monitor_error_wins_over_everything() {
        let mut lost = output(exited(0));
        lost.lost = Some("the report stream was corrupted".into());
        assert_eq!(
            judge(&lost, Some(b"42"), &Compare::default()),
            (
                Verdict::RuntimeError,
                None,
                Some("the report stream was corrupted".into())
            )
        );
        let failed = Report {
            error: Some("cannot fork".into()),
            exit_code: Some(0),
            ..Report::default()
        };
        assert_eq!(
            judge(&output(failed), None, &Compare::default()).0,
            Verdict::InternalError
        );
    }
}
