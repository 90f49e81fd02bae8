//! `authport migrate --from SOURCE --to TARGET`: the flags, the `[migrate]` section, the two
//! providers built from the config, and one call to `authport_engine::migrate` (the export
//! thread, the in-memory pipe and the import: see there).
//!
//! Service names: each record's `service` is the canonical slug the target's defaults tables
//! read (Apideck's service → unified API, Nango's integration by provider). `[migrate.services]`
//! renames a source's service name to the slug for one run; the target's own section
//! (`[apideck.services.<slug>]`, `[nango]`) picks the target details as for `import`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use authport_core::{ExportFilter, InMemoryMemo};
use authport_engine::{Cutover, EngineError, Exit, ImportOptions, Migration, RateChoice};
use clap::Args;
use serde::Deserialize;

use crate::cli::{
    Format, ProviderArgs, parse_budget_share, parse_concurrency, parse_rate, parse_rate_arg,
};
use crate::config::ConfigFile;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Provider to export from (`authport providers` lists those that can).
    #[arg(long, value_name = "NAME")]
    pub from: String,
    /// Provider to import into.
    #[arg(long, value_name = "NAME")]
    pub to: String,
    /// Only this owner's authentications (the end user's id); repeat for several.
    #[arg(long = "owner", value_name = "ID")]
    pub owners: Vec<String>,
    /// TOML config file: `[engine]`, one section per provider, and `[migrate]` (service
    /// renames, the source's rate).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Start the bundled sandbox in-process and point both providers at it.
    #[arg(long)]
    pub sandbox: bool,
    /// The target's state file (journal): makes the run resumable and re-runs idempotent.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Per-source-object report (JSON Lines); default: stdout.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Read the source and map for the target, but send the target no write.
    #[arg(long)]
    pub dry_run: bool,
    /// Records in flight at once at the target, 1 to 1024 (default: the target's).
    #[arg(long, value_name = "N", value_parser = parse_concurrency)]
    pub concurrency: Option<u32>,
    /// The target's requests per second, as `import --rate` (`0` for no limit, or `auto`).
    #[arg(long, value_name = "R/s|auto", value_parser = parse_rate_arg)]
    pub rate: Option<RateChoice>,
    /// Spend at most this share of the target's rate budget, as `import --budget-share`
    /// (above 0, at most 1; the source's reads are paced by `--source-rate` alone).
    /// Default: `[engine] budget_share`, else 1.
    #[arg(long, value_name = "F", value_parser = parse_budget_share)]
    pub budget_share: Option<f64>,
    /// The source's requests per second (default: its documented limit; `0` for no limit).
    #[arg(long, value_name = "R/s", value_parser = parse_rate)]
    pub source_rate: Option<f64>,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// After the import, re-read every migrated record from the source (no forced refresh) and
    /// import what the source refreshed meanwhile, up to 3 passes: each record's hand-over is
    /// `complete`, `reimported` or `unstable` (see docs/cutover.md).
    #[arg(long, conflicts_with = "dry_run")]
    pub cutover: bool,
    /// With `--cutover`: delete each source connection whose hand-over is complete, so only
    /// the target refreshes it. Irreversible: needs `--yes`.
    #[arg(long, requires = "cutover")]
    pub retire_source: bool,
    /// Confirms `--retire-source` (a retired source cannot be rolled back).
    #[arg(long)]
    pub yes: bool,
    /// Use a state file made for another target anyway, as `import --allow-target-change`.
    #[arg(long)]
    pub allow_target_change: bool,
    /// Import every record even when several hold one OAuth grant, as
    /// `import --allow-shared-grants`.
    #[arg(long)]
    pub allow_shared_grants: bool,
    /// Fail records short of the target's scopes, as `import --require-scopes`.
    #[arg(long)]
    pub require_scopes: bool,
}

/// Why `--retire-source` needs `--yes`.
const RETIRE_NEEDS_YES: &str = "--retire-source deletes each handed-over connection at the source, and rollback cannot bring it back (authport keeps no secret); add --yes to confirm";

/// The config file's `[migrate]` section.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct MigrateSection {
    /// Source service name → canonical service slug.
    #[serde(default)]
    services: BTreeMap<String, String>,
    /// The source's requests per second (`0`: no limit).
    source_rate: Option<f64>,
}

fn section_of(config: &ConfigFile, name: &str) -> anyhow::Result<MigrateSection> {
    match config.section("migrate") {
        serde_json::Value::Null => Ok(MigrateSection::default()),
        value => {
            let section: MigrateSection = crate::config::typed_section(
                name,
                "migrate",
                &value,
                crate::config::MIGRATE_SETTINGS,
            )?;
            if let Some(rate) = section.source_rate {
                crate::cli::rules::rate(rate).map_err(|message| {
                    anyhow::anyhow!("{name}: [migrate] source_rate {message}")
                })?;
            }
            Ok(section)
        }
    }
}

