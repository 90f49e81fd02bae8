//! `authport`, the binary: parses the command line, loads config, builds the provider from the
//! plugin registry and hands the run to the engine. It holds no migration logic of its own.

mod cli;
mod completions;
mod config;
mod config_show;
mod export;
mod links;
mod migrate;
mod read_files;
#[cfg(test)]
mod readme_tables;
mod sandbox_mode;
mod serve;
mod status;
mod summary_out;
mod targets;
mod webhooks;

pub(crate) use read_files::ReadFiles;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use authport_core::{EnvSnapshot, ProviderPlugin};
use authport_engine::files::refuse_same_as_input;
use authport_engine::{
    AppliedHook, EngineError, Exit, ImportOptions, MaintenanceOptions, OwnedConnection, RateChoice,
    RunGate, RunSummary, StateStore,
};
use authport_engine::{input_identity, is_stdin};
use clap::Parser;

// Providers register themselves with `inventory`; rustc drops crates nothing references, so
// each provider crate is linked here. `registry_lists_every_provider` pins the list.
use authport_apideck as _;
use authport_nango as _;
use authport_tray as _;

use crate::cli::{Cli, Command, Format, ImportArgs, ProviderArgs, StateArgs};
use crate::config::ConfigFile;
use crate::sandbox_mode::SandboxData;

/// mimalloc rather than glibc's malloc: allocation was ~15 % of an import's CPU with many
/// worker threads allocating and freeing small objects (BENCHMARKS.md, client overhead).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    cli.discover_config();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(Exit::Io.code());
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code.code()),
        Err(error) => {
            // Printed with `-q` too: it is the reason for a non-zero exit.
            eprintln!("error: {error}");
            ExitCode::from(error.exit().code())
        }
    }
}

