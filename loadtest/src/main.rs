//! Load-test client for code-runner.
//!
//! ```text
//! loadtest --url http://127.0.0.1:3000 --jobs 100 --concurrency 16 --language python
//! loadtest --rate 20 --duration 30 --mix python=70%,c=20%,hostile=10%
//! loadtest --jobs 100 --concurrency 16 --poll-ms 200   # the proof of concept's client
//! loadtest --interactive 50 --lines 100                 # live sessions over WebSockets
//! ```
//!
//! With `--interactive N` it opens N interactive sessions at once (see
//! `interactive.rs`) and reports each typed line's round trip to its echo,
//! next to batch jobs run meanwhile.
//!
//! With `--poll-ms` it behaves as the proof of concept's own client does:
//! submits with `POST /run` (`--concurrency` submissions at once), then polls
//! every job with `GET /status/{id}` at that interval until it is done,
//! counting every 429 (submissions and polls apart).
//!
//! Submits jobs that each print a value of their own, waits for each by
//! long-poll (`POST /v1/jobs?wait=true`, then `GET /v1/jobs/{id}?wait=true`
//! if the server's bounded wait ran out), so latency is measured when the
//! answer comes rather than at a poll interval; checks every output; prints
//! throughput, latency percentiles (end to end, queue wait, run), verdict
//! counts, wrong and lost jobs. Exits 1 when any job is wrong or lost.

mod interactive;
mod jobs;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use jobs::{Expect, Kind, Picker};

#[derive(Parser, Debug, Clone)]
#[command(version, about = "Load-test a code-runner service")]
struct Args {
    /// The service's API.
    #[arg(long, env = "LOADTEST_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Jobs to submit (a burst); ignored with --rate.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: u64,
    /// Jobs in flight at once (each an open request).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: u64,
    /// The language of the hello-world jobs (and what --mix leaves over).
    #[arg(long, default_value = "python")]
    language: String,
    /// A steady rate, in jobs per second, for --duration seconds instead of
    /// a burst.
    #[arg(long, requires = "duration")]
    rate: Option<f64>,
    /// Seconds a --rate run lasts.
    #[arg(long, requires = "rate")]
    duration: Option<f64>,
    /// Shares of job kinds, e.g. `python=60%,c=30%,hostile=10%`; what they
    /// leave of 100% is --language. `hostile` jobs burn CPU, hog memory or
    /// flood output until their limit stops them.
    #[arg(long)]
    mix: Option<String>,
    /// Print the summary as JSON (for scripts) instead of text.
    #[arg(long)]
    json: bool,
    /// An API key, sent as a bearer token.
    #[arg(long, env = "CODE_RUNNER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Poll instead of long-polling, as the proof of concept's client does:
    /// `POST /run`, then `GET /status/{id}` every this many milliseconds
    /// until the job is done (each job polled on its own, whatever is being
    /// submitted meanwhile).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    poll_ms: Option<u64>,
    /// Seconds after which a job that has not finished counts as lost.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Interactive sessions at once (WebSockets), each echoing --lines lines,
    /// instead of batch jobs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    interactive: Option<u64>,
    /// Lines each interactive session types.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    lines: u64,
    /// Each hello-world job is a job of this many test cases (each reads a
    /// number and prints it after the job's tag; every case is checked).
    #[arg(long, conflicts_with = "poll_ms",
          value_parser = clap::value_parser!(u64).range(1..=1_000))]
    cases: Option<u64>,
}

/// How one job ended, as the load test sees it.
#[derive(Debug)]
struct Outcome {
    kind: Kind,
    /// From sending the submission to having the finished job.
    e2e: Duration,
    /// The finished job (None: never accepted, or lost).
    view: Option<Value>,
    /// Why it is wrong or lost, if it is.
    problem: Option<Problem>,
    /// 429 answers retried before the job was accepted.
    throttled: u64,
    /// 429 answers to its polls (`--poll-ms`).
    throttled_polls: u64,
}

#[derive(Debug)]
enum Problem {
    Wrong(String),
    Lost(String),
}

