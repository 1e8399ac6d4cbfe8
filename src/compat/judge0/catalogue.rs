//! What Judge0 publishes about itself: its version, statuses and
//! attributes, its configuration variables and its languages.

use serde_json::{Value, json};

use crate::language::{Language, LanguageTable};
use crate::limits::Limits;

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

pub(super) const IN_QUEUE: u32 = 1;
pub(super) const PROCESSING: u32 = 2;
pub(super) const ACCEPTED: u32 = 3;
pub(super) const WRONG_ANSWER: u32 = 4;
pub(super) const TIME_LIMIT_EXCEEDED: u32 = 5;
pub(super) const COMPILATION_ERROR: u32 = 6;
pub(super) const SIGXFSZ: u32 = 8;
pub(super) const NZEC: u32 = 11;
pub(super) const OTHER: u32 = 12;
pub(super) const INTERNAL_ERROR: u32 = 13;

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
