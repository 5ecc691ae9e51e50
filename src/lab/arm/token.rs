//! The lab's access tokens, shaped as Microsoft Entra ID's: a JWT whose claims
//! Azure clients read (`aud`, `iss`, `tid`, `oid`, `exp`). The Azure CLI
//! decodes the token it is handed (`az login --identity`) and refuses one that
//! is not three base64url segments; the signature is the lab's own
//! (HMAC-SHA256 under a key made per lab), which no client checks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The tenant of the lab's identities.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// A token for ARM (`aud` https://management.azure.com/), valid a day.
pub fn issue(key: &[u8; 32], subject: &str) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let header = json!({ "typ": "JWT", "alg": "HS256", "kid": "milink-lab" });
    let claims = json!({
        "aud": "https://management.azure.com/",
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "iat": now,
        "nbf": now,
        "exp": now + 86_400,
        "tid": TENANT,
        "oid": subject,
        "sub": subject,
        "appid": subject,
        "idtyp": "app",
        "ver": "1.0",
    });
    let body = format!("{}.{}", segment(&header), segment(&claims));
    let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(key, body.as_bytes()));
    format!("{body}.{sig}")
}

fn segment(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default())
}

/// RFC 2104 over SHA-256 (the key is shorter than a block).
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(key);
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_with_the_claims_azure_clients_read() {
        let t = issue(&[7; 32], "11111111-2222-3333-4444-555555555555");
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["tid"], TENANT);
        assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
        // RFC 4231 test case 2 shape: a known HMAC-SHA256 with a short key.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&key, b"what do ya want for nothing?");
        assert_eq!(
            crate::tsql::hex(&mac).to_ascii_lowercase(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
