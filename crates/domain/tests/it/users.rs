use crate::{both, run, user};
use domain::{
    DomainError,
    repo::{self, user::NewUser},
    testing::TestDb,
};
use secrecy::SecretString;

fn new(name: &str, password: &str) -> NewUser {
    NewUser {
        username: name.into(),
        display_name: String::new(),
        password: password.into(),
        is_staff: false,
        is_superuser: false,
    }
}

both! {
    fn usernames_are_unique_regardless_of_case(db: &TestDb) {
        let mut c = db.db.get().unwrap();
        repo::user::create(&mut c, &new("Ana", "long enough pw"), 4).unwrap();
        let e = repo::user::create(&mut c, &new("ana", "long enough pw"), 4).unwrap_err();
        assert!(matches!(e, DomainError::Conflict(_)), "{e:?}");
        let found = repo::user::find_by_username(&mut c, "ANA").unwrap().unwrap();
        assert_eq!(found.username, "Ana");
        assert_eq!(found.display_name, "Ana");
    }

    fn bad_user_input_is_refused_clearly(db: &TestDb) {
        let mut c = db.db.get().unwrap();
        let e = repo::user::create(&mut c, &new(&"a".repeat(200), "long enough pw"), 4).unwrap_err();
        assert!(matches!(e, DomainError::Invalid { field: "username", .. }), "{e:?}");
        let e = repo::user::create(&mut c, &new("bob", ""), 4).unwrap_err();
        assert!(matches!(e, DomainError::Invalid { field: "password", .. }), "{e:?}");
        assert!(e.to_string().contains("must not be empty"));
        let e = repo::user::create(&mut c, &new("bob", &"p".repeat(100)), 4).unwrap_err();
        assert!(matches!(e, DomainError::Invalid { field: "password", .. }), "{e:?}");
        assert_eq!(repo::user::count(&mut c).unwrap(), 0, "nothing half-created");
    }

    fn new_users_join_general(db: &TestDb) {
        let mut c = db.db.get().unwrap();
        let early = user(db, "early");
        let general = repo::room::ensure_general(&mut c).unwrap();
        let late = user(db, "late");
        assert!(repo::room::membership(&mut c, general.id, early.id).unwrap().is_some(), "migrate adds existing users");
        assert!(repo::room::membership(&mut c, general.id, late.id).unwrap().is_some(), "new users join");
        // Idempotent.
        assert_eq!(repo::room::ensure_general(&mut c).unwrap().id, general.id);
    }

    fn list_pages_by_key_and_searches_by_prefix(db: &TestDb) {
        for n in ["amy", "ann", "bob", "a_b", "axb"] { user(db, n); }
        let mut c = db.db.get().unwrap();
        let first = repo::user::list(&mut c, None, None, 2).unwrap();
        let rest = repo::user::list(&mut c, None, Some(first[1].id), 10).unwrap();
        assert_eq!(first.len() + rest.len(), 5);
        assert!(rest.iter().all(|u| u.id > first[1].id));
        let names: Vec<_> = repo::user::list(&mut c, Some("A_"), None, 10).unwrap().into_iter().map(|u| u.username).collect();
        assert_eq!(names, vec!["a_b"], "'_' is literal in a search");
    }

    fn authenticate_gives_one_answer_for_every_failure(db: &TestDb) {
        let u = user(db, "carol");
        let pw = |s: &str| SecretString::from(s.to_owned());
        run(async {
            let ok = domain::auth::authenticate(&db.db, 4, "CAROL", &pw("correct horse battery")).await.unwrap();
            assert_eq!(ok.id, u.id);
            for (name, pass) in [("carol", "wrong password"), ("nobody", "correct horse battery"), ("x", ""), (&"z".repeat(300)[..], "p")] {
                let e = domain::auth::authenticate(&db.db, 4, name, &pw(pass)).await.unwrap_err();
                assert!(matches!(e, DomainError::InvalidCredentials), "{name}: {e:?}");
            }
            let mut c = db.db.get().unwrap();
            repo::user::set_active(&mut c, u.id, false).unwrap();
            let e = domain::auth::authenticate(&db.db, 4, "carol", &pw("correct horse battery")).await.unwrap_err();
            assert!(matches!(e, DomainError::InvalidCredentials), "inactive: {e:?}");
        });
    }

    fn permissions_come_from_groups_and_grants(db: &TestDb) {
        use domain::permissions::{Action, Permission, can};
        let mut c = db.db.get().unwrap();
        let staff = repo::user::create(&mut c, &NewUser { is_staff: true, ..new("staff", "long enough pw") }, 4).unwrap();
        assert!(!can(&mut c, &staff, Action::Staff(Permission::UsersView), None).unwrap());
        let g = repo::group::create(&mut c, "Support").unwrap();
        repo::group::grant_to_group(&mut c, g, Permission::UsersView).unwrap();
        repo::group::grant_to_group(&mut c, g, Permission::UsersView).unwrap();
        repo::group::add_user(&mut c, g, staff.id).unwrap();
        assert!(can(&mut c, &staff, Action::Staff(Permission::UsersView), None).unwrap());
        assert!(!can(&mut c, &staff, Action::Staff(Permission::AuditView), None).unwrap());
        repo::group::grant_to_user(&mut c, staff.id, Permission::AuditView).unwrap();
        assert!(can(&mut c, &staff, Action::Staff(Permission::AuditView), None).unwrap());
        repo::group::remove_user(&mut c, g, staff.id).unwrap();
        assert!(!can(&mut c, &staff, Action::Staff(Permission::UsersView), None).unwrap());
    }

    fn audit_log_records_and_pages(db: &TestDb) {
        let u = user(db, "auditor");
        let mut c = db.db.get().unwrap();
        for i in 0..5 {
            repo::audit::record(&mut c, &repo::audit::NewEntry {
                actor: Some(u.id), action: "users.change", target_type: "user", target_id: i.to_string(),
                detail: serde_json::json!({"n": i}), ip: Some("127.0.0.1"),
            }).unwrap();
        }
        let page = repo::audit::list(&mut c, None, 3).unwrap();
        assert_eq!(page.iter().map(|e| e.target_id.as_str()).collect::<Vec<_>>(), ["4", "3", "2"]);
        let rest = repo::audit::list(&mut c, Some(page[2].id), 10).unwrap();
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0].detail, serde_json::json!({"n": 1}));
    }
}
