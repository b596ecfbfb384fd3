//! What an endpoint crate contributes to discovery. Only what is mounted is advertised: each
//! crate's `capabilities(&Settings)` returns one of these and the binary merges them.

use serde_json::{Map, Value};

#[derive(Debug, Default, Clone)]
pub struct Capabilities(pub Map<String, Value>);

impl Capabilities {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set a single-valued member (an endpoint URL, a boolean).
    pub fn set(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), v.into());
        self
    }

    /// Add values to a list member, keeping each value once.
    pub fn add<I, S>(mut self, key: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let entry = self.0.entry(key.to_owned()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            for v in values {
                let v = Value::String(v.into());
                if !list.contains(&v) {
                    list.push(v);
                }
            }
        }
        self
    }

    /// Merge another crate's contribution: lists are united, single values overwritten.
    pub fn merge(mut self, other: Capabilities) -> Self {
        for (k, v) in other.0 {
            match (self.0.get_mut(&k), v) {
                (Some(Value::Array(mine)), Value::Array(theirs)) => {
                    for t in theirs {
                        if !mine.contains(&t) {
                            mine.push(t);
                        }
                    }
                }
                (_, v) => {
                    self.0.insert(k, v);
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_unites_lists_without_duplicates() {
        let a = Capabilities::new().add("grant_types_supported", ["authorization_code"]).set("x", true);
        let b = Capabilities::new().add("grant_types_supported", ["authorization_code", "refresh_token"]);
        let m = a.merge(b);
        assert_eq!(m.0["grant_types_supported"], serde_json::json!(["authorization_code", "refresh_token"]));
        assert_eq!(m.0["x"], serde_json::json!(true));
    }
}
