//! `/api/users…`: user accounts of the web UI, managed with an admin token (what
//! `gantry user` calls). Passwords go in, never out: answers carry no hash, and the
//! server keeps only an argon2id hash (see [`crate::auth`]).

use axum::Json;
use axum::extract::{Path, State as Ax};
use axum::http::StatusCode;
use gantry_store::{Role, User};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::extract::{Body, Writer};
use crate::api::json::rfc3339;
use crate::auth::{
    UserError, check_password, hash_password_blocking, parse_role, validate_user_name,
};
use crate::state::{State, now_ms};

/// A user account as the API shows it.
#[derive(Debug, Serialize)]
pub struct UserJson {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `admin` or `viewer`.
    pub role: &'static str,
    /// Whether the account is disabled (cannot log in).
    pub disabled: bool,
    /// When it was made.
    pub created_at: String,
    /// When its password or role last changed.
    pub updated_at: String,
    /// When it was disabled.
    pub disabled_at: Option<String>,
}

impl UserJson {
    /// The wire form of a user (without its password hash).
    pub fn new(u: &User) -> UserJson {
        UserJson {
            id: u.id,
            name: u.name.clone(),
            role: u.role.as_str(),
            disabled: u.disabled_at.is_some(),
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
            disabled_at: u.disabled_at.map(rfc3339),
        }
    }
}

/// `POST /api/users` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUser {
    /// Name: 1 to 64 of `a-z`, `0-9`, `-`, `_`, `.`.
    pub name: String,
    /// Password (at least 8 characters).
    pub password: String,
    /// `admin` or `viewer` (default).
    #[serde(default)]
    pub role: Option<String>,
}

/// `PATCH /api/users/{name}` body: what to change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeUser {
    /// A new password.
    #[serde(default)]
    pub password: Option<String>,
    /// A new role.
    #[serde(default)]
    pub role: Option<String>,
    /// Disable (`true`) or enable (`false`) the account.
    #[serde(default)]
    pub disabled: Option<bool>,
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> ApiError {
        match e {
            UserError::Hash(m) => ApiError::internal(m),
            e => ApiError::BadRequest(e.to_string()),
        }
    }
}

/// The name from the path, checked (so a typo gets the rules, not a bare 404).
fn path_name(name: &str) -> Result<&str, ApiError> {
    validate_user_name(name)?;
    Ok(name)
}

/// `GET /api/users`.
pub async fn list(Ax(state): Ax<State>, _: Writer) -> Result<Json<Vec<UserJson>>, ApiError> {
    let users = state.store.list_users().await?;
    Ok(Json(users.iter().map(UserJson::new).collect()))
}

/// `POST /api/users`.
pub async fn add(
    Ax(state): Ax<State>,
    _: Writer,
    Body(body): Body<AddUser>,
) -> Result<(StatusCode, Json<UserJson>), ApiError> {
    validate_user_name(&body.name)?;
    let role = match &body.role {
        Some(word) => parse_role(word)?,
        None => Role::Viewer,
    };
    check_password(&body.password)?;
    let hash = hash_password_blocking(&body.password).await?;
    let user = state
        .store
        .create_user(&body.name, &hash, role, now_ms())
        .await?;
    tracing::info!(user = %user.name, role = user.role.as_str(), "user account created");
    Ok((StatusCode::CREATED, Json(UserJson::new(&user))))
}

/// `GET /api/users/{name}`.
pub async fn get(
    Ax(state): Ax<State>,
    _: Writer,
    Path(name): Path<String>,
) -> Result<Json<UserJson>, ApiError> {
    let user = state.store.user_by_name(path_name(&name)?).await?;
    Ok(Json(UserJson::new(&user)))
}

/// `PATCH /api/users/{name}`: a new password, role, or disabled state (each optional;
/// all checked before anything changes).
pub async fn change(
    Ax(state): Ax<State>,
    _: Writer,
    Path(name): Path<String>,
    Body(body): Body<ChangeUser>,
) -> Result<Json<UserJson>, ApiError> {
    let name = path_name(&name)?;
    let role = body.role.as_deref().map(parse_role).transpose()?;
    if let Some(p) = &body.password {
        check_password(p)?;
    }
    let mut user = state.store.user_by_name(name).await?;
    if let Some(p) = &body.password {
        let hash = hash_password_blocking(p).await?;
        user = state.store.set_user_password(name, &hash, now_ms()).await?;
        tracing::info!(user = %name, "user password changed");
    }
    if let Some(role) = role {
        user = state.store.set_user_role(name, role, now_ms()).await?;
    }
    if let Some(disabled) = body.disabled {
        user = state
            .store
            .set_user_disabled(name, disabled, now_ms())
            .await?;
    }
    Ok(Json(UserJson::new(&user)))
}

/// `DELETE /api/users/{name}`: the account and (at their next request) its sessions.
pub async fn remove(
    Ax(state): Ax<State>,
    _: Writer,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_user(path_name(&name)?).await?;
    tracing::info!(user = %name, "user account removed");
    Ok(StatusCode::NO_CONTENT)
}
