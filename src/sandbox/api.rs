//! The sandbox's routes, each answering as AutoShares' API documentation describes: the shapes
//! of `/token` (200, 202, 401, 4xx), `m_Item1`/`m_Item2` for a bind, 422 for a wrong code,
//! 204 for an unbind. Query strings are decoded as a real server does: a bare `+` is a space.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{Pending, SandboxConfig, Shared};

const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const PHONE_PATH: &str = "/api/v{version}/users/{user_id}/subscriptions/settings/phonenumber";

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/token", web::post().to(token))
        .route(PHONE_PATH, web::put().to(bind))
        .route(PHONE_PATH, web::get().to(read))
        .route(PHONE_PATH, web::delete().to(unbind))
        .route(
            &format!("{PHONE_PATH}/token/{{token_id}}"),
            web::put().to(complete),
        )
        .route("/sandbox/sms", web::get().to(last_sms));
}

fn random_digits(count: usize) -> String {
    let mut bytes = vec![0u8; count];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source is available");
    bytes.iter().map(|b| char::from(b'0' + b % 10)).collect()
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

fn bad_app_key() -> HttpResponse {
    HttpResponse::Forbidden()
        .json(json!({"error": "Application key is not defined or does not exist"}))
}

/// `POST /token`.
async fn token(
    request: HttpRequest,
    world: web::Data<Shared>,
    config: web::Data<SandboxConfig>,
) -> HttpResponse {
    if header(&request, "Et-App-Key") != Some(config.app_key.as_str()) {
        return bad_app_key();
    }
    let username = header(&request, "Username").unwrap_or_default();
    let password = header(&request, "Password").unwrap_or_default();
    if password != config.password
        || (username != config.username && username != config.two_factor_username)
    {
        return HttpResponse::Unauthorized().json(json!({
            "State": "Failed", "Step": "BaseAuthentication", "Reason": "Invalid credentials"
        }));
    }
    if username == config.two_factor_username {
        return HttpResponse::Accepted().json(json!({
            "State": "Expecting", "Step": "VerificationCode",
            "Reason": "A verification code was sent", "Token": random_digits(24)
        }));
    }
    let token = random_digits(40);
    let mut world = world.lock().expect("sandbox lock poisoned");
    world
        .tokens
        .insert(token.clone(), Instant::now() + TOKEN_LIFETIME);
    world.issued.push(token.clone());
    HttpResponse::Ok().json(json!({"State": "Succeeded", "Token": token}))
}

#[derive(Deserialize)]
struct PhonePath {
    version: String,
    user_id: i64,
}

/// Checks the headers and the path every phone endpoint shares.
#[allow(
    clippy::result_large_err,
    reason = "the refusal is the response itself, built once per refused request"
)]
fn admit(
    request: &HttpRequest,
    path: &PhonePath,
    world: &Shared,
    config: &SandboxConfig,
) -> Result<(), HttpResponse> {
    if header(request, "Et-App-Key") != Some(config.app_key.as_str()) {
        return Err(bad_app_key());
    }
    let bearer = header(request, "Authorization").and_then(|v| v.strip_prefix("Bearer "));
    let world = world.lock().expect("sandbox lock poisoned");
    let valid = bearer
        .and_then(|token| world.tokens.get(token))
        .is_some_and(|expires| *expires > Instant::now());
    if !valid {
        return Err(HttpResponse::Unauthorized()
            .json(json!({"Message": "Authorization has been denied for this request."})));
    }
    if path.version != "1.0" || !config.users.contains(&path.user_id) {
        return Err(HttpResponse::NotFound().json(json!({"Message": "User not found."})));
    }
    Ok(())
}

#[derive(Deserialize)]
struct BindQuery {
    #[serde(rename = "phoneNumber")]
    phone_number: Option<String>,
}

