//! `cairn alias set|list|remove`: named servers with their credentials, as MinIO's `mc alias`,
//! so `cairn admin info NAME`, `cairn bench NAME`, `cairn mount NAME/BUCKET DIR` and
//! `--endpoint NAME` need no URL or secrets on the command line. Stored in
//! `~/.cairn/config.json` (or `$CAIRN_CONFIG_DIR/config.json`), written atomically with mode
//! 0600 in a 0700 folder; secrets are never printed back.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde::{Deserialize, Serialize};

#[derive(Subcommand)]
pub enum AliasCommand {
    /// Add or replace an alias: NAME URL ACCESS_KEY SECRET_KEY (keys omitted: asked for on
    /// the terminal, or read as two lines from standard input).
    Set {
        name: String,
        url: String,
        access_key: Option<String>,
        secret_key: Option<String>,
    },
    /// List aliases (or one): name, URL and access key; never the secret.
    List {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove an alias.
    Remove { name: String },
}

/// One alias (`mc`'s field names, so its entries read the same).
#[derive(Clone, Serialize, Deserialize)]
pub struct Alias {
    pub url: String,
    #[serde(rename = "accessKey")]
    pub access_key: String,
    #[serde(rename = "secretKey")]
    pub secret_key: String,
    #[serde(default = "api")]
    pub api: String,
}

fn api() -> String {
    "s3v4".into()
}

impl std::fmt::Debug for Alias {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alias")
            .field("url", &self.url)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Config {
    #[serde(default = "version")]
    pub version: String,
    #[serde(default)]
    pub aliases: BTreeMap<String, Alias>,
}

fn version() -> String {
    "1".into()
}

fn dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("CAIRN_CONFIG_DIR") {
        return Ok(PathBuf::from(d));
    }
    let home = std::env::var_os("HOME").context("HOME is not set (or set CAIRN_CONFIG_DIR)")?;
    Ok(PathBuf::from(home).join(".cairn"))
}

pub fn path() -> anyhow::Result<PathBuf> {
    Ok(dir()?.join("config.json"))
}

impl Config {
    pub fn load() -> anyhow::Result<Config> {
        let p = path()?;
        match std::fs::read(&p) {
            Ok(b) => {
                serde_json::from_slice(&b).with_context(|| format!("{} is not valid", p.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config {
                version: version(),
                ..Default::default()
            }),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    /// Write the file atomically (a 0600 temporary file, synced, renamed over it).
    fn save(&self) -> anyhow::Result<()> {
        let d = dir()?;
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
        let p = d.join("config.json");
        let tmp = d.join(".config.json.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        // An existing temporary file keeps its mode: make sure.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(&serde_json::to_vec_pretty(self)?)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p).with_context(|| format!("cannot replace {}", p.display()))?;
        Ok(())
    }

    pub fn get(&self, name: &str) -> anyhow::Result<&Alias> {
        self.aliases.get(name).with_context(|| {
            format!(
                "no alias {name:?} in {} (add one: cairn alias set {name} URL ACCESS_KEY SECRET_KEY)",
                path().map(|p| p.display().to_string()).unwrap_or_default()
            )
        })
    }
}

/// A name that cannot be mistaken for a URL or a path.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn ask(prompt: &str) -> anyhow::Result<String> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("{prompt}: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let v = line.trim().to_string();
    if v.is_empty() {
        bail!("{prompt} is empty");
    }
    Ok(v)
}

pub fn alias(command: AliasCommand) -> anyhow::Result<()> {
    match command {
        AliasCommand::Set {
            name,
            url,
            access_key,
            secret_key,
        } => {
            if !valid_name(&name) {
                bail!("alias name {name:?}: use letters, digits, '-' and '_' (at most 64)");
            }
            let url = url.trim_end_matches('/').to_string();
            let host = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"))
                .filter(|h| !h.is_empty() && !h.contains('/'));
            if host.is_none() {
                bail!("URL {url:?}: use http://HOST:PORT or https://HOST:PORT");
            }
            let access_key = match access_key {
                Some(k) => k,
                None => ask("Access key")?,
            };
            let secret_key = match secret_key {
                Some(k) => k,
                None => ask("Secret key")?,
            };
            let mut config = Config::load()?;
            config.aliases.insert(
                name.clone(),
                Alias {
                    url: url.clone(),
                    access_key,
                    secret_key,
                    api: api(),
                },
            );
            config.save()?;
            println!("Added `{name}` ({url}) to {}", path()?.display());
            Ok(())
        }
        AliasCommand::List { name, json } => {
            let config = Config::load()?;
            let shown: Vec<(&String, &Alias)> = match &name {
                Some(n) => vec![(n, config.get(n)?)],
                None => config.aliases.iter().collect(),
            };
            if json {
                let v: Vec<serde_json::Value> = shown
                    .iter()
                    .map(|(n, a)| {
                        serde_json::json!({ "alias": n, "url": a.url, "accessKey": a.access_key, "api": a.api })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            if shown.is_empty() {
                println!("No aliases (add one: cairn alias set NAME URL ACCESS_KEY SECRET_KEY)");
            }
            for (n, a) in shown {
                println!("{n}");
                println!("  URL       : {}", a.url);
                println!("  AccessKey : {}", a.access_key);
                println!("  SecretKey : (stored, not shown)");
                println!("  API       : {}", a.api);
            }
            Ok(())
        }
        AliasCommand::Remove { name } => {
            let mut config = Config::load()?;
            if config.aliases.remove(&name).is_none() {
                config.get(&name)?;
            }
            config.save()?;
            println!("Removed `{name}`");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_debug() {
        assert!(valid_name("prod-1_a"));
        for bad in ["", "http://x", "a/b", "a b", "x.y"] {
            assert!(!valid_name(bad), "{bad}");
        }
        let a = Alias {
            url: "http://h:9000".into(),
            access_key: "ak".into(),
            secret_key: "very-secret".into(),
            api: api(),
        };
        assert!(!format!("{a:?}").contains("very-secret"));
    }
}
