//! The vendors' OpenAPI descriptions in `specs/` are byte-for-byte the copies `SOURCES.md`
//! describes: a contract test against an edited spec would prove nothing about the vendor.

use authport_sandbox::spec::spec_file_path;
use sha2::{Digest, Sha256};

/// The sha256 that `SOURCES.md` records under the `## <file>` heading.
fn recorded_sha256(sources: &str, file: &str) -> String {
    let section = sources
        .split("\n## ")
        .find(|section| section.starts_with(file))
        .unwrap_or_else(|| panic!("SOURCES.md has no section for {file}"));
    let line = section
        .lines()
        .find(|line| line.contains("sha256 of the copy"))
        .unwrap_or_else(|| panic!("SOURCES.md records no sha256 for {file}"));
    let start = line.find('`').expect("the hash is in backticks") + 1;
    let length = line[start..].find('`').expect("the hash is in backticks");
    line[start..start + length].to_owned()
}

#[test]
fn every_vendored_spec_matches_its_recorded_sha256() {
    let sources_path = spec_file_path("SOURCES.md");
    let sources = std::fs::read_to_string(&sources_path).expect("SOURCES.md is readable");
    for file in ["apideck-vault.yml", "tray-platform-api.yaml", "nango.yaml"] {
        let bytes = std::fs::read(spec_file_path(file)).expect("the spec is readable");
        let actual: String = Sha256::digest(&bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(
            actual,
            recorded_sha256(&sources, file),
            "{file} differs from its source"
        );
    }
}

#[test]
fn the_nango_licence_travels_with_its_spec() {
    let licence = std::fs::read_to_string(spec_file_path("nango-LICENSE.txt")).expect("licence");
    assert!(
        licence.contains("Elastic License"),
        "the Nango spec's licence is beside it"
    );
}
