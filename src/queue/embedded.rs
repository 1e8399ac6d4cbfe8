//! The embedded default for Redis: `code-runner serve` with no Redis
//! configured uses `redis://127.0.0.1:6379`, and when nothing answers there
//! and `redis-server` is installed, starts one as a child process with a
//! data directory and an append-only file, so queued jobs survive restarts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::{DEFAULT_REDIS_URL, QueueError};

/// A `redis-server` this process started.
pub struct EmbeddedRedis {
    child: Child,
    pub data_dir: PathBuf,
}

impl EmbeddedRedis {
    /// Asks the server to save and exit (SHUTDOWN), then reaps it.
    pub async fn stop(mut self) {
        if let Ok(client) = redis::Client::open(DEFAULT_REDIS_URL)
            && let Ok(Ok(mut conn)) = tokio::time::timeout(
                Duration::from_secs(2),
                client.get_multiplexed_async_connection(),
            )
            .await
        {
            // The server closes the connection as it exits: an error here is
            // the normal answer.
            let _ = redis::cmd("SHUTDOWN").query_async::<()>(&mut conn).await;
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(_) => tracing::info!("embedded redis-server stopped"),
            Err(_) => {
                let _ = self.child.kill().await;
            }
        }
    }
}

/// True when a Redis server answers PING at `url` within a second.
pub async fn answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ping).await,
        Ok(Ok(_))
    )
}

/// Makes sure Redis answers at the default address, starting a private
/// `redis-server` when nothing does. Returns the child it started, if any.
pub async fn ensure_default_redis(data_dir: &Path) -> Result<Option<EmbeddedRedis>, QueueError> {
    if answers(DEFAULT_REDIS_URL).await {
        return Ok(None);
    }
    let Some(binary) = find_in_path("redis-server") else {
        return Err(QueueError::Unavailable(format!(
            "nothing answers at {DEFAULT_REDIS_URL} and redis-server is not installed; \
             install it (apt-get install redis-server), or point CODE_RUNNER_REDIS_URL \
             at a Redis server"
        )));
    };
    let dir = data_dir.join("redis");
    std::fs::create_dir_all(&dir)
        .map_err(|e| QueueError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    let dir = dir.canonicalize().unwrap_or(dir);
    let child = Command::new(&binary)
        .arg("--bind")
        .arg("127.0.0.1")
        .arg("--port")
        .arg("6379")
        .arg("--dir")
        .arg(&dir)
        .arg("--appendonly")
        .arg("yes")
        .arg("--appendfsync")
        .arg("everysec")
        .arg("--daemonize")
        .arg("no")
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| QueueError::Unavailable(format!("cannot start {}: {e}", binary.display())))?;
    tracing::info!(
        pid = child.id(),
        data_dir = %dir.display(),
        "no Redis answered at {DEFAULT_REDIS_URL}: started an embedded redis-server \
         (append-only file on)"
    );
    let mut embedded = EmbeddedRedis {
        child,
        data_dir: dir,
    };
    for _ in 0..100 {
        if answers(DEFAULT_REDIS_URL).await {
            return Ok(Some(embedded));
        }
        if let Ok(Some(status)) = embedded.child.try_wait() {
            return Err(QueueError::Unavailable(format!(
                "the embedded redis-server exited with {status}; see {}",
                embedded.data_dir.join("redis.log").display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(QueueError::Unavailable(
        "the embedded redis-server did not answer within 10 s".into(),
    ))
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
