//! What libphonenumber's rules say of each calling code and region, read from the library
//! once and kept apart from it.
//!
//! The library keeps every region's rules in one table whose slots are 8.2 KiB each, and
//! builds the whole of it, with every region's formats and examples, the first time it
//! reads a number: about 5 MiB that stay for the life of the process. The steps in
//! `e164.rs` need a few fields of each region: the patterns and lengths of its kinds of
//! number, its leading digits and its national prefix. This reads those from a copy of the
//! library made for the purpose, which is then dropped. The one step still run by the
//! library, the one that strips a national prefix, gets the library's form of a region's
//! prefix rule, built from the same patterns the first time a number of that region starts
//! with its prefix.

use std::borrow::Cow;
use std::sync::{LazyLock, OnceLock};

use rlibphonenumber::interfaces::AsOriginal;
use rlibphonenumber::{
    PhoneMetadata, PhoneMetadataCollection, PhoneNumberDesc, PhoneNumberType, PhoneNumberUtil,
    Region,
};

use super::patterns::{Description, Pattern, Rules};

/// A country calling code is one to three digits.
const CODE_DIGITS: std::ops::RangeInclusive<usize> = 1..=3;

pub(super) struct Catalogue {
    /// Every calling code, ascending.
    codes: Vec<CallingCode>,
}

/// A calling code and its regions in the library's order: the main region of a shared code
/// first. A code of no region (`800`, `882`, …) has `Region::World`, with the code's rules.
pub(super) struct CallingCode {
    code: i32,
    regions: Box<[(Region, Option<Entry>)]>,
}

/// One region's rules (or one non-geographic calling code's).
pub(super) struct Entry {
    pub(super) rules: Rules,
    /// What replaces the national prefix the rules' prefix pattern finds, if anything.
    transform_rule: Option<Box<str>>,
    /// The library's step that strips the prefix, with the library's form of the prefix
    /// pattern, the transform rule and the general pattern, once a number needs it.
    strip: OnceLock<Strip>,
}

/// The library names its form of a region's rules nowhere outside it, so the step that
/// holds one is kept as a function.
type Strip = Box<dyn for<'a> Fn(&'a str) -> Option<Cow<'a, str>> + Send + Sync>;

/// A library with no rules of its own: the receiver of the step that strips a prefix,
/// which reads only the rules it is given.
static RULELESS: LazyLock<PhoneNumberUtil> = LazyLock::new(|| {
    PhoneNumberUtil::new_for_metadata(PhoneMetadataCollection::default())
        .expect("an empty collection has no region to reject")
});

