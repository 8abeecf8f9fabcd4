use super::open;
use crate::cli::CliError;
use domain::{model::RoomKind, repo, settings::Settings};

#[derive(Debug, clap::Args)]
pub struct CreateRoomArgs {
    /// The room's URL name: lowercase letters, digits, '-' and '_'.
    pub slug: String,
    /// Display name (defaults to the slug).
    #[arg(long, default_value = "")]
    pub name: String,
    #[arg(long, default_value = "")]
    pub topic: String,
    /// Members only, by invitation (public rooms are open to every user).
    #[arg(long)]
    pub private: bool,
}

pub fn create(settings: &Settings, args: CreateRoomArgs) -> Result<(), CliError> {
    let db = open(settings)?;
    let mut conn = db.get()?;
    let room = repo::room::create(
        &mut conn,
        &repo::room::NewRoom {
            slug: args.slug,
            name: args.name,
            topic: args.topic,
            kind: if args.private {
                RoomKind::Private
            } else {
                RoomKind::Public
            },
            created_by: None,
        },
    )?;
    repo::audit::record(
        &mut conn,
        &repo::audit::NewEntry {
            actor: None,
            action: "rooms.create",
            target_type: "room",
            target_id: room.id.to_string(),
            detail: serde_json::json!({"slug": room.slug, "via": "cli"}),
            ip: None,
        },
    )?;
    println!("Created {} room #{}.", room.kind, room.slug);
    Ok(())
}
