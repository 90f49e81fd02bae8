//! The bulk pre-check: which `(consumer, service)` pairs already have a connection, from one
//! listing of `GET /vault/consumers` per run, so that only records whose consumer already holds
//! their service need the per-connection `GET` before the import.
//!
//! Safety comes first (the reasoning is in `docs/apideck.md`, "Pre-existing check"): every
//! doubt answers "check". A listing that fails, is cut short, repeats a cursor, names an item
//! without its id, or is too large to keep is not used at all; an item without `services`
//! marks its consumer as "check every service"; ids are compared trimmed and ignoring ASCII
//! case, and kept as keyed hashes, whose collisions can only add checks. The listing does not
//! know what this run imports after it: [`SentUnchecked`] remembers the pairs the run sent
//! without a check, so a second record for one of them is checked as before.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher as _, RandomState};
use std::sync::Mutex;

use authport_core::ProviderError;

use crate::client::VaultClient;
use crate::wire::ConsumerItem;

/// Consumers per page: vault.yml's maximum `limit`.
pub const PAGE_LIMIT: u32 = 200;

/// The most pairs (and unknown-services consumers) kept: about 20 MiB of hashes at most. A
/// larger application is not listed; its records are checked one by one, as without it.
pub const MAX_ENTRIES: usize = 1_000_000;

/// What one listing of the application's consumers says.
#[derive(Debug)]
pub struct ConsumerListing {
    hasher: RandomState,
    /// Keyed hashes of `(consumer, service)` pairs that have a connection.
    pairs: HashSet<u64>,
    /// Keyed hashes of consumers listed without `services`: every service is checked.
    unknown_services: HashSet<u64>,
}

impl Default for ConsumerListing {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            pairs: HashSet::new(),
            unknown_services: HashSet::new(),
        }
    }
}

/// Why a listing cannot be used (our words only: never a value from the answer).
pub type Unusable = String;

impl ConsumerListing {
    /// Adds one page's items.
    pub fn add_page(&mut self, items: &[ConsumerItem]) -> Result<(), Unusable> {
        for item in items {
            let Some(consumer_id) = item.consumer_id.as_deref() else {
                return Err("an item of the consumer list has no consumer_id".to_owned());
            };
            match &item.services {
                None => {
                    self.unknown_services.insert(self.hash(&[consumer_id]));
                }
                Some(services) => {
                    for service in services {
                        self.pairs.insert(self.hash(&[consumer_id, service]));
                    }
                }
            }
        }
        if self.pairs.len() + self.unknown_services.len() > MAX_ENTRIES {
            return Err(format!(
                "the consumer list holds more than {MAX_ENTRIES} connections"
            ));
        }
        Ok(())
    }

    /// Whether the import of `consumer_id`'s `service_id` connection must first read it:
    /// `false` only when the listing shows that consumer, with its services, without that one,
    /// or does not show the consumer at all.
    pub fn needs_check(&self, consumer_id: &str, service_id: &str) -> bool {
        self.listed(
            self.hash(&[consumer_id]),
            self.hash(&[consumer_id, service_id]),
        )
    }

    /// [`Self::needs_check`] of the hashed consumer and pair.
    fn listed(&self, consumer: u64, pair: u64) -> bool {
        self.unknown_services.contains(&consumer) || self.pairs.contains(&pair)
    }

    /// Whether the import of `consumer_id`'s `service_id` connection must first read it, and
    /// if not, remembers in `sent` that this run is about to create it.
    pub fn check_or_claim(
        &self,
        consumer_id: &str,
        service_id: &str,
        sent: &SentUnchecked,
    ) -> bool {
        let pair = self.hash(&[consumer_id, service_id]);
        if self.listed(self.hash(&[consumer_id]), pair) {
            return true;
        }
        !sent.insert_new(pair)
    }

    /// The keyed hash of the [`normalised`] ids, each length-prefixed so that ("ab", "c") and
    /// ("a", "bc") differ; the ids are folded a chunk at a time on the stack, not copied.
    fn hash(&self, ids: &[&str]) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        let mut folded = [0u8; 64];
        for id in ids {
            let id = id.trim();
            hasher.write_usize(id.len());
            for chunk in id.as_bytes().chunks(folded.len()) {
                let folded = &mut folded[..chunk.len()];
                folded.copy_from_slice(chunk);
                folded.make_ascii_lowercase();
                hasher.write(folded);
            }
        }
        hasher.finish()
    }
}

/// Bits of [`SentUnchecked`]: 2 MiB, whatever the run's size.
const SENT_BITS: usize = 1 << 24;

/// The pairs this run sent without reading them first, as a fixed-size two-hash Bloom filter:
/// memory stays flat however many records pass, and a false "seen" only adds a read (about
/// 1.3 % of records after a million, far less before).
pub struct SentUnchecked {
    bits: Mutex<Vec<u64>>,
}

impl Default for SentUnchecked {
    fn default() -> Self {
        Self {
            bits: Mutex::new(vec![0; SENT_BITS / 64]),
        }
    }
}

impl std::fmt::Debug for SentUnchecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentUnchecked").finish_non_exhaustive()
    }
}

impl SentUnchecked {
    /// Adds `pair`; `true` when it was certainly not there before. One lock for the test and
    /// the set, so two records of one pair never both see it as new.
    pub fn insert_new(&self, pair: u64) -> bool {
        let positions = [pair as usize % SENT_BITS, (pair >> 32) as usize % SENT_BITS];
        let mut bits = self.bits.lock().unwrap_or_else(|e| e.into_inner());
        let mut new = false;
        for position in positions {
            let (word, bit) = (position / 64, 1u64 << (position % 64));
            new |= bits[word] & bit == 0;
            bits[word] |= bit;
        }
        new
    }
}

