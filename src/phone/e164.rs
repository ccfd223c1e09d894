//! libphonenumber's `parse` for the one form this service accepts, `+` and ASCII digits,
//! and the region and type of what it reads.
//!
//! `parse` first runs two general patterns over its input, one that decides whether it
//! looks like a phone number at all and one that finds an extension (`ext. 12`, `#12`,
//! `;ext=12`). On `+` and digits both are settled before they run: anything of three
//! digits or more is viable, and an extension needs a marker that is not a digit. They are
//! also most of its cost (about four fifths of a bind's number check, counted with
//! callgrind), so this module runs the steps that follow them, the library's own, in its
//! order: the country calling code, then the national prefix (`+44 0 7400…` is
//! `+44 7400…`) when what remains after it is still of a possible length; the library's
//! step for the prefix runs only for a number that starts with one. Likewise the
//! number's region and type come from one pass of the library's steps for both, with the
//! library's patterns run by a faster engine (`patterns.rs`). The steps read the library's
//! rules as `catalogue.rs` keeps them, not from the library's own tables. The tests below
//! hold the results, and the number's E.164 form, equal to the library's for every example
//! number of every region and kind, with trunk prefixes put back, shortened and lengthened,
//! and for random digits; the crate's version is pinned in `Cargo.toml` because these steps
//! are its public methods rather than its documented interface.

use rlibphonenumber::{PhoneNumber, PhoneNumberType, Region};

use super::catalogue::Catalogue;

/// libphonenumber's bounds on a national significant number.
const NATIONAL_DIGITS: std::ops::RangeInclusive<usize> = 2..=17;

/// What `PHONE_NUMBER_UTIL.parse("+" + digits, None)` gives when `digits` are ASCII
/// digits only; `None` for any error, and for anything else in `digits`.
pub fn parse(digits: &str) -> Option<PhoneNumber> {
    // Fewer than three digits is not a phone number to the library's first pattern.
    if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let catalogue = Catalogue::get();
    let (national, country_code) = catalogue.split_country_code(digits)?;
    if national.len() < *NATIONAL_DIGITS.start() {
        return None;
    }
    let (_, entry) = catalogue.calling_code(country_code)?.regions().first()?;
    // The library's step first matches the general pattern, its largest, and then the
    // prefix; without a prefix it changes nothing. The prefix is matched here first, on
    // the faster engine.
    let entry = entry
        .as_ref()
        .filter(|entry| entry.rules.starts_with_national_prefix(national));
    if let Some(entry) = entry {
        let stripped = entry.strip_national_prefix(national)?;
        if !stripped.is_empty() && stripped != national {
            let candidate = number(country_code, &stripped)?;
            let significant = rlibphonenumber::get_national_significant_number_owned(&candidate);
            if entry.rules.long_enough(&significant) {
                return NATIONAL_DIGITS
                    .contains(&stripped.len())
                    .then_some(candidate);
            }
        }
    }
    if !NATIONAL_DIGITS.contains(&national.len()) {
        return None;
    }
    number(country_code, national)
}

/// What `number.format(PhoneNumberFormat::E164)` gives: `+`, the calling code and the
/// national significant number.
pub fn format(number: &PhoneNumber) -> String {
    let national = rlibphonenumber::get_national_significant_number_owned(number);
    // A calling code has three digits at most.
    let mut e164 = String::with_capacity(1 + 3 + national.len());
    e164.push('+');
    e164.push_str(itoa::Buffer::new().format(number.country_code));
    e164.push_str(&national);
    e164
}

/// What `number.get_region_code()` gives. A code of one region names it without a pattern
/// run; only where regions share a code does finding it run their type patterns.
pub fn region(number: &PhoneNumber) -> Option<Region> {
    match Catalogue::get()
        .calling_code(number.country_code)?
        .regions()
    {
        [(region, _)] => Some(*region),
        _ => region_and_type(number).0,
    }
}

/// What `number.get_region_code()` and `number.get_type()` give, with the library's steps
/// run once. `get_type` finds the region itself, and where regions share a country code
/// (`+1`, `+7`, `+44`, …) finding it runs each candidate's type patterns until one fits:
/// asking for both ran those patterns up to three times, where this runs them once.
pub fn region_and_type(number: &PhoneNumber) -> (Option<Region>, PhoneNumberType) {
    let catalogue = Catalogue::get();
    let national = rlibphonenumber::get_national_significant_number_owned(number);
    let code = number.country_code;
    let Some(calling_code) = catalogue.calling_code(code) else {
        return (None, PhoneNumberType::Unknown);
    };
    let regions = calling_code.regions();
    let shared = regions.len() > 1;
    for (region, entry) in regions {
        let region = *region;
        let Some(entry) = entry else {
            return (Some(region).filter(|_| !shared), PhoneNumberType::Unknown);
        };
        let kind = entry.rules.number_type(&national);
        // Of shared regions, the first whose leading digits or type patterns fit.
        if !shared || kind != PhoneNumberType::Unknown || entry.rules.leads(&national) {
            return (Some(region), kind);
        }
    }
    (None, PhoneNumberType::Unknown)
}

