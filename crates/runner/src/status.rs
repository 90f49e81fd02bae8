//! `authport status` and `authport reconnect`: after the import.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use authport_engine::Refusal;
use authport_engine::events::events_path;
use authport_engine::reconnect::{BrokerOptions, Destination, ReconnectOptions};
use authport_engine::status::{EventView, HtmlPage, NoEvents, StatusOutput};
use authport_engine::{Exit, MaintenanceOptions};
use clap::{Args, ValueEnum};

use crate::cli::{Format, ProviderArgs};
use crate::config::ConfigFile;
use crate::sandbox_mode::SandboxData;
use crate::{ProviderSetup, ReadFiles, build_importer, open_state, provider_setup_for, usage};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub provider: ProviderArgs,
    /// The state file of the import run.
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// The import's input file: its records the journal never imported show as `not_imported`.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Also write the per-record lines (JSON Lines) here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Objects read back at once, 1 to 1024 (default: the provider's, as for import), within
    /// the vendor's rate.
    #[arg(long, value_name = "N", value_parser = crate::cli::parse_concurrency)]
    pub concurrency: Option<u32>,
    /// Also write a status page here: one self-contained HTML file (0600) for the people who
    /// follow the migration. Needs --input (owners and services come from it).
    #[arg(long, value_name = "FILE", requires = "input")]
    pub html: Option<PathBuf>,
    /// With --html: show the reconnect links `reconnect --links --broker URL` issued (still
    /// valid, not revoked) in the page's reconnect list; nothing new is issued.
    #[arg(long, value_name = "URL", requires = "html")]
    pub broker: Option<String>,
}

/// Objects a read command (or rollback) handles at once: `--concurrency`, else `[engine]
/// concurrency`, else the provider's default (as for `import`).
pub(crate) fn read_concurrency(flag: Option<u32>, config: &ConfigFile) -> Option<usize> {
    flag.or(config.engine.concurrency).map(|n| n as usize)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorklistFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Args)]
pub struct ReconnectArgs {
    /// Provider name (see `authport providers`).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub provider: String,
    /// TOML config file: `[engine]` defaults and one section per provider.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The state file of the import run.
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// The import's input file (owner names and emails come from it; never a secret).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// The import's report: tells records the target rejected from other failures.
    #[arg(long, value_name = "FILE")]
    pub import_report: Option<PathBuf>,
    /// Write the worklist here (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = WorklistFormat::Jsonl)]
    pub format: WorklistFormat,
    /// Mint reconnect links now (Apideck: a Vault session, 1 h; Tray: an auth-only dialog URL,
    /// single use, 5 min). A re-run does not mint again for the same owner and service.
    #[arg(long)]
    pub links: bool,
    /// With --links: mint again even when an earlier run already did.
    #[arg(long, requires = "links")]
    pub force_links: bool,
    /// With --links: write one durable link per row to the broker at URL (`authport links
    /// serve`, behind https) instead of minting vendor links; nothing is sent to the vendor and
    /// a re-run writes the same links until they expire.
    #[arg(
        long,
        value_name = "URL",
        requires = "links",
        conflicts_with = "force_links"
    )]
    pub broker: Option<String>,
    /// With --broker: how long a new link lasts, in s, m, h or d (e.g. 14d, 36h).
    #[arg(long, value_name = "TTL", requires = "broker", value_parser = parse_link_ttl)]
    pub link_ttl: Option<std::time::Duration>,
    /// Use a state file made for another target anyway, and bind it to this one.
    #[arg(long)]
    pub allow_target_change: bool,
    /// Use the bundled sandbox the import ran against (its data beside --state).
    #[arg(long)]
    pub sandbox: bool,
}

/// How long a broker link lasts unless `--link-ttl` says otherwise.
const DEFAULT_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(14 * 86_400);

fn parse_link_ttl(text: &str) -> Result<std::time::Duration, String> {
    authport_links::parse_ttl(text).map_err(|e| e.to_string())
}

/// The webhook event store beside the state, when `authport webhooks` made one; never
/// created here. An older store is upgraded in place by the provider's webhook source.
fn event_view(state: &Path, setup: &ProviderSetup) -> anyhow::Result<Box<dyn EventView>> {
    if events_path(state).is_file() {
        let provider = setup.plugin.name;
        let source = crate::webhooks::upgrade_source(provider, &setup.config, &setup.env);
        let store = crate::webhooks::open_store(state, provider, source.as_deref())?;
        Ok(Box::new(store))
    } else {
        Ok(Box::new(NoEvents))
    }
}

fn existing_state(path: &Path) -> anyhow::Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(usage(anyhow::anyhow!(
            "state file {} does not exist",
            path.display()
        )))
    }
}

