//! authport-kit: what every provider crate is built on, so a new provider is its vendor's wire
//! shapes, a pure mapping and a thin importer, nothing else.
//!
//! - [`http`]: the one HTTP path (rate gate, timeout, sensitive auth header, no redirects, no
//!   proxy for loopback, HTTPS off loopback, bounded answers, one classification into
//!   `ProviderError`, one scrub of secrets before any truncation);
//! - [`url`]: the base URL rules of every provider's configuration;
//! - [`discovery`]: the single-flight discovery cache;
//! - [`settings`]: settings objects read from JSON, problems located without values;
//! - [`loader`]: a provider's config section and environment (secret, base URL, the rest);
//! - [`answer`]: the one rule for an unreadable 2xx answer, by the call's effect;
//! - [`binding`]: the OAuth client binding and scope comparison of every provider's `map`;
//! - [`ownership`]: whose object an upsert would write over, and what to do about it;
//! - [`payload`]: a provider's typed payload read back from a `MappedRecord`;
//! - [`schema`]: a provider's embedded request schema, violations without values.
//!
//! The pure rules live in `authport_core::transport`; this crate does the IO around them.

pub mod answer;
pub mod binding;
pub mod discovery;
pub mod http;
pub mod loader;
pub mod ownership;
pub mod payload;
pub mod schema;
pub mod settings;
pub mod url;

pub use answer::{read_answer, unreadable_answer};
pub use authport_core::importer::Payload;
pub use authport_core::transport::{Effect, RateHeaders, ResetIs, StatusOverride, Verdict};
pub use binding::{BINDING_KEYS, BindingSettings, TargetClient, check_binding};
pub use discovery::DiscoveryCache;
pub use http::{Answer, Body, Call, CallFailure, DEFAULT_MAX_RESPONSE_BYTES, HttpClient, Vendor};
pub use loader::{Loader, SecretSetting, is_header_safe, is_token_safe};
pub use ownership::{Existing, Words};
pub use payload::payload_of;
pub use reqwest::{Method, Url};
pub use schema::{EmbeddedSchema, Violation};
pub use settings::{SettingsProblem, record_settings, section_settings, settings_from_json};
pub use url::{host_for_message, is_loopback, parse_base_url, url_at};
