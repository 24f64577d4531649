//! `cairn admin user|group|policy|accesskey`: IAM management over the admin API.

use std::io::Read;

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

use cairn::iam::{GroupInfo, KeyInfo, NewKey, PolicyInfo, UserInfo};

use super::{connect, Conn};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user (or set an existing user's secret). SECRET_KEY `-` reads it from stdin;
    /// without one, a secret is generated and printed.
    Add {
        #[command(flatten)]
        conn: Conn,
        #[arg(value_name = "ACCESS_KEY")]
        user: String,
        #[arg(value_name = "SECRET_KEY")]
        secret: Option<String>,
    },
    /// List the users.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
    /// Show a user: whether it is enabled, its policies and groups.
    Info {
        #[command(flatten)]
        conn: Conn,
        #[arg(value_name = "ACCESS_KEY")]
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Enable a user.
    Enable {
        #[command(flatten)]
        conn: Conn,
        #[arg(value_name = "ACCESS_KEY")]
        user: String,
    },
    /// Disable a user: its secret, access keys and sessions stop working until enabled.
    Disable {
        #[command(flatten)]
        conn: Conn,
        #[arg(value_name = "ACCESS_KEY")]
        user: String,
    },
    /// Remove a user, with its access keys and group memberships.
    Remove {
        #[command(flatten)]
        conn: Conn,
        #[arg(value_name = "ACCESS_KEY")]
        user: String,
    },
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Add members to GROUP (made if new).
    Add {
        #[command(flatten)]
        conn: Conn,
        group: String,
        #[arg(value_name = "MEMBER", required = true)]
        members: Vec<String>,
    },
    /// Remove members from GROUP; without members, remove the (empty) group.
    Remove {
        #[command(flatten)]
        conn: Conn,
        group: String,
        #[arg(value_name = "MEMBER")]
        members: Vec<String>,
    },
    /// List the groups.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
    /// Show a group: its members, policies and status.
    Info {
        #[command(flatten)]
        conn: Conn,
        group: String,
        #[arg(long)]
        json: bool,
    },
    /// Let GROUP's policies apply to its members again.
    Enable {
        #[command(flatten)]
        conn: Conn,
        group: String,
    },
    /// Stop GROUP's policies applying to its members (members and policies are kept).
    Disable {
        #[command(flatten)]
        conn: Conn,
        group: String,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Create (or replace) policy NAME from an IAM policy document.
    Create {
        #[command(flatten)]
        conn: Conn,
        name: String,
        #[arg(value_name = "FILE.json")]
        file: std::path::PathBuf,
    },
    /// List the policies (built-in and created).
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
    /// Show a policy's document.
    Info {
        #[command(flatten)]
        conn: Conn,
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a policy.
    Remove {
        #[command(flatten)]
        conn: Conn,
        name: String,
    },
    /// Attach a policy to a user or a group.
    Attach {
        #[command(flatten)]
        conn: Conn,
        name: String,
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        user: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
    /// Detach a policy from a user or a group.
    Detach {
        #[command(flatten)]
        conn: Conn,
        name: String,
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        user: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum AccessKeyCommand {
    /// Create an access key (for --user, else for the caller), printing key and secret.
    Create {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        user: Option<String>,
        /// An IAM policy document limiting the key (within its user's permissions).
        #[arg(long, value_name = "FILE.json")]
        policy: Option<std::path::PathBuf>,
        /// How long the key lives, e.g. 90m, 24h, 30d.
        #[arg(long)]
        expiry: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// List access keys (of one user with --user).
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove an access key.
    Remove {
        #[command(flatten)]
        conn: Conn,
        #[arg(value_name = "KEY")]
        key: String,
    },
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn body<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

pub fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { conn, user, secret } => {
            let (secret, generated) = match secret.as_deref() {
                Some("-") => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    (s.trim_end_matches(['\n', '\r']).to_string(), false)
                }
                Some(s) => (s.to_string(), false),
                None => (cairn::iam::new_secret_key(), true),
            };
            let _: Value = connect(&conn)?.call_with(
                "PUT",
                "iam/user",
                &[("access-key", user.clone())],
                body(&cairn::admin::NewUser {
                    secret_key: secret.clone(),
                }),
            )?;
            println!("Added user {user}");
            if generated {
                println!("AccessKey: {user}");
                println!("SecretKey: {secret}");
            }
            Ok(())
        }
        UserCommand::List { conn, json } => {
            let users: Vec<UserInfo> = connect(&conn)?.call("GET", "iam/users", &[])?;
            if json {
                return print_json(&users);
            }
            for u in users {
                let state = if u.enabled { "enabled" } else { "disabled" };
                println!("{:<9} {:<24} {}", state, u.access_key, u.policies.join(","));
            }
            Ok(())
        }
        UserCommand::Info { conn, user, json } => {
            let u: UserInfo = connect(&conn)?.call("GET", "iam/user", &[("access-key", user)])?;
            if json {
                return print_json(&u);
            }
            println!("AccessKey: {}", u.access_key);
            println!(
                "Status:    {}",
                if u.enabled { "enabled" } else { "disabled" }
            );
            println!("Policies:  {}", u.policies.join(", "));
            println!("Groups:    {}", u.groups.join(", "));
            if !u.group_policies.is_empty() {
                println!("Via groups: {}", u.group_policies.join(", "));
            }
            Ok(())
        }
        UserCommand::Enable { conn, user } => {
            simple(&conn, "POST", "iam/user/enable", user, "enabled")
        }
        UserCommand::Disable { conn, user } => {
            simple(&conn, "POST", "iam/user/disable", user, "disabled")
        }
        UserCommand::Remove { conn, user } => simple(&conn, "DELETE", "iam/user", user, "removed"),
    }
}

fn simple(conn: &Conn, method: &str, api: &str, user: String, what: &str) -> anyhow::Result<()> {
    let _: Value = connect(conn)?.call(method, api, &[("access-key", user.clone())])?;
    println!("User {user} {what}");
    Ok(())
}

pub fn group(command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::Add {
            conn,
            group,
            members,
        } => {
            let _: Value = connect(&conn)?.call_with(
                "PUT",
                "iam/group",
                &[("name", group.clone())],
                body(&cairn::admin::Members {
                    members: members.clone(),
                }),
            )?;
            println!("Added {} to group {group}", members.join(", "));
            Ok(())
        }
        GroupCommand::Remove {
            conn,
            group,
            members,
        } => {
            let _: Value = connect(&conn)?.call_with(
                "DELETE",
                "iam/group",
                &[("name", group.clone())],
                body(&cairn::admin::Members {
                    members: members.clone(),
                }),
            )?;
            if members.is_empty() {
                println!("Removed group {group}");
            } else {
                println!("Removed {} from group {group}", members.join(", "));
            }
            Ok(())
        }
        GroupCommand::List { conn, json } => {
            let groups: Vec<GroupInfo> = connect(&conn)?.call("GET", "iam/groups", &[])?;
            if json {
                return print_json(&groups);
            }
            for g in groups {
                println!(
                    "{:<24} members: {}  policies: {}",
                    g.name,
                    g.members.join(","),
                    g.policies.join(",")
                );
            }
            Ok(())
        }
        GroupCommand::Info { conn, group, json } => {
            let g: GroupInfo = connect(&conn)?.call("GET", "iam/group", &[("name", group)])?;
            if json {
                return print_json(&g);
            }
            println!("Group:    {}", g.name);
            println!(
                "Status:   {}",
                if g.enabled { "enabled" } else { "disabled" }
            );
            println!("Members:  {}", g.members.join(", "));
            println!("Policies: {}", g.policies.join(", "));
            Ok(())
        }
        GroupCommand::Enable { conn, group } => group_state(&conn, group, true),
        GroupCommand::Disable { conn, group } => group_state(&conn, group, false),
    }
}

fn group_state(conn: &Conn, group: String, enabled: bool) -> anyhow::Result<()> {
    let (api, what) = if enabled {
        ("iam/group/enable", "enabled")
    } else {
        ("iam/group/disable", "disabled")
    };
    let _: Value = connect(conn)?.call("POST", api, &[("name", group.clone())])?;
    println!("Group {group} {what}");
    Ok(())
}

pub fn policy(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Create { conn, name, file } => {
            let doc =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let _: Value =
                connect(&conn)?.call_with("PUT", "iam/policy", &[("name", name.clone())], doc)?;
            println!("Created policy {name}");
            Ok(())
        }
        PolicyCommand::List { conn, json } => {
            let ps: Vec<PolicyInfo> = connect(&conn)?.call("GET", "iam/policies", &[])?;
            if json {
                return print_json(&ps);
            }
            for p in ps {
                println!("{}{}", p.name, if p.builtin { "  (built-in)" } else { "" });
            }
            Ok(())
        }
        PolicyCommand::Info { conn, name, json } => {
            let p: PolicyInfo = connect(&conn)?.call("GET", "iam/policy", &[("name", name)])?;
            if json {
                return print_json(&p);
            }
            println!("{}", serde_json::to_string_pretty(&p.document)?);
            Ok(())
        }
        PolicyCommand::Remove { conn, name } => {
            let _: Value =
                connect(&conn)?.call("DELETE", "iam/policy", &[("name", name.clone())])?;
            println!("Removed policy {name}");
            Ok(())
        }
        PolicyCommand::Attach {
            conn,
            name,
            user,
            group,
        } => attach(&conn, "iam/policy/attach", name, user, group),
        PolicyCommand::Detach {
            conn,
            name,
            user,
            group,
        } => attach(&conn, "iam/policy/detach", name, user, group),
    }
}

fn attach(
    conn: &Conn,
    api: &str,
    name: String,
    user: Option<String>,
    group: Option<String>,
) -> anyhow::Result<()> {
    let mut q = vec![("name", name.clone())];
    let whom = match (user, group) {
        (Some(u), _) => {
            q.push(("user", u.clone()));
            format!("user {u}")
        }
        (None, Some(g)) => {
            q.push(("group", g.clone()));
            format!("group {g}")
        }
        (None, None) => anyhow::bail!("give --user or --group"),
    };
    let _: Value = connect(conn)?.call("POST", api, &q)?;
    let verb = if api.ends_with("detach") {
        "Detached"
    } else {
        "Attached"
    };
    println!(
        "{verb} policy {name} {} {whom}",
        if verb == "Attached" { "to" } else { "from" }
    );
    Ok(())
}

pub fn accesskey(command: AccessKeyCommand) -> anyhow::Result<()> {
    match command {
        AccessKeyCommand::Create {
            conn,
            user,
            policy,
            expiry,
            name,
        } => {
            let policy = match policy {
                Some(f) => Some(
                    std::fs::read_to_string(&f)
                        .with_context(|| format!("reading {}", f.display()))?,
                ),
                None => None,
            };
            let expiry_secs = match expiry {
                Some(e) => Some(
                    super::parse_duration(&e)
                        .with_context(|| {
                            format!("--expiry: bad duration {e:?} (e.g. 90m, 24h, 30d)")
                        })?
                        .as_secs(),
                ),
                None => None,
            };
            let k: NewKey = connect(&conn)?.call_with(
                "PUT",
                "iam/accesskey",
                &[],
                body(&cairn::admin::NewAccessKey {
                    user,
                    policy,
                    expiry_secs,
                    name,
                }),
            )?;
            println!("AccessKey: {}", k.access_key);
            println!("SecretKey: {}", k.secret_key);
            if let Some(e) = k.expiry {
                println!("Expiry:    {e}");
            }
            Ok(())
        }
        AccessKeyCommand::List { conn, user, json } => {
            let q: Vec<(&str, String)> = user.map(|u| ("user", u)).into_iter().collect();
            let keys: Vec<KeyInfo> = connect(&conn)?.call("GET", "iam/accesskeys", &q)?;
            if json {
                return print_json(&keys);
            }
            for k in keys {
                println!(
                    "{:<22} user: {:<16} {}{}{}",
                    k.access_key,
                    k.parent,
                    if k.enabled { "enabled" } else { "disabled" },
                    k.expiry
                        .map(|e| format!("  expires {e}"))
                        .unwrap_or_default(),
                    if k.has_policy { "  (own policy)" } else { "" }
                );
            }
            Ok(())
        }
        AccessKeyCommand::Remove { conn, key } => {
            let _: Value =
                connect(&conn)?.call("DELETE", "iam/accesskey", &[("key", key.clone())])?;
            println!("Removed access key {key}");
            Ok(())
        }
    }
}
