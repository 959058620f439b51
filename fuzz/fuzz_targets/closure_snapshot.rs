//! A `closure-diff snapshot` file from another machine: loading, comparing
//! and the root-cause walk over its `.drv` texts never panic; a loaded
//! snapshot renders to a document that loads again and renders the same,
//! and compared with itself shows no added, removed or changed path.
#![no_main]

use closure_diff::{compare, rootcause, snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(side) = snapshot::load("fuzz.json", &doc) else {
        return;
    };
    let rendered = snapshot::render(&side, true).expect("a loaded snapshot renders");
    let again = snapshot::load("again.json", &rendered).expect("a rendered snapshot loads");
    assert_eq!(
        snapshot::render(&again, true).ok().as_ref(),
        Some(&rendered),
        "render/load round trip"
    );
    let paths = compare::diff_paths(&side, &again);
    assert!(paths.added.is_empty() && paths.removed.is_empty() && paths.changed.is_empty());
    let doc = compare::DriftPattern::new("*-doc").expect("a valid pattern");
    let _ = compare::packages(&side, &again, &[doc]);
    let _ = rootcause::analyse(&side, &side, &[]);
});
