//! Judge0 CE's API (version [`VERSION`]) as code-runner serves it: a
//! submission is a job, its token the job's id, its status a mapping of
//! the job's verdict. Built to Judge0's documentation and its source
//! (`app/models/submission.rb`, `app/jobs/isolate_job.rb`,
//! `app/enumerations/status.rb`): the same field names and units, the same
//! validation errors (`422 {"field": ["message"]}`), the same status ids,
//! isolate's words in `message`.
//!
//! What a submission asked is kept with the job ([`Judge0Request`], in the
//! job's data) so that `fields=*` echoes it and the verdict can be read the
//! way Judge0 reads it: a program that used more CPU than `cpu_time_limit`
//! but less than `cpu_time_limit + cpu_extra_time` is stopped only at the
//! latter and reported as Time Limit Exceeded with its real time.
//!
//! Inputs and outputs of a Judge0 job are stored as base64 (exact bytes),
//! whatever the client sent: Judge0's rule that a non-UTF-8 output needs
//! `base64_encoded=true` is applied when the submission is read.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::job::{JobResult, JobSpec, Judge0Request, RunFigures, TimeLimit, Verdict};
use crate::language::{Language, LanguageTable};
use crate::limits::{Limits, RequestedLimits};

/// The Judge0 CE version whose API this is.
pub const VERSION: &str = "1.13.1";

/// Judge0's statuses, ids and descriptions exactly.
pub const STATUSES: [(u32, &str); 14] = [
    (1, "In Queue"),
    (2, "Processing"),
    (3, "Accepted"),
    (4, "Wrong Answer"),
    (5, "Time Limit Exceeded"),
    (6, "Compilation Error"),
    (7, "Runtime Error (SIGSEGV)"),
    (8, "Runtime Error (SIGXFSZ)"),
    (9, "Runtime Error (SIGFPE)"),
    (10, "Runtime Error (SIGABRT)"),
    (11, "Runtime Error (NZEC)"),
    (12, "Runtime Error (Other)"),
    (13, "Internal Error"),
    (14, "Exec Format Error"),
];

const IN_QUEUE: u32 = 1;
const PROCESSING: u32 = 2;
const ACCEPTED: u32 = 3;
const WRONG_ANSWER: u32 = 4;
const TIME_LIMIT_EXCEEDED: u32 = 5;
const COMPILATION_ERROR: u32 = 6;
const SIGXFSZ: u32 = 8;
const NZEC: u32 = 11;
const OTHER: u32 = 12;
const INTERNAL_ERROR: u32 = 13;

/// `{"id", "description"}` of a status id.
pub fn status_json(id: u32) -> Value {
    let description = STATUSES
        .iter()
        .find(|(i, _)| *i == id)
        .map_or("Internal Error", |(_, d)| d);
    json!({ "id": id, "description": description })
}

/// Every attribute of a submission, in Judge0's order (`fields=*`): Judge0
/// CE 1.13.1's serializer's. (Its official Python SDK asks for `*` and keeps
/// only attributes it knows: nothing more may be answered.)
pub const ALL_FIELDS: [&str; 35] = [
    "token",
    "source_code",
    "language_id",
    "stdin",
    "expected_output",
    "stdout",
    "status_id",
    "created_at",
    "finished_at",
    "time",
    "memory",
    "stderr",
    "number_of_runs",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "compile_output",
    "exit_code",
    "exit_signal",
    "message",
    "wall_time",
    "compiler_options",
    "command_line_arguments",
    "redirect_stderr_to_stdout",
    "callback_url",
    "additional_files",
    "enable_network",
    "status",
    "language",
];

/// What a submission shows without `fields` (Judge0's documented default).
pub const DEFAULT_FIELDS: [&str; 8] = [
    "stdout",
    "time",
    "memory",
    "stderr",
    "token",
    "compile_output",
    "message",
    "status",
];

/// The `fields` parameter: `None`/empty for the default, `*` for all, else
/// a comma-separated list. `Err`: Judge0's message naming the unknown ones.
pub fn parse_fields(text: Option<&str>) -> Result<Vec<&'static str>, String> {
    let text = text.unwrap_or("").trim();
    if text.is_empty() {
        return Ok(DEFAULT_FIELDS.to_vec());
    }
    if text == "*" {
        return Ok(ALL_FIELDS.to_vec());
    }
    let mut fields = Vec::new();
    let mut invalid = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match ALL_FIELDS.iter().find(|f| **f == name) {
            Some(field) => fields.push(*field),
            None => invalid.push(name),
        }
    }
    if !invalid.is_empty() {
        return Err(format!("invalid fields: [{}]", invalid.join(", ")));
    }
    if fields.is_empty() {
        return Ok(DEFAULT_FIELDS.to_vec());
    }
    Ok(fields)
}

