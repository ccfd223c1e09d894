//! AutoShares' own JSON shapes, as AutoShares' API documentation describes them. Nothing named
//! like `m_Item1` leaves this file. Unknown fields are ignored; missing or mistyped ones
//! make the answer unusable.

use serde::Deserialize;

/// `POST /token`, any status: only `State` is trusted to be present.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TokenAnswer {
    pub state: String,
    #[serde(default)]
    pub token: Option<String>,
}

/// A phone-number setting as read, completed, or inside a bind answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PhoneSetting {
    pub phone_number: Option<String>,
    pub phone_number_state: Option<String>,
}

/// The 200 body of a bind: the setting and the token id for step 2.
#[derive(Debug, Deserialize)]
pub(super) struct BindAnswer {
    #[serde(rename = "m_Item1")]
    pub setting: PhoneSetting,
    #[serde(rename = "m_Item2")]
    pub token_id: i64,
}
