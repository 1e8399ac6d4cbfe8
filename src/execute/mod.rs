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

mod checker;
mod interact;
mod prepare;
mod result;
mod steps;
mod verdict;

use checker::{check, prepare_judge};
use interact::{interact, past};
pub use prepare::{
    CHECKER_FILES, PreparedCase, PreparedJob, PreparedProgram, ResolvedProgram, Role, prepare,
};
use result::{figures, finish, share_output};
use steps::{Steps, container_limits, files_bytes, nproc};
pub use verdict::cancelled;
use verdict::{checker_verdict, judge, scores};

use monitor_protocol::{Input, Task};
use tokio_util::sync::CancellationToken;

use crate::job::{CaseResult, JobResult, Phase, Verdict};
use crate::sandbox::pool::WarmPool;
use crate::sandbox::{CaseSession, RunObserver, Sandbox, SandboxError};

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

/// How a job's execution ended.
#[derive(Debug)]
pub enum Execution {
    Finished(Box<JobResult>),
    /// Stopped by its cancellation token before it ended.
    Cancelled,
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
        client: job.client.as_deref(),
        slotless: false,
        settings,
        cancel,
        observer,
    };
    let language = &job.language;
    let names: Vec<String> = job.files.iter().map(|f| f.name.clone()).collect();
    let env = language.environment();
    let limits = &job.limits;
    let mut result = JobResult {
        encoding: if job.base64 { "base64" } else { "utf8" }.to_string(),
        language: language.id.clone(),
        version: job.version.clone(),
        worker_id: sandbox.settings().worker_id.clone(),
        ..JobResult::of(verdict::UNDECIDED)
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
        let ended = verdict::of_compilation(&compilation);
        if compilation.output.lost.is_none() {
            result.compile = Some(figures(&compilation.output, job.base64));
            result.fill_compile_output();
        }
        if let Some((verdict, message)) = ended {
            return Ok(Execution::Finished(finish(
                result,
                verdict,
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
                    verdict::JUDGE_UNUSABLE,
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
            cases.push(verdict::skipped(why, case));
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
            recycle: false,
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
            let compiled = output.report.exec_failed && language.compile.is_some();
            let (verdict, message) = verdict::not_run(message, compiled);
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
            (verdict, time_limit, score, message) = verdict::with_interactor(
                (verdict, time_limit, score, message),
                checker_verdict(interaction, case.points, Role::Interactor),
                *interactor_first,
            );
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
    let headline_at = verdict::headline(&cases);
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
