//! Running one job: compile once (for compiled languages), then one run per
//! test case (or the single run), and the verdicts. A plain job's
//! compilation and cases share one container (`CaseSession`: the monitor
//! clears it between steps and checks nothing is left); a job with a
//! checker or an interactor runs each case, and its judging program, in a
//! container of its own.
//!
//! The compilation happens in the same hardened sandbox as the runs (it is
//! hostile input too), with its own limits; the work directory it leaves
//! (the binary, class files, ...) is sent back by the monitor and handed to
//! every run. Each run's figures are its own (the monitor measures them).

use base64::Engine;
use monitor_protocol::{FileSpec, Input, LimitHit, Report, Task, signal_name};
use tokio_util::sync::CancellationToken;

use crate::compare::Compare;
use crate::job::{
    CaseResult, GroupResult, JobResult, JobSpec, Phase, RunFigures, TimeLimit, Verdict, status_of,
};
use crate::language::Language;
use crate::limits::{Limits, StepLimits};
use crate::sandbox::pool::WarmPool;
use crate::sandbox::{
    CaseSession, ContainerLimits, RunObserver, Sandbox, SandboxError, TaskOutcome, TaskOutput,
    TaskRequest, Unreported,
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
    /// A plain job's test cases share one container (see [`CaseSession`]).
    pub cases_share_container: bool,
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
    fn name(self) -> &'static str {
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

/// What every step of one job's execution shares.
#[derive(Clone, Copy)]
struct Steps<'a> {
    sandbox: &'a Sandbox,
    pool: Option<&'a std::sync::Arc<WarmPool>>,
    job_id: &'a str,
    settings: &'a ExecutionSettings,
    cancel: &'a CancellationToken,
    observer: &'a dyn RunObserver,
}

/// A compilation that ran: its output, and why it failed if it did.
struct Compilation {
    output: TaskOutput,
    /// The compiler could not run at all (the service's fault).
    broken: Option<String>,
    /// The compilation failed (the code's fault), in words.
    failure: Option<String>,
}

impl Steps<'_> {
    /// Runs one task in a fresh container; `None` when cancelled.
    async fn run(
        &self,
        language: &Language,
        step_limits: &StepLimits,
        task: Task,
        phase: Phase,
        step: String,
        input: Option<tokio::sync::mpsc::Receiver<Input>>,
    ) -> Result<Option<TaskOutput>, SandboxError> {
        self.run_observed(
            self.observer,
            language,
            step_limits,
            task,
            phase,
            step,
            input,
        )
        .await
    }

    /// [`Steps::run`], heard by `observer`.
    #[allow(clippy::too_many_arguments)]
    async fn run_observed(
        &self,
        observer: &dyn RunObserver,
        language: &Language,
        step_limits: &StepLimits,
        task: Task,
        phase: Phase,
        step: String,
        input: Option<tokio::sync::mpsc::Receiver<Input>>,
    ) -> Result<Option<TaskOutput>, SandboxError> {
        let request = self.request(language, step_limits, task, phase, step, input);
        done(
            self.sandbox
                .run_task(request, self.pool, self.cancel, observer)
                .await?,
        )
    }

    /// What the sandbox needs to run `task` with `language` in this job.
    fn request<'l>(
        &'l self,
        language: &'l Language,
        step_limits: &StepLimits,
        task: Task,
        phase: Phase,
        step: String,
        input: Option<tokio::sync::mpsc::Receiver<Input>>,
    ) -> TaskRequest<'l> {
        TaskRequest {
            job_id: self.job_id,
            image: &language.image,
            limits: container_limits(step_limits, self.settings, language),
            task,
            running_phase: phase,
            step,
            input,
        }
    }

    /// Holds a container for `task` to run case after case in (see
    /// [`CaseSession`]).
    async fn open_cases(
        &self,
        language: &Language,
        step_limits: &StepLimits,
        task: Task,
        step: String,
    ) -> Result<CaseSession<'_>, SandboxError> {
        let request = self.request(language, step_limits, task, Phase::Running, step, None);
        self.sandbox
            .open_cases(request, self.pool, self.observer)
            .await
    }

    /// Runs one case in `session`; `None` when cancelled.
    async fn run_case(
        &self,
        session: &mut CaseSession<'_>,
        stdin: &[u8],
        last: bool,
    ) -> Result<Option<TaskOutput>, SandboxError> {
        done(session.run(stdin, last, self.cancel, self.observer).await?)
    }

    /// Compiles `files` with `language`'s compile command; `None` when
    /// cancelled.
    async fn compile(
        &self,
        language: &Language,
        files: &[FileSpec],
        options: &[String],
        limits: &Limits,
        phase: Phase,
        step: &str,
    ) -> Result<Option<Compilation>, SandboxError> {
        let step_limits = limits.compilation(&language.limits);
        let task = self.compile_task(language, files, options, &step_limits);
        let Some(output) = self
            .run(language, &step_limits, task, phase, step.to_string(), None)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Compilation::of(output)))
    }

    /// [`Steps::compile`] in a container that then runs the program's
    /// cases (see [`CaseSession`]): the session, awaiting the run's task,
    /// comes back too when the compilation succeeded and the container was
    /// cleared after it.
    async fn compile_then_cases(
        &self,
        language: &Language,
        files: &[FileSpec],
        options: &[String],
        limits: &Limits,
    ) -> Result<Option<(Compilation, Option<CaseSession<'_>>)>, SandboxError> {
        let step_limits = limits.compilation(&language.limits);
        let task = self.compile_task(language, files, options, &step_limits);
        let request = self.request(
            language,
            &step_limits,
            task,
            Phase::Compiling,
            "compile".to_string(),
            None,
        );
        let mut session = self
            .sandbox
            .open_chain(request, self.pool, self.observer)
            .await?;
        let Some(output) = done(
            session
                .first(Phase::Compiling, self.cancel, self.observer)
                .await?,
        )?
        else {
            return Ok(None);
        };
        let compilation = Compilation::of(output);
        if compilation.broken.is_some() || compilation.failure.is_some() {
            session.close().await;
        }
        let session = session.awaits_task().then_some(session);
        Ok(Some((compilation, session)))
    }

    /// The compiler's task for `files`.
    fn compile_task(
        &self,
        language: &Language,
        files: &[FileSpec],
        options: &[String],
        step_limits: &StepLimits,
    ) -> Task {
        let Some(compile) = &language.compile else {
            unreachable!("only compiled languages are compiled");
        };
        let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
        Task {
            nonce: [0; 16], // set per container by the sandbox
            wall_ms: step_limits.wall_ms,
            cpu_ms: step_limits.cpu_ms,
            output_bytes: step_limits.output_bytes,
            artifacts: Some(self.settings.tmpfs_bytes),
            env: language.environment(),
            files: files.to_vec(),
            argv: language
                .expand_with(compile, &names, options)
                .into_iter()
                .map(String::into_bytes)
                .collect(),
            stdin: Vec::new(),
            uid: Some(self.settings.uid),
            processes: nproc(step_limits),
            ..Task::default()
        }
    }
}

