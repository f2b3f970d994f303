//! Transactions (`POST /tx`): a transfer of `amount` from one account
//! (public key) to another. The stand-in checks the *shape* only; signatures
//! are carried but never verified (see README.md, "Transactions and balances").
//!
//! In a block a transaction is stored in its canonical form
//! `{tx_id, from, to, amount, timestamp, signature}`, where `tx_id` is the
//! SHA-256 (hex) of the canonical JSON `{"from","to","amount","signature"}`:
//! the signature stands for everything its signer signed, so the same
//! signed transfer submitted twice (at different times) is the same
//! transaction; `timestamp` is information only.

use crate::json::{num_f, num_u, obj, string, Json};
use crate::sha256::sha256_hex;

/// Largest accepted amount (keeps balances exact enough as f64 sums).
pub const MAX_AMOUNT: f64 = 1e12;
pub const MAX_SIGNATURE_LEN: usize = 1024;
pub const MAX_TX_PER_BLOCK: usize = 1000;

#[derive(Clone, Debug, PartialEq)]
pub struct Transaction {
    pub tx_id: String,
    pub from: String,
    pub to: String,
    pub amount: f64,
    pub timestamp: u64,
    pub signature: String,
}

/// An account id (public key): 1 to 128 characters, no control characters,
/// no spaces and no `/` (so that it fits in `/balance/:pubkey`).
pub fn check_pubkey(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 128 || s.chars().any(|c| c.is_control() || c.is_whitespace() || c == '/') {
        return Err("must be 1 to 128 characters without spaces, control characters or '/'".into());
    }
    Ok(())
}

fn first_str<'a>(j: &'a Json, keys: &[&str]) -> Option<&'a Json> {
    keys.iter().find_map(|k| j.get(k))
}

impl Transaction {
    fn hash_of(from: &str, to: &str, amount: f64, signature: &str) -> String {
        let body = obj(vec![("from", string(from)), ("to", string(to)), ("amount", num_f(amount)), ("signature", string(signature))]);
        sha256_hex(body.to_string().as_bytes())
    }

    pub fn new(from: &str, to: &str, amount: f64, timestamp: u64, signature: &str) -> Result<Transaction, String> {
        let t = Transaction {
            tx_id: Transaction::hash_of(from, to, amount, signature),
            from: from.to_string(),
            to: to.to_string(),
            amount,
            timestamp,
            signature: signature.to_string(),
        };
        t.check()?;
        Ok(t)
    }

    fn check(&self) -> Result<(), String> {
        check_pubkey(&self.from).map_err(|e| format!("from {}", e))?;
        check_pubkey(&self.to).map_err(|e| format!("to {}", e))?;
        if !(self.amount.is_finite() && self.amount > 0.0 && self.amount <= MAX_AMOUNT) {
            return Err(format!("amount must be a number > 0 and <= {}", MAX_AMOUNT));
        }
        if self.signature.is_empty() || self.signature.len() > MAX_SIGNATURE_LEN || self.signature.chars().any(|c| c.is_control()) {
            return Err(format!("signature must be a non-empty string of at most {} characters", MAX_SIGNATURE_LEN));
        }
        Ok(())
    }

    /// A submitted transaction (the body of `POST /tx`), checked for shape:
    /// an object, or `{"transaction": {...}}` / `{"tx": {...}}`, with
    /// * sender: `from`, `sender`, `sender_pubkey` or `pubkey` (an account id),
    /// * recipient: `to`, `recipient` or `recipient_pubkey` (an account id),
    /// * `amount`: a JSON number, 0 < amount <= 1e12,
    /// * `signature`: a non-empty string (NOT verified),
    /// * `timestamp` (optional): milliseconds, an unsigned integer; default `now_ms`.
    ///
    /// Other members (nonce, memo, fee, ...) are ignored.
    pub fn from_submission(j: &Json, now_ms: u64) -> Result<Transaction, String> {
        let j = match j.get("transaction").or_else(|| j.get("tx")) {
            Some(inner @ Json::Obj(_)) => inner,
            _ => j,
        };
        if !matches!(j, Json::Obj(_)) {
            return Err("expected a JSON object".into());
        }
        let from = match first_str(j, &["from", "sender", "sender_pubkey", "pubkey"]) {
            Some(Json::Str(s)) => s,
            Some(_) => return Err("from must be a string".into()),
            None => return Err("missing from (sender public key)".into()),
        };
        let to = match first_str(j, &["to", "recipient", "recipient_pubkey"]) {
            Some(Json::Str(s)) => s,
            Some(_) => return Err("to must be a string".into()),
            None => return Err("missing to (recipient public key)".into()),
        };
        let amount = match j.get("amount") {
            Some(v @ Json::Num(_)) => v.as_f64().unwrap_or(f64::NAN),
            Some(_) => return Err("amount must be a JSON number".into()),
            None => return Err("missing amount".into()),
        };
        let signature = match j.get("signature") {
            Some(Json::Str(s)) => s,
            Some(_) => return Err("signature must be a string".into()),
            None => return Err("missing signature".into()),
        };
        let timestamp = match j.get("timestamp") {
            None => now_ms,
            Some(v) => v.as_u64().ok_or("timestamp must be an unsigned integer (ms)")?,
        };
        Transaction::new(from, to, amount, timestamp, signature)
    }

