//! Verdicts: a run's from what the monitor measured, and the job's score
//! from its cases'.

use monitor_protocol::{LimitHit, Report, signal_name};

use super::prepare::{PreparedCase, PreparedJob, Role};
use super::result::report_of;
use super::steps::Compilation;
use crate::compare::Compare;
use crate::job::{CaseResult, GroupResult, JobResult, TimeLimit, Verdict};
use crate::sandbox::TaskOutput;

/// The job's score, its most, and each group's outcome: a case in no
/// group scores its own points; a group scores only if every case of it
/// passed, scaled by its weakest case's share (a checker's partial points).
pub(super) fn scores(cases: &[CaseResult]) -> (f64, f64, Vec<GroupResult>) {
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

/// A run's verdict from what the monitor measured.
pub(super) fn judge(
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

/// A job under way reads accepted until one of its steps decides
/// otherwise (every end of [`super::execute`] sets the verdict).
pub(super) const UNDECIDED: Verdict = Verdict::Accepted;

/// A checker or interactor that cannot be used (its compilation failed):
/// the job's author's or the service's failure, never the solution's.
pub(super) const JUDGE_UNUSABLE: Verdict = Verdict::InternalError;

/// A compilation that leads to no run, and why: its output lost or its
/// compiler's failure are the code's (`compilation_error`); a compiler that
/// could not run at all is the service's (`internal_error`).
pub(super) fn of_compilation(compilation: &Compilation) -> Option<(Verdict, String)> {
    if let Some(lost) = &compilation.output.lost {
        return Some((Verdict::CompilationError, lost.clone()));
    }
    if let Some(broken) = &compilation.broken {
        return Some((Verdict::InternalError, broken.clone()));
    }
    compilation
        .failure
        .as_ref()
        .map(|message| (Verdict::CompilationError, message.clone()))
}

/// A run that could not start (`internal_error`, with its `message`):
/// when what a compilation made of the user's code cannot be executed (a Go
/// package that is not `main`, a Rust library crate), the user's
/// compilation error, not the service's failure.
pub(super) fn not_run(message: Option<String>, compiled: bool) -> (Verdict, Option<String>) {
    if compiled {
        return (
            Verdict::CompilationError,
            Some(format!(
                "the compilation produced no runnable program ({})",
                message.unwrap_or_default()
            )),
        );
    }
    (Verdict::InternalError, message)
}

/// A case not run, and why (a failure before it, with
/// `stop_on_first_failure`, or a judging program's failure).
pub(super) fn skipped(why: String, case: &PreparedCase) -> CaseResult {
    CaseResult {
        message: Some(why),
        points: case.points,
        group: case.group.clone(),
        ..CaseResult::of(Verdict::Skipped)
    }
}

/// A case's verdict, time limit, score and message once its interactor
/// `said` its own: what ended the exchange decides. An interactor that
/// ended first (`interactor_first`) with a wrong answer (or failed) stands;
/// else the solution's own failure (a crash, a limit: a deadlock ends at
/// the solution's wall-clock limit, the interactor's being longer); else
/// the interactor's verdict.
pub(super) fn with_interactor(
    run: (Verdict, Option<TimeLimit>, f64, Option<String>),
    said: (Verdict, f64, String),
    interactor_first: bool,
) -> (Verdict, Option<TimeLimit>, f64, Option<String>) {
    let (verdict, _, _, _) = run;
    let (said, points, words) = said;
    let interactor_ended_it = interactor_first
        && matches!(
            said,
            Verdict::WrongAnswer | Verdict::PresentationError | Verdict::InternalError
        );
    if verdict == Verdict::Accepted || interactor_ended_it {
        (said, None, points, Some(words))
    } else {
        run
    }
}

/// The case that gives the job its verdict: the first that did not pass
/// (a checker's failure first of all), else the last.
pub(super) fn headline(cases: &[CaseResult]) -> usize {
    cases
        .iter()
        .position(|c| c.verdict == Verdict::InternalError)
        .or_else(|| {
            cases
                .iter()
                .position(|c| !matches!(c.verdict, Verdict::Accepted | Verdict::Skipped))
        })
        .unwrap_or(cases.len().saturating_sub(1))
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

/// The verdict, score and message of a checker's (or an interactor's) run,
/// in testlib's
/// convention: exit 0 accepted, 1 wrong answer, 2 presentation error (4,
/// testlib's "dirt", too), 8 (an output that ended early) wrong answer, 7
/// partial points (`points <value>` on stderr, as testlib's `quitp`
/// writes, else the first word of stdout; from 0 to the case's points).
/// Anything else (3, testlib's FAIL, a crash, a limit) is a failure of the
/// checker: `internal_error`, never a verdict on the solution.
pub(super) fn checker_verdict(
    output: &TaskOutput,
    points: f64,
    role: Role,
) -> (Verdict, f64, String) {
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

/// The most of a checker's (or its compiler's) words a message keeps.
pub(super) const CHECKER_WORDS: usize = 1000;

/// `text` cut to at most `max` bytes (at a character boundary), marked.
pub(super) fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
pub(super) mod tests {
    use monitor_protocol::{LimitHit, Report};

    use super::*;
    use crate::compare::Compare;
    use crate::job::{CaseResult, TimeLimit, Verdict};
    use crate::sandbox::{TaskOutput, Unreported};

    pub(in crate::execute) fn output(report: Report) -> TaskOutput {
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

    pub(in crate::execute) fn exited(code: i32) -> Report {
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
}
