//! The embedded default for Redis: `code-runner serve` with no Redis
//! configured uses `redis://127.0.0.1:6379`, and when nothing answers there
//! and `redis-server` is installed, starts one as a child process with a
//! data directory and an append-only file, so queued jobs survive restarts.
//!
//! The embedded server is private: it listens on loopback only and wants a
//! password generated on first start, kept with its configuration in the
//! data directory (mode 0700, files 0600; never on a command line, where
//! `ps` would show it). Its memory is capped (`maxmemory`) with the
//! `noeviction` policy: a full Redis refuses new writes (submissions answer
//! 507) and never silently drops a queued job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::QueueError;
use crate::config::DEFAULT_REDIS_URL;

/// A `redis-server` this process started.
pub struct EmbeddedRedis {
    child: Child,
    pub data_dir: PathBuf,
    /// Its URL, password included.
    url: String,
}

/// Where the service's Redis is, when none is configured.
pub struct DefaultRedis {
    /// The URL to use (with the embedded server's password, if it is ours).
    pub url: String,
    /// The server this process started, if it started one.
    pub embedded: Option<EmbeddedRedis>,
}

impl EmbeddedRedis {
    /// Asks the server to save and exit (SHUTDOWN), then reaps it.
    pub async fn stop(mut self) {
        if let Ok(client) = redis::Client::open(self.url.as_str())
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

/// The embedded server's password: read from its data directory, or made
/// (and kept there, readable by this user only) on first use.
fn password(dir: &Path) -> Result<String, QueueError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let unavailable = |what: String| QueueError::Unavailable(what);
    std::fs::create_dir_all(dir)
        .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| unavailable(format!("cannot restrict {}: {e}", dir.display())))?;
    let path = dir.join("password");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.trim().is_empty()
    {
        return Ok(existing.trim().to_string());
    }
    let password = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| unavailable(format!("cannot write {}: {e}", path.display())))?;
    file.write_all(password.as_bytes())
        .map_err(|e| unavailable(format!("cannot write {}: {e}", path.display())))?;
    Ok(password)
}

/// Makes sure Redis answers at the default address, starting a private
/// `redis-server` when nothing does (or reusing the one a previous run
/// left, which knows its password).
pub async fn ensure_default_redis(
    data_dir: &Path,
    maxmemory_mb: u64,
) -> Result<DefaultRedis, QueueError> {
    if answers(DEFAULT_REDIS_URL).await {
        return Ok(DefaultRedis {
            url: DEFAULT_REDIS_URL.to_string(),
            embedded: None,
        });
    }
    let dir = data_dir.join("redis");
    let password = password(&dir)?;
    let url = format!("redis://:{password}@127.0.0.1:6379");
    if answers(&url).await {
        return Ok(DefaultRedis {
            url,
            embedded: None,
        });
    }
    let Some(binary) = crate::config::find_program("redis-server") else {
        return Err(QueueError::Unavailable(format!(
            "nothing answers at {DEFAULT_REDIS_URL} and redis-server is not installed; \
             install it (apt-get install redis-server), or point CODE_RUNNER_REDIS_URL \
             at a Redis server"
        )));
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    let config = dir.join("redis.conf");
    let settings = config_text(&dir, &password, maxmemory_mb);
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&config)
            .and_then(|mut f| f.write_all(settings.as_bytes()));
        written.map_err(|e| {
            QueueError::Unavailable(format!("cannot write {}: {e}", config.display()))
        })?;
    }
    let child = Command::new(&binary)
        .arg(&config)
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
        url: url.clone(),
    };
    for _ in 0..100 {
        if answers(&url).await {
            return Ok(DefaultRedis {
                url,
                embedded: Some(embedded),
            });
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

/// The embedded server's configuration (kept 0600: it holds the password).
fn config_text(dir: &Path, password: &str, maxmemory_mb: u64) -> String {
    format!(
        "bind 127.0.0.1\nport 6379\nprotected-mode yes\ndir {dir}\nappendonly yes\n\
         appendfsync everysec\ndaemonize no\nlogfile {log}\nrequirepass {password}\n\
         maxmemory {maxmemory_mb}mb\nmaxmemory-policy noeviction\n",
        dir = dir.display(),
        log = dir.join("redis.log").display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_password_is_made_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("cr-embedded-{}", uuid::Uuid::new_v4()));
        let first = password(&dir).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(password(&dir).unwrap(), first, "the same on every start");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("password")), 0o600);
        let config = config_text(&dir, &first, 256);
        for line in [
            "bind 127.0.0.1",
            "requirepass ",
            "maxmemory 256mb",
            "maxmemory-policy noeviction",
        ] {
            assert!(config.contains(line), "{line}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
