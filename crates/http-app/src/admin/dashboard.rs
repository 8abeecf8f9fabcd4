//! `/admin/`: counts, and the latest audit entries for those who may read the log.

use super::{Staff, audit::EntryView};
use crate::error::AppResult;
use actix_web::{HttpResponse, get, web};
use domain::{permissions::Permission, repo::admin};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(index);
}

#[get("/")]
async fn index(staff: Staff) -> AppResult<HttpResponse> {
    let with_audit = staff.can(Permission::AuditView);
    let (counts, recent) = staff
        .state()
        .db
        .run(move |c| {
            let counts = admin::counts(c)?;
            let recent = if with_audit {
                admin::list_audit(c, None, 10)?.rows
            } else {
                Vec::new()
            };
            Ok((counts, recent))
        })
        .await?;
    let mut ctx = staff.context("dashboard");
    ctx.insert("counts", &counts);
    ctx.insert(
        "entries",
        &recent.iter().map(EntryView::of).collect::<Vec<_>>(),
    );
    staff.render("admin/dashboard.html", &ctx)
}