impl Compilation {
    /// What a compiler's run says of the compilation.
    fn of(output: TaskOutput) -> Compilation {
        let report = &report_of(&output);
        let mut broken = None;
        let failure = if let Some(lost) = &output.lost {
            Some(lost.clone())
        } else if let Some(error) = &report.error {
            broken = Some(format!("the compiler could not run: {error}"));
            None
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
        Compilation {
            output,
            broken,
            failure,
        }
    }
}

/// The checker or interactor compiled (or its source, for an interpreted
/// language), ready to judge runs.
struct Judge<'a> {
    program: &'a PreparedProgram,
    files: Vec<FileSpec>,
    argv: Vec<Vec<u8>>,
}

impl Judge<'_> {
    /// Its task for one case: its files, and the case's input, the
    /// solution's `output` (a checker's; an interactor's is a file of its
    /// own to write) and the answer as [`CHECKER_FILES`].
    fn task(
        &self,
        step: &StepLimits,
        case: &PreparedCase,
        output: Option<&[u8]>,
        uid: u32,
    ) -> Task {
        let mut files = self.files.clone();
        let (output, output_mode) = match output {
            Some(output) => (output.to_vec(), 0o444),
            None => (Vec::new(), 0o644),
        };
        for (name, content, mode) in [
            (CHECKER_FILES[0], case.stdin.clone(), 0o444),
            (CHECKER_FILES[1], output, output_mode),
            (
                CHECKER_FILES[2],
                case.expected.clone().unwrap_or_default(),
                0o444,
            ),
        ] {
            files.push(FileSpec {
                name: name.to_string(),
                mode,
                content,
            });
        }
        Task {
            nonce: [0; 16], // set per container by the sandbox
            wall_ms: step.wall_ms,
            cpu_ms: step.cpu_ms,
            output_bytes: step.output_bytes,
            env: self.program.language.environment(),
            files,
            argv: self.argv.clone(),
            uid: Some(uid),
            processes: nproc(step),
            ..Task::default()
        }
    }
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
    let steps = Steps {
        sandbox,
        pool,
        job_id: &job.job_id,
        settings,
        cancel,
        observer,
    };
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
        figures_case: None,
        score: None,
        max_score: None,
        groups: Vec::new(),
        encoding: if job.base64 { "base64" } else { "utf8" }.to_string(),
        language: language.id.clone(),
        version: job.version.clone(),
        worker_id: sandbox.settings().worker_id.clone(),
        timeline: Vec::new(),
    };

    // A plain job's cases run one after another in one container (opened
    // again only if a case leaves it unfit for the next), the one its
    // compilation ran in if it has one; a job with a checker or an
    // interactor, or an interactive one, runs each case in a container of
    // its own (its judging program runs between or beside them, in
    // containers that need worker slots of their own).
    let plain = settings.cases_share_container && job.judge.is_none() && job.interactive.is_none();
    let mut session: Option<CaseSession<'_>> = None;
    let mut run_files = job.files.clone();
    if language.compile.is_some() {
        // In the run's container only where the engine can then lower its
        // limits to the run's.
        let compile_limits =
            container_limits(&limits.compilation(&language.limits), settings, language);
        let compiled = if plain && sandbox.can_update(&compile_limits) {
            steps
                .compile_then_cases(language, &job.files, &job.compiler_options, limits)
                .await?
                .map(|(compilation, chained)| {
                    session = chained;
                    compilation
                })
        } else {
            steps
                .compile(
                    language,
                    &job.files,
                    &job.compiler_options,
                    limits,
                    Phase::Compiling,
                    "compile",
                )
                .await?
        };
        let Some(compilation) = compiled else {
            return Ok(Execution::Cancelled);
        };
        let output = &compilation.output;
        if let Some(lost) = &output.lost {
            return Ok(Execution::Finished(finish(
                result,
                Verdict::CompilationError,
                None,
                Some(lost.clone()),
            )));
        }
        result.compile = Some(figures(output, job.base64));
        result.fill_compile_output();
        if let Some(broken) = compilation.broken {
            return Ok(Execution::Finished(finish(
                result,
                Verdict::InternalError,
                None,
                Some(broken),
            )));
        }
        if let Some(message) = compilation.failure {
            return Ok(Execution::Finished(finish(
                result,
                Verdict::CompilationError,
                None,
                Some(message),
            )));
        }
        run_files = compilation.output.files;
    }

    // The checker or interactor, compiled once for every case.
    let judge_program = match &job.judge {
        None => None,
        Some(program) => match prepare_judge(&steps, program).await? {
            None => return Ok(Execution::Cancelled),
            Some(Err(message)) => {
                return Ok(Execution::Finished(finish(
                    result,
                    Verdict::InternalError,
                    None,
                    Some(message),
                )));
            }
            Some(Ok(judge)) => Some(judge),
        },
    };
    let interactor = judge_program
        .as_ref()
        .filter(|j| j.program.role == Role::Interactor);

    let mut argv: Vec<Vec<u8>> = language
        .expand(&language.run, &names)
        .into_iter()
        .map(String::into_bytes)
        .collect();
    argv.extend(job.args.iter().map(|a| a.clone().into_bytes()));
    let step = limits.run();
    let mut cases: Vec<CaseResult> = Vec::with_capacity(job.cases.len());
    // Why the remaining cases (of a group, or all) are not run.
    let mut skip_all: Option<String> = None;
    let mut skip_groups: Vec<(String, String)> = Vec::new();
    for (index, case) in job.cases.iter().enumerate() {
        let skip = skip_all.clone().or_else(|| {
            case.group.as_ref().and_then(|g| {
                skip_groups
                    .iter()
                    .find(|(group, _)| group == g)
                    .map(|(_, why)| why.clone())
            })
        });
        if let Some(why) = skip {
            cases.push(CaseResult {
                message: Some(why),
                points: case.points,
                group: case.group.clone(),
                ..CaseResult::of(Verdict::Skipped)
            });
            continue;
        }
        // Built only where a container is to be started: a case run in an
        // open session needs no task of its own (nor a copy of the files).
        let task = || Task {
            nonce: [0; 16], // set per container by the sandbox
            wall_ms: step.wall_ms,
            cpu_ms: step.cpu_ms,
            output_bytes: step.output_bytes,
            artifacts: None,
            env: env.clone(),
            files: run_files.clone(),
            argv: argv.clone(),
            // With an interactor, the case's input is the interactor's.
            stdin: if interactor.is_some() {
                Vec::new()
            } else {
                case.stdin.clone()
            },
            uid: Some(settings.uid),
            processes: nproc(&step),
            stack_bytes: job.stack_bytes,
            file_size_bytes: job.file_size_bytes,
            stderr_to_stdout: job.stderr_to_stdout,
            interactive: match (job.interactive, interactor) {
                (Some(0), _) => Some(settings.idle_time_ms),
                (Some(idle), _) => Some(idle),
                // Talking with an interactor: no idle limit short of the
                // wall-clock one.
                (None, Some(_)) => Some(past(step.wall_ms)),
                (None, None) => None,
            },
            cases: false,
            then: false,
        };
        let (output, interaction) = if let Some(interactor) = interactor {
            let Some((output, interaction, first)) =
                interact(&steps, interactor, language, &step, task(), case, index).await?
            else {
                return Ok(Execution::Cancelled);
            };
            (output, Some((interaction, first)))
        } else if plain {
            if let Some(chained) = session.as_mut()
                && chained.awaits_task()
            {
                // The compilation's container, with the run's limits from
                // here on (or closed, if they could not be set). What the
                // compilation leaves (the program's files, written again
                // into the tmpfs, which the memory cgroup charges) is kept
                // out of the run's memory: its limit is the program's own.
                let task = task();
                let mut run_limits = container_limits(&step, settings, language);
                run_limits.memory_bytes += files_bytes(&task);
                chained.then_cases(&run_limits, task).await;
            }
            if !session.as_ref().is_some_and(CaseSession::is_open) {
                session = Some(
                    steps
                        .open_cases(language, &step, task(), format!("run-{index}"))
                        .await?,
                );
            }
            let open = session.as_mut().expect("opened above");
            let last = index + 1 == job.cases.len();
            let Some(output) = steps.run_case(open, &case.stdin, last).await? else {
                return Ok(Execution::Cancelled);
            };
            (output, None)
        } else {
            let run_input = if job.interactive.is_some() {
                input.take()
            } else {
                None
            };
            let Some(output) = steps
                .run(
                    language,
                    &step,
                    task(),
                    Phase::Running,
                    format!("run-{index}"),
                    run_input,
                )
                .await?
            else {
                return Ok(Execution::Cancelled);
            };
            (output, None)
        };
        let judged = judge_program.is_some();
        let (mut verdict, mut time_limit, mut message) = judge(
            &output,
            case.expected.as_deref().filter(|_| !judged),
            &case.compare,
        );
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
        let mut score = if verdict == Verdict::Accepted {
            case.points
        } else {
            0.0
        };
        let mut checker_figures = None;
        let mut interactor_figures = None;
        if let Some((interaction, interactor_first)) = &interaction {
            interactor_figures = Some(figures(interaction, job.base64));
            let (said, points, words) = checker_verdict(interaction, case.points, Role::Interactor);
            // What ended the exchange decides: an interactor that ended
            // first with a wrong answer (or failed) stands; else the
            // solution's own failure (a crash, a limit: a deadlock ends at
            // the solution's wall-clock limit, the interactor's being
            // longer); else the interactor's verdict.
            let interactor_ended_it = *interactor_first
                && matches!(
                    said,
                    Verdict::WrongAnswer | Verdict::PresentationError | Verdict::InternalError
                );
            if verdict == Verdict::Accepted || interactor_ended_it {
                verdict = said;
                time_limit = None;
                score = points;
                message = Some(words);
            }
        } else if let (Some(checker), Verdict::Accepted) = (&judge_program, verdict) {
            let Some(checked) = check(&steps, checker, case, &output.stdout, index).await? else {
                return Ok(Execution::Cancelled);
            };
            checker_figures = Some(figures(&checked.output, job.base64));
            verdict = checked.verdict;
            score = checked.score;
            message = checked.message;
        }
        // Only a judging program fails a case past this point.
        if let (Some(program), Verdict::InternalError) = (&judge_program, verdict) {
            skip_all = Some(format!(
                "not run: the {} failed on test case {index}",
                program.program.role.name()
            ));
        }
        if verdict != Verdict::Accepted && job.stop_on_first_failure && skip_all.is_none() {
            let why = format!("skipped: test case {index} failed");
            match &case.group {
                Some(group) => skip_groups.push((group.clone(), why)),
                None => skip_all = Some(why),
            }
        }
        cases.push(CaseResult {
            verdict,
            time_limit,
            message,
            points: case.points,
            score,
            group: case.group.clone(),
            checker: checker_figures,
            interactor: interactor_figures,
            figures: figures(&output, job.base64),
        });
    }

    if let Some(mut session) = session.take() {
        session.close().await;
    }
    share_output(
        &mut result.compile,
        &mut cases,
        settings.max_result_bytes,
        job.base64,
    );
    result.fill_compile_output();
    // The job's verdict is its first case that did not pass (a checker's
    // failure first of all), else accepted.
    let headline_at = cases
        .iter()
        .position(|c| c.verdict == Verdict::InternalError)
        .or_else(|| {
            cases
                .iter()
                .position(|c| !matches!(c.verdict, Verdict::Accepted | Verdict::Skipped))
        })
        .unwrap_or(cases.len().saturating_sub(1));
    let headline = cases.get(headline_at).cloned().expect("at least one case");
    result.figures = headline.figures.clone();
    if job.has_test_cases {
        result.figures_case = Some(headline_at);
        let (score, max_score, groups) = scores(&cases);
        result.score = Some(score);
        result.max_score = Some(max_score);
        result.groups = groups;
        result.test_cases = cases;
    }
    Ok(Execution::Finished(finish(
        result,
        headline.verdict,
        headline.time_limit,
        headline.message,
    )))
}

