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
    /// Who submitted it (its key, or its client address), if known.
    pub client: Option<String>,
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
        client: spec.client.clone(),
        interactive: spec
            .interactive
            .then(|| spec.limits.and_then(|l| l.idle_time_ms).unwrap_or(0)),
        limits,
        base64: spec.base64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JudgeProgram, SourceFile, TestCase};
    use crate::language::LanguageTable;

    fn limits() -> Limits {
        Limits {
            wall_time_ms: 1_000,
            cpu_time_ms: 1_000,
            memory_bytes: 64 << 20,
            processes: 16,
            output_bytes: 1 << 16,
            compile_wall_time_ms: 10_000,
        }
    }

    fn python() -> Language {
        LanguageTable::built_in().find("python").unwrap().clone()
    }

    fn prepared(spec: &JobSpec) -> Result<PreparedJob, String> {
        prepare("j", spec, &python(), "3", limits(), None)
    }

    #[test]
    fn code_becomes_the_languages_source_file_and_one_case() {
        let spec = JobSpec {
            code: Some("print(1)".into()),
            stdin: "in".into(),
            expected_output: Some("1\n".into()),
            ..JobSpec::default()
        };
        let job = prepared(&spec).unwrap();
        assert_eq!(job.files.len(), 1);
        assert_eq!(job.files[0].name, python().source_file);
        assert_eq!(job.files[0].content, b"print(1)");
        assert_eq!(job.cases.len(), 1);
        assert_eq!(job.cases[0].stdin, b"in");
        assert_eq!(job.cases[0].expected.as_deref(), Some(&b"1\n"[..]));
        assert!(!job.has_test_cases);
    }

    #[test]
    fn base64_inputs_are_decoded_and_a_bad_one_names_its_field() {
        let spec = JobSpec {
            code: Some("cHJpbnQoMSk=".into()),
            base64: true,
            test_cases: vec![
                TestCase {
                    stdin: "AAE=".into(),
                    points: Some(2.0),
                    group: Some("g".into()),
                    ..TestCase::default()
                },
                TestCase {
                    stdin: "not base64!".into(),
                    ..TestCase::default()
                },
            ],
            ..JobSpec::default()
        };
        let error = prepared(&spec).unwrap_err();
        assert!(
            error.starts_with("test_cases[1].stdin is not valid base64"),
            "{error}"
        );
        let mut good = spec.clone();
        good.test_cases.truncate(1);
        let job = prepared(&good).unwrap();
        assert_eq!(job.files[0].content, b"print(1)");
        assert_eq!(job.cases[0].stdin, [0, 1]);
        assert_eq!(job.cases[0].points, 2.0);
        assert_eq!(job.cases[0].group.as_deref(), Some("g"));
        assert!(job.has_test_cases);
    }

    #[test]
    fn what_the_api_refuses_is_refused_here_too() {
        let file = |name: &str| SourceFile {
            name: name.into(),
            content: String::new(),
        };
        let no_source = JobSpec::default();
        assert_eq!(
            prepared(&no_source).unwrap_err(),
            "the job has neither code nor files"
        );
        let bad_name = JobSpec {
            files: vec![file("../x")],
            ..JobSpec::default()
        };
        assert!(prepared(&bad_name).unwrap_err().contains("plain file name"));
        let twice = JobSpec {
            files: vec![file("a.py"), file("a.py")],
            ..JobSpec::default()
        };
        assert_eq!(prepared(&twice).unwrap_err(), "files[1].name is used twice");
        let interactive_cases = JobSpec {
            code: Some("x".into()),
            interactive: true,
            test_cases: vec![TestCase::default()],
            ..JobSpec::default()
        };
        assert!(prepared(&interactive_cases).is_err());
        let checker = JudgeProgram {
            language: "python".into(),
            code: "pass".into(),
            limits: None,
        };
        let both = JobSpec {
            code: Some("x".into()),
            checker: Some(checker.clone()),
            interactor: Some(checker.clone()),
            ..JobSpec::default()
        };
        assert!(prepared(&both).unwrap_err().contains("not both"));
        // A checker whose language the worker could not resolve.
        let unresolved = JobSpec {
            code: Some("x".into()),
            checker: Some(checker),
            ..JobSpec::default()
        };
        assert_eq!(
            prepared(&unresolved).unwrap_err(),
            "the checker's language is not known here"
        );
    }

    #[test]
    fn a_checker_is_prepared_with_its_own_language_and_limits() {
        let spec = JobSpec {
            code: Some("x".into()),
            checker: Some(JudgeProgram {
                language: "python".into(),
                code: "import sys".into(),
                limits: None,
            }),
            ..JobSpec::default()
        };
        let own = Limits {
            wall_time_ms: 5_000,
            ..limits()
        };
        let job = prepare(
            "j",
            &spec,
            &python(),
            "3",
            limits(),
            Some((python(), "3".into(), own)),
        )
        .unwrap();
        let judge = job.judge.unwrap();
        assert_eq!(judge.role, Role::Checker);
        assert_eq!(judge.limits.wall_time_ms, 5_000);
        assert_eq!(judge.files[0].content, b"import sys");
    }
}
