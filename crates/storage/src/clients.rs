//! Clients: registrations and their secrets. Here: the SQL text, the row types (read by column
//! name), and the store trait's implementation, expanded once per backend (the code is the same;
//! only the sqlx database type differs).

use crate::sql::{from_json, to_json};
use crate::{StoreError, StoreResult};
use latchkey_core::TokenHash;
use latchkey_core::model::{AccessTokenFormat, Client, ClientAuthMethod, GrantType, SigningAlg, SubjectType};

pub(crate) const INSERT_CLIENT: &str = "INSERT INTO clients (client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, auth_method, grant_types, scopes, skip_consent, require_pkce, id_token_signed_response_alg, access_token_format, refresh_without_offline_access, resources, jwks, jwks_uri, secret_enc, introspection, subject_type, sector_identifier_uri, backchannel_logout_uri, backchannel_logout_session_required, request_object_signing_alg, request_uris, require_par, registration_token_hash, metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)";

pub(crate) const SELECT_CLIENT: &str = "SELECT client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, auth_method, grant_types, scopes, skip_consent, require_pkce, id_token_signed_response_alg, access_token_format, refresh_without_offline_access, resources, jwks, jwks_uri, secret_enc, introspection, subject_type, sector_identifier_uri, backchannel_logout_uri, backchannel_logout_session_required, request_object_signing_alg, request_uris, require_par, registration_token_hash, metadata, created_at, updated_at FROM clients WHERE client_id = $1";

pub(crate) const LIST_CLIENTS: &str = "SELECT client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, auth_method, grant_types, scopes, skip_consent, require_pkce, id_token_signed_response_alg, access_token_format, refresh_without_offline_access, resources, jwks, jwks_uri, secret_enc, introspection, subject_type, sector_identifier_uri, backchannel_logout_uri, backchannel_logout_session_required, request_object_signing_alg, request_uris, require_par, registration_token_hash, metadata, created_at, updated_at FROM clients ORDER BY created_at, client_id";

pub(crate) const UPDATE_CLIENT: &str = "UPDATE clients SET name = $2, secret_hash = $3, redirect_uris = $4, post_logout_redirect_uris = $5, auth_method = $6, grant_types = $7, scopes = $8, skip_consent = $9, require_pkce = $10, id_token_signed_response_alg = $11, access_token_format = $12, refresh_without_offline_access = $13, resources = $14, jwks = $15, jwks_uri = $16, secret_enc = $17, introspection = $18, subject_type = $19, sector_identifier_uri = $20, backchannel_logout_uri = $21, backchannel_logout_session_required = $22, request_object_signing_alg = $23, request_uris = $24, require_par = $25, registration_token_hash = $26, metadata = $27, updated_at = $28 WHERE client_id = $1";

pub(crate) const DELETE_CLIENT: &str = "DELETE FROM clients WHERE client_id = $1";

