//! A short-lived, bounded cache of subject -> AutoShares user id, so the database is not
//! asked on every request. Entries live at most `ttl` (CONTRACT.md §3: 5 s).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids::{AutosharesUserId, Subject};

const MAX_ENTRIES: usize = 100_000;

pub struct LinkCache {
    ttl: Duration,
    entries: Mutex<HashMap<Subject, (Option<AutosharesUserId>, Instant)>>,
}

impl LinkCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(answer)` on a hit, where the answer may be "not linked".
    pub fn get(&self, subject: &Subject) -> Option<Option<AutosharesUserId>> {
        let entries = self.entries.lock().expect("link cache lock poisoned");
        entries
            .get(subject)
            .filter(|(_, stored)| stored.elapsed() < self.ttl)
            .map(|(user, _)| *user)
    }

    pub fn put(&self, subject: &Subject, user: Option<AutosharesUserId>) {
        let mut entries = self.entries.lock().expect("link cache lock poisoned");
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (_, stored)| stored.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(subject.clone(), (user, Instant::now()));
    }

    pub fn forget(&self, subject: &Subject) {
        self.entries
            .lock()
            .expect("link cache lock poisoned")
            .remove(subject);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_forgotten() {
        let cache = LinkCache::new(Duration::from_millis(50));
        let (a, b) = (Subject::from("a"), Subject::from("b"));
        cache.put(&a, Some(AutosharesUserId(1)));
        cache.put(&b, None);
        assert_eq!(cache.get(&a), Some(Some(AutosharesUserId(1))));
        assert_eq!(cache.get(&b), Some(None), "a cached miss");
        cache.forget(&a);
        assert_eq!(cache.get(&a), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&b), None, "expired");
    }
}
