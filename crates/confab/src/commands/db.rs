use super::open;
use crate::cli::CliError;
use domain::{repo, settings::Settings};

pub fn migrate(settings: &Settings) -> Result<(), CliError> {
    let db = open(settings)?;
    let applied = db.migrate()?;
    let mut conn = db.get()?;
    let general = repo::room::ensure_general(&mut conn)?;
    println!(
        "Applied {applied} migration(s) to the {:?} database; room #{} is ready.",
        db.backend(),
        general.slug
    );
    Ok(())
}