fn is_full_format(phone: &str) -> bool {
    phone
        .strip_prefix('+')
        .is_some_and(|d| (6..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// `PUT .../phonenumber?phoneNumber=+...`: step 1, "sends" the SMS.
async fn bind(
    request: HttpRequest,
    path: web::Path<PhonePath>,
    query: web::Query<BindQuery>,
    world: web::Data<Shared>,
    config: web::Data<SandboxConfig>,
) -> HttpResponse {
    if let Err(refusal) = admit(&request, &path, &world, &config) {
        return refusal;
    }
    let phone = query.phone_number.clone().unwrap_or_default();
    if !is_full_format(&phone) {
        return HttpResponse::UnprocessableEntity().json(
            json!({"Message": "The phone number must be in the full format, like +13108904569."}),
        );
    }
    let code = random_digits(6);
    let mut world = world.lock().expect("sandbox lock poisoned");
    world.next_token_id += 1;
    let token_id = world.next_token_id;
    world.pending.insert(
        token_id,
        Pending {
            user: path.user_id,
            phone: phone.clone(),
            code: code.clone(),
            expires: Instant::now() + config.bind_ttl,
        },
    );
    world
        .phones
        .insert(path.user_id, (phone.clone(), "NotVerified".to_owned()));
    world.last_codes.insert(phone.clone(), code.clone());
    tracing::info!(target: "sandbox", token_id, code = %code, "sandbox sent an sms code");
    HttpResponse::Ok().json(json!({
        "m_Item1": {"PhoneNumber": phone, "PhoneNumberState": "NotVerified"},
        "m_Item2": token_id
    }))
}

#[derive(Deserialize)]
struct CompletePath {
    version: String,
    user_id: i64,
    token_id: i64,
}

#[derive(Deserialize)]
struct CompleteQuery {
    #[serde(rename = "tokenValue")]
    token_value: Option<String>,
}

/// `PUT .../phonenumber/token/{tokenId}?tokenValue=...`: step 2.
async fn complete(
    request: HttpRequest,
    path: web::Path<CompletePath>,
    query: web::Query<CompleteQuery>,
    world: web::Data<Shared>,
    config: web::Data<SandboxConfig>,
) -> HttpResponse {
    let phone_path = PhonePath {
        version: path.version.clone(),
        user_id: path.user_id,
    };
    if let Err(refusal) = admit(&request, &phone_path, &world, &config) {
        return refusal;
    }
    let mut world = world.lock().expect("sandbox lock poisoned");
    let matches = world.pending.get(&path.token_id).is_some_and(|pending| {
        pending.user == path.user_id
            && pending.expires > Instant::now()
            && Some(pending.code.as_str()) == query.token_value.as_deref()
    });
    if !matches {
        return HttpResponse::UnprocessableEntity()
            .json(json!({"Message": "The token value is not valid."}));
    }
    let pending = world.pending.remove(&path.token_id).expect("checked above");
    world
        .phones
        .insert(path.user_id, (pending.phone.clone(), "Active".to_owned()));
    HttpResponse::Ok().json(json!({"PhoneNumber": pending.phone, "PhoneNumberState": "Active"}))
}

/// `GET .../phonenumber`.
async fn read(
    request: HttpRequest,
    path: web::Path<PhonePath>,
    world: web::Data<Shared>,
    config: web::Data<SandboxConfig>,
) -> HttpResponse {
    if let Err(refusal) = admit(&request, &path, &world, &config) {
        return refusal;
    }
    let world = world.lock().expect("sandbox lock poisoned");
    match world.phones.get(&path.user_id) {
        Some((phone, state)) => {
            HttpResponse::Ok().json(json!({"PhoneNumber": phone, "PhoneNumberState": state}))
        }
        None => HttpResponse::NotFound().json(json!({"Message": "The user has no phone number."})),
    }
}

/// `DELETE .../phonenumber`.
async fn unbind(
    request: HttpRequest,
    path: web::Path<PhonePath>,
    world: web::Data<Shared>,
    config: web::Data<SandboxConfig>,
) -> HttpResponse {
    if let Err(refusal) = admit(&request, &path, &world, &config) {
        return refusal;
    }
    let mut world = world.lock().expect("sandbox lock poisoned");
    world.phones.remove(&path.user_id);
    world
        .pending
        .retain(|_, pending| pending.user != path.user_id);
    HttpResponse::NoContent().finish()
}

/// `GET /sandbox/sms?phoneNumber=%2B...`: the last code sent to that number.
async fn last_sms(query: web::Query<BindQuery>, world: web::Data<Shared>) -> HttpResponse {
    let phone = query.phone_number.clone().unwrap_or_default();
    let world = world.lock().expect("sandbox lock poisoned");
    match world.last_codes.get(&phone) {
        Some(code) => HttpResponse::Ok().json(json!({"phoneNumber": phone, "code": code})),
        None => HttpResponse::NotFound().json(json!({"error": "no code was sent to this number"})),
    }
}
