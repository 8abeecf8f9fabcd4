//! `GET /media/{id}` and `GET /media/{id}/thumb`: an attachment's bytes, only for
//! members of its room (anyone else, and a deleted message's attachment, gets the same
//! 404 as an unknown id).
//!
//! With `media_x_accel` (behind the shipped nginx) the answer is an empty response with
//! `X-Accel-Redirect: /_protected/<key>` and nginx sends the file; otherwise the service
//! streams it itself with range support. Either way: the sniffed `Content-Type`,
//! `X-Content-Type-Options: nosniff`, `Content-Disposition: inline`, private caching.

use super::api::{ApiError, ApiUser};
use crate::{media::MediaDirs, state::AppState};
use actix_files::NamedFile;
use actix_web::{
    HttpRequest, HttpResponse, get,
    http::header::{self, ContentDisposition, DispositionType, HeaderValue},
    mime, web,
};
use domain::{ids::AttachmentId, repo};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(original).service(thumbnail);
}

#[get("/media/{id}")]
async fn original(
    req: HttpRequest,
    me: ApiUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    serve(req, me, state, id.into_inner(), false).await
}

#[get("/media/{id}/thumb")]
async fn thumbnail(
    req: HttpRequest,
    me: ApiUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    serve(req, me, state, id.into_inner(), true).await
}

async fn serve(
    req: HttpRequest,
    me: ApiUser,
    state: web::Data<AppState>,
    id: i64,
    thumb: bool,
) -> Result<HttpResponse, ApiError> {
    let uid = me.user().id;
    let a = state
        .db
        .run(move |c| repo::attachment::find_for_member(c, AttachmentId(id), uid))
        .await?;
    let (key, content_type) = if thumb {
        let key = a.thumbnail_key.ok_or_else(ApiError::not_found)?;
        // Our own thumbnails: the extension we gave them says what they are.
        let ct = if key.ends_with(".png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        (key, ct.to_owned())
    } else {
        (a.storage_key, a.content_type)
    };
    let dirs = MediaDirs::new(&state.settings.data_dir);
    let path = dirs.path_of(&key).ok_or_else(ApiError::not_found)?;
    let mut res = if state.settings.media_x_accel {
        HttpResponse::Ok()
            .insert_header(("X-Accel-Redirect", format!("/_protected/{key}")))
            .insert_header((header::CONTENT_TYPE, content_type.clone()))
            .insert_header((header::CONTENT_DISPOSITION, "inline"))
            .finish()
    } else {
        let mime: mime::Mime = content_type
            .parse()
            .unwrap_or(mime::APPLICATION_OCTET_STREAM);
        let file = web::block(move || NamedFile::open(&path))
            .await
            .map_err(|e| ApiError::from(domain::DomainError::Internal(e.to_string())))?
            .map_err(|e| {
                tracing::error!(error = %e, attachment_id = id, "a stored media file is missing");
                ApiError::not_found()
            })?;
        file.set_content_type(mime)
            .set_content_disposition(ContentDisposition {
                disposition: DispositionType::Inline,
                parameters: Vec::new(),
            })
            .into_response(&req)
    };
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Private: only this user's browser may keep it; ids never change content.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    Ok(res)
}