    pub fn to_json(&self) -> Json {
        obj(vec![
            ("tx_id", string(&self.tx_id)),
            ("from", string(&self.from)),
            ("to", string(&self.to)),
            ("amount", num_f(self.amount)),
            ("timestamp", num_u(self.timestamp)),
            ("signature", string(&self.signature)),
        ])
    }

    /// A transaction inside a block: exactly the canonical form, with a matching `tx_id`.
    pub fn from_block_json(j: &Json) -> Result<Transaction, String> {
        let s = |k: &str| j.get(k).and_then(|v| v.as_str()).ok_or(format!("transaction: missing or invalid '{}'", k));
        let amount = j.get("amount").and_then(|v| v.as_f64()).ok_or("transaction: missing or invalid 'amount'")?;
        let timestamp = j.get("timestamp").and_then(|v| v.as_u64()).ok_or("transaction: missing or invalid 'timestamp'")?;
        let t = Transaction::new(s("from")?, s("to")?, amount, timestamp, s("signature")?).map_err(|e| format!("transaction: {}", e))?;
        if t.tx_id != s("tx_id")? {
            return Err("transaction: tx_id does not match its content".into());
        }
        if &t.to_json() != j {
            return Err("transaction: not in canonical form".into());
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn sub(text: &str) -> Result<Transaction, String> {
        Transaction::from_submission(&parse(text).unwrap(), 1_000)
    }

    #[test]
    fn submissions_are_checked_for_shape() {
        let t = sub(r#"{"from":"alice","to":"bob","amount":2.5,"signature":"sig","nonce":7}"#).unwrap();
        assert_eq!((t.from.as_str(), t.to.as_str(), t.amount, t.timestamp), ("alice", "bob", 2.5, 1_000));
        assert_eq!(t.tx_id.len(), 64);
        // the same signed transfer at another time is the same transaction
        let later = Transaction::from_submission(&parse(r#"{"from":"alice","to":"bob","amount":2.5,"signature":"sig"}"#).unwrap(), 9_999).unwrap();
        assert_eq!(later.tx_id, t.tx_id);
        assert_ne!(sub(r#"{"from":"alice","to":"bob","amount":2.5,"signature":"sig2"}"#).unwrap().tx_id, t.tx_id);
        // aliases and the wrapped form give the same transaction
        let w = sub(r#"{"transaction":{"sender_pubkey":"alice","recipient":"bob","amount":2.5,"signature":"sig","timestamp":1000}}"#).unwrap();
        assert_eq!(w, t);
        for bad in [
            "[1]",
            r#"{"to":"bob","amount":1,"signature":"s"}"#,
            r#"{"from":"alice","amount":1,"signature":"s"}"#,
            r#"{"from":"alice","to":"bob","signature":"s"}"#,
            r#"{"from":"alice","to":"bob","amount":"1","signature":"s"}"#,
            r#"{"from":"alice","to":"bob","amount":0,"signature":"s"}"#,
            r#"{"from":"alice","to":"bob","amount":-1,"signature":"s"}"#,
            r#"{"from":"alice","to":"bob","amount":1e13,"signature":"s"}"#,
            r#"{"from":"alice","to":"bob","amount":1}"#,
            r#"{"from":"alice","to":"bob","amount":1,"signature":""}"#,
            r#"{"from":"alice","to":"bob","amount":1,"signature":5}"#,
            r#"{"from":"al ice","to":"bob","amount":1,"signature":"s"}"#,
            r#"{"from":"alice","to":"a/b","amount":1,"signature":"s"}"#,
            r#"{"from":"alice","to":"bob","amount":1,"signature":"s","timestamp":-5}"#,
        ] {
            assert!(sub(bad).is_err(), "should refuse {}", bad);
        }
    }

    #[test]
    fn block_form_round_trips_and_is_strict() {
        let t = Transaction::new("alice", "bob", 0.1, 5, "sig").unwrap();
        let j = t.to_json();
        assert_eq!(Transaction::from_block_json(&parse(&j.to_string()).unwrap()).unwrap(), t);
        let tampered = j.to_string().replace("\"amount\":0.1", "\"amount\":100");
        assert!(Transaction::from_block_json(&parse(&tampered).unwrap()).is_err());
        let extra = j.to_string().replace("{\"tx_id\"", "{\"x\":null,\"tx_id\"");
        assert!(Transaction::from_block_json(&parse(&extra).unwrap()).is_err());
    }
}
