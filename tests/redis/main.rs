//! The service against Redis as production runs it, each a real
//! `redis-server` of its own on a loopback port: TLS with a client
//! certificate (certificates made here), and an ACL user holding only the
//! rule of `deploy/redis/code-runner.acl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use code_runner::actors::dispatcher::PANIC_RUNNER_MARKER;
use code_runner::app::{App, Role};
use code_runner_testkit as helpers;
use helpers::{TEST_PREFIX, TestService, free_port};
use reqwest::Method;
use serde_json::{Value, json};

mod acl;
mod cluster;
mod deployments;
mod memory;
mod sentinel;
mod tls;

/// A `redis-server` of this test's own, stopped (and its directory removed)
/// when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one on a free loopback port; with `tls`, that port speaks TLS
    /// only (the plain port is off) and wants a client certificate.
    fn start(dir: &Path, tls: Option<&Pki>) -> RedisServer {
        let port = free_port();
        Self::with_args(
            dir,
            port,
            &server_args(port, dir, tls.map(|pki| (pki, true))),
        )
    }

    /// Starts `redis-server` with these arguments (its port among them).
    fn with_args(dir: &Path, port: u16, args: &[String]) -> RedisServer {
        std::fs::create_dir_all(dir).unwrap();
        let mut command = Command::new("redis-server");
        command.args(args);
        Self::spawn(command, port, dir)
    }

    fn spawn(mut command: Command, port: u16, dir: &Path) -> RedisServer {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server (make test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Something listening is not proof it is this server: one that could
        // not bind exits, while the port answers for someone else.
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(Some(status)) = child.try_wait() {
            panic!("redis-server on port {port} exited ({status}): the port was taken");
        }
        RedisServer {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }
}

/// A `redis-server`'s arguments: loopback `port`, no persistence, data in
/// `dir`; with `tls`, that port speaks TLS only (the plain port is off) with
/// the PKI's server certificate, asking clients for theirs when the flag says.
fn server_args(port: u16, dir: &Path, tls: Option<(&Pki, bool)>) -> Vec<String> {
    let mut args: Vec<String> = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        .map(String::from)
        .to_vec();
    args.extend(["--dir".to_string(), dir.to_string_lossy().into_owned()]);
    match tls {
        Some((pki, auth_clients)) => {
            args.extend(["--port", "0", "--tls-port"].map(String::from));
            args.push(port.to_string());
            for (flag, file) in [
                ("--tls-cert-file", "server.pem"),
                ("--tls-key-file", "server.key"),
                ("--tls-ca-cert-file", "ca.pem"),
            ] {
                args.push(flag.to_string());
                args.push(pki.path(file).to_string_lossy().into_owned());
            }
            args.push("--tls-auth-clients".to_string());
            args.push(if auth_clients { "yes" } else { "no" }.to_string());
        }
        None => args.extend(["--port".to_string(), port.to_string()]),
    }
    args
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "code-runner-redis-{name}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))
}

/// A certificate authority, a server certificate for 127.0.0.1 and
/// localhost, a client certificate it signed, and a second, unrelated
/// authority: PEM files in a directory.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn make(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.join(name), pem).unwrap();
        let authority = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap();
            (cert, key)
        };
        let (ca, ca_key) = authority("code-runner test Redis CA");
        write("ca.pem", ca.pem());
        let (other, _) = authority("an unrelated CA");
        write("other-ca.pem", other.pem());

        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let server = params.signed_by(&key, &ca, &ca_key).unwrap();
        write("server.pem", server.pem());
        write("server.key", key.serialize_pem());

        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "code-runner worker");
        let client = params.signed_by(&key, &ca, &ca_key).unwrap();
        write("client.pem", client.pem());
        write("client.key", key.serialize_pem());
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A job cancelled while it runs: the cancellation reaches its worker over
/// the Redis channel workers subscribe to.
async fn cancel_a_running_job(service: &TestService) {
    let running = service
        .submit_v1(json!({ "language": "python", "code": "import time\ntime.sleep(25)" }))
        .await;
    service
        .wait_v1(&running, &["active"], Duration::from_secs(60))
        .await;
    let (status, body) = service
        .send(Method::DELETE, &format!("/v1/jobs/{running}"), None)
        .await;
    assert!(status == 200 || status == 202, "{status} {body}");
    service
        .wait_v1(&running, &["cancelled"], Duration::from_secs(30))
        .await;
}

async fn connection(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A submission of `print(<n>)` every `every` until stopped, each answered
/// 201 or 503 (anything else fails the test).
struct SteadyLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<LoadOutcome>,
}

/// The jobs acknowledged (id, n), how many submissions got 503, and the
/// longest time between two acknowledgements.
type LoadOutcome = (Vec<(String, usize)>, u32, Duration);

impl SteadyLoad {
    fn start(service: std::sync::Arc<TestService>, every: Duration) -> SteadyLoad {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut refused = 0u32;
            let mut longest_gap = Duration::ZERO;
            let mut last_accepted = Instant::now();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let body =
                    json!({ "language": "python", "code": format!("print({})", accepted.len()) });
                let (status, answer) = service.send(Method::POST, "/v1/jobs", Some(body)).await;
                if status == 201 {
                    accepted.push((answer["id"].as_str().unwrap().to_string(), accepted.len()));
                    longest_gap = longest_gap.max(last_accepted.elapsed());
                    last_accepted = Instant::now();
                } else {
                    assert_eq!(status, 503, "a submission answered {status}: {answer}");
                    refused += 1;
                }
                tokio::time::sleep(every).await;
            }
            (accepted, refused, longest_gap)
        });
        SteadyLoad { stop, task }
    }

    async fn stop(self) -> LoadOutcome {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// Waits for every job of a [`SteadyLoad`] to be completed with its own
/// output; their views.
async fn all_completed(
    service: &TestService,
    accepted: &[(String, usize)],
    timeout: Duration,
) -> Vec<Value> {
    let mut views = Vec::new();
    for (id, n) in accepted {
        let view = service.wait_v1(id, &["completed", "failed"], timeout).await;
        assert_eq!(view["state"], "completed", "{view}");
        assert_eq!(view["result"]["stdout"], format!("{n}\n"), "{view}");
        views.push(view);
    }
    views
}
