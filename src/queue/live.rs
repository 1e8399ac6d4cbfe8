//! A running job's live side, through Redis, so that the API process a
//! client is connected to need not be the worker process that runs the job:
//!
//! - **out**: a Redis stream per job (`…:cr:live:<id>`) of its phases and
//!   output chunks in order, then `end`. The worker's [`LiveSender`] writes
//!   it from a task of its own through a bounded channel: a slow Redis never
//!   slows the program (what does not fit is dropped and said so with a
//!   `gap` entry; the stored result keeps everything). The stream is capped
//!   (`MAXLEN`, and by the run's output caps) and expires soon after the job
//!   ends. A reader ([`LiveReader`], a connection of its own, `XREAD BLOCK`)
//!   starts from the beginning: a client that connects late gets what was
//!   printed so far, then the rest live.
//! - **in** (interactive jobs): a Redis stream per job (`…:cr:input:<id>`)
//!   of stdin chunks, its end and signals, written by API processes
//!   ([`JobQueue::send_input`], its total capped) and read in order by the
//!   worker that runs the job ([`InputStream`]); input sent before the
//!   program starts waits there.
//! - **presence**: an API process with a client connected to an
//!   interactive job refreshes a short-lived key (`…:cr:client:<id>`); the
//!   worker ends the job when no client has been there for its grace.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bullmq::redis_connection::AnyConnection;
use monitor_protocol::Input;
use tokio::sync::mpsc;

use super::{JobQueue, QueueError, with_timeout};
use crate::job::Phase;

/// Entries kept at most in a job's live stream (a backstop: the run's
/// output caps bound it first).
const MAX_ENTRIES: usize = 20_000;
/// How long a job's live streams stay while it runs, renewed as it writes.
const TTL_RUNNING: Duration = Duration::from_secs(15 * 60);
/// How long they stay once the job ended (its result is stored anyway).
pub const TTL_ENDED: Duration = Duration::from_secs(5 * 60);
/// How long a client's presence lasts unless renewed.
pub const PRESENCE_TTL: Duration = Duration::from_secs(5);
/// Events waiting for Redis at most, per job; past it output is dropped
/// (and counted in a `gap`).
const CHANNEL_CAPACITY: usize = 512;
/// Most events written in one round trip.
const BATCH: usize = 64;

/// One entry of a job's live stream.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    /// The job reached a phase; `case` counts the runs (from 0).
    Phase { phase: Phase, case: usize },
    /// Output of the compilation (`compile`) or of run `case`.
    Output {
        stderr: bool,
        compile: bool,
        case: usize,
        data: Vec<u8>,
    },
    /// This many bytes of output were not streamed (the stored result has
    /// them).
    Gap { bytes: u64 },
    /// The execution ended: the job's result is (about to be) stored.
    End,
    /// The attempt ended without a result (the worker stopped, or the
    /// service failed): the job will run again from the start.
    Reset,
}

impl LiveEvent {
    fn size(&self) -> u64 {
        match self {
            LiveEvent::Output { data, .. } => data.len() as u64,
            _ => 0,
        }
    }

