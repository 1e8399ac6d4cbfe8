//! `--interactive N`: N interactive sessions at once, each a WebSocket
//! (`/v1/stream`, the job in its first message) to a program that echoes
//! every line it reads. Each session waits for the program to say it is
//! ready, then types `--lines` lines one after another, each sent when the
//! previous one's echo came back: the time from sending a line to its echo
//! is its round trip. Every echo must come back, in order; the job must end
//! `accepted` with every line in its stored output. Meanwhile batch
//! hello-world jobs run one after another, for their figures under the
//! same load.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{Percentiles, histogram};

/// The echo program: says it is ready, then echoes each line.
const ECHO: &str = "import sys\nprint('ready', flush=True)\nfor line in sys.stdin:\n    print('echo ' + line, end='', flush=True)\n";

#[derive(Serialize)]
pub struct InteractiveSummary {
    url: String,
    mode: String,
    sessions: u64,
    lines_per_session: u64,
    seconds: f64,
    /// Sessions whose every line came back in order and whose job ended
    /// accepted with all of them.
    complete: u64,
    failed: u64,
    /// From submitting the job to its program saying it is ready.
    start: Percentiles,
    /// From sending a line to its echo arriving.
    line_round_trip: Percentiles,
    /// Batch hello worlds run meanwhile, one after another (end to end).
    batch_during: Percentiles,
    problems: Vec<String>,
}

impl InteractiveSummary {
    /// The summary in words.
    pub fn print(&self) {
        let p = |p: &Percentiles| {
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({})",
                p.p50_ms, p.p99_ms, p.max_ms, p.count
            )
        };
        println!(
            "{} interactive sessions × {} lines in {:.1} s: {} complete, {} failed",
            self.sessions, self.lines_per_session, self.seconds, self.complete, self.failed
        );
        println!("  submitted → program ready: {}", p(&self.start));
        println!("  line → its echo:           {}", p(&self.line_round_trip));
        println!("  batch jobs meanwhile:      {}", p(&self.batch_during));
        for problem in &self.problems {
            println!("  problem: {problem}");
        }
    }
}

