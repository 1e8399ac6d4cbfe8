//! `POST /v1/jobs` request bodies: parsing with the path of every bad
//! field, and checking each value against the server's limits (`check`).

mod check;

pub use check::check;

use serde::Deserialize;

use super::error::ApiError;
use crate::compare::{Compare, CompareMode};
use crate::job::JobSpec;
use crate::language::LanguageTable;
use crate::limits::Limits;

/// Most files in one job.
pub const MAX_FILES: usize = 64;
/// Most arguments, and the longest one.
pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 4096;
/// Highest priority number (BullMQ: 0 runs first, larger numbers later).
pub const MAX_PRIORITY: u32 = 1_000;
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// A language id or alias (see `GET /v1/languages`).
    pub language: String,
    /// A version the job needs, a node-semver range as Piston takes them
    /// (`3`, `3.11`, `>=3.10 <4`, `^3.11 || ^3.12`, ...); 400 when no
    /// worker has one it selects.
    #[serde(default)]
    pub version: Option<String>,
    /// The program, written to the language's `source_file`. Give `code` or
    /// `files`.
    #[serde(default)]
    pub code: Option<String>,
    /// The program as several files; the first is the entry point.
    #[serde(default, deserialize_with = "objects::<_, MAX_FILES, _>")]
    pub files: Option<Vec<FileRequest>>,
    /// Standard input of the run (without `test_cases`).
    #[serde(default)]
    pub stdin: Option<String>,
    /// Arguments given to the program (up to 64, 4096 bytes each).
    #[serde(default, deserialize_with = "at_most::<_, MAX_ARGS, _>")]
    pub args: Option<Vec<String>>,
    /// Limits of each run; each at most the server's maximum.
    #[serde(default, deserialize_with = "object")]
    pub limits: Option<LimitsRequest>,
    /// What the run must print: `wrong_answer` otherwise (compared after
    /// trimming trailing white space of each line and trailing empty lines).
    #[serde(default)]
    pub expected_output: Option<String>,
    /// Runs against one compilation, each with its own stdin, expected
    /// output, verdict and figures.
    #[serde(default, deserialize_with = "objects::<_, MAX_LIST, _>")]
    pub test_cases: Option<Vec<TestCaseRequest>>,
    /// `code`, file contents, stdin and expected outputs are base64, and so
    /// are the outputs in the result (exact bytes).
    #[serde(default)]
    pub base64: Option<bool>,
    /// The finished job is POSTed here, signed (`X-Code-Runner-Signature`).
    #[serde(default)]
    pub callback_url: Option<String>,
    /// 0 (the default) runs first; larger numbers run later (up to 1000).
    #[serde(default)]
    #[schema(maximum = 1000)]
    pub priority: Option<u32>,
    /// The same key within a day answers the same job instead of a new one.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
    /// How output is compared with `expected_output`: a mode (`"exact"`,
    /// `"lines"`, the default, `"tokens"`, `"float"`), or an object with
    /// `mode`, `case_insensitive`, and for `float` `abs_error` and
    /// `rel_error` (default 1e-6 each). Each test case may set its own.
    #[serde(default)]
    pub compare: Option<CompareRequest>,
    /// Interactive: the run's stdin is what clients send while it runs
    /// (`/v1/jobs/{id}/stream` or `POST /v1/jobs/{id}/input`), after
    /// `stdin` if given; it stops after `limits.idle_time_ms` without input
    /// or output, or when no client has been connected for a while. Its
    /// wall-clock limit defaults to the server's most. Not with
    /// `test_cases`.
    #[serde(default)]
    pub interactive: Option<bool>,
    /// Once a test case fails, skip the rest of its `group` (a case in no
    /// group: every remaining case); skipped cases say so.
    #[serde(default)]
    pub stop_on_first_failure: Option<bool>,
    /// A checker program ("special judge") that decides each run instead
    /// of `compare`: it runs in its own container as `checker input.txt
    /// output.txt answer.txt` (testlib's convention: exit 0 accepted, 1
    /// wrong answer, 2 presentation error, 7 partial points, anything else
    /// a failure of the checker). C++ checkers may `#include "testlib.h"`.
    #[serde(default, deserialize_with = "object")]
    pub checker: Option<ProgramRequest>,
    /// An interactor: a program that talks with the solution, each in its
    /// own container, the solution's stdout relayed to its stdin and its
    /// stdout to the solution's stdin, in order. It runs as `interactor
    /// input.txt output.txt answer.txt` (testlib's `registerInteraction`:
    /// the case's `stdin` is its input, not the solution's) and its exit
    /// status judges the case as a checker's does. Not with `checker` nor
    /// `interactive`.
    #[serde(default, deserialize_with = "object")]
    pub interactor: Option<ProgramRequest>,
}

