//! The dashboard's live views: the actor tree, the system's health and
//! versions, and the event stream that pushes them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use serde_json::{Value, json};

use crate::actors::supervisor::SupervisorMsg;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::job::now_ms;
use crate::status::{RestartRecord, WorkerInfo};

/// How often the event stream pushes a fresh overview and actor tree.
pub(super) const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);

/// Closest two pushes of the overview come, however many jobs move.
pub(super) const SNAPSHOT_THROTTLE: Duration = Duration::from_millis(300);

pub(super) const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// An actor of the tree.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ActorNode {
    /// Supervisor, JobRegistry, Dispatcher, ContainerRunner.
    kind: String,
    alive: bool,
    /// What it is about: the worker of a dispatcher, the job of a runner.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    children: Vec<ActorNode>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Actors {
    /// This process's tree.
    tree: ActorNode,
    /// Restarts per supervised actor of this process.
    restarts: std::collections::BTreeMap<String, RestartRecord>,
    /// Every live worker (any process), from its heartbeat: its cap, its
    /// runners and their phase, its restarts.
    #[schema(value_type = Vec<Object>)]
    workers: Vec<WorkerInfo>,
}

/// The supervisor tree as it is now, and every live worker.
#[utoipa::path(get, path = "/admin/api/actors", tag = "dashboard",
    responses((status = 200, body = Actors)))]
pub(super) async fn actors(State(state): State<AppState>) -> Result<Json<Actors>, ApiError> {
    Ok(Json(actor_tree(&state).await?))
}

pub(super) async fn actor_tree(state: &AppState) -> Result<Actors, ApiError> {
    let now = now_ms();
    let snapshot = state.registry.snapshot().await;
    let dispatcher = match &state.local.supervisor {
        Some(supervisor) => matches!(
            supervisor
                .call(SupervisorMsg::Dispatcher, Some(CALL_TIMEOUT))
                .await,
            Ok(ractor::rpc::CallResult::Success(Some(_)))
        ),
        None => false,
    };
    let restarts = match &state.local.supervisor {
        Some(supervisor) => match supervisor
            .call(SupervisorMsg::Restarts, Some(CALL_TIMEOUT))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(r)) => r,
            _ => Default::default(),
        },
        None => Default::default(),
    };
    let mut children = vec![ActorNode {
        kind: "JobRegistry".into(),
        alive: snapshot.is_some(),
        detail: None,
        children: Vec::new(),
    }];
    if let Some((worker_id, cap)) = &state.local.worker {
        let runners = snapshot
            .as_ref()
            .map(|s| {
                s.in_flight
                    .iter()
                    .filter(|j| &j.worker_id == worker_id)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .map(|job| ActorNode {
                kind: "ContainerRunner".into(),
                alive: true,
                detail: Some(json!({
                    "job_id": job.job_id,
                    "language": job.language,
                    "phase": job.phase,
                    "container_id": job.container_id,
                    "running_ms": now.saturating_sub(job.claimed_at_ms),
                })),
                children: Vec::new(),
            })
            .collect::<Vec<_>>();
        children.push(ActorNode {
            kind: "Dispatcher".into(),
            alive: dispatcher,
            detail: Some(
                json!({ "worker_id": worker_id, "cap": cap, "slots_in_use": runners.len() }),
            ),
            children: runners,
        });
    }
    Ok(Actors {
        tree: ActorNode {
            kind: "Supervisor".into(),
            alive: state.local.supervisor.is_some(),
            detail: None,
            children,
        },
        restarts,
        workers: state.queue.live_workers(now).await?,
    })
}

/// Redis and Docker health and versions, images per language, runtimes.
#[utoipa::path(get, path = "/admin/api/system", tag = "dashboard",
    responses((status = 200, description = "`{redis, docker, runtime, languages}`")))]
