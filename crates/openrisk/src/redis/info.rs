//! The one reader of Redis's `INFO` answers: a single server's text, or a cluster's map of them.

/// The `INFO` texts in an answer: one from a server, a map of them from a cluster.
pub(super) fn texts(value: &::redis::Value) -> Vec<String> {
    use ::redis::Value;
    match value {
        Value::BulkString(bytes) => vec![String::from_utf8_lossy(bytes).into_owned()],
        Value::VerbatimString { text, .. } | Value::SimpleString(text) => vec![text.clone()],
        Value::Map(pairs) => pairs.iter().flat_map(|(_, v)| texts(v)).collect(),
        Value::Array(items) => items.iter().flat_map(texts).collect(),
        _ => Vec::new(),
    }
}

/// `field`'s value in one server's `INFO` text.
pub(super) fn field(text: &str, field: &str) -> Option<String> {
    text.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|value| value.trim().to_owned())
    })
}

/// A server's `maxmemory` (0: no limit) and `maxmemory-policy`, with its memory in use.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MemoryPolicy {
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    pub used_memory: u64,
}

impl MemoryPolicy {
    /// Each server's policy in an `INFO memory` answer.
    pub(super) fn of_each(value: &::redis::Value) -> Vec<MemoryPolicy> {
        texts(value)
            .iter()
            .map(|text| {
                let field = |name: &str| field(text, name).unwrap_or_default();
                MemoryPolicy {
                    maxmemory: field("maxmemory").parse().unwrap_or(0),
                    maxmemory_policy: field("maxmemory_policy"),
                    used_memory: field("used_memory").parse().unwrap_or(0),
                }
            })
            .collect()
    }

    /// Whether the server, once full, stores nothing more (and the namespaces written meanwhile
    /// go uncached).
    pub fn refuses_when_full(&self) -> bool {
        self.maxmemory > 0 && self.maxmemory_policy == "noeviction"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_one_server_or_each_of_a_cluster() {
        let one = "# Server\r\nrun_id:abc\r\nmaxmemory:100\r\nmaxmemory_policy:noeviction\r\n";
        assert_eq!(field(one, "run_id").as_deref(), Some("abc"));
        assert_eq!(field(one, "run"), None);
        let cluster = ::redis::Value::Map(vec![
            (
                ::redis::Value::SimpleString("a:1".into()),
                ::redis::Value::VerbatimString {
                    format: ::redis::VerbatimFormat::Text,
                    text: one.into(),
                },
            ),
            (
                ::redis::Value::SimpleString("b:2".into()),
                ::redis::Value::BulkString(b"maxmemory:0\r\n".to_vec()),
            ),
        ]);
        let policies = MemoryPolicy::of_each(&cluster);
        assert_eq!(policies.len(), 2);
        assert!(policies[0].refuses_when_full());
        assert!(!policies[1].refuses_when_full());
    }
}
