//! What recycling a container between jobs needs besides the pool (see
//! `pool.rs`): who may share one ([`Recycle`]), a restored container
//! waiting for its next job ([`Recycled`]), and the monitor's word that it
//! restored one ([`ready`]).

use std::time::{Duration, Instant};

use monitor_protocol::{Frame, FrameReader};
use tokio_util::task::AbortOnDropHandle;

use super::OutputStream;

/// Who may run in a container a job before them ran in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Recycle {
    /// A fresh container for every job.
    #[default]
    Off,
    /// Consecutive jobs of one caller (its API key, or its client address
    /// when keys are off).
    PerCaller,
    /// Any job of the same image and limits.
    All,
}

impl std::str::FromStr for Recycle {
    type Err = String;
    fn from_str(text: &str) -> Result<Recycle, String> {
        match text {
            "off" => Ok(Recycle::Off),
            "per-caller" => Ok(Recycle::PerCaller),
            "all" => Ok(Recycle::All),
            other => Err(format!("`{other}` is not off, per-caller or all")),
        }
    }
}

/// How long a recycled container's monitor may take to restore it and say
/// it is fit (it gives up on the processes after 2 s).
pub(super) const RECYCLE_WAIT: Duration = Duration::from_secs(5);

/// A container that served a job and was restored, waiting for the next:
/// its output stream and the writer of its stdin are still open.
pub struct Recycled {
    pub id: String,
    pub output: OutputStream,
    pub input: tokio::sync::mpsc::Sender<Vec<u8>>,
    /// Aborted when the container is let go.
    pub writer: AbortOnDropHandle<()>,
    /// Whose jobs it may serve (`None`: anyone's).
    pub client: Option<String>,
    /// Jobs it served.
    pub served: u32,
    /// When it was created.
    pub born: Instant,
}

impl Recycled {
    /// Its stdin's channel and writer, the rest let go.
    pub fn into_writer(
        self,
    ) -> (
        tokio::sync::mpsc::Sender<Vec<u8>>,
        tokio::task::JoinHandle<()>,
    ) {
        (self.input, self.writer.detach())
    }
}

/// Reads a recycled container's frames up to its monitor's word that it
/// restored the container fit for another job; anything else is an error.
pub(super) async fn ready(
    output: &mut OutputStream,
    nonce: [u8; 16],
    leftover: Vec<u8>,
) -> Result<(), String> {
    use bollard::container::LogOutput;
    use futures_util::StreamExt;
    let mut reader = FrameReader::new(nonce);
    reader.push(&leftover);
    loop {
        match reader.next_frame() {
            Ok(Some(Frame::Ready(fit))) if reader.pending() == 0 => return fit,
            Ok(Some(_)) => return Err("frames after the job's last report".into()),
            Ok(None) => {}
            Err(e) => return Err(e),
        }
        match output.next().await {
            Some(Ok(LogOutput::StdOut { message })) => reader.push(&message),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("output stream: {e}")),
            None => return Err("the container ended".into()),
        }
    }
}

/// Why a container was not recycled: what the log says, and its word in
/// the metrics (`code_runner_recycle_discards_total{reason}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Discard {
    #[error("served its most jobs")]
    Jobs,
    #[error("too old")]
    Aged,
    #[error("the pool is full")]
    Full,
    #[error("the pool is stopping")]
    Stopped,
    #[error("no word from the monitor in time")]
    Timeout,
    /// The engine refused a rename or an update.
    #[error("{0}")]
    Engine(String),
    /// The monitor found it unfit, or its output said something else.
    #[error("{0}")]
    Unfit(String),
}

impl Discard {
    pub(super) fn metric(&self) -> &'static str {
        match self {
            Discard::Jobs => "jobs",
            Discard::Aged => "aged",
            Discard::Full => "full",
            Discard::Stopped => "stopped",
            Discard::Timeout => "timeout",
            Discard::Engine(_) => "engine",
            Discard::Unfit(_) => "unfit",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::container::LogOutput;
    use monitor_protocol::{FRAME_READY, FRAME_STDOUT, encode_frame};

    fn stream(chunks: Vec<Vec<u8>>) -> OutputStream {
        Box::pin(futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok(LogOutput::StdOut { message: c.into() })),
        ))
    }

    #[test]
    fn the_setting_names_three_modes_and_refuses_others() {
        assert_eq!("off".parse(), Ok(Recycle::Off));
        assert_eq!("per-caller".parse(), Ok(Recycle::PerCaller));
        assert_eq!("all".parse(), Ok(Recycle::All));
        assert!("yes".parse::<Recycle>().unwrap_err().contains("per-caller"));
    }

    #[tokio::test]
    async fn only_the_monitors_word_under_the_jobs_nonce_makes_a_container_fit() {
        let nonce = [7; 16];
        let ready_frame = encode_frame(&nonce, FRAME_READY, b"");
        // Split anywhere, the word arrives.
        let (a, b) = ready_frame.split_at(10);
        let mut output = stream(vec![a.to_vec(), b.to_vec()]);
        assert_eq!(ready(&mut output, nonce, Vec::new()).await, Ok(()));
        // Some of it read with the report already.
        let mut output = stream(vec![b.to_vec()]);
        assert_eq!(ready(&mut output, nonce, a.to_vec()).await, Ok(()));
        // The monitor says why not.
        let mut output = stream(vec![encode_frame(
            &nonce,
            FRAME_READY,
            b"/tmp still holds [x]",
        )]);
        assert!(
            ready(&mut output, nonce, Vec::new())
                .await
                .unwrap_err()
                .contains("/tmp")
        );
        // Output after the report, another nonce, bytes after the word, or
        // the end of the stream: never fit.
        for chunks in [
            vec![encode_frame(&nonce, FRAME_STDOUT, b"late")],
            vec![encode_frame(&[8; 16], FRAME_READY, b"")],
            vec![[ready_frame.clone(), b"x".to_vec()].concat()],
            vec![],
        ] {
            let mut output = stream(chunks);
            assert!(ready(&mut output, nonce, Vec::new()).await.is_err());
        }
    }

    #[test]
    fn every_reason_a_container_is_not_kept_has_a_metrics_word_of_its_own() {
        let reasons = [
            Discard::Jobs,
            Discard::Aged,
            Discard::Full,
            Discard::Stopped,
            Discard::Timeout,
            Discard::Engine("cannot rename it: gone".into()),
            Discard::Unfit("/dev/shm still holds [\"x\"]".into()),
        ];
        let words: std::collections::HashSet<&str> = reasons.iter().map(Discard::metric).collect();
        assert_eq!(words.len(), reasons.len());
        assert_eq!(reasons[5].to_string(), "cannot rename it: gone");
        assert_eq!(reasons[6].metric(), "unfit");
    }
}
