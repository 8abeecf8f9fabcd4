//! `/admin/` over real HTTP on both backends: the permission matrix (superuser, staff
//! with exactly the permission, staff without it, plain user, signed out), CSRF and
//! validation on the forms, bus events from deletions and deactivations, audited reads.

#![allow(clippy::unwrap_used)] // tests may panic: that is how they fail

use crate::{both_backends, helpers::*};
use diesel::prelude::*;
use domain::{
    bus::{Event, Topic},
    db::{Backend, schema::attachments},
    ids::{MessageId, RoomId},
    model::{MessageKind, RoomKind, RoomRole, User},
    permissions::Permission,
    repo::{self, message::NewMessage, room::NewRoom, user::NewUser},
};
use reqwest::{Client, StatusCode};
use std::time::Duration;

async fn make_user(
    app: &TestApp,
    name: &str,
    staff: bool,
    superuser: bool,
    perms: &[Permission],
) -> User {
    let new = NewUser {
        username: name.into(),
        display_name: String::new(),
        password: PASSWORD.into(),
        is_staff: staff,
        is_superuser: superuser,
    };
    let perms = perms.to_vec();
    let cost = app.settings().bcrypt_cost;
    app.test_db
        .db
        .run(move |c| {
            let u = repo::user::create(c, &new, cost)?;
            for p in perms {
                repo::group::grant_to_user(c, u.id, p)?;
            }
            Ok(u)
        })
        .await
        .expect("create user")
}

/// A signed-in client and its CSRF token.
async fn signed_in(app: &TestApp, name: &str) -> (Client, String) {
    let c = client();
    sign_in(&c, app, name).await;
    let token = get_csrf(&c, app, "/").await;
    (c, token)
}

async fn get(c: &Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let res = c.get(app.url(path)).send().await.expect("GET");
    (res.status(), res.text().await.expect("body"))
}

async fn post(
    c: &Client,
    app: &TestApp,
    path: &str,
    token: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut form: Vec<(&str, &str)> = vec![("csrf_token", token)];
    form.extend_from_slice(fields);
    let res = c
        .post(app.url(path))
        .form(&form)
        .send()
        .await
        .expect("POST");
    (res.status(), res.text().await.expect("body"))
}

fn all_but(lacks: &[Permission]) -> Vec<Permission> {
    Permission::ALL
        .iter()
        .copied()
        .filter(|p| !lacks.contains(p))
        .collect()
}

struct World {
    victim: User,
    room: RoomId,
    message: MessageId,
    session: i64,
    group: i64,
    doomed_rooms: Vec<RoomId>,
    attachments: Vec<i64>,
}

async fn world(app: &TestApp) -> World {
    let victim = app.create_user("victim", "Victim").await;
    // A live session of the victim's, through the real sign-in.
    sign_in(&client(), app, "victim").await;
    let vid = victim.id;
    let keys = app.app_state.message_keys.clone();
    app.test_db
        .db
        .run(move |c| {
            let room = repo::room::create(
                c,
                &NewRoom {
                    slug: "team".into(),
                    name: "Team".into(),
                    topic: String::new(),
                    kind: RoomKind::Private,
                    created_by: Some(vid),
                },
            )?;
            let message = repo::message::post(
                c,
                &keys,
                &NewMessage {
                    room_id: room.id,
                    author_id: Some(vid),
                    kind: MessageKind::Text,
                    body: "hush".into(),
                    client_id: None,
                },
                4000,
            )?
            .message
            .id;
            let session = repo::session::list_live(c, vid)?[0].id.0;
            let group = repo::group::create(c, "moderators")?.0;
            let mut doomed_rooms = Vec::new();
            let mut atts = Vec::new();
            for i in 0..5 {
                doomed_rooms.push(
                    repo::room::create(
                        c,
                        &NewRoom {
                            slug: format!("doomed{i}"),
                            name: String::new(),
                            topic: String::new(),
                            kind: RoomKind::Public,
                            created_by: None,
                        },
                    )?
                    .id,
                );
                diesel::insert_into(attachments::table)
                    .values((
                        attachments::room_id.eq(room.id.0),
                        attachments::message_id.eq(Some(message.0)),
                        attachments::uploader_id.eq(Some(vid.0)),
                        attachments::content_type.eq("image/png"),
                        attachments::size.eq(10_i64),
                        attachments::sha256.eq("00".repeat(32)),
                        attachments::storage_key.eq(format!("k{i}")),
                        attachments::created_at.eq(1_i64),
                    ))
                    .execute(c)?;
                let id: i64 = attachments::table
                    .filter(attachments::storage_key.eq(format!("k{i}")))
                    .select(attachments::id)
                    .first(c)?;
                atts.push(id);
            }
            Ok(World {
                victim: repo::user::find(c, vid)?,
                room: room.id,
                message,
                session,
                group,
                doomed_rooms,
                attachments: atts,
            })
        })
        .await
        .expect("world")
}

