//! The one place that answers "may this user do this here?". Every page, form, API call
//! and socket frame asks [`can`] (or [`decide`] with what it already loaded).
//!
//! - Superusers may do every staff action.
//! - Other staff hold [`Permission`]s, granted directly or through groups.
//! - Inside a room, the member's [`RoomRole`] decides; staff powers do not make anyone a
//!   reader of a private conversation (the admin's audited `messages.view` is separate).

use crate::{
    db::DbConn,
    error::Result,
    ids::UserId,
    model::{Room, RoomKind, RoomRole, User},
    repo,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

macro_rules! permissions {
    ($($variant:ident = $text:literal),+ $(,)?) => {
        /// A staff permission, named like Django's (`users.view`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Permission { $($variant),+ }

        impl Permission {
            pub const ALL: &'static [Permission] = &[$(Permission::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Permission> {
                match s { $($text => Some(Permission::$variant),)+ _ => None }
            }
        }
    };
}

permissions! {
    UsersView = "users.view",
    UsersChange = "users.change",
    UsersDeactivate = "users.deactivate",
    GroupsChange = "groups.change",
    RoomsView = "rooms.view",
    RoomsChange = "rooms.change",
    RoomsDelete = "rooms.delete",
    MessagesView = "messages.view",
    MessagesDelete = "messages.delete",
    SessionsRevoke = "sessions.revoke",
    AttachmentsDelete = "attachments.delete",
    AuditView = "audit.view",
}

/// Something a user may try to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open the staff area at all.
    Admin,
    /// A staff action outside any room.
    Staff(Permission),
    /// See a room and its history.
    ReadRoom,
    /// Become a member of a room on one's own.
    JoinRoom,
    PostMessage,
    /// Edit a message; `own` says whether the user wrote it.
    EditMessage {
        own: bool,
    },
    DeleteMessage {
        own: bool,
    },
    /// Change a room's name, topic, archive state.
    ManageRoom,
    /// Invite, remove and change roles of members.
    ManageMembers,
}

/// Who is asking: the user and their effective staff permissions.
#[derive(Debug, Clone)]
pub struct Subject {
    pub user: User,
    pub permissions: BTreeSet<Permission>,
}

impl Subject {
    pub fn has(&self, p: Permission) -> bool {
        self.user.is_active
            && (self.user.is_superuser || (self.user.is_staff && self.permissions.contains(&p)))
    }
}

/// The decision, from what the caller already loaded. `room` carries the room and the
/// subject's role in it, if they are a member.
pub fn decide(subject: &Subject, action: Action, room: Option<(&Room, Option<RoomRole>)>) -> bool {
    let user = &subject.user;
    if !user.is_active {
        return false;
    }
    match action {
        Action::Admin => user.is_staff || user.is_superuser,
        Action::Staff(p) => subject.has(p),
        _ => {
            let Some((room, role)) = room else {
                return false;
            };
            decide_in_room(action, room, role)
        }
    }
}

fn decide_in_room(action: Action, room: &Room, role: Option<RoomRole>) -> bool {
    use RoomRole::*;
    let live = !room.archived;
    match (action, role) {
        (Action::ReadRoom, Some(_)) => true,
        (Action::ReadRoom, None) => room.kind == RoomKind::Public,
        (Action::JoinRoom, None) => live && room.kind == RoomKind::Public,
        (Action::JoinRoom, Some(_)) => true,
        (Action::PostMessage, Some(Owner | Moderator | Member)) => live,
        (Action::EditMessage { own: true }, Some(Owner | Moderator | Member)) => live,
        (Action::DeleteMessage { own: true }, Some(Owner | Moderator | Member)) => live,
        (Action::DeleteMessage { own: false }, Some(Owner | Moderator)) => live,
        (Action::ManageRoom, Some(Owner)) => room.kind != RoomKind::Direct,
        (Action::ManageMembers, Some(Owner | Moderator)) => live && room.kind != RoomKind::Direct,
        _ => false,
    }
}

/// Loads the subject's permissions.
pub fn subject(conn: &mut DbConn, user: User) -> Result<Subject> {
    let permissions = if user.is_staff && !user.is_superuser {
        repo::group::effective_permissions(conn, user.id)?
    } else {
        BTreeSet::new()
    };
    Ok(Subject { user, permissions })
}

/// Loads what is needed and decides. Staff actions on a room (`rooms.change`, …) are
/// asked as `Action::Staff` and do not need the room.
pub fn can(conn: &mut DbConn, user: &User, action: Action, room: Option<&Room>) -> Result<bool> {
    let subject = subject(conn, user.clone())?;
    let with_role = match room {
        Some(room) => Some((
            room,
            repo::room::membership(conn, room.id, user.id)?.map(|m| m.role),
        )),
        None => None,
    };
    Ok(decide(&subject, action, with_role))
}