/// The job's score, its most, and each group's outcome: a case in no
/// group scores its own points; a group scores only if every case of it
/// passed, scaled by its weakest case's share (a checker's partial points).
fn scores(cases: &[CaseResult]) -> (f64, f64, Vec<GroupResult>) {
    let mut groups: Vec<GroupResult> = Vec::new();
    let mut score = 0.0;
    let mut max_score = 0.0;
    for (index, case) in cases.iter().enumerate() {
        max_score += case.points;
        let Some(name) = &case.group else {
            score += case.score;
            continue;
        };
        match groups.iter_mut().find(|g| &g.group == name) {
            Some(group) => {
                group.cases.push(index);
                group.max_score += case.points;
            }
            None => groups.push(GroupResult {
                group: name.clone(),
                passed: true,
                score: 0.0,
                max_score: case.points,
                cases: vec![index],
            }),
        }
    }
    for group in &mut groups {
        let members = || group.cases.iter().map(|&i| &cases[i]);
        group.passed = members().all(|c| c.verdict == Verdict::Accepted);
        let share = members()
            .filter(|c| c.points > 0.0)
            .map(|c| c.score / c.points)
            .fold(1.0_f64, f64::min);
        group.score = if group.passed {
            group.max_score * share
        } else {
            0.0
        };
        score += group.score;
    }
    (score, max_score, groups)
}

