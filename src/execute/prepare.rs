//! A job made ready to run: its inputs decoded, its files named, its limits
//! resolved, its checker or interactor and its cases.

use base64::Engine;
use monitor_protocol::FileSpec;

use crate::compare::Compare;
use crate::job::JobSpec;
use crate::language::Language;
use crate::limits::Limits;

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
    /// Skip the rest of a failed case's group (or every remaining case).
    pub stop_on_first_failure: bool,
    /// The program that judges each run (a checker or an interactor),
    /// when the job has one.
    pub judge: Option<PreparedProgram>,
}

/// What a judging program does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads each run's output after it ended.
    Checker,
    /// Talks with each run while it runs.
    Interactor,
}

impl Role {
    pub(super) fn name(self) -> &'static str {
        match self {
            Role::Checker => "checker",
            Role::Interactor => "interactor",
        }
    }
}

/// A judging program made ready: what it does, its source and the
/// language, version and limits it runs with.
#[derive(Debug, Clone)]
pub struct PreparedProgram {
    pub role: Role,
    pub language: Language,
    pub version: String,
    pub files: Vec<FileSpec>,
    pub limits: Limits,
}

/// A judging program's language resolved by the worker: the language, its
/// version on this worker, and the program's limits.
pub type ResolvedProgram = (Language, String, Limits);

#[derive(Debug, Clone)]
pub struct PreparedCase {
    pub stdin: Vec<u8>,
    pub expected: Option<Vec<u8>>,
    /// How its output is compared with `expected`.
    pub compare: Compare,
    /// What passing it is worth.
    pub points: f64,
    pub group: Option<String>,
}

/// The files a checker reads: the test's input, the solution's output and
/// the expected answer, in testlib's order on its command line. An
/// interactor gets the same names: the input, a file of its own to write
/// (`output.txt`, empty) and the answer.
pub const CHECKER_FILES: [&str; 3] = ["input.txt", "output.txt", "answer.txt"];

/// Decodes a job's inputs. Errors are the job's fault (bad base64, a bad
/// file name, no code) and end it as `internal_error` without a run: the API
/// refuses such jobs, so only a foreign producer can send them.
pub fn prepare(
    job_id: &str,
    spec: &JobSpec,
    language: &Language,
    version: &str,
    limits: Limits,
    judge: Option<ResolvedProgram>,
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
            points: 1.0,
            group: None,
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
                    points: case.points.unwrap_or(1.0),
                    group: case.group.clone(),
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
    let program = match (&spec.checker, &spec.interactor) {
        (Some(_), Some(_)) => return Err("a job has a checker or an interactor, not both".into()),
        (Some(checker), None) => Some((Role::Checker, checker)),
        (None, Some(interactor)) => Some((Role::Interactor, interactor)),
        (None, None) => None,
    };
    let judge = match (program, judge) {
        (Some((role, program)), Some((language, version, limits))) => {
            if spec.interactive {
                return Err(format!("an interactive job takes no {}", role.name()));
            }
            Some(PreparedProgram {
                role,
                files: vec![FileSpec {
                    name: language.source_file.clone(),
                    mode: 0o644,
                    content: decode(&format!("{}.code", role.name()), &program.code)?,
                }],
                language,
                version,
                limits,
            })
        }
        (Some((role, _)), None) => {
            return Err(format!("the {}'s language is not known here", role.name()));
        }
        (None, _) => None,
    };
    Ok(PreparedJob {
        stop_on_first_failure: spec.stop_on_first_failure,
        judge,
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