/// A request value as Rails reads one: a string, a number or a boolean
/// (JSON or form), each usable as the others where that makes sense.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Number(f64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Text(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl utoipa::PartialSchema for Scalar {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([
                Type::String,
                Type::Number,
                Type::Boolean,
                Type::Null,
            ]))
            .description(Some(
                "A string, number or boolean, each read as the others where that makes sense",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Scalar {}

impl Scalar {
    /// As text (a number or boolean as it would be written).
    fn text(&self) -> String {
        match self {
            Scalar::Text(t) => t.clone(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }

    /// As a number; `Err` when it is not one (Rails: "is not a number").
    fn number(&self) -> Result<f64, ()> {
        match self {
            Scalar::Number(n) if n.is_finite() => Ok(*n),
            Scalar::Text(t) => t
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or(()),
            _ => Err(()),
        }
    }

    /// As a boolean, the way Rails casts one (`"true"`, `"1"`, `"t"`, `"on"`...).
    pub fn flag(&self) -> bool {
        match self {
            Scalar::Bool(b) => *b,
            Scalar::Number(n) => *n != 0.0,
            Scalar::Text(t) => matches!(
                t.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "t" | "on" | "yes" | "y"
            ),
        }
    }
}

/// `POST /submissions`' body: Judge0's attributes (and the query
/// parameters, which Rails also reads from the body). Unknown attributes
/// are ignored, as Rails' `permit` ignores them.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct SubmissionParams {
    pub source_code: Option<Scalar>,
    pub language_id: Option<Scalar>,
    pub compiler_options: Option<Scalar>,
    pub command_line_arguments: Option<Scalar>,
    pub stdin: Option<Scalar>,
    pub expected_output: Option<Scalar>,
    pub cpu_time_limit: Option<Scalar>,
    pub cpu_extra_time: Option<Scalar>,
    pub wall_time_limit: Option<Scalar>,
    pub memory_limit: Option<Scalar>,
    pub stack_limit: Option<Scalar>,
    pub max_processes_and_or_threads: Option<Scalar>,
    pub enable_per_process_and_thread_time_limit: Option<Scalar>,
    pub enable_per_process_and_thread_memory_limit: Option<Scalar>,
    pub max_file_size: Option<Scalar>,
    pub redirect_stderr_to_stdout: Option<Scalar>,
    pub callback_url: Option<Scalar>,
    pub additional_files: Option<Scalar>,
    pub enable_network: Option<Scalar>,
    pub number_of_runs: Option<Scalar>,
    pub base64_encoded: Option<Scalar>,
    pub wait: Option<Scalar>,
    pub fields: Option<Scalar>,
}

/// Judge0's configuration variables as this service has them: defaults
/// and maxima in Judge0's units, from the service's own limits.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cpu_time_limit: f64,
    pub max_cpu_time_limit: f64,
    pub cpu_extra_time: f64,
    pub max_cpu_extra_time: f64,
    pub wall_time_limit: f64,
    pub max_wall_time_limit: f64,
    pub memory_limit: u64,
    pub min_memory_limit: u64,
    pub max_memory_limit: u64,
    pub stack_limit: u64,
    pub max_stack_limit: u64,
    pub max_processes_and_or_threads: i64,
    pub max_max_processes_and_or_threads: i64,
    pub max_file_size: u64,
    pub max_max_file_size: u64,
    pub number_of_runs: u32,
    pub max_number_of_runs: u32,
    pub max_queue_size: u64,
    pub max_submission_batch_size: usize,
    pub callbacks_max_tries: u32,
    /// Largest `additional_files` once extracted (Judge0's
    /// `max_extract_size`, in bytes here): the job API's largest sources.
    pub max_extract_bytes: usize,
}

impl Settings {
    /// From the service's default and most limits (`max_test_cases` bounds
    /// `number_of_runs`).
    pub fn new(
        defaults: &Limits,
        max: &Limits,
        max_test_cases: usize,
        max_queue_size: u64,
        max_batch: usize,
        callbacks_max_tries: u32,
        max_code_bytes: usize,
    ) -> Settings {
        let seconds = |ms: u64| ms as f64 / 1000.0;
        Settings {
            cpu_time_limit: seconds(defaults.cpu_time_ms),
            max_cpu_time_limit: seconds(max.cpu_time_ms),
            // Judge0's defaults: the program is stopped a second after its
            // limit, so its real time is reported (within the service's most).
            cpu_extra_time: 1.0,
            max_cpu_extra_time: 5.0,
            wall_time_limit: seconds(defaults.wall_time_ms),
            max_wall_time_limit: seconds(max.wall_time_ms),
            memory_limit: defaults.memory_bytes / 1024,
            min_memory_limit: crate::limits::MIN_MEMORY_MB * 1024,
            max_memory_limit: max.memory_bytes / 1024,
            stack_limit: 64_000,
            max_stack_limit: 128_000,
            max_processes_and_or_threads: defaults.processes,
            max_max_processes_and_or_threads: max.processes,
            max_file_size: 1024,
            max_max_file_size: 4096,
            number_of_runs: 1,
            max_number_of_runs: max_test_cases.clamp(1, 20) as u32,
            max_queue_size,
            max_submission_batch_size: max_batch.min(20),
            callbacks_max_tries,
            max_extract_bytes: max_code_bytes,
        }
    }

    /// `GET /config_info`, in Judge0's names.
    pub fn config_info(&self) -> Value {
        json!({
            "maintenance_mode": false,
            "enable_wait_result": true,
            "enable_compiler_options": true,
            "allowed_languages_for_compile_options": [],
            "enable_command_line_arguments": true,
            "enable_submission_delete": true,
            "enable_callbacks": true,
            "callbacks_max_tries": self.callbacks_max_tries,
            "callbacks_timeout": 10.0,
            "enable_additional_files": true,
            "max_queue_size": self.max_queue_size,
            "cpu_time_limit": self.cpu_time_limit,
            "max_cpu_time_limit": self.max_cpu_time_limit,
            "cpu_extra_time": self.cpu_extra_time,
            "max_cpu_extra_time": self.max_cpu_extra_time,
            "wall_time_limit": self.wall_time_limit,
            "max_wall_time_limit": self.max_wall_time_limit,
            "memory_limit": self.memory_limit,
            "max_memory_limit": self.max_memory_limit,
            "stack_limit": self.stack_limit,
            "max_stack_limit": self.max_stack_limit,
            "max_processes_and_or_threads": self.max_processes_and_or_threads,
            "max_max_processes_and_or_threads": self.max_max_processes_and_or_threads,
            "enable_per_process_and_thread_time_limit": false,
            "allow_enable_per_process_and_thread_time_limit": false,
            "enable_per_process_and_thread_memory_limit": false,
            "allow_enable_per_process_and_thread_memory_limit": false,
            "max_file_size": self.max_file_size,
            "max_max_file_size": self.max_max_file_size,
            "number_of_runs": self.number_of_runs,
            "max_number_of_runs": self.max_number_of_runs,
            "redirect_stderr_to_stdout": false,
            "max_extract_size": self.max_extract_bytes / 1024,
            "enable_batched_submissions": true,
            "max_submission_batch_size": self.max_submission_batch_size,
            "submission_cache_duration": 0.0,
            "use_docs_as_homepage": false,
            "allow_enable_network": false,
            "enable_network": false,
        })
    }
}

/// Validation errors as Rails renders them: `{"field": ["message", ...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Errors(pub BTreeMap<String, Vec<String>>);

impl Errors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_string())
            .or_default()
            .push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn one(field: &str, message: impl Into<String>) -> Errors {
        let mut errors = Errors::default();
        errors.add(field, message);
        errors
    }
}

