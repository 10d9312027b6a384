//! Signing keys: ed25519 (ed25519-dalek). A key is written `name:base64`, the name telling which
//! key signed (several may be trusted); the secret key lives in `<root>/etc/signing.key`
//! (mode 0600), public keys in the configuration of the machines that trust it.

use base64::Engine as _;
use ed25519_dalek::{Signer as _, Verifier as _};

use super::CacheError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A secret signing key and its name.
pub struct SecretKey {
    pub name: String,
    key: ed25519_dalek::SigningKey,
}

/// A public key and its name.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub name: String,
    key: ed25519_dalek::VerifyingKey,
}

fn split(text: &str) -> Result<(String, [u8; 32]), CacheError> {
    let bad = || CacheError::BadKey(text.trim().to_owned());
    let (name, b64) = text.trim().split_once(':').ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    let bytes = B64.decode(b64).map_err(|_| bad())?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
    Ok((name.to_owned(), bytes))
}

impl SecretKey {
    /// A new random key.
    pub fn generate(name: &str) -> Result<SecretKey, CacheError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|e| CacheError::BadKey(format!("no randomness: {e}")))?;
        Ok(SecretKey {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    pub fn parse(text: &str) -> Result<SecretKey, CacheError> {
        let (name, bytes) = split(text)?;
        Ok(SecretKey {
            name,
            key: ed25519_dalek::SigningKey::from_bytes(&bytes),
        })
    }

    /// `name:base64` of the secret.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.name, B64.encode(self.key.to_bytes()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// `name:base64` of the signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        format!(
            "{}:{}",
            self.name,
            B64.encode(self.key.sign(message).to_bytes())
        )
    }
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<PublicKey, CacheError> {
        let (name, bytes) = split(text)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| CacheError::BadKey(text.trim().to_owned()))?;
        Ok(PublicKey { name, key })
    }

    pub fn to_text(&self) -> String {
        format!("{}:{}", self.name, B64.encode(self.key.to_bytes()))
    }

    /// Whether `signature` (`name:base64`) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Some((name, b64)) = signature.split_once(':') else {
            return false;
        };
        if name != self.name {
            return false;
        }
        let Ok(bytes) = B64.decode(b64) else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&bytes) else {
            return false;
        };
        self.key.verify(message, &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let key = SecretKey::generate("node-a").expect("key");
        let again = SecretKey::parse(&key.to_text()).expect("parse");
        let public = PublicKey::parse(&again.public().to_text()).expect("public");
        let sig = key.sign(b"message");
        assert!(public.verifies(b"message", &sig));
        assert!(!public.verifies(b"other", &sig));
        let other = SecretKey::generate("node-a").expect("key");
        assert!(
            !other.public().verifies(b"message", &sig),
            "another key of the same name"
        );
        assert!(!public.verifies(b"message", &sig.replace("node-a", "node-b")));
        assert!(PublicKey::parse("nocolon").is_err());
        assert!(PublicKey::parse("a:AAAA").is_err());
    }
}