/// An id as Vault may compare it: surrounding whitespace dropped (HTTP drops it from header
/// values) and ASCII case folded (whether Vault folds case is not documented: the safe side).
/// [`ConsumerListing`] hashes this form without building it.
#[cfg(test)]
fn normalised(id: &str) -> String {
    id.trim().to_ascii_lowercase()
}

/// Pages through `GET /vault/consumers`. `Ok(Err(_))`: the listing cannot be used (the run
/// checks each record as before); `Err(_)`: the HTTP path's error, for the caller to judge.
pub async fn list_consumers(
    client: &VaultClient,
) -> Result<Result<ConsumerListing, Unusable>, ProviderError> {
    let mut listing = ConsumerListing::default();
    let mut cursors_seen: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client.consumers_page(PAGE_LIMIT, cursor.as_deref()).await?;
        if let Err(unusable) = listing.add_page(&page.data) {
            return Ok(Err(unusable));
        }
        let next = page
            .meta
            .and_then(|meta| meta.cursors)
            .and_then(|cursors| cursors.next)
            .filter(|next| !next.is_empty());
        match next_step(next, &mut cursors_seen) {
            Step::Done => return Ok(Ok(listing)),
            Step::Next(next) => cursor = Some(next),
            Step::Unusable(why) => return Ok(Err(why)),
        }
    }
}

/// What to do after a page.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Done,
    Next(String),
    Unusable(Unusable),
}

/// The next page's cursor, unless there is none (the last page) or it was seen before (a
/// listing that loops would never end, and could not be trusted to be whole).
pub fn next_step(next: Option<String>, seen: &mut HashSet<String>) -> Step {
    match next {
        None => Step::Done,
        Some(next) if !seen.insert(next.clone()) => {
            Step::Unusable("the consumer list repeats a page cursor".to_owned())
        }
        Some(next) => Step::Next(next),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(consumer_id: Option<&str>, services: Option<&[&str]>) -> ConsumerItem {
        ConsumerItem {
            consumer_id: consumer_id.map(str::to_owned),
            services: services.map(|s| s.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    #[test]
    fn only_a_listed_pair_or_a_consumer_without_services_needs_a_check() {
        let mut listing = ConsumerListing::default();
        listing
            .add_page(&[
                item(Some("acme-42"), Some(&["hubspot", "salesforce"])),
                item(Some("globex-7"), Some(&[])),
                item(Some("initech-3"), None),
            ])
            .expect("usable");
        let check = |consumer: &str, service: &str, expect: bool| {
            assert_eq!(
                listing.needs_check(consumer, service),
                expect,
                "{consumer}/{service}"
            );
        };
        check("acme-42", "hubspot", true);
        check("acme-42", "salesforce", true);
        check("acme-42", "pipedrive", false);
        check("globex-7", "hubspot", false);
        check("initech-3", "anything", true);
        check("fresh-1", "hubspot", false);
        // Case and surrounding whitespace never hide a listed pair.
        check("ACME-42", "HubSpot", true);
        check(" acme-42 ", "hubspot", true);
        // The pair is hashed as a pair, not as a concatenation.
        check("acme-4", "2hubspot", false);
    }

    #[test]
    fn a_pair_sent_unchecked_is_checked_the_next_time() {
        let mut listing = ConsumerListing::default();
        listing
            .add_page(&[item(Some("acme-42"), Some(&["hubspot"]))])
            .expect("usable");
        let sent = SentUnchecked::default();
        assert!(
            listing.check_or_claim("acme-42", "hubspot", &sent),
            "listed"
        );
        assert!(
            !listing.check_or_claim("acme-42", "pipedrive", &sent),
            "first time"
        );
        assert!(
            listing.check_or_claim("acme-42", "pipedrive", &sent),
            "sent before"
        );
        assert!(
            listing.check_or_claim("ACME-42", "Pipedrive", &sent),
            "same pair"
        );
        assert!(
            !listing.check_or_claim("fresh-1", "pipedrive", &sent),
            "another pair"
        );
    }

    #[test]
    fn ids_are_hashed_as_their_normalised_form() {
        let listing = ConsumerListing::default();
        let long = format!("  {}MiXeD-{} ", "A".repeat(70), "b".repeat(130));
        for id in ["acme-42", " ACME-42\t", "", "  ", long.as_str(), "é-Ü"] {
            assert_eq!(
                listing.hash(&[id, "HubSpot "]),
                listing.hash(&[&normalised(id), "hubspot"]),
                "{id:?}"
            );
        }
        assert_ne!(listing.hash(&["ab", "c"]), listing.hash(&["a", "bc"]));
    }

    #[test]
    fn an_item_without_its_id_makes_the_listing_unusable() {
        let mut listing = ConsumerListing::default();
        assert!(listing.add_page(&[item(None, Some(&["hubspot"]))]).is_err());
    }

    #[test]
    fn paging_stops_at_the_last_page_and_refuses_a_repeated_cursor() {
        let mut seen = HashSet::new();
        assert_eq!(next_step(None, &mut seen), Step::Done);
        assert_eq!(
            next_step(Some("c1".to_owned()), &mut seen),
            Step::Next("c1".to_owned())
        );
        assert_eq!(
            next_step(Some("c2".to_owned()), &mut seen),
            Step::Next("c2".to_owned())
        );
        assert!(matches!(
            next_step(Some("c1".to_owned()), &mut seen),
            Step::Unusable(_)
        ));
    }
}
