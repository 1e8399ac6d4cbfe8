//! A job request checked section by section against the server's rules,
//! each error naming its field.

use base64::Engine;

use super::{
    AcceptedJob, FileRequest, JobRequest, LimitsRequest, MAX_ARG_BYTES, MAX_ARGS, MAX_FILES,
    MAX_GROUP, MAX_IDEMPOTENCY_KEY, MAX_POINTS, MAX_PRIORITY, ProgramRequest, RequestRules,
    TestCaseRequest,
};
use crate::compare::Compare;
use crate::http::error::ApiError;
use crate::job::{JobSpec, JudgeProgram, SourceFile, TestCase, now_ms};
use crate::language::Language;
use crate::limits::{Limits, RequestedLimits};

/// Checks one job request; `prefix` names its place in a batch. Each
/// section of the request is checked in turn, in the order a client reads
/// the errors (the language first, its options last).
pub fn check(
    request: JobRequest,
    rules: &RequestRules,
    prefix: &str,
) -> Result<AcceptedJob, ApiError> {
    let base64 = request.base64.unwrap_or(false);
    let at = Place {
        rules,
        prefix,
        base64,
    };
    let language = at.language("language", &request.language)?;
    at.version(language, request.version.as_deref())?;
    let files = at.sources(request.code.as_deref(), request.files.as_deref())?;

    let test_cases = request.test_cases.unwrap_or_default();
    let interactive = request.interactive.unwrap_or(false);
    at.inputs(
        request.stdin.as_deref(),
        request.expected_output.as_deref(),
        &test_cases,
        interactive,
    )?;
    let compare = request
        .compare
        .map(|c| c.check("compare", &|name, message| at.bad(name, message)))
        .transpose()?;
    let case_compares = at.cases(&test_cases)?;

    if request.checker.is_some() && request.interactor.is_some() {
        return Err(at.bad(
            "checker",
            "give a checker or an interactor, not both (the interactor judges)".into(),
        ));
    }
    let checker = at.judge("checker", request.checker, interactive)?;
    let interactor = at.judge("interactor", request.interactor, interactive)?;
    let args = at.args(request.args.unwrap_or_default())?;

    let mut limits = request.limits.unwrap_or_default();
    if interactive && limits.wall_time_ms.is_none() {
        // A person is at the other end: as long as the server allows.
        limits.wall_time_ms = Some(rules.max_limits.wall_time_ms);
    }
    let limits = check_limits(limits, rules.max_limits, &|name, message| {
        at.bad(name, message)
    })?;
    at.callback_url(request.callback_url.as_deref())?;
    let priority = at.priority(request.priority)?;
    at.idempotency_key(request.idempotency_key.as_deref())?;

    Ok(AcceptedJob {
        spec: JobSpec {
            language: language.id.clone(),
            version: request.version,
            code: request.code,
            files,
            stdin: request.stdin.unwrap_or_default(),
            args,
            limits,
            expected_output: request.expected_output,
            compare,
            test_cases: test_cases
                .into_iter()
                .zip(case_compares)
                .map(|(c, compare)| TestCase {
                    compare,
                    stdin: c.stdin.unwrap_or_default(),
                    expected_output: c.expected_output,
                    points: c.points,
                    group: c.group,
                })
                .collect(),
            stop_on_first_failure: request.stop_on_first_failure.unwrap_or(false),
            checker,
            interactor,
            base64,
            callback_url: request.callback_url,
            submitted_at_ms: now_ms(),
            // Set by the handler from the caller and its request.
            owner: None,
            caller: None,
            trace_id: None,
            interactive,
            ..JobSpec::default()
        },
        priority,
        idempotency_key: request.idempotency_key,
    })
}

/// Where a request is checked: the server's rules, the request's place in
/// a batch (`prefix`) and whether its texts are base64.
struct Place<'a> {
    rules: &'a RequestRules<'a>,
    prefix: &'a str,
    base64: bool,
}