/// `checker` or `interactor` as a client sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramRequest {
    /// A language id or alias (see `GET /v1/languages`).
    pub language: String,
    /// Its source (base64 when the job's `base64` is set).
    pub code: String,
    /// Its limits on each run (and its compilation's wall-clock time).
    #[serde(default, deserialize_with = "object")]
    pub limits: Option<LimitsRequest>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRequest {
    /// A plain file name (no directory).
    pub name: String,
    /// The content (base64 when the job's `base64` is set).
    pub content: String,
}

/// `limits` as a client sends it: strict (an unknown field is a 400), where
/// the stored [`RequestedLimits`] it becomes is tolerant, so that a job a
/// newer API queued never fails to decode in an older worker.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    /// Wall-clock time of each run, in milliseconds.
    pub wall_time_ms: Option<u64>,
    /// CPU time of each run (all its processes), in milliseconds.
    pub cpu_time_ms: Option<u64>,
    /// Memory of each run, in MiB (no swap).
    pub memory_mb: Option<u64>,
    /// Processes and threads at once.
    pub processes: Option<i64>,
    /// Bytes kept of stdout, and of stderr; past this the run stops with
    /// `output_limit_exceeded`.
    pub output_bytes: Option<u64>,
    /// Wall-clock time of the compilation, in milliseconds.
    pub compile_wall_time_ms: Option<u64>,
    /// Interactive jobs: the run stops after this long without input or
    /// output, in milliseconds.
    pub idle_time_ms: Option<u64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCaseRequest {
    /// Standard input of this run.
    #[serde(default)]
    pub stdin: Option<String>,
    /// What this run must print.
    #[serde(default)]
    pub expected_output: Option<String>,
    /// How this run's output is compared (else the job's `compare`).
    #[serde(default)]
    pub compare: Option<CompareRequest>,
    /// What passing this case is worth (default 1, at most 1000000).
    #[serde(default)]
    pub points: Option<f64>,
    /// The subtask it belongs to (1 to 64 printable characters): a group
    /// scores only if all its cases pass.
    #[serde(default)]
    pub group: Option<String>,
}

/// The most points one test case may be worth.
pub const MAX_POINTS: f64 = 1e6;
/// The longest group name.
pub const MAX_GROUP: usize = 64;

/// `compare` as a client sends it: a mode, or the whole comparison.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CompareRequest {
    Mode(CompareMode),
    Full(Object<CompareObject>),
}

/// `compare` as an object: strict (an unknown field is a 400).
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareObject {
    #[serde(default)]
    pub mode: CompareMode,
    /// Letters compared regardless of case (`lines`, `tokens`, `float`).
    #[serde(default)]
    pub case_insensitive: bool,
    /// `float`: the largest absolute difference still equal.
    pub abs_error: Option<f64>,
    /// `float`: the largest difference relative to the expected number
    /// still equal.
    pub rel_error: Option<f64>,
}

impl CompareRequest {
    /// The comparison, checked; `field` names where it was given.
    fn check(
        self,
        field: &str,
        bad: &dyn Fn(&str, String) -> ApiError,
    ) -> Result<Compare, ApiError> {
        let compare = match self {
            CompareRequest::Mode(mode) => Compare {
                mode,
                ..Compare::default()
            },
            CompareRequest::Full(Object(o)) => Compare {
                mode: o.mode,
                case_insensitive: o.case_insensitive,
                abs_error: o.abs_error,
                rel_error: o.rel_error,
            },
        };
        compare
            .check()
            .map_err(|(name, message)| bad(&format!("{field}.{name}"), message))?;
        Ok(compare)
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Each one as `POST /v1/jobs` takes it (without `idempotency_key`).
    #[schema(min_items = 1)]
    #[serde(deserialize_with = "objects_required::<_, MAX_LIST, _>")]
    pub jobs: Vec<JobRequest>,
}

/// Longest list a request may hold where the server's own cap is a setting
/// (test cases, jobs of a batch): their settings' largest values. Parsing
/// stops at the first item past it, so a body of millions of items is not
/// read into memory first.
const MAX_LIST: usize = 10_000;

/// A list of at most `N` items (`None` when absent): refused at item `N+1`.
fn at_most<'de, T, const N: usize, D>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    at_most_required::<T, N, D>(deserializer).map(Some)
}