    fn to_fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        match self {
            LiveEvent::Phase { phase, case } => vec![
                ("kind", b"phase".to_vec()),
                // As JSON (`"running"`): the names the API shows.
                ("data", serde_json::to_vec(phase).unwrap_or_default()),
                ("case", case.to_string().into_bytes()),
            ],
            LiveEvent::Output {
                stderr,
                compile,
                case,
                data,
            } => vec![
                ("kind", if *stderr { "stderr" } else { "stdout" }.into()),
                ("step", if *compile { "compile" } else { "run" }.into()),
                ("case", case.to_string().into_bytes()),
                ("data", data.clone()),
            ],
            LiveEvent::Gap { bytes } => {
                vec![
                    ("kind", b"gap".to_vec()),
                    ("data", bytes.to_string().into()),
                ]
            }
            LiveEvent::End => vec![("kind", b"end".to_vec())],
            LiveEvent::Reset => vec![("kind", b"reset".to_vec())],
        }
    }

    fn from_fields(fields: &std::collections::HashMap<String, Vec<u8>>) -> Option<LiveEvent> {
        let text = |k: &str| {
            fields
                .get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let case = text("case").and_then(|c| c.parse().ok()).unwrap_or(0);
        Some(match text("kind")?.as_str() {
            "phase" => LiveEvent::Phase {
                phase: serde_json::from_slice(fields.get("data")?).ok()?,
                case,
            },
            kind @ ("stdout" | "stderr") => LiveEvent::Output {
                stderr: kind == "stderr",
                compile: text("step").as_deref() == Some("compile"),
                case,
                data: fields.get("data").cloned().unwrap_or_default(),
            },
            "gap" => LiveEvent::Gap {
                bytes: text("data")?.parse().ok()?,
            },
            "end" => LiveEvent::End,
            "reset" => LiveEvent::Reset,
            _ => return None,
        })
    }
}

/// The worker's side of a job's live stream: never waits.
pub struct LiveSender {
    tx: mpsc::Sender<LiveEvent>,
    dropped: Arc<AtomicU64>,
    last: Arc<std::sync::Mutex<Option<LiveEvent>>>,
}

impl LiveSender {
    /// Queues `event` for Redis; output that does not fit is counted.
    pub fn send(&self, event: LiveEvent) {
        if let Err(e) = self.tx.try_send(event) {
            let event = match e {
                mpsc::error::TrySendError::Full(event) => event,
                mpsc::error::TrySendError::Closed(event) => event,
            };
            self.dropped.fetch_add(event.size(), Ordering::Relaxed);
        }
    }

    /// Ends the stream with `last` ([`LiveEvent::End`] or
    /// [`LiveEvent::Reset`]), after everything sent before it.
    pub fn finish(self, last: LiveEvent) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(last);
    }
}

impl JobQueue {
    fn live_key(&self, job_id: &str) -> String {
        self.settings.own_key(&format!("live:{job_id}"))
    }

    fn input_key(&self, job_id: &str) -> String {
        self.settings.own_key(&format!("input:{job_id}"))
    }

    fn input_bytes_key(&self, job_id: &str) -> String {
        self.settings.own_key(&format!("input-bytes:{job_id}"))
    }

    fn presence_key(&self, job_id: &str) -> String {
        self.settings.own_key(&format!("client:{job_id}"))
    }

    /// Starts writing job `job_id`'s live stream from a task of its own,
    /// which ends once the sender is finished (or dropped) and the rest is
    /// written. Output is cut only at UTF-8 character boundaries when
    /// `utf8`, so that each chunk reads as text on its own.
    pub fn live_sender(&self, job_id: &str, utf8: bool) -> LiveSender {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let last = Arc::new(std::sync::Mutex::new(None));
        let writer = LiveWriter {
            queue: self.clone(),
            key: self.live_key(job_id),
            utf8,
            carry: Default::default(),
        };
        tokio::spawn(writer.run(rx, dropped.clone(), last.clone()));
        LiveSender { tx, dropped, last }
    }

    /// A reader of live streams, on a connection of its own (its reads
    /// block).
    pub async fn live_reader(&self) -> Result<LiveReader, QueueError> {
        let conn = with_timeout(self.connection().dedicated_any_connection()).await?;
        Ok(LiveReader {
            conn,
            live: self.live_key(""),
        })
    }

