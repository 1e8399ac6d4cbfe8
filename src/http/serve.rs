//! Serving a router on a listener, with the limits a listener facing
//! strangers needs before any request is authenticated: a client that sends
//! its request head slowly (slowloris), or its body slowly, or holds an idle
//! connection, is cut off; connections are capped in all and per client
//! address, so no one client can hold every connection.
//!
//! hyper's HTTP/1 server does the timing out (`header_read_timeout`, which
//! also bounds how long a kept-alive connection may sit idle before its next
//! request) and tower-http's `RequestBodyTimeout` the body; the caps are
//! semaphores. `axum::serve` has none of these.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Longest a client may take to send a request's head, and longest a
    /// kept-alive connection may wait for its next request.
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a request's body.
    pub body_read_timeout: Duration,
    /// Connections open at once, all clients together.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client by
    /// its /64).
    pub max_connections_per_client: usize,
}

/// Open connections per client, to refuse one past its cap.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

impl PerClient {
    /// The key of a client: its address, an IPv6 one by its /64.
    fn key(addr: IpAddr) -> IpAddr {
        match addr.to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        }
    }

    fn take(&self, addr: IpAddr, cap: usize) -> bool {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(Self::key(addr)).or_insert(0);
        if *count >= cap {
            return false;
        }
        *count += 1;
        true
    }

    fn give(&self, addr: IpAddr) {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = Self::key(addr);
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true, then lets the
/// requests in progress finish (up to `grace`). Handlers see the client's
/// address as axum's `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ListenerLimits,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> std::io::Result<()> {
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_read_timeout,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    let (closing, _) = watch::channel(false);
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        // A free connection slot first: past the cap, new connections wait
        // in the kernel's backlog rather than in this process.
        let stopped = async {
            let _ = stop.wait_for(|s| *s).await;
        };
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            _ = stopped => break,
        };
        let stopped = async {
            let _ = stop.wait_for(|s| *s).await;
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped => break,
        };
        if !per_client.take(peer.ip(), limits.max_connections_per_client) {
            // Closed at once: this client holds its share already.
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request.map(axum::body::Body::new)
                });
        let service = TowerToHyperService::new(service);
        let mut closing = closing.subscribe();
        let per_client = per_client.clone();
        tracker.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let closed = async move {
                let _ = closing.wait_for(|c| *c).await;
            };
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = closed => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
            per_client.give(peer.ip());
            drop(slot);
        });
    }
    let _ = closing.send(true);
    tracker.close();
    let _ = tokio::time::timeout(grace, tracker.wait()).await;
    Ok(())
}

/// The address a request came from, when served by [`serve`].
pub fn client_address(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_share_of_connections() {
        let open = PerClient::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(open.take(a, 2) && open.take(a, 2));
        assert!(!open.take(a, 2));
        assert!(open.take("10.0.0.2".parse().unwrap(), 2));
        // One /64 is one client.
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(open.take(v6, 1));
        assert!(!open.take("2001:db8::ffff".parse().unwrap(), 1));
        open.give(a);
        assert!(open.take(a, 2));
    }
}
