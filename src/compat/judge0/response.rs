//! A stored job as Judge0 shows a submission: its status, message,
//! figures and attributes.

use serde_json::{Map, Value, json};

use super::catalogue::{
    ACCEPTED, COMPILATION_ERROR, IN_QUEUE, INTERNAL_ERROR, NZEC, OTHER, PROCESSING, SIGXFSZ,
    TIME_LIMIT_EXCEEDED, WRONG_ANSWER, status_json,
};
use super::request::{decode_base64, encode_base64};
use crate::job::{JobResult, JobSpec, Judge0Request, RunFigures, TimeLimit, Verdict};
use crate::language::{Language, LanguageTable};

/// The bytes of a stored text: its input or output, base64 when the job
/// keeps them so (Judge0 jobs always do).
pub(super) fn bytes_of(text: &str, base64: bool) -> Vec<u8> {
    if base64 {
        decode_base64(text).unwrap_or_else(|_| text.as_bytes().to_vec())
    } else {
        text.as_bytes().to_vec()
    }
}

/// Where a submission is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Queued,
    Running,
    Completed,
    /// The service could not run it.
    Failed,
    Cancelled,
}

/// A submission as stored: the job's data and what became of it (the
/// queue makes one of a stored job).
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// The job's id.
    pub token: String,
    pub stage: Option<Stage>,
    pub spec: Option<JobSpec>,
    pub result: Option<JobResult>,
    pub failed_reason: Option<String>,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    /// The worker that ran it.
    pub execution_host: Option<String>,
}

/// What a job's run comes to in Judge0's attributes.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub status: u32,
    pub message: Option<String>,
    pub stdout: Option<Vec<u8>>,
    pub stderr: Option<Vec<u8>>,
    pub compile_output: Option<Vec<u8>>,
    /// Seconds.
    pub time: Option<f64>,
    pub wall_time: Option<f64>,
    /// KB.
    pub memory: Option<u64>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
}

/// Judge0's runtime-error status for a signal (isolate's `SG`).
pub(super) fn signal_status(signal: i32) -> u32 {
    match signal {
        11 => 7,
        25 => 8,
        8 => 9,
        6 => 10,
        _ => OTHER,
    }
}

/// The figures Judge0 reports for a run: the headline run's outputs, and
/// time and memory averaged over every run (`number_of_runs`).
pub(super) fn averaged(result: &JobResult) -> (f64, f64, u64) {
    let runs: Vec<&RunFigures> = if result.test_cases.is_empty() {
        vec![&result.figures]
    } else {
        result.test_cases.iter().map(|c| &c.figures).collect()
    };
    let n = runs.len().max(1) as f64;
    let cpu = runs.iter().map(|f| f.cpu_time_ms as f64).sum::<f64>() / n / 1000.0;
    let wall = runs.iter().map(|f| f.wall_time_ms as f64).sum::<f64>() / n / 1000.0;
    let memory = runs.iter().map(|f| f.memory_peak_bytes as f64).sum::<f64>() / n / 1024.0;
    (cpu, wall, memory.round() as u64)
}