/// Compiles the checker or interactor where its language needs it; `None`
/// when cancelled, `Err` with the job's message when it cannot be used.
async fn prepare_judge<'a>(
    steps: &Steps<'_>,
    program: &'a PreparedProgram,
) -> Result<Option<Result<Judge<'a>, String>>, SandboxError> {
    let role = program.role.name();
    let language = &program.language;
    let names: Vec<String> = program.files.iter().map(|f| f.name.clone()).collect();
    let mut files = program.files.clone();
    if language.compile.is_some() {
        let Some(compilation) = steps
            .compile(
                language,
                &program.files,
                &[],
                &program.limits,
                Phase::Checking,
                &format!("{role}-compile"),
            )
            .await?
        else {
            return Ok(None);
        };
        if let Some(why) = compilation.broken.or(compilation.failure) {
            let output = &compilation.output;
            let mut words = String::from_utf8_lossy(&output.stdout).into_owned();
            words.push_str(&String::from_utf8_lossy(&output.stderr));
            return Ok(Some(Err(format!(
                "the {role} did not compile: {why}: {}",
                shorten(words.trim(), CHECKER_WORDS)
            ))));
        }
        files = compilation.output.files;
    }
    if files
        .iter()
        .any(|f| CHECKER_FILES.contains(&f.name.as_str()))
    {
        return Ok(Some(Err(format!(
            "the {role} may not have a file named {}",
            CHECKER_FILES.join(", ")
        ))));
    }
    let mut argv: Vec<Vec<u8>> = language
        .expand(&language.run, &names)
        .into_iter()
        .map(String::into_bytes)
        .collect();
    argv.extend(CHECKER_FILES.iter().map(|f| f.as_bytes().to_vec()));
    Ok(Some(Ok(Judge {
        program,
        files,
        argv,
    })))
}