fn at_most_required<'de, T, const N: usize, D>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    struct Bounded<T, const N: usize>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const N: usize> serde::de::Visitor<'de> for Bounded<T, N> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {N} items")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N));
            while let Some(item) = seq.next_element()? {
                if items.len() == N {
                    return Err(serde::de::Error::invalid_length(N + 1, &self));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Bounded::<T, N>(std::marker::PhantomData))
}

/// A value that must be a JSON object: serde reads a struct from an array
/// too, field by field (`[null, null]` as a test case), which no client
/// means. Errors inside keep their field's path.
#[derive(Debug, Clone, Copy)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Only<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Only<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Only(std::marker::PhantomData))
            .map(Object)
    }
}

/// Documented as the object it holds.
impl<T: utoipa::PartialSchema> utoipa::PartialSchema for Object<T> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        T::schema()
    }
}

impl<T: utoipa::ToSchema> utoipa::ToSchema for Object<T> {
    fn name() -> std::borrow::Cow<'static, str> {
        T::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        T::schemas(schemas);
    }
}

/// An optional object (see [`Object`]).
fn object<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<Object<T>>::deserialize(deserializer).map(|o| o.map(|o| o.0))
}

/// A list of at most `N` objects (see [`Object`]).
fn objects<'de, T, const N: usize, D>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    objects_required::<T, N, D>(deserializer).map(Some)
}

fn objects_required<'de, T, const N: usize, D>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    at_most_required::<Object<T>, N, D>(deserializer)
        .map(|items| items.into_iter().map(|o| o.0).collect())
}

/// What the checks need from the server.
pub struct RequestRules<'a> {
    pub languages: &'a LanguageTable,
    /// Versions the workers' images report, per language id.
    pub versions: &'a std::collections::HashMap<String, Vec<String>>,
    pub max_limits: &'a Limits,
    pub max_code_bytes: usize,
    pub max_test_cases: usize,
}

/// A checked job, ready to enqueue.
#[derive(Debug)]
pub struct AcceptedJob {
    pub spec: JobSpec,
    pub priority: u32,
    pub idempotency_key: Option<String>,
}

/// Parses JSON into `T`, naming the offending field on error (`prefix`
/// goes in front of every field, e.g. `jobs[2].`).
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8], prefix: &str) -> Result<T, ApiError> {
    // Every request is an object (serde would read a struct from an array,
    // field by field, and name the first item as the field at fault).
    if let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace())
        && *first != b'{'
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
    {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed: T =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| parse_error(e, prefix))?;
    // Nothing but white space after the value.
    deserializer.end().map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            format!("malformed JSON: {e}"),
        )
    })?;
    Ok(parsed)
}

