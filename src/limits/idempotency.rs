//! Idempotent binds (docs/api.md "Idempotency"): a record per (AutoShares user id,
//! `Idempotency-Key`), named by a keyed hash of both, holding first an in-flight marker
//! with the number's fingerprint, then the sealed answer AutoShares decided. What the
//! backends store is [`Record`]; what a bind learns is [`Begun`].

use std::time::Duration;

use crate::ids::AutosharesUserId;
use crate::verification::Envelope;

use super::keyed_hash::{Digest, KeyedHash};

/// How long an in-flight marker holds a key when its request never settles (a crashed
/// replica): longer than any request may take.
pub const IN_FLIGHT_TTL: Duration = Duration::from_secs(60);

/// What a backend holds under a record's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A bind with this number's fingerprint is under way.
    InFlight(Digest),
    /// The sealed answer of a finished bind.
    Done(Vec<u8>),
}

impl Record {
    /// As stored in Redis: a tag byte, then the fingerprint or the sealed answer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (tag, rest): (u8, &[u8]) = match self {
            Self::InFlight(fingerprint) => (b'i', fingerprint),
            Self::Done(sealed) => (b'd', sealed),
        };
        let mut bytes = Vec::with_capacity(1 + rest.len());
        bytes.push(tag);
        bytes.extend_from_slice(rest);
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes.split_first()? {
            (b'i', rest) => Some(Self::InFlight(rest.try_into().ok()?)),
            (b'd', rest) => Some(Self::Done(rest.to_vec())),
            _ => None,
        }
    }
}

/// A stored answer: the status and body AutoShares' decision produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What a bind with a key may do.
#[derive(Debug)]
pub enum Begun {
    /// No record: this bind goes ahead and must finish or abandon its record.
    Fresh,
    /// The same key and number answered before: send this again.
    Replay(StoredAnswer),
    /// The same key and number are in flight.
    InProgress,
    /// The key was used with another number.
    Reused,
}

/// Names and seals records.
pub struct Records {
    hash: KeyedHash,
    envelope: Envelope,
}

impl Records {
    pub fn new(hash: KeyedHash, envelope: Envelope) -> Self {
        Self { hash, envelope }
    }

    /// The record's name: never the raw key or the user id.
    pub fn name(&self, user: AutosharesUserId, key: &str) -> Digest {
        self.hash.digest("idempotency", &format!("{user}\0{key}"))
    }

    /// Seals `answer` for the record `name` with the number's `fingerprint`.
    pub fn seal(&self, name: &Digest, fingerprint: &Digest, answer: &StoredAnswer) -> Vec<u8> {
        let mut plain = Vec::with_capacity(18 + answer.body.len());
        plain.extend_from_slice(&answer.status.to_be_bytes());
        plain.extend_from_slice(fingerprint);
        plain.extend_from_slice(&answer.body);
        self.envelope.seal(name, &plain)
    }

    /// What `record` means for a bind of the number with `fingerprint`.
    pub fn judge(&self, name: &Digest, fingerprint: &Digest, record: Option<Record>) -> Begun {
        match record {
            None => Begun::Fresh,
            Some(Record::InFlight(theirs)) if theirs == *fingerprint => Begun::InProgress,
            Some(Record::InFlight(_)) => Begun::Reused,
            Some(Record::Done(sealed)) => {
                let Some(plain) = self.envelope.open(name, &sealed) else {
                    // Sealed under another secret: as good as no record.
                    return Begun::Fresh;
                };
                if plain.len() < 18 || plain[2..18] != fingerprint[..] {
                    return Begun::Reused;
                }
                Begun::Replay(StoredAnswer {
                    status: u16::from_be_bytes([plain[0], plain[1]]),
                    body: plain[18..].to_vec(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretBox;

    fn records() -> Records {
        let secret = SecretBox::new(Box::new([3; 32]));
        Records::new(
            KeyedHash::derive(&secret),
            Envelope::derive(&secret, "test"),
        )
    }

    #[test]
    fn a_stored_answer_replays_for_its_number_only() {
        let records = records();
        let name = records.name(AutosharesUserId(7), "key-1");
        let (mine, other) = ([1; 16], [2; 16]);
        let answer = StoredAnswer {
            status: 200,
            body: b"{\"phoneNumber\":\"+13108904569\"}".to_vec(),
        };
        let sealed = records.seal(&name, &mine, &answer);
        assert!(!String::from_utf8_lossy(&sealed).contains("3108904569"));
        let stored = Record::from_bytes(&Record::Done(sealed).to_bytes());
        match records.judge(&name, &mine, stored.clone()) {
            Begun::Replay(replayed) => assert_eq!(replayed, answer),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            records.judge(&name, &other, stored),
            Begun::Reused
        ));
        let flying = Some(Record::InFlight(mine));
        assert!(matches!(
            records.judge(&name, &mine, flying.clone()),
            Begun::InProgress
        ));
        assert!(matches!(
            records.judge(&name, &other, flying),
            Begun::Reused
        ));
        assert!(matches!(records.judge(&name, &mine, None), Begun::Fresh));
    }

    #[test]
    fn names_depend_on_the_user_and_the_key() {
        let records = records();
        let a = records.name(AutosharesUserId(7), "k");
        assert_ne!(a, records.name(AutosharesUserId(8), "k"));
        assert_ne!(a, records.name(AutosharesUserId(7), "k2"));
    }
}