#[derive(Serialize, Default)]
struct Percentiles {
    count: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |v: u64| v as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

#[derive(Serialize)]
struct Summary {
    url: String,
    mode: String,
    concurrency: u64,
    mix: BTreeMap<String, u32>,
    jobs: u64,
    seconds: f64,
    jobs_per_second: f64,
    /// End to end, every job.
    end_to_end: Percentiles,
    /// End to end of each kind (hello worlds per language, hostile).
    end_to_end_by_kind: BTreeMap<String, Percentiles>,
    /// Submitted → a worker started it (the service's timestamps).
    queue_wait: Percentiles,
    /// Started → finished (the service's timestamps).
    run_time: Percentiles,
    /// The jobs' own CPU time as the sandbox measured it (the run's cgroup,
    /// plus the compilation's), where the answer carries it.
    job_cpu: Percentiles,
    /// Its mean, in milliseconds (what a job costs the machine's cores).
    job_cpu_mean_ms: f64,
    verdicts: BTreeMap<String, u64>,
    correct: u64,
    wrong: u64,
    lost: u64,
    throttled: u64,
    /// Polls answered 429 (`--poll-ms`).
    throttled_polls: u64,
    /// Polls sent (`--poll-ms`).
    polls: u64,
    /// The first few problems, in words.
    problems: Vec<String>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 hour at 3 significant figures.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

struct Client {
    http: reqwest::Client,
    url: String,
    api_key: Option<String>,
    deadline: Duration,
    /// `--poll-ms`: the proof of concept's API and polling.
    poll: Option<Duration>,
    /// Polls sent, all jobs together.
    polls: AtomicU64,
}

impl Client {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url));
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Submits one job and waits for it to finish. `slot` is one of the
    /// `--concurrency` submissions in flight: held until the job is done, or
    /// with `--poll-ms` only until it is accepted.
    async fn run(
        &self,
        kind: Kind,
        body: Value,
        expect: Expect,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) -> Outcome {
        let started = Instant::now();
        let mut outcome = Outcome {
            kind,
            e2e: Duration::ZERO,
            view: None,
            problem: None,
            throttled: 0,
            throttled_polls: 0,
        };
        let finished = match self.poll {
            Some(interval) => {
                self.submit_and_poll(&body, started, interval, &mut outcome, slot)
                    .await
            }
            None => self.submit_and_wait(&body, started, &mut outcome).await,
        };
        outcome.e2e = started.elapsed();
        match finished {
            Err(problem) => outcome.problem = Some(problem),
            Ok(view) => {
                outcome.problem = check(&view, &expect).err().map(Problem::Wrong);
                outcome.view = Some(view);
            }
        }
        outcome
    }

    /// Posts `body` to `path`; a 429 (rate or queue depth) is retried after
    /// its `Retry-After` and counted.
    async fn submit(
        &self,
        path: &str,
        body: &Value,
        started: Instant,
        outcome: &mut Outcome,
    ) -> Result<(u16, Value), Problem> {
        loop {
            let response = self
                .request(reqwest::Method::POST, path)
                .json(body)
                .send()
                .await
                .map_err(|e| Problem::Lost(format!("submission failed: {e}")))?;
            let status = response.status().as_u16();
            if status == 429 && started.elapsed() < self.deadline {
                outcome.throttled += 1;
                tokio::time::sleep(retry_after(&response)).await;
                continue;
            }
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            return Ok((status, answer));
        }
    }

