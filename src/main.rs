//! The teamsync binary: parse arguments, start logging, load the config,
//! run one command, turn the result into an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use teamsync::cli::Cli;
use teamsync::config::{BindMethod, Config, LogFormat};
use teamsync::{commands, exit, krb5_env};
use tracing_subscriber::EnvFilter;

/// A pass decodes and frees hundreds of thousands of small values from
/// the directory; glibc's allocator spent a quarter of the pass's CPU on
/// them (measured), mimalloc much less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(err) => {
            init_logging("info", LogFormat::Text);
            return fail(anyhow::Error::new(err));
        }
    };
    init_logging(&config.logging.level, config.logging.format);
    if let BindMethod::Gssapi(kerberos) = &config.directory.bind.method {
        let vars = krb5_env::missing(kerberos);
        if !vars.is_empty() {
            let err = krb5_env::restart_with(vars);
            return fail(anyhow::Error::new(err).context("restarting with the Kerberos settings"));
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(anyhow::Error::new(err).context("starting the async runtime")),
    };
    match runtime.block_on(commands::run(cli, config)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => fail(err),
    }
}

/// Prints the error once, with its causes, and picks the exit code.
fn fail(err: anyhow::Error) -> ExitCode {
    eprintln!("teamsync: error: {}", exit::describe(&err));
    ExitCode::from(exit::code_for(&err))
}

/// Logs go to stderr. RUST_LOG wins over logging.level. `json`: one object
/// per line for log shippers; under systemd (JOURNAL_STREAM set) text lines
/// carry no colour and no timestamp of their own (the journal adds one).
fn init_logging(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text if under_journal => builder.without_time().with_ansi(false).init(),
        // Colour only for a person at a terminal: escape codes in a file or
        // a pipe are noise (and cost time on a pass logging 68,000 changes).
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }
}
