//! Where the queue lives: Redis's URL (a server, Sentinel or Cluster),
//! TLS, the queue's name and prefix, and the options of its clients.

use super::tls;
/// Where the queue lives in Redis.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub redis_url: String,
    /// For a `rediss://` URL: the roots trusted and the client certificate.
    pub tls: Option<bullmq::options::TlsCerts>,
    /// Replicas a submission waits for (`WAIT`) before it is acknowledged.
    pub wait_replicas: u32,
    /// Redis Cluster: the seed nodes' URLs (`redis+cluster://` URL), else
    /// empty.
    pub cluster_nodes: Vec<String>,
    /// BullMQ key prefix (a hash tag, for Redis Cluster).
    pub prefix: String,
    pub queue_name: String,
    /// How long a cancelled job that never ran stays readable, in seconds.
    pub cancelled_retention_secs: u64,
    /// Attempts at each webhook a finished job owes.
    pub callback_attempts: u32,
}

impl QueueSettings {
    /// Which deployment these settings make: the Redis (its URL without
    /// credentials: scheme, addresses, database) and the queue
    /// (`<prefix>:<name>`). Workers of one deployment share one queue in
    /// one Redis; two services on one engine with the same queue name on
    /// different Redis servers are two deployments.
    pub fn deployment(&self) -> String {
        let url = self.redis_url.as_str();
        let location = match url.split_once("://") {
            Some((kind, rest)) => {
                // Credentials sit before the last `@` of the authority.
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let host = authority
                    .rsplit_once('@')
                    .map_or(authority, |(_, host)| host);
                format!("{kind}://{host}{path}")
            }
            None => url.to_string(),
        };
        // A query (unix sockets' `?db=`, passwords) is not part of it.
        let location = location.split('?').next().unwrap_or("");
        format!("{location} {}:{}", self.prefix, self.queue_name)
    }

    /// The settings, with the TLS files read (an error names a bad one).
    pub fn from_config(config: &crate::config::Config) -> Result<Self, String> {
        let redis_url = config.redis_url_or_default();
        let tls = tls::load(
            &redis_url,
            tls::TlsFiles {
                ca_file: config.redis_ca_file.as_deref(),
                client_cert: config.redis_client_cert.as_deref(),
                client_key: config.redis_client_key.as_deref(),
            },
        )?;
        let kind = redis_url.split_once("://").map_or("", |(kind, _)| kind);
        if !matches!(
            kind,
            "redis" | "rediss" | "unix" | "redis+unix" | "redis+sentinel" | "redis+cluster"
        ) {
            return Err(format!(
                "CODE_RUNNER_REDIS_URL: \"{kind}://\" is not supported (redis://, \
                 rediss://, redis+sentinel://, redis+cluster:// or unix://; TLS with \
                 Sentinel or Cluster is not supported yet)"
            ));
        }
        let cluster_nodes = cluster_nodes(&redis_url)?;
        if !cluster_nodes.is_empty() && config.redis_wait_replicas > 0 {
            return Err("CODE_RUNNER_REDIS_WAIT_REPLICAS is not supported with a \
                        redis+cluster:// URL yet"
                .to_string());
        }
        Ok(QueueSettings {
            redis_url,
            tls,
            wait_replicas: config.redis_wait_replicas,
            cluster_nodes,
            prefix: config.redis_prefix.clone(),
            queue_name: config.queue_name.clone(),
            cancelled_retention_secs: config.keep_failed_secs,
            callback_attempts: config.callback_attempts,
        })
    }

    pub(super) fn connection(&self) -> bullmq::options::RedisConnectionOptions {
        let options = bullmq::options::RedisConnectionOptions::new().url(self.redis_url.clone());
        let options = if self.cluster_nodes.is_empty() {
            options
        } else {
            options.cluster_nodes(self.cluster_nodes.clone())
        };
        match &self.tls {
            Some(certs) => options.tls_certs(certs.clone()),
            None => options,
        }
    }

