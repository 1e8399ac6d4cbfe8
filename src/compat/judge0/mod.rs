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

mod catalogue;
mod request;
mod response;

pub use catalogue::*;
pub use request::*;
pub use response::*;

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::job::{CaseResult, RunStatus};
    use crate::job::{JobResult, JobSpec, Judge0Request, RunFigures, Verdict};
    use crate::language::LanguageTable;
    use crate::limits::Limits;

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
                status: RunStatus::Success,
                figures,
                encoding: "base64".into(),
                language: "c".into(),
                version: "12.2.0".into(),
                worker_id: "w".into(),
                ..JobResult::of(verdict)
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