/// Like [`can`] for a user id, for callers that hold only the id.
pub fn can_user(
    conn: &mut DbConn,
    user: UserId,
    action: Action,
    room: Option<&Room>,
) -> Result<bool> {
    let user = repo::user::find(conn, user)?;
    can(conn, &user, action, room)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ids::{RoomId, UserId},
        time::Timestamp,
    };
    use proptest::prelude::*;

    fn user(active: bool, staff: bool, superuser: bool) -> User {
        User {
            id: UserId(1),
            username: "u".into(),
            display_name: "U".into(),
            is_active: active,
            is_staff: staff,
            is_superuser: superuser,
            language: None,
            created_at: Timestamp(0),
            last_login_at: None,
        }
    }

    fn room(kind: RoomKind, archived: bool) -> Room {
        Room {
            id: RoomId(1),
            slug: "r".into(),
            name: "R".into(),
            topic: String::new(),
            kind,
            archived,
            created_by: None,
            created_at: Timestamp(0),
        }
    }

    fn subject(u: User, perms: &[Permission]) -> Subject {
        Subject {
            user: u,
            permissions: perms.iter().copied().collect(),
        }
    }

    #[test]
    fn staff_permissions_follow_grants_not_the_flag() {
        let plain = subject(user(true, false, false), &[Permission::UsersView]);
        let staff = subject(user(true, true, false), &[Permission::UsersView]);
        let superuser = subject(user(true, true, true), &[]);
        assert!(
            !decide(&plain, Action::Staff(Permission::UsersView), None),
            "a grant without staff status is inert"
        );
        assert!(!decide(&plain, Action::Admin, None));
        assert!(decide(&staff, Action::Staff(Permission::UsersView), None));
        assert!(!decide(
            &staff,
            Action::Staff(Permission::UsersChange),
            None
        ));
        assert!(decide(
            &superuser,
            Action::Staff(Permission::AuditView),
            None
        ));
    }

    #[test]
    fn room_roles() {
        let s = subject(user(true, false, false), &[]);
        let public = room(RoomKind::Public, false);
        let private = room(RoomKind::Private, false);
        assert!(decide(&s, Action::ReadRoom, Some((&public, None))));
        assert!(decide(&s, Action::JoinRoom, Some((&public, None))));
        assert!(
            !decide(&s, Action::PostMessage, Some((&public, None))),
            "join first"
        );
        assert!(!decide(&s, Action::ReadRoom, Some((&private, None))));
        assert!(!decide(&s, Action::JoinRoom, Some((&private, None))));
        assert!(decide(
            &s,
            Action::PostMessage,
            Some((&private, Some(RoomRole::Member)))
        ));
        assert!(!decide(
            &s,
            Action::PostMessage,
            Some((&private, Some(RoomRole::ReadOnly)))
        ));
        assert!(decide(
            &s,
            Action::ReadRoom,
            Some((&private, Some(RoomRole::ReadOnly)))
        ));
        assert!(!decide(
            &s,
            Action::DeleteMessage { own: false },
            Some((&private, Some(RoomRole::Member)))
        ));
        assert!(decide(
            &s,
            Action::DeleteMessage { own: false },
            Some((&private, Some(RoomRole::Moderator)))
        ));
        assert!(!decide(
            &s,
            Action::ManageRoom,
            Some((&private, Some(RoomRole::Moderator)))
        ));
        assert!(decide(
            &s,
            Action::ManageRoom,
            Some((&private, Some(RoomRole::Owner)))
        ));
        let archived = room(RoomKind::Public, true);
        assert!(!decide(
            &s,
            Action::PostMessage,
            Some((&archived, Some(RoomRole::Owner)))
        ));
        assert!(decide(
            &s,
            Action::ReadRoom,
            Some((&archived, Some(RoomRole::Member)))
        ));
    }

    #[test]
    fn staff_are_not_readers_of_private_rooms() {
        let superuser = subject(user(true, true, true), &[]);
        let direct = room(RoomKind::Direct, false);
        assert!(!decide(&superuser, Action::ReadRoom, Some((&direct, None))));
        assert!(!decide(
            &superuser,
            Action::PostMessage,
            Some((&direct, None))
        ));
    }

    fn any_action() -> impl Strategy<Value = Action> {
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

    fn any_role() -> impl Strategy<Value = Option<RoomRole>> {
        proptest::option::of(proptest::sample::select(RoomRole::ALL))
    }

    proptest! {
        #[test]
        fn inactive_users_may_do_nothing(action in any_action(), staff in any::<bool>(), sup in any::<bool>(),
                                         kind in proptest::sample::select(RoomKind::ALL), role in any_role()) {
            let s = subject(user(false, staff, sup), Permission::ALL);
            let r = room(kind, false);
            prop_assert!(!decide(&s, action, Some((&r, role))));
        }

        #[test]
        fn non_members_never_write_and_only_read_public(action in any_action(), sup in any::<bool>(),
                                                       kind in proptest::sample::select(RoomKind::ALL)) {
            let s = subject(user(true, sup, sup), Permission::ALL);
            let r = room(kind, false);
            let allowed = decide(&s, action, Some((&r, None)));
            match action {
                Action::Admin | Action::Staff(_) => {}
                Action::ReadRoom | Action::JoinRoom => prop_assert_eq!(allowed, kind == RoomKind::Public),
                _ => prop_assert!(!allowed),
            }
        }

        #[test]
        fn a_higher_role_may_do_at_least_what_a_lower_one_may(action in any_action(), kind in proptest::sample::select(RoomKind::ALL), archived in any::<bool>()) {
            let s = subject(user(true, false, false), &[]);
            let r = room(kind, archived);
            // RoomRole::ALL runs from most to least powerful.
            for pair in RoomRole::ALL.windows(2) {
                if decide(&s, action, Some((&r, Some(pair[1])))) {
                    prop_assert!(decide(&s, action, Some((&r, Some(pair[0])))), "{:?} may {:?} but {:?} may not", pair[1], action, pair[0]);
                }
            }
        }
    }
}
