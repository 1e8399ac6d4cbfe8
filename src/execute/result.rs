//! The job's result built from its steps: figures and the shared output
//! budget.

use base64::Engine;
use monitor_protocol::{LimitHit, Report, signal_name};

use crate::job::{CaseResult, JobResult, RunFigures, TimeLimit, Verdict, status_of};
use crate::sandbox::{TaskOutput, Unreported};

/// Keeps the outputs of a job within `budget` bytes in all, sharing it
/// fairly: streams smaller than an even share keep everything, the others
/// are cut at one common length (verdicts were decided on the whole output
/// before this). A cut stream says so in its `*_truncated` flag; a cut
/// compiler output ends with a note.
pub(super) fn share_output(
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
pub(super) fn fair_level(sizes: &[usize], budget: usize) -> Option<usize> {
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

pub(super) fn finish(
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

pub(super) fn figures(output: &TaskOutput, base64: bool) -> RunFigures {
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
pub(super) fn report_of(output: &TaskOutput) -> Report {
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

pub(super) fn encode(bytes: &[u8], base64: bool) -> String {
    if base64 {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{CaseResult, RunFigures, Verdict};

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
}