/// Runs the sessions; the summary, and whether all of them completed.
pub async fn run(
    url: &str,
    api_key: Option<&str>,
    sessions: u64,
    lines: u64,
    timeout: Duration,
) -> anyhow::Result<(InteractiveSummary, bool)> {
    let ws_url = format!("{}/v1/stream", url.replacen("http", "ws", 1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for session in 0..sessions {
        let (ws_url, key) = (ws_url.clone(), api_key.map(str::to_string));
        tasks.push(tokio::spawn(async move {
            tokio::time::timeout(
                timeout,
                one_session(&ws_url, key.as_deref(), session, lines),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("session {session}: timed out")))
        }));
    }
    // Batch jobs alongside, until the sessions are done.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let batch = {
        let (url, key, stop) = (url.to_string(), api_key.map(str::to_string), stop.clone());
        tokio::spawn(async move { batch_alongside(&url, key.as_deref(), &stop).await })
    };
    let mut starts = histogram();
    let mut trips = histogram();
    let mut problems = Vec::new();
    let mut complete = 0;
    for task in tasks {
        match task.await.context("session task")? {
            Ok(session) => {
                complete += 1;
                starts.record(session.start.as_micros() as u64).ok();
                trips.add(&session.trips).ok();
            }
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let batch_during = batch.await.context("batch task")?;
    let failed = sessions - complete;
    problems.truncate(10);
    Ok((
        InteractiveSummary {
            url: url.to_string(),
            mode: "interactive".into(),
            sessions,
            lines_per_session: lines,
            seconds,
            complete,
            failed,
            start: Percentiles::of(&starts),
            line_round_trip: Percentiles::of(&trips),
            batch_during: Percentiles::of(&batch_during),
            problems,
        },
        failed == 0,
    ))
}

struct Session {
    start: Duration,
    trips: Histogram<u64>,
}

async fn one_session(
    ws_url: &str,
    api_key: Option<&str>,
    session: u64,
    lines: u64,
) -> anyhow::Result<Session> {
    let mut request = ws_url.into_client_request()?;
    if let Some(key) = api_key {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse()?);
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("session {session}: connecting"))?;
    let submitted = Instant::now();
    let job = json!({ "language": "python", "code": ECHO, "interactive": true,
                      "limits": { "idle_time_ms": 60_000 } });
    socket.send(Message::Text(job.to_string().into())).await?;
    let mut printed = String::new();
    let mut seen = 0usize;
    // Reads until `want` has been printed (after what was already seen).
    async fn until<S>(
        socket: &mut S,
        printed: &mut String,
        seen: &mut usize,
        want: &str,
        session: u64,
    ) -> anyhow::Result<()>
    where
        S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + Unpin,
    {
        loop {
            if let Some(at) = printed[*seen..].find(want) {
                // Nothing else may come before it: echoes are in order.
                if at != 0 {
                    bail!(
                        "session {session}: expected {want:?}, got {:?}",
                        &printed[*seen..]
                    );
                }
                *seen += want.len();
                return Ok(());
            }
            let message = socket
                .next()
                .await
                .with_context(|| format!("session {session}: closed waiting for {want:?}"))??;
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str())?;
            match value["type"].as_str() {
                Some("stdout") => printed.push_str(value["data"].as_str().unwrap_or_default()),
                Some("error") => bail!("session {session}: {}", value["message"]),
                Some("result") => {
                    bail!("session {session}: ended before {want:?}: {}", value["job"])
                }
                _ => {}
            }
        }
    }
    until(&mut socket, &mut printed, &mut seen, "ready\n", session).await?;
    let start = submitted.elapsed();
    let mut trips = histogram();
    for i in 0..lines {
        let line = format!("line {session}-{i}\n");
        let sent = Instant::now();
        socket
            .send(Message::Text(
                json!({ "type": "stdin", "data": line }).to_string().into(),
            ))
            .await?;
        until(
            &mut socket,
            &mut printed,
            &mut seen,
            &format!("echo {line}"),
            session,
        )
        .await?;
        trips.record(sent.elapsed().as_micros() as u64).ok();
    }
    socket
        .send(Message::Text(json!({ "type": "eof" }).to_string().into()))
        .await?;
    loop {
        let message = socket
            .next()
            .await
            .with_context(|| format!("session {session}: closed before the result"))??;
        let Message::Text(text) = message else {
            continue;
        };
        let value: Value = serde_json::from_str(text.as_str())?;
        if value["type"] == "result" {
            let result = &value["job"]["result"];
            if result["verdict"] != "accepted" {
                bail!("session {session}: ended {}", value["job"]);
            }
            let stored = result["stdout"].as_str().unwrap_or_default();
            if stored != printed {
                bail!("session {session}: the stored output differs from the streamed one");
            }
            return Ok(Session { start, trips });
        }
    }
}

/// Batch hello worlds, one after another, until `stop`: their end-to-end
/// times.
async fn batch_alongside(
    url: &str,
    api_key: Option<&str>,
    stop: &std::sync::atomic::AtomicBool,
) -> Histogram<u64> {
    let http = reqwest::Client::new();
    let mut times = histogram();
    for n in 0..u64::MAX {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let expected = format!("batch {n}\n");
        let mut request = http
            .post(format!("{url}/v1/jobs?wait=true"))
            .json(&json!({ "language": "python", "code": format!("print('batch {n}')") }));
        if let Some(key) = api_key {
            request = request.bearer_auth(key);
        }
        let sent = Instant::now();
        let Ok(response) = request.send().await else {
            break;
        };
        let Ok(view) = response.json::<Value>().await else {
            break;
        };
        if view["result"]["stdout"] == expected.as_str() {
            times.record(sent.elapsed().as_micros() as u64).ok();
        }
    }
    times
}
