//! Where a cached value lives and what invalidates it.

use uuid::Uuid;

use super::settings::Namespace;

/// An organization's namespace, or one item of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    pub org: Uuid,
    pub namespace: Namespace,
    /// An item's values carry the namespace's generation and the item's own.
    pub item: Option<Uuid>,
}

impl Scope {
    pub fn namespace(org: Uuid, namespace: Namespace) -> Self {
        Scope {
            org,
            namespace,
            item: None,
        }
    }

    pub fn item(org: Uuid, namespace: Namespace, item: Uuid) -> Self {
        Scope {
            org,
            namespace,
            item: Some(item),
        }
    }

    /// The namespace an item belongs to (itself, for a namespace).
    pub fn whole(self) -> Self {
        Scope { item: None, ..self }
    }
}
