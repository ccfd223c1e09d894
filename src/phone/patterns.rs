//! The patterns by which libphonenumber's rules tell a number's region and type, run by
//! regex-automata's bounded backtracker rather than by the library's own engine.
//!
//! The library compiles its patterns with regex-lite, whose one engine (a PikeVM) carries
//! every thread of a pattern over every digit. A number's type can take ten patterns, and
//! they were the larger part of a bind's number check (19.7 k instructions a bind, counted
//! with callgrind, against 6.2 k here). A backtracker follows one path at a time and marks
//! what it has visited in a bitset of a bit per state and digit, which every pattern on a
//! thread shares. Its compiled patterns are smaller than the library's: every region's
//! type patterns took 2.2 MiB, against 5.5 MiB for the library's (regex-automata's meta
//! engine, with its caches per pattern, took 14.9). As in the library, a pattern is
//! compiled the first time a number needs it, and the steps around the patterns (lengths
//! first, the order of the types) are the library's `get_number_type_helper`. A region's
//! national prefix pattern is here too, so that the library's step that strips a prefix
//! runs only for a number that has one. The tests in `e164.rs` hold the results equal to
//! the library's.

use std::cell::RefCell;
use std::sync::OnceLock;

use regex_automata::nfa::thompson::backtrack::{BoundedBacktracker, Cache};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::syntax;
use rlibphonenumber::PhoneNumberType;

/// A pattern as the library stores it (`^(?:…)$`), how the library anchors it (whole, or
/// as a prefix of the number), and once needed, compiled.
pub(super) struct Pattern {
    stored: Option<Box<str>>,
    prefix: bool,
    compiled: OnceLock<Option<BoundedBacktracker>>,
}

impl Pattern {
    pub(super) fn new(stored: Option<&str>, prefix: bool) -> Self {
        Self {
            stored: stored.map(Into::into),
            prefix,
            compiled: OnceLock::new(),
        }
    }

    /// The pattern as the library stores it; `None` where the rules have none.
    pub(super) fn stored(&self) -> Option<&str> {
        self.stored.as_deref()
    }

    /// The library's anchoring of the stored pattern: the whole of it, or all but its `$`;
    /// and, as the library has it, a stored pattern too short to hold `^(?:)$` is the
    /// empty pattern, which matches anything.
    fn source(&self) -> Option<&str> {
        self.stored().map(|base| match base.len() {
            0..6 => "",
            len if self.prefix => &base[..len - 1],
            _ => base,
        })
    }

    fn is_match(&self, national: &str) -> bool {
        self.compiled
            .get_or_init(|| self.source().and_then(compile))
            .as_ref()
            .is_some_and(|pattern| backtrack(pattern, national))
    }
}

fn compile(source: &str) -> Option<BoundedBacktracker> {
    BoundedBacktracker::builder()
        // The rules' classes are ASCII digits; `\d` need not be Unicode's.
        .syntax(syntax::Config::new().unicode(false))
        .thompson(thompson::Config::new().which_captures(WhichCaptures::Implicit))
        .build(source)
        .ok()
}

/// Whether `pattern` matches `national`, with this thread's one backtracking state, which
/// every pattern shares: it holds a bit per state of a pattern and digit of a number.
fn backtrack(pattern: &BoundedBacktracker, national: &str) -> bool {
    thread_local! {
        static VISITED: RefCell<Option<Cache>> = const { RefCell::new(None) };
    }
    VISITED.with_borrow_mut(|visited| {
        let visited = visited.get_or_insert_with(|| pattern.create_cache());
        visited.reset(pattern);
        // Only a haystack too long for the backtracker's bound fails, and a national
        // number is at most 17 digits.
        pattern.try_is_match(visited, national).unwrap_or(false)
    })
}

/// One kind of number of a region: the lengths its national numbers may have (any, when
/// empty) and the pattern they must match.
pub(super) struct Description {
    pub(super) lengths: Box<[i32]>,
    pub(super) pattern: Pattern,
}