    /// The proof of concept's client: `POST /run`, then `GET /status/{id}`
    /// every `interval` until the job is done.
    async fn submit_and_poll(
        &self,
        body: &Value,
        started: Instant,
        interval: Duration,
        outcome: &mut Outcome,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<Value, Problem> {
        let lost = |what: String| Problem::Lost(what);
        // The proof of concept's API takes only these.
        let body = serde_json::json!({ "language": body["language"], "code": body["code"] });
        let (status, answer) = self.submit("/run", &body, started, outcome).await?;
        drop(slot);
        if status != 200 {
            return Err(lost(format!("POST /run answered {status}: {answer}")));
        }
        let id = answer["jobId"]
            .as_str()
            .ok_or_else(|| lost(format!("no jobId in {answer}")))?
            .to_string();
        loop {
            tokio::time::sleep(interval).await;
            if started.elapsed() > self.deadline {
                return Err(lost(format!(
                    "job {id} not finished after {:?}",
                    self.deadline
                )));
            }
            self.polls.fetch_add(1, Ordering::Relaxed);
            let response = self
                .request(reqwest::Method::GET, &format!("/status/{id}"))
                .send()
                .await
                .map_err(|e| lost(format!("job {id}: GET /status failed: {e}")))?;
            let status = response.status().as_u16();
            if status == 429 {
                outcome.throttled_polls += 1;
                continue;
            }
            let mut view: Value = response.json().await.unwrap_or(Value::Null);
            if status != 200 {
                return Err(lost(format!(
                    "job {id}: GET /status answered {status}: {view}"
                )));
            }
            match view["state"].as_str() {
                Some("completed") => {
                    view["id"] = Value::String(id);
                    return Ok(view);
                }
                Some("failed" | "cancelled") => {
                    return Err(lost(format!(
                        "job {id} ended {}: {}",
                        view["state"], view["result"]
                    )));
                }
                _ => {}
            }
        }
    }

    async fn submit_and_wait(
        &self,
        body: &Value,
        started: Instant,
        outcome: &mut Outcome,
    ) -> Result<Value, Problem> {
        let lost = |what: String| Problem::Lost(what);
        let (status, answer) = self
            .submit("/v1/jobs?wait=true", body, started, outcome)
            .await?;
        let mut view = match status {
            200 => answer,
            202 => answer,
            _ => return Err(lost(format!("submission answered {status}: {answer}"))),
        };
        let id = view["id"]
            .as_str()
            .ok_or_else(|| lost(format!("no job id in {view}")))?
            .to_string();
        // Not finished within the server's bounded wait: long-poll again.
        while !finished(&view) {
            if started.elapsed() > self.deadline {
                return Err(lost(format!(
                    "job {id} not finished after {:?} (state {})",
                    self.deadline, view["state"]
                )));
            }
            let response = self
                .request(reqwest::Method::GET, &format!("/v1/jobs/{id}?wait=true"))
                .send()
                .await
                .map_err(|e| lost(format!("job {id}: GET failed: {e}")))?;
            let status = response.status().as_u16();
            view = response.json().await.unwrap_or(Value::Null);
            if status != 200 {
                return Err(lost(format!("job {id}: GET answered {status}: {view}")));
            }
        }
        if view["state"] != "completed" {
            return Err(lost(format!(
                "job {id} ended {}: {}",
                view["state"], view["error"]
            )));
        }
        Ok(view)
    }
}

/// A 429's `Retry-After` (1 s when missing), at most a minute.
fn retry_after(response: &reqwest::Response) -> Duration {
    let seconds = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_secs(seconds.clamp(1, 60))
}

fn finished(view: &Value) -> bool {
    matches!(
        view["state"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

fn check(view: &Value, expect: &Expect) -> Result<(), String> {
    let id = view["id"].as_str().unwrap_or("?");
    let verdict = view["result"]["verdict"].as_str().unwrap_or("none");
    match expect {
        Expect::Stdout(want) => {
            let stdout = view["result"]["stdout"].as_str().unwrap_or("");
            if verdict != "accepted" {
                return Err(format!("job {id}: verdict {verdict}, expected accepted"));
            }
            // The proof of concept's API answers output trimmed.
            if stdout != want && !(view["jobId"].is_string() && stdout == want.trim_end()) {
                return Err(format!(
                    "job {id}: printed {stdout:?}, expected {want:?} (another job's output?)"
                ));
            }
        }
        Expect::Verdicts(allowed) => {
            if !allowed.contains(&verdict) {
                return Err(format!(
                    "job {id}: verdict {verdict}, expected one of {allowed:?}"
                ));
            }
        }
    }
    Ok(())
}

/// The submissions: kind, body and expectation of each job, in order.
fn plan(args: &Args, count: u64) -> anyhow::Result<Vec<(Kind, Value, Expect)>> {
    let mix = jobs::parse_mix(args.mix.as_deref(), &args.language)
        .map_err(|e| anyhow::anyhow!("--mix/--language: {e}"))?;
    let mut picker = Picker::new(&mix);
    // Tags unique to this run, so a stale or crossed output cannot pass.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos()
        % 0xffff_ffff;
    Ok((0..count)
        .map(|n| {
            let kind = picker.next();
            let (body, expect) = jobs::job(&kind, &format!("lt{run:08x}-{n}"), n, args.cases);
            (kind, body, expect)
        })
        .collect())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Runs the load test; true when every job was right.
async fn run(args: Args) -> anyhow::Result<bool> {
    if let Some(sessions) = args.interactive {
        let url = args.url.trim_end_matches('/');
        let (summary, ok) = interactive::run(
            url,
            args.api_key.as_deref(),
            sessions,
            args.lines,
            Duration::from_secs(args.timeout),
        )
        .await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            summary.print();
        }
        return Ok(ok);
    }
    let count = match (args.rate, args.duration) {
        (Some(rate), Some(duration)) => {
            if !(rate > 0.0 && duration > 0.0) {
                bail!("--rate and --duration must be positive");
            }
            (rate * duration).round().max(1.0) as u64
        }
        _ => args.jobs,
    };
    if args.poll_ms.is_some() && args.mix.as_deref().is_some_and(|m| m.contains("hostile")) {
        bail!("--poll-ms uses the proof of concept's API, which takes no limits: no hostile jobs");
    }
    let plan = plan(&args, count)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency as usize)
        .tcp_nodelay(true)
        .build()
        .context("HTTP client")?;
    let url = args.url.trim_end_matches('/').to_string();
    // Fail fast when nothing answers, rather than with N lost jobs.
    http.get(format!("{url}/healthz"))
        .send()
        .await
        .with_context(|| format!("no service at {url}"))?;
    let client = Arc::new(Client {
        http,
        url: url.clone(),
        api_key: args.api_key.clone(),
        deadline: Duration::from_secs(args.timeout),
        poll: args.poll_ms.map(Duration::from_millis),
        polls: AtomicU64::new(0),
    });

    let progress = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(count)
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {pos}/{len} jobs  {per_sec}  {elapsed_precise}  {msg}",
        )
        .expect("template"),
    );
    let wrong = Arc::new(AtomicU64::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(count as usize)));
    let slots = Arc::new(Semaphore::new(args.concurrency as usize));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count as usize);
    for (n, (kind, body, expect)) in plan.into_iter().enumerate() {
        if let Some(rate) = args.rate {
            // Open loop: job n is due at n / rate, whatever came before.
            let due = started + Duration::from_secs_f64(n as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let (client, outcomes, progress, wrong) = (
            client.clone(),
            outcomes.clone(),
            progress.clone(),
            wrong.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let outcome = client.run(kind, body, expect, slot).await;
            if outcome.problem.is_some() {
                let bad = wrong.fetch_add(1, Ordering::Relaxed) + 1;
                progress.set_message(format!("{bad} wrong or lost"));
            }
            progress.inc(1);
            outcomes.lock().await.push(outcome);
        }));
    }
    for task in tasks {
        task.await.context("a job's task panicked")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let outcomes = std::mem::take(&mut *outcomes.lock().await);
    let mut summary = summarize(&args, &url, count, seconds, &outcomes);
    summary.polls = client.polls.load(Ordering::Relaxed);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(summary.wrong == 0 && summary.lost == 0)
}

