//! Which problems each public route can answer, as lists of codes. The OpenAPI document
//! takes its error responses from these lists and the rows of `code.rs`, so a status is
//! never restated by hand.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, response::Response};

use super::ProblemCode as C;

/// The problems of a route that takes a JSON body.
const BODY: &[C] = &[
    C::MalformedRequest,
    C::RequestTimeout,
    C::PayloadTooLarge,
    C::UnsupportedMediaType,
];

/// The problems of every route that authenticates its caller and calls AutoShares.
const CALLER: &[C] = &[
    C::TooManyRequests,
    C::Unauthenticated,
    C::UserNotLinked,
    C::InternalError,
    C::UpstreamError,
    C::UpstreamUnavailable,
    C::UpstreamTimeout,
];

/// Declares a type whose OpenAPI responses are the problems of these code lists.
macro_rules! route_problems {
    ($(#[$doc:meta])* $name:ident = $($list:expr),+) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                responses(&[$($list),+])
            }
        }
    };
}

route_problems!(
    /// `PUT /v1/me/phone-number`.
    BindProblems = BODY,
    CALLER,
    &[
        C::StepUpRequired,
        C::InvalidPhoneNumber,
        C::PhoneNumberRejected,
        C::RateLimited,
        C::SmsBudgetExhausted,
        C::DestinationBlocked,
        C::IdempotencyKeyReused,
        C::RequestInProgress,
        C::RateLimiterUnavailable,
        C::AuditUnavailable,
    ]
);
route_problems!(
    /// `POST /v1/me/phone-number/verification`.
    CompleteProblems = BODY,
    CALLER,
    &[
        C::InvalidVerificationToken,
        C::VerificationTokenExpired,
        C::InvalidCode,
        C::TooManyAttempts,
        C::RateLimiterUnavailable,
        C::AuditUnavailable,
    ]
);
route_problems!(
    /// `GET /v1/me/phone-number`.
    ReadProblems = CALLER,
    &[C::NoPhoneNumber]
);
route_problems!(
    /// `DELETE /v1/me/phone-number`.
    UnbindProblems = CALLER,
    &[C::StepUpRequired, C::AuditUnavailable]
);

/// One response per status, naming every code of the lists that has it.
fn responses(lists: &[&[C]]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<C>> = BTreeMap::new();
    for code in lists.iter().flat_map(|list| list.iter()) {
        let codes = by_status.entry(code.row().status.as_u16()).or_default();
        if !codes.contains(code) {
            codes.push(*code);
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| {
            let names: Vec<String> = codes.iter().map(|code| format!("`{code}`")).collect();
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            let response = ResponseBuilder::new()
                .description(format!("{}: {}", codes[0].row().title, names.join(" or ")))
                .content("application/problem+json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_names_all_its_codes() {
        let bind = BindProblems::responses();
        let RefOr::T(response) = &bind["503"] else {
            panic!("an inline response")
        };
        assert!(
            response.description.contains("`upstream_unavailable`")
                && response.description.contains("`rate_limiter_unavailable`"),
            "{}",
            response.description
        );
        let statuses: Vec<&str> = bind.keys().map(String::as_str).collect();
        assert_eq!(
            statuses,
            [
                "400", "401", "403", "408", "409", "413", "415", "422", "429", "500", "502", "503",
                "504"
            ]
        );
    }
}