/// The number with `national` as its significant digits, leading zeros kept the way the
/// library keeps them (the "Italian leading zero").
fn number(country_code: i32, national: &str) -> Option<PhoneNumber> {
    let mut number = PhoneNumber {
        country_code,
        national_number: national.parse().ok()?,
        ..PhoneNumber::default()
    };
    let zeros = national.bytes().take_while(|b| *b == b'0').count();
    if national.len() >= 2 && zeros > 0 {
        number.italian_leading_zero = Some(true);
        // A number of zeros only keeps its last one as the number itself.
        let leading = if zeros == national.len() {
            zeros - 1
        } else {
            zeros
        };
        if leading > 1 {
            number.number_of_leading_zeros = Some(leading as i32);
        }
    }
    Some(number)
}

#[cfg(test)]
mod tests {
    use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat, PhoneNumberType};

    use super::*;

    fn library(digits: &str) -> Option<PhoneNumber> {
        PHONE_NUMBER_UTIL.parse(format!("+{digits}"), None).ok()
    }

    /// Every region's example number of every kind, as given, with a trunk prefix or
    /// carrier code put back after the country code, a digit short and a digit long.
    fn example_numbers() -> Vec<String> {
        const KINDS: [PhoneNumberType; 11] = [
            PhoneNumberType::FixedLine,
            PhoneNumberType::Mobile,
            PhoneNumberType::TollFree,
            PhoneNumberType::PremiumRate,
            PhoneNumberType::SharedCost,
            PhoneNumberType::VoIP,
            PhoneNumberType::PersonalNumber,
            PhoneNumberType::Pager,
            PhoneNumberType::UAN,
            PhoneNumberType::VoiceMail,
            PhoneNumberType::Unknown,
        ];
        const PREFIXES: [&str; 10] = ["0", "1", "7", "8", "9", "00", "01", "06", "15", "80"];
        let mut numbers = Vec::new();
        for region in PHONE_NUMBER_UTIL.get_supported_regions() {
            for kind in KINDS {
                let Ok(example) =
                    PHONE_NUMBER_UTIL.get_example_number_for_type_and_region(region, kind)
                else {
                    continue;
                };
                let e164 = PHONE_NUMBER_UTIL.format(&example, PhoneNumberFormat::E164);
                let code = example.country_code.to_string();
                let national = &e164[1 + code.len()..];
                numbers.push(e164[1..].to_owned());
                for prefix in PREFIXES {
                    numbers.push(format!("{code}{prefix}{national}"));
                }
                numbers.push(format!("{code}{}", &national[..national.len() - 1]));
                numbers.push(format!("{code}{national}5"));
            }
        }
        numbers
    }

    #[test]
    fn it_reads_every_example_number_as_the_library_does() {
        let numbers = example_numbers();
        assert!(numbers.len() > 10_000, "{} numbers", numbers.len());
        let mut prefix_dropped = 0;
        for digits in &numbers {
            let ours = parse(digits);
            assert_eq!(ours, library(digits), "+{digits}");
            if let Some(number) = ours {
                assert_eq!(
                    region_and_type(&number),
                    (number.get_region_code(), number.get_type()),
                    "+{digits}"
                );
                assert_eq!(region(&number), number.get_region_code(), "+{digits}");
                assert_eq!(
                    format(&number),
                    number.format_as(PhoneNumberFormat::E164),
                    "+{digits}"
                );
                let national = rlibphonenumber::get_national_significant_number_owned(&number);
                prefix_dropped +=
                    usize::from(format!("{}{national}", number.country_code) != *digits);
            }
        }
        // The national prefix step is exercised, not only the country code.
        assert!(
            prefix_dropped > 100,
            "{prefix_dropped} with a prefix dropped"
        );
    }

    proptest::proptest! {
        #[test]
        fn it_reads_any_digits_as_the_library_does(digits in "[0-9]{0,17}") {
            let ours = parse(&digits);
            proptest::prop_assert_eq!(&ours, &library(&digits));
            if let Some(number) = ours {
                proptest::prop_assert_eq!(
                    region_and_type(&number),
                    (number.get_region_code(), number.get_type())
                );
                proptest::prop_assert_eq!(region(&number), number.get_region_code());
                proptest::prop_assert_eq!(
                    format(&number),
                    number.format_as(PhoneNumberFormat::E164)
                );
            }
        }
    }
}