/// A failure before anything was sent: bad flags, config or environment (exit 2), for the
/// commands that still report with `anyhow` (the engine's `EngineError` types it back).
fn usage(error: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(EngineError::Usage(error))
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Runs the command; a command that could not run is an [`EngineError`], whose `exit()` is the
/// process's exit code.
async fn run(cli: Cli) -> Result<Exit, EngineError> {
    let quiet = cli.quiet;
    let exit: anyhow::Result<Exit> = match cli.command {
        Command::Providers { format } => {
            print_providers(format)?;
            Ok(Exit::Ok)
        }
        Command::Validate {
            input,
            report,
            format,
            allow_shared_grants,
        } => {
            check_input(&input)?;
            let report = report_path(report.as_deref());
            ReadFiles::default()
                .file("--input", Some(input_identity(&input)))
                .refuse_outputs(&[("--report", Some(&report))])?;
            let summary =
                authport_engine::validate_input(&input, Some(&report), allow_shared_grants)?;
            finish(
                "validate",
                &summary,
                format,
                report_is_stdout(&report),
                quiet,
            )
        }
        Command::Import(args) => return import(args, quiet).await,
        Command::Verify(args) => verify_or_rollback(args, quiet, Action::Verify).await,
        Command::Rollback(args) => verify_or_rollback(args, quiet, Action::Rollback).await,
        Command::Export(args) => return export::export(args, quiet).await,
        Command::Migrate(args) => return migrate::migrate(args, quiet).await,
        Command::Webhooks(args) => webhooks::webhooks(args).await,
        Command::Links(command) => links::links(command).await,
        Command::Status(args) => status::status(args, quiet).await,
        Command::Reconnect(args) => status::reconnect(args, quiet).await,
        Command::Sandbox {
            listen,
            tray_rate_limit,
        } => sandbox_mode::serve_until_stopped(listen, tray_rate_limit).await,
        Command::Config(cli::ConfigCommand::Show(args)) => config_show::show(args),
        Command::Targets(args) => targets::targets(args).await,
        Command::Completions { shell } => completions::print(shell),
        Command::Man { out_dir } => completions::man(&out_dir),
    };
    Ok(exit?)
}

fn print_providers(format: Format) -> anyhow::Result<()> {
    let providers = authport_core::providers();
    let mut out = std::io::stdout().lock();
    let written = match format {
        Format::Text => providers.iter().try_for_each(|p| {
            writeln!(
                out,
                "{:<10} {:<40} {}",
                p.name,
                p.capabilities.words().join(", "),
                p.description
            )
        }),
        Format::Json => {
            let list: Vec<_> = providers
                .iter()
                .map(|p| {
                    serde_json::json!({"name": p.name, "description": p.description,
                        "abilities": p.capabilities.words()})
                })
                .collect();
            writeln!(out, "{}", serde_json::Value::Array(list))
        }
    };
    ignore_broken_pipe(written)
}

/// A closed stdout (`authport ... | head`) is not an error.
fn ignore_broken_pipe(result: std::io::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The input must be a file, or `-` for stdin. A report on stdout (`--report -` or none) is
/// fine with `--input -`: stdin is read, stdout written, and the summary goes to stderr.
fn check_input(input: &Path) -> anyhow::Result<()> {
    if is_stdin(input) || input.is_file() {
        return Ok(());
    }
    if input.is_dir() {
        return Err(usage(anyhow::anyhow!(
            "input {} is a directory; give a file of records (or `-` to read stdin)",
            input.display()
        )));
    }
    Err(usage(anyhow::anyhow!(
        "input file {} does not exist (give `-` to read stdin)",
        input.display()
    )))
}

/// The report goes to the file given, else to stdout (`-` for the engine).
fn report_path(report: Option<&Path>) -> PathBuf {
    report.map_or_else(|| PathBuf::from("-"), Path::to_path_buf)
}

fn report_is_stdout(report: &Path) -> bool {
    report == Path::new("-")
}

/// Prints a run's summary (`import`, `validate`, `migrate`) by the one rule of
/// [`summary_out`] and picks the exit code.
fn finish(
    command: &'static str,
    summary: &RunSummary,
    format: Format,
    report_on_stdout: bool,
    quiet: bool,
) -> anyhow::Result<Exit> {
    summary_out::print_summary(
        summary_out::Summary {
            command,
            human: summary.human(),
            fields: summary.to_json(),
            exit: summary.exit_code(),
        },
        format,
        if report_on_stdout {
            summary_out::Stdout::RecordLines
        } else {
            summary_out::Stdout::Free
        },
        quiet,
    )
}

/// Everything needed to build a provider: the plugin, its config and the environment.
struct ProviderSetup {
    plugin: &'static ProviderPlugin,
    config: ConfigFile,
    env: EnvSnapshot,
    /// Keeps the in-process sandbox alive for the run (`--sandbox`).
    _sandbox: Option<sandbox_mode::Sandbox>,
}

/// The provider's plugin, config and environment; with `--sandbox`, the environment points at
/// the bundled sandbox, whose data is where `sandbox_data` says.
async fn provider_setup_for(
    args: &ProviderArgs,
    sandbox_data: SandboxData<'_>,
) -> anyhow::Result<ProviderSetup> {
    let plugin = authport_core::find_provider(&args.provider).map_err(|e| usage(e.into()))?;
    let names = authport_core::provider_names();
    let config = match &args.config {
        Some(path) => ConfigFile::load(path, &names).map_err(usage)?,
        None => ConfigFile::default(),
    };
    let mut env = EnvSnapshot::from_process();
    let sandbox = if args.sandbox {
        let sandbox = sandbox_mode::start(sandbox_data).await?;
        for (name, value) in sandbox.provider_env() {
            env.set(name, value);
        }
        Some(sandbox)
    } else {
        None
    };
    Ok(ProviderSetup {
        plugin,
        config,
        env,
        _sandbox: sandbox,
    })
}

fn build_importer(
    setup: &ProviderSetup,
    state: &StateStore,
    gate: &Arc<RunGate>,
) -> Result<Arc<dyn authport_core::AuthImporter>, EngineError> {
    let context =
        setup
            .config
            .build_context(setup.plugin.name, &setup.env, state.memo(), gate.clone());
    let importer =
        (setup.plugin.build)(&context).map_err(|e| EngineError::config(setup.plugin.name, &e))?;
    Ok(Arc::from(importer))
}

async fn import(args: ImportArgs, quiet: bool) -> Result<Exit, EngineError> {
    let setup =
        provider_setup_for(&args.provider, SandboxData::for_run(args.state.as_deref())).await?;
    check_input(&args.input)?;
    // `--input -`: stdin, whose file (when redirected) is protected like an input file's.
    let input = input_identity(&args.input);
    let state = run_state(
        args.state.as_deref(),
        args.report.as_deref(),
        Some(input),
        &setup.config,
    )?;
    let report = report_path(args.report.as_deref());
    let defaults = ImportOptions::new(setup.plugin.name, setup.plugin.limits, &args.input);
    // One rate limit for the run, applied to every request the provider sends.
    let importer = build_importer(&setup, &state, &defaults.gate)?;
    let options = run_options(
        defaults,
        &setup,
        &state,
        RunFlags {
            concurrency: args.concurrency,
            rate: args.rate,
            budget_share: args.budget_share,
            json: args.provider.format == cli::Format::Json,
            dry_run: args.dry_run,
            allow_target_change: args.provider.allow_target_change,
            allow_shared_grants: args.allow_shared_grants,
            require_scopes: args.require_scopes,
            report: report.clone(),
            quiet,
        },
    );
    // Before (what earlier runs wrote, a killed one included), each object as it is committed
    // (`applied_hook`), and after (anything a busy event store made the hook miss).
    publish_owned(&state, &setup);
    let summary = authport_engine::import(importer, &state, &options, shutdown_signal()).await?;
    publish_owned(&state, &setup);
    Ok(finish(
        "import",
        &summary,
        args.provider.format,
        report_is_stdout(&report),
        quiet,
    )?)
}

/// Tells a webhook receiver which connections the run wrote (it cannot read the journal while
/// the run holds it); a failure here only delays what the receiver learns.
fn publish_owned(state: &StateStore, setup: &ProviderSetup) {
    let provider = setup.plugin.name;
    let Some(source) = webhooks::upgrade_source(provider, &setup.config, &setup.env) else {
        return;
    };
    if let Err(error) = authport_engine::publish_owned(state, provider, source.as_ref()) {
        tracing::warn!("cannot record the run's connections for the webhook receiver: {error:#}");
    }
}

/// When a webhook receiver keeps an event store for this state, each connection the run
/// commits is published to it at once, so the receiver stores that connection's events from
/// the first one (it cannot read the journal while the run holds it).
fn applied_hook(state: &StateStore, setup: &ProviderSetup) -> Option<AppliedHook> {
    let provider = setup.plugin.name;
    let path = state.path()?;
    std::fs::symlink_metadata(authport_engine::events_path(path)).ok()?;
    let source = webhooks::upgrade_source(provider, &setup.config, &setup.env)?;
    let store = match webhooks::open_store(path, provider, Some(source.as_ref())) {
        Ok(store) => Arc::new(store),
        Err(error) => {
            tracing::warn!("cannot open the event store for the webhook receiver: {error:#}");
            return None;
        }
    };
    Some(AppliedHook(Arc::new(move |record_id, target| {
        let Some(connection_key) = source.connection_key(target) else {
            return;
        };
        let owned = OwnedConnection {
            connection_key,
            record_id: record_id.to_owned(),
        };
        if let Err(error) = store.own(provider, &[owned]) {
            tracing::warn!("cannot record a connection for the webhook receiver: {error:#}");
        }
    })))
}

/// The journal of an import or migrate run: `--state`, or a private temporary one. Before it
/// is opened (or created), the report is checked against every file the run reads: the input,
/// the state and its event store, the config.
pub(crate) fn run_state(
    state: Option<&Path>,
    report: Option<&Path>,
    input: Option<&Path>,
    config: &ConfigFile,
) -> anyhow::Result<StateStore> {
    ReadFiles::default()
        .file("--input", input)
        .state(state)
        .config(config)
        .refuse_outputs(&[("--report", report)])?;
    let Some(path) = state else {
        return StateStore::temporary();
    };
    if let Some(input) = input {
        // The state is written too: never on the input.
        refuse_same_as_input("state file", path, input).map_err(|e| usage(e.into()))?;
    }
    open_state(path, config)
}

fn open_state(path: &Path, config: &ConfigFile) -> anyhow::Result<StateStore> {
    let opened = if config.engine.durable.unwrap_or(false) {
        StateStore::open_durable(path)
    } else {
        StateStore::open(path)
    };
    opened.with_context(|| format!("cannot open state file {}", path.display()))
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Verify,
    Rollback,
}

async fn verify_or_rollback(args: StateArgs, quiet: bool, action: Action) -> anyhow::Result<Exit> {
    let setup = provider_setup_for(&args.provider, SandboxData::for_state(&args.state)).await?;
    if !args.state.is_file() {
        return Err(usage(anyhow::anyhow!(
            "state file {} does not exist",
            args.state.display()
        )));
    }
    // The state (and its event store) and the config are this command's inputs: a report on
    // one of them would destroy it.
    ReadFiles::default()
        .state(Some(&args.state))
        .config(&setup.config)
        .refuse_outputs(&[("--report", args.report.as_deref())])?;
    let state = open_state(&args.state, &setup.config)?;
    let mut options = MaintenanceOptions::new(setup.plugin.name, setup.plugin.limits);
    options.allow_target_change = args.provider.allow_target_change;
    options.concurrency = status::read_concurrency(args.concurrency, &setup.config);
    options.progress = !quiet && std::io::stderr().is_terminal();
    let importer = build_importer(&setup, &state, &options.gate)?;
    let report = args.report.as_deref();
    // Per-object lines go to stdout unless a report file takes them.
    let mut stdout = std::io::stdout().lock();
    let mut sink = std::io::sink();
    let out: &mut dyn Write = if report.is_some() {
        &mut sink
    } else {
        &mut stdout
    };
    let summary = match action {
        Action::Verify => {
            authport_engine::verify(importer, &state, &options, report, out, interrupted()).await?
        }
        Action::Rollback => {
            authport_engine::rollback(importer, &state, &options, report, out, shutdown_signal())
                .await?
        }
    };
    drop(stdout);
    summary_out::print_summary(
        summary_out::Summary {
            command: match action {
                Action::Verify => "verify",
                Action::Rollback => "rollback",
            },
            human: summary.human(),
            fields: summary.to_json(),
            exit: summary.exit_code(),
        },
        args.provider.format,
        if report.is_some() {
            summary_out::Stdout::Free
        } else {
            summary_out::Stdout::RecordLines
        },
        quiet,
    )
}

/// The flags `import` and `migrate` share, for [`run_options`].
pub(crate) struct RunFlags {
    pub concurrency: Option<u32>,
    pub rate: Option<RateChoice>,
    pub budget_share: Option<f64>,
    /// `--format json`: progress as JSON events on stderr when the bar is not drawn.
    pub json: bool,
    pub dry_run: bool,
    pub allow_target_change: bool,
    /// `--allow-shared-grants` (else `[engine] allow_shared_grants`).
    pub allow_shared_grants: bool,
    /// `--require-scopes`.
    pub require_scopes: bool,
    pub report: PathBuf,
    pub quiet: bool,
}

/// An import run's options: the flags win over the config's `[engine]`, which wins over the
/// provider's defaults; each committed object goes to the webhook receiver ([`applied_hook`]).
fn run_options(
    defaults: ImportOptions,
    setup: &ProviderSetup,
    state: &StateStore,
    flags: RunFlags,
) -> ImportOptions {
    let engine = &setup.config.engine;
    ImportOptions {
        max_attempts: engine.max_attempts.unwrap_or(defaults.max_attempts),
        deadline: engine
            .deadline_secs
            .map(std::time::Duration::from_secs)
            .or(defaults.deadline),
        report: Some(flags.report),
        concurrency: flags.concurrency.or(engine.concurrency).map(|n| n as usize),
        rate: flags
            .rate
            .or(engine.rate.map(cli::rate_choice))
            .unwrap_or_default(),
        rate_ceiling: engine.rate_ceiling,
        budget_share: flags
            .budget_share
            .or(engine.budget_share)
            .unwrap_or(defaults.budget_share),
        dry_run: flags.dry_run,
        allow_target_change: flags.allow_target_change,
        allow_shared_grants: flags.allow_shared_grants
            || engine.allow_shared_grants.unwrap_or(false),
        require_scopes: flags.require_scopes,
        progress: !flags.quiet && std::io::stderr().is_terminal(),
        progress_events: flags.json && !flags.quiet,
        on_applied: applied_hook(state, setup),
        ..defaults
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn interrupted() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Resolves on Ctrl-C or SIGTERM: the engine stops taking records and finishes in-flight ones.
async fn shutdown_signal() {
    interrupted().await;
    tracing::warn!(
        "stopping: finishing records in flight; run again with the same --state to resume"
    );
}

#[cfg(test)]
mod tests {
    // One line: `cargo xtask new-provider` finds and edits this list in place.
    #[rustfmt::skip]
    #[test]
    fn registry_lists_every_provider() {
        assert_eq!(authport_core::provider_names(), vec!["apideck", "nango", "tray"]);
    }
}
