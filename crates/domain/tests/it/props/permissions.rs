//! `permissions::decide` against a reference model written from the module's documented
//! rules, over every combination of user flags, granted permissions, room kinds, archive
//! state, roles and actions.
//!
//! The model, rule by rule:
//! - an inactive user may do nothing;
//! - the staff area is for staff and superusers; a superuser holds every staff
//!   permission, other staff only those granted, and a grant to a non-staff user is inert;
//! - inside a room only the member's role counts — staff powers never make anyone a
//!   reader or writer of a room;
//! - members read any room they are in (archived too); non-members read and join only
//!   public rooms, and join only live ones;
//! - owners, moderators and members post, edit and delete their own messages in live
//!   rooms; read-only members never write; nobody edits another's message;
//! - owners and moderators delete others' messages and manage members in live rooms that
//!   are not direct conversations;
//! - only owners manage a room (archived too: to bring it back), never a direct one.

use domain::{
    ids::{RoomId, UserId},
    model::{Room, RoomKind, RoomRole, User},
    permissions::{Action, Permission, Subject, decide},
    time::Timestamp,
};
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy)]
struct Flags {
    active: bool,
    staff: bool,
    superuser: bool,
}

#[derive(Debug, Clone, Copy)]
struct Place {
    kind: RoomKind,
    archived: bool,
    role: Option<RoomRole>,
}

fn model(f: Flags, granted: &BTreeSet<Permission>, action: Action, place: Option<Place>) -> bool {
    use RoomRole::*;
    if !f.active {
        return false;
    }
    match action {
        Action::Admin => f.staff || f.superuser,
        Action::Staff(p) => f.superuser || (f.staff && granted.contains(&p)),
        _ => {
            let Some(Place {
                kind,
                archived,
                role,
            }) = place
            else {
                return false;
            };
            let live = !archived;
            let member = role.is_some();
            let writer = matches!(role, Some(Owner | Moderator | Member));
            let moderator = matches!(role, Some(Owner | Moderator));
            let public = kind == RoomKind::Public;
            let direct = kind == RoomKind::Direct;
            match action {
                Action::ReadRoom => member || public,
                Action::JoinRoom => member || (public && live),
                Action::PostMessage
                | Action::EditMessage { own: true }
                | Action::DeleteMessage { own: true } => writer && live,
                Action::EditMessage { own: false } => false,
                Action::DeleteMessage { own: false } => moderator && live,
                Action::ManageMembers => moderator && live && !direct,
                Action::ManageRoom => role == Some(Owner) && !direct,
                Action::Admin | Action::Staff(_) => unreachable!("handled above"),
            }
        }
    }
}

fn user(f: Flags) -> User {
    User {
        id: UserId(7),
        username: "u".into(),
        display_name: "U".into(),
        is_active: f.active,
        is_staff: f.staff,
        is_superuser: f.superuser,
        language: None,
        created_at: Timestamp(0),
        last_login_at: None,
    }
}

fn room(p: Place) -> Room {
    Room {
        id: RoomId(3),
        slug: "r".into(),
        name: "R".into(),
        topic: String::new(),
        kind: p.kind,
        archived: p.archived,
        created_by: None,
        created_at: Timestamp(0),
    }
}

fn flags() -> impl Strategy<Value = Flags> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(active, staff, superuser)| Flags {
        active,
        staff,
        superuser,
    })
}

fn granted() -> impl Strategy<Value = BTreeSet<Permission>> {
    proptest::sample::subsequence(Permission::ALL, 0..=Permission::ALL.len())
        .prop_map(|v| v.into_iter().collect())
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Admin),
        proptest::sample::select(Permission::ALL).prop_map(Action::Staff),
        Just(Action::ReadRoom),
        Just(Action::JoinRoom),
        Just(Action::PostMessage),
        any::<bool>().prop_map(|own| Action::EditMessage { own }),
        any::<bool>().prop_map(|own| Action::DeleteMessage { own }),
        Just(Action::ManageRoom),
        Just(Action::ManageMembers),
    ]
}

fn place() -> impl Strategy<Value = Option<Place>> {
    proptest::option::weighted(
        0.9,
        (
            proptest::sample::select(RoomKind::ALL),
            any::<bool>(),
            proptest::option::of(proptest::sample::select(RoomRole::ALL)),
        )
            .prop_map(|(kind, archived, role)| Place {
                kind,
                archived,
                role,
            }),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn decide_agrees_with_the_reference_model(f in flags(), granted in granted(), action in action(), place in place()) {
        let subject = Subject { user: user(f), permissions: granted.clone() };
        let r = place.map(room);
        let got = decide(&subject, action, r.as_ref().zip(place).map(|(r, p)| (r, p.role)));
        prop_assert_eq!(got, model(f, &granted, action, place), "{:?} {:?} {:?} {:?}", f, granted, action, place);
        // `Subject::has` is the staff half of the same rules.
        if let Action::Staff(p) = action {
            prop_assert_eq!(subject.has(p), got);
        }
    }
}

/// The whole space is small enough to check exhaustively too (with all or no grants).
#[test]
fn decide_agrees_with_the_model_everywhere() {
    let all: BTreeSet<Permission> = Permission::ALL.iter().copied().collect();
    let none = BTreeSet::new();
    let mut actions = vec![
        Action::Admin,
        Action::ReadRoom,
        Action::JoinRoom,
        Action::PostMessage,
        Action::ManageRoom,
        Action::ManageMembers,
    ];
    for own in [false, true] {
        actions.push(Action::EditMessage { own });
        actions.push(Action::DeleteMessage { own });
    }
    actions.extend(Permission::ALL.iter().copied().map(Action::Staff));
    let mut places = vec![None];
    for &kind in RoomKind::ALL {
        for archived in [false, true] {
            places.push(Some(Place {
                kind,
                archived,
                role: None,
            }));
            for &role in RoomRole::ALL {
                places.push(Some(Place {
                    kind,
                    archived,
                    role: Some(role),
                }));
            }
        }
    }
    let mut checked = 0;
    for bits in 0..8u8 {
        let f = Flags {
            active: bits & 1 != 0,
            staff: bits & 2 != 0,
            superuser: bits & 4 != 0,
        };
        for granted in [&all, &none] {
            let subject = Subject {
                user: user(f),
                permissions: granted.clone(),
            };
            for &action in &actions {
                for &place in &places {
                    let r = place.map(room);
                    let got = decide(
                        &subject,
                        action,
                        r.as_ref().zip(place).map(|(r, p)| (r, p.role)),
                    );
                    assert_eq!(
                        got,
                        model(f, granted, action, place),
                        "{f:?} {granted:?} {action:?} {place:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 8 * 2 * actions.len() * places.len());
}
