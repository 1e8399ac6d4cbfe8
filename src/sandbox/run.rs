//! One job's container lifecycle.
//!
//! create → attach → start → write the shim's frame (files, then stdin) →
//! read stdout/stderr while counting them, under the wall-clock deadline →
//! wait for exit → inspect (exit code, OOM kill) → remove.
//!
//! The deadline is the service's own (a tokio timer, then SIGKILL), so it
//! holds whatever the program does. The container is removed on every path
//! this function returns through; if the future is dropped instead (its
//! runner was killed), the dispatcher removes it by label.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::spec::{container_spec, stdin_frame};
use super::{Sandbox, SandboxError};
use crate::job::{Limits, Phase, RunResult, RunStatus};
use crate::language::Language;

/// What to run.
pub struct RunRequest<'a> {
    pub job_id: &'a str,
    pub language: &'a Language,
    pub code: &'a str,
    pub stdin: &'a str,
    pub limits: Limits,
}

/// How a run ended, from the service's point of view.
#[derive(Debug)]
pub enum RunOutcome {
    /// The program ran; the result says how it ended.
    Finished(RunResult),
    /// The run was cancelled (its container killed and removed) before it
    /// ended on its own; the caller decides what becomes of the job.
    Cancelled,
}

/// Why the service stopped watching the program.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    Exited,
    Timeout,
    OutputLimit,
    Cancelled,
}

/// Bytes of one output stream, kept up to a cap.
struct Capture {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Capture {
    fn new(cap: u64) -> Self {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        Capture {
            bytes: Vec::with_capacity(cap.min(8192)),
            cap,
            truncated: false,
        }
    }

    /// Keeps what fits; returns true once the stream passed its cap.
    fn push(&mut self, chunk: &[u8]) -> bool {
        let room = self.cap - self.bytes.len();
        if chunk.len() > room {
            self.bytes.extend_from_slice(&chunk[..room]);
            self.truncated = true;
        } else {
            self.bytes.extend_from_slice(chunk);
        }
        self.truncated
    }

    fn into_string(self) -> String {
        match String::from_utf8(self.bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }
}

impl Sandbox {
    /// Runs one job in a fresh container and removes the container.
    ///
    /// `on_phase` hears each phase with the container's id. `cancel` stops
    /// the run at any point (the container is killed and removed).
    pub async fn run(
        &self,
        request: RunRequest<'_>,
        cancel: &CancellationToken,
        on_phase: &(dyn Fn(Phase, &str) + Send + Sync),
    ) -> Result<RunOutcome, SandboxError> {
        let image = self.image_name(&request.language.image);
        let body = container_spec(
            self.settings(),
            image.clone(),
            request.language,
            &request.limits,
            request.job_id,
        );
        let name = format!(
            "code-runner-{}-{}",
            request.job_id,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = match self.docker().create_container(Some(options), body).await {
            Ok(created) => created,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message,
            }) if message.contains("image") => return Err(SandboxError::ImageMissing { image }),
            Err(e) => return Err(e.into()),
        };
        let id = created.id;
        if !created.warnings.is_empty() {
            // Docker drops limits the kernel cannot enforce and only warns:
            // never run a job with a limit missing.
            self.remove(&id).await;
            return Err(SandboxError::UnsafeCreate(created.warnings.join("; ")));
        }
        on_phase(Phase::Created, &id);
        let outcome = self.drive(&id, &request, cancel, on_phase).await;
        self.remove(&id).await;
        outcome
    }

