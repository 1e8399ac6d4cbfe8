//! Piston's API v2 (engineer-man/piston, `docs/api-v2.md` and its
//! `api/src/api/v2.js`) as code-runner serves it: `GET /api/v2/runtimes`,
//! `POST /api/v2/execute` (synchronous) and `GET /api/v2/packages`.
//!
//! A request is checked as Piston checks it, with its words (`400
//! {"message": "language is required as a string"}`, `"<language>-<version>
//! runtime is unknown"`, `"run_timeout cannot exceed the configured limit of
//! 3000"`), and becomes one job; the finished job becomes Piston's
//! `{language, version, run, compile?}` with isolate's `status` codes
//! (`RE`, `SG`, `TO`, `OL`, `EL`, `XX`).

use std::collections::HashMap;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::job::{JobResult, RunFigures, Verdict};
use crate::language::{Language, LanguageTable};
use crate::limits::{Limits, MIN_MEMORY_MB, RequestedLimits};

/// Most files of one request (as the job API allows).
pub const MAX_FILES: usize = 64;

/// One file of a request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct FileParams {
    /// Its name (the first file's is the language's own when none).
    pub name: Option<String>,
    #[schema(required = true)]
    pub content: Option<String>,
    /// `utf8` (the default), `base64` or `hex`.
    #[schema(pattern = "^(utf8|base64|hex)$")]
    pub encoding: Option<String>,
}

/// `POST /api/v2/execute`'s body. Unknown attributes are ignored, as
/// Piston ignores them; a value of the wrong type is refused with Piston's
/// message for it (see [`type_error`]).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ExecuteParams {
    /// A language or alias (`GET /api/v2/runtimes`).
    #[schema(required = true)]
    pub language: Option<String>,
    /// A SemVer selector: `*`, `3`, `3.11`, `^3.10.0`...
    #[schema(required = true)]
    pub version: Option<String>,
    /// The first UTF-8 file is the program.
    #[serde(default, deserialize_with = "at_most_files")]
    #[schema(required = true, max_items = 64)]
    pub files: Option<Vec<FileParams>>,
    pub stdin: Option<String>,
    /// Arguments given to the program.
    pub args: Option<Vec<String>>,
    /// Milliseconds; 0 or absent: the default.
    pub compile_timeout: Option<f64>,
    /// Milliseconds of wall-clock time; 0 or absent: the default.
    pub run_timeout: Option<f64>,
    /// Milliseconds; checked, the compilation's CPU is bounded by its time.
    pub compile_cpu_time: Option<f64>,
    /// Milliseconds of CPU time; 0 or absent: the default.
    pub run_cpu_time: Option<f64>,
    /// Bytes; -1, 0 or absent: the default. Checked; the compilation's
    /// memory is its language's.
    pub compile_memory_limit: Option<f64>,
    /// Bytes (at least 16 MiB); -1, 0 or absent: the default.
    pub run_memory_limit: Option<f64>,
}

/// `files`, refused past [`MAX_FILES`] items without reading the rest.
fn at_most_files<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<FileParams>>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Option<Vec<FileParams>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_FILES} files")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut files = Vec::new();
            while let Some(file) = seq.next_element()? {
                if files.len() == MAX_FILES {
                    return Err(serde::de::Error::invalid_length(MAX_FILES + 1, &self));
                }
                files.push(file);
            }
            Ok(Some(files))
        }
    }
    deserializer.deserialize_any(Bounded)
}

/// Piston's message for a value of the wrong type at `path` (serde's path
/// of the field, e.g. `files[0].content`).
pub fn type_error(path: &str) -> String {
    let field = path.split('.').next().unwrap_or(path);
    match field {
        "language" => "language is required as a string".into(),
        "version" => "version is required as a string".into(),
        "stdin" => "stdin must be a string".into(),
        "args" => "args must be an array of strings".into(),
        "compile_timeout"
        | "run_timeout"
        | "compile_cpu_time"
        | "run_cpu_time"
        | "compile_memory_limit"
        | "run_memory_limit" => {
            format!("If specified, {field} must be a number")
        }
        _ if path.starts_with("files[") => {
            let index = path
                .trim_start_matches("files[")
                .split(']')
                .next()
                .unwrap_or("0");
            if path.ends_with(".name") {
                format!("files[{index}].name must be a string")
            } else if path.ends_with(".encoding") {
                format!("files[{index}].encoding must be one of utf8, base64 or hex")
            } else {
                format!("files[{index}].content is required as a string")
            }
        }
        "files" => format!("files is required as an array (of at most {MAX_FILES} files)"),
        _ => "the body is not valid JSON for this request".into(),
    }
}

