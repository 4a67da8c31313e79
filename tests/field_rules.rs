//! One source for field rules: the domain types state each rule once (`RULE` constants), and the
//! public contract (the .proto comments) and the README must state the same words.

use credvault::domain::{
    AccountSid, ApiKeySid, Edge, Label, MessagingServiceSid, Owner, PhoneNumber, Region, Secret,
};

/// `text` with comment markers dropped and runs of white space folded, so a rule may wrap.
fn folded(text: &str) -> String {
    text.lines()
        .map(|l| l.trim().trim_start_matches("//").trim())
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn proto_and_readme_state_the_rules_the_server_enforces() {
    let root = env!("CARGO_MANIFEST_DIR");
    let proto = folded(
        &std::fs::read_to_string(format!("{root}/proto/credvault/v1/credvault.proto")).unwrap(),
    );
    let readme = folded(&std::fs::read_to_string(format!("{root}/README.md")).unwrap());
    let rules = [
        ("owner", Owner::RULE),
        ("label", Label::RULE),
        ("account_sid", AccountSid::RULE),
        ("api_key_sid", ApiKeySid::RULE),
        ("messaging_service_sid", MessagingServiceSid::RULE),
        ("from_number / test_recipient", PhoneNumber::RULE),
        ("auth_token", Secret::AUTH_TOKEN_RULE),
        ("api_key_secret", Secret::API_KEY_SECRET_RULE),
        ("region", Region::RULE),
        ("edge", Edge::RULE),
    ];
    for (field, rule) in rules {
        assert!(
            proto.contains(rule),
            "the .proto does not state {field}: {rule}"
        );
        assert!(
            readme.contains(rule),
            "README.md does not state {field}: {rule}"
        );
    }
}
