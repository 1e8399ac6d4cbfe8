//! The checker or interactor of a job: compiled once, run per case, read
//! in testlib's convention.

use monitor_protocol::{FileSpec, Task};

use super::{
    prepare::{CHECKER_FILES, PreparedCase, PreparedProgram, Role},
    steps::{Steps, nproc},
    verdict::{CHECKER_WORDS, checker_verdict, shorten},
};

use crate::job::{Phase, Verdict};
use crate::limits::StepLimits;
use crate::sandbox::{SandboxError, TaskOutput};

/// The checker or interactor compiled (or its source, for an interpreted
/// language), ready to judge runs.
pub(super) struct Judge<'a> {
    pub(super) program: &'a PreparedProgram,
    pub(super) files: Vec<FileSpec>,
    pub(super) argv: Vec<Vec<u8>>,
}

impl Judge<'_> {
    /// Its task for one case: its files, and the case's input, the
    /// solution's `output` (a checker's; an interactor's is a file of its
    /// own to write) and the answer as [`CHECKER_FILES`].
    pub(super) fn task(
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

/// Compiles the checker or interactor where its language needs it; `None`
/// when cancelled, `Err` with the job's message when it cannot be used.
pub(super) async fn prepare_judge<'a>(
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

/// What the checker made of one run.
pub(super) struct Checked {
    pub(super) output: TaskOutput,
    pub(super) verdict: Verdict,
    pub(super) score: f64,
    pub(super) message: Option<String>,
}

/// Runs the checker on one case's output in its own container; `None`
/// when cancelled.
pub(super) async fn check(
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
