use super::open;
use crate::cli::CliError;
use domain::{
    password_policy::{PasswordPolicy, UserAttributes},
    repo,
    settings::Settings,
};
use std::io::{BufRead, IsTerminal, Write};

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Asked for when missing (interactive use).
    #[arg(long)]
    pub username: Option<String>,
    /// Defaults to the username.
    #[arg(long, default_value = "")]
    pub display_name: String,
    /// Read the password from the first line of standard input (for scripts).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, clap::Args)]
pub struct PasswordArgs {
    pub username: String,
    /// Read the new password from the first line of standard input (for scripts).
    #[arg(long)]
    pub password_stdin: bool,
}

pub fn create(
    settings: &Settings,
    args: CreateArgs,
    staff: bool,
    superuser: bool,
) -> Result<(), CliError> {
    let username = match args.username {
        Some(u) => u,
        None => prompt_line("Username: ")?,
    };
    // Check the name before asking for a password the user would then type in vain.
    domain::model::Username::parse(&username).map_err(|e| CliError::Refused(e.to_string()))?;
    let password = read_password(args.password_stdin)?;
    check_policy(
        settings,
        &password,
        &UserAttributes {
            username: username.trim(),
            display_name: &args.display_name,
        },
    )?;
    let db = open(settings)?;
    let mut conn = db.get()?;
    let user = repo::user::create(
        &mut conn,
        &repo::user::NewUser {
            username,
            display_name: args.display_name,
            password,
            is_staff: staff,
            is_superuser: superuser,
        },
        settings.bcrypt_cost,
    )?;
    let kind = if superuser {
        "superuser"
    } else if staff {
        "staff user"
    } else {
        "user"
    };
    repo::audit::record(
        &mut conn,
        &repo::audit::NewEntry {
            actor: None,
            action: "users.create",
            target_type: "user",
            target_id: user.id.to_string(),
            detail: serde_json::json!({"username": user.username, "kind": kind, "via": "cli"}),
            ip: None,
        },
    )?;
    println!("Created {kind} {}.", user.username);
    Ok(())
}

pub fn change_password(settings: &Settings, args: PasswordArgs) -> Result<(), CliError> {
    let db = open(settings)?;
    let mut conn = db.get()?;
    let user = repo::user::find_by_username(&mut conn, &args.username)?
        .ok_or_else(|| CliError::Refused(format!("no user named {}", args.username)))?;
    let password = read_password(args.password_stdin)?;
    check_policy(
        settings,
        &password,
        &UserAttributes {
            username: &user.username,
            display_name: &user.display_name,
        },
    )?;
    repo::user::set_password(&mut conn, user.id, &password, settings.bcrypt_cost)?;
    // A changed password ends every session, as after a suspected compromise.
    let revoked = repo::session::revoke_all(&mut conn, user.id)?;
    repo::audit::record(
        &mut conn,
        &repo::audit::NewEntry {
            actor: None,
            action: "users.password",
            target_type: "user",
            target_id: user.id.to_string(),
            detail: serde_json::json!({"sessions_revoked": revoked.len(), "via": "cli"}),
            ip: None,
        },
    )?;
    println!(
        "Changed the password of {}; {} session(s) signed out.",
        user.username,
        revoked.len()
    );
    Ok(())
}

/// The password policy (`domain::password_policy`), its refusal naming every rule broken.
fn check_policy(
    settings: &Settings,
    password: &str,
    user: &UserAttributes<'_>,
) -> Result<(), CliError> {
    PasswordPolicy::from_settings(settings)
        .validate(password, user)
        .map_err(|broken| {
            CliError::Refused(format!(
                "password refused: {}",
                domain::password_policy::describe(&broken)
            ))
        })
}

fn read_password(from_stdin: bool) -> Result<String, CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            CliError::Refused(format!(
                "could not read the password from standard input: {e}"
            ))
        })?;
        let password = line
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&line);
        return Ok(password.to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Refused(
            "no terminal to ask for a password: use --password-stdin".into(),
        ));
    }
    let first =
        rpassword::prompt_password("Password: ").map_err(|e| CliError::Refused(e.to_string()))?;
    let second = rpassword::prompt_password("Password (again): ")
        .map_err(|e| CliError::Refused(e.to_string()))?;
    if first != second {
        return Err(CliError::Refused("the passwords do not match".into()));
    }
    Ok(first)
}

fn prompt_line(prompt: &str) -> Result<String, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Refused(
            "no terminal to ask for a username: use --username".into(),
        ));
    }
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Refused(e.to_string()))?;
    Ok(line.trim().to_owned())
}
