//! The engine watch: a task, owned by the dispatcher, that pings the Docker
//! engine every [`ENGINE_PING_INTERVAL`] and says when it stops answering
//! (the dispatcher then claims no more jobs) and when it answers again. It
//! also looks for the language images this worker lacks (every
//! [`MISSING_IMAGE_CHECK`]; all of them every [`IMAGE_CHECK`]), so that a
//! language whose image finishes building is served from then on, and
//! publishes the versions of the ones that appear.

use std::sync::Arc;
use std::time::Duration;

use super::WorkerServices;

const ENGINE_PING_INTERVAL: Duration = Duration::from_secs(1);
/// How often images are looked for while some are missing.
const MISSING_IMAGE_CHECK: Duration = Duration::from_secs(3);
/// How often images are checked when none is missing (one may be removed).
const IMAGE_CHECK: Duration = Duration::from_secs(60);
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
    let mut images_checked = tokio::time::Instant::now();
    loop {
        ticker.tick().await;
        let missing = services.images.missing().is_none_or(|m| !m.is_empty());
        let due = if missing {
            MISSING_IMAGE_CHECK
        } else {
            IMAGE_CHECK
        };
        if up && images_checked.elapsed() >= due {
            images_checked = tokio::time::Instant::now();
            check_images(&services).await;
        }
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

/// Looks at the engine's images again; the languages that became ready are
/// logged and their versions published.
pub async fn check_images(services: &WorkerServices) {
    match services
        .images
        .check(&services.sandbox, &services.languages)
        .await
    {
        Ok(newly) if !newly.is_empty() => {
            tracing::info!(languages = ?newly, "language images ready");
            if let Err(e) = services
                .queue
                .publish_versions(&services.images.versions())
                .await
            {
                tracing::warn!(error = %e, "cannot publish language versions");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot check the language images"),
    }
}
