//! Node and governance key files: create, load, sign.
//!
//! Owns the private key on disk: an ed25519 key in PKCS#8 PEM (`openssl pkey`
//! reads it), mode 0600, refused when group or others can read it. The same
//! type serves governance keys, which are ordinary ed25519 keys held by people.
//! Calls `files` for durable writes and `envelope` for the signing prefixes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ed25519_dalek::pkcs8::{
    DecodePrivateKey, EncodePrivateKey, KeypairBytes, spki::der::pem::LineEnding,
};
use ed25519_dalek::{Signer, SigningKey};

use crate::bytes::{PublicKey, SignatureBytes};
use crate::envelope::Domain;
use crate::error::{KeysError, Result};
use crate::files::{self, Overwrite, Visibility};

/// A private key file is a few hundred bytes; anything larger is not one.
const KEY_FILE_LIMIT: usize = 4096;

/// An ed25519 private key: a node's identity or a governance holder's key.
pub struct NodeKey {
    signing: SigningKey,
}

impl NodeKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeysError::Io {
            action: "cannot read random bytes from",
            path: "the operating system".into(),
            error: std::io::Error::other(e.to_string()),
        })?;
        Ok(Self::from_seed(seed))
    }

    /// A key from its 32-byte seed (tests and key import).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        NodeKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// Generates a key and writes it to `path` with mode 0600; refuses to
    /// overwrite an existing file.
    pub fn create(path: &Path) -> Result<Self> {
        let key = Self::generate()?;
        key.write(path)?;
        Ok(key)
    }

    /// Writes the key to a new file with mode 0600.
    pub fn write(&self, path: &Path) -> Result<()> {
        // PKCS#8 v1 (seed only): OpenSSL 3.0 and most libraries read it; v2,
        // with the public key inside, is refused by several of them.
        let bytes = KeypairBytes {
            secret_key: self.signing.to_bytes(),
            public_key: None,
        };
        let pem = bytes
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeysError::Encode {
                what: "private key",
                reason: e.to_string(),
            })?;
        files::write_file(path, pem.as_bytes(), Visibility::Private, Overwrite::Refuse)
    }

    /// Loads a key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = files::read_file(path, "private key file", KEY_FILE_LIMIT)?;
        let format_error = |reason: String| KeysError::KeyFileFormat {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| format_error("not text".into()))?;
        if PublicKey::from_hex(text.trim()).is_ok() {
            return Err(format_error(
                "it holds a public key; give the private key file (without .pub)".into(),
            ));
        }
        let signing = SigningKey::from_pkcs8_pem(text).map_err(|e| format_error(e.to_string()))?;
        // Checked after the format, so that a wrong file is named as such rather
        // than given advice on its mode; nothing is used before both pass.
        let meta = std::fs::metadata(path).map_err(|e| KeysError::io("cannot read", path, e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeysError::KeyFilePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        Ok(NodeKey { signing })
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_verifying_key(&self.signing.verifying_key())
    }

    /// Signs `body` for `domain`: the signature covers the domain prefix and the body.
    pub fn sign(&self, domain: Domain, body: &[u8]) -> SignatureBytes {
        SignatureBytes(self.signing.sign(&domain.message(body)).to_bytes())
    }

    /// The 32-byte seed, for building the libp2p and TLS identities from the same key.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The key as PKCS#8 v1 DER, the form TLS libraries take.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>> {
        KeypairBytes {
            secret_key: self.signing.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_der()
        .map(|doc| doc.as_bytes().to_vec())
        .map_err(|e| KeysError::Encode {
            what: "private key",
            reason: e.to_string(),
        })
    }
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey(public {})", self.public_key())
    }
}

/// Writes a public key as one line of hex, mode 0644.
pub fn write_public_key(path: &Path, key: &PublicKey) -> Result<()> {
    files::write_file(
        path,
        format!("{key}\n").as_bytes(),
        Visibility::Public,
        Overwrite::Refuse,
    )
}

/// Reads a public key given as 64 hex digits or as the path of a file holding them.
pub fn parse_public_key_arg(arg: &str) -> Result<PublicKey> {
    let trimmed = arg.trim();
    let path = Path::new(trimmed);
    let all_hex = !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_hexdigit());
    if all_hex && (trimmed.len() == 64 || !path.exists()) {
        return PublicKey::from_hex(trimmed);
    }
    if !path.exists() {
        return Err(KeysError::field(
            "public key",
            format!(
                "{} is neither 64 hex digits nor an existing file",
                crate::text::excerpt(trimmed)
            ),
        ));
    }
    let bytes = files::read_file(path, "public key file", KEY_FILE_LIMIT)?;
    let text = String::from_utf8_lossy(&bytes);
    PublicKey::from_hex(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_gives_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let key = NodeKey::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = NodeKey::load(&path).unwrap();
        assert_eq!(key.public_key(), loaded.public_key());
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
    }

    #[test]
    fn key_files_are_pkcs8_v1_as_openssl_3_0_reads_them() {
        // RFC 8410 v1: SEQUENCE { version 0, AlgorithmIdentifier Ed25519, OCTET STRING { seed } }.
        let der = NodeKey::from_seed([5; 32]).to_pkcs8_der().unwrap();
        assert_eq!(hex::encode(&der[..16]), "302e020100300506032b657004220420");
        assert_eq!(&der[16..], &[5u8; 32]);
    }

    #[test]
    fn create_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let first = NodeKey::create(&path).unwrap();
        assert!(matches!(
            NodeKey::create(&path),
            Err(KeysError::AlreadyExists { .. })
        ));
        assert_eq!(
            NodeKey::load(&path).unwrap().public_key(),
            first.public_key()
        );
    }

    #[test]
    fn readable_key_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        NodeKey::create(&path).unwrap();
        for mode in [0o640, 0o604, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = NodeKey::load(&path).unwrap_err();
            assert!(matches!(err, KeysError::KeyFilePermissions { .. }), "{err}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(NodeKey::load(&path).is_ok());
    }

    #[test]
    fn garbage_truncated_and_missing_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        NodeKey::create(&path).unwrap();
        let pem = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        files::write_file(
            &path,
            &pem.as_bytes()[..40],
            Visibility::Private,
            Overwrite::Refuse,
        )
        .unwrap();
        assert!(matches!(
            NodeKey::load(&path),
            Err(KeysError::KeyFileFormat { .. })
        ));
        std::fs::remove_file(&path).unwrap();
        files::write_file(
            &path,
            &[0xff, 0x00, 0x13],
            Visibility::Private,
            Overwrite::Refuse,
        )
        .unwrap();
        assert!(matches!(
            NodeKey::load(&path),
            Err(KeysError::KeyFileFormat { .. })
        ));
        let err = NodeKey::load(&dir.path().join("absent.key")).unwrap_err();
        assert!(matches!(err, KeysError::Io { .. }), "{err}");
    }

    #[test]
    fn public_key_args_accept_hex_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::generate().unwrap().public_key();
        assert_eq!(parse_public_key_arg(&key.to_hex()).unwrap(), key);
        let path = dir.path().join("gov.pub");
        write_public_key(&path, &key).unwrap();
        assert_eq!(parse_public_key_arg(path.to_str().unwrap()).unwrap(), key);
        assert!(parse_public_key_arg("not-a-key").is_err());
    }
}
