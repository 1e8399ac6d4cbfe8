//! Other code runners' APIs in code-runner's terms, so their clients work
//! unchanged: a foreign request becomes a [`crate::job::JobSpec`] and a
//! stored job becomes the foreign answer. No second queue, no second result
//! model: these modules only translate (pure functions, unit-tested here);
//! the handlers in [`crate::http::compat`] read bodies and go through the
//! same admission path as `/v1/jobs`.
//!
//! - [`judge0`]: Judge0 CE (`/submissions`, `/languages`, `/statuses`, ...).
//! - [`piston`]: Piston's API v2 (`/api/v2/runtimes`, `/api/v2/execute`).

pub mod judge0;
pub mod piston;
