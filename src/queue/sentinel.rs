//! Redis Sentinel: `redis+sentinel://[user:password@]host:port,host:port,…/<master>[/<db>]`.
//!
//! BullMQ's client connects to one address and reconnects to that same
//! address, so the service puts a forwarder of its own in between: a
//! listener on this machine's loopback that forwards each connection to the
//! primary the sentinels name. It asks them every `POLL` which that is;
//! when it changes (a failover), it closes every forwarded connection, and
//! the clients' reconnections reach the new primary. BullMQ, the
//! cancellation subscriber and the service's own commands all connect to
//! the forwarder as to a plain Redis, with the URL's credentials (they go
//! to the primary; the sentinels are asked without them).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the sentinels are asked which server is the primary.
const POLL: Duration = Duration::from_millis(250);
/// How long a new connection waits for a primary to be known.
const WAIT_FOR_PRIMARY: Duration = Duration::from_secs(10);
/// How long one question to a sentinel may take.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// What a `redis+sentinel://` URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    pub sentinels: Vec<String>,
    pub master: String,
    /// `user:password@` (or `:password@`), kept for the primary.
    pub userinfo: Option<String>,
    pub db: Option<u32>,
}

impl SentinelUrl {
    /// `None` for any other URL; an error for a malformed sentinel URL.
    pub fn parse(url: &str) -> Result<Option<SentinelUrl>, String> {
        let Some(rest) = url.strip_prefix("redis+sentinel://") else {
            return Ok(None);
        };
        let bad = |why: &str| {
            Err(format!(
                "CODE_RUNNER_REDIS_URL: {why} (expected \
                 redis+sentinel://[user:password@]host:port[,host:port…]/<master name>[/<db>])"
            ))
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo.to_string()), hosts),
            None => (None, authority),
        };
        let sentinels: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                {
                    h.to_string()
                } else {
                    format!("{h}:26379")
                }
            })
            .collect();
        if sentinels.is_empty() {
            return bad("no sentinel named");
        }
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let Some(master) = parts.next() else {
            return bad("no master name");
        };
        let db = match parts.next() {
            Some(db) => match db.parse() {
                Ok(db) => Some(db),
                Err(_) => return bad("the database is not a number"),
            },
            None => None,
        };
        if parts.next().is_some() {
            return bad("too many path segments");
        }
        Ok(Some(SentinelUrl {
            sentinels,
            master: master.to_string(),
            userinfo,
            db,
        }))
    }
}

/// The forwarder: a loopback listener that reaches the current primary.
/// Stops when dropped.
pub struct SentinelProxy {
    url: String,
    primary: watch::Receiver<Option<SocketAddr>>,
    tasks: Vec<JoinHandle<()>>,
}

impl SentinelProxy {
    /// Starts it once a sentinel has named the primary (an error naming the
    /// sentinels and the master when none does within `WAIT_FOR_PRIMARY`).
    pub async fn start(target: SentinelUrl) -> Result<SentinelProxy, String> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("cannot listen on loopback for the sentinel forwarder: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let (tell, primary) = watch::channel(None);
        let target = Arc::new(target);
        let watcher = tokio::spawn(watch_primary(target.clone(), tell));
        let mut waiting = primary.clone();
        let known = tokio::time::timeout(WAIT_FOR_PRIMARY, async {
            waiting.wait_for(Option::is_some).await.is_ok()
        })
        .await
        .unwrap_or(false);
        if !known {
            watcher.abort();
            return Err(format!(
                "no sentinel of {} names a primary for \"{}\"",
                target.sentinels.join(","),
                target.master
            ));
        }
        let forwarder = tokio::spawn(forward(listener, primary.clone()));
        let userinfo = target
            .userinfo
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let db = target.db.map(|db| format!("/{db}")).unwrap_or_default();
        Ok(SentinelProxy {
            url: format!("redis://{userinfo}{local}{db}"),
            primary,
            tasks: vec![watcher, forwarder],
        })
    }

    /// The URL the service's clients use (the forwarder's, with the
    /// credentials and database of the sentinel URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The primary connections go to now.
    pub fn primary(&self) -> Option<SocketAddr> {
        *self.primary.borrow()
    }
}

impl Drop for SentinelProxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Asks the sentinels, in turn, for the primary's address, every `POLL`.
async fn watch_primary(target: Arc<SentinelUrl>, tell: watch::Sender<Option<SocketAddr>>) {
    loop {
        if let Some(addr) = ask(&target).await
            && *tell.borrow() != Some(addr)
        {
            match *tell.borrow() {
                Some(old) => tracing::warn!(%old, new = %addr, master = %target.master,
                    "the sentinels name a new Redis primary; reconnecting to it"),
                None => tracing::info!(primary = %addr, master = %target.master,
                    "Redis primary, as the sentinels name it"),
            }
            tell.send_replace(Some(addr));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The primary as the first sentinel that answers names it.
async fn ask(target: &SentinelUrl) -> Option<SocketAddr> {
    for sentinel in &target.sentinels {
        let asked = async {
            let client = redis::Client::open(format!("redis://{sentinel}")).ok()?;
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            let answer: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&target.master)
                .query_async(&mut conn)
                .await
                .ok()?;
            let (host, port) = answer?;
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .ok()?
                .next()
        };
        if let Ok(Some(addr)) = tokio::time::timeout(ASK_TIMEOUT, asked).await {
            return Some(addr);
        }
    }
    None
}

/// Forwards each accepted connection to the primary of the moment, and
/// closes it when the primary changes.
async fn forward(listener: TcpListener, primary: watch::Receiver<Option<SocketAddr>>) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let mut primary = primary.clone();
        tokio::spawn(async move {
            let known = tokio::time::timeout(WAIT_FOR_PRIMARY, async {
                primary
                    .wait_for(Option::is_some)
                    .await
                    .ok()
                    .and_then(|a| *a)
            })
            .await;
            let Ok(Some(addr)) = known else {
                return;
            };
            let Ok(mut outbound) = TcpStream::connect(addr).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = primary.wait_for(|now| *now != Some(addr)) => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_parse() {
        assert_eq!(SentinelUrl::parse("redis://127.0.0.1:6379"), Ok(None));
        let url = SentinelUrl::parse("redis+sentinel://:pw@a:26379,b:26380,c/mymaster/2")
            .unwrap()
            .unwrap();
        assert_eq!(url.sentinels, ["a:26379", "b:26380", "c:26379"]);
        assert_eq!(url.master, "mymaster");
        assert_eq!(url.userinfo.as_deref(), Some(":pw"));
        assert_eq!(url.db, Some(2));
        for bad in [
            "redis+sentinel:///mymaster",
            "redis+sentinel://a:26379",
            "redis+sentinel://a:26379/m/x",
            "redis+sentinel://a:26379/m/1/2",
        ] {
            let err = SentinelUrl::parse(bad).unwrap_err();
            assert!(err.contains("CODE_RUNNER_REDIS_URL"), "{bad}: {err}");
        }
    }
}