fn summarize(args: &Args, url: &str, count: u64, seconds: f64, outcomes: &[Outcome]) -> Summary {
    let mut e2e = histogram();
    let mut by_kind: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut queue_wait = histogram();
    let mut run_time = histogram();
    let mut job_cpu = histogram();
    let mut job_cpu_total_ms = 0u64;
    let mut verdicts = BTreeMap::new();
    let (mut correct, mut wrong, mut lost, mut throttled, mut throttled_polls) = (0, 0, 0, 0, 0);
    let mut problems = Vec::new();
    for o in outcomes {
        throttled += o.throttled;
        throttled_polls += o.throttled_polls;
        let micros = (o.e2e.as_micros() as u64).max(1);
        if let Some(view) = &o.view {
            e2e.saturating_record(micros);
            by_kind
                .entry(o.kind.name().to_string())
                .or_insert_with(histogram)
                .saturating_record(micros);
            let at = |field: &str| view[field].as_u64();
            if let (Some(submitted), Some(begun), Some(ended)) = (
                at("submitted_at_ms"),
                at("started_at_ms"),
                at("finished_at_ms"),
            ) {
                queue_wait.saturating_record(begun.saturating_sub(submitted).max(1) * 1000);
                run_time.saturating_record(ended.saturating_sub(begun).max(1) * 1000);
            }
            if let Some(cpu_ms) = job_cpu_ms(&view["result"]) {
                job_cpu_total_ms += cpu_ms;
                job_cpu.saturating_record(cpu_ms.max(1) * 1000);
            }
            let verdict = view["result"]["verdict"].as_str().unwrap_or("none");
            *verdicts.entry(verdict.to_string()).or_insert(0) += 1;
        }
        match &o.problem {
            None => correct += 1,
            Some(Problem::Wrong(why)) => {
                wrong += 1;
                problems.push(format!("wrong: {why}"));
            }
            Some(Problem::Lost(why)) => {
                lost += 1;
                problems.push(format!("lost: {why}"));
            }
        }
    }
    problems.truncate(20);
    let mix = jobs::parse_mix(args.mix.as_deref(), &args.language)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, p)| (k.name().to_string(), p))
        .collect();
    Summary {
        url: url.to_string(),
        mode: match (args.rate, args.duration, args.poll_ms) {
            (Some(rate), Some(duration), _) => format!("rate {rate}/s for {duration} s"),
            (_, _, Some(poll)) => {
                format!("burst of {count}, POST /run then GET /status every {poll} ms")
            }
            _ => format!("burst of {count}"),
        },
        concurrency: args.concurrency,
        mix,
        jobs: count,
        seconds,
        jobs_per_second: count as f64 / seconds,
        end_to_end: Percentiles::of(&e2e),
        end_to_end_by_kind: by_kind
            .iter()
            .map(|(k, h)| (k.clone(), Percentiles::of(h)))
            .collect(),
        queue_wait: Percentiles::of(&queue_wait),
        run_time: Percentiles::of(&run_time),
        job_cpu_mean_ms: if job_cpu.is_empty() {
            0.0
        } else {
            job_cpu_total_ms as f64 / job_cpu.len() as f64
        },
        job_cpu: Percentiles::of(&job_cpu),
        verdicts,
        correct,
        wrong,
        lost,
        throttled,
        throttled_polls,
        polls: 0,
        problems,
    }
}

