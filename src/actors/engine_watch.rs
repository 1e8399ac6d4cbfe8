//! The engine watch: a task, owned by the dispatcher, that pings the Docker
//! engine every [`ENGINE_PING_INTERVAL`] and says when it stops answering
//! (the dispatcher then claims no more jobs) and when it answers again.

use std::sync::Arc;
use std::time::Duration;

use super::WorkerServices;

const ENGINE_PING_INTERVAL: Duration = Duration::from_secs(1);
/// How long a ping may take before the engine counts as down.
const ENGINE_PING_TIMEOUT: Duration = Duration::from_secs(3);

/// A change in whether the engine answers.
pub enum EngineChange {
    Down(String),
    Up,
}

/// Calls `on_change` at each change, for as long as it runs.
pub async fn run(services: Arc<WorkerServices>, on_change: impl Fn(EngineChange)) {
    let mut up = true;
    let mut ticker = tokio::time::interval(ENGINE_PING_INTERVAL);
    loop {
        ticker.tick().await;
        let ping = tokio::time::timeout(ENGINE_PING_TIMEOUT, services.sandbox.engine_info()).await;
        let answered = match ping {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer in time".to_string()),
        };
        match (up, answered) {
            (true, Err(reason)) => {
                up = false;
                on_change(EngineChange::Down(reason));
            }
            (false, Ok(())) => {
                up = true;
                on_change(EngineChange::Up);
            }
            _ => {}
        }
    }
}