#[derive(sqlx::FromRow)]
pub(crate) struct ClientRow {
    client_id: String,
    name: String,
    secret_hash: Option<String>,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    auth_method: String,
    grant_types: String,
    scopes: String,
    skip_consent: bool,
    require_pkce: bool,
    id_token_signed_response_alg: Option<String>,
    access_token_format: Option<String>,
    refresh_without_offline_access: bool,
    resources: String,
    jwks: Option<String>,
    jwks_uri: Option<String>,
    secret_enc: Option<String>,
    introspection: bool,
    subject_type: String,
    sector_identifier_uri: Option<String>,
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    request_object_signing_alg: Option<String>,
    request_uris: String,
    require_par: bool,
    registration_token_hash: Option<String>,
    metadata: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> StoreResult<Client> {
        Ok(Client {
            auth_method: r.auth_method.parse::<ClientAuthMethod>().map_err(StoreError::Corrupt)?,
            grant_types: from_json::<Vec<String>>("grant_types", &r.grant_types)?
                .iter()
                .map(|g| g.parse::<GrantType>())
                .collect::<Result<_, _>>()
                .map_err(StoreError::Corrupt)?,
            id_token_signed_response_alg: r
                .id_token_signed_response_alg
                .map(|a| a.parse::<SigningAlg>())
                .transpose()
                .map_err(StoreError::Corrupt)?,
            redirect_uris: from_json("redirect_uris", &r.redirect_uris)?,
            post_logout_redirect_uris: from_json("post_logout_redirect_uris", &r.post_logout_redirect_uris)?,
            scopes: from_json("scopes", &r.scopes)?,
            client_id: r.client_id,
            name: r.name,
            secret_hash: r.secret_hash.map(TokenHash::from_stored),
            skip_consent: r.skip_consent,
            require_pkce: r.require_pkce,
            access_token_format: r
                .access_token_format
                .map(|f| f.parse::<AccessTokenFormat>())
                .transpose()
                .map_err(StoreError::Corrupt)?,
            refresh_without_offline_access: r.refresh_without_offline_access,
            resources: from_json("resources", &r.resources)?,
            jwks: r.jwks,
            jwks_uri: r.jwks_uri,
            secret_enc: r.secret_enc,
            introspection: r.introspection,
            subject_type: r.subject_type.parse::<SubjectType>().map_err(StoreError::Corrupt)?,
            sector_identifier_uri: r.sector_identifier_uri,
            backchannel_logout_uri: r.backchannel_logout_uri,
            backchannel_logout_session_required: r.backchannel_logout_session_required,
            request_object_signing_alg: r.request_object_signing_alg,
            request_uris: from_json("request_uris", &r.request_uris)?,
            require_par: r.require_par,
            registration_token_hash: r.registration_token_hash.map(TokenHash::from_stored),
            metadata: from_json("metadata", &r.metadata)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The bind values of a client, in column order.
pub(crate) struct ClientBinds {
    pub client_id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub auth_method: &'static str,
    pub grant_types: String,
    pub scopes: String,
    pub skip_consent: bool,
    pub require_pkce: bool,
    pub alg: Option<&'static str>,
    pub access_token_format: Option<&'static str>,
    pub refresh_without_offline_access: bool,
    pub resources: String,
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub secret_enc: Option<String>,
    pub introspection: bool,
    pub subject_type: &'static str,
    pub sector_identifier_uri: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub request_object_signing_alg: Option<String>,
    pub request_uris: String,
    pub require_par: bool,
    pub registration_token_hash: Option<String>,
    pub metadata: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ClientBinds {
    pub(crate) fn of(c: &Client) -> StoreResult<Self> {
        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        Ok(Self {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            secret_hash: c.secret_hash.as_ref().map(|h| h.as_str().to_owned()),
            redirect_uris: to_json(&c.redirect_uris)?,
            post_logout_redirect_uris: to_json(&c.post_logout_redirect_uris)?,
            auth_method: c.auth_method.as_str(),
            grant_types: to_json(&grants)?,
            scopes: to_json(&c.scopes)?,
            skip_consent: c.skip_consent,
            require_pkce: c.require_pkce,
            alg: c.id_token_signed_response_alg.map(|a| a.as_str()),
            access_token_format: c.access_token_format.map(|f| f.as_str()),
            refresh_without_offline_access: c.refresh_without_offline_access,
            resources: to_json(&c.resources)?,
            jwks: c.jwks.clone(),
            jwks_uri: c.jwks_uri.clone(),
            secret_enc: c.secret_enc.clone(),
            introspection: c.introspection,
            subject_type: c.subject_type.as_str(),
            sector_identifier_uri: c.sector_identifier_uri.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: c.backchannel_logout_session_required,
            request_object_signing_alg: c.request_object_signing_alg.clone(),
            request_uris: to_json(&c.request_uris)?,
            require_par: c.require_par,
            registration_token_hash: c.registration_token_hash.as_ref().map(|h| h.as_str().to_owned()),
            metadata: to_json(&c.metadata)?,
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
    }
}

macro_rules! impl_client_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::ClientStore for $ty {
            async fn create_client(&self, c: &latchkey_core::model::Client) -> $crate::StoreResult<$crate::Created> {
                let b = $crate::clients::ClientBinds::of(c)?;
                let r = sqlx::query($crate::clients::INSERT_CLIENT)
                    .bind(b.client_id)
                    .bind(b.name)
                    .bind(b.secret_hash)
                    .bind(b.redirect_uris)
                    .bind(b.post_logout_redirect_uris)
                    .bind(b.auth_method)
                    .bind(b.grant_types)
                    .bind(b.scopes)
                    .bind(b.skip_consent)
                    .bind(b.require_pkce)
                    .bind(b.alg)
                    .bind(b.access_token_format)
                    .bind(b.refresh_without_offline_access)
                    .bind(b.resources)
                    .bind(b.jwks)
                    .bind(b.jwks_uri)
                    .bind(b.secret_enc)
                    .bind(b.introspection)
                    .bind(b.subject_type)
                    .bind(b.sector_identifier_uri)
                    .bind(b.backchannel_logout_uri)
                    .bind(b.backchannel_logout_session_required)
                    .bind(b.request_object_signing_alg)
                    .bind(b.request_uris)
                    .bind(b.require_par)
                    .bind(b.registration_token_hash)
                    .bind(b.metadata)
                    .bind(b.created_at)
                    .bind(b.updated_at)
                    .execute(&mut *self.write().await?)
                    .await;
                match r {
                    Ok(_) => Ok($crate::Created::Created),
                    Err(e) if $crate::sql::is_unique_violation(&e) => Ok($crate::Created::AlreadyExists),
                    Err(e) => Err(e.into()),
                }
            }

            async fn get_client(&self, client_id: &str) -> $crate::StoreResult<Option<latchkey_core::model::Client>> {
                let row: Option<$crate::clients::ClientRow> =
                    sqlx::query_as($crate::clients::SELECT_CLIENT).bind(client_id).fetch_optional(&self.pool).await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn list_clients(&self) -> $crate::StoreResult<Vec<latchkey_core::model::Client>> {
                let rows: Vec<$crate::clients::ClientRow> =
                    sqlx::query_as($crate::clients::LIST_CLIENTS).fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn update_client(&self, c: &latchkey_core::model::Client) -> $crate::StoreResult<bool> {
                let b = $crate::clients::ClientBinds::of(c)?;
                let r = sqlx::query($crate::clients::UPDATE_CLIENT)
                    .bind(b.client_id)
                    .bind(b.name)
                    .bind(b.secret_hash)
                    .bind(b.redirect_uris)
                    .bind(b.post_logout_redirect_uris)
                    .bind(b.auth_method)
                    .bind(b.grant_types)
                    .bind(b.scopes)
                    .bind(b.skip_consent)
                    .bind(b.require_pkce)
                    .bind(b.alg)
                    .bind(b.access_token_format)
                    .bind(b.refresh_without_offline_access)
                    .bind(b.resources)
                    .bind(b.jwks)
                    .bind(b.jwks_uri)
                    .bind(b.secret_enc)
                    .bind(b.introspection)
                    .bind(b.subject_type)
                    .bind(b.sector_identifier_uri)
                    .bind(b.backchannel_logout_uri)
                    .bind(b.backchannel_logout_session_required)
                    .bind(b.request_object_signing_alg)
                    .bind(b.request_uris)
                    .bind(b.require_par)
                    .bind(b.registration_token_hash)
                    .bind(b.metadata)
                    .bind(b.updated_at)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn delete_client(&self, client_id: &str) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::clients::DELETE_CLIENT)
                    .bind(client_id)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_client_store;