/// The most of a checker's (or its compiler's) words a message keeps.
const CHECKER_WORDS: usize = 1000;

/// What the checker made of one run.
struct Checked {
    output: TaskOutput,
    verdict: Verdict,
    score: f64,
    message: Option<String>,
}

/// Runs the checker on one case's output in its own container; `None`
/// when cancelled.
async fn check(
    steps: &Steps<'_>,
    checker: &Judge<'_>,
    case: &PreparedCase,
    output: &[u8],
    index: usize,
) -> Result<Option<Checked>, SandboxError> {
    let program = checker.program;
    let step = program.limits.run();
    let task = checker.task(&step, case, Some(output), steps.settings.uid);
    let Some(output) = steps
        .run(
            &program.language,
            &step,
            task,
            Phase::Checking,
            format!("check-{index}"),
            None,
        )
        .await?
    else {
        return Ok(None);
    };
    let (verdict, score, message) = checker_verdict(&output, case.points, Role::Checker);
    Ok(Some(Checked {
        output,
        verdict,
        score,
        message: Some(message),
    }))
}

/// Passes a run's phases on (when `inner` is given) and sends its stdout,
/// as it comes, to the other program of an interaction.
struct Relay<'a> {
    inner: Option<&'a dyn RunObserver>,
    to: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    /// Which side's run ended first (`SOLUTION` or `INTERACTOR`, 0 while
    /// neither has), and which side this is: set when its run is over
    /// (the monitor's report read), not when its container is gone.
    ended_first: &'a std::sync::atomic::AtomicU8,
    side: u8,
    /// Told once this side's program has its task (the interactor's: the
    /// solution starts only then, so that its clock never counts the
    /// interactor's container starting).
    running: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

const SOLUTION: u8 = 1;
const INTERACTOR: u8 = 2;

/// Records `side` as the one that ended first unless a side already is;
/// whether `side` is the first.
fn claim_first(ended_first: &std::sync::atomic::AtomicU8, side: u8) -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    ended_first
        .compare_exchange(0, side, SeqCst, SeqCst)
        .map_or_else(|first| first == side, |_| true)
}

impl RunObserver for Relay<'_> {
    fn phase(&self, phase: Phase, container_id: &str) {
        if phase == Phase::Collecting {
            claim_first(self.ended_first, self.side);
        }
        if matches!(phase, Phase::Running | Phase::Checking)
            && let Some(running) = self.running.lock().ok().and_then(|mut r| r.take())
        {
            let _ = running.send(());
        }
        if let Some(inner) = self.inner {
            inner.phase(phase, container_id);
        }
    }

    fn output(&self, stderr: bool, bytes: &[u8]) {
        if !stderr {
            // Unbounded here, bounded by the sender's output cap (the
            // monitor stops a program at it).
            let _ = self.to.send(bytes.to_vec());
        }
        if let Some(inner) = self.inner {
            inner.output(stderr, bytes);
        }
    }
}

/// Feeds what one program of an interaction wrote to the other's stdin, in
/// order, then closes it; with `kill`, kills it once `kill` says to (its
/// partner judged the exchange a failure and it need not run on).
async fn relay(
    mut from: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    to: tokio::sync::mpsc::Sender<Input>,
    kill: Option<tokio::sync::oneshot::Receiver<bool>>,
) {
    while let Some(bytes) = from.recv().await {
        // Once the reader is gone, what it did not read is dropped.
        let _ = to.send(Input::Data(bytes)).await;
    }
    let _ = to.send(Input::Close).await;
    if let Some(kill) = kill
        && kill.await == Ok(true)
    {
        let _ = to.send(Input::Signal(SIGKILL)).await;
    }
}

