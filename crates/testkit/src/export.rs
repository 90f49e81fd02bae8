//! An export sink that keeps what an exporter hands out, for exporter tests.

use async_trait::async_trait;
use authport_core::{CredentialRecord, ExportSink, ProviderError};

/// Collects the records and the per-object failures of one export.
#[derive(Debug, Default)]
pub struct Collected {
    pub records: Vec<CredentialRecord>,
    pub failures: Vec<(String, ProviderError)>,
}

#[async_trait]
impl ExportSink for Collected {
    async fn record(&mut self, record: CredentialRecord) -> Result<(), ProviderError> {
        self.records.push(record);
        Ok(())
    }

    async fn failed(&mut self, source_id: &str, error: ProviderError) -> Result<(), ProviderError> {
        self.failures.push((source_id.to_owned(), error));
        Ok(())
    }
}
