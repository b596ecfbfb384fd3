//! Settings from defaults, an optional TOML file and `LATCHKEY_*` environment variables
//! (nested keys with `__`, e.g. `LATCHKEY_LIFETIMES__ACCESS_TOKEN=600`).

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use latchkey_core::Settings;
use std::path::Path;

/// Environment variables with the `LATCHKEY_` prefix that are not settings.
const NOT_SETTINGS: &[&str] = &["master_key", "config", "new_master_key"];

/// Load and validate. The error is one line naming the setting and the reason.
pub fn load(file: Option<&Path>) -> Result<Settings, String> {
    load_from(file, Env::prefixed("LATCHKEY_").split("__").ignore(NOT_SETTINGS))
}

fn load_from(file: Option<&Path>, env: Env) -> Result<Settings, String> {
    let mut fig = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(p) = file {
        if !p.is_file() {
            return Err(format!("config file {} does not exist", p.display()));
        }
        fig = fig.merge(Toml::file_exact(p));
    }
    fig = fig.merge(env);
    let s: Settings = fig.extract().map_err(|e| describe(&e))?;
    s.validate().map_err(|e| e.to_string())?;
    Ok(s)
}

fn describe(e: &figment::Error) -> String {
    use figment::error::Kind;
    let path = e.path.join(".");
    match &e.kind {
        Kind::UnknownField(f, _) => {
            let full = if path.is_empty() { f.clone() } else { format!("{path}.{f}") };
            format!("unknown setting `{full}`{}", source_of(e))
        }
        Kind::Message(m) if path.is_empty() => format!("invalid configuration: {m}{}", source_of(e)),
        k => format!("invalid setting `{path}`: {k}{}", source_of(e)),
    }
}

fn source_of(e: &figment::Error) -> String {
    match e.metadata.as_ref().map(|m| m.name.to_string()) {
        Some(n) => format!(" (from {n})"),
        None => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn documented_config_file_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/latchkey.toml");
        let from_file: Settings = Figment::from(Toml::file_exact(&path)).extract().unwrap();
        assert_eq!(from_file, Settings::default(), "config/latchkey.toml is out of step with Settings::default()");
    }

    #[test]
    fn environment_overrides_nested_keys_and_stable_names() {
        Jail::expect_with(|jail| {
            jail.set_env("LATCHKEY_ISSUER", "https://id.example.com");
            jail.set_env("LATCHKEY_BIND", "0.0.0.0:9000");
            jail.set_env("LATCHKEY_LIFETIMES__ACCESS_TOKEN", "600");
            jail.set_env("LATCHKEY_MASTER_KEY", "not-a-setting");
            let s = load(None).unwrap();
            assert_eq!(s.issuer, "https://id.example.com");
            assert_eq!(s.bind, "0.0.0.0:9000");
            assert_eq!(s.lifetimes.access_token, 600);
            Ok(())
        });
    }

    #[test]
    fn file_then_environment() {
        Jail::expect_with(|jail| {
            jail.create_file("l.toml", "issuer = \"https://file.example\"\n[lifetimes]\nsession = 77\n")?;
            jail.set_env("LATCHKEY_LIFETIMES__SESSION", "88");
            let s = load(Some(Path::new("l.toml"))).unwrap();
            assert_eq!(s.issuer, "https://file.example");
            assert_eq!(s.lifetimes.session, 88);
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[lifetimes]\naccess_tokn = 5\n")?;
            let e = load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(e.contains("lifetimes.access_tokn"), "{e}");
            jail.create_file("bad2.toml", "[lifetimes]\naccess_token = \"soon\"\n")?;
            let e = load(Some(Path::new("bad2.toml"))).unwrap_err();
            assert!(e.contains("lifetimes.access_token"), "{e}");
            jail.set_env("LATCHKEY_ISSUER", "http://public.example.com");
            let e = load(None).unwrap_err();
            assert!(e.contains("`issuer`") && e.contains("https"), "{e}");
            assert!(!e.contains('\n'));
            Ok(())
        });
    }
}