/// The service's most for each of Piston's constraints, in Piston's units
/// (milliseconds, bytes): its "configured limits".
#[derive(Debug, Clone, Copy)]
pub struct Constraints {
    pub compile_timeout: u64,
    pub run_timeout: u64,
    pub compile_cpu_time: u64,
    pub run_cpu_time: u64,
    pub compile_memory_limit: u64,
    pub run_memory_limit: u64,
}

impl Constraints {
    pub fn new(max: &Limits) -> Constraints {
        Constraints {
            compile_timeout: max.compile_wall_time_ms,
            run_timeout: max.wall_time_ms,
            compile_cpu_time: max.compile_wall_time_ms,
            run_cpu_time: max.cpu_time_ms,
            compile_memory_limit: max.memory_bytes,
            run_memory_limit: max.memory_bytes,
        }
    }
}

/// The name Piston clients know a language by (the table's `piston`, else
/// its id).
pub fn piston_name(language: &Language) -> &str {
    language.piston.as_deref().unwrap_or(&language.id)
}

/// `GET /api/v2/runtimes`.
pub fn runtimes(languages: &LanguageTable, versions: &HashMap<String, Vec<String>>) -> Vec<Value> {
    languages
        .all()
        .iter()
        .map(|l| {
            let name = piston_name(l);
            let mut aliases: Vec<&str> = std::iter::once(l.id.as_str())
                .chain(l.aliases.iter().map(String::as_str))
                .filter(|a| *a != name)
                .collect();
            aliases.dedup();
            json!({ "language": name, "version": l.reported_version(versions), "aliases": aliases })
        })
        .collect()
}

/// `GET /api/v2/packages`: every language, installed when a live worker
/// has its image.
pub fn packages(
    languages: &LanguageTable,
    versions: &HashMap<String, Vec<String>>,
    ready: impl Fn(&Language) -> bool,
) -> Vec<Value> {
    languages
        .all()
        .iter()
        .map(|l| {
            json!({
                "language": piston_name(l),
                "language_version": l.reported_version(versions),
                "installed": ready(l),
            })
        })
        .collect()
}

/// A request made ready for the job API (whose checks it goes through next).
#[derive(Debug)]
pub struct Translated {
    /// The language's id in the table.
    pub language: String,
    /// The name and version the answer names.
    pub piston_language: String,
    pub version: String,
    /// `(name, bytes)`, the entry point (the first UTF-8 file) first.
    pub files: Vec<(String, Vec<u8>)>,
    pub stdin: String,
    pub args: Vec<String>,
    pub limits: RequestedLimits,
}

