//! An export sink that keeps what an exporter hands out, for exporter tests, and the read
//! retry it hands the exporter (the engine's stand-in: tries again at once, never sleeps).

use std::fmt;

use async_trait::async_trait;
use authport_core::{CredentialRecord, ExportSink, ProviderError, ReadFuture, ReadRetry};

/// Collects the records and the per-object failures of one export.
pub struct Collected {
    pub records: Vec<CredentialRecord>,
    pub failures: Vec<(String, ProviderError)>,
    reads: Attempts,
}

impl Default for Collected {
    /// Reads tried up to 3 times each.
    fn default() -> Self {
        Self::with_reads(Attempts(3))
    }
}

impl Collected {
    /// A sink whose exporter tries each read as `reads` says (`Attempts(1)`: once, so a
    /// failure reaches the sink or the export's error unretried).
    pub fn with_reads(reads: Attempts) -> Self {
        Self {
            records: Vec::new(),
            failures: Vec::new(),
            reads,
        }
    }
}

impl fmt::Debug for Collected {
    // Records' and errors' own Debug is allow-list / scrubbed; ids and kinds only here.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collected")
            .field("records", &self.records)
            .field("failures", &self.failures)
            .field("reads", &self.reads)
            .finish()
    }
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

    fn reads(&self) -> &dyn ReadRetry {
        &self.reads
    }
}

/// Tries a read up to this many times (at least once), again at once after a failure that may
/// pass (`is_retryable`), never after a refusal. No backoff: a test waits for nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts(pub u32);

impl ReadRetry for Attempts {
    fn read<'a>(
        &'a self,
        call: &'a mut (dyn FnMut() -> ReadFuture<'a> + Send + 'a),
    ) -> ReadFuture<'a> {
        Box::pin(async move {
            let mut tries = 1;
            loop {
                match call().await {
                    Ok(()) => return Ok(()),
                    Err(error) if error.is_retryable() && tries < self.0 => tries += 1,
                    Err(error) => return Err(error),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn tries(attempts: u32, failures: u32, error: ProviderError) -> (u32, bool) {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let result = authport_core::retry_read(&Attempts(attempts), || {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let error = error.clone();
            async move { if n < failures { Err(error) } else { Ok(()) } }
        })
        .await;
        (calls.into_inner(), result.is_ok())
    }

    #[tokio::test]
    async fn failures_that_may_pass_are_tried_again_refusals_are_not() {
        let transient = ProviderError::transient("503");
        assert_eq!(tries(3, 2, transient.clone()).await, (3, true));
        assert_eq!(tries(3, 3, transient.clone()).await, (3, false));
        assert_eq!(tries(1, 1, transient).await, (1, false));
        assert_eq!(
            tries(3, 1, ProviderError::rejected("404")).await,
            (1, false)
        );
    }
}