/// SIGKILL's number (one of the signals the monitor takes from input).
const SIGKILL: i32 = 9;

/// Runs one case as an interaction: the solution (`task`) and the
/// interactor each in its own container at once, each one's stdout relayed
/// to the other's stdin. The interactor gets the case's input and answer as
/// files. `None` when cancelled; else the solution's run, the
/// interactor's, and whether the interactor ended first.
async fn interact(
    steps: &Steps<'_>,
    interactor: &Judge<'_>,
    language: &Language,
    step: &StepLimits,
    task: Task,
    case: &PreparedCase,
    index: usize,
) -> Result<Option<(TaskOutput, TaskOutput, bool)>, SandboxError> {
    let program = interactor.program;
    let ended_first = std::sync::atomic::AtomicU8::new(0);
    // The interactor outlives the solution by the margin, so that a
    // solution that hangs is the one stopped by its limit, and no more: an
    // interactor that stalls once the solution is done is stopped then, not
    // at a wall-clock limit of its own.
    let mut interactor_step = program.limits.run();
    interactor_step.wall_ms = step.wall_ms + INTERACTOR_MARGIN_MS;
    let interactor_task = Task {
        interactive: Some(past(interactor_step.wall_ms)),
        ..interactor.task(&interactor_step, case, None, steps.settings.uid)
    };
    let (solution_out, solution_said) = tokio::sync::mpsc::unbounded_channel();
    let (interactor_out, interactor_said) = tokio::sync::mpsc::unbounded_channel();
    let (solution_in, solution_reads) = tokio::sync::mpsc::channel(RELAY_DEPTH);
    let (interactor_in, interactor_reads) = tokio::sync::mpsc::channel(RELAY_DEPTH);
    let (judged, kill_solution) = tokio::sync::oneshot::channel();
    let (interactor_running, interactor_started) = tokio::sync::oneshot::channel();

    let solution_side = async {
        let observer = Relay {
            inner: Some(steps.observer),
            to: solution_out,
            ended_first: &ended_first,
            side: SOLUTION,
            running: std::sync::Mutex::new(None),
        };
        // The interactor's container (never a warm one) takes a moment to
        // start; the solution's clock starts once the interactor runs (or
        // could not start: the exchange then fails either way).
        let _ = interactor_started.await;
        let run = steps
            .run_observed(
                &observer,
                language,
                step,
                task,
                Phase::Running,
                format!("run-{index}"),
                Some(solution_reads),
            )
            .await;
        // A run that ended without reaching its collection (an engine
        // error) ends here.
        claim_first(&ended_first, SOLUTION);
        run
    };
    // The interactor's container takes no worker slot of its own (nor a
    // warm one): the job holds its slot through the solution's, and two
    // slots per job could leave every job at the cap holding one and
    // waiting for another while their solutions idle.
    let unslotted = Steps {
        pool: None,
        ..*steps
    };
    let interactor_side = async {
        let observer = Relay {
            inner: None,
            to: interactor_out,
            ended_first: &ended_first,
            side: INTERACTOR,
            running: std::sync::Mutex::new(Some(interactor_running)),
        };
        let run = unslotted
            .run_observed(
                &observer,
                &program.language,
                &interactor_step,
                interactor_task,
                Phase::Checking,
                format!("interact-{index}"),
                Some(interactor_reads),
            )
            .await;
        drop(observer);
        let first = claim_first(&ended_first, INTERACTOR);
        // It ended: a failed exchange need not wait for the solution.
        let failed = match &run {
            Ok(Some(output)) => report_of(output).exit_code != Some(0),
            _ => true,
        };
        let _ = judged.send(failed);
        run.map(|run| run.map(|output| (output, first)))
    };
    let (solution, interaction, (), ()) = tokio::join!(
        solution_side,
        interactor_side,
        relay(solution_said, interactor_in, None),
        relay(interactor_said, solution_in, Some(kill_solution)),
    );
    match (solution?, interaction?) {
        (Some(solution), Some((interaction, first))) => Ok(Some((solution, interaction, first))),
        _ => Ok(None),
    }
}

/// An idle limit that never comes before the wall-clock limit `wall_ms`.
fn past(wall_ms: u64) -> u64 {
    wall_ms.saturating_mul(2).saturating_add(1000)
}

/// How much longer than the solution an interactor may run: it starts
/// first, and the solution's container may take a moment to start after it.
const INTERACTOR_MARGIN_MS: u64 = 3000;
/// Chunks waiting for a program of an interaction to read them, past
/// which the relay waits (the monitor holds more inside).
const RELAY_DEPTH: usize = 64;