    /// Adds `input` to job `job_id`'s input stream, unless its data would
    /// take the job's input past `max_bytes` in all (then `false`).
    pub async fn send_input(
        &self,
        job_id: &str,
        input: &Input,
        max_bytes: u64,
    ) -> Result<bool, QueueError> {
        let (kind, data): (&str, Vec<u8>) = match input {
            Input::Data(bytes) => ("data", bytes.clone()),
            Input::Close => ("close", Vec::new()),
            Input::Signal(n) => ("signal", n.to_string().into_bytes()),
            Input::ClientLeft => ("left", Vec::new()),
            // The service's own frames (between a job's test cases, after
            // a recycled task), never a client's input: nothing to store.
            Input::Case { .. } | Input::End => return Ok(false),
        };
        let size = if kind == "data" { data.len() } else { 0 };
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SEND_INPUT)
            .arg(2)
            .arg(self.input_key(job_id))
            .arg(self.input_bytes_key(job_id))
            .arg(kind)
            .arg(size)
            .arg(max_bytes)
            .arg(data)
            .arg(TTL_RUNNING.as_millis() as u64);
        let added: i64 = with_timeout(self.connection().cmd(&mut cmd)).await?;
        Ok(added == 1)
    }

    /// The worker's reader of job `job_id`'s input, on a connection of its
    /// own.
    pub async fn input_stream(&self, job_id: &str) -> Result<InputStream, QueueError> {
        let conn = with_timeout(self.connection().dedicated_any_connection()).await?;
        Ok(InputStream {
            conn,
            key: self.input_key(job_id),
            after: "0".into(),
        })
    }

    /// Says a client is connected to job `job_id` (for [`PRESENCE_TTL`]).
    pub async fn mark_client(&self, job_id: &str) -> Result<(), QueueError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.presence_key(job_id))
            .arg(1)
            .arg("PX")
            .arg(PRESENCE_TTL.as_millis() as u64);
        with_timeout(self.connection().cmd::<()>(&mut cmd)).await
    }

    /// Whether a client is connected to job `job_id`.
    pub async fn client_present(&self, job_id: &str) -> Result<bool, QueueError> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.presence_key(job_id));
        with_timeout(self.connection().cmd::<bool>(&mut cmd)).await
    }

    /// Removes job `job_id`'s live keys after [`TTL_ENDED`] (its end), and
    /// notes them as ended, so that retention by bytes may remove them
    /// sooner ([`JobQueue::remove_ended_live_streams`]).
    async fn expire_live(&self, job_id_key: &str) {
        let mut pipe = redis::pipe();
        pipe.cmd("PEXPIRE")
            .arg(job_id_key)
            .arg(TTL_ENDED.as_millis() as u64)
            .ignore()
            .cmd("ZADD")
            .arg(self.ended_streams_key())
            .arg(crate::job::now_ms())
            .arg(job_id_key)
            .ignore();
        let _ = with_timeout(self.connection().pipe::<()>(&pipe)).await;
    }

    /// The live streams of ended jobs, by when they ended.
    fn ended_streams_key(&self) -> String {
        self.settings.own_key("live-ended")
    }

    /// Removes up to `limit` live streams of ended jobs, those that ended
    /// first (a view only: their results are stored); how many.
    pub async fn remove_ended_live_streams(&self, limit: usize) -> Result<usize, QueueError> {
        let index = self.ended_streams_key();
        let expired = crate::job::now_ms().saturating_sub(TTL_ENDED.as_millis() as u64);
        let mut prune = redis::cmd("ZREMRANGEBYSCORE");
        prune.arg(&index).arg("-inf").arg(expired);
        with_timeout(self.connection().cmd::<i64>(&mut prune)).await?;
        let mut oldest = redis::cmd("ZRANGE");
        oldest.arg(&index).arg(0).arg(limit.saturating_sub(1));
        let keys: Vec<String> = with_timeout(self.connection().cmd(&mut oldest)).await?;
        if keys.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(&keys).ignore();
        pipe.cmd("ZREM").arg(&index).arg(&keys).ignore();
        with_timeout(self.connection().pipe::<()>(&pipe)).await?;
        Ok(keys.len())
    }
}