    /// A client for a connection of the service's own (not BullMQ's), with
    /// the same TLS settings.
    pub(super) fn client(&self) -> redis::RedisResult<redis::Client> {
        if !self.cluster_nodes.is_empty() {
            // Pub/sub reaches every node of a cluster: any one will do,
            // the next one on each reconnection.
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return redis::Client::open(self.cluster_nodes[n % self.cluster_nodes.len()].as_str());
        }
        match &self.tls {
            Some(certs) => redis::Client::build_with_tls(
                self.redis_url.as_str(),
                tls::redis_certificates(certs),
            ),
            None => redis::Client::open(self.redis_url.as_str()),
        }
    }

    /// A key of this service's own (not BullMQ's), in the queue's hash slot.
    pub(super) fn own_key(&self, suffix: &str) -> String {
        format!("{}:{}:cr:{}", self.prefix, self.queue_name, suffix)
    }
}

/// The seed nodes of a `redis+cluster://[user:password@]host:port,host:port…`
/// URL as `redis://` URLs (each with the credentials); empty for any other.
fn cluster_nodes(url: &str) -> Result<Vec<String>, String> {
    let Some(rest) = url.strip_prefix("redis+cluster://") else {
        return Ok(Vec::new());
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') {
        return Err("CODE_RUNNER_REDIS_URL: a Redis Cluster has one database; \
                    redis+cluster://[user:password@]host:port,host:port… takes no path"
            .to_string());
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
        None => (String::new(), authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{userinfo}{h}"))
        .collect();
    if nodes.is_empty() {
        return Err("CODE_RUNNER_REDIS_URL: redis+cluster:// names no server".to_string());
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(redis_url: &str) -> QueueSettings {
        QueueSettings {
            redis_url: redis_url.into(),
            tls: None,
            wait_replicas: 0,
            cluster_nodes: Vec::new(),
            prefix: "{code-runner}".into(),
            queue_name: "code-runner".into(),
            cancelled_retention_secs: 1,
            callback_attempts: 1,
        }
    }

    #[test]
    fn a_cluster_url_names_its_seed_nodes_with_their_credentials() {
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379/0"), Ok(Vec::new()));
        assert_eq!(
            cluster_nodes("redis+cluster://u:p@10.0.0.1:7000,10.0.0.2:7001/"),
            Ok(vec![
                "redis://u:p@10.0.0.1:7000".to_string(),
                "redis://u:p@10.0.0.2:7001".to_string()
            ])
        );
        assert_eq!(
            cluster_nodes("redis+cluster://a:1,,b:2"),
            Ok(vec!["redis://a:1".to_string(), "redis://b:2".to_string()])
        );
        assert!(
            cluster_nodes("redis+cluster://a:1/2")
                .unwrap_err()
                .contains("one database")
        );
        assert!(
            cluster_nodes("redis+cluster://")
                .unwrap_err()
                .contains("names no server")
        );
    }

    #[test]
    fn a_deployment_is_its_redis_and_queue_without_credentials() {
        let with_password = settings("redis://user:s3cret@10.0.0.5:6380/2").deployment();
        assert_eq!(
            with_password,
            "redis://10.0.0.5:6380/2 {code-runner}:code-runner"
        );
        assert!(!with_password.contains("s3cret"));
        assert_ne!(
            settings("redis://127.0.0.1:6379").deployment(),
            settings("redis://127.0.0.1:6380").deployment()
        );
        assert_eq!(
            settings("redis+sentinel://:pw@h1:26379,h2:26379/primary").deployment(),
            "redis+sentinel://h1:26379,h2:26379/primary {code-runner}:code-runner"
        );
        assert_eq!(
            settings("unix:///run/redis.sock?db=1&pass=pw").deployment(),
            "unix:///run/redis.sock {code-runner}:code-runner"
        );
    }
}
