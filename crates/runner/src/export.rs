//! `authport export`: the flags, the exporter built from its config, and one call to
//! `authport_engine::export` (which holds the file rules: created 0600, never through a
//! symbolic link, never over an existing file without `--force`, never on a terminal).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use authport_core::{BuildContext, EnvSnapshot, InMemoryMemo, ProviderPlugin};
use authport_engine::export::ExportOptions;
use authport_engine::{EngineError, Exit, RateChoice, RunGate};
use clap::Args;

use crate::cli::Format;
use crate::config::ConfigFile;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Provider to export from (`authport providers` lists those that can).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub provider: String,
    /// TOML config file: `[engine]` defaults and one section per provider.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only this owner's authentications (the end user's id); repeat for several.
    #[arg(long = "owner", value_name = "ID")]
    pub owners: Vec<String>,
    /// Where the records go (JSON Lines, with secrets): a new file, created 0600, or `-` for
    /// stdout when it is a pipe or a file. Never a terminal.
    #[arg(long, short = 'o', value_name = "FILE|-", default_value = "-")]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Summary format: `json` prints the one summary shape every command shares (on stdout,
    /// or on stderr when the records go to stdout, so a pipe stays records only).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// The config file (when given) and a provider's build context for a command that keeps no
/// state (`export`, `targets`): its config section, the environment, a memo in memory, and a
/// gate at the provider's documented rate, or `[engine] rate`, for every request it sends.
pub(crate) fn stateless_context(
    provider: &ProviderPlugin,
    config_path: Option<&Path>,
) -> anyhow::Result<(ConfigFile, BuildContext)> {
    stateless(provider, config_path).map(|(config, context, _gate)| (config, context))
}

/// [`stateless_context`] and the gate in it.
fn stateless(
    provider: &ProviderPlugin,
    config_path: Option<&Path>,
) -> anyhow::Result<(ConfigFile, BuildContext, Arc<RunGate>)> {
    let names = authport_core::provider_names();
    let config = match config_path {
        Some(path) => ConfigFile::load(path, &names)?,
        None => ConfigFile::default(),
    };
    let rate = config
        .engine
        .rate
        .map_or(RateChoice::VendorDefault, crate::cli::rate_choice);
    let gate = authport_engine::export::source_gate(&provider.limits, rate);
    let context = config.build_context(
        provider.name,
        &EnvSnapshot::from_process(),
        Arc::new(InMemoryMemo::default()),
        gate.clone(),
    );
    Ok((config, context, gate))
}

pub async fn export(args: ExportArgs, quiet: bool) -> Result<Exit, EngineError> {
    let (provider, capability) = authport_engine::export::source(&args.provider)?;
    let (config, context, gate) =
        stateless(provider, args.config.as_deref()).map_err(EngineError::Usage)?;
    let exporter = authport_engine::export::build(provider, capability, &context)?;
    // After every check that needs no file, so a refused configuration leaves none behind;
    // never over the config file it read, even with --force.
    crate::ReadFiles::default()
        .config(&config)
        .refuse_outputs(&[("--output", Some(&args.output))])?;
    let options = ExportOptions {
        provider: provider.name.to_owned(),
        owners: args.owners,
        output: args.output,
        force: args.force,
        quiet,
        gate,
    };
    let summary =
        authport_engine::export::export(exporter.as_ref(), &options, crate::interrupted()).await?;
    // One summary for every ending, so `--format json` is never silently ignored.
    Ok(crate::summary_out::print_summary(
        crate::summary_out::Summary {
            command: "export",
            human: summary.human(),
            fields: summary.to_json(),
            exit: summary.exit_code(),
        },
        args.format,
        if options.output == Path::new("-") {
            crate::summary_out::Stdout::Records
        } else {
            // The text summary stays on stderr beside the secrets warning, as it always has;
            // the JSON one is stdout's only line.
            crate::summary_out::Stdout::RecordLines
        },
        quiet,
    )?)
}

#[cfg(test)]
mod tests {
    #[rustfmt::skip]
    #[test]
    fn registry_lists_every_exporter() {
        let names = authport_core::names_with(|c| c.export);
        assert_eq!(names, vec!["nango", "tray"]);
    }
}