/// A submission made ready for the job API (whose checks it goes through
/// next): the job it asks for, and what Judge0 showed of the request.
#[derive(Debug)]
pub struct Translated {
    /// The language's id in the table.
    pub language: String,
    /// The program, written to the language's source file; `None` for a
    /// multi-file program.
    pub source: Option<Vec<u8>>,
    /// The additional files (a multi-file program's whole program), beside
    /// it; never one of the source's name (the source wins, as Judge0's
    /// `unzip -n` keeps it).
    pub files: Vec<(String, Vec<u8>)>,
    pub stdin: Vec<u8>,
    pub expected: Option<Vec<u8>>,
    /// Runs of the one compilation (`number_of_runs`), each with the stdin.
    pub runs: u32,
    pub args: Vec<String>,
    pub limits: RequestedLimits,
    pub callback_url: Option<String>,
    pub record: Judge0Request,
    pub compiler_options: Vec<String>,
    pub stderr_to_stdout: bool,
    pub stack_kb: u64,
    pub file_size_kb: u64,
}

/// Most files in `additional_files` (with the source, the job API's most).
pub const MAX_ADDITIONAL_FILES: usize = 63;

/// The files of a zip archive (Judge0's `additional_files`), in its order:
/// plain files at its top level only (folders are refused, empty ones
/// skipped), `max_bytes` uncompressed in all and `max_files` at most. Read
/// with every limit enforced as it is decompressed (a zip bomb stops at the
/// limit).
pub fn unzip(
    zip: &[u8],
    max_bytes: usize,
    max_files: usize,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| format!("is not a zip archive ({e})"))?;
    let mut files = Vec::new();
    let mut total = 0usize;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| format!("cannot be read ({e})"))?;
        let name = entry.name().to_string();
        if entry.is_dir() {
            continue;
        }
        if name.contains('/') || name.contains('\\') {
            return Err(format!(
                "holds {name:?}, in a folder: only files at the top level are supported"
            ));
        }
        if !monitor_protocol::valid_file_name(&name) {
            return Err(format!("holds {name:?}, which is not a plain file name"));
        }
        if files.len() == max_files {
            return Err(format!("holds more than {max_files} files"));
        }
        let mut content = Vec::new();
        let room = max_bytes.saturating_sub(total);
        (&mut entry)
            .take(room as u64 + 1)
            .read_to_end(&mut content)
            .map_err(|e| format!("cannot be read ({e})"))?;
        if content.len() > room {
            return Err(format!(
                "is too large (more than {max_bytes} bytes once extracted)"
            ));
        }
        total += content.len();
        files.push((name, content));
    }
    Ok(files)
}

