//! A short-lived, bounded cache of subject -> AutoShares user id, so the database is not
//! asked on every request. Entries live at most `ttl` (docs/api.md "The operations API": 5 s), counted from
//! when their read began. An entry asked for in its last `REFRESH_WINDOW` is due to be read
//! again, once, while it is still served: a caller who keeps calling never waits for the
//! database.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use foldhash::HashMap;

use crate::ids::{AutosharesUserId, Subject};

const MAX_ENTRIES: usize = 100_000;
/// The end of an entry's life in which a lookup starts its next read.
const REFRESH_WINDOW: Duration = Duration::from_secs(1);

pub struct LinkCache {
    ttl: Duration,
    entries: Mutex<HashMap<Subject, Entry>>,
}

struct Entry {
    user: Option<AutosharesUserId>,
    /// When the read that found `user` began.
    read_at: Instant,
    /// A read again is under way (or was, and failed: the entry then just expires).
    refreshing: bool,
}

/// A cached answer, where the answer may be "not linked".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub user: Option<AutosharesUserId>,
    /// This lookup should read the link again, in the background, and `refresh` the entry.
    pub refresh: bool,
}

impl LinkCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::default()),
        }
    }

    pub fn get(&self, subject: &Subject) -> Option<Hit> {
        let mut entries = self.entries();
        let entry = entries.get_mut(subject)?;
        let age = entry.read_at.elapsed();
        if age >= self.ttl {
            return None;
        }
        let refresh = !entry.refreshing && age >= self.ttl.saturating_sub(REFRESH_WINDOW);
        entry.refreshing |= refresh;
        Some(Hit {
            user: entry.user,
            refresh,
        })
    }

    /// Stores what a read that began at `read_at` found.
    pub fn put(&self, subject: &Subject, user: Option<AutosharesUserId>, read_at: Instant) {
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, entry| entry.read_at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(subject.clone(), fresh(user, read_at));
    }

    /// Stores what the read a `Hit::refresh` asked for found, unless the entry was forgotten
    /// or replaced by a later read meanwhile.
    pub fn refresh(&self, subject: &Subject, user: Option<AutosharesUserId>, read_at: Instant) {
        if let Some(entry) = self.entries().get_mut(subject)
            && entry.read_at < read_at
        {
            *entry = fresh(user, read_at);
        }
    }

    pub fn forget(&self, subject: &Subject) {
        self.entries().remove(subject);
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Subject, Entry>> {
        self.entries.lock().expect("link cache lock poisoned")
    }
}

fn fresh(user: Option<AutosharesUserId>, read_at: Instant) -> Entry {
    Entry {
        user,
        read_at,
        refreshing: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Option<AutosharesUserId> = Some(AutosharesUserId(1));
    const TWO: Option<AutosharesUserId> = Some(AutosharesUserId(2));

    fn hit(user: Option<AutosharesUserId>, refresh: bool) -> Option<Hit> {
        Some(Hit { user, refresh })
    }

    #[test]
    fn entries_expire_and_can_be_forgotten() {
        let cache = LinkCache::new(Duration::from_secs(5));
        let (a, b) = (Subject::from("a"), Subject::from("b"));
        cache.put(&a, ONE, Instant::now());
        cache.put(&b, None, Instant::now() - Duration::from_millis(4500));
        assert_eq!(cache.get(&a), hit(ONE, false));
        assert_eq!(cache.get(&b), hit(None, true), "a cached miss, due again");
        cache.forget(&a);
        assert_eq!(cache.get(&a), None);
        cache.put(&b, None, Instant::now() - Duration::from_secs(5));
        assert_eq!(cache.get(&b), None, "expired");
    }

    #[test]
    fn an_entry_near_its_end_is_read_again_once_and_served_meanwhile() {
        let cache = LinkCache::new(Duration::from_secs(5));
        let a = Subject::from("a");
        let first_read = Instant::now() - Duration::from_millis(4500);
        cache.put(&a, ONE, first_read);
        assert_eq!(
            cache.get(&a),
            hit(ONE, true),
            "due: this lookup reads again"
        );
        assert_eq!(cache.get(&a), hit(ONE, false), "the read is under way");

        // A read that began before the entry's own cannot replace it.
        cache.refresh(&a, TWO, first_read - Duration::from_secs(1));
        assert_eq!(cache.get(&a), hit(ONE, false));
        cache.refresh(&a, TWO, Instant::now());
        assert_eq!(
            cache.get(&a),
            hit(TWO, false),
            "refreshed, with a life of its own"
        );

        cache.forget(&a);
        cache.refresh(&a, ONE, Instant::now());
        assert_eq!(cache.get(&a), None, "a forgotten entry stays forgotten");
    }
}
