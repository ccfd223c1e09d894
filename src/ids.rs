//! The identifiers several layers name: the end user's `Subject`, AutoShares' user id, and
//! the token id AutoShares hands out in step 1. Leaf types: this module imports nothing of
//! ours, so no layer has to import a sibling just to name a value.

use std::fmt;

/// The non-empty `sub` claim of an end user's JWT.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(String);

impl Subject {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Subject {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for Subject {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// AutoShares' own integer user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AutosharesUserId(pub i64);

impl fmt::Display for AutosharesUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The token id AutoShares hands out in step 1 (`m_Item2`) and expects in step 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamTokenId(pub i64);

impl fmt::Display for UpstreamTokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