/// A job's Judge0 status, message and figures.
pub fn outcome(job: &Submission, request: &Judge0Request) -> Outcome {
    let non_empty = |bytes: Vec<u8>| (!bytes.is_empty()).then_some(bytes);
    match job.stage.unwrap_or(Stage::Queued) {
        Stage::Queued => {
            return Outcome {
                status: IN_QUEUE,
                ..Outcome::default()
            };
        }
        Stage::Running => {
            return Outcome {
                status: PROCESSING,
                ..Outcome::default()
            };
        }
        Stage::Failed => {
            return Outcome {
                status: INTERNAL_ERROR,
                message: Some(
                    job.failed_reason
                        .clone()
                        .unwrap_or_else(|| "the service could not run it".into()),
                ),
                ..Outcome::default()
            };
        }
        Stage::Completed | Stage::Cancelled => {}
    }
    let Some(result) = &job.result else {
        return Outcome {
            status: INTERNAL_ERROR,
            message: Some("the submission was cancelled before it ran".into()),
            ..Outcome::default()
        };
    };
    let base64 = result.encoding == "base64";
    let compile_output = result
        .compile_output
        .as_deref()
        .map(|t| bytes_of(t, base64))
        .and_then(non_empty);
    if result.verdict == Verdict::CompilationError {
        return Outcome {
            status: COMPILATION_ERROR,
            compile_output,
            message: result.message.clone(),
            ..Outcome::default()
        };
    }
    let figures = &result.figures;
    let (time, wall_time, memory) = averaged(result);
    let signal = figures
        .signal
        .as_deref()
        .and_then(monitor_protocol::signal_number);
    // Over its nominal limit, though stopped only after the extra time.
    let over_time = figures.cpu_time_ms as f64 > request.cpu_time_limit * 1000.0
        && request.cpu_time_limit > 0.0;
    let (status, message) = match result.verdict {
        Verdict::Accepted | Verdict::WrongAnswer | Verdict::RuntimeError if over_time => {
            (TIME_LIMIT_EXCEEDED, Some("Time limit exceeded".to_string()))
        }
        Verdict::Accepted => (ACCEPTED, None),
        Verdict::WrongAnswer => (WRONG_ANSWER, None),
        // Judge0 has no such status: a wrong answer, said in the message.
        Verdict::PresentationError => (
            WRONG_ANSWER,
            Some("Presentation error (the checker found the output malformed)".to_string()),
        ),
        Verdict::TimeLimitExceeded => (
            TIME_LIMIT_EXCEEDED,
            Some(match result.time_limit {
                Some(TimeLimit::Wall) => "Time limit exceeded (wall clock)".to_string(),
                _ => "Time limit exceeded".to_string(),
            }),
        ),
        Verdict::RuntimeError => match (signal, figures.exit_code) {
            (Some(signal), _) => (
                signal_status(signal),
                Some(format!("Caught fatal signal {signal}")),
            ),
            (None, code) => (
                NZEC,
                Some(format!("Exited with error status {}", code.unwrap_or(1))),
            ),
        },
        Verdict::MemoryLimitExceeded => (
            OTHER,
            Some("Memory limit exceeded (killed at its memory limit)".to_string()),
        ),
        Verdict::OutputLimitExceeded => (
            SIGXFSZ,
            Some("Output limit exceeded (stdout or stderr passed its cap)".to_string()),
        ),
        Verdict::Cancelled => (
            INTERNAL_ERROR,
            Some("the submission was cancelled while it ran".to_string()),
        ),
        Verdict::InternalError | Verdict::Skipped => (
            INTERNAL_ERROR,
            Some(
                result
                    .message
                    .clone()
                    .unwrap_or_else(|| "the service could not run it".into()),
            ),
        ),
        Verdict::CompilationError => unreachable!("answered above"),
    };
    Outcome {
        status,
        message,
        stdout: non_empty(bytes_of(&figures.stdout, base64)),
        stderr: non_empty(bytes_of(&figures.stderr, base64)),
        compile_output,
        time: Some(time),
        wall_time: Some(wall_time),
        memory: Some(memory),
        exit_code: Some(figures.exit_code.unwrap_or(0)),
        exit_signal: signal,
    }
}

