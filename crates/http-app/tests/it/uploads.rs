//! Uploads and media over real HTTP: sniffed types, limits, decompression bombs, broken
//! files, EXIF stripped, nothing left on disk after a refusal, members-only serving,
//! ranges, and the nginx hand-off.

use crate::{both_backends, helpers::*};
use domain::{
    bus::{Event, Topic},
    db::Backend,
    model::{RoomKind, RoomRole, User},
    repo::{self, room::NewRoom},
};
use image::{ImageFormat, RgbImage, RgbaImage};
use reqwest::{
    Client, StatusCode,
    multipart::{Form, Part},
};
use serde_json::Value;
use std::{
    io::Cursor,
    path::{Path, PathBuf},
    time::Duration,
};

/// A running app whose data folder (and so media) is a fresh temporary one.
struct MediaApp {
    app: TestApp,
    dir: tempfile::TempDir,
}

impl MediaApp {
    /// A signed-in superuser, for the admin's side of a scenario.
    async fn superuser(&self) -> reqwest::Client {
        let new = repo::user::NewUser {
            username: "boss".into(),
            display_name: String::new(),
            password: PASSWORD.into(),
            is_staff: true,
            is_superuser: true,
        };
        let cost = self.app.settings().bcrypt_cost;
        self.app
            .test_db
            .db
            .run(move |c| repo::user::create(c, &new, cost))
            .await
            .expect("superuser");
        let boss = client();
        sign_in(&boss, &self.app, "boss").await;
        boss
    }

    async fn spawn(backend: Backend, tweak: impl FnOnce(&mut domain::settings::Settings)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().to_owned();
        let app = spawn_with(backend, |s, _| {
            s.data_dir = data;
            tweak(s);
        })
        .await;
        MediaApp { app, dir }
    }

    fn media_dir(&self) -> PathBuf {
        self.dir.path().join("media")
    }

    /// Every file under `media/`, `tmp/` included.
    fn files(&self) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(p) else {
                return;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.media_dir(), &mut out);
        out.sort();
        out
    }

    async fn signed_in(&self, username: &str) -> (User, Client, String) {
        let user = self.app.create_user(username, "").await;
        let c = client();
        sign_in(&c, &self.app, username).await;
        let token = get_csrf(&c, &self.app, "/rooms").await;
        (user, c, token)
    }

    async fn private_room(&self, slug: &str, owner: &User, members: &[&User]) {
        let new = NewRoom {
            slug: slug.into(),
            name: String::new(),
            topic: String::new(),
            kind: RoomKind::Private,
            created_by: Some(owner.id),
        };
        let ids: Vec<_> = members.iter().map(|u| u.id).collect();
        self.app
            .test_db
            .db
            .run(move |c| {
                let room = repo::room::create(c, &new)?;
                for id in ids {
                    repo::room::add_member(c, room.id, id, RoomRole::Member)?;
                }
                Ok(())
            })
            .await
            .expect("room");
    }
}

async fn upload(
    c: &Client,
    app: &TestApp,
    token: &str,
    room: &str,
    name: &str,
    declared: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let part = Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(declared)
        .expect("mime");
    let res = c
        .post(app.url(&format!("/uploads?room={room}")))
        .header("X-CSRF-Token", token)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .expect("POST /uploads");
    let status = res.status();
    let body = res.text().await.expect("body");
    let json =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON ({status}): {body}"));
    (status, json)
}

/// Confirms an admin action: the CSRF token of the confirmation page at `path`, posted
/// back to it. The status, and the token (good for further posts in the same session).
async fn admin_post(c: &reqwest::Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let token = get_csrf(c, app, path).await;
    let res = c
        .post(app.url(path))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .expect("POST");
    (res.status(), token)
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, y| image::Rgba([x as u8, y as u8, 200, 255]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).expect("png");
    out.into_inner()
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    // Noise, so the file is long enough to cut in the middle of its data.
    let mut seed = 7u32;
    let img = RgbImage::from_fn(w, h, |_, _| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let b = (seed >> 16) as u8;
        image::Rgb([b, b.wrapping_mul(3), b.wrapping_add(90)])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Jpeg).expect("jpeg");
    out.into_inner()
}

