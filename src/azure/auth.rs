//! Azure sign-in: a bearer token for ARM (and for Azure AD logins to the managed
//! instance), from a token given outright, a service principal, the Azure CLI's
//! login or a managed identity. The credentials are the Azure SDK for Rust's
//! (azure_identity); milink only chooses among them.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;

use crate::profile::{ArmAuth, Secret};

pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
pub const SQL_SCOPE: &str = "https://database.windows.net/.default";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no Azure credential: {0}")]
    None(String),
    #[error("{what} could not get a token: {message}")]
    Failed { what: &'static str, message: String },
}

/// A credential, with what to call it in an error.
type Named = (&'static str, Arc<dyn TokenCredential>);

/// Where tokens come from.
pub struct Tokens {
    auth: ArmAuth,
    /// A token given outright (environment, file or secrets file).
    fixed: Option<Secret>,
}

impl Tokens {
    pub fn new(auth: ArmAuth, fixed: Option<Secret>) -> Tokens {
        Tokens { auth, fixed }
    }

    /// A token for `scope`. A token given outright is an ARM token: it is not
    /// offered to SQL.
    pub async fn token(&self, scope: &str) -> Result<Secret, AuthError> {
        if let Some(t) = &self.fixed
            && matches!(self.auth, ArmAuth::Auto | ArmAuth::Token)
            && scope == ARM_SCOPE
        {
            return Ok(t.clone());
        }
        let (what, cred) = self.credential()?;
        let t = cred
            .get_token(&[scope], None)
            .await
            .map_err(|e| AuthError::Failed { what, message: short(&e.to_string()) })?;
        Ok(Secret::new(t.token.secret()))
    }

    /// The credential the profile asks for. `auto` never probes the instance
    /// metadata service unless an identity endpoint is configured: on a machine
    /// that is not in Azure that probe would leave the network for nothing.
    fn credential(&self) -> Result<Named, AuthError> {
        let failed =
            |what: &'static str| move |e: azure_core::Error| AuthError::Failed { what, message: short(&e.to_string()) };
        let sp = || -> Option<Result<Named, AuthError>> {
            let (tenant, client, secret) = (
                std::env::var("AZURE_TENANT_ID").ok()?,
                std::env::var("AZURE_CLIENT_ID").ok()?,
                std::env::var("AZURE_CLIENT_SECRET").ok()?,
            );
            Some(
                azure_identity::ClientSecretCredential::new(&tenant, client, secret.into(), None)
                    .map(|c| ("the service principal (AZURE_CLIENT_ID)", c as Arc<dyn TokenCredential>))
                    .map_err(failed("the service principal")),
            )
        };
        let cli = || {
            azure_identity::AzureCliCredential::new(None)
                .map(|c| ("the Azure CLI (az account get-access-token)", c as Arc<dyn TokenCredential>))
                .map_err(failed("the Azure CLI"))
        };
        let msi = || {
            azure_identity::ManagedIdentityCredential::new(None)
                .map(|c| ("the managed identity", c as Arc<dyn TokenCredential>))
                .map_err(failed("the managed identity"))
        };
        match self.auth {
            ArmAuth::Token => Err(AuthError::None(
                "auth = \"token\" but no token was given (MILINK_ARM_TOKEN, token_file, or the secrets file)".into(),
            )),
            ArmAuth::ServicePrincipal => sp().unwrap_or_else(|| {
                Err(AuthError::None("AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are needed".into()))
            }),
            ArmAuth::Cli => cli(),
            ArmAuth::ManagedIdentity => msi(),
            ArmAuth::Auto => {
                if let Some(c) = sp() {
                    return c;
                }
                if on_path("az") {
                    return cli();
                }
                if std::env::var_os("IDENTITY_ENDPOINT").is_some() || std::env::var_os("MSI_ENDPOINT").is_some() {
                    return msi();
                }
                Err(AuthError::None(
                    "give a token (MILINK_ARM_TOKEN or arm.token_file), a service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET), sign in with `az login`, or set arm.auth = \"managed_identity\"".into(),
                ))
            }
        }
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Errors from identity providers can be long; the first line says what failed.
fn short(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s);
    line.chars().take(300).collect()
}

/// For `managed_instance.azure_ad`: a token for the instance's TDS login from
/// the profile's Azure sign-in, when none was given.
pub async fn sql_login_token(p: &mut crate::profile::Profile) -> Result<(), AuthError> {
    if !p.managed_instance.azure_ad || p.mi_token.is_some() {
        return Ok(());
    }
    let auth = if p.arm.auth == ArmAuth::Token { ArmAuth::Auto } else { p.arm.auth };
    p.mi_token = Some(Tokens::new(auth, None).token(SQL_SCOPE).await?);
    Ok(())
}