pub async fn status(args: StatusArgs, quiet: bool) -> anyhow::Result<Exit> {
    if let Some(url) = &args.broker {
        // A bad address is refused before anything is read (exit 2).
        authport_links::link_url(url, "x")
            .map_err(|e| crate::usage(anyhow::anyhow!("--broker: {e}")))?;
    }
    let setup = provider_setup_for(&args.provider, SandboxData::for_state(&args.state)).await?;
    existing_state(&args.state)?;
    let links_store = authport_engine::links_store::links_path(&args.state);
    ReadFiles::default()
        .state(Some(&args.state))
        .file("--input", args.input.as_deref())
        .file("the links store of --state", Some(&links_store))
        .config(&setup.config)
        .refuse_outputs(&[
            ("--report", args.report.as_deref()),
            ("--html", args.html.as_deref()),
        ])?;
    if let Some(html) = &args.html {
        // Refused before a line is printed, not after the read-back.
        authport_engine::files::refuse_symlink("--html file", html)?;
    }
    let state = open_state(&args.state, &setup.config)?;
    let mut options = MaintenanceOptions::new(setup.plugin.name, setup.plugin.limits);
    options.allow_target_change = args.provider.allow_target_change;
    options.concurrency = read_concurrency(args.concurrency, &setup.config);
    options.progress = !quiet && std::io::stderr().is_terminal();
    let importer = build_importer(&setup, &state, &options.gate)?;
    let json = args.provider.format == Format::Json;
    let mut stdout = std::io::stdout().lock();
    let events = event_view(&args.state, &setup)?;
    let summary = authport_engine::status::status(
        importer,
        &state,
        &options,
        events.as_ref(),
        StatusOutput {
            input: args.input.as_deref(),
            report: args.report.as_deref(),
            json_lines: json,
            html: args.html.as_deref().map(|path| HtmlPage {
                path,
                state_path: &args.state,
                broker: args.broker.as_deref(),
            }),
        },
        &mut stdout,
        crate::interrupted(),
    )
    .await?;
    drop(stdout);
    crate::summary_out::print_summary(
        crate::summary_out::Summary {
            command: "status",
            human: summary.human(),
            fields: summary.to_json(),
            exit: summary.exit_code(),
        },
        args.provider.format,
        // Text statuses stay on stderr with or without --report, as before the one rule: the
        // per-record lines are what a script reads from stdout.
        crate::summary_out::Stdout::RecordLines,
        quiet,
    )
}

/// `--links` with the worklist on stdout is refused when stdout is a terminal (exit 2): live
/// links must not land in a scrollback or a screen share; `--output FILE` or a pipe is fine,
/// as for `export`. Pure.
fn refuse_links_on_a_terminal(
    links: bool,
    output_given: bool,
    stdout_is_terminal: bool,
) -> Result<(), Refusal> {
    if links && !output_given && stdout_is_terminal {
        return Err(Refusal(
            "refusing to print reconnect links (each grants access to an end user's connection settings) to a terminal: give --output FILE or redirect stdout".to_owned(),
        ));
    }
    Ok(())
}

pub async fn reconnect(args: ReconnectArgs, quiet: bool) -> anyhow::Result<Exit> {
    refuse_links_on_a_terminal(
        args.links,
        args.output.is_some(),
        std::io::stdout().is_terminal(),
    )?;
    let broker = match &args.broker {
        Some(url) => {
            // A bad address is refused before the state is touched (exit 2).
            authport_links::link_url(url, "x")
                .map_err(|e| crate::usage(anyhow::anyhow!("--broker: {e}")))?;
            Some(BrokerOptions {
                url: url.clone(),
                ttl: args.link_ttl.unwrap_or(DEFAULT_LINK_TTL),
                state_path: args.state.clone(),
            })
        }
        None => None,
    };
    let provider_args = ProviderArgs {
        provider: args.provider.clone(),
        config: args.config.clone(),
        sandbox: args.sandbox,
        format: Format::Text,
        allow_target_change: args.allow_target_change,
    };
    let setup = provider_setup_for(&provider_args, SandboxData::for_state(&args.state)).await?;
    existing_state(&args.state)?;
    ReadFiles::default()
        .state(Some(&args.state))
        .file("--input", Some(&args.input))
        .file("--import-report", args.import_report.as_deref())
        .file(
            "the links store of --state",
            Some(&authport_engine::links_store::links_path(&args.state)),
        )
        .config(&setup.config)
        .refuse_outputs(&[("--output", args.output.as_deref())])?;
    let state = open_state(&args.state, &setup.config)?;
    let mut options = MaintenanceOptions::new(setup.plugin.name, setup.plugin.limits);
    options.allow_target_change = args.allow_target_change;
    let importer = build_importer(&setup, &state, &options.gate)?;
    let reconnect = ReconnectOptions {
        import_report: args.import_report.clone(),
        links: args.links,
        force_links: args.force_links,
        csv: args.format == WorklistFormat::Csv,
        broker,
    };
    // Every input is read before the output is opened: a bad input leaves it untouched.
    let worklist = authport_engine::reconnect::worklist(
        importer.clone(),
        &state,
        &options,
        event_view(&args.state, &setup)?.as_ref(),
        &args.input,
        &reconnect,
    )
    .await?;
    // The worklist holds owners' names and emails (and links): a private file.
    let mut stdout = std::io::stdout().lock();
    let out = match &args.output {
        Some(path) => Destination::File(authport_engine::files::create_private("worklist", path)?),
        None => Destination::Writer(&mut stdout),
    };
    let summary = authport_engine::reconnect::write_worklist(
        importer.as_ref(),
        &state,
        &options,
        &reconnect,
        worklist,
        out,
    )
    .await?;
    drop(stdout);
    if !quiet {
        eprintln!("{}", summary.human());
    }
    Ok(if summary.link_errors > 0 {
        Exit::SomeFailed
    } else {
        Exit::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17 item 11. Tests have no terminal to run the binary on, so the decision is
    /// checked here; `reconnect` calls it with `stdout().is_terminal()` before anything else.
    #[test]
    fn links_are_refused_on_a_terminal_unless_an_output_file_is_given() {
        let cases = [
            // (links, --output, stdout is a terminal) -> refused
            ((true, false, true), true),
            ((true, true, true), false),
            ((true, false, false), false),
            ((false, false, true), false),
            ((false, true, false), false),
        ];
        for ((links, output, terminal), refused) in cases {
            let result = refuse_links_on_a_terminal(links, output, terminal);
            assert_eq!(result.is_err(), refused, "{links} {output} {terminal}");
            if let Err(refusal) = result {
                assert!(refusal.0.contains("--output"), "{refusal}");
            }
        }
    }
}