    async fn drive(
        &self,
        id: &str,
        request: &RunRequest<'_>,
        cancel: &CancellationToken,
        on_phase: &(dyn Fn(Phase, &str) + Send + Sync),
    ) -> Result<RunOutcome, SandboxError> {
        let docker = self.docker();
        let attach = AttachContainerOptionsBuilder::new()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        let mut io = docker.attach_container(id, Some(attach)).await?;
        docker.start_container(id, None).await?;
        let started = Instant::now();
        let deadline = started + Duration::from_millis(request.limits.wall_time_ms);
        on_phase(Phase::Running, id);

        // Feed the frame from its own task, so a program that writes before
        // it reads (or never reads) cannot stall the output loop.
        let frame = stdin_frame(
            request.language,
            request.code.as_bytes(),
            request.stdin.as_bytes(),
        );
        let mut input = io.input;
        let writer = tokio::spawn(async move {
            // A program may exit without reading its stdin; a broken pipe
            // here is normal.
            if input.write_all(&frame).await.is_ok() {
                let _ = input.shutdown().await;
            }
        });

        let mut stdout = Capture::new(request.limits.output_bytes);
        let mut stderr = Capture::new(request.limits.output_bytes);
        let mut ending = Ending::Exited;
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => { ending = Ending::Cancelled; break; }
                _ = tokio::time::sleep_until(deadline) => { ending = Ending::Timeout; break; }
                item = io.output.next() => match item {
                    Some(Ok(LogOutput::StdOut { message })) => {
                        if stdout.push(&message) { ending = Ending::OutputLimit; break; }
                    }
                    Some(Ok(LogOutput::StdErr { message })) => {
                        if stderr.push(&message) { ending = Ending::OutputLimit; break; }
                    }
                    Some(Ok(_)) => {}
                    // The stream ends when the program's stdout and stderr
                    // close, normally at exit; an error ends it too.
                    Some(Err(e)) => {
                        tracing::debug!(container = id, error = %e, "output stream error");
                        break;
                    }
                    None => break,
                },
            }
        }
        drop(io.output);

        if ending == Ending::Exited {
            // The program may have closed its outputs and kept running.
            let condition = WaitContainerOptionsBuilder::new()
                .condition("not-running")
                .build();
            let mut wait = docker.wait_container(id, Some(condition));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => ending = Ending::Cancelled,
                _ = tokio::time::sleep_until(deadline) => ending = Ending::Timeout,
                // bollard reports a non-zero exit as an error; the exit code
                // is read from inspect below either way.
                _ = wait.next() => {}
            }
        }
        let wall_time_ms = started.elapsed().as_millis() as u64;
        writer.abort();
        if ending != Ending::Exited {
            self.kill(id).await;
        }
        on_phase(Phase::Collecting, id);
        if ending == Ending::Cancelled {
            return Ok(RunOutcome::Cancelled);
        }

        let state = docker.inspect_container(id, None).await?.state;
        let (exit_code, oom_killed) = match (&state, ending) {
            (Some(s), Ending::Exited) => (s.exit_code, s.oom_killed.unwrap_or(false)),
            (Some(s), _) => (None, s.oom_killed.unwrap_or(false)),
            (None, _) => (None, false),
        };
        let status = match ending {
            Ending::OutputLimit => RunStatus::OutputLimit,
            Ending::Timeout => RunStatus::Timeout,
            _ if oom_killed => RunStatus::MemoryLimit,
            _ if exit_code == Some(0) => RunStatus::Success,
            _ => RunStatus::Error,
        };
        Ok(RunOutcome::Finished(RunResult {
            status,
            stdout_truncated: stdout.truncated,
            stderr_truncated: stderr.truncated,
            stdout: stdout.into_string(),
            stderr: stderr.into_string(),
            exit_code,
            wall_time_ms,
            worker_id: self.settings().worker_id.clone(),
            container_id: id.to_string(),
        }))
    }

    /// SIGKILLs a container; one that already stopped is fine.
    pub(crate) async fn kill(&self, id: &str) {
        let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        if let Err(e) = self.docker().kill_container(id, Some(options)).await {
            tracing::debug!(container = id, error = %e, "kill (container may have stopped)");
        }
    }

    /// Force-removes a container; a failure is logged and left to the sweep.
    pub async fn remove(&self, id: &str) -> bool {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker().remove_container(id, Some(options)).await {
            Ok(()) => true,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => true,
            Err(e) => {
                tracing::warn!(container = id, error = %e, "could not remove container; the sweep will");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Capture;

    #[test]
    fn capture_keeps_up_to_the_cap_and_flags_the_rest() {
        let mut c = Capture::new(5);
        assert!(!c.push(b"abc"));
        assert!(!c.push(b"de"));
        assert!(c.push(b"f"));
        assert!(c.truncated);
        assert_eq!(c.into_string(), "abcde");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_an_error() {
        let mut c = Capture::new(10);
        c.push(&[b'a', 0xff, b'b']);
        assert_eq!(c.into_string(), "a\u{fffd}b");
    }
}