/// Adds an input entry within the job's input budget. KEYS: the input
/// stream, its byte count; ARGV: kind, size, budget, data, ttl.
const SEND_INPUT: &str = r"
local total = redis.call('INCRBY', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if total > tonumber(ARGV[3]) then
  redis.call('DECRBY', KEYS[2], ARGV[2])
  return 0
end
redis.call('XADD', KEYS[1], '*', 'kind', ARGV[1], 'data', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

/// Writes one job's live stream (the task behind a [`LiveSender`]).
struct LiveWriter {
    queue: JobQueue,
    key: String,
    utf8: bool,
    /// The start of a UTF-8 character cut by a chunk's end, per stream,
    /// with the step it came from (compilation, run).
    carry: [(Vec<u8>, bool, usize); 2],
}

impl LiveWriter {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<LiveEvent>,
        dropped: Arc<AtomicU64>,
        last: Arc<std::sync::Mutex<Option<LiveEvent>>>,
    ) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let Some(first) = rx.recv().await else { break };
            batch.push(first);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            let gap = dropped.swap(0, Ordering::Relaxed);
            if gap > 0 {
                batch.push(LiveEvent::Gap { bytes: gap });
            }
            let events: Vec<LiveEvent> = batch.drain(..).flat_map(|e| self.cut(e)).collect();
            self.write(&events).await;
        }
        // Every sender is gone: what is left, then the end.
        let mut events: Vec<LiveEvent> = self.flush();
        let gap = dropped.swap(0, Ordering::Relaxed);
        if gap > 0 {
            events.push(LiveEvent::Gap { bytes: gap });
        }
        let last = last.lock().unwrap_or_else(|e| e.into_inner()).take();
        events.push(last.unwrap_or(LiveEvent::Reset));
        self.write(&events).await;
        self.queue.expire_live(&self.key).await;
    }

    /// Holds back the start of a character cut at the chunk's end (and
    /// lets whatever was held go out before a phase changes).
    fn cut(&mut self, event: LiveEvent) -> Vec<LiveEvent> {
        match event {
            LiveEvent::Output {
                stderr,
                compile,
                case,
                data,
            } if self.utf8 => {
                let carry = &mut self.carry[usize::from(stderr)];
                let mut bytes = std::mem::take(&mut carry.0);
                bytes.extend_from_slice(&data);
                let keep = complete_utf8_prefix(&bytes);
                *carry = (bytes.split_off(keep), compile, case);
                if bytes.is_empty() {
                    return Vec::new();
                }
                vec![LiveEvent::Output {
                    stderr,
                    compile,
                    case,
                    data: bytes,
                }]
            }
            LiveEvent::Phase { .. } => {
                let mut out = self.flush();
                out.push(event);
                out
            }
            other => vec![other],
        }
    }

    /// Whatever is held back, as it is.
    fn flush(&mut self) -> Vec<LiveEvent> {
        let mut out = Vec::new();
        for (i, (carry, compile, case)) in self.carry.iter_mut().enumerate() {
            if !carry.is_empty() {
                out.push(LiveEvent::Output {
                    stderr: i == 1,
                    compile: *compile,
                    case: *case,
                    data: std::mem::take(carry),
                });
            }
        }
        out
    }

    async fn write(&self, events: &[LiveEvent]) {
        if events.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for event in events {
            let cmd = pipe
                .cmd("XADD")
                .arg(&self.key)
                .arg("MAXLEN")
                .arg("~")
                .arg(MAX_ENTRIES)
                .arg("*");
            for (field, value) in event.to_fields() {
                cmd.arg(field).arg(value);
            }
            cmd.ignore();
        }
        pipe.cmd("PEXPIRE")
            .arg(&self.key)
            .arg(TTL_RUNNING.as_millis() as u64)
            .ignore();
        if let Err(e) = with_timeout(self.queue.connection().pipe::<()>(&pipe)).await {
            // Live output is a view; the stored result is the record.
            tracing::debug!(error = %e, "cannot write a job's live stream");
        }
    }
}

/// The length of the longest prefix of `bytes` that does not end inside a
/// UTF-8 character (invalid bytes count as whole: they read as U+FFFD).
pub fn complete_utf8_prefix(bytes: &[u8]) -> usize {
    // A character is at most 4 bytes: look at the last 3 for a lead byte
    // whose character is not complete.
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let width = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if width > back {
            bytes.len() - back
        } else {
            bytes.len()
        };
    }
    bytes.len()
}

