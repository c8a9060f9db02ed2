//! Connector configurations, which hold the installations' secrets, are sealed at rest with
//! XChaCha20-Poly1305: a database dump or a backup shows none of them.
//!
//! The key comes from `OPENRISK_SECRETS_KEY`; without it, from the key file in the data directory,
//! made (mode 0600) on first start. Previous keys still open what they sealed until
//! `openrisk secrets rotate` has sealed everything again under the current one. Each sealed value
//! names its key, and is bound to its organization and installation, so it cannot be moved to
//! another row.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{StoreError, StoreResult};

/// The algorithm, as named in each sealed value.
const ALGORITHM: &str = "xchacha20poly1305";
const NONCE_BYTES: usize = 24;

/// A key: 32 bytes, read and written as base64.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn generate() -> SecretKey {
        SecretKey(rand::random())
    }

    pub fn parse(text: &str) -> Option<SecretKey> {
        let bytes = STANDARD.decode(text.trim()).ok()?;
        Some(SecretKey(bytes.try_into().ok()?))
    }

    pub fn encode(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Names the key in sealed values without revealing it.
    fn id(&self) -> String {
        let hash = blake3::keyed_hash(&[0x5e; 32], &self.0);
        hash.to_hex()[..16].to_owned()
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id())
    }
}

/// Where the keys come from.
#[derive(Clone, Debug)]
pub struct SecretsSettings {
    /// `OPENRISK_SECRETS_KEY`; without it, the key file.
    pub key: Option<SecretKey>,
    /// `OPENRISK_SECRETS_PREVIOUS_KEYS`: still opened, never used to seal.
    pub previous: Vec<SecretKey>,
    /// The key file: the current key on its first line, previous ones after it.
    pub key_file: PathBuf,
}

pub struct SecretKeys {
    /// The current key first.
    keys: RwLock<Vec<SecretKey>>,
    /// Set when the keys come from the key file: read again when a value names a key not known
    /// (another process rotated them).
    file: Option<PathBuf>,
}

impl SecretKeys {
    /// The keys `settings` name; without a key in the environment, those of the key file, which
    /// is made with a new key if it does not exist.
    pub fn load(settings: &SecretsSettings) -> anyhow::Result<SecretKeys> {
        if let Some(key) = &settings.key {
            let mut keys = vec![key.clone()];
            keys.extend(settings.previous.iter().cloned());
            return Ok(SecretKeys {
                keys: RwLock::new(keys),
                file: None,
            });
        }
        let path = &settings.key_file;
        if !path.exists() {
            write_key_file(path, &[SecretKey::generate()])?;
            tracing::warn!(
                path = %path.display(),
                "made a new key for connector secrets: keep a copy apart from the database's backups"
            );
        }
        Ok(SecretKeys {
            keys: RwLock::new(read_key_file(path)?),
            file: Some(path.clone()),
        })
    }

    fn current(&self) -> SecretKey {
        self.keys.read().unwrap_or_else(|e| e.into_inner())[0].clone()
    }

    /// `config` sealed under the current key, for the installation `id` of `org`.
    pub fn seal(&self, org: Uuid, id: Uuid, config: &Value) -> Value {
        // With the key file, another process may have rotated the key: seal under its newest
        // (writes of installations are rare; the file is small).
        self.reload();
        let key = self.current();
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let plaintext = config.to_string();
        let sealed = XChaCha20Poly1305::new((&key.0).into())
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &bound_to(org, id),
                },
            )
            .expect("sealing in memory does not fail");
        let mut data = nonce.to_vec();
        data.extend(sealed);
        json!({"sealed": ALGORITHM, "key": key.id(), "data": STANDARD.encode(data)})
    }

    /// The configuration `stored` holds. A configuration stored before sealing existed is
    /// returned as it is (start-up seals those).
    pub fn open(&self, org: Uuid, id: Uuid, stored: Value) -> StoreResult<Value> {
        let Some(sealed) = Sealed::of(&stored) else {
            return Ok(stored);
        };
        let key = match self.key(sealed.key) {
            Some(key) => key,
            None => {
                self.reload();
                self.key(sealed.key).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "installation {id}: sealed with key {}, which is not among the configured keys",
                        sealed.key
                    ))
                })?
            }
        };
        let data = STANDARD
            .decode(sealed.data)
            .ok()
            .filter(|d| d.len() > NONCE_BYTES)
            .ok_or_else(|| StoreError::Corrupt(format!("installation {id}: sealed value unreadable")))?;
        let (nonce, ciphertext) = data.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().expect("split at its length");
        let plaintext = XChaCha20Poly1305::new((&key.0).into())
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &bound_to(org, id),
                },
            )
            .map_err(|_| StoreError::Corrupt(format!("installation {id}: sealed value fails its check")))?;
        serde_json::from_slice(&plaintext)
            .map_err(|e| StoreError::Corrupt(format!("installation {id}: sealed value is not JSON: {e}")))
    }

    /// Whether `stored` is sealed at all.
    pub fn is_sealed(&self, stored: &Value) -> bool {
        Sealed::of(stored).is_some()
    }

    /// Whether `stored` is sealed under the current key already.
    pub fn is_current(&self, stored: &Value) -> bool {
        Sealed::of(stored).is_some_and(|sealed| sealed.key == self.current().id())
    }

    fn key(&self, id: &str) -> Option<SecretKey> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.iter().find(|key| key.id() == id).cloned()
    }

    fn reload(&self) {
        let Some(path) = &self.file else { return };
        match read_key_file(path) {
            Ok(keys) => *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys,
            Err(e) => tracing::error!(error = %e, "cannot read the secrets key file again"),
        }
    }

    /// For `openrisk secrets rotate` with the key file: a new current key, the others kept to open
    /// what they sealed until everything is sealed again.
    pub fn rotate_file(&self) -> anyhow::Result<()> {
        let Some(path) = &self.file else {
            anyhow::bail!("the key comes from OPENRISK_SECRETS_KEY: set the new key there");
        };
        let mut keys = vec![SecretKey::generate()];
        keys.extend(
            self.keys
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        write_key_file(path, &keys)?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    /// After everything is sealed under the current key: the file keeps that key only.
    pub fn forget_previous(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.file {
            let current = self.current();
            write_key_file(path, std::slice::from_ref(&current))?;
            *self.keys.write().unwrap_or_else(|e| e.into_inner()) = vec![current];
        }
        Ok(())
    }
}

/// A sealed value's parts.
struct Sealed<'a> {
    key: &'a str,
    data: &'a str,
}

