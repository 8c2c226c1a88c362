//! Regions per member through the draft workflow: set on admission, changed
//! in a draft, carried into the next version, and refused when malformed.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use handbereik_keys::{Admission, Draft, KeysError, Purpose};

fn codes(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

#[test]
fn admission_sets_regions_sorted_and_distinct() {
    let mut draft = first_draft();
    let terms = Admission {
        regions: codes(&["VR13", "GM0363", "GM0344", "GM0363"]),
        ..Admission::default()
    };
    let (member, _) = draft.admit_with(&request(3), terms, NOW).unwrap();
    assert_eq!(member.regions, codes(&["GM0344", "GM0363", "VR13"]));
    assert!(member.serves_region("GM0363"));
    assert!(!member.serves_region("GM0364"));
    assert!(!draft.list.member(&oin(1)).unwrap().serves_region("GM0363"));
    let published = publish(draft, &[1, 2]);
    assert_eq!(
        published.list.member(&oin(3)).unwrap().regions,
        codes(&["GM0344", "GM0363", "VR13"])
    );
}

#[test]
fn admission_with_bad_regions_changes_nothing() {
    let mut draft = first_draft();
    draft.sign(&gov(1)).unwrap();
    let before = draft.clone();
    for bad in [
        codes(&["gm0363"]),
        codes(&["GM"]),
        (0..513).map(|i| format!("GM{i:04}")).collect(),
    ] {
        let terms = Admission {
            regions: bad,
            ..Admission::default()
        };
        let err = draft.admit_with(&request(3), terms, NOW).unwrap_err();
        assert!(err.to_string().starts_with("regions:"), "{err}");
        assert_eq!(draft, before);
    }
    // The other terms still apply alongside regions.
    let terms = Admission {
        purposes: Some(vec![Purpose::parse("schuldhulp").unwrap()]),
        regions: codes(&["GM0363"]),
        ..Admission::default()
    };
    let err = draft.admit_with(&request(3), terms, NOW).unwrap_err();
    assert!(err.to_string().contains("not requested"), "{err}");
}

#[test]
fn regions_change_in_a_draft_and_carry_over() {
    let v1 = publish(first_draft(), &[1, 2]);
    let mut draft = Draft::continue_from(&v1.list, 30 * DAY, NOW).unwrap();
    draft.sign(&gov(1)).unwrap();
    let dropped = draft
        .set_regions(&oin(2), codes(&["GM0363", "GM0344"]), NOW + 5)
        .unwrap();
    assert_eq!(dropped, 1, "an edit drops the signatures");
    assert_eq!(draft.list.issued_at, NOW + 5);
    let v2 = publish(draft, &[2, 3]);
    assert_eq!(
        v2.list.member(&oin(2)).unwrap().regions,
        codes(&["GM0344", "GM0363"])
    );

    // The next version keeps them; clearing removes the key again.
    let mut draft = Draft::continue_from(&v2.list, 30 * DAY, NOW).unwrap();
    assert_eq!(
        draft.list.member(&oin(2)).unwrap().regions,
        codes(&["GM0344", "GM0363"])
    );
    draft.set_regions(&oin(2), Vec::new(), NOW).unwrap();
    let v3 = publish(draft, &[1, 3]);
    assert!(v3.list.member(&oin(2)).unwrap().regions.is_empty());
    let body = handbereik_keys::canonical::to_vec(&v3.list, "member list").unwrap();
    assert!(!body.windows(7).any(|w| w == b"regions"));
}

#[test]
fn changing_regions_of_an_unknown_member_or_to_bad_codes_is_refused() {
    let mut draft = first_draft();
    let err = draft
        .set_regions(&oin(9), codes(&["GM0363"]), NOW)
        .unwrap_err();
    assert!(matches!(err, KeysError::UnknownMember(_)), "{err}");
    let before = draft.clone();
    let err = draft
        .set_regions(&oin(1), codes(&["GM0363", "Gemeente Utrecht"]), NOW)
        .unwrap_err();
    assert!(err.to_string().contains("not a region code"), "{err}");
    assert_eq!(draft, before);
}