impl Description {
    fn is_match(&self, national: &str) -> bool {
        let length = i32::try_from(national.len()).unwrap_or(i32::MAX);
        (self.lengths.is_empty() || self.lengths.contains(&length))
            && self.pattern.is_match(national)
    }
}

/// The patterns of one region's rules (or of one non-geographic calling code's).
pub(super) struct Rules {
    pub(super) general: Description,
    /// The lengths of a number the region dials only locally (without its area code).
    pub(super) local_only_lengths: Box<[i32]>,
    /// In the library's order of trying them, after the general description.
    pub(super) special: [(Description, PhoneNumberType); 8],
    pub(super) fixed_line: Description,
    pub(super) mobile: Description,
    pub(super) same_mobile_and_fixed_line: bool,
    pub(super) leading_digits: Pattern,
    pub(super) national_prefix: Pattern,
}

impl Rules {
    /// Whether `national` is long enough to be a whole number of the region: what the
    /// library's `is_possible_number_with_reason` gives, other than "too short", "of no
    /// possible length" or "dialled only locally".
    pub(super) fn long_enough(&self, national: &str) -> bool {
        let mask = |lengths: &[i32]| {
            lengths
                .iter()
                .filter_map(|length| u32::try_from(*length).ok().filter(|l| *l < 64))
                .fold(0u64, |mask, length| mask | 1 << length)
        };
        let possible = mask(&self.general.lengths);
        if possible == 0 {
            return false;
        }
        let length = national.len();
        if length >= 64 {
            return true;
        }
        let bit = 1u64 << length;
        if mask(&self.local_only_lengths) & bit != 0 {
            return false;
        }
        let (shortest, longest) = (possible.trailing_zeros(), 63 - possible.leading_zeros());
        let length = length as u32;
        length > longest || (length >= shortest && possible & bit != 0)
    }

    /// What the library's `get_number_type_helper` gives for `national` with these rules.
    pub(super) fn number_type(&self, national: &str) -> PhoneNumberType {
        if !self.general.is_match(national) {
            return PhoneNumberType::Unknown;
        }
        if let Some((_, kind)) = self
            .special
            .iter()
            .find(|(description, _)| description.is_match(national))
        {
            return *kind;
        }
        if self.fixed_line.is_match(national) {
            return if self.same_mobile_and_fixed_line || self.mobile.is_match(national) {
                PhoneNumberType::FixedLineOrMobile
            } else {
                PhoneNumberType::FixedLine
            };
        }
        if !self.same_mobile_and_fixed_line && self.mobile.is_match(national) {
            return PhoneNumberType::Mobile;
        }
        PhoneNumberType::Unknown
    }

    /// Whether `national` starts with the region's leading digits (regions that share a
    /// calling code set them).
    pub(super) fn leads(&self, national: &str) -> bool {
        self.leading_digits.is_match(national)
    }

    /// Whether `national` starts with what the region's rules read as a national (trunk)
    /// prefix; without one, the library's step that strips it changes nothing.
    pub(super) fn starts_with_national_prefix(&self, national: &str) -> bool {
        self.national_prefix.is_match(national)
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalogue::Catalogue;
    use super::*;

    #[test]
    fn every_pattern_of_every_rule_compiles() {
        let mut compiled = 0;
        for rules in Catalogue::get().entries().map(|entry| &entry.rules) {
            let descriptions = [&rules.general, &rules.fixed_line, &rules.mobile]
                .into_iter()
                .chain(rules.special.iter().map(|(description, _)| description));
            let patterns = descriptions
                .map(|description| &description.pattern)
                .chain([&rules.leading_digits, &rules.national_prefix]);
            for pattern in patterns {
                if let Some(source) = pattern.source() {
                    assert!(compile(source).is_some(), "{source}");
                    compiled += 1;
                }
            }
        }
        assert!(compiled > 1_000, "{compiled} patterns");
    }
}