/// A finished job's CPU time in milliseconds: its run's (or, with test
/// cases, every case's) and its compilation's. None when the answer does
/// not say (the proof of concept's `/status` shape).
fn job_cpu_ms(result: &Value) -> Option<u64> {
    let runs: u64 = match result["test_cases"].as_array() {
        Some(cases) if !cases.is_empty() => cases
            .iter()
            .filter_map(|case| case["cpu_time_ms"].as_u64())
            .sum(),
        _ => result["cpu_time_ms"].as_u64()?,
    };
    Some(runs + result["compile"]["cpu_time_ms"].as_u64().unwrap_or(0))
}

fn print_summary(s: &Summary) {
    let mix: Vec<String> = s.mix.iter().map(|(k, p)| format!("{k} {p}%")).collect();
    println!(
        "{} jobs ({}), {}, concurrency {}, against {}",
        s.jobs,
        mix.join(", "),
        s.mode,
        s.concurrency,
        s.url
    );
    println!(
        "  finished in {:.2} s: {:.2} jobs/s",
        s.seconds, s.jobs_per_second
    );
    let line = |name: &str, p: &Percentiles| {
        if p.count > 0 {
            println!(
                "  {name:<22} p50 {:>8.1} ms  p90 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms  (n={})",
                p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms, p.count
            );
        }
    };
    line("end to end", &s.end_to_end);
    if s.end_to_end_by_kind.len() > 1 {
        for (kind, p) in &s.end_to_end_by_kind {
            line(&format!("  {kind}"), p);
        }
    }
    line("queue wait (service)", &s.queue_wait);
    line("run time (service)", &s.run_time);
    line("job CPU (sandbox)", &s.job_cpu);
    let verdicts: Vec<String> = s.verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
    println!("  verdicts: {}", verdicts.join(", "));
    println!(
        "  correct {}, wrong {}, lost {}{}",
        s.correct,
        s.wrong,
        s.lost,
        if s.throttled > 0 {
            format!(
                " ({} submissions throttled with 429 and retried)",
                s.throttled
            )
        } else {
            String::new()
        }
    );
    if s.polls > 0 {
        println!(
            "  polls: {} sent, {} answered 429",
            s.polls, s.throttled_polls
        );
    }
    for problem in &s.problems {
        println!("  {problem}");
    }
}
