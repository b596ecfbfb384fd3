use std::collections::BTreeSet;
use std::path::PathBuf;

/// Version numbers (file name prefixes before the first `_`) of the `.sql` files in one
/// backend's migration directory.
fn versions(backend: &str) -> BTreeSet<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(backend);
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".sql") {
            continue;
        }
        let (version, _) = name.split_once('_').unwrap_or_else(|| panic!("{backend}/{name}: no `_` after the version"));
        assert!(
            !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()),
            "{backend}/{name}: version `{version}` is not a number"
        );
        out.insert(version.to_string());
    }
    out
}

#[test]
fn sqlite_and_postgres_migrations_have_the_same_versions() {
    let sqlite = versions("sqlite");
    let postgres = versions("postgres");
    assert!(!sqlite.is_empty(), "no SQLite migrations found");
    assert_eq!(sqlite, postgres, "migrations/sqlite and migrations/postgres must list the same versions");
}