#[derive(Clone, Copy, PartialEq)]
enum Method {
    Get,
    Post,
}

type PathFn = Box<dyn Fn(&World, usize) -> String>;
type FieldsFn = Box<dyn Fn(usize) -> Vec<(&'static str, String)>>;

struct Case {
    method: Method,
    /// The path for actor `i` (0 superuser, 1 with, 2 without, 3 plain, 4 signed out):
    /// actions that cannot be repeated get a target per actor.
    path: PathFn,
    fields: FieldsFn,
    /// What "exactly that permission" means for this page.
    with: Vec<Permission>,
    /// What the staff member "without it" lacks (they hold everything else).
    lacks: Vec<Permission>,
}

fn case(
    method: Method,
    path: impl Fn(&World, usize) -> String + 'static,
    with: &[Permission],
) -> Case {
    Case {
        method,
        path: Box::new(path),
        fields: Box::new(|_| Vec::new()),
        with: with.to_vec(),
        lacks: with.to_vec(),
    }
}

impl Case {
    fn fields(mut self, f: impl Fn(usize) -> Vec<(&'static str, String)> + 'static) -> Case {
        self.fields = Box::new(f);
        self
    }
    fn lacks(mut self, l: &[Permission]) -> Case {
        self.lacks = l.to_vec();
        self
    }
}

fn name_for(prefix: &str, perms: &[Permission]) -> String {
    let mut s = prefix.to_owned();
    for p in perms {
        s.push('-');
        s.push_str(p.as_str());
    }
    s.truncate(32);
    s
}

fn cases() -> Vec<Case> {
    use Method::*;
    use Permission::*;
    vec![
        // Pages first: the actions below delete some of what they show.
        case(
            Get,
            |_, _| "/admin/users?q=vic&active=yes&staff=no&sort=username".into(),
            &[UsersView],
        ),
        case(
            Get,
            |w, _| format!("/admin/users/{}", w.victim.id),
            &[UsersView],
        ),
        case(Get, |_, _| "/admin/users/new".into(), &[UsersChange]),
        case(
            Get,
            |w, _| format!("/admin/users/{}/deactivate", w.victim.id),
            &[UsersDeactivate],
        ),
        case(Get, |_, _| "/admin/groups".into(), &[GroupsChange]),
        case(
            Get,
            |w, _| format!("/admin/groups/{}", w.group),
            &[GroupsChange],
        ),
        case(Get, |_, _| "/admin/rooms?kind=private".into(), &[RoomsView]),
        case(Get, |w, _| format!("/admin/rooms/{}", w.room), &[RoomsView]),
        case(Get, |_, _| "/admin/rooms/new".into(), &[RoomsChange]),
        case(
            Get,
            |w, _| format!("/admin/rooms/{}/delete", w.doomed_rooms[0]),
            &[RoomsDelete],
        ),
        case(
            Get,
            |w, _| format!("/admin/rooms/{}/export", w.room),
            &[RoomsView, MessagesView],
        )
        .lacks(&[MessagesView]),
        case(
            Get,
            |_, _| "/admin/messages?room=team".into(),
            &[MessagesView],
        )
        .lacks(&[MessagesView, MessagesDelete]),
        case(
            Get,
            |w, _| format!("/admin/messages/{}/delete", w.message),
            &[MessagesDelete],
        ),
        case(
            Get,
            |_, _| "/admin/sessions?all=1".into(),
            &[SessionsRevoke],
        ),
        case(
            Get,
            |w, _| format!("/admin/sessions/{}/revoke", w.session),
            &[SessionsRevoke],
        ),
        case(
            Get,
            |_, _| "/admin/attachments".into(),
            &[AttachmentsDelete],
        ),
        case(
            Get,
            |w, _| format!("/admin/attachments/{}/delete", w.attachments[0]),
            &[AttachmentsDelete],
        ),
        case(Get, |_, _| "/admin/audit".into(), &[AuditView]),
        // Actions.
        case(Post, |_, _| "/admin/users/new".into(), &[UsersChange]).fields(|i| {
            vec![
                ("username", format!("new{i}")),
                ("password", "a long password".into()),
            ]
        }),
        case(
            Post,
            |w, _| format!("/admin/users/{}", w.victim.id),
            &[UsersChange],
        )
        .fields(|i| vec![("display_name", format!("Victim {i}"))]),
        case(
            Post,
            |w, _| format!("/admin/users/{}/password", w.victim.id),
            &[UsersChange],
        )
        .fields(|i| vec![("password", format!("new password {i}"))]),
        case(
            Post,
            |w, _| format!("/admin/users/{}/access", w.victim.id),
            &[GroupsChange],
        ),
        case(
            Post,
            |w, _| format!("/admin/users/{}/deactivate", w.victim.id),
            &[UsersDeactivate],
        ),
        case(
            Post,
            |w, _| format!("/admin/users/{}/reactivate", w.victim.id),
            &[UsersDeactivate],
        ),
        case(Post, |_, _| "/admin/groups".into(), &[GroupsChange])
            .fields(|i| vec![("name", format!("group {i}"))]),
        case(
            Post,
            |w, _| format!("/admin/groups/{}", w.group),
            &[GroupsChange],
        )
        .fields(|_| vec![("name", "moderators".into())]),
        case(Post, |_, _| "/admin/rooms/new".into(), &[RoomsChange])
            .fields(|i| vec![("slug", format!("made{i}")), ("kind", "private".into())]),
        case(
            Post,
            |w, _| format!("/admin/rooms/{}", w.room),
            &[RoomsChange],
        )
        .fields(|i| vec![("name", format!("Team {i}")), ("topic", String::new())]),
        case(
            Post,
            |w, _| format!("/admin/rooms/{}/archive", w.room),
            &[RoomsChange],
        )
        .fields(|_| vec![("archived", "0".into())]),
        case(
            Post,
            |w, _| format!("/admin/rooms/{}/members", w.room),
            &[RoomsChange],
        )
        .fields(|_| vec![("username", "victim".into()), ("role", "owner".into())]),
        case(
            Post,
            |w, i| format!("/admin/rooms/{}/delete", w.doomed_rooms[i]),
            &[RoomsDelete],
        ),
        case(
            Post,
            |w, _| format!("/admin/messages/{}/delete", w.message),
            &[MessagesDelete],
        ),
        case(
            Post,
            |w, _| format!("/admin/messages/{}/restore", w.message),
            &[MessagesDelete],
        ),
        case(
            Post,
            |w, _| format!("/admin/sessions/{}/revoke", w.session),
            &[SessionsRevoke],
        ),
        case(
            Post,
            |w, _| format!("/admin/users/{}/sessions/revoke", w.victim.id),
            &[SessionsRevoke],
        ),
        case(
            Post,
            |w, i| format!("/admin/attachments/{}/delete", w.attachments[i]),
            &[AttachmentsDelete],
        ),
    ]
}

async fn permission_matrix(backend: Backend) {
    let app = spawn(backend).await;
    let w = world(&app).await;
    make_user(&app, "boss", true, true, &[]).await;
    make_user(&app, "plain", false, false, &[]).await;
    make_user(&app, "bare-staff", true, false, &[]).await;
    let (boss, boss_token) = signed_in(&app, "boss").await;
    let (plain, plain_token) = signed_in(&app, "plain").await;
    let (bare, _) = signed_in(&app, "bare-staff").await;
    let anon = client();
    let anon_token = get_csrf(&anon, &app, "/login").await;

    // The dashboard needs staff status only.
    assert_eq!(get(&boss, &app, "/admin/").await.0, StatusCode::OK);
    let (status, body) = get(&bare, &app, "/admin/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !body.contains("href=\"/admin/users\""),
        "links the staff member may not follow are hidden"
    );
    assert_eq!(get(&plain, &app, "/admin/").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&anon, &app, "/admin/").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&plain, &app, "/admin/no-such-page").await.0,
        StatusCode::NOT_FOUND
    );

    let mut clients: std::collections::HashMap<String, (Client, String)> = Default::default();
    for (n, c) in cases().into_iter().enumerate() {
        let with_name = name_for("w", &c.with);
        let without_name = name_for("n", &c.lacks);
        for (name, perms) in [
            (&with_name, c.with.clone()),
            (&without_name, all_but(&c.lacks)),
        ] {
            if !clients.contains_key(name) {
                make_user(&app, name, true, false, &perms).await;
                clients.insert(name.clone(), signed_in(&app, name).await);
            }
        }
        let (with, with_token) = &clients[&with_name];
        let (without, without_token) = &clients[&without_name];
        let actors: [(&Client, &str); 5] = [
            (&boss, &boss_token),
            (with, with_token),
            (without, without_token),
            (&plain, &plain_token),
            (&anon, &anon_token),
        ];
        for (i, (client, token)) in actors.into_iter().enumerate() {
            let path = (c.path)(&w, i);
            let fields = (c.fields)(i);
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, body) = match c.method {
                Method::Get => get(client, &app, &path).await,
                Method::Post => post(client, &app, &path, token, &fields).await,
            };
            let who = [
                "superuser",
                "staff with it",
                "staff without it",
                "plain user",
                "signed out",
            ][i];
            let ok = match (i, c.method) {
                (0 | 1, Method::Get) => status == StatusCode::OK,
                (0 | 1, Method::Post) => status == StatusCode::SEE_OTHER,
                (2, _) => status == StatusCode::FORBIDDEN,
                _ => status == StatusCode::NOT_FOUND,
            };
            assert!(
                ok,
                "case {n}: {:?} {path} as {who} ({:?}) answered {status}: {}",
                c.method == Method::Get,
                c.with,
                &body[..body.len().min(600)]
            );
        }
    }
    // The denied actions changed nothing: the last attachments and rooms are still there.
    let (a, r) = (w.attachments[4], w.doomed_rooms[4]);
    let left = app
        .test_db
        .db
        .run(move |c| {
            let att = repo::admin::find_attachment(c, domain::ids::AttachmentId(a)).is_ok();
            let room = repo::room::find(c, r).is_ok();
            Ok((att, room))
        })
        .await
        .unwrap();
    assert_eq!(left, (true, true));
    let gone = w.attachments[0];
    assert!(
        app.test_db
            .db
            .run(move |c| Ok(
                repo::admin::find_attachment(c, domain::ids::AttachmentId(gone)).is_err()
            ))
            .await
            .unwrap()
    );
    // Every change was audited.
    let audit = app
        .test_db
        .db
        .run(|c| repo::audit::list(c, None, 500))
        .await
        .unwrap();
    for action in [
        "users.create",
        "users.change",
        "users.password",
        "users.access",
        "users.deactivate",
        "users.reactivate",
        "groups.create",
        "groups.change",
        "rooms.create",
        "rooms.change",
        "rooms.unarchive",
        "rooms.member",
        "rooms.delete",
        "rooms.export",
        "messages.delete",
        "messages.restore",
        "messages.view",
        "sessions.revoke_all",
        "attachments.delete",
    ] {
        assert!(
            audit.iter().any(|e| e.action == action),
            "no audit entry {action}"
        );
    }
}

