//! Keys and generations, in process (no Redis): what makes two values share an entry, and what an
//! invalidation reaches.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use uuid::Uuid;

use super::keys::{self, entry_key, generation_key};
use super::{Cache, CacheSettings, Mutation, Namespace, Scope};

fn cache() -> Cache {
    Cache::new(CacheSettings {
        enabled: true,
        redis_url: None,
        ttl: Namespace::ALL.iter().map(|n| n.default_ttl()).collect(),
        l1_max_bytes: 1 << 20,
        max_body_bytes: 1 << 16,
        redis_timeout: Duration::from_millis(50),
        register_max_rows: 0,
    })
    .expect("a cache without Redis")
}

fn scope(org: Uuid, namespace: Namespace) -> Scope {
    Scope::namespace(org, namespace)
}

#[test]
fn a_key_is_stable_and_names_everything_that_identifies_a_value() {
    let cache = cache();
    let (org, other) = (Uuid::new_v4(), Uuid::new_v4());
    let risks = scope(org, Namespace::Risks);
    let key =
        |scope, generation, parts: &[&[u8]]| keys::key(cache.coherence.key_epoch(), scope, generation, parts);
    let base = key(risks, 7, &[b"/api/v1/risks", b"limit=5", b"viewer"]);
    assert_eq!(base, key(risks, 7, &[b"/api/v1/risks", b"limit=5", b"viewer"]));
    let variants = [
        key(
            scope(other, Namespace::Risks),
            7,
            &[b"/api/v1/risks", b"limit=5", b"viewer"],
        ),
        key(
            scope(org, Namespace::Assets),
            7,
            &[b"/api/v1/risks", b"limit=5", b"viewer"],
        ),
        key(risks, 8, &[b"/api/v1/risks", b"limit=5", b"viewer"]),
        key(risks, 7, &[b"/api/v1/risks", b"limit=5", b"admin"]),
        key(risks, 7, &[b"/api/v1/risks", b"limit=6", b"viewer"]),
        // Parts are length-prefixed: moving a boundary is another key.
        key(risks, 7, &[b"/api/v1/risks", b"limit=", b"5viewer"]),
        key(risks, 7, &[b"/api/v1/risks", b"limit=5viewer"]),
    ];
    for (n, variant) in variants.iter().enumerate() {
        assert_ne!(base, *variant, "variant {n} shares the base key");
    }
}

#[test]
fn redis_keys_keep_an_organization_in_one_cluster_slot() {
    let org = Uuid::new_v4();
    let tag = format!("{{{org}}}");
    assert!(entry_key(org, 42).contains(&tag));
    let risks = generation_key(scope(org, Namespace::Risks));
    assert!(risks.contains(&tag));
    assert_ne!(risks, generation_key(scope(org, Namespace::Assets)));
    let item = Scope::item(org, Namespace::RiskDetails, Uuid::new_v4());
    assert!(generation_key(item).contains(&tag));
    assert_ne!(generation_key(item), generation_key(item.whole()));
    assert_ne!(entry_key(org, 1), entry_key(org, 2));
}

#[tokio::test]
async fn a_generation_holds_until_a_write_replaces_it_and_only_where_the_write_reaches() {
    let cache = cache();
    let (org, other) = (Uuid::new_v4(), Uuid::new_v4());
    let generation = |namespace, org| cache.generation(scope(org, namespace));
    let before = [
        generation(Namespace::Risks, org).await,
        generation(Namespace::Dashboard, org).await,
        generation(Namespace::Marketplace, org).await,
        generation(Namespace::Risks, other).await,
    ];
    assert!(before.iter().all(Option::is_some));
    assert_eq!(generation(Namespace::Risks, org).await, before[0]);

    cache.after_write(org, Mutation::Asset, None, None).await;
    let after = [
        generation(Namespace::Risks, org).await,
        generation(Namespace::Dashboard, org).await,
        generation(Namespace::Marketplace, org).await,
        generation(Namespace::Risks, other).await,
    ];
    assert_ne!(after[0], before[0], "assets show in risks");
    assert_ne!(after[1], before[1], "assets show on the dashboard");
    assert_eq!(after[2], before[2], "the marketplace holds no assets");
    assert_eq!(after[3], before[3], "another organization's generation moved");
}

#[tokio::test]
async fn a_value_is_computed_once_per_generation() {
    let cache = cache();
    let org = Uuid::new_v4();
    let computed = AtomicU32::new(0);
    let read = || async {
        let scope = scope(org, Namespace::Dashboard);
        let generation = cache.generation(scope).await.unwrap();
        let key = keys::key(cache.coherence.key_epoch(), scope, generation, &[b"stats"]);
        cache
            .tiers
            .get_or_set(scope, key, || async {
                Ok::<u32, ()>(computed.fetch_add(1, SeqCst))
            })
            .await
    };
    assert_eq!(read().await, Ok(0));
    assert_eq!(read().await, Ok(0));
    cache.after_write(org, Mutation::Mitigation, None, None).await;
    assert_eq!(read().await, Ok(1));
    cache.after_write(org, Mutation::Installation, None, None).await;
    assert_eq!(
        read().await,
        Ok(1),
        "an installation does not change the dashboard"
    );
    assert_eq!(computed.load(SeqCst), 2);
}

#[tokio::test]
async fn a_write_to_one_risk_leaves_the_other_risks_details_valid() {
    let cache = cache();
    let org = Uuid::new_v4();
    let (risk, other) = (Uuid::new_v4(), Uuid::new_v4());
    let details = |risk| cache.generation(Scope::item(org, Namespace::RiskDetails, risk));
    let before = [details(risk).await, details(other).await];
    assert!(before.iter().all(Option::is_some));
    assert_ne!(before[0], before[1], "two risks share a generation");

    for mutation in [Mutation::Risk, Mutation::Mitigation] {
        let lists = cache.generation(scope(org, Namespace::Risks)).await;
        let (changed, kept) = (details(risk).await, details(other).await);
        cache.after_write(org, mutation, Some(risk), None).await;
        assert_ne!(
            details(risk).await,
            changed,
            "{mutation:?}: the risk written kept its entries"
        );
        assert_eq!(
            details(other).await,
            kept,
            "{mutation:?}: another risk lost its entries"
        );
        assert_ne!(
            cache.generation(scope(org, Namespace::Risks)).await,
            lists,
            "{mutation:?}: lists kept"
        );
    }
    let kept = details(other).await;
    cache.after_write(org, Mutation::NewRisk, None, None).await;
    assert_eq!(details(other).await, kept, "a new risk changes no other risk");

    // When the write cannot say which risk it changed, every risk's details are stale.
    for mutation in [Mutation::Mitigation, Mutation::Asset] {
        let before = [details(risk).await, details(other).await];
        cache.after_write(org, mutation, None, None).await;
        assert_ne!(details(risk).await, before[0], "{mutation:?}");
        assert_ne!(details(other).await, before[1], "{mutation:?}");
    }
}
