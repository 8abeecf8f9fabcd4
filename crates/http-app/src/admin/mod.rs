//! `/admin/`: the staff area (users, groups, rooms, messages, sessions, attachments,
//! audit log, room export).
//!
//! Access, decided only by `domain::permissions`:
//! - anyone who is not active staff — signed out included — gets 404, so the admin's
//!   existence is not advertised (as Django hides its admin);
//! - staff lacking the page's or action's permission get 403;
//! - pages show only what the staff member may do, and every handler checks again.
//!
//! Every change is written together with its audit entry in one transaction, and every
//! destructive action has a confirmation page (GET) before the POST that does it.

mod attachments;
mod audit;
mod dashboard;
mod groups;
mod messages;
mod rooms;
mod sessions;
mod users;

use crate::{
    error::{AppError, AppResult},
    extract::{ClientInfo, CurrentUser, Page},
    state::AppState,
};
use actix_web::{
    FromRequest, HttpRequest, HttpResponse,
    dev::Payload,
    http::{StatusCode, header},
    web,
};
use domain::{
    db::DbConn,
    permissions::{self, Action, Permission, Subject},
    repo::audit::{NewEntry, record},
    time::Timestamp,
};
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use std::collections::BTreeMap;

/// Rows per admin list page.
const PAGE_SIZE: i64 = 50;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .configure(dashboard::configure)
            .configure(users::configure)
            .configure(groups::configure)
            .configure(rooms::configure)
            .configure(messages::configure)
            .configure(sessions::configure)
            .configure(attachments::configure)
            .configure(audit::configure),
    );
}

/// A staff member on an admin page: the page basics, who they are, what they may do.
pub(crate) struct Staff {
    pub page: Page,
    pub me: CurrentUser,
    pub subject: Subject,
    pub ip: String,
}

impl FromRequest for Staff {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let page = Page::from_request(&req, &mut Payload::None).await?;
            let Some(me) = page.user.clone() else {
                return Err(AppError::NotFound);
            };
            let user = me.user.clone();
            let subject = page
                .state
                .db
                .run(move |c| permissions::subject(c, user))
                .await?;
            if !permissions::decide(&subject, Action::Admin, None) {
                return Err(AppError::NotFound);
            }
            Ok(Staff {
                page,
                me,
                subject,
                ip: ClientInfo::of(&req).ip,
            })
        })
    }
}

impl Staff {
    pub fn can(&self, p: Permission) -> bool {
        permissions::decide(&self.subject, Action::Staff(p), None)
    }