/// A JPEG carrying an EXIF segment with a recognisable "location".
fn jpeg_with_exif(secret: &str) -> Vec<u8> {
    let plain = jpeg(40, 30);
    let mut payload = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\0".to_vec();
    payload.extend_from_slice(secret.as_bytes());
    let len = (payload.len() + 2) as u16;
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&plain[2..]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A tiny PNG declaring a 50000×50000 canvas: 2.5 gigapixels from a few dozen bytes.
fn png_bomb() -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    // A zlib stream of nothing much; the header alone must get it refused.
    out.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    out.extend(chunk(b"IEND", &[]));
    out
}

fn mp4(len: usize) -> Vec<u8> {
    let mut out = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2".to_vec();
    out.extend((0..len - out.len()).map(|i| (i % 251) as u8));
    out
}

async fn pictures_are_sniffed_reencoded_and_served_to_members_only(backend: Backend) {
    let m = MediaApp::spawn(backend, |_| {}).await;
    let app = &m.app;
    let (alice, a, a_token) = m.signed_in("alice").await;
    let (bob, b, _) = m.signed_in("bob").await;
    let (_carol, c, _) = m.signed_in("carol").await;
    m.private_room("team", &alice, &[&bob]).await;
    let team = app
        .test_db
        .db
        .run(|c| repo::room::find_by_slug(c, "team"))
        .await
        .expect("db")
        .expect("team");
    app.bus
        .subscribe(Topic::Room(team.id))
        .await
        .expect("subscribe");
    let mut events = app.bus.events();

    // A PNG named and declared as a video is stored as what it is: a PNG.
    let (status, up) = upload(
        &a,
        app,
        &a_token,
        "team",
        "clip.mp4",
        "video/mp4",
        png(64, 48),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    assert_eq!(up["content_type"], "image/png");
    assert_eq!(up["kind"], "image");
    assert_eq!(
        (up["width"].as_i64(), up["height"].as_i64()),
        (Some(64), Some(48))
    );
    assert_eq!(up["sha256"].as_str().map(str::len), Some(64));
    let id = up["id"].as_i64().expect("id");

    // Fanned out like any message.
    let env = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event")
        .expect("bus");
    let Event::Message { message, .. } = &env.event else {
        panic!("not a message: {env:?}");
    };
    assert_eq!(message.kind, "attachment");
    assert_eq!(message.id.0, up["message_id"].as_i64().expect("message id"));
    let body: Value = serde_json::from_str(&message.body).expect("JSON body");
    assert_eq!(body["attachment"], id);
    assert_eq!(body["content_type"], "image/png");
    assert_eq!(body["thumb"], true);

    // Members get it, with the sniffed type and safe headers.
    let res = b
        .get(app.url(&format!("/media/{id}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("inline")
    );
    let bytes = res.bytes().await.expect("bytes");
    let decoded = image::load_from_memory(&bytes).expect("a valid picture");
    assert_eq!((decoded.width(), decoded.height()), (64, 48));
    let res = b
        .get(app.url(&format!("/media/{id}/thumb")))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"],
        "image/png",
        "alpha keeps PNG"
    );

    // Everyone else gets the same 404 as for an id that does not exist.
    for path in [
        format!("/media/{id}"),
        format!("/media/{id}/thumb"),
        "/media/999999".into(),
    ] {
        let res = c.get(app.url(&path)).send().await.expect("GET");
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        let v: Value = res.json().await.expect("JSON");
        assert_eq!(v["error"], "not_found");
    }
    let res = bare_client()
        .get(app.url(&format!("/media/{id}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Carol cannot upload into a room she is not in (404, like an unknown room).
    let c_token = get_csrf(&c, app, "/rooms").await;
    let (status, _) = upload(&c, app, &c_token, "team", "x.png", "image/png", png(8, 8)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // EXIF (and the location in it) does not survive; the picture does.
    let (status, up) = upload(
        &a,
        app,
        &a_token,
        "general",
        "p.jpg",
        "image/jpeg",
        jpeg_with_exif("GPSLatitude=48.8584N"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    assert_eq!(up["content_type"], "image/jpeg");
    let res = a
        .get(app.url(&format!("/media/{}", up["id"])))
        .send()
        .await
        .expect("GET");
    let bytes = res.bytes().await.expect("bytes");
    assert!(!bytes.windows(11).any(|w| w == b"GPSLatitude"), "EXIF kept");
    assert!(!bytes.windows(4).any(|w| w == b"Exif"), "EXIF kept");
    image::load_from_memory(&bytes).expect("still a picture");

    // A deleted message's attachment is gone for everyone.
    let mid = domain::ids::MessageId(message.id.0);
    let keys = app.app_state.message_keys.clone();
    app.test_db
        .db
        .run(move |c| repo::message::set_deleted(c, &keys, mid, true))
        .await
        .expect("delete");
    let res = a
        .get(app.url(&format!("/media/{id}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

async fn refusals_are_clear_and_leave_nothing_on_disk(backend: Backend) {
    let m = MediaApp::spawn(backend, |s| {
        s.max_image_bytes = 64 * 1024;
        s.max_video_bytes = 128 * 1024;
    })
    .await;
    let app = &m.app;
    let (_alice, a, token) = m.signed_in("alice").await;
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "page.png",
            "image/png",
            b"<!doctype html><html><script>alert(1)</script></html>".repeat(4),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
        ),
        (
            "cut.jpg",
            "image/jpeg",
            {
                let j = jpeg(256, 256);
                j[..j.len() / 2].to_vec()
            },
            StatusCode::BAD_REQUEST,
            "broken_file",
        ),
        (
            "bomb.png",
            "image/png",
            png_bomb(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            // Just over the picture limit: refused while streaming (the video limit is
            // higher, so the declared length alone does not give it away).
            "big.png",
            "image/png",
            {
                let mut p = png(8, 8);
                p.resize(64 * 1024 + 1, 0);
                p
            },
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            // Over every limit: refused from the declared length, before reading.
            "huge.mp4",
            "video/mp4",
            mp4(256 * 1024),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            "empty.png",
            "image/png",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "broken_file",
        ),
    ];
    for (name, declared, bytes, status, code) in cases {
        let (got, body) = upload(&a, app, &token, "general", name, declared, bytes).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["error"], code, "{name}: {body}");
        assert!(body["message"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(m.files().is_empty(), "{name} left {:?}", m.files());
    }
    // No CSRF header: refused before anything is read.
    let res = a
        .post(app.url("/uploads?room=general"))
        .multipart(Form::new().part("file", Part::bytes(png(4, 4)).file_name("a.png")))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Not multipart, no file, no room: 400.
    let res = a
        .post(app.url("/uploads?room=general"))
        .header("X-CSRF-Token", &token)
        .body("hello")
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = a
        .post(app.url("/uploads"))
        .header("X-CSRF-Token", &token)
        .multipart(Form::new().part("file", Part::bytes(png(4, 4)).file_name("a.png")))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(m.files().is_empty(), "{:?}", m.files());
    // Nothing was posted either.
    let general = app
        .test_db
        .db
        .run(|c| repo::room::find_by_slug(c, "general"))
        .await
        .expect("db")
        .expect("general");
    let latest = app
        .test_db
        .db
        .run(move |c| repo::message::latest_id(c, general.id))
        .await
        .expect("db");
    assert_eq!(latest, None);
}

async fn videos_are_served_with_ranges(backend: Backend) {
    let m = MediaApp::spawn(backend, |_| {}).await;
    let app = &m.app;
    let (_alice, a, token) = m.signed_in("alice").await;
    let video = mp4(10_000);
    // The room may also come as a field before the file.
    let form = Form::new().text("room", "general").part(
        "file",
        Part::bytes(video.clone())
            .file_name("v.bin")
            .mime_str("application/octet-stream")
            .expect("mime"),
    );
    let res = a
        .post(app.url("/uploads"))
        .header("X-CSRF-Token", &token)
        .multipart(form)
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::CREATED);
    let up: Value = res.json().await.expect("JSON");
    assert_eq!(up["content_type"], "video/mp4");
    assert_eq!(up["kind"], "video");
    assert_eq!(up["size"], 10_000);
    assert_eq!(up["thumb_url"], Value::Null);
    let url = app.url(&format!("/media/{}", up["id"]));

    let res = a
        .get(&url)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()["content-range"], "bytes 100-199/10000");
    assert_eq!(res.headers()["content-type"], "video/mp4");
    assert_eq!(res.headers()["accept-ranges"], "bytes");
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), &video[100..200]);
    let res = a.get(&url).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), &video[..]);
    // Stored byte for byte, under a random key; tmp/ is empty again.
    let files = m.files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).expect("read"), video);
}

async fn behind_nginx_media_is_handed_off(backend: Backend) {
    let m = MediaApp::spawn(backend, |s| s.media_x_accel = true).await;
    let app = &m.app;
    let (_alice, a, token) = m.signed_in("alice").await;
    let (status, up) = upload(&a, app, &token, "general", "a.gif", "image/gif", {
        let img = RgbaImage::from_pixel(10, 10, image::Rgba([255, 0, 0, 255]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Gif).expect("gif");
        out.into_inner()
    })
    .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    assert_eq!(up["content_type"], "image/gif");
    let res = a
        .get(app.url(&format!("/media/{}", up["id"])))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    let accel = res.headers()["x-accel-redirect"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let key = accel
        .strip_prefix("/_protected/")
        .expect("protected location");
    assert!(m.media_dir().join(key).is_file(), "{key} is a stored file");
    assert_eq!(res.headers()["content-type"], "image/gif");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(res.bytes().await.expect("body").is_empty());
}

/// Deleting an attachment in `/admin/attachments` removes its stored file and thumbnail,
/// not only the row.
async fn an_admin_deleting_an_attachment_removes_its_files(backend: Backend) {
    let m = MediaApp::spawn(backend, |_| {}).await;
    let app = &m.app;
    let (_, c, token) = m.signed_in("ana").await;
    let (status, up) = upload(
        &c,
        app,
        &token,
        "general",
        "cat.png",
        "image/png",
        png(64, 48),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let id = up["id"].as_i64().expect("id");
    let stored = m.files();
    assert_eq!(stored.len(), 2, "the picture and its thumbnail: {stored:?}");
    assert!(
        stored
            .iter()
            .any(|p| p.to_string_lossy().contains(".thumb."))
    );

    let boss = m.superuser().await;
    let path = format!("/admin/attachments/{id}/delete");
    let (status, _) = admin_post(&boss, app, &path).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(m.files().is_empty(), "files left behind: {:?}", m.files());
    assert!(stored.iter().all(|p| !p.exists()));
    let res = c
        .get(app.url(&format!("/media/{id}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Soft-deleting an attachment's message hides its media from every member (the author
/// too), thumbnail included, but keeps the files: staff restoring the message brings it
/// back as it was.
async fn a_deleted_messages_media_is_hidden_but_kept_for_restore(backend: Backend) {
    let m = MediaApp::spawn(backend, |_| {}).await;
    let app = &m.app;
    let (_, ana, token) = m.signed_in("ana").await;
    let (_, bob, _) = m.signed_in("bob").await;
    let (status, up) = upload(
        &ana,
        app,
        &token,
        "general",
        "cat.png",
        "image/png",
        png(64, 48),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let id = up["id"].as_i64().expect("id");
    let mid = up["message_id"].as_i64().expect("message id");
    let paths = [format!("/media/{id}"), format!("/media/{id}/thumb")];
    let statuses = |c: &Client| {
        let c = c.clone();
        let paths = paths.clone();
        async move {
            let mut out = Vec::new();
            for path in &paths {
                let res = c.get(app.url(path)).send().await.expect("GET");
                out.push(res.status());
            }
            out
        }
    };
    let ok = vec![StatusCode::OK, StatusCode::OK];
    let gone = vec![StatusCode::NOT_FOUND, StatusCode::NOT_FOUND];
    assert_eq!(statuses(&ana).await, ok);
    assert_eq!(statuses(&bob).await, ok);
    let stored = m.files();
    assert_eq!(stored.len(), 2, "the picture and its thumbnail: {stored:?}");

    let boss = m.superuser().await;
    let path = format!("/admin/messages/{mid}/delete");
    let (status, token) = admin_post(&boss, app, &path).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(statuses(&ana).await, gone, "the author");
    assert_eq!(statuses(&bob).await, gone, "another member");
    assert_eq!(m.files(), stored, "the files are kept for a restore");

    let res = boss
        .post(app.url(&format!("/admin/messages/{mid}/restore")))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .expect("POST restore");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(statuses(&ana).await, ok);
    assert_eq!(statuses(&bob).await, ok);
    let res = bob
        .get(app.url(&format!("/media/{id}")))
        .send()
        .await
        .expect("GET");
    let bytes = res.bytes().await.expect("bytes");
    image::load_from_memory(&bytes).expect("the same picture, still there");
}

async fn uploads_are_limited_per_user_and_per_address(backend: Backend) {
    use diesel::prelude::*;
    use domain::db::schema::attachments;
    let m = MediaApp::spawn(backend, |s| {
        s.uploads_per_user = 3;
        s.uploads_per_address = 5;
        s.uploads_window_secs = 600;
    })
    .await;
    let (_, ann, ann_token) = m.signed_in("ann").await;
    for i in 0..3 {
        let (status, body) = upload(
            &ann,
            &m.app,
            &ann_token,
            "general",
            "a.png",
            "image/png",
            png(8 + i, 8),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // The fourth inside the window: 429, with when to come back.
    let res = ann
        .post(m.app.url("/uploads?room=general"))
        .header("X-CSRF-Token", &ann_token)
        .multipart(Form::new().part("file", Part::bytes(png(9, 9)).file_name("b.png")))
        .send()
        .await
        .expect("POST /uploads");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=600).contains(&wait), "{wait}");
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["error"], "rate_limited");
    // Another user from the same address has the address's remaining two.
    let (_, ben, ben_token) = m.signed_in("ben").await;
    for _ in 0..2 {
        let (status, body) = upload(
            &ben,
            &m.app,
            &ben_token,
            "general",
            "c.png",
            "image/png",
            png(12, 12),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = upload(
        &ben,
        &m.app,
        &ben_token,
        "general",
        "d.png",
        "image/png",
        png(12, 12),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "rate_limited");
    // Everything accepted before the limit is kept; nothing refused was stored.
    let stored: i64 = m
        .app
        .test_db
        .db
        .run(|c| Ok(attachments::table.count().get_result(c)?))
        .await
        .expect("count");
    assert_eq!(stored, 5);
    let tmp = m.media_dir().join("tmp");
    assert!(
        m.files().iter().all(|f| !f.starts_with(&tmp)),
        "no temporary file left: {:?}",
        m.files()
    );
}

both_backends!(
    pictures_are_sniffed_reencoded_and_served_to_members_only,
    refusals_are_clear_and_leave_nothing_on_disk,
    videos_are_served_with_ranges,
    behind_nginx_media_is_handed_off,
    an_admin_deleting_an_attachment_removes_its_files,
    a_deleted_messages_media_is_hidden_but_kept_for_restore,
    uploads_are_limited_per_user_and_per_address,
);
