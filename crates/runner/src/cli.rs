//! The command line, as clap derive types. Doc comments are the help text.

use std::path::PathBuf;

use authport_engine::RateChoice;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Move end users' existing third-party authentications (OAuth2 tokens, API keys, basic
/// credentials) into embedded-integration platforms, so nobody has to connect an account again.
///
/// Secrets are read from the input file, the config file or the environment, never from
/// arguments. Results go to stdout, logs and progress to stderr.
#[derive(Debug, Parser)]
#[command(
    name = "authport",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr, no progress bar.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Fills the command's `--config` when it was not given: `AUTHPORT_CONFIG`, else
    /// `./authport.toml` if it exists (`crate::config::discover`). `config show` resolves its
    /// own, to say where the file came from.
    pub fn discover_config(&mut self) {
        let slot = match &mut self.command {
            Command::Import(args) => &mut args.provider.config,
            Command::Verify(args) | Command::Rollback(args) => &mut args.provider.config,
            Command::Status(args) => &mut args.provider.config,
            Command::Reconnect(args) => &mut args.config,
            Command::Export(args) => &mut args.config,
            Command::Migrate(args) => &mut args.config,
            Command::Webhooks(args) => &mut args.config,
            Command::Links(crate::links::LinksCommand::Serve(args)) => &mut args.config,
            Command::Targets(args) => &mut args.config,
            _ => return,
        };
        let (path, source) = crate::config::discover(slot.take());
        if let (Some(path), Some(from)) = (&path, source.discovered()) {
            tracing::info!("using the config file {} ({from})", path.display());
        }
        *slot = path;
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the registered providers.
    #[command(after_help = examples::PROVIDERS)]
    Providers {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check an input file against the record format, offline (no provider, no network).
    #[command(after_help = examples::VALIDATE)]
    Validate {
        /// Input file: JSON Lines (one record per line) or a JSON array; `-` reads stdin.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Write the per-record report (JSON Lines) here instead of stdout.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Summary format on stdout (when --report is given).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Do not report records sharing one OAuth grant (as `import --allow-shared-grants`).
        #[arg(long)]
        allow_shared_grants: bool,
    },
    /// Import every record of the input into a provider.
    #[command(after_help = examples::IMPORT)]
    Import(ImportArgs),
    /// Read back what a run imported, from its state file, and report the live status.
    #[command(after_help = examples::VERIFY)]
    Verify(StateArgs),
    /// Remove what a run created (never objects that existed before it), from its state file.
    #[command(after_help = examples::ROLLBACK)]
    Rollback(StateArgs),
    /// The migration's health after the import, one line per record: healthy,
    /// pending_refresh, refresh_failed, revoked, deleted, missing, not_imported or rolled_back.
    /// Exit 0 when every record still imported is healthy or pending_refresh (5 otherwise).
    #[command(after_help = examples::STATUS)]
    Status(crate::status::StatusArgs),
    /// The worklist of end users who must connect again (JSON Lines or CSV), with reconnect
    /// links on request.
    #[command(after_help = examples::RECONNECT)]
    Reconnect(crate::status::ReconnectArgs),
    /// Export a provider's end-user authentications as v1 records, secrets included, to a
    /// private file (0600) or a pipe; never to a terminal.
    #[command(after_help = examples::EXPORT)]
    Export(crate::export::ExportArgs),
    /// Move end users' auths from one platform to another (export → import in memory: no
    /// secret touches the disk); resumable with the target's --state like `import`.
    #[command(after_help = examples::MIGRATE)]
    Migrate(crate::migrate::MigrateArgs),
    /// Receive a provider's webhooks (Apideck Vault events) and keep what they say about this
    /// migration's connections beside its state file, until SIGTERM or Ctrl-C.
    #[command(after_help = examples::WEBHOOKS)]
    Webhooks(crate::webhooks::WebhooksArgs),
    /// Durable reconnect links (`reconnect --links --broker URL`): serve their pages and mint
    /// the vendor's link when the person presses Reconnect, or revoke an owner's links.
    #[command(subcommand, after_help = crate::links::examples::LINKS)]
    Links(crate::links::LinksCommand),
    /// Run the bundled sandbox (local Tray, Apideck and Nango emulators) until Ctrl-C.
    ///
    /// Prints the environment that points authport at it: each vendor's URL and fake
    /// credentials, and Tray's TRAY_EMBEDDED_ID and TRAY_AUTH_DIALOG_URL for `reconnect --links`.
    #[command(after_help = examples::SANDBOX)]
    Sandbox {
        /// Address to listen on; loopback only.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: std::net::SocketAddr,
        /// Enforce Tray's documented rate limit (30 req/s, burst 50).
        #[arg(long)]
        tray_rate_limit: bool,
    },
    /// What a target offers that records and errors ask you to name, read live: Tray's
    /// services (with --service, that service's environments), Apideck's connectors, Nango's
    /// integrations.
    #[command(after_help = examples::TARGETS)]
    Targets(TargetsArgs),
    /// The configuration a command would use: the file (`--config`, else `AUTHPORT_CONFIG`,
    /// else `./authport.toml`) and the environment that overrides it, secrets redacted.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script to stdout.
    #[command(after_help = examples::COMPLETIONS)]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (authport.1 and one per command) into a directory; run by
    /// `cargo xtask man`.
    #[command(hide = true)]
    Man {
        /// Directory to write the pages into (created if missing).
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct TargetsArgs {
    /// Provider name (see `authport providers`).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub provider: String,
    /// Only what serves this service (a record's `service` slug, or the vendor's own id).
    #[arg(long, value_name = "SLUG")]
    pub service: Option<String>,
    /// TOML config file (default: `AUTHPORT_CONFIG`, else `./authport.toml` if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output: aligned text, or JSON Lines (one object per offer).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration: where the file came from, `[engine]`, each section
    /// and the environment variables that override it; secrets are never printed.
    #[command(after_help = examples::CONFIG_SHOW)]
    Show(ConfigShowArgs),
}

#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    /// TOML config file (default: `AUTHPORT_CONFIG`, else `./authport.toml` if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProviderArgs {
    /// Provider name (see `authport providers`).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub provider: String,
    /// TOML config file: `[engine]` defaults and one section per provider (default:
    /// `AUTHPORT_CONFIG`, else `./authport.toml` if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Start the bundled sandbox in-process and point the provider at it (no account needed).
    /// With --state FILE its data is kept in FILE.sandbox.json, so later commands on that state
    /// meet the same sandbox; without a state it is gone when the command ends.
    #[arg(long)]
    pub sandbox: bool,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Use a state file made for another target (provider, endpoint or account) anyway, and
    /// bind it to this one. Without it such a state is refused (exit 2).
    #[arg(long)]
    pub allow_target_change: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub provider: ProviderArgs,
    /// Input file: JSON Lines (one record per line) or a JSON array; `-` reads stdin (e.g. an
    /// export piped from a database). Read once.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Only discover and map: write the plan (secrets redacted), send no write.
    #[arg(long)]
    pub dry_run: bool,
    /// State file (journal): makes the run resumable and re-runs idempotent.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Per-record report (JSON Lines); default: stdout.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Records in flight at once, 1 to 1024 (default: the provider's).
    #[arg(long, value_name = "N", value_parser = parse_concurrency)]
    pub concurrency: Option<u32>,
    /// Requests per second at most, e.g. `30` or `30/s`; `0` for no limit; `auto` to find the
    /// rate the target accepts (up to `[engine] rate_ceiling`). Default: the vendor's
    /// documented limit, or `auto` for vendors that document none (Apideck).
    #[arg(long, value_name = "R/s|auto", value_parser = parse_rate_arg)]
    pub rate: Option<RateChoice>,
    /// Spend at most this share of the vendor's rate budget, above 0 and at most 1, leaving the
    /// rest to the account's live traffic. Where the vendor sends its window's budget (Nango)
    /// a reserve of (1 - F) of each window is kept; elsewhere the documented rate (or auto's
    /// ceiling) is scaled by F, and `--rate N` becomes min(N, F x the vendor's rate).
    /// Default: `[engine] budget_share`, else 1.
    #[arg(long, value_name = "F", value_parser = parse_budget_share)]
    pub budget_share: Option<f64>,
    /// Import every record even when several hold one OAuth grant (the same refresh token, or
    /// access token without one); by default only the first is, the others fail
    /// `shared_grant`. Safe only where the provider does not rotate refresh tokens.
    /// Default: `[engine] allow_shared_grants`, else off.
    #[arg(long)]
    pub allow_shared_grants: bool,
    /// Fail a record whose grant lacks scopes the target asks for (`scope_deficit`), instead
    /// of importing it with a warning. The target's scopes: Nango's integration, Tray's service
    /// environment, or `[<provider>.oauth_scopes]`.
    #[arg(long)]
    pub require_scopes: bool,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(flatten)]
    pub provider: ProviderArgs,
    /// The state file of the import run.
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// Per-record report (JSON Lines); default: stdout.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Objects read (verify) or removed (rollback) at once, 1 to 1024 (default: the
    /// provider's, as for import), within the vendor's rate.
    #[arg(long, value_name = "N", value_parser = parse_concurrency)]
    pub concurrency: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The rules every run setting follows, wherever it comes from (flag or `[engine]`): one
/// function per setting, one message each (the caller names the setting; no value is quoted).
pub mod rules {
    pub const MAX_CONCURRENCY: u32 = 1024;
    pub const MAX_ATTEMPTS: u32 = 100;
    /// A year: longer deadlines are a mistake, and far larger ones overflow the clock.
    pub const MAX_DEADLINE_SECS: u64 = 365 * 24 * 3600;
    pub const MAX_REQUEST_TIMEOUT_SECS: u64 = 3600;

    pub fn concurrency(value: u32) -> Result<u32, String> {
        in_range(value, 1, MAX_CONCURRENCY, "records in flight")
    }

    /// Requests per second: a finite number, `0` for no limit.
    pub fn rate(value: f64) -> Result<f64, String> {
        if value.is_finite() && value >= 0.0 {
            Ok(value)
        } else {
            Err("must be requests per second, e.g. 30 or 30/s (0 for no limit)".to_owned())
        }
    }

    /// `--budget-share`: a share of the vendor's budget, above 0 and at most 1.
    pub fn budget_share(value: f64) -> Result<f64, String> {
        if value.is_finite() && value > 0.0 && value <= 1.0 {
            Ok(value)
        } else {
            Err("must be a share above 0 and at most 1, e.g. 0.3".to_owned())
        }
    }

    /// The ceiling of `--rate auto`: a finite number above zero.
    pub fn rate_ceiling(value: f64) -> Result<f64, String> {
        if value.is_finite() && value > 0.0 {
            Ok(value)
        } else {
            Err("must be requests per second above 0, e.g. 50".to_owned())
        }
    }

    pub fn max_attempts(value: u32) -> Result<u32, String> {
        in_range(value, 1, MAX_ATTEMPTS, "calls of one kind per record")
    }

    pub fn deadline_secs(value: u64) -> Result<u64, String> {
        in_range(value, 1, MAX_DEADLINE_SECS, "seconds")
    }

    pub fn request_timeout_secs(value: u64) -> Result<u64, String> {
        in_range(value, 1, MAX_REQUEST_TIMEOUT_SECS, "seconds")
    }

    fn in_range<T: PartialOrd + std::fmt::Display>(
        value: T,
        low: T,
        high: T,
        unit: &str,
    ) -> Result<T, String> {
        if low <= value && value <= high {
            Ok(value)
        } else {
            Err(format!(
                "must be a whole number of {unit} from {low} to {high}"
            ))
        }
    }
}

/// Parses `--budget-share`.
pub fn parse_budget_share(text: &str) -> Result<f64, String> {
    // Not a number: NaN, which the rule refuses with its message.
    rules::budget_share(text.trim().parse::<f64>().unwrap_or(f64::NAN))
}

/// Parses `--concurrency`.
pub fn parse_concurrency(text: &str) -> Result<u32, String> {
    // Not a number: 0, which the rule refuses with its message.
    rules::concurrency(text.trim().parse::<u32>().unwrap_or(0))
}

/// Parses `--rate`: `auto` (under `[engine] rate_ceiling`), or a rate for [`parse_rate`].
pub fn parse_rate_arg(text: &str) -> Result<RateChoice, String> {
    if text.trim() == "auto" {
        return Ok(RateChoice::Auto { ceiling: None });
    }
    parse_rate(text).map(rate_choice).map_err(|_| {
        "must be requests per second, e.g. 30 or 30/s (0 for no limit), or auto".to_owned()
    })
}

/// A checked rate ([`rules::rate`]) as the engine's choice: `0` is no limit.
pub fn rate_choice(per_second: f64) -> RateChoice {
    if per_second == 0.0 {
        RateChoice::Unlimited
    } else {
        RateChoice::Fixed {
            per_second,
            burst: None,
        }
    }
}

/// Parses `30`, `30/s` or `2.5/s` into requests per second; `0` means no limit.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().strip_suffix("/s").unwrap_or(text.trim());
    // Not a number: NaN, which the rule refuses with its message.
    rules::rate(number.parse::<f64>().unwrap_or(f64::NAN))
}

/// The examples at the end of each command's `--help`: the two or three invocations a new
/// user needs first, with flags that exist (`help_examples_run` parses every one).
pub mod examples {
    pub const PROVIDERS: &str = "\
Examples:
  authport providers
  authport providers --format json";

    pub const VALIDATE: &str = "\
Examples:
  authport validate --input auths.jsonl
  authport validate --input auths.json --report problems.jsonl --format json
  pg-export | authport validate --input -";

    pub const IMPORT: &str = "\
Examples:
  authport import --provider tray --sandbox --input auths.jsonl --state run.db
  authport import -p apideck --input auths.jsonl --state run.db --report report.jsonl
  authport import -p nango --input auths.jsonl --dry-run --report plan.jsonl";

    pub const VERIFY: &str = "\
Examples:
  authport verify --provider tray --state run.db
  authport verify -p apideck --state run.db --report verify.jsonl --format json";

    pub const ROLLBACK: &str = "\
Examples:
  authport rollback --provider tray --state run.db
  authport rollback -p nango --state run.db --report rollback.jsonl";

    pub const STATUS: &str = "\
Examples:
  authport status --provider tray --state run.db
  authport status -p apideck --state run.db --input auths.jsonl --report status.jsonl
  authport status -p apideck --state run.db --input auths.jsonl --html status.html";

    pub const RECONNECT: &str = "\
Examples:
  authport reconnect -p tray --state run.db --input auths.jsonl --format csv --output todo.csv
  authport reconnect -p apideck --state run.db --input auths.jsonl --links --output links.jsonl
  authport reconnect -p tray --state run.db --input auths.jsonl --links --broker https://links.example.com --link-ttl 14d --output links.csv";

    pub const EXPORT: &str = "\
Examples:
  authport export --provider tray --output tray-auths.jsonl
  authport export -p nango --owner user-42 --output user-42.jsonl
  authport export -p tray | authport import -p nango --input - --state run.db";

    pub const MIGRATE: &str = "\
Examples:
  authport migrate --from tray --to nango --state run.db --dry-run
  authport migrate --from tray --to apideck --state run.db --report report.jsonl
  authport migrate --from nango --to tray --owner user-42 --state run.db";

    pub const WEBHOOKS: &str = "\
Examples:
  authport webhooks --provider apideck --listen 127.0.0.1:8088 --state run.db";

    pub const SANDBOX: &str = "\
Examples:
  authport sandbox
  authport sandbox --listen 127.0.0.1:9000 --tray-rate-limit";

    pub const TARGETS: &str = "\
Examples:
  authport targets --provider nango
  authport targets -p tray --service slack
  authport targets -p apideck --service hubspot --format json";

    pub const CONFIG_SHOW: &str = "\
Examples:
  authport config show
  authport config show --config prod.toml
  AUTHPORT_CONFIG=prod.toml authport config show";

    /// Every block, for the test that parses each example.
    #[cfg(test)]
    pub const ALL: &[&str] = &[
        PROVIDERS,
        VALIDATE,
        IMPORT,
        VERIFY,
        ROLLBACK,
        STATUS,
        RECONNECT,
        EXPORT,
        MIGRATE,
        WEBHOOKS,
        crate::links::examples::SERVE,
        crate::links::examples::REVOKE,
        SANDBOX,
        TARGETS,
        CONFIG_SHOW,
        COMPLETIONS,
    ];

    pub const COMPLETIONS: &str = "\
Examples:
  authport completions bash > ~/.local/share/bash-completion/completions/authport
  authport completions zsh > ~/.zfunc/_authport
  authport completions fish > ~/.config/fish/completions/authport.fish";
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Each `authport …` in the examples (after an `X=y` prefix, between pipes, before a
    /// redirection) parses as the command line it shows.
    #[test]
    fn help_examples_parse() {
        let mut parsed = 0;
        for block in examples::ALL {
            for line in block.lines().filter(|line| line.starts_with("  ")) {
                for part in line.split('|') {
                    let words: Vec<&str> = part
                        .split_whitespace()
                        .skip_while(|word| word.contains('='))
                        .take_while(|word| *word != ">")
                        .collect();
                    if words.first() != Some(&"authport") {
                        continue;
                    }
                    if let Err(error) = Cli::try_parse_from(&words) {
                        panic!("example `{}` does not parse: {error}", words.join(" "));
                    }
                    parsed += 1;
                }
            }
        }
        assert!(parsed >= 30, "{parsed}");
    }

    #[test]
    fn rates_parse() {
        let check = |text: &str, expect: Result<f64, ()>| {
            assert_eq!(parse_rate(text).map_err(|_| ()), expect, "{text}");
        };
        check("30", Ok(30.0));
        check("30/s", Ok(30.0));
        check(" 2.5/s ", Ok(2.5));
        check("0", Ok(0.0));
        check("-1", Err(()));
        check("fast", Err(()));
        check("30/m", Err(()));
        check("nan", Err(()));
        check("inf/s", Err(()));
        assert_eq!(
            parse_rate_arg("auto"),
            Ok(RateChoice::Auto { ceiling: None })
        );
        assert_eq!(
            parse_rate_arg("30/s"),
            Ok(RateChoice::Fixed {
                per_second: 30.0,
                burst: None
            })
        );
        assert_eq!(parse_rate_arg("0"), Ok(RateChoice::Unlimited));
        assert!(parse_rate_arg("automatic").is_err());
        assert_eq!(rules::rate_ceiling(40.0), Ok(40.0));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(rules::rate_ceiling(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_budget_share("0.3"), Ok(0.3));
        assert_eq!(parse_budget_share(" 1 "), Ok(1.0));
        for bad in ["0", "1.01", "-0.3", "nan", "inf", "30%"] {
            assert_eq!(
                parse_budget_share(bad),
                Err("must be a share above 0 and at most 1, e.g. 0.3".to_owned()),
                "{bad}"
            );
        }
    }

    #[test]
    fn concurrency_parses_within_its_range() {
        assert_eq!(parse_concurrency("8"), Ok(8));
        assert_eq!(parse_concurrency("1024"), Ok(1024));
        for bad in ["0", "1025", "-1", "many", "99999999999"] {
            assert_eq!(
                parse_concurrency(bad),
                Err("must be a whole number of records in flight from 1 to 1024".to_owned()),
                "{bad}"
            );
        }
    }
}