    /// 403 unless the staff member holds `p`.
    pub fn require(&self, p: Permission) -> AppResult<()> {
        if self.can(p) {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// 403 unless the staff member holds one of `ps`.
    pub fn require_any(&self, ps: &[Permission]) -> AppResult<()> {
        if ps.iter().any(|p| self.can(*p)) {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    pub fn is_superuser(&self) -> bool {
        self.subject.user.is_active && self.subject.user.is_superuser
    }

    pub fn state(&self) -> &AppState {
        &self.page.state
    }

    pub fn t(&self, key: &str) -> String {
        self.page.t(key)
    }

    /// The password policy's verdict on a password set through the admin, translated.
    pub fn password_policy_error(
        &self,
        password: &str,
        user: &domain::password_policy::UserAttributes<'_>,
    ) -> Option<String> {
        crate::routes::password_policy_error(&self.state().settings, self.page.lang, password, user)
    }

    /// The base context plus `can` (one flag per permission, `users_view` for
    /// `users.view`), `is_superuser` and `section` for the navigation.
    pub fn context(&self, section: &str) -> tera::Context {
        let mut ctx = self.page.context();
        let can: BTreeMap<String, bool> = Permission::ALL
            .iter()
            .map(|p| (p.as_str().replace('.', "_"), self.can(*p)))
            .collect();
        ctx.insert("can", &can);
        ctx.insert("is_superuser", &self.is_superuser());
        ctx.insert("section", section);
        ctx
    }

    pub fn render(&self, template: &str, ctx: &tera::Context) -> AppResult<HttpResponse> {
        self.page.render(template, ctx)
    }

    /// A form shown again with its errors: 400, so scripts and tests see the refusal.
    pub fn render_invalid(&self, template: &str, ctx: &tera::Context) -> AppResult<HttpResponse> {
        self.page
            .render_status(StatusCode::BAD_REQUEST, template, ctx)
    }

    /// A form page: 400 when it is shown again with errors, 200 otherwise.
    pub fn render_form(
        &self,
        template: &str,
        ctx: &tera::Context,
        invalid: bool,
    ) -> AppResult<HttpResponse> {
        if invalid {
            self.render_invalid(template, ctx)
        } else {
            self.render(template, ctx)
        }
    }

    /// The audit entry for a change this staff member makes, to be recorded in the same
    /// transaction as the change.
    pub fn note(
        &self,
        action: &'static str,
        target_type: &'static str,
        target_id: impl ToString,
        detail: serde_json::Value,
    ) -> Note {
        Note {
            actor: self.me.id(),
            action,
            target_type,
            target_id: target_id.to_string(),
            detail,
            ip: self.ip.clone(),
        }
    }
}

/// An audit entry waiting to be written (owned, so it can move into `Db::run`).
#[derive(Debug, Clone)]
pub(crate) struct Note {
    actor: domain::ids::UserId,
    action: &'static str,
    target_type: &'static str,
    target_id: String,
    detail: serde_json::Value,
    ip: String,
}

impl Note {
    /// For a change whose target gets its id only inside the transaction.
    pub fn set_target(&mut self, id: impl ToString) {
        self.target_id = id.to_string();
    }

    /// For a detail known only once the work is done.
    pub fn set_detail(&mut self, detail: serde_json::Value) {
        self.detail = detail;
    }

    pub fn record(&self, conn: &mut DbConn) -> domain::Result<()> {
        record(
            conn,
            &NewEntry {
                actor: Some(self.actor),
                action: self.action,
                target_type: self.target_type,
                target_id: self.target_id.clone(),
                detail: self.detail.clone(),
                ip: Some(&self.ip),
            },
        )
    }
}

/// Field → translated message, for errors shown next to their field. Templates read
/// `errors.<field>`; [`Errors::into_context`] fills every expected field (null when
/// fine) so a template never meets an undefined name.
#[derive(Debug, Default)]
pub(crate) struct Errors(BTreeMap<&'static str, String>);

impl Errors {
    pub fn add(&mut self, field: &'static str, message: String) {
        self.0.entry(field).or_insert(message);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_context(self, fields: &[&'static str]) -> BTreeMap<&'static str, Option<String>> {
        let mut out: BTreeMap<&'static str, Option<String>> =
            fields.iter().map(|f| (*f, None)).collect();
        for (k, v) in self.0 {
            out.insert(k, Some(v));
        }
        out
    }
}

/// The translated message for a domain validation error, and the field it belongs to.
pub(crate) fn field_error(
    staff: &Staff,
    e: &domain::DomainError,
) -> Option<(&'static str, String)> {
    match e {
        domain::DomainError::Invalid { field, .. } => {
            let key = crate::routes::invalid_field_key(e).unwrap_or("form-invalid");
            Some((field, staff.t(key)))
        }
        _ => None,
    }
}

/// `2026-11-27 14:05:09 UTC`.
pub(crate) fn when(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    match (s.get(..10), s.get(11..19)) {
        (Some(d), Some(hms)) => format!("{d} {hms} UTC"),
        _ => s,
    }
}

/// `YYYY-MM-DD` as the first microsecond of that day, UTC.
pub fn parse_date(s: &str) -> Option<Timestamp> {
    let mut parts = s.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil, years >= 1970 here).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(Timestamp(days * 86_400 * 1_000_000))
}

/// A local link with query parameters, for "next page" links that keep the filters.
pub(crate) fn link(path: &str, params: &[(&str, String)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// After a successful POST: back to a page (303).
pub(crate) fn done(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A checkbox or select value from a form given as pairs (repeated names allowed).
pub(crate) fn values<'a>(form: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    form.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

pub(crate) fn value<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    values(form, name).first().copied().unwrap_or("")
}

/// A permission as the pages show it: its name and whether it is set.
#[derive(Debug, Serialize)]
pub(crate) struct PermissionView {
    pub name: &'static str,
    pub checked: bool,
    /// Whether this staff member may change it (they may grant only what they hold).
    pub grantable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_links() {
        assert_eq!(
            parse_date("2025-11-24").map(|t| t.0),
            Some(1_763_942_400_000_000)
        );
        assert_eq!(parse_date("2025-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(
            link(
                "/admin/users",
                &[("q", "a b&c".into()), ("after", String::new())]
            ),
            "/admin/users?q=a%20b%26c"
        );
    }
}