impl<'a> Sealed<'a> {
    fn of(stored: &'a Value) -> Option<Sealed<'a>> {
        let object = stored.as_object()?;
        if object.len() != 3 || object.get("sealed")?.as_str()? != ALGORITHM {
            return None;
        }
        Some(Sealed {
            key: object.get("key")?.as_str()?,
            data: object.get("data")?.as_str()?,
        })
    }
}

fn bound_to(org: Uuid, id: Uuid) -> Vec<u8> {
    [org.as_bytes().as_slice(), id.as_bytes()].concat()
}

fn read_key_file(path: &Path) -> anyhow::Result<Vec<SecretKey>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the secrets key file {}: {e}", path.display()))?;
    let keys: Option<Vec<SecretKey>> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(SecretKey::parse)
        .collect();
    match keys {
        Some(keys) if !keys.is_empty() => Ok(keys),
        _ => anyhow::bail!(
            "the secrets key file {} must hold base64 keys of 32 bytes, one per line",
            path.display()
        ),
    }
}

/// Writes the key file whole (beside it, then renamed), readable by its owner only.
fn write_key_file(path: &Path, keys: &[SecretKey]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| anyhow::anyhow!("cannot write the secrets key file {}: {e}", partial.display()))?;
    for key in keys {
        writeln!(file, "{}", key.encode())?;
    }
    file.sync_all()?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: Vec<SecretKey>) -> SecretKeys {
        SecretKeys {
            keys: RwLock::new(list),
            file: None,
        }
    }

    #[test]
    fn sealed_configurations_open_only_with_their_key_and_row() {
        let (org, id) = (Uuid::now_v7(), Uuid::now_v7());
        let config = json!({"url": "https://example.invalid", "token": "s3cret-value"});
        let (old, new) = (SecretKey::generate(), SecretKey::generate());
        let sealed = keys(vec![old.clone()]).seal(org, id, &config);
        assert!(!sealed.to_string().contains("s3cret"));
        assert_eq!(
            keys(vec![old.clone()]).open(org, id, sealed.clone()).unwrap(),
            config
        );
        // After a rotation the previous key still opens it.
        let rotated = keys(vec![new.clone(), old]);
        assert!(!rotated.is_current(&sealed));
        assert_eq!(rotated.open(org, id, sealed.clone()).unwrap(), config);
        // Without its key, or moved to another row, it does not open.
        assert!(keys(vec![new]).open(org, id, sealed.clone()).is_err());
        assert!(rotated.open(org, Uuid::now_v7(), sealed.clone()).is_err());
        assert!(rotated.open(Uuid::now_v7(), id, sealed).is_err());
        // A configuration stored before sealing reads as it is.
        assert_eq!(rotated.open(org, id, config.clone()).unwrap(), config);
    }

    #[test]
    fn key_file_is_made_private_and_rotated() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let settings = SecretsSettings {
            key: None,
            previous: vec![],
            key_file: dir.path().join("secrets.key"),
        };
        let loaded = SecretKeys::load(&settings).unwrap();
        let mode = std::fs::metadata(&settings.key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (org, id) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = loaded.seal(org, id, &json!({"token": "x"}));
        let stale = SecretKeys::load(&settings).unwrap();
        loaded.rotate_file().unwrap();
        // Another process, loading the file now, opens values of either key.
        let other = SecretKeys::load(&settings).unwrap();
        assert_eq!(
            other.open(org, id, sealed.clone()).unwrap(),
            json!({"token": "x"})
        );
        let resealed = other.seal(org, id, &json!({"token": "x"}));
        // One that read the file before the rotation reads it again for the new key.
        assert_eq!(stale.open(org, id, resealed).unwrap(), json!({"token": "x"}));
        loaded.forget_previous().unwrap();
        assert!(
            SecretKeys::load(&settings)
                .unwrap()
                .open(org, id, sealed)
                .is_err()
        );
    }
}
