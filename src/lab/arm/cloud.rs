//! What an Azure client asks of a cloud before any resource: the metadata
//! document (`az cloud register` reads it without a token) and the
//! subscriptions and tenants a signed-in identity can see (`az login`).

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::server::{Req, Resp, json as reply};
use super::{Arm, token};

impl Arm {
    /// Answers the cloud-level requests; `None` for anything else.
    pub(super) fn cloud(&self, req: &Req) -> Option<Resp> {
        // `--endpoint-resource-manager https://host/` makes the CLI ask for `//metadata/…`.
        let path = format!("/{}", req.path.trim_matches('/').to_ascii_lowercase());
        if req.method != Method::GET {
            return None;
        }
        match path.as_str() {
            "/metadata/endpoints" => Some(self.metadata(req)),
            "/subscriptions" | "/tenants" => {
                let bearer = req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")).map(str::trim);
                if bearer != Some(self.token.as_str()) {
                    return None; // `admit` answers with ARM's own 401
                }
                let value = if path == "/subscriptions" { self.subscriptions() } else { tenants() };
                Some(reply(StatusCode::OK, &json!({ "value": value })))
            }
            _ => None,
        }
    }

    /// The cloud's endpoints: the old shape for api-version 2015-01-01, a list
    /// of clouds for 2019-05-01, one cloud for the newer ones (the Azure CLI
    /// asks 2022-09-01 when it registers a cloud).
    fn metadata(&self, req: &Req) -> Resp {
        let arm = format!("{}/", req.base);
        let audiences = json!([arm.clone(), "https://management.core.windows.net/", "https://management.azure.com/"]);
        if req.query("api-version") == Some("2015-01-01") {
            return reply(
                StatusCode::OK,
                &json!({
                    "galleryEndpoint": arm,
                    "graphEndpoint": "https://graph.windows.net/",
                    "portalEndpoint": "https://portal.azure.com/",
                    "authentication": { "loginEndpoint": "https://login.microsoftonline.com/", "audiences": audiences },
                }),
            );
        }
        let cloud = json!({
                "name": "MilinkLab",
                "portal": "https://portal.azure.com",
                "resourceManager": arm,
                "authentication": {
                    "loginEndpoint": "https://login.microsoftonline.com",
                    "audiences": audiences,
                    "tenant": "common",
                    "identityProvider": "AAD",
                },
                "media": arm,
                "graphAudience": "https://graph.windows.net/",
                "graph": "https://graph.windows.net/",
                "sqlManagement": "https://management.core.windows.net:8443/",
                "microsoftGraphResourceId": "https://graph.microsoft.com/",
                "activeDirectoryDataLake": "https://datalake.azure.net/",
                "batch": "https://batch.core.windows.net/",
                "gallery": arm,
                "suffixes": {
                    "sqlServerHostname": "database.windows.net",
                    "storage": "core.windows.net",
                    "keyVaultDns": "vault.azure.net",
                    "acrLoginServer": "azurecr.io",
                },
        });
        let body = if req.query("api-version") == Some("2019-05-01") { json!([cloud]) } else { cloud };
        reply(StatusCode::OK, &body)
    }

    fn subscriptions(&self) -> Value {
        json!([{
            "id": format!("/subscriptions/{}", self.cfg.subscription_id),
            "subscriptionId": self.cfg.subscription_id,
            "tenantId": token::TENANT,
            "displayName": "milink lab",
            "state": "Enabled",
            "subscriptionPolicies": { "locationPlacementId": "Public_2014-09-01", "quotaId": "Internal_2014-09-01", "spendingLimit": "Off" },
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
        }])
    }
}

fn tenants() -> Value {
    json!([{ "id": format!("/tenants/{}", token::TENANT), "tenantId": token::TENANT, "tenantCategory": "Home", "displayName": "milink lab" }])
}
