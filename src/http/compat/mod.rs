//! Other code runners' APIs, served beside our own (see [`crate::compat`]
//! for the translation): their handlers read a request, translate it, and
//! go through the same checks and admission as `/v1/jobs`.
//!
//! - [`judge0`]: Judge0 CE's routes at the root (`/submissions`, ...).
//! - [`piston`]: Piston's API v2 (`/api/v2/runtimes`, `/api/v2/execute`, ...).

pub mod judge0;
pub mod piston;
