//! The client binding counts of a run (issue 19): how many records the target can refresh as
//! far as authport can tell, and how many it cannot or may not. Read from the report lines
//! alone: the providers' `client_mismatch` failures and their `client binding unknown` and
//! `scope_deficit` warnings ([`authport_core::CLIENT_BINDING_UNKNOWN`],
//! [`authport_core::SCOPE_DEFICIT`]).

use authport_core::{CLIENT_BINDING_UNKNOWN, ErrorKind, ReportLine, SCOPE_DEFICIT, Status};
use serde_json::{Value, json};

/// Per finding, the records that had it. A record both unknown and short of scopes counts in
/// both; `portable` counts records written or planned with neither (a record that is not an
/// OAuth grant is bound to no client, so it is portable).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BindingCounts {
    pub portable: u64,
    pub client_mismatch: u64,
    pub scope_deficit: u64,
    pub unknown: u64,
}

impl BindingCounts {
    pub fn add(&mut self, line: &ReportLine) {
        if line.error.as_ref().map(|e| e.kind) == Some(ErrorKind::ClientMismatch) {
            self.client_mismatch += 1;
            return;
        }
        let has = |word: &str| line.warnings.iter().any(|w| w.starts_with(word));
        let deficit = has(SCOPE_DEFICIT);
        let unknown = has(CLIENT_BINDING_UNKNOWN);
        self.scope_deficit += u64::from(deficit);
        self.unknown += u64::from(unknown);
        let written = matches!(
            line.status,
            Status::Imported | Status::Updated | Status::Unchanged | Status::Planned
        );
        self.portable += u64::from(written && !deficit && !unknown);
    }

    /// Whether anything is worth a line in the human summary.
    pub fn has_findings(&self) -> bool {
        self.client_mismatch + self.scope_deficit + self.unknown > 0
    }

    pub fn to_json(self) -> Value {
        json!({
            "portable": self.portable,
            "client_mismatch": self.client_mismatch,
            "scope_deficit": self.scope_deficit,
            "unknown": self.unknown,
        })
    }

    /// `client binding: portable 3, client_mismatch 1, scope_deficit 0, unknown 2`.
    pub fn human(&self) -> String {
        format!(
            "client binding: portable {}, client_mismatch {}, scope_deficit {}, unknown {}\n",
            self.portable, self.client_mismatch, self.scope_deficit, self.unknown
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_finding_counts_once_per_record() {
        let mut counts = BindingCounts::default();
        let mut portable = ReportLine::new(Some("a".into()), 1, Status::Imported);
        portable.warnings.push("expiry omitted".into());
        counts.add(&portable);
        let mut both = ReportLine::new(Some("b".into()), 2, Status::Planned);
        both.warnings
            .push(format!("{CLIENT_BINDING_UNKNOWN}: no client_id"));
        both.warnings.push(format!("{SCOPE_DEFICIT}: lacks x"));
        counts.add(&both);
        let mismatch = ReportLine::new(Some("c".into()), 3, Status::Failed)
            .with_error(ErrorKind::ClientMismatch, "auth.client_id: ...");
        counts.add(&mismatch);
        let failed = ReportLine::new(Some("d".into()), 4, Status::Failed)
            .with_error(ErrorKind::Rejected, "no");
        counts.add(&failed);
        assert_eq!(
            counts,
            BindingCounts {
                portable: 1,
                client_mismatch: 1,
                scope_deficit: 1,
                unknown: 1
            }
        );
        assert!(counts.has_findings());
    }
}
