//! What ARM checks before it looks at an operation: the bearer token, the
//! api-version, and that the path names this subscription, resource group
//! and instance. Each refusal is ARM's own status, code and message.

use hyper::StatusCode;

use super::route::{self, Route};
use super::server::{Req, Resp};
use super::{Arm, error};

impl Arm {
    /// What ARM checks before it looks at the operation: the token, the
    /// api-version, the subscription, resource group and instance in the path.
    #[allow(clippy::result_large_err)] // the error is the response itself
    pub(super) fn admit(&self, req: &Req) -> Result<(Route, String), Resp> {
        // Authentication comes first, as ARM checks it before anything else.
        self.authenticated(req)?;
        let Some(api) = req.query("api-version").map(str::to_string) else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        };
        let versions = self.versions();
        if !versions.iter().any(|v| v == &api) {
            let list = versions.join("', '");
            let wellformed = api.len() >= 10 && api[..10].chars().all(|c| c.is_ascii_digit() || c == '-');
            return Err(if wellformed {
                error(
                    StatusCode::BAD_REQUEST,
                    "NoRegisteredProviderFound",
                    format!(
                        "No registered resource provider found for location '{}' and API version '{api}' for type 'managedInstances'. The supported api-versions are '{list}'. The supported locations are '{}'.",
                        self.cfg.location, self.cfg.location
                    ),
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    "InvalidApiVersionParameter",
                    format!("The api-version '{api}' is invalid. The supported versions are '{list}'."),
                )
            });
        }
        let Some(path) = route::parse(&req.path) else {
            return Err(error(
                StatusCode::NOT_FOUND,
                "InvalidRequestUri",
                format!("The request URI '{}' is not valid.", req.path),
            ));
        };
        if path.subscription != self.cfg.subscription_id {
            return Err(error(
                StatusCode::NOT_FOUND,
                "SubscriptionNotFound",
                format!("The subscription '{}' could not be found.", path.subscription),
            ));
        }
        if let Some(rg) = &path.resource_group
            && !rg.eq_ignore_ascii_case(&self.cfg.resource_group)
        {
            return Err(error(
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
                format!("Resource group '{rg}' could not be found."),
            ));
        }
        let route = match path.route {
            Ok(r) => r,
            Err(t) => {
                return Err(error(
                    StatusCode::NOT_FOUND,
                    "InvalidResourceType",
                    format!(
                        "The resource type '{t}' could not be found in the namespace 'Microsoft.Sql' for api version '{api}'."
                    ),
                ));
            }
        };
        if let Some(mi) = &path.instance
            && !mi.eq_ignore_ascii_case(&self.instance)
        {
            return Err(if route == Route::Instance {
                error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    format!(
                        "The Resource 'Microsoft.Sql/managedInstances/{mi}' under resource group '{}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                        self.cfg.resource_group
                    ),
                )
            } else {
                error(
                    StatusCode::NOT_FOUND,
                    "ParentResourceNotFound",
                    format!(
                        "Can not perform requested operation on nested resource. Parent resource '{mi}' not found."
                    ),
                )
            });
        }
        Ok((route, api))
    }

    /// The bearer token is the lab's.
    #[allow(clippy::result_large_err)] // the error is the response itself
    fn authenticated(&self, req: &Req) -> Result<(), Resp> {
        match req.header("authorization") {
            None => {
                let mut r = error(
                    StatusCode::UNAUTHORIZED,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                );
                r.headers_mut().insert("www-authenticate", "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"The authentication failed because of missing 'Authorization' header.\"".parse().expect("static"));
                return Err(r);
            }
            Some(h) if h.strip_prefix("Bearer ").map(str::trim) != Some(self.token.as_str()) => {
                let mut r =
                    error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "The access token is invalid.");
                r.headers_mut().insert("www-authenticate", "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"The access token is invalid.\"".parse().expect("static"));
                return Err(r);
            }
            Some(_) => {}
        }
        Ok(())
    }
}
