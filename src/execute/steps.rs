//! The steps of a job in containers: a compilation (alone, or chained into
//! its run's container), a run, a case in a shared container, and the
//! limits and task each step gets.

use monitor_protocol::{FileSpec, Input, LimitHit, Task, signal_name};
use tokio_util::sync::CancellationToken;

use super::{ExecutionSettings, result::report_of};
use crate::job::Phase;
use crate::language::Language;
use crate::limits::{Limits, StepLimits};
use crate::sandbox::pool::WarmPool;
use crate::sandbox::{
    CaseSession, ContainerLimits, RunObserver, Sandbox, SandboxError, TaskOutcome, TaskOutput,
    TaskRequest,
};

/// What every step of one job's execution shares.
#[derive(Clone, Copy)]
pub(super) struct Steps<'a> {
    pub(super) sandbox: &'a Sandbox,
    pub(super) pool: Option<&'a std::sync::Arc<WarmPool>>,
    pub(super) job_id: &'a str,
    /// Who submitted the job (see `TaskRequest::client`).
    pub(super) client: Option<&'a str>,
    /// Its containers hold none of the cap's slots (see
    /// `TaskRequest::slotless`).
    pub(super) slotless: bool,
    pub(super) settings: &'a ExecutionSettings,
    pub(super) cancel: &'a CancellationToken,
    pub(super) observer: &'a dyn RunObserver,
}

/// A compilation that ran: its output, and why it failed if it did.
pub(super) struct Compilation {
    pub(super) output: TaskOutput,
    /// The compiler could not run at all (the service's fault).
    pub(super) broken: Option<String>,
    /// The compilation failed (the code's fault), in words.
    pub(super) failure: Option<String>,
}

impl Steps<'_> {
    /// Runs one task in a fresh container; `None` when cancelled.
    pub(super) async fn run(
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
    pub(super) async fn run_observed(
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
    pub(super) fn request<'l>(
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
            client: self.client.map(str::to_string),
            slotless: self.slotless,
        }
    }

    /// Holds a container for `task` to run case after case in (see
    /// [`CaseSession`]).
    pub(super) async fn open_cases(
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
    pub(super) async fn run_case(
        &self,
        session: &mut CaseSession<'_>,
        stdin: &[u8],
        last: bool,
    ) -> Result<Option<TaskOutput>, SandboxError> {
        done(session.run(stdin, last, self.cancel, self.observer).await?)
    }

    /// Compiles `files` with `language`'s compile command; `None` when
    /// cancelled.
    pub(super) async fn compile(
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
    pub(super) async fn compile_then_cases(
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
    pub(super) fn compile_task(
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
    pub(super) fn of(output: TaskOutput) -> Compilation {
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

/// The container one step runs in: the step's memory and processes, the
/// worker's CPU share, tmpfs and slot CPU, the language's runtime.
/// A run's output; `None` when it was cancelled.
pub(super) fn done(outcome: TaskOutcome) -> Result<Option<TaskOutput>, SandboxError> {
    Ok(match outcome {
        TaskOutcome::Cancelled => None,
        TaskOutcome::Done(output) => Some(*output),
    })
}

pub(super) fn container_limits(
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
pub(super) fn nproc(step: &StepLimits) -> Option<u64> {
    u64::try_from(step.processes).ok().filter(|n| *n > 0)
}

/// What a task's files take in the tmpfs: each rounded up to whole pages.
pub(super) fn files_bytes(task: &Task) -> u64 {
    const PAGE: u64 = 4096;
    task.files
        .iter()
        .map(|f| (f.content.len() as u64).div_ceil(PAGE) * PAGE)
        .sum()
}

#[cfg(test)]
mod tests {
    use monitor_protocol::{LimitHit, Report};

    use super::*;
    use crate::execute::verdict::tests::{exited, output};

    fn said(report: Report) -> (Option<String>, Option<String>) {
        let compilation = Compilation::of(output(report));
        (compilation.failure, compilation.broken)
    }

    #[test]
    fn a_compilers_run_says_whether_the_code_compiled_and_why_not() {
        assert_eq!(said(exited(0)), (None, None));
        assert_eq!(
            said(exited(1)),
            (Some("the compiler exited with status 1".into()), None)
        );
        let limit = |limit| Report {
            limit: Some(limit),
            ..exited(1)
        };
        assert_eq!(
            said(limit(LimitHit::Wall)).0.as_deref(),
            Some("the compilation ran out of time")
        );
        assert_eq!(
            said(limit(LimitHit::Memory)).0.as_deref(),
            Some("the compilation ran out of memory")
        );
        assert_eq!(
            said(limit(LimitHit::Output)).0.as_deref(),
            Some("the compiler's output passed its cap")
        );
        let killed = Report {
            exit_code: None,
            signal: Some(9),
            ..Report::default()
        };
        assert_eq!(
            said(killed).0.as_deref(),
            Some("the compiler was killed by SIGKILL")
        );
        let too_much = Report {
            artifacts_truncated: true,
            ..exited(0)
        };
        assert!(
            said(too_much)
                .0
                .unwrap()
                .contains("more than the sandbox can carry")
        );
    }

    #[test]
    fn a_compiler_that_could_not_run_is_the_services_failure_not_the_codes() {
        let (failure, broken) = said(Report {
            error: Some("exec: no such file".into()),
            ..Report::default()
        });
        assert_eq!(failure, None);
        assert_eq!(
            broken.as_deref(),
            Some("the compiler could not run: exec: no such file")
        );
        let mut lost = output(exited(0));
        lost.lost = Some("the engine lost the compilation".into());
        let compilation = Compilation::of(lost);
        assert_eq!(
            compilation.failure.as_deref(),
            Some("the engine lost the compilation")
        );
    }
}
