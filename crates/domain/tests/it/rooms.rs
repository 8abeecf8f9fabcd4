use crate::{both, user};
use domain::{
    DomainError,
    model::{RoomKind, RoomRole},
    permissions::{Action, can},
    repo::{self, room::NewRoom},
    testing::TestDb,
};

fn room(slug: &str, kind: RoomKind, owner: Option<domain::ids::UserId>) -> NewRoom {
    NewRoom {
        slug: slug.into(),
        name: String::new(),
        topic: "t".into(),
        kind,
        created_by: owner,
    }
}

both! {
    fn rooms_have_unique_slugs_and_owners(db: &TestDb) {
        let u = user(db, "ivy");
        let mut c = db.db.get().unwrap();
        let r = repo::room::create(&mut c, &room("team", RoomKind::Private, Some(u.id))).unwrap();
        assert_eq!(r.name, "team");
        assert_eq!(repo::room::membership(&mut c, r.id, u.id).unwrap().unwrap().role, RoomRole::Owner);
        let e = repo::room::create(&mut c, &room("team", RoomKind::Public, None)).unwrap_err();
        assert!(matches!(e, DomainError::Conflict(_)));
        let e = repo::room::create(&mut c, &room("Bad Slug", RoomKind::Public, None)).unwrap_err();
        assert!(matches!(e, DomainError::Invalid { field: "slug", .. }));
        assert!(repo::room::find_by_slug(&mut c, "nope").unwrap().is_none());
    }

    fn membership_roles_decide_room_actions(db: &TestDb) {
        let owner = user(db, "own");
        let reader = user(db, "rdr");
        let outsider = user(db, "out");
        let mut c = db.db.get().unwrap();
        let r = repo::room::create(&mut c, &room("secret", RoomKind::Private, Some(owner.id))).unwrap();
        repo::room::add_member(&mut c, r.id, reader.id, RoomRole::ReadOnly).unwrap();
        assert!(can(&mut c, &owner, Action::PostMessage, Some(&r)).unwrap());
        assert!(can(&mut c, &reader, Action::ReadRoom, Some(&r)).unwrap());
        assert!(!can(&mut c, &reader, Action::PostMessage, Some(&r)).unwrap());
        assert!(!can(&mut c, &outsider, Action::ReadRoom, Some(&r)).unwrap());
        assert!(!can(&mut c, &outsider, Action::JoinRoom, Some(&r)).unwrap());
        repo::room::add_member(&mut c, r.id, reader.id, RoomRole::Member).unwrap();
        assert!(can(&mut c, &reader, Action::PostMessage, Some(&r)).unwrap(), "role change applies");
        repo::room::set_archived(&mut c, r.id, true).unwrap();
        let r = repo::room::find(&mut c, r.id).unwrap();
        assert!(!can(&mut c, &owner, Action::PostMessage, Some(&r)).unwrap(), "archived rooms are read-only");
        let rooms = repo::room::rooms_of(&mut c, reader.id).unwrap();
        assert_eq!(rooms.len(), 1);
        assert!(repo::room::remove_member(&mut c, r.id, reader.id).unwrap());
        assert!(repo::room::rooms_of(&mut c, reader.id).unwrap().is_empty());
    }

    fn general_cannot_be_deleted(db: &TestDb) {
        let mut c = db.db.get().unwrap();
        let g = repo::room::ensure_general(&mut c).unwrap();
        assert!(repo::room::delete(&mut c, g.id).is_err());
        let other = repo::room::create(&mut c, &room("tmp", RoomKind::Public, None)).unwrap();
        repo::room::delete(&mut c, other.id).unwrap();
        assert!(matches!(repo::room::find(&mut c, other.id), Err(DomainError::NotFound)));
    }
}
