//! Finding codes are part of the user contract (suppressions, dashboards, SARIF rule ids): the
//! whole table is snapshotted so a code or its description never changes by accident.

use stategate::finding::Rule;
use stategate::report::rules_table;

#[test]
fn rules_table_snapshot() {
    insta::assert_snapshot!(rules_table());
}

#[test]
fn every_rule_is_listed_once_with_a_unique_code() {
    let table = rules_table();
    assert_eq!(table.lines().count(), Rule::ALL.len());
    let mut codes: Vec<&str> = Rule::ALL.iter().map(|r| r.code()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), Rule::ALL.len());
    for rule in Rule::ALL {
        let (stage, what) = rule.code().split_once('/').expect("codes are stage/what");
        assert!(!stage.is_empty() && !what.is_empty());
        assert!(!rule.description().is_empty());
    }
}