/// The verdict, score and message of a checker's (or an interactor's) run,
/// in testlib's
/// convention: exit 0 accepted, 1 wrong answer, 2 presentation error (4,
/// testlib's "dirt", too), 8 (an output that ended early) wrong answer, 7
/// partial points (`points <value>` on stderr, as testlib's `quitp`
/// writes, else the first word of stdout; from 0 to the case's points).
/// Anything else (3, testlib's FAIL, a crash, a limit) is a failure of the
/// checker: `internal_error`, never a verdict on the solution.
fn checker_verdict(output: &TaskOutput, points: f64, role: Role) -> (Verdict, f64, String) {
    let role = role.name();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let words = if stderr.trim().is_empty() {
        stdout.trim()
    } else {
        stderr.trim()
    };
    let said = |what: &str| {
        if words.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {}", shorten(words, CHECKER_WORDS))
        }
    };
    let failed = |why: String| {
        (
            Verdict::InternalError,
            0.0,
            format!("the {role} failed: {why}"),
        )
    };
    let (verdict, _, message) = judge(output, None, &Compare::default());
    let code = match (verdict, output.report.exit_code) {
        (Verdict::Accepted, _) => 0,
        (Verdict::RuntimeError, Some(code))
            if output.report.signal.is_none() && output.lost.is_none() =>
        {
            code
        }
        _ => return failed(message.unwrap_or_else(|| "it did not finish".into())),
    };
    match code {
        0 => (
            Verdict::Accepted,
            points,
            said(&format!("the {role} accepted it")),
        ),
        1 | 8 => (Verdict::WrongAnswer, 0.0, said("wrong answer")),
        2 | 4 => (Verdict::PresentationError, 0.0, said("presentation error")),
        7 => {
            let value = stderr
                .lines()
                .find_map(|line| line.trim().strip_prefix("points "))
                .and_then(|rest| rest.split_whitespace().next())
                .or_else(|| stdout.split_whitespace().next())
                .and_then(|value| value.parse::<f64>().ok());
            match value {
                Some(value) if value.is_finite() && (0.0..=points).contains(&value) => {
                    let verdict = if value > 0.0 {
                        Verdict::Accepted
                    } else {
                        Verdict::WrongAnswer
                    };
                    (verdict, value, said(&format!("{value} of {points} points")))
                }
                Some(value) => failed(format!(
                    "it gave {value} points, outside 0 to the case's {points}"
                )),
                None => failed(said("it exited 7 (points) without saying how many")),
            }
        }
        3 => failed(said("it reported FAIL (exit 3)")),
        code => failed(said(&format!("it exited with status {code}"))),
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), marked.
fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Keeps the outputs of a job within `budget` bytes in all, sharing it
/// fairly: streams smaller than an even share keep everything, the others
/// are cut at one common length (verdicts were decided on the whole output
/// before this). A cut stream says so in its `*_truncated` flag; a cut
/// compiler output ends with a note.
fn share_output(
    compile: &mut Option<RunFigures>,
    cases: &mut [CaseResult],
    budget: usize,
    base64: bool,
) {
    let mut streams: Vec<(&mut String, &mut bool)> = Vec::with_capacity(cases.len() * 2 + 2);
    if let Some(compile) = compile.as_mut() {
        streams.push((&mut compile.stdout, &mut compile.stdout_truncated));
        streams.push((&mut compile.stderr, &mut compile.stderr_truncated));
    }
    for case in cases.iter_mut() {
        let figures = &mut case.figures;
        streams.push((&mut figures.stdout, &mut figures.stdout_truncated));
        streams.push((&mut figures.stderr, &mut figures.stderr_truncated));
        if let Some(checker) = case.checker.as_mut() {
            streams.push((&mut checker.stdout, &mut checker.stdout_truncated));
            streams.push((&mut checker.stderr, &mut checker.stderr_truncated));
        }
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
/// A run's output; `None` when it was cancelled.
fn done(outcome: TaskOutcome) -> Result<Option<TaskOutput>, SandboxError> {
    Ok(match outcome {
        TaskOutcome::Cancelled => None,
        TaskOutcome::Done(output) => Some(*output),
    })
}

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

/// A step's processes limit for the monitor to set as the program uid's
/// `RLIMIT_NPROC` (the container's pids cgroup sets the same limit; the
/// sandbox keeps this one under gVisor only, where it is the one the
/// program meets: see `sandbox::spec::monitor_task`).
fn nproc(step: &StepLimits) -> Option<u64> {
    u64::try_from(step.processes).ok().filter(|n| *n > 0)
}

/// What a task's files take in the tmpfs: each rounded up to whole pages.
fn files_bytes(task: &Task) -> u64 {
    const PAGE: u64 = 4096;
    task.files
        .iter()
        .map(|f| (f.content.len() as u64).div_ceil(PAGE) * PAGE)
        .sum()
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
        let case = |stdout: &str, stderr: &str| CaseResult {
            figures: RunFigures {
                stdout: stdout.to_string(),
                stderr: stderr.to_string(),
                ..RunFigures::default()
            },
            ..CaseResult::of(Verdict::Accepted)
        };
        let mut cases = vec![case(&"é".repeat(50), "ok"), case(&"x".repeat(100), "")];
        let mut compile = Some(RunFigures {
            stderr: "warning".to_string(),
            ..RunFigures::default()
        });
        share_output(&mut compile, &mut cases, 80, false);
        let total: usize = cases
            .iter()
            .map(|c| c.figures.stdout.len() + c.figures.stderr.len())
            .sum();
        assert!(total + "warning".len() <= 80, "{total}");
        assert!(cases[0].figures.stdout_truncated && cases[1].figures.stdout_truncated);
        assert!(!cases[0].figures.stderr_truncated);
        assert_eq!(cases[0].figures.stderr, "ok");
        assert_eq!(compile.unwrap().stderr, "warning");
        // Base64 is cut at a whole group of four.
        let mut cases = vec![case(&"QUJD".repeat(30), "")];
        share_output(&mut None, &mut cases, 10, true);
        assert_eq!(cases[0].figures.stdout, "QUJDQUJD");
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

    fn checker_verdict_of(output: &TaskOutput, points: f64) -> (Verdict, f64, String) {
        checker_verdict(output, points, Role::Checker)
    }

    fn checker_run(code: i32, stdout: &str, stderr: &str) -> TaskOutput {
        let mut run = output(exited(code));
        run.stdout = stdout.as_bytes().to_vec();
        run.stderr = stderr.as_bytes().to_vec();
        run
    }

    #[test]
    fn a_checkers_exit_status_is_read_as_testlib_writes_it() {
        let (verdict, score, message) =
            checker_verdict_of(&checker_run(0, "", "ok 3 numbers"), 2.0);
        assert_eq!((verdict, score), (Verdict::Accepted, 2.0));
        assert!(message.contains("ok 3 numbers"), "{message}");
        let (verdict, score, message) =
            checker_verdict_of(&checker_run(1, "", "wrong answer 1st numbers differ"), 2.0);
        assert_eq!((verdict, score), (Verdict::WrongAnswer, 0.0));
        assert!(message.contains("1st numbers differ"), "{message}");
        for code in [2, 4] {
            assert_eq!(
                checker_verdict_of(&checker_run(code, "", ""), 1.0).0,
                Verdict::PresentationError
            );
        }
        assert_eq!(
            checker_verdict_of(&checker_run(8, "", "unexpected eof"), 1.0).0,
            Verdict::WrongAnswer
        );
        // Partial points: testlib's `points <value>` on stderr, or stdout.
        let (verdict, score, _) = checker_verdict_of(&checker_run(7, "", "points 0.25 close"), 1.0);
        assert_eq!((verdict, score), (Verdict::Accepted, 0.25));
        let (verdict, score, _) = checker_verdict_of(&checker_run(7, "1.5\n", ""), 3.0);
        assert_eq!((verdict, score), (Verdict::Accepted, 1.5));
        assert_eq!(
            checker_verdict_of(&checker_run(7, "0", ""), 1.0).0,
            Verdict::WrongAnswer
        );
    }

    #[test]
    fn a_checker_that_fails_fails_the_case_never_the_solution() {
        for run in [
            checker_run(3, "", "FAIL answer file is broken"),
            checker_run(7, "", "no number here"),
            checker_run(7, "5", ""),
            checker_run(42, "", ""),
        ] {
            let (verdict, _, message) = checker_verdict_of(&run, 1.0);
            assert_eq!(verdict, Verdict::InternalError, "{message}");
            assert!(message.starts_with("the checker failed: "), "{message}");
        }
        let mut looping = output(Report {
            limit: Some(LimitHit::Wall),
            signal: Some(9),
            ..Report::default()
        });
        looping.stdout.clear();
        let (verdict, _, message) = checker_verdict_of(&looping, 1.0);
        assert_eq!(verdict, Verdict::InternalError);
        assert_eq!(
            message,
            "the checker failed: wall-clock time limit exceeded"
        );
        let killed = output(Report {
            signal: Some(11),
            ..Report::default()
        });
        assert_eq!(
            checker_verdict_of(&killed, 1.0).2,
            "the checker failed: killed by SIGSEGV"
        );
    }

    fn scored(verdict: Verdict, points: f64, score: f64, group: Option<&str>) -> CaseResult {
        CaseResult {
            verdict,
            points,
            score,
            group: group.map(str::to_string),
            ..CaseResult::of(Verdict::Accepted)
        }
    }

    #[test]
    fn a_group_scores_only_when_all_its_cases_pass() {
        let cases = [
            scored(Verdict::Accepted, 1.0, 1.0, None),
            scored(Verdict::WrongAnswer, 2.0, 0.0, None),
            scored(Verdict::Accepted, 5.0, 5.0, Some("small")),
            scored(Verdict::Accepted, 5.0, 5.0, Some("small")),
            scored(Verdict::Accepted, 10.0, 10.0, Some("large")),
            scored(Verdict::TimeLimitExceeded, 10.0, 0.0, Some("large")),
            scored(Verdict::Skipped, 10.0, 0.0, Some("large")),
            // Partial points scale the whole group by its weakest case.
            scored(Verdict::Accepted, 4.0, 2.0, Some("partial")),
            scored(Verdict::Accepted, 4.0, 4.0, Some("partial")),
        ];
        let (score, max, groups) = scores(&cases);
        assert_eq!((score, max), (1.0 + 10.0 + 4.0, 51.0));
        let summary: Vec<_> = groups
            .iter()
            .map(|g| {
                (
                    g.group.as_str(),
                    g.passed,
                    g.score,
                    g.max_score,
                    g.cases.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("small", true, 10.0, 10.0, vec![2, 3]),
                ("large", false, 0.0, 30.0, vec![4, 5, 6]),
                ("partial", true, 4.0, 8.0, vec![7, 8]),
            ]
        );
    }
}
