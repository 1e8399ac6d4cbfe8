//! Load-test client for code-runner.
//!
//! A placeholder: the real client (bursts, steady rate, language mixes,
//! latency percentiles) is tracked by its own issue. It exists now so the
//! workspace layout is final and CI builds it.

fn main() {
    eprintln!("loadtest: not implemented yet; see the project's issues");
    std::process::exit(2);
}