/// Characters Judge0 removes from compiler options and command-line
/// arguments before the shell reads them.
const UNSAFE_SHELL: [char; 7] = ['$', '&', ';', '<', '>', '|', '`'];
/// Longest `compiler_options` and `command_line_arguments` (Judge0's).
const MAX_OPTIONS_CHARS: usize = 512;

/// Decodes Judge0's base64 as Ruby's `Base64.decode64` does: characters
/// outside the alphabet (line breaks every 60 characters, spaces) are
/// skipped, padding is optional.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let clean: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/'))
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(clean.as_bytes())
        .map_err(|e| e.to_string())
}

fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Turns a submission into a job request, or Judge0's 422 errors.
pub fn translate(
    params: &SubmissionParams,
    base64_encoded: bool,
    settings: &Settings,
    languages: &LanguageTable,
) -> Result<Translated, Errors> {
    let mut errors = Errors::default();
    // A text attribute's bytes (decoded when the client sent base64).
    let mut bytes = |field: &str, value: &Option<Scalar>| -> Option<Vec<u8>> {
        let text = value.as_ref()?.text();
        if !base64_encoded {
            return Some(text.into_bytes());
        }
        match decode_base64(&text) {
            Ok(bytes) => Some(bytes),
            Err(_) => {
                errors.add(field, "is not valid Base64 (base64_encoded=true)");
                None
            }
        }
    };
    let source = bytes("source_code", &params.source_code);
    let stdin = bytes("stdin", &params.stdin);
    let expected = bytes("expected_output", &params.expected_output);
    let blank = |bytes: &Option<Vec<u8>>| {
        bytes
            .as_ref()
            .is_none_or(|s| s.iter().all(u8::is_ascii_whitespace))
    };
    let source_blank = blank(&source);

    let language = match &params.language_id {
        None => {
            errors.add("language_id", "can't be blank");
            None
        }
        Some(id) => {
            let text = id.text();
            let language = id
                .number()
                .ok()
                .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n <= u32::MAX as f64)
                .and_then(|n| languages.find_judge0(n as u32).map(|l| (n as u32, l)));
            if language.is_none() {
                let shown = text.strip_suffix(".0").unwrap_or(&text).to_string();
                errors.add(
                    "language_id",
                    format!("language with id {shown} doesn't exist"),
                );
            }
            language
        }
    };

    // A multi-file program is its additional files and nothing else.
    let project = language.is_some_and(|(_, l)| l.project);
    if project && !source_blank {
        errors.add("source_code", "must be blank");
    } else if !project && source_blank {
        errors.add("source_code", "can't be blank");
    }
    let files = match params
        .additional_files
        .as_ref()
        .map(Scalar::text)
        .filter(|f| !f.trim().is_empty())
    {
        None => {
            if project {
                errors.add("additional_files", "can't be blank");
            }
            Vec::new()
        }
        Some(archive) => match decode_base64(&archive)
            .map_err(|_| "is not valid Base64".to_string())
            .and_then(|zip| unzip(&zip, settings.max_extract_bytes, MAX_ADDITIONAL_FILES))
        {
            Ok(files) => files,
            Err(message) => {
                errors.add("additional_files", message);
                Vec::new()
            }
        },
    };

    // Numbers in Judge0's units, checked as its model checks them.
    let mut number =
        |field: &str, value: &Option<Scalar>, min: f64, min_inclusive: bool, max: f64| {
            let value = value.as_ref()?;
            let Ok(n) = value.number() else {
                errors.add(field, "is not a number");
                return None;
            };
            if min_inclusive && n < min {
                errors.add(
                    field,
                    format!("must be greater than or equal to {}", shown(min)),
                );
                None
            } else if !min_inclusive && n <= min {
                errors.add(field, format!("must be greater than {}", shown(min)));
                None
            } else if n > max {
                errors.add(
                    field,
                    format!("must be less than or equal to {}", shown(max)),
                );
                None
            } else {
                Some(n)
            }
        };
    let s = settings;
    let runs = number(
        "number_of_runs",
        &params.number_of_runs,
        0.0,
        false,
        s.max_number_of_runs as f64,
    );
    let cpu = number(
        "cpu_time_limit",
        &params.cpu_time_limit,
        0.0,
        true,
        s.max_cpu_time_limit,
    );
    let extra = number(
        "cpu_extra_time",
        &params.cpu_extra_time,
        0.0,
        true,
        s.max_cpu_extra_time,
    );
    let wall = number(
        "wall_time_limit",
        &params.wall_time_limit,
        1.0,
        true,
        s.max_wall_time_limit,
    );
    let memory = number(
        "memory_limit",
        &params.memory_limit,
        s.min_memory_limit as f64,
        true,
        s.max_memory_limit as f64,
    );
    let stack = number(
        "stack_limit",
        &params.stack_limit,
        0.0,
        true,
        s.max_stack_limit as f64,
    );
    let processes = number(
        "max_processes_and_or_threads",
        &params.max_processes_and_or_threads,
        0.0,
        false,
        s.max_max_processes_and_or_threads as f64,
    );
    let file_size = number(
        "max_file_size",
        &params.max_file_size,
        0.0,
        true,
        s.max_max_file_size as f64,
    );

    for (field, value) in [
        (
            "enable_per_process_and_thread_time_limit",
            &params.enable_per_process_and_thread_time_limit,
        ),
        (
            "enable_per_process_and_thread_memory_limit",
            &params.enable_per_process_and_thread_memory_limit,
        ),
    ] {
        // The limits hold for the whole run (its cgroup), never per process.
        if value.as_ref().is_some_and(Scalar::flag) {
            errors.add(field, "this option cannot be enabled");
        }
    }
    if params.enable_network.as_ref().is_some_and(Scalar::flag) {
        errors.add("enable_network", "enabling network is not allowed");
    }

    let mut words = |field: &str, value: &Option<Scalar>| -> Option<(String, Vec<String>)> {
        let text = value.as_ref()?.text();
        if text.trim().is_empty() {
            return None;
        }
        if text.chars().count() > MAX_OPTIONS_CHARS {
            errors.add(
                field,
                format!("is too long (maximum is {MAX_OPTIONS_CHARS} characters)"),
            );
            return None;
        }
        let cleaned: String = text
            .trim()
            .chars()
            .filter(|c| !UNSAFE_SHELL.contains(c))
            .collect();
        match shlex::split(&cleaned) {
            Some(words) => Some((text, words)),
            None => {
                errors.add(field, "has an unterminated quote");
                None
            }
        }
    };
    let compiler_options = words("compiler_options", &params.compiler_options);
    let arguments = words("command_line_arguments", &params.command_line_arguments);
    if let (Some(_), Some((_, language))) = (&compiler_options, &language) {
        if language.compile.is_none() {
            errors.add(
                "compiler_options",
                "setting compiler options is only allowed for compiled languages",
            );
        } else if !language.takes_compiler_options() {
            errors.add(
                "compiler_options",
                format!(
                    "setting compiler options is not supported for {}",
                    language.name
                ),
            );
        }
    }
    let callback_url = params
        .callback_url
        .as_ref()
        .map(Scalar::text)
        .filter(|u| !u.trim().is_empty());

    let Some((language_id, language)) = language else {
        return Err(errors);
    };
    let source = source.unwrap_or_default();
    if !errors.is_empty() {
        return Err(errors);
    }

    let runs = runs.map_or(s.number_of_runs, |n| n.ceil() as u32);
    let cpu_time_limit = cpu.unwrap_or(s.cpu_time_limit);
    let cpu_extra_time = extra.unwrap_or(s.cpu_extra_time);
    let wall_time_limit = wall.unwrap_or(s.wall_time_limit);
    let ms = |seconds: f64| (seconds * 1000.0).round().max(1.0) as u64;
    // Stopped at the limit plus the extra time, within the service's most;
    // reported over its limit when it used more than `cpu_time_limit`.
    let cpu_ms = ms(cpu_time_limit + cpu_extra_time).min(ms(s.max_cpu_time_limit));
    let language_memory_kb = language
        .limits
        .memory_mb
        .map_or(s.memory_limit, |mb| mb * 1024);
    let language_processes = language
        .limits
        .processes
        .unwrap_or(s.max_processes_and_or_threads);
    let limits = RequestedLimits {
        wall_time_ms: Some(ms(wall_time_limit).max(cpu_ms)),
        cpu_time_ms: Some(cpu_ms),
        memory_mb: memory.map(|kb| (kb as u64).div_ceil(1024)),
        processes: processes.map(|p| p.ceil() as i64),
        ..RequestedLimits::default()
    };
    let (compiler_options_text, compiler_options) = compiler_options.unzip();
    let (arguments_text, arguments) = arguments.unzip();
    let redirect = params
        .redirect_stderr_to_stdout
        .as_ref()
        .is_some_and(Scalar::flag);
    let stack_kb = stack.map_or(s.stack_limit, |kb| kb as u64);
    let file_size_kb = file_size.map_or(s.max_file_size, |kb| kb as u64);
    let record = Judge0Request {
        language_id,
        number_of_runs: runs,
        cpu_time_limit,
        cpu_extra_time,
        wall_time_limit,
        memory_limit: memory.map_or(language_memory_kb, |kb| kb as u64),
        stack_limit: stack_kb,
        max_processes_and_or_threads: processes.map_or(language_processes, |p| p.ceil() as i64),
        max_file_size: file_size_kb,
        compiler_options: compiler_options_text,
        command_line_arguments: arguments_text,
        redirect_stderr_to_stdout: redirect,
        callback_url: callback_url.clone(),
    };
    Ok(Translated {
        language: language.id.clone(),
        source: (!project).then_some(source),
        files,
        stdin: stdin.unwrap_or_default(),
        expected,
        runs,
        args: arguments.unwrap_or_default(),
        limits,
        callback_url,
        record,
        compiler_options: compiler_options.unwrap_or_default(),
        stderr_to_stdout: redirect,
        stack_kb,
        file_size_kb,
    })
}