impl Place<'_> {
    /// A field's full name (`jobs[2].stdin`).
    fn field(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// 400 naming the field.
    fn bad(&self, name: &str, message: String) -> ApiError {
        ApiError::bad_field(self.field(name), message)
    }

    /// 413 naming the field.
    fn too_large(&self, name: &str, len: usize, max: usize) -> ApiError {
        ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} is {len} bytes; the limit is {max} bytes",
                self.field(name)
            ),
        )
        .with_field(self.field(name))
    }

    /// A text's size once decoded (base64 when the request says so).
    fn decoded_len(&self, name: &str, text: &str) -> Result<usize, ApiError> {
        if self.base64 {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(|b| b.len())
                .map_err(|e| {
                    self.bad(
                        name,
                        format!("{}: not valid base64 ({e})", self.field(name)),
                    )
                })
        } else {
            Ok(text.len())
        }
    }

    /// A language of the table, by its id or one of its aliases.
    fn language(&self, name: &str, language: &str) -> Result<&Language, ApiError> {
        let languages = self.rules.languages;
        languages.find(language).ok_or_else(|| {
            self.bad(
                name,
                format!(
                    "unknown language {language:?}; available: {}",
                    languages.ids().join(", ")
                ),
            )
        })
    }

    /// A version asked for: the table's or one a worker's image reports.
    fn version(&self, language: &Language, version: Option<&str>) -> Result<(), ApiError> {
        let Some(version) = version else {
            return Ok(());
        };
        let mut known = vec![language.version.clone()];
        known.extend(
            self.rules
                .versions
                .get(&language.id)
                .cloned()
                .unwrap_or_default(),
        );
        if known
            .iter()
            .any(|v| crate::language::version_matches(v, version))
        {
            return Ok(());
        }
        Err(self.bad(
            "version",
            format!(
                "{} {version:?} is not available; available: {}",
                language.id,
                known.join(", ")
            ),
        ))
    }

    /// The source: `code` or `files` (plain names, each once), within the
    /// code size limit together.
    fn sources(
        &self,
        code: Option<&str>,
        requested: Option<&[FileRequest]>,
    ) -> Result<Vec<SourceFile>, ApiError> {
        let max = self.rules.max_code_bytes;
        match (code, requested) {
            (Some(_), Some(_)) => {
                return Err(self.bad("files", "give either code or files, not both".into()));
            }
            (None, None) => return Err(self.bad("code", "code (or files) is required".into())),
            _ => {}
        }
        let mut source_bytes = 0;
        if let Some(code) = code {
            source_bytes += self.decoded_len("code", code)?;
            if source_bytes > max {
                return Err(self.too_large("code", source_bytes, max));
            }
        }
        let mut files = Vec::new();
        let Some(requested) = requested else {
            return Ok(files);
        };
        if requested.is_empty() {
            return Err(self.bad("files", "files must not be empty".into()));
        }
        if requested.len() > MAX_FILES {
            return Err(self.bad("files", format!("at most {MAX_FILES} files")));
        }
        for (i, file) in requested.iter().enumerate() {
            let name = format!("files[{i}].name");
            if !monitor_protocol::valid_file_name(&file.name) {
                return Err(self.bad(
                    &name,
                    format!("{}: a plain file name is needed", self.field(&name)),
                ));
            }
            if requested[..i].iter().any(|f| f.name == file.name) {
                return Err(self.bad(
                    &name,
                    format!("{}: {:?} is used twice", self.field(&name), file.name),
                ));
            }
            source_bytes += self.decoded_len(&format!("files[{i}].content"), &file.content)?;
            if source_bytes > max {
                return Err(self.too_large("files", source_bytes, max));
            }
            files.push(SourceFile {
                name: file.name.clone(),
                content: file.content.clone(),
            });
        }
        Ok(files)
    }

    /// The inputs: a job's stdin and expected output, or each test case's
    /// (never both), within the size limit together; no test case for an
    /// interactive job.
    fn inputs(
        &self,
        stdin: Option<&str>,
        expected_output: Option<&str>,
        test_cases: &[TestCaseRequest],
        interactive: bool,
    ) -> Result<(), ApiError> {
        if interactive && !test_cases.is_empty() {
            return Err(self.bad(
                "interactive",
                "an interactive job has one run: it takes no test_cases".into(),
            ));
        }
        if !test_cases.is_empty() {
            if stdin.is_some() {
                return Err(self.bad(
                    "stdin",
                    "with test_cases, give each case its own stdin".into(),
                ));
            }
            if expected_output.is_some() {
                return Err(self.bad(
                    "expected_output",
                    "with test_cases, give each case its own expected_output".into(),
                ));
            }
            if test_cases.len() > self.rules.max_test_cases {
                return Err(self.bad(
                    "test_cases",
                    format!("at most {} test cases", self.rules.max_test_cases),
                ));
            }
        }
        let max = self.rules.max_code_bytes;
        let mut input_bytes = 0;
        let mut count_input = |name: &str, text: Option<&str>| -> Result<(), ApiError> {
            if let Some(text) = text {
                input_bytes += self.decoded_len(name, text)?;
                if input_bytes > max {
                    return Err(self.too_large(name, input_bytes, max));
                }
            }
            Ok(())
        };
        count_input("stdin", stdin)?;
        count_input("expected_output", expected_output)?;
        for (i, case) in test_cases.iter().enumerate() {
            count_input(&format!("test_cases[{i}].stdin"), case.stdin.as_deref())?;
            count_input(
                &format!("test_cases[{i}].expected_output"),
                case.expected_output.as_deref(),
            )?;
        }
        Ok(())
    }

    /// Each test case's comparison, points and group.
    fn cases(&self, test_cases: &[TestCaseRequest]) -> Result<Vec<Option<Compare>>, ApiError> {
        let bad = |name: &str, message: String| self.bad(name, message);
        let mut compares = Vec::with_capacity(test_cases.len());
        for (i, case) in test_cases.iter().enumerate() {
            compares.push(
                case.compare
                    .map(|c| c.check(&format!("test_cases[{i}].compare"), &bad))
                    .transpose()?,
            );
        }
        for (i, case) in test_cases.iter().enumerate() {
            if let Some(points) = case.points
                && !(points.is_finite() && (0.0..=MAX_POINTS).contains(&points))
            {
                let name = format!("test_cases[{i}].points");
                return Err(self.bad(
                    &name,
                    format!("{} must be between 0 and {MAX_POINTS}", self.field(&name)),
                ));
            }
            if let Some(group) = &case.group
                && (group.is_empty()
                    || group.len() > MAX_GROUP
                    || group.chars().any(char::is_control))
            {
                let name = format!("test_cases[{i}].group");
                return Err(self.bad(
                    &name,
                    format!(
                        "{} must be 1 to {MAX_GROUP} printable characters",
                        self.field(&name)
                    ),
                ));
            }
        }
        Ok(compares)
    }

    /// A checker or an interactor (`role`): a known language, some code
    /// within the size limit, its own limits; none for an interactive job.
    fn judge(
        &self,
        role: &str,
        program: Option<ProgramRequest>,
        interactive: bool,
    ) -> Result<Option<JudgeProgram>, ApiError> {
        let Some(program) = program else {
            return Ok(None);
        };
        if interactive {
            return Err(self.bad(
                role,
                format!("an interactive job is not judged: it takes no {role}"),
            ));
        }
        let named = |name: &str| format!("{role}.{name}");
        let language = self.language(&named("language"), &program.language)?;
        let len = self.decoded_len(&named("code"), &program.code)?;
        if len == 0 {
            return Err(self.bad(&named("code"), format!("{role}.code must not be empty")));
        }
        if len > self.rules.max_code_bytes {
            return Err(self.too_large(&named("code"), len, self.rules.max_code_bytes));
        }
        let program_bad =
            |name: &str, message: String| self.bad(&named(name), format!("{role}.{message}"));
        let limits = check_limits(
            program.limits.unwrap_or_default(),
            self.rules.max_limits,
            &program_bad,
        )?;
        Ok(Some(JudgeProgram {
            language: language.id.clone(),
            code: program.code,
            limits,
        }))
    }

    /// The program's arguments: a bounded number of bounded strings.
    fn args(&self, args: Vec<String>) -> Result<Vec<String>, ApiError> {
        if args.len() > MAX_ARGS {
            return Err(self.bad("args", format!("at most {MAX_ARGS} arguments")));
        }
        for (i, arg) in args.iter().enumerate() {
            if arg.len() > MAX_ARG_BYTES || arg.contains('\0') {
                let name = format!("args[{i}]");
                return Err(self.bad(
                    &name,
                    format!(
                        "{}: at most {MAX_ARG_BYTES} bytes, no NUL",
                        self.field(&name)
                    ),
                ));
            }
        }
        Ok(args)
    }

    /// A webhook: an http(s) URL with a host.
    fn callback_url(&self, url: Option<&str>) -> Result<(), ApiError> {
        let Some(url) = url else {
            return Ok(());
        };
        let ok = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok || url.len() > 2048 {
            return Err(self.bad(
                "callback_url",
                "callback_url must be an http(s) URL with a host".into(),
            ));
        }
        Ok(())
    }

    /// The priority: 0 (first, the default) to [`MAX_PRIORITY`].
    fn priority(&self, priority: Option<u32>) -> Result<u32, ApiError> {
        let priority = priority.unwrap_or(0);
        if priority > MAX_PRIORITY {
            return Err(self.bad(
                "priority",
                format!("priority must be 0 (first, the default) to {MAX_PRIORITY} (last)"),
            ));
        }
        Ok(priority)
    }

    /// An idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY`] printable characters.
    fn idempotency_key(&self, key: Option<&str>) -> Result<(), ApiError> {
        if let Some(key) = key
            && (key.is_empty()
                || key.len() > MAX_IDEMPOTENCY_KEY
                || key.chars().any(char::is_control))
        {
            return Err(self.bad(
                "idempotency_key",
                format!("idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"),
            ));
        }
        Ok(())
    }
}

/// The limits asked for, checked against `max` (see
/// [`RequestedLimits::check`]); `None` when none was given.
fn check_limits(
    limits: LimitsRequest,
    max: &Limits,
    bad: &dyn Fn(&str, String) -> ApiError,
) -> Result<Option<RequestedLimits>, ApiError> {
    let requested = RequestedLimits {
        wall_time_ms: limits.wall_time_ms,
        cpu_time_ms: limits.cpu_time_ms,
        memory_mb: limits.memory_mb,
        processes: limits.processes,
        output_bytes: limits.output_bytes,
        compile_wall_time_ms: limits.compile_wall_time_ms,
        idle_time_ms: limits.idle_time_ms,
        ..RequestedLimits::default()
    };
    requested.check(max).map_err(|e| bad(&e.field, e.message))?;
    Ok((requested != RequestedLimits::default()).then_some(requested))
}
