use crate::{both, user};
use domain::{
    auth::SessionKey,
    repo::{self, session::Lifetimes},
    testing::TestDb,
};

const LIFE: Lifetimes = Lifetimes {
    idle_secs: 3600,
    absolute_secs: 7200,
};

both! {
    fn sessions_are_found_by_key_and_stored_hashed(db: &TestDb) {
        let u = user(db, "dora");
        let mut c = db.db.get().unwrap();
        let (key, s) = repo::session::create(&mut c, u.id, "Firefox on Linux", "10.0.0.1", "{}", LIFE).unwrap();
        let live = repo::session::find_live(&mut c, &key).unwrap().expect("live");
        assert_eq!(live.session.id, s.id);
        assert_eq!(live.user.id, u.id);
        assert!(s.expires_at.0 - s.created_at.0 <= 3600 * 1_000_000);
        let other = SessionKey::generate();
        assert!(repo::session::find_live(&mut c, &other).unwrap().is_none());
        // The key itself is nowhere in the table.
        use diesel::prelude::*;
        use domain::db::schema::sessions;
        let hashes: Vec<String> = sessions::table.select(sessions::key_hash).load(&mut *c).unwrap();
        assert_eq!(hashes, vec![key.hash()]);
        assert!(!hashes[0].contains(key.expose()));
    }

    fn revocation_and_expiry_end_sessions(db: &TestDb) {
        let u = user(db, "eve");
        let mut c = db.db.get().unwrap();
        let (k1, s1) = repo::session::create(&mut c, u.id, "a", "1", "{}", LIFE).unwrap();
        let (k2, s2) = repo::session::create(&mut c, u.id, "b", "2", "{}", LIFE).unwrap();
        let (k3, _) = repo::session::create(&mut c, u.id, "c", "3", "{}", LIFE).unwrap();
        assert_eq!(repo::session::list_live(&mut c, u.id).unwrap().len(), 3);
        let revoked = repo::session::revoke_others(&mut c, u.id, s1.id).unwrap();
        assert_eq!(revoked.len(), 2);
        assert!(revoked.contains(&s2.id));
        assert!(repo::session::find_live(&mut c, &k1).unwrap().is_some());
        assert!(repo::session::find_live(&mut c, &k2).unwrap().is_none());
        assert!(repo::session::find_live(&mut c, &k3).unwrap().is_none());
        assert!(repo::session::revoke(&mut c, s1.id).unwrap());
        assert!(!repo::session::revoke(&mut c, s1.id).unwrap(), "already revoked");
        assert!(repo::session::find_live(&mut c, &k1).unwrap().is_none());
        assert!(!repo::session::touch(&mut c, s1.id, LIFE).unwrap(), "a revoked session is not revived");

        let (k4, _) = repo::session::create(&mut c, u.id, "d", "4", "{}", Lifetimes { idle_secs: 0, absolute_secs: 0 }).unwrap();
        assert!(repo::session::find_live(&mut c, &k4).unwrap().is_none(), "expired at once");
    }

    fn touch_extends_idle_but_never_past_absolute(db: &TestDb) {
        let u = user(db, "fay");
        let mut c = db.db.get().unwrap();
        let life = Lifetimes { idle_secs: 60, absolute_secs: 90 };
        let (_, s) = repo::session::create(&mut c, u.id, "a", "1", "{}", life).unwrap();
        assert!(repo::session::touch(&mut c, s.id, life).unwrap());
        let after = repo::session::find(&mut c, s.id).unwrap();
        assert!(after.expires_at <= s.created_at.plus_secs(90));
        assert!(after.expires_at >= s.expires_at);
    }

    fn deactivation_revokes_every_session(db: &TestDb) {
        let u = user(db, "gus");
        let mut c = db.db.get().unwrap();
        let (k, _) = repo::session::create(&mut c, u.id, "a", "1", "{}", LIFE).unwrap();
        repo::user::set_active(&mut c, u.id, false).unwrap();
        assert!(repo::session::find_live(&mut c, &k).unwrap().is_none());
        assert!(repo::session::list_live(&mut c, u.id).unwrap().is_empty());
    }

    fn live_among_names_the_live_sessions_of_a_list(db: &TestDb) {
        let u = user(db, "ida");
        let v = user(db, "jon");
        let mut c = db.db.get().unwrap();
        let (_, live) = repo::session::create(&mut c, u.id, "a", "1", "{}", LIFE).unwrap();
        let (_, revoked) = repo::session::create(&mut c, u.id, "b", "2", "{}", LIFE).unwrap();
        let (_, expired) = repo::session::create(&mut c, u.id, "c", "3", "{}", Lifetimes { idle_secs: 0, absolute_secs: 0 }).unwrap();
        let (_, deactivated) = repo::session::create(&mut c, v.id, "d", "4", "{}", LIFE).unwrap();
        let (_, unasked) = repo::session::create(&mut c, u.id, "e", "5", "{}", LIFE).unwrap();
        repo::session::revoke(&mut c, revoked.id).unwrap();
        repo::user::set_active(&mut c, v.id, false).unwrap();
        let unknown = domain::ids::SessionId(i64::MAX);
        let ids = [live.id, revoked.id, expired.id, deactivated.id, unknown];
        let found = repo::session::live_among(&mut c, &ids).unwrap();
        assert_eq!(found, [live.id].into_iter().collect(), "{unasked:?} was not asked for");
        assert!(repo::session::live_among(&mut c, &[]).unwrap().is_empty());
    }

    fn session_data_is_kept(db: &TestDb) {
        let u = user(db, "hal");
        let mut c = db.db.get().unwrap();
        let (k, s) = repo::session::create(&mut c, u.id, "a", "1", "{}", LIFE).unwrap();
        repo::session::save_data(&mut c, s.id, r#"{"csrf":"x"}"#).unwrap();
        assert_eq!(repo::session::find_live(&mut c, &k).unwrap().unwrap().data, r#"{"csrf":"x"}"#);
    }
}
