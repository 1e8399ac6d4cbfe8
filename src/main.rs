//! `code-runner`: the service's command line.
//!
//! ```text
//! code-runner serve    API + workers in one process (one machine)
//! code-runner api      HTTP API only
//! code-runner worker   dispatcher and container runners only
//! ```

use clap::{Parser, Subcommand};
use code_runner::app::{App, Role};
use code_runner::config::Config;

#[derive(Parser)]
#[command(
    name = "code-runner",
    version,
    about = "Runs untrusted code in throwaway, hardened Docker containers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// API and workers in one process: everything one machine needs.
    Serve(RoleArgs),
    /// The HTTP API only; jobs run on `worker` processes sharing its Redis.
    Api(RoleArgs),
    /// Takes jobs from Redis and runs them on this machine's Docker engine.
    Worker(RoleArgs),
    /// Makes an API key: prints the key (give it to the client; it is not
    /// stored anywhere) and the entry to add to CODE_RUNNER_API_KEYS.
    NewKey {
        /// The key's name (letters, digits, `-`, `_`, `.`): jobs belong to it.
        name: String,
    },
    /// Prints the secret the webhooks of an API key's jobs are signed with
    /// (derived from CODE_RUNNER_CALLBACK_SECRET and the key's name): give it
    /// to that key's owner for their receiver.
    CallbackSecret {
        /// The key's name.
        name: String,
        /// The service's webhook secret.
        #[arg(long, env = "CODE_RUNNER_CALLBACK_SECRET", hide_env_values = true)]
        secret: String,
    },
}

#[derive(clap::Args)]
struct RoleArgs {
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let (role, config) = match cli.command {
        Command::Serve(a) => (Role::Serve, a.config),
        Command::Api(a) => (Role::Api, a.config),
        Command::Worker(a) => (Role::Worker, a.config),
        Command::NewKey { name } => {
            let (key, entry) = code_runner::http::auth::new_key(&name);
            if code_runner::http::auth::ApiKeys::parse(&entry).is_err() {
                eprintln!("code-runner: a key name is letters, digits, '-', '_' and '.'");
                std::process::exit(2);
            }
            println!("key:   {key}");
            println!("entry: {entry}");
            return;
        }
        Command::CallbackSecret { name, secret } => {
            println!(
                "{}",
                code_runner::callback::CallbackSender::key_secret(secret.as_bytes(), &name)
            );
            return;
        }
    };
    code_runner::telemetry::init(&config.log_format);
    let app = match App::start(role, config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("code-runner: cannot start: {e:#}");
            std::process::exit(1);
        }
    };
    if let Err(e) = app.run_until_signal().await {
        eprintln!("code-runner: {e:#}");
        std::process::exit(1);
    }
}