pub(super) async fn system(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let redis = match state.queue.redis_version().await {
        Ok(version) => json!({ "ok": true, "version": version }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let mut images = HashMap::new();
    let docker = match &state.local.engine {
        None => json!({ "ok": null, "note": "this process runs no jobs; see the workers" }),
        Some(engine) => {
            match tokio::time::timeout(Duration::from_secs(2), engine.probe()).await {
                Ok(Ok(info)) => {
                    // One look per image (several languages share one).
                    for language in state.languages.all() {
                        if !images.contains_key(&language.image) {
                            let present = engine.has_image(&language.image).await;
                            images.insert(language.image.clone(), present);
                        }
                    }
                    json!({ "ok": true, "version": info.version, "api_version": info.api_version })
                }
                Ok(Err(e)) => json!({ "ok": false, "error": e.to_string() }),
                Err(_) => json!({ "ok": false, "error": "no answer in time" }),
            }
        }
    };
    let reported = state.queue.language_versions().await.unwrap_or_default();
    let languages: Vec<Value> = state
        .languages
        .all()
        .iter()
        .map(|l| {
            json!({
                "id": l.id,
                "image": crate::language::image_name(&state.local.image_prefix, &l.image),
                "declared_version": l.version,
                // Present on this process's engine (when it runs jobs).
                "image_here": images.get(&l.image).copied(),
                "versions_reported": reported.get(&l.id).cloned().unwrap_or_default(),
                "runtime": l.runtime.clone().or(state.local.runtime.clone()).unwrap_or_else(|| "runc".into()),
            })
        })
        .collect();
    let workers = state.queue.live_workers(now_ms()).await.unwrap_or_default();
    Ok(Json(json!({
        "redis": redis,
        "docker": docker,
        "runtime": state.local.runtime.clone().unwrap_or_else(|| "runc (the engine's default)".into()),
        "languages": languages,
        "workers_engines": workers.iter().map(|w| json!({ "id": w.id, "host": w.host, "engine_ok": w.engine_ok })).collect::<Vec<_>>(),
    })))
}

/// Live updates: `job` events as the queue's event stream has them (from
/// any worker), and `overview` and `actors` snapshots after activity and
/// every two seconds.
#[utoipa::path(get, path = "/admin/api/events", tag = "dashboard",
    responses((status = 200, description = "text/event-stream")))]
pub(super) async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    struct Feed {
        state: AppState,
        activity: tokio::sync::broadcast::Receiver<crate::queue::events::QueueActivity>,
        ticker: tokio::time::Interval,
        last_snapshot: Option<tokio::time::Instant>,
        pending: std::collections::VecDeque<Event>,
    }
    let feed = Feed {
        activity: state.events.activity(),
        state,
        ticker: tokio::time::interval(SNAPSHOT_EVERY),
        last_snapshot: None,
        pending: std::collections::VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(event) = feed.pending.pop_front() {
                return Some((Ok(event), feed));
            }
            let snapshot_due = tokio::select! {
                received = feed.activity.recv() => match received {
                    Ok(activity) => {
                        let event = Event::default().event("job").json_data(&activity).unwrap_or_default();
                        feed.pending.push_back(event);
                        feed.last_snapshot.is_none_or(|t| t.elapsed() >= SNAPSHOT_THROTTLE)
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep(SNAPSHOT_EVERY).await;
                        true
                    }
                },
                _ = feed.ticker.tick() => true,
            };
            if snapshot_due {
                feed.last_snapshot = Some(tokio::time::Instant::now());
                if let Ok(actors) = actor_tree(&feed.state).await {
                    feed.pending.push_back(
                        Event::default()
                            .event("actors")
                            .json_data(&actors)
                            .unwrap_or_default(),
                    );
                }
                if let Ok(overview) = feed.state.queue.overview().await {
                    feed.pending.push_back(
                        Event::default()
                            .event("overview")
                            .json_data(&overview)
                            .unwrap_or_default(),
                    );
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
