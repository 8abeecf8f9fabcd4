//! `confab export-room SLUG [--output FILE]` and `confab import-room FILE`: the room
//! export format of `docs/export-format.md`, over `domain::export`.

use super::open;
use crate::cli::CliError;
use domain::{export, repo, settings::Settings};
use std::{fs::File, io::Write, path::PathBuf};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The room's slug.
    pub slug: String,
    /// Where to write the JSON; standard output when absent.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A file written by `export-room` (or the admin's export).
    pub file: PathBuf,
}

pub fn export_room(settings: &Settings, args: ExportArgs) -> Result<(), CliError> {
    let keys = settings.message_keys()?;
    let db = open(settings)?;
    let mut conn = db.get()?;
    let e = export::export_room(&mut conn, &keys, &args.slug).map_err(|e| match e {
        domain::DomainError::NotFound => CliError::Refused(format!("no room #{}", args.slug)),
        other => other.into(),
    })?;
    let write_err = |e: std::io::Error| CliError::Refused(format!("cannot write the export: {e}"));
    match &args.output {
        Some(path) => {
            // Written beside the target and renamed, so a failed export never leaves a
            // truncated file where a good one is expected.
            let tmp = path.with_extension("partial");
            let mut f = File::create(&tmp).map_err(write_err)?;
            export::write_json(&e, &mut f)?;
            f.write_all(b"\n")
                .and_then(|()| f.sync_all())
                .map_err(write_err)?;
            std::fs::rename(&tmp, path).map_err(write_err)?;
            eprintln!(
                "Exported #{} ({} messages) to {}.",
                e.room.slug,
                e.messages.len(),
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            export::write_json(&e, &mut out)?;
            out.write_all(b"\n").map_err(write_err)?;
        }
    }
    repo::audit::record(
        &mut conn,
        &repo::audit::NewEntry {
            actor: None,
            action: "rooms.export",
            target_type: "room",
            target_id: e.room.slug.clone(),
            detail: serde_json::json!({"messages": e.messages.len(), "via": "cli"}),
            ip: None,
        },
    )?;
    Ok(())
}

pub fn import_room(settings: &Settings, args: ImportArgs) -> Result<(), CliError> {
    let keys = settings.message_keys()?;
    let file = File::open(&args.file)
        .map_err(|e| CliError::Refused(format!("cannot read {}: {e}", args.file.display())))?;
    let e = export::read_json(file)?;
    let db = open(settings)?;
    let mut conn = db.get()?;
    let report = export::import_room(&mut conn, &keys, &e)?;
    if report.changed() {
        repo::audit::record(
            &mut conn,
            &repo::audit::NewEntry {
                actor: None,
                action: "rooms.import",
                target_type: "room",
                target_id: report.room_id.to_string(),
                detail: serde_json::json!({
                    "slug": report.slug,
                    "messages": report.messages_imported,
                    "users_created": report.users_created,
                    "via": "cli",
                }),
                ip: None,
            },
        )?;
    }
    println!(
        "Imported #{}: room {}, {} message(s) added, {} already present, {} member(s) added, {} attachment(s), {} inactive account(s) created{}.",
        report.slug,
        if report.room_created {
            "created"
        } else {
            "existed"
        },
        report.messages_imported,
        report.messages_skipped,
        report.members_added,
        report.attachments_imported,
        report.users_created.len(),
        if report.ids_preserved {
            ", ids kept"
        } else {
            ""
        },
    );
    Ok(())
}
