//! `authport targets --provider NAME [--service SLUG]`: what a target offers that records and
//! errors ask the operator to name, read live with the provider's own read calls (Tray's
//! services and, for one service, its environments; Apideck's connectors; Nango's
//! integrations). Read-only, paced at the provider's documented rate.

use std::io::Write;

use authport_engine::Exit;

use crate::cli::{Format, TargetsArgs};

pub async fn targets(args: TargetsArgs) -> anyhow::Result<Exit> {
    let provider =
        authport_core::find_provider(&args.provider).map_err(|e| crate::usage(e.into()))?;
    let catalog = authport_core::find_catalog(provider.name).map_err(|e| crate::usage(e.into()))?;
    let (_config, context) =
        crate::export::stateless_context(provider, args.config.as_deref()).map_err(crate::usage)?;
    let catalog = (catalog.build)(&context)
        .map_err(|e| crate::usage(anyhow::anyhow!("provider `{}`: {e}", provider.name)))?;
    let offers = catalog
        .offers(args.service.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("cannot list what {} offers: {e}", provider.name))?;
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        Format::Text => (|| {
            if offers.is_empty() {
                writeln!(out, "# {} offers nothing that matches", provider.name)?;
            }
            let width = offers.iter().map(|o| o.kind.len()).max().unwrap_or(0);
            for offer in &offers {
                writeln!(
                    out,
                    "{:<16} {:<width$}  {}  {}",
                    offer.service.as_deref().unwrap_or("-"),
                    offer.kind,
                    offer.name,
                    offer.detail
                )?;
            }
            Ok(())
        })(),
        Format::Json => offers.iter().try_for_each(|offer| {
            let line = serde_json::json!({"provider": provider.name, "service": offer.service,
                "kind": offer.kind, "name": offer.name, "detail": offer.detail});
            writeln!(out, "{line}")
        }),
    };
    crate::ignore_broken_pipe(written)?;
    Ok(Exit::Ok)
}
