//! Integration tests: the real service against a real Redis and a real
//! Docker engine, running real containers. `make test` provides both.
//!
//! One test binary (shared helpers, one compile); each test starts its own
//! service on 127.0.0.1:0 with its own queue, so tests run in parallel.

use code_runner_testkit as helpers;

mod abuse;
mod admin;
mod browsers;
mod concurrency;
mod faults;
mod hardening;
mod interop;
mod judge0;
mod judge0_requests;
mod judging;
mod languages;
mod limits;
mod live;
mod openapi;
mod piston;
mod poc;
mod process;
mod retention;
mod security;
mod v1;
mod verdicts;
mod webhooks;