/// A parse error in words, with the path of the field at fault.
fn parse_error(e: serde_path_to_error::Error<serde_json::Error>, prefix: &str) -> ApiError {
    {
        if matches!(
            e.inner().classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        ) {
            return ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!("malformed JSON: {}", e.inner()),
            );
        }
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        // serde names missing and unknown fields in its message, one level
        // below the path it reports.
        let named = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|start| inner.strip_prefix(start))
            .and_then(|rest| rest.split('`').next());
        let base = if path == "." { String::new() } else { path };
        let field = match named {
            Some(name) if base.is_empty() => name.to_string(),
            // Unknown fields are in the path already; missing ones are not.
            Some(name) if base == name || base.ends_with(&format!(".{name}")) => base,
            Some(name) => format!("{base}.{name}"),
            None => base,
        };
        let message = inner
            .split(" at line ")
            .next()
            .unwrap_or(&inner)
            .to_string();
        let field = format!("{prefix}{field}");
        if field.is_empty() {
            // The body as a whole (an array where an object belongs).
            return ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!("the body must be a JSON object: {message}"),
            );
        }
        ApiError::bad_field(field.clone(), format!("{field}: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::tests::max;

    /// Checks `body` as job `prefix` of a request, with small caps.
    fn checked(body: serde_json::Value, prefix: &str) -> Result<AcceptedJob, ApiError> {
        let languages = LanguageTable::built_in();
        let versions = std::collections::HashMap::new();
        let max = max();
        let rules = RequestRules {
            languages: &languages,
            versions: &versions,
            max_limits: &max,
            max_code_bytes: 1000,
            max_test_cases: 3,
        };
        let request: JobRequest = parse(body.to_string().as_bytes(), prefix)?;
        check(request, &rules, prefix)
    }

    fn refused(body: serde_json::Value) -> (u16, String) {
        let error = checked(body, "").expect_err("refused");
        (error.status.as_u16(), error.field.unwrap_or_default())
    }

    #[test]
    fn an_array_where_an_object_belongs_is_refused_at_its_place() {
        let base = |extra: serde_json::Value| {
            let mut body = serde_json::json!({ "language": "python", "code": "1" });
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        for (extra, field) in [
            (
                serde_json::json!({ "test_cases": [[null, null]] }),
                "test_cases[0]",
            ),
            (serde_json::json!({ "limits": [1000] }), "limits"),
            (
                serde_json::json!({ "files": [["a.py", "1"]], "code": null }),
                "files[0]",
            ),
            (serde_json::json!({ "checker": ["python", "1"] }), "checker"),
            (serde_json::json!({ "compare": ["exact", true] }), "compare"),
            (
                serde_json::json!({ "test_cases": [{ "limits": 1 }] }),
                "test_cases[0].limits",
            ),
        ] {
            assert_eq!(
                refused(base(extra.clone())),
                (400, field.to_string()),
                "{extra}"
            );
        }
        // Objects still read, with their errors' paths.
        assert_eq!(
            refused(base(
                serde_json::json!({ "test_cases": [{ "points": "x" }] })
            )),
            (400, "test_cases[0].points".to_string())
        );
        let batch: Result<BatchRequest, ApiError> = parse(br#"{"jobs": [["python", "1"]]}"#, "");
        assert_eq!(batch.unwrap_err().field.as_deref(), Some("jobs[0]"));
    }

    #[test]
    fn a_good_request_becomes_a_spec_under_the_languages_own_id() {
        let accepted = checked(
            serde_json::json!({ "language": "py", "code": "print(1)", "stdin": "x" }),
            "",
        )
        .unwrap();
        assert_eq!(accepted.spec.language, "python");
        assert_eq!(accepted.spec.code.as_deref(), Some("print(1)"));
        assert!(
            accepted.spec.limits.is_none(),
            "no limits asked, none stored"
        );
        assert_eq!(accepted.priority, 0);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (
                serde_json::json!({ "language": "klingon", "code": "x" }),
                400,
                "language",
            ),
            (serde_json::json!({ "language": "python" }), 400, "code"),
            (
                serde_json::json!({ "language": "python", "code": "x", "files": [] }),
                400,
                "files",
            ),
            (
                serde_json::json!({ "language": "python", "code": "x".repeat(1001) }),
                413,
                "code",
            ),
            (
                serde_json::json!({ "language": "python", "code": "%%%", "base64": true }),
                400,
                "code",
            ),
            (
                serde_json::json!({ "language": "python", "code": "x", "limits": { "memory_mb": 4 } }),
                400,
                "limits.memory_mb",
            ),
            (
                serde_json::json!({ "language": "python", "code": "x", "limits": { "processes": 0 } }),
                400,
                "limits.processes",
            ),
            (
                serde_json::json!({ "language": "python", "code": "x", "version": "0.1" }),
                400,
                "version",
            ),
            (
                serde_json::json!({ "language": "python", "code": "x", "colour": "blue" }),
                400,
                "colour",
            ),
        ];
        for (body, status, field) in cases {
            assert_eq!(refused(body.clone()), (status, field.to_string()), "{body}");
        }
    }

    #[test]
    fn too_many_test_cases_are_refused() {
        let cases: Vec<_> = (0..4)
            .map(|i| serde_json::json!({ "stdin": i.to_string() }))
            .collect();
        let (status, field) =
            refused(serde_json::json!({ "language": "python", "code": "x", "test_cases": cases }));
        assert_eq!((status, field.as_str()), (400, "test_cases"));
    }

    #[test]
    fn a_batchs_job_is_named_by_its_place() {
        let error = checked(
            serde_json::json!({ "language": "klingon", "code": "x" }),
            "jobs[2].",
        )
        .expect_err("refused");
        assert_eq!(error.field.as_deref(), Some("jobs[2].language"));
        assert!(error.message.contains("available:"), "{}", error.message);
    }
}