/// The config file, which may also hold `[migrate]`.
fn load_config(path: Option<&Path>) -> anyhow::Result<(ConfigFile, MigrateSection)> {
    let Some(path) = path else {
        return Ok((ConfigFile::default(), MigrateSection::default()));
    };
    let mut names = authport_core::provider_names();
    names.push("migrate");
    let config = ConfigFile::load(path, &names)?;
    let section = section_of(&config, &path.display().to_string())?;
    Ok((config, section))
}

pub async fn migrate(args: MigrateArgs, quiet: bool) -> Result<Exit, EngineError> {
    if args.from == args.to {
        return Err(EngineError::usage(format!(
            "--from and --to name the same provider ({}): migrate moves auths between platforms",
            args.to
        )));
    }
    if args.retire_source && !args.yes {
        return Err(EngineError::usage(RETIRE_NEEDS_YES));
    }
    let (source, capability) = authport_engine::export::source(&args.from)?;
    let (config, section) = load_config(args.config.as_deref()).map_err(EngineError::Usage)?;
    let target_args = ProviderArgs {
        provider: args.to.clone(),
        config: None,
        sandbox: args.sandbox,
        format: args.format,
        allow_target_change: args.allow_target_change,
    };
    let mut setup = crate::provider_setup_for(
        &target_args,
        crate::sandbox_mode::SandboxData::for_run(args.state.as_deref()),
    )
    .await?;
    setup.config = config;

    // The source, paced at its own documented rate (the target's limit is the import's).
    let source_rate = args
        .source_rate
        .or(section.source_rate)
        .map_or(RateChoice::VendorDefault, crate::cli::rate_choice);
    let source_gate = authport_engine::export::source_gate(&source.limits, source_rate);
    let context = setup.config.build_context(
        source.name,
        &setup.env,
        Arc::new(InMemoryMemo::default()),
        source_gate.clone(),
    );
    let exporter = authport_engine::export::build(source, capability, &context)?;

    // The input is an in-memory pipe: no input file to protect.
    let state = crate::run_state(
        args.state.as_deref(),
        args.report.as_deref(),
        None,
        &setup.config,
    )?;
    let report = crate::report_path(args.report.as_deref());
    let filter = ExportFilter {
        owners: args.owners.clone(),
    };
    let mut migration = Migration::new(
        source.name,
        exporter,
        filter,
        section.services,
        quiet,
        &source_gate,
    );
    if args.cutover {
        migration = migration.cutover(Cutover {
            retire_source: args.retire_source,
        });
    }
    let defaults = ImportOptions::new(setup.plugin.name, setup.plugin.limits, migration.input());
    let importer = crate::build_importer(&setup, &state, &defaults.gate)?;
    let options = crate::run_options(
        defaults,
        &setup,
        &state,
        crate::RunFlags {
            concurrency: args.concurrency,
            rate: args.rate,
            budget_share: args.budget_share,
            json: args.format == crate::cli::Format::Json,
            dry_run: args.dry_run,
            allow_target_change: args.allow_target_change,
            allow_shared_grants: args.allow_shared_grants,
            require_scopes: args.require_scopes,
            report: report.clone(),
            quiet,
        },
    );
    let summary = authport_engine::migrate(
        migration,
        importer,
        &state,
        options,
        crate::shutdown_signal(),
    )
    .await?;
    crate::publish_owned(&state, &setup);
    Ok(crate::finish(
        "migrate",
        &summary,
        args.format,
        crate::report_is_stdout(&report),
        quiet,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrate_section_renames_services_and_checks_the_rate() {
        let names = ["apideck", "nango", "tray", "migrate"];
        let text = "[migrate]\nsource_rate = 5\n[migrate.services]\nhubspot-v3 = \"hubspot\"\n";
        let config = ConfigFile::parse(text, "c.toml", &names).unwrap();
        let section = section_of(&config, "c.toml").unwrap();
        assert_eq!(section.services["hubspot-v3"], "hubspot");
        assert_eq!(section.source_rate, Some(5.0));
        let bad = ConfigFile::parse("[migrate]\nsource_rate = -1\n", "c.toml", &names).unwrap();
        let error = section_of(&bad, "c.toml").unwrap_err().to_string();
        assert!(error.contains("source_rate"), "{error}");
        let typo = ConfigFile::parse("[migrate]\nservice = 1\n", "c.toml", &names).unwrap();
        assert!(section_of(&typo, "c.toml").is_err());
        assert_eq!(
            section_of(&ConfigFile::default(), "c.toml").unwrap(),
            MigrateSection::default()
        );
    }
}