async fn forms_refuse_missing_csrf_and_bad_input(backend: Backend) {
    let app = spawn(backend).await;
    let w = world(&app).await;
    make_user(&app, "boss", true, true, &[]).await;
    let (boss, token) = signed_in(&app, "boss").await;
    let edit = format!("/admin/users/{}", w.victim.id);
    let audit_before = app.test_db.db.run(repo::admin::audit_count).await.unwrap();

    // No token, a wrong token: 403, nothing changes.
    let res = boss
        .post(app.url(&edit))
        .form(&[("display_name", "Hacked")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (status, _) = post(
        &boss,
        &app,
        &edit,
        "x".repeat(43).as_str(),
        &[("display_name", "Hacked")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let path = format!("/admin/messages/{}/delete", w.message);
    let res = boss.post(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Bad input: 400, the message next to its field, nothing stored.
    let (status, body) = post(&boss, &app, &edit, &token, &[("display_name", "   ")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let field = body.find("id=\"display_name\"").expect("the field");
    let error = body.find("id=\"err-display_name\"").expect("the error");
    assert!(
        error > field && !body[field..error].contains("<input"),
        "the error directly follows its field"
    );
    assert!(
        body.contains("Display names have 1–64 characters"),
        "{body}"
    );
    let (status, body) = post(
        &boss,
        &app,
        "/admin/users/new",
        &token,
        &[
            ("username", "no spaces allowed"),
            ("password", "a long password"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("id=\"err-username\""));
    assert!(
        body.contains("value=\"no spaces allowed\""),
        "the input is kept"
    );
    let (status, body) = post(
        &boss,
        &app,
        "/admin/users/new",
        &token,
        &[("username", "VICTIM"), ("password", "a long password")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("id=\"err-username\"") && body.contains("taken"),
        "{body}"
    );
    let (status, body) = post(
        &boss,
        &app,
        &format!("/admin/users/{}/password", w.victim.id),
        &token,
        &[("password", "short")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("id=\"err-password\""));
    let (status, body) = post(
        &boss,
        &app,
        "/admin/rooms/new",
        &token,
        &[("slug", "Bad Slug!")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("id=\"err-slug\""));
    let (status, body) = post(
        &boss,
        &app,
        &format!("/admin/rooms/{}/members", w.room),
        &token,
        &[("username", "nobody"), ("role", "king")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("id=\"err-username\"") && body.contains("id=\"err-role\""));
    let (status, body) = get(&boss, &app, "/admin/messages?from=yesterday&room=nowhere").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("id=\"err-from\"") && body.contains("id=\"err-room\""));
    let general = app
        .test_db
        .db
        .run(|c| repo::room::find_by_slug(c, "general"))
        .await
        .unwrap()
        .unwrap();
    let (status, body) = post(
        &boss,
        &app,
        &format!("/admin/rooms/{}/delete", general.id),
        &token,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("cannot be deleted"));

    let vid = w.victim.id;
    let (victim, users, audit_after) = app
        .test_db
        .db
        .run(move |c| {
            Ok((
                repo::user::find(c, vid)?,
                repo::user::count(c)?,
                repo::admin::audit_count(c)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(victim.display_name, "Victim");
    assert_eq!(users, 2, "no user was created");
    assert_eq!(
        audit_after, audit_before,
        "refused changes leave no audit entry"
    );
    assert!(
        app.test_db
            .db
            .run(|c| repo::room::find_by_slug(c, "general"))
            .await
            .unwrap()
            .is_some()
    );
}

async fn message_deletion_and_restoration_are_published(backend: Backend) {
    let app = spawn(backend).await;
    let w = world(&app).await;
    make_user(&app, "mod", true, false, &[Permission::MessagesDelete]).await;
    let (c, token) = signed_in(&app, "mod").await;
    app.bus.subscribe(Topic::Room(w.room)).await.unwrap();
    let mut events = app.bus.events();

    let (status, body) = get(&c, &app, &format!("/admin/messages/{}/delete", w.message)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("hush"), "no body without messages.view");
    let (status, _) = post(
        &c,
        &app,
        &format!("/admin/messages/{}/delete", w.message),
        &token,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let got = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.topic, Topic::Room(w.room));
    assert_eq!(
        got.event,
        Event::Deleted {
            room_id: w.room,
            room: "team".into(),
            id: w.message
        }
    );
    let (mid, keys) = (w.message, app.app_state.message_keys.clone());
    let m = app
        .test_db
        .db
        .run(move |c| repo::message::find(c, &keys, mid))
        .await
        .unwrap();
    assert!(m.deleted_at.is_some());

    let (status, _) = post(
        &c,
        &app,
        &format!("/admin/messages/{}/restore", w.message),
        &token,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let got = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    match &got.event {
        Event::Restored { room_id, message } => {
            assert_eq!(
                (*room_id, message.id, message.body.as_str(), message.deleted),
                (w.room, w.message, "hush", false)
            );
        }
        other => panic!("expected restored, got {other:?}"),
    }
}

async fn deactivation_signs_out_and_publishes(backend: Backend) {
    let app = spawn(backend).await;
    let victim = app.create_user("victim", "").await;
    let vc = client();
    sign_in(&vc, &app, "victim").await;
    make_user(
        &app,
        "hr",
        true,
        false,
        &[Permission::UsersDeactivate, Permission::UsersView],
    )
    .await;
    let (c, token) = signed_in(&app, "hr").await;
    app.bus.subscribe(Topic::User(victim.id)).await.unwrap();
    let mut events = app.bus.events();

    let (status, body) = get(&c, &app, &format!("/admin/users/{}/deactivate", victim.id)).await;
    assert_eq!(status, StatusCode::OK, "a confirmation page first");
    assert!(body.contains(&format!("action=\"/admin/users/{}/deactivate\"", victim.id)));
    let (status, _) = post(
        &c,
        &app,
        &format!("/admin/users/{}/deactivate", victim.id),
        &token,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let got = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.event, Event::UserDeactivated { user_id: victim.id });
    assert!(!is_signed_in(&vc, &app).await);
    let vid = victim.id;
    assert!(
        app.test_db
            .db
            .run(move |c| repo::session::list_live(c, vid))
            .await
            .unwrap()
            .is_empty()
    );
    // Staff cannot deactivate themselves.
    let me = app
        .test_db
        .db
        .run(|c| repo::user::find_by_username(c, "hr"))
        .await
        .unwrap()
        .unwrap();
    let (status, _) = post(
        &c,
        &app,
        &format!("/admin/users/{}/deactivate", me.id),
        &token,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn superuser_powers_stay_with_superusers(backend: Backend) {
    let app = spawn(backend).await;
    let boss = make_user(&app, "boss", true, true, &[]).await;
    let victim = app.create_user("victim", "").await;
    make_user(
        &app,
        "hr",
        true,
        false,
        &[
            Permission::UsersChange,
            Permission::UsersView,
            Permission::GroupsChange,
        ],
    )
    .await;
    let (c, token) = signed_in(&app, "hr").await;
    let (status, body) = get(&c, &app, &format!("/admin/users/{}", victim.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !body.contains("name=\"is_superuser\""),
        "the superuser box is hidden"
    );
    let (status, body) = post(
        &c,
        &app,
        &format!("/admin/users/{}", victim.id),
        &token,
        &[("display_name", "V"), ("is_superuser", "1")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("id=\"err-is_superuser\""));
    let (status, _) = post(
        &c,
        &app,
        &format!("/admin/users/{}/password", boss.id),
        &token,
        &[("password", "taken over now")],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a superuser's account is out of reach"
    );
    // Permissions: only those held may be granted.
    let (status, body) = post(
        &c,
        &app,
        &format!("/admin/users/{}/access", victim.id),
        &token,
        &[("permission", "audit.view")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("id=\"err-access\""));
    let (status, _) = post(
        &c,
        &app,
        &format!("/admin/users/{}/access", victim.id),
        &token,
        &[("permission", "users.view")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let vid = victim.id;
    let (v, perms) = app
        .test_db
        .db
        .run(move |c| {
            Ok((
                repo::user::find(c, vid)?,
                repo::group::effective_permissions(c, vid)?,
            ))
        })
        .await
        .unwrap();
    assert!(!v.is_superuser);
    assert_eq!(
        perms.into_iter().collect::<Vec<_>>(),
        vec![Permission::UsersView]
    );
}

async fn private_messages_are_shown_only_with_view_and_audited(backend: Backend) {
    let app = spawn(backend).await;
    let w = world(&app).await;
    make_user(&app, "reader", true, false, &[Permission::MessagesView]).await;
    make_user(&app, "janitor", true, false, &[Permission::MessagesDelete]).await;
    let (janitor, _) = signed_in(&app, "janitor").await;
    let (status, body) = get(&janitor, &app, "/admin/messages?room=team").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !body.contains("hush") && body.contains(&format!("/admin/messages/{}/delete", w.message))
    );
    let (reader, _) = signed_in(&app, "reader").await;
    let (status, body) = get(&reader, &app, "/admin/messages?author=victim").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("hush"));
    assert!(
        !body.contains(&format!("/admin/messages/{}/delete", w.message)),
        "no delete link without messages.delete"
    );
    let audit = app
        .test_db
        .db
        .run(|c| repo::audit::list(c, None, 50))
        .await
        .unwrap();
    let seen = audit
        .iter()
        .find(|e| e.action == "messages.view")
        .expect("the read is audited");
    assert_eq!(seen.target_id, w.room.to_string());
    assert_eq!(seen.detail["messages"], serde_json::json!([w.message.0]));
}

async fn export_downloads_the_room(backend: Backend) {
    let app = spawn(backend).await;
    let w = world(&app).await;
    make_user(&app, "boss", true, true, &[]).await;
    let (c, _) = signed_in(&app, "boss").await;
    let res = c
        .get(app.url(&format!("/admin/rooms/{}/export", w.room)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("confab-room-team.json")
    );
    let bytes = res.bytes().await.unwrap();
    let e = domain::export::read_json(&bytes[..]).unwrap();
    assert_eq!(e.room.slug, "team");
    assert_eq!(e.messages.len(), 1);
    assert_eq!(e.messages[0].body, "hush");
    assert_eq!(e.messages[0].attachments.len(), 5);
    assert!(
        e.room
            .members
            .iter()
            .any(|m| m.username == "victim" && m.role == RoomRole::Owner)
    );
}

async fn user_list_pages_by_key_and_speaks_german(backend: Backend) {
    let app = spawn(backend).await;
    make_user(&app, "boss", true, true, &[]).await;
    let cost = app.settings().bcrypt_cost;
    app.test_db
        .db
        .run(move |c| {
            for i in 0..60 {
                repo::user::create(
                    c,
                    &NewUser {
                        username: format!("u{i:02}"),
                        display_name: String::new(),
                        password: PASSWORD.into(),
                        is_staff: false,
                        is_superuser: false,
                    },
                    cost,
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let (c, _) = signed_in(&app, "boss").await;
    let mut seen = Vec::new();
    let mut path = "/admin/users?q=u&sort=username&staff=no".to_owned();
    loop {
        let (status, body) = get(&c, &app, &path).await;
        assert_eq!(status, StatusCode::OK);
        for piece in body.split("\">u").skip(1) {
            if let Some(name) = piece.split('<').next().filter(|n| n.len() == 2) {
                seen.push(format!("u{name}"));
            }
        }
        match body
            .split("<p><a href=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        {
            Some(next) if next.starts_with("/admin/users?") => path = next.replace("&amp;", "&"),
            _ => break,
        }
    }
    let want: Vec<String> = (0..60).map(|i| format!("u{i:02}")).collect();
    assert_eq!(
        seen, want,
        "two keyset pages, in username order, nothing twice"
    );
    let body = c
        .get(app.url("/admin/"))
        .header("accept-language", "de")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("Übersicht") && body.contains("Verwaltung"),
        "admin.ftl is loaded: {body}"
    );
}

both_backends!(
    permission_matrix,
    forms_refuse_missing_csrf_and_bad_input,
    message_deletion_and_restoration_are_published,
    deactivation_signs_out_and_publishes,
    superuser_powers_stay_with_superusers,
    private_messages_are_shown_only_with_view_and_audited,
    export_downloads_the_room,
    user_list_pages_by_key_and_speaks_german,
);