/// A time in seconds as Judge0 writes it: a decimal string (`"0.012"`).
pub(super) fn seconds_text(seconds: f64) -> String {
    let text = format!("{seconds:.3}");
    let trimmed = text.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

/// A moment as Rails writes one: ISO 8601 with milliseconds, in UTC.
pub(super) fn timestamp(ms: Option<u64>) -> Value {
    ms.filter(|&ms| ms > 0)
        .and_then(|ms| chrono::DateTime::from_timestamp_millis(ms as i64))
        .map_or(Value::Null, |t| {
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        })
}

/// A text attribute that is not UTF-8 while `base64_encoded=false`:
/// Judge0 answers with an error asking for base64.
#[derive(Debug, PartialEq)]
pub struct NotUtf8;

/// The message Judge0 answers [`NotUtf8`] with.
pub const NOT_UTF8: &str = "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter";

/// A job as Judge0 shows a submission, with only `fields`. A job made
/// through another API is shown from its own data all the same, with its
/// language's first Judge0 id. `languages` (the table, for `language` and
/// multi-file sources) may be left out where those are not asked for.
pub fn render(
    job: &Submission,
    fields: &[&str],
    base64_encoded: bool,
    languages: Option<&LanguageTable>,
) -> Result<Map<String, Value>, NotUtf8> {
    let spec = job.spec.clone().unwrap_or_default();
    let language = languages.and_then(|l| l.find(&spec.language));
    let request = spec
        .judge0
        .clone()
        .unwrap_or_else(|| request_of(&spec, language));
    let outcome = outcome(job, &request);
    let text = |bytes: Option<Vec<u8>>| -> Result<Value, NotUtf8> {
        let Some(bytes) = bytes else {
            return Ok(Value::Null);
        };
        if base64_encoded {
            return Ok(Value::String(encode_base64(&bytes)));
        }
        String::from_utf8(bytes)
            .map(Value::String)
            .map_err(|_| NotUtf8)
    };
    let Inputs {
        source,
        stdin,
        expected,
    } = inputs(&spec, language);
    let mut out = Map::new();
    for &field in fields {
        let value = match field {
            "source_code" => text(source.clone())?,
            "language_id" => json!(request.language_id),
            "stdin" => text(stdin.clone())?,
            "expected_output" => text(expected.clone())?,
            "stdout" => text(outcome.stdout.clone())?,
            "stderr" => text(outcome.stderr.clone())?,
            "compile_output" => text(outcome.compile_output.clone())?,
            "message" => text(outcome.message.clone().map(String::into_bytes))?,
            "status_id" => json!(outcome.status),
            "status" => status_json(outcome.status),
            "created_at" => timestamp(Some(spec.submitted_at_ms)),
            "finished_at" => timestamp(job.finished_at_ms),
            "time" => outcome.time.map_or(Value::Null, |t| json!(seconds_text(t))),
            "wall_time" => outcome
                .wall_time
                .map_or(Value::Null, |t| json!(seconds_text(t))),
            "memory" => json!(outcome.memory),
            "exit_code" => json!(outcome.exit_code),
            "exit_signal" => json!(outcome.exit_signal),
            "token" => json!(job.token),
            "number_of_runs" => json!(request.number_of_runs),
            "cpu_time_limit" => json!(seconds_text(request.cpu_time_limit)),
            "cpu_extra_time" => json!(seconds_text(request.cpu_extra_time)),
            "wall_time_limit" => json!(seconds_text(request.wall_time_limit)),
            "memory_limit" => json!(request.memory_limit),
            "stack_limit" => json!(request.stack_limit),
            "max_processes_and_or_threads" => json!(request.max_processes_and_or_threads),
            "enable_per_process_and_thread_time_limit"
            | "enable_per_process_and_thread_memory_limit"
            | "enable_network" => json!(false),
            "max_file_size" => json!(request.max_file_size),
            "compiler_options" => json!(request.compiler_options),
            "command_line_arguments" => json!(request.command_line_arguments),
            "redirect_stderr_to_stdout" => json!(request.redirect_stderr_to_stdout),
            "callback_url" => json!(request.callback_url),
            "language" => match language {
                Some(l) => json!({
                    "id": request.language_id,
                    "name": l.judge0_name(&version_of(job, l)),
                }),
                None => Value::Null,
            },
            // Not kept: the additional files (they are in the job's files).
            _ => Value::Null,
        };
        out.insert(field.to_string(), value);
    }
    Ok(out)
}

/// The version a job ran with (its result says), else the table's.
pub(super) fn version_of(job: &Submission, language: &Language) -> String {
    job.result
        .as_ref()
        .map(|r| r.version.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| language.version.clone())
}

/// A job's source, stdin and expected output, as bytes.
pub(super) struct Inputs {
    source: Option<Vec<u8>>,
    stdin: Option<Vec<u8>>,
    expected: Option<Vec<u8>>,
}

/// A job's [`Inputs`].
pub(super) fn inputs(spec: &JobSpec, language: Option<&Language>) -> Inputs {
    let decode = |text: &str| bytes_of(text, spec.base64);
    let project = language.is_some_and(|l| l.project);
    let source = spec
        .code
        .as_deref()
        .map(decode)
        .filter(|_| !project)
        .or_else(|| {
            if project {
                return None;
            }
            let entry = language.map(|l| l.source_file.as_str());
            spec.files
                .iter()
                .find(|f| Some(f.name.as_str()) == entry)
                .or(spec.files.first())
                .map(|f| decode(&f.content))
        });
    let (stdin, expected) = match spec.test_cases.first() {
        Some(case) => (
            Some(decode(&case.stdin)),
            case.expected_output.as_deref().map(decode),
        ),
        None => (
            Some(decode(&spec.stdin)),
            spec.expected_output.as_deref().map(decode),
        ),
    };
    Inputs {
        source,
        stdin: stdin.filter(|s| !s.is_empty()),
        expected,
    }
}

/// What a job made through another API would have asked Judge0.
pub(super) fn request_of(spec: &JobSpec, language: Option<&Language>) -> Judge0Request {
    let limits = spec.limits.unwrap_or_default();
    Judge0Request {
        language_id: language
            .and_then(|l| l.judge0.as_ref())
            .and_then(|j| j.ids.first().copied())
            .unwrap_or(0),
        number_of_runs: 1,
        cpu_time_limit: limits.cpu_time_ms.unwrap_or(0) as f64 / 1000.0,
        cpu_extra_time: 0.0,
        wall_time_limit: limits.wall_time_ms.unwrap_or(0) as f64 / 1000.0,
        memory_limit: limits.memory_mb.unwrap_or(0) * 1024,
        stack_limit: limits.stack_kb.unwrap_or(0),
        max_processes_and_or_threads: limits.processes.unwrap_or(0),
        max_file_size: limits.file_size_kb.unwrap_or(0),
        compiler_options: None,
        command_line_arguments: (!spec.args.is_empty()).then(|| spec.args.join(" ")),
        redirect_stderr_to_stdout: spec.stderr_to_stdout,
        callback_url: spec.callback_url.clone(),
    }
}
