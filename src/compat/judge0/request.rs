//! A submission as Judge0 reads one (Rails' scalars, its validation
//! errors, base64, `additional_files`), translated into a job request.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::catalogue::Settings;
use crate::job::Judge0Request;
use crate::language::LanguageTable;
use crate::limits::RequestedLimits;

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
pub(super) const UNSAFE_SHELL: [char; 7] = ['$', '&', ';', '<', '>', '|', '`'];
/// Longest `compiler_options` and `command_line_arguments` (Judge0's).
pub(super) const MAX_OPTIONS_CHARS: usize = 512;

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

pub(super) fn encode_base64(bytes: &[u8]) -> String {
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
pub(super) fn shown(n: f64) -> String {
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