impl Catalogue {
    pub(super) fn get() -> &'static Self {
        static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(Catalogue::read);
        &CATALOGUE
    }

    /// What the library's `extract_country_code` gives for `digits`, the number after its
    /// `+`: the first one to three digits that are a calling code, and the rest.
    pub(super) fn split_country_code<'a>(&self, digits: &'a str) -> Option<(&'a str, i32)> {
        if digits.starts_with('0') {
            return None;
        }
        CODE_DIGITS
            .filter(|length| *length <= digits.len())
            .find_map(|length| {
                let code = digits[..length].parse().ok()?;
                self.calling_code(code)?;
                Some((&digits[length..], code))
            })
    }

    /// A calling code's regions and their rules; `None` for a code of none.
    pub(super) fn calling_code(&self, code: i32) -> Option<&CallingCode> {
        let at = self.codes.binary_search_by_key(&code, |c| c.code).ok()?;
        Some(&self.codes[at])
    }

    /// Reads every calling code's and region's rules from a copy of the library that is
    /// dropped at the end.
    fn read() -> Self {
        let library = PhoneNumberUtil::new().expect("the library's built-in rules load");
        let library = library.as_original();
        let mut codes = Vec::new();
        for code in library.get_supported_calling_codes() {
            let Some(of_code) = library.get_regions_for_country_calling_code(code) else {
                continue;
            };
            let mut regions = Vec::with_capacity(of_code.len());
            for region in of_code {
                let Some(metadata) = library.get_metadata_for_region_or_calling_code(code, region)
                else {
                    regions.push((region, None));
                    continue;
                };
                // The library's description types are not named outside it; their fields are.
                macro_rules! description {
                    ($field:ident) => {
                        Description {
                            lengths: metadata.$field.original.possible_length.clone().into(),
                            pattern: Pattern::new(
                                metadata
                                    .$field
                                    .national_number_pattern()
                                    .pattern_base
                                    .as_deref(),
                                false,
                            ),
                        }
                    };
                }
                let rules = Rules {
                    general: description!(general_desc),
                    local_only_lengths: metadata
                        .general_desc
                        .original
                        .possible_length_local_only
                        .clone()
                        .into(),
                    special: [
                        (description!(premium_rate), PhoneNumberType::PremiumRate),
                        (description!(toll_free), PhoneNumberType::TollFree),
                        (description!(shared_cost), PhoneNumberType::SharedCost),
                        (description!(voip), PhoneNumberType::VoIP),
                        (
                            description!(personal_number),
                            PhoneNumberType::PersonalNumber,
                        ),
                        (description!(pager), PhoneNumberType::Pager),
                        (description!(uan), PhoneNumberType::UAN),
                        (description!(voicemail), PhoneNumberType::VoiceMail),
                    ],
                    fixed_line: description!(fixed_line),
                    mobile: description!(mobile),
                    same_mobile_and_fixed_line: metadata
                        .original
                        .same_mobile_and_fixed_line_pattern(),
                    leading_digits: Pattern::new(
                        metadata.leading_digits().pattern_base.as_deref(),
                        true,
                    ),
                    national_prefix: Pattern::new(
                        metadata
                            .national_prefix_for_parsing()
                            .pattern_base
                            .as_deref(),
                        true,
                    ),
                };
                let entry = Entry {
                    rules,
                    transform_rule: metadata
                        .original
                        .national_prefix_transform_rule
                        .as_deref()
                        .map(Into::into),
                    strip: OnceLock::new(),
                };
                regions.push((region, Some(entry)));
            }
            codes.push(CallingCode {
                code,
                regions: regions.into(),
            });
        }
        codes.sort_unstable_by_key(|c| c.code);
        Self { codes }
    }

    /// Every region's and non-geographic calling code's rules.
    #[cfg(test)]
    pub(super) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.codes
            .iter()
            .flat_map(|c| c.regions.iter().filter_map(|(_, entry)| entry.as_ref()))
    }
}

impl CallingCode {
    /// The code's regions, its main region first, each with its rules where the library
    /// has them.
    pub(super) fn regions(&self) -> &[(Region, Option<Entry>)] {
        &self.regions
    }
}

impl Entry {
    /// What the library's `maybe_strip_national_prefix_and_carrier_code` leaves of
    /// `national` with these rules: without the national prefix, or as it was; `None` where
    /// the library fails.
    pub(super) fn strip_national_prefix<'a>(&self, national: &'a str) -> Option<Cow<'a, str>> {
        let Some(prefix) = self.rules.national_prefix.stored() else {
            return Some(national.into());
        };
        let strip = self.strip.get_or_init(|| {
            let rules = self.library_rules(prefix).into();
            Box::new(move |national: &str| {
                RULELESS
                    .as_original()
                    .maybe_strip_national_prefix_and_carrier_code(&rules, national)
                    .ok()
                    .map(|(stripped, _carrier)| stripped)
            })
        });
        strip(national)
    }

    /// What the library's step reads of the rules, as the library is given them. The
    /// library marks these fields deprecated for reading, as its own form moves them out;
    /// they are how rules are given to it.
    #[expect(deprecated, reason = "the fields the library reads its rules from")]
    fn library_rules(&self, prefix: &str) -> PhoneMetadata {
        PhoneMetadata {
            national_prefix_for_parsing: Some(prefix.into()),
            national_prefix_transform_rule: self.transform_rule.as_deref().map(Into::into),
            general_desc: Some(PhoneNumberDesc {
                national_number_pattern: self.rules.general.pattern.stored().map(Into::into),
                ..PhoneNumberDesc::default()
            }),
            ..PhoneMetadata::default()
        }
    }
}
