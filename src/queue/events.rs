//! Waiting for jobs to finish without polling: one listener per process on
//! the queue's BullMQ event stream wakes the requests waiting for a job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bullmq::{QueueEvent, QueueEvents, QueueEventsOptions};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{JobQueue, QueueError, QueueSettings, StoredJob};
use crate::backoff::Backoff;

type Waiters = Arc<Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>>;

/// A waiter looks at its job again at least this often, in case an event
/// was missed while the listener reconnected.
const RECHECK: Duration = Duration::from_secs(5);

async fn listen(settings: &QueueSettings) -> Result<QueueEvents, QueueError> {
    let options = QueueEventsOptions {
        connection: settings.connection(),
        prefix: settings.prefix.clone(),
        ..QueueEventsOptions::default()
    };
    QueueEvents::with_options(&settings.queue_name, options)
        .await
        .map_err(|e| QueueError::Unavailable(e.to_string()))
}

/// One event of the queue's stream, as the dashboard receives it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueActivity {
    /// BullMQ's name: added, active, completed, failed, removed, ...
    pub event: String,
    pub job_id: Option<String>,
}

/// The process's listener on the queue's event stream.
pub struct JobEvents {
    waiters: Waiters,
    /// Every event, for live views (slow receivers miss some, never block).
    activity: tokio::sync::broadcast::Sender<QueueActivity>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JobEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JobEvents {
    /// Starts listening from now on; the listener reconnects by itself
    /// when Redis goes away and comes back.
    pub async fn start(settings: &QueueSettings) -> Result<JobEvents, QueueError> {
        let first = listen(settings).await?;
        let waiters: Waiters = Arc::default();
        let (activity, _) = tokio::sync::broadcast::channel(1024);
        let task = {
            let waiters = waiters.clone();
            let activity = activity.clone();
            let settings = settings.clone();
            tokio::spawn(async move {
                let mut events = Some(first);
                let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
                loop {
                    let Some(current) = events.take() else {
                        backoff.wait().await;
                        events = listen(&settings).await.ok();
                        continue;
                    };
                    backoff.reset();
                    while let Some(entry) = current.next_event().await {
                        let _ = activity.send(QueueActivity {
                            event: entry.event.name().to_string(),
                            job_id: entry.event.job_id().map(str::to_string),
                        });
                        let job_id = match &entry.event {
                            QueueEvent::Completed { job_id, .. }
                            | QueueEvent::Failed { job_id, .. }
                            | QueueEvent::Removed { job_id, .. } => job_id.clone(),
                            _ => continue,
                        };
                        let woken = waiters
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&job_id);
                        for waiter in woken.into_iter().flatten() {
                            let _ = waiter.send(());
                        }
                    }
                    tracing::warn!("the queue's event stream ended; listening again");
                    current.close().await;
                }
            })
        };
        Ok(JobEvents {
            waiters,
            activity,
            task,
        })
    }

    /// Every event from now on.
    pub fn activity(&self) -> tokio::sync::broadcast::Receiver<QueueActivity> {
        self.activity.subscribe()
    }

    fn subscribe(&self, id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_default()
            .push(tx);
        rx
    }

    fn forget_closed(&self, id: &str) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = waiters.get_mut(id) {
            list.retain(|w| !w.is_closed());
            if list.is_empty() {
                waiters.remove(id);
            }
        }
    }
}

impl JobQueue {
    /// The job once it is completed, failed or cancelled, or as it is when
    /// `timeout` passes first.
    pub async fn wait_finished(
        &self,
        events: &JobEvents,
        id: &Uuid,
        timeout: Duration,
    ) -> Result<Option<StoredJob>, QueueError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let key = id.to_string();
        loop {
            // Subscribe before reading, so a finish in between is not missed.
            let woken = events.subscribe(&key);
            let job = self.get(id).await?;
            let finished = job.as_ref().is_none_or(|j| j.state.has_ended());
            if finished || tokio::time::Instant::now() >= deadline {
                events.forget_closed(&key);
                return Ok(job);
            }
            // A failed attempt that will be retried also wakes us: look again.
            let until = deadline.min(tokio::time::Instant::now() + RECHECK);
            let _ = tokio::time::timeout_at(until, woken).await;
            events.forget_closed(&key);
        }
    }
}