/// Turns a request into a job, or Piston's `400 {"message"}`.
pub fn translate(
    params: ExecuteParams,
    languages: &LanguageTable,
    versions: &HashMap<String, Vec<String>>,
    max: &Constraints,
) -> Result<Translated, String> {
    let Some(language_name) = params.language.filter(|l| !l.is_empty()) else {
        return Err("language is required as a string".into());
    };
    let Some(selector) = params.version.filter(|v| !v.is_empty()) else {
        return Err("version is required as a string".into());
    };
    let Some(files) = params.files else {
        return Err("files is required as an array".into());
    };
    if let Some(i) = files.iter().position(|f| f.content.is_none()) {
        return Err(format!("files[{i}].content is required as a string"));
    }
    let unknown = || format!("{language_name}-{selector} runtime is unknown");
    let language = languages
        .find(&language_name)
        .or_else(|| {
            languages
                .all()
                .iter()
                .find(|l| piston_name(l) == language_name)
        })
        .ok_or_else(unknown)?;
    let version = language.reported_version(versions).to_string();
    let declared = std::iter::once(language.version.as_str()).chain(
        versions
            .get(&language.id)
            .into_iter()
            .flatten()
            .map(String::as_str),
    );
    if !declared
        .into_iter()
        .any(|v| crate::language::version_matches(v, &selector))
    {
        return Err(unknown());
    }
    let utf8 = |f: &FileParams| f.encoding.as_deref().is_none_or(|e| e == "utf8");
    if !files.iter().any(utf8) {
        return Err("files must include at least one utf8 encoded file".into());
    }
    // Piston's constraint checks: 0 (or absent) takes the default, a value
    // past the most is refused. -1 ("no limit") takes the default here:
    // every run has limits.
    let mut limits = RequestedLimits::default();
    let constraints = [
        (
            "compile_memory_limit",
            params.compile_memory_limit,
            max.compile_memory_limit,
        ),
        (
            "run_memory_limit",
            params.run_memory_limit,
            max.run_memory_limit,
        ),
        (
            "compile_timeout",
            params.compile_timeout,
            max.compile_timeout,
        ),
        ("run_timeout", params.run_timeout, max.run_timeout),
        (
            "compile_cpu_time",
            params.compile_cpu_time,
            max.compile_cpu_time,
        ),
        ("run_cpu_time", params.run_cpu_time, max.run_cpu_time),
    ];
    for (name, value, most) in constraints {
        let Some(value) = value.filter(|v| *v != 0.0 && *v != -1.0) else {
            continue;
        };
        if value > most as f64 {
            return Err(format!(
                "{name} cannot exceed the configured limit of {most}"
            ));
        }
        if value < 0.0 {
            return Err(format!("{name} must be non-negative"));
        }
        let value = value.ceil() as u64;
        match name {
            "run_memory_limit" => {
                let least = MIN_MEMORY_MB << 20;
                if value < least {
                    return Err(format!("{name} must be at least {least}"));
                }
                limits.memory_mb = Some(value.div_ceil(1 << 20));
            }
            "compile_timeout" => limits.compile_wall_time_ms = Some(value),
            "run_timeout" => limits.wall_time_ms = Some(value),
            "run_cpu_time" => limits.cpu_time_ms = Some(value),
            // The compilation's memory and CPU are the language's own
            // (within its wall-clock limit): checked, not otherwise used.
            _ => {}
        }
    }
    let mut decoded = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let content = file.content.as_deref().unwrap_or("");
        let bytes = match file.encoding.as_deref().unwrap_or("utf8") {
            "utf8" => content.as_bytes().to_vec(),
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(content.trim())
                .map_err(|e| format!("files[{i}].content is not valid base64: {e}"))?,
            "hex" => hex::decode(content.trim())
                .map_err(|e| format!("files[{i}].content is not valid hex: {e}"))?,
            other => {
                return Err(format!(
                    "files[{i}].encoding must be one of utf8, base64 or hex, not {other:?}"
                ));
            }
        };
        let name = match file.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => name.to_string(),
            // Piston picks a name; the first file gets the language's own.
            None if i == 0 => language.source_file.clone(),
            None => format!("file{i}"),
        };
        decoded.push((name, bytes, utf8(file)));
    }
    // The entry point is the first UTF-8 file.
    let entry = decoded.iter().position(|(_, _, utf8)| *utf8).unwrap_or(0);
    let first = decoded.remove(entry);
    decoded.insert(0, first);
    Ok(Translated {
        language: language.id.clone(),
        piston_language: piston_name(language).to_string(),
        version,
        files: decoded.into_iter().map(|(n, b, _)| (n, b)).collect(),
        stdin: params.stdin.unwrap_or_default(),
        args: params.args.unwrap_or_default(),
        limits,
    })
}

/// A stage's result as Piston answers it.
fn stage(
    figures: &RunFigures,
    encoding: &str,
    code: Option<i32>,
    signal: Option<&str>,
    status: Option<&str>,
    message: Option<String>,
) -> Value {
    let text = |t: &str| -> String {
        if encoding == "base64" {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(t)
                .unwrap_or_else(|_| t.as_bytes().to_vec());
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            t.to_string()
        }
    };
    let stdout = text(&figures.stdout);
    let stderr = text(&figures.stderr);
    json!({
        "stdout": stdout,
        "stderr": stderr,
        "output": format!("{stdout}{stderr}"),
        "code": code,
        "signal": signal,
        "message": message,
        "status": status,
        "cpu_time": figures.cpu_time_ms,
        "wall_time": figures.wall_time_ms,
        "memory": figures.memory_peak_bytes,
    })
}