/// Reads jobs' live streams (the API's side).
pub struct LiveReader {
    conn: AnyConnection,
    /// The key of a job's stream, less the id.
    live: String,
}

impl LiveReader {
    /// Entries of job `job_id`'s stream after entry `after` (`"0"`: from the
    /// start), waiting up to `block` for one to arrive.
    pub async fn read(
        &mut self,
        job_id: &str,
        after: &str,
        block: Duration,
    ) -> Result<Vec<(String, LiveEvent)>, QueueError> {
        let key = format!("{}{job_id}", self.live);
        let reply = xread(&mut self.conn, &key, after, block).await?;
        Ok(reply
            .into_iter()
            .filter_map(|(id, fields)| LiveEvent::from_fields(&fields).map(|e| (id, e)))
            .collect())
    }
}

/// The worker's reader of one interactive job's input.
pub struct InputStream {
    conn: AnyConnection,
    key: String,
    after: String,
}

impl InputStream {
    /// The input sent since the last call, waiting up to `block` for some.
    pub async fn next(&mut self, block: Duration) -> Result<Vec<Input>, QueueError> {
        let reply = xread(&mut self.conn, &self.key, &self.after, block).await?;
        let mut inputs = Vec::with_capacity(reply.len());
        for (id, fields) in reply {
            self.after = id;
            let data = fields.get("data").cloned().unwrap_or_default();
            let input = match fields.get("kind").map(Vec::as_slice) {
                Some(b"data") => Input::Data(data),
                Some(b"close") => Input::Close,
                Some(b"left") => Input::ClientLeft,
                Some(b"signal") => match String::from_utf8_lossy(&data).parse() {
                    Ok(n) => Input::Signal(n),
                    Err(_) => continue,
                },
                _ => continue,
            };
            inputs.push(input);
        }
        Ok(inputs)
    }
}

type Entries = Vec<(String, std::collections::HashMap<String, Vec<u8>>)>;

/// `XREAD COUNT 256 BLOCK <block> STREAMS <key> <after>`.
async fn xread(
    conn: &mut AnyConnection,
    key: &str,
    after: &str,
    block: Duration,
) -> Result<Entries, QueueError> {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(256)
        .arg("BLOCK")
        .arg(block.as_millis().max(1) as u64)
        .arg("STREAMS")
        .arg(key)
        .arg(after);
    let reply: Option<Vec<(String, Entries)>> =
        match tokio::time::timeout(block + super::REDIS_OP_TIMEOUT, cmd.query_async(conn)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(QueueError::Unavailable(e.to_string())),
            Err(_) => return Err(QueueError::Timeout(block + super::REDIS_OP_TIMEOUT)),
        };
    Ok(reply
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(_, entries)| entries)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_at_character_boundaries() {
        let text = "aé€😀".as_bytes(); // 1 + 2 + 3 + 4 bytes
        assert_eq!(complete_utf8_prefix(text), text.len());
        for cut in 0..text.len() {
            let keep = complete_utf8_prefix(&text[..cut]);
            assert!(std::str::from_utf8(&text[..keep]).is_ok(), "cut {cut}");
            assert!(cut - keep < 4, "cut {cut}");
        }
        // Invalid bytes are not held back forever.
        assert_eq!(complete_utf8_prefix(b"a\xff"), 2);
        assert_eq!(complete_utf8_prefix(b"\x80\x80\x80\x80"), 4);
    }

    #[test]
    fn entries_round_trip() {
        for event in [
            LiveEvent::Phase {
                phase: Phase::Running,
                case: 2,
            },
            LiveEvent::Output {
                stderr: true,
                compile: false,
                case: 1,
                data: b"\x00\xffok".to_vec(),
            },
            LiveEvent::Gap { bytes: 42 },
            LiveEvent::End,
            LiveEvent::Reset,
        ] {
            let fields = event
                .to_fields()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            assert_eq!(LiveEvent::from_fields(&fields), Some(event));
        }
    }
}
