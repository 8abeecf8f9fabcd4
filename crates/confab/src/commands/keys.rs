use super::open;
use crate::cli::CliError;
use domain::{repo, settings::Settings};
use std::time::Duration;

/// Re-encrypts, batch by batch, every row not sealed with the current key. Each batch is
/// its own short transaction, with a pause between, so a running Confab keeps writing.
pub fn rotate(settings: &Settings, batch: i64) -> Result<(), CliError> {
    let keys = settings.message_keys()?;
    let db = open(settings)?;
    let mut conn = db.get()?;
    let (mut after, mut rotated, mut failed) = (0i64, 0usize, 0usize);
    loop {
        let b = repo::message::rotate_batch(&mut conn, &keys, after, batch)?;
        rotated += b.rotated;
        failed += b.failed;
        let Some(last) = b.last_id else { break };
        after = last;
        eprint!("\rre-encrypted {rotated} message(s)…");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!();
    repo::audit::record(
        &mut conn,
        &repo::audit::NewEntry {
            actor: None,
            action: "keys.rotate",
            target_type: "messages",
            target_id: keys.current_id().to_owned(),
            detail: serde_json::json!({"rotated": rotated, "failed": failed}),
            ip: None,
        },
    )?;
    for (key, n) in repo::message::count_by_key(&mut conn)? {
        println!("key {key}: {n} message(s)");
    }
    println!(
        "Re-encrypted {rotated} message(s) with key {}.",
        keys.current_id()
    );
    if failed > 0 {
        return Err(CliError::Refused(format!(
            "{failed} message(s) could not be decrypted with the configured keys and were left as they are \
             (is an old key missing from CONFAB_MESSAGE_KEYS?)"
        )));
    }
    Ok(())
}