/// A finished job as Piston answers `POST /execute`.
pub fn response(result: &JobResult, piston_language: &str, version: &str, compiled: bool) -> Value {
    let encoding = result.encoding.as_str();
    let figures = &result.figures;
    let signal_number = figures
        .signal
        .as_deref()
        .and_then(monitor_protocol::signal_number);
    let (status, message, signal): (Option<&str>, Option<String>, Option<&str>) = match result
        .verdict
    {
        Verdict::Accepted | Verdict::WrongAnswer | Verdict::PresentationError => (None, None, None),
        Verdict::RuntimeError => match signal_number {
            Some(n) => (
                Some("SG"),
                Some(format!("Caught fatal signal {n}")),
                figures.signal.as_deref(),
            ),
            None => (
                Some("RE"),
                Some(format!(
                    "Exited with error status {}",
                    figures.exit_code.unwrap_or(1)
                )),
                None,
            ),
        },
        Verdict::TimeLimitExceeded => (
            Some("TO"),
            Some("Time limit exceeded".into()),
            Some("SIGKILL"),
        ),
        Verdict::MemoryLimitExceeded => (
            Some("SG"),
            Some("Memory limit exceeded (killed at its memory limit)".into()),
            Some("SIGKILL"),
        ),
        Verdict::OutputLimitExceeded if figures.stderr_truncated && !figures.stdout_truncated => (
            Some("EL"),
            Some("stderr length exceeded".into()),
            Some("SIGKILL"),
        ),
        Verdict::OutputLimitExceeded => (
            Some("OL"),
            Some("stdout length exceeded".into()),
            Some("SIGKILL"),
        ),
        Verdict::CompilationError
        | Verdict::Cancelled
        | Verdict::InternalError
        | Verdict::Skipped => (Some("XX"), result.message.clone(), None),
    };
    let code = if signal.is_some() {
        None
    } else {
        Some(figures.exit_code.unwrap_or(0))
    };
    let mut answer = json!({ "language": piston_language, "version": version });
    let compile_failed = result.verdict == Verdict::CompilationError;
    if compiled {
        let compile = result.compile.clone().unwrap_or_default();
        let compile_signal = compile.signal.clone();
        let (code, status, message) = if compile_failed {
            match &compile_signal {
                Some(_) => (None, Some("SG"), result.message.clone()),
                None => (
                    Some(compile.exit_code.unwrap_or(1))
                        .filter(|c| *c != 0)
                        .or(Some(1)),
                    Some("RE"),
                    result.message.clone(),
                ),
            }
        } else {
            (Some(compile.exit_code.unwrap_or(0)), None, None)
        };
        answer["compile"] = stage(
            &compile,
            encoding,
            code,
            compile_signal.as_deref(),
            status,
            message,
        );
    }
    answer["run"] = if compile_failed {
        // Not run: an empty stage, so that clients reading `run` find one.
        stage(
            &RunFigures::default(),
            "utf8",
            None,
            None,
            None,
            Some("the compilation failed: the program did not run".into()),
        )
    } else {
        stage(figures, encoding, code, signal, status, message)
    };
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::RunStatus;

    fn params(json: &str) -> ExecuteParams {
        serde_json::from_str(json).unwrap()
    }

    fn max() -> Constraints {
        Constraints {
            compile_timeout: 30_000,
            run_timeout: 10_000,
            compile_cpu_time: 30_000,
            run_cpu_time: 10_000,
            compile_memory_limit: 512 << 20,
            run_memory_limit: 512 << 20,
        }
    }

    fn translated(json: &str) -> Result<Translated, String> {
        let versions = HashMap::from([("javascript".to_string(), vec!["18.20.4".to_string()])]);
        translate(params(json), &LanguageTable::built_in(), &versions, &max())
    }

    #[test]
    fn the_documented_request_becomes_a_job() {
        let t = translated(
            r#"{"language":"js","version":"18.20.4","files":[{"name":"my_cool_code.js","content":"console.log(process.argv)"}],"stdin":"","args":["1","2","3"],"compile_timeout":10000,"run_timeout":3000,"compile_memory_limit":-1,"run_memory_limit":-1}"#,
        )
        .unwrap();
        assert_eq!(t.language, "javascript");
        assert_eq!(t.version, "18.20.4");
        assert_eq!(t.files[0].0, "my_cool_code.js");
        assert_eq!(t.args, ["1", "2", "3"]);
        assert_eq!(t.limits.wall_time_ms, Some(3000));
        assert_eq!(t.limits.memory_mb, None);
    }

    #[test]
    fn errors_are_pistons() {
        assert_eq!(
            translated(r#"{}"#).unwrap_err(),
            "language is required as a string"
        );
        assert_eq!(
            translated(r#"{"language":"js"}"#).unwrap_err(),
            "version is required as a string"
        );
        assert_eq!(
            translated(r#"{"language":"js","version":"*"}"#).unwrap_err(),
            "files is required as an array"
        );
        assert_eq!(
            translated(r#"{"language":"js","version":"*","files":[{"name":"a"}]}"#).unwrap_err(),
            "files[0].content is required as a string"
        );
        assert_eq!(
            translated(r#"{"language":"brainfuck","version":"*","files":[{"content":"+"}]}"#)
                .unwrap_err(),
            "brainfuck-* runtime is unknown"
        );
        assert_eq!(
            translated(r#"{"language":"js","version":"99","files":[{"content":"1"}]}"#)
                .unwrap_err(),
            "js-99 runtime is unknown"
        );
        assert_eq!(
            translated(
                r#"{"language":"js","version":"*","files":[{"content":"aGk=","encoding":"base64"}]}"#
            )
            .unwrap_err(),
            "files must include at least one utf8 encoded file"
        );
        assert_eq!(
            translated(
                r#"{"language":"js","version":"*","files":[{"content":"1"}],"run_timeout":999999}"#
            )
            .unwrap_err(),
            "run_timeout cannot exceed the configured limit of 10000"
        );
        assert_eq!(
            translated(
                r#"{"language":"js","version":"*","files":[{"content":"1"}],"run_timeout":-5}"#
            )
            .unwrap_err(),
            "run_timeout must be non-negative"
        );
        assert_eq!(
            type_error("run_timeout"),
            "If specified, run_timeout must be a number"
        );
        assert_eq!(
            type_error("files[2].content"),
            "files[2].content is required as a string"
        );
    }

    #[test]
    fn files_keep_their_bytes_and_the_first_utf8_file_is_the_entry() {
        let t = translated(
            r#"{"language":"js","version":"*","files":[{"name":"data.bin","content":"AAE=","encoding":"base64"},{"name":"x.js","content":"1"},{"name":"h","content":"ff00","encoding":"hex"}]}"#,
        )
        .unwrap();
        assert_eq!(t.files[0], ("x.js".to_string(), b"1".to_vec()));
        assert_eq!(t.files[1], ("data.bin".to_string(), vec![0, 1]));
        assert_eq!(t.files[2], ("h".to_string(), vec![0xff, 0]));
        let unnamed =
            translated(r#"{"language":"js","version":"*","files":[{"content":"1"}]}"#).unwrap();
        assert_eq!(unnamed.files[0].0, "main.js");
    }

    fn result(verdict: Verdict, figures: RunFigures) -> JobResult {
        JobResult {
            status: RunStatus::Success,
            figures,
            encoding: "utf8".into(),
            language: "python".into(),
            version: "3.11.2".into(),
            ..JobResult::of(verdict)
        }
    }

    #[test]
    fn a_result_is_answered_as_piston_answers_it() {
        let ok = response(
            &result(
                Verdict::Accepted,
                RunFigures {
                    stdout: "out\n".into(),
                    stderr: "err\n".into(),
                    exit_code: Some(0),
                    cpu_time_ms: 12,
                    wall_time_ms: 30,
                    memory_peak_bytes: 4096,
                    ..RunFigures::default()
                },
            ),
            "python",
            "3.11.2",
            false,
        );
        assert_eq!(
            ok,
            json!({"language": "python", "version": "3.11.2", "run": {
                "stdout": "out\n", "stderr": "err\n", "output": "out\nerr\n", "code": 0,
                "signal": null, "message": null, "status": null, "cpu_time": 12, "wall_time": 30,
                "memory": 4096}})
        );
        let exited = response(
            &result(
                Verdict::RuntimeError,
                RunFigures {
                    exit_code: Some(3),
                    ..RunFigures::default()
                },
            ),
            "python",
            "3.11.2",
            false,
        );
        assert_eq!(
            (
                exited["run"]["status"].as_str(),
                exited["run"]["code"].as_i64()
            ),
            (Some("RE"), Some(3))
        );
        let killed = response(
            &result(
                Verdict::RuntimeError,
                RunFigures {
                    signal: Some("SIGSEGV".into()),
                    ..RunFigures::default()
                },
            ),
            "python",
            "3.11.2",
            false,
        );
        assert_eq!(killed["run"]["signal"], "SIGSEGV");
        assert_eq!(killed["run"]["code"], Value::Null);
        assert_eq!(killed["run"]["status"], "SG");
        let slow = response(
            &result(Verdict::TimeLimitExceeded, RunFigures::default()),
            "python",
            "3",
            false,
        );
        assert_eq!(
            (
                slow["run"]["status"].as_str(),
                slow["run"]["signal"].as_str()
            ),
            (Some("TO"), Some("SIGKILL"))
        );
        let mut failed = result(Verdict::CompilationError, RunFigures::default());
        failed.compile = Some(RunFigures {
            stderr: "bad".into(),
            exit_code: Some(1),
            ..RunFigures::default()
        });
        let compiled = response(&failed, "c", "12.2.0", true);
        assert_eq!(compiled["compile"]["code"], 1);
        assert_eq!(compiled["compile"]["stderr"], "bad");
        assert_eq!(compiled["run"]["code"], Value::Null);
    }
}