/// A number as Rails writes it in a message (`15` rather than `15.0`).
fn shown(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// Where the job API's own check names a field, the Judge0 attribute it
/// came from.
pub fn judge0_field(field: &str) -> &'static str {
    let field = field.split('[').next().unwrap_or(field);
    match field {
        "code" | "files" => "source_code",
        "language" | "version" => "language_id",
        "stdin" | "test_cases" => "stdin",
        "expected_output" => "expected_output",
        "args" => "command_line_arguments",
        "limits.cpu_time_ms" => "cpu_time_limit",
        "limits.wall_time_ms" => "wall_time_limit",
        "limits.memory_mb" => "memory_limit",
        "limits.processes" => "max_processes_and_or_threads",
        "callback_url" => "callback_url",
        _ => "base",
    }
}

/// The bytes of a stored text: its input or output, base64 when the job
/// keeps them so (Judge0 jobs always do).
fn bytes_of(text: &str, base64: bool) -> Vec<u8> {
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
fn signal_status(signal: i32) -> u32 {
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
fn averaged(result: &JobResult) -> (f64, f64, u64) {
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
fn seconds_text(seconds: f64) -> String {
    let text = format!("{seconds:.3}");
    let trimmed = text.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

/// A moment as Rails writes one: ISO 8601 with milliseconds, in UTC.
fn timestamp(ms: Option<u64>) -> Value {
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
fn version_of(job: &Submission, language: &Language) -> String {
    job.result
        .as_ref()
        .map(|r| r.version.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| language.version.clone())
}

/// A job's source, stdin and expected output, as bytes.
struct Inputs {
    source: Option<Vec<u8>>,
    stdin: Option<Vec<u8>>,
    expected: Option<Vec<u8>>,
}

/// A job's [`Inputs`].
fn inputs(spec: &JobSpec, language: Option<&Language>) -> Inputs {
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
fn request_of(spec: &JobSpec, language: Option<&Language>) -> Judge0Request {
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

/// `GET /languages`: `{id, name}` of every id (active languages only).
pub fn languages_json(
    languages: &LanguageTable,
    versions: &std::collections::HashMap<String, Vec<String>>,
) -> Vec<Value> {
    let mut all: Vec<Value> = languages
        .judge0_ids()
        .map(|(id, l)| json!({ "id": id, "name": l.judge0_name(l.reported_version(versions)) }))
        .collect();
    // Judge0 lists them by name.
    all.sort_by(|a, b| {
        a["name"]
            .as_str()
            .cmp(&b["name"].as_str())
            .then(a["id"].as_u64().cmp(&b["id"].as_u64()))
    });
    all
}

/// `GET /languages/{id}`: the language with its commands.
pub fn language_json(id: u32, language: &Language, version: &str) -> Value {
    let files = [language.source_file.clone()];
    let command = |c: &[String]| language.expand(c, &files).join(" ");
    json!({
        "id": id,
        "name": language.judge0_name(version),
        "is_archived": false,
        "source_file": language.source_file,
        "compile_cmd": language.compile.as_deref().map(command),
        "run_cmd": command(&language.run),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{CaseResult, RunStatus};

    fn settings() -> Settings {
        let defaults = Limits {
            wall_time_ms: 10_000,
            cpu_time_ms: 5_000,
            memory_bytes: 256 << 20,
            processes: 64,
            output_bytes: 1 << 20,
            compile_wall_time_ms: 30_000,
        };
        let max = Limits {
            wall_time_ms: 30_000,
            cpu_time_ms: 15_000,
            memory_bytes: 1 << 30,
            processes: 256,
            ..defaults
        };
        Settings::new(&defaults, &max, 100, 1000, 100, 3, 1 << 20)
    }

    fn params(json: &str) -> SubmissionParams {
        serde_json::from_str(json).unwrap()
    }

    fn translated(json: &str) -> Result<Translated, Errors> {
        translate(
            &params(json),
            false,
            &settings(),
            &LanguageTable::built_in(),
        )
    }

    #[test]
    fn the_documented_request_becomes_a_job() {
        let t = translated(
            r#"{"source_code":"print(input())","language_id":71,"stdin":"world","expected_output":"world"}"#,
        )
        .unwrap();
        assert_eq!(t.language, "python");
        assert_eq!(t.source.as_deref(), Some(&b"print(input())"[..]));
        assert_eq!(t.stdin, b"world");
        assert_eq!(t.expected.as_deref(), Some(&b"world"[..]));
        // Stopped at the limit plus Judge0's extra second.
        assert_eq!(t.limits.cpu_time_ms, Some(6_000));
        assert_eq!(t.record.language_id, 71);
        assert_eq!(t.record.cpu_time_limit, 5.0);
    }

    #[test]
    fn numbers_may_be_strings_and_unknown_attributes_are_ignored() {
        let t = translated(
            r#"{"source_code":"x","language_id":"50","cpu_time_limit":"2.5","no_such":[1,[2]],"wait":"true"}"#,
        )
        .unwrap();
        assert_eq!(t.language, "c");
        assert_eq!(t.record.cpu_time_limit, 2.5);
    }

    #[test]
    fn errors_are_rails_validation_errors() {
        let e = translated(r#"{"source_code":"x"}"#).unwrap_err();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"language_id": ["can't be blank"]})
        );
        let e = translated(r#"{"source_code":"x","language_id":150000}"#).unwrap_err();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"language_id": ["language with id 150000 doesn't exist"]})
        );
        let e = translated(
            r#"{"language_id":71,"cpu_time_limit":100,"memory_limit":"lots","number_of_runs":0}"#,
        )
        .unwrap_err();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({
                "source_code": ["can't be blank"],
                "cpu_time_limit": ["must be less than or equal to 15"],
                "memory_limit": ["is not a number"],
                "number_of_runs": ["must be greater than 0"],
            })
        );
        let e = translated(r#"{"source_code":"x","language_id":71,"enable_network":true,"compiler_options":"-O2"}"#)
            .unwrap_err();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({
                "enable_network": ["enabling network is not allowed"],
                "compiler_options": ["setting compiler options is only allowed for compiled languages"],
            })
        );
    }

    #[test]
    fn options_and_arguments_are_split_like_a_shell_without_its_operators() {
        let t = translated(
            r#"{"source_code":"x","language_id":54,"compiler_options":"-O0 -DNAME='a b'","command_line_arguments":"one 'two three' $(rm -rf /);x"}"#,
        )
        .unwrap();
        assert_eq!(t.compiler_options, ["-O0", "-DNAME=a b"]);
        assert_eq!(t.args, ["one", "two three", "(rm", "-rf", "/)x"]);
    }

    #[test]
    fn base64_inputs_are_read_as_ruby_reads_them() {
        let t = translate(
            &params(r#"{"source_code":"cHJpbnQo\nMSk=\n","language_id":71,"stdin":"AAE="}"#),
            true,
            &settings(),
            &LanguageTable::built_in(),
        )
        .unwrap();
        assert_eq!(t.source.as_deref(), Some(&b"print(1)"[..]));
        assert_eq!(t.stdin, [0, 1]);
    }

    #[test]
    fn several_runs_are_counted() {
        let t =
            translated(r#"{"source_code":"x","language_id":71,"stdin":"a","number_of_runs":3}"#)
                .unwrap();
        assert_eq!((t.runs, t.record.number_of_runs), (3, 3));
    }

    #[test]
    fn fields_are_checked() {
        assert_eq!(parse_fields(None).unwrap(), DEFAULT_FIELDS);
        assert_eq!(parse_fields(Some("*")).unwrap().len(), ALL_FIELDS.len());
        assert_eq!(
            parse_fields(Some("stdout,status_id")).unwrap(),
            ["stdout", "status_id"]
        );
        assert_eq!(
            parse_fields(Some("stdout,nope,worse")).unwrap_err(),
            "invalid fields: [nope, worse]"
        );
    }

    fn finished(verdict: Verdict, figures: RunFigures) -> Submission {
        Submission {
            token: "d85cd024-1548-4165-96c7-7bc88673f194".into(),
            stage: Some(Stage::Completed),
            result: Some(JobResult {
                verdict,
                status: RunStatus::Success,
                time_limit: None,
                message: None,
                compile_output: None,
                compile: None,
                figures,
                test_cases: Vec::new(),
                figures_case: None,
                score: None,
                max_score: None,
                groups: Vec::new(),
                encoding: "base64".into(),
                language: "c".into(),
                version: "12.2.0".into(),
                worker_id: "w".into(),
                timeline: Vec::new(),
            }),
            failed_reason: None,
            spec: None,
            started_at_ms: Some(1_700_000_000_000),
            finished_at_ms: Some(1_700_000_001_234),
            execution_host: Some("w".into()),
        }
    }

    fn request() -> Judge0Request {
        Judge0Request {
            cpu_time_limit: 1.0,
            ..Judge0Request::default()
        }
    }

    #[test]
    fn every_verdict_has_its_judge0_status() {
        let status = |verdict: Verdict, figures: RunFigures| {
            outcome(&finished(verdict, figures), &request()).status
        };
        let exited = |code: i32| RunFigures {
            exit_code: Some(code),
            ..RunFigures::default()
        };
        let signalled = |name: &str| RunFigures {
            signal: Some(name.into()),
            ..RunFigures::default()
        };
        assert_eq!(status(Verdict::Accepted, exited(0)), 3);
        assert_eq!(status(Verdict::WrongAnswer, exited(0)), 4);
        assert_eq!(status(Verdict::TimeLimitExceeded, signalled("SIGKILL")), 5);
        assert_eq!(status(Verdict::CompilationError, RunFigures::default()), 6);
        assert_eq!(status(Verdict::RuntimeError, signalled("SIGSEGV")), 7);
        assert_eq!(status(Verdict::RuntimeError, signalled("SIGXFSZ")), 8);
        assert_eq!(status(Verdict::RuntimeError, signalled("SIGFPE")), 9);
        assert_eq!(status(Verdict::RuntimeError, signalled("SIGABRT")), 10);
        assert_eq!(status(Verdict::RuntimeError, exited(3)), 11);
        assert_eq!(status(Verdict::RuntimeError, signalled("SIGBUS")), 12);
        assert_eq!(
            status(Verdict::MemoryLimitExceeded, signalled("SIGKILL")),
            12
        );
        assert_eq!(
            status(Verdict::OutputLimitExceeded, signalled("SIGKILL")),
            8
        );
        assert_eq!(status(Verdict::InternalError, RunFigures::default()), 13);
        assert_eq!(status(Verdict::Cancelled, RunFigures::default()), 13);
        // Within the extra time, but over the limit: Judge0's TLE.
        let slow = RunFigures {
            exit_code: Some(0),
            cpu_time_ms: 1_400,
            ..RunFigures::default()
        };
        assert_eq!(status(Verdict::Accepted, slow), 5);
        let mut queued = finished(Verdict::Accepted, exited(0));
        queued.stage = Some(Stage::Queued);
        assert_eq!(outcome(&queued, &request()).status, 1);
        queued.stage = Some(Stage::Running);
        assert_eq!(outcome(&queued, &request()).status, 2);
        queued.stage = Some(Stage::Failed);
        assert_eq!(outcome(&queued, &request()).status, 13);
    }

    #[test]
    fn a_submission_renders_as_judge0_shows_it() {
        let mut job = finished(
            Verdict::RuntimeError,
            RunFigures {
                stdout: encode_base64(b"hello, world\n"),
                stderr: String::new(),
                exit_code: Some(1),
                cpu_time_ms: 2,
                wall_time_ms: 15,
                memory_peak_bytes: 3_850_240,
                ..RunFigures::default()
            },
        );
        job.spec = Some(JobSpec {
            language: "c".into(),
            code: Some(encode_base64(b"int main(){}")),
            base64: true,
            submitted_at_ms: 1_700_000_000_000,
            judge0: Some(Judge0Request {
                language_id: 50,
                cpu_time_limit: 5.0,
                ..Judge0Request::default()
            }),
            ..JobSpec::default()
        });
        let fields = parse_fields(Some("*")).unwrap();
        let shown = render(&job, &fields, false, Some(&LanguageTable::built_in())).unwrap();
        assert_eq!(shown["stdout"], "hello, world\n");
        assert_eq!(shown["stderr"], Value::Null);
        assert_eq!(shown["time"], "0.002");
        assert_eq!(shown["wall_time"], "0.015");
        assert_eq!(shown["memory"], 3760);
        assert_eq!(shown["exit_code"], 1);
        assert_eq!(
            shown["status"],
            json!({"id": 11, "description": "Runtime Error (NZEC)"})
        );
        assert_eq!(shown["message"], "Exited with error status 1");
        assert_eq!(shown["language_id"], 50);
        assert_eq!(shown["source_code"], "int main(){}");
        assert_eq!(shown["created_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(shown["finished_at"], "2023-11-14T22:13:21.234Z");
        assert_eq!(shown["token"], "d85cd024-1548-4165-96c7-7bc88673f194");
        assert_eq!(shown["language"]["name"], "C (GCC 12.2.0)");
        let encoded = render(&job, &DEFAULT_FIELDS, true, None).unwrap();
        assert_eq!(encoded["stdout"], encode_base64(b"hello, world\n"));
        assert_eq!(
            encoded["message"],
            encode_base64(b"Exited with error status 1")
        );
        assert_eq!(encoded.len(), 8);
    }

    #[test]
    fn output_that_is_not_utf8_needs_base64() {
        let job = finished(
            Verdict::Accepted,
            RunFigures {
                stdout: encode_base64(&[0xff, 0xfe]),
                exit_code: Some(0),
                ..RunFigures::default()
            },
        );
        assert_eq!(render(&job, &DEFAULT_FIELDS, false, None), Err(NotUtf8));
        // Only what is asked for is converted.
        assert!(render(&job, &["status", "time"], false, None).is_ok());
        assert!(render(&job, &DEFAULT_FIELDS, true, None).is_ok());
    }

    #[test]
    fn runs_are_averaged() {
        let mut job = finished(Verdict::Accepted, RunFigures::default());
        let case = |cpu: u64| CaseResult {
            figures: RunFigures {
                cpu_time_ms: cpu,
                exit_code: Some(0),
                memory_peak_bytes: 2048 * cpu,
                ..RunFigures::default()
            },
            ..CaseResult::of(Verdict::Accepted)
        };
        job.result.as_mut().unwrap().test_cases = vec![case(10), case(20), case(30)];
        let o = outcome(&job, &request());
        assert_eq!(o.time, Some(0.02));
        assert_eq!(o.memory, Some(40));
        assert_eq!(seconds_text(0.02), "0.02");
        assert_eq!(seconds_text(1.0), "1.0");
    }
}
