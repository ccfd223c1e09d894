//! Phone numbers: parse what a person typed, normalise it to E.164, and keep only numbers
//! that are valid for their country and can receive an SMS (docs/api.md). The only way
//! a number reaches a log is the masked `Display` here.

mod catalogue;
mod e164;
mod patterns;

use std::fmt;

use rlibphonenumber::PhoneNumberType;

use crate::config::PhoneSettings;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number has characters other than digits and separators")]
    BadCharacters,
    #[error("phone number must start with + and a country code")]
    NoCountryCode,
    #[error("phone number is not a valid number for its country")]
    Invalid,
    #[error("phone number cannot receive SMS")]
    NotSmsCapable,
    #[error("phone number's country is not allowed")]
    CountryNotAllowed,
}

/// Which numbers this deployment accepts.
#[derive(Debug, Clone, Default)]
pub struct PhoneRules {
    allowed_countries: Option<Vec<String>>,
}

impl PhoneRules {
    pub fn new(settings: &PhoneSettings) -> Self {
        Self {
            allowed_countries: settings.allowed_countries.clone(),
        }
    }
}

/// A valid, SMS-capable number in E.164 form (`+13108904569`), with its country.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    e164: String,
    country: Country,
}

/// An ISO 3166 alpha-2 region as libphonenumber names it; `ZZ` when it names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    const UNKNOWN: Self = Self(*b"ZZ");

    /// A number's region; `ZZ` also for the non-geographic codes (`001`).
    fn of(region: Option<rlibphonenumber::Region>) -> Self {
        region
            .and_then(|region| region.as_region_str().as_bytes().try_into().ok())
            .map_or(Self::UNKNOWN, Self)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("ZZ")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PhoneNumber {
    /// Normalises `input`: spaces, dashes, dots and parentheses are dropped; the rest must
    /// be `+`, a country code and digits that libphonenumber's rules accept as a mobile
    /// (or fixed-line-or-mobile) number of an allowed country.
    pub fn parse(input: &str, rules: &PhoneRules) -> Result<Self, PhoneError> {
        let compact: String = input
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
            .collect();
        if compact.is_empty() {
            return Err(PhoneError::Empty);
        }
        let Some(digits) = compact.strip_prefix('+') else {
            return Err(PhoneError::NoCountryCode);
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(PhoneError::BadCharacters);
        }
        // E.164 allows at most 15 digits; longer input is not worth handing to the parser.
        if digits.len() > 15 {
            return Err(PhoneError::Invalid);
        }
        let parsed = e164::parse(digits).ok_or(PhoneError::Invalid)?;
        // libphonenumber's "valid" is "of a known type for its region": the type answers
        // both questions, and finding it finds the region.
        let (region, kind) = e164::region_and_type(&parsed);
        match kind {
            PhoneNumberType::Unknown => return Err(PhoneError::Invalid),
            PhoneNumberType::Mobile | PhoneNumberType::FixedLineOrMobile => {}
            _ => return Err(PhoneError::NotSmsCapable),
        }
        let country = Country::of(region);
        if let Some(allowed) = &rules.allowed_countries
            && !allowed.iter().any(|code| code == country.as_str())
        {
            return Err(PhoneError::CountryNotAllowed);
        }
        Ok(Self {
            e164: e164::format(&parsed),
            country,
        })
    }

    /// Accepts a number that is already E.164 (from a sealed token) as is; only its
    /// country is looked up again.
    pub fn from_trusted_e164(number: String) -> Self {
        let country = number
            .strip_prefix('+')
            .and_then(e164::parse)
            .map_or(Country::UNKNOWN, |parsed| {
                Country::of(e164::region(&parsed))
            });
        Self {
            e164: number,
            country,
        }
    }

    /// The full number, for AutoShares and for the caller who sent it; never for logs.
    pub fn as_e164(&self) -> &str {
        &self.e164
    }

    /// The number as logs, traces and the audit trail show it: `+1310*****69`.
    pub fn masked(&self) -> String {
        mask(&self.e164)
    }

    /// The number's region (docs/abuse.md).
    pub fn country(&self) -> Country {
        self.country
    }

    /// The number without its last `drop_digits` digits (`+34635952910` -> `+3463595`).
    pub fn prefix(&self, drop_digits: usize) -> &str {
        let keep = self.e164.len().saturating_sub(drop_digits).max(2);
        &self.e164[..keep.min(self.e164.len())]
    }
}

/// Masks all but the country-code end and the last two digits: `+1310*****69`.
/// The shown parts are copied whole, not a character at a time.
fn mask(e164: &str) -> String {
    // A number's text is ASCII: then a character is a byte, and no walk finds where one is.
    let ascii = e164.is_ascii();
    let len = if ascii {
        e164.len()
    } else {
        e164.chars().count()
    };
    let shown_head = if len >= 12 {
        5
    } else {
        len.saturating_sub(7).max(1)
    };
    let shown_tail = if len > shown_head + 4 { 2 } else { 0 };
    let hidden = len.saturating_sub(shown_head + shown_tail);
    // The byte offset of character `n` (the end, past the last one).
    let offset = |n: usize| {
        if ascii {
            n.min(e164.len())
        } else {
            e164.char_indices().nth(n).map_or(e164.len(), |(at, _)| at)
        }
    };
    let (head, tail) = (
        &e164[..offset(shown_head)],
        &e164[offset(shown_head + hidden)..],
    );
    let mut out = String::with_capacity(head.len() + hidden + tail.len());
    out.push_str(head);
    out.extend(std::iter::repeat_n('*', hidden));
    out.push_str(tail);
    out
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_country() -> PhoneRules {
        PhoneRules::default()
    }

    #[test]
    fn formatted_numbers_are_normalised() {
        let cases = [
            (
                "+1 (310) 890-4569",
                "+13108904569",
                "US with parentheses and dash",
            ),
            (
                "+34 635 95 29 10",
                "+34635952910",
                "Spanish mobile with spaces",
            ),
            ("+44.7400.123456", "+447400123456", "UK mobile with dots"),
            ("  +13108904569 ", "+13108904569", "surrounding spaces"),
        ];
        for (input, expected, what) in cases {
            let number =
                PhoneNumber::parse(input, &any_country()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(number.as_e164(), expected, "{what}");
        }
    }

    #[test]
    fn invalid_numbers_are_refused_with_a_reason() {
        let cases = [
            ("", PhoneError::Empty, "empty"),
            ("13108904569", PhoneError::NoCountryCode, "no plus"),
            ("+1 310 890 456a", PhoneError::BadCharacters, "a letter"),
            (
                "+1-310-890-4569 ext 1",
                PhoneError::BadCharacters,
                "an extension",
            ),
            ("+", PhoneError::BadCharacters, "plus alone"),
            ("+1310890", PhoneError::Invalid, "too short for the US"),
            (
                "+1234567890123456",
                PhoneError::Invalid,
                "longer than E.164",
            ),
            ("+999123456789", PhoneError::Invalid, "no such country code"),
            ("+18005550199", PhoneError::NotSmsCapable, "US toll-free"),
            (
                "+34912345678",
                PhoneError::NotSmsCapable,
                "Spanish fixed line",
            ),
            (
                "+449012345678",
                PhoneError::NotSmsCapable,
                "UK premium rate",
            ),
            // Refused by libphonenumber's current rules; the crate used before accepted
            // them as mobile numbers.
            (
                "+4743896577",
                PhoneError::Invalid,
                "a Norwegian range with no numbers",
            ),
            (
                "+5538731886193",
                PhoneError::Invalid,
                "a Brazilian mobile not starting with 9",
            ),
        ];
        for (input, expected, what) in cases {
            assert_eq!(
                PhoneNumber::parse(input, &any_country()),
                Err(expected),
                "{what}: {input}"
            );
        }
    }

    #[test]
    fn allowed_countries_are_honoured() {
        let rules = PhoneRules::new(&PhoneSettings {
            allowed_countries: Some(vec!["ES".to_owned()]),
        });
        assert!(
            PhoneNumber::parse("+34635952910", &rules).is_ok(),
            "Spain allowed"
        );
        assert_eq!(
            PhoneNumber::parse("+13108904569", &rules),
            Err(PhoneError::CountryNotAllowed),
            "US not in the list"
        );
    }

    #[test]
    fn display_and_debug_mask_the_number() {
        let number = PhoneNumber::parse("+13108904569", &any_country()).unwrap();
        assert_eq!(number.to_string(), "+1310*****69");
        assert_eq!(format!("{number:?}"), "PhoneNumber(+1310*****69)");
    }

    #[test]
    fn short_numbers_still_hide_most_digits() {
        let cases = [
            ("+4930123", "+*****23", "eight characters"),
            ("+35312345678", "+3531*****78", "twelve characters"),
            ("", "", "nothing"),
            ("+", "+", "one character"),
            (
                "+٣٤٦٣٥٩٥٢٩١٠",
                "+٣٤٦٣*****١٠",
                "characters of more than one byte",
            ),
        ];
        for (input, expected, what) in cases {
            assert_eq!(mask(input), expected, "{what}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_normalising_twice_is_normalising_once(
            input in proptest::prop_oneof![
                proptest::string::string_regex("\\+[0-9 ().-]{0,20}").unwrap(),
                proptest::string::string_regex("\\PC{0,40}").unwrap(),
                // Mostly valid numbers of a few countries, with separators.
                proptest::string::string_regex("\\+(1 ?310|34 ?6|44 ?7|49 ?15)[0-9 .-]{7,12}").unwrap(),
            ]
        ) {
            if let Ok(number) = PhoneNumber::parse(&input, &any_country()) {
                let again = PhoneNumber::parse(number.as_e164(), &any_country());
                proptest::prop_assert_eq!(again, Ok(number));
            }
        }
    }
}
