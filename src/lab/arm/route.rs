//! ARM paths, matched case-insensitively as ARM does.

/// What a path names, once its subscription and resource group are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Instance,
    TrustList,
    Trust(String),
    EndpointCertList,
    EndpointCert(String),
    DagList,
    Dag(String),
    /// `setRole` or `failover` on a DAG.
    DagAction(String, String),
    /// `…/locations/{loc}/{kind}AzureAsyncOperation/{id}`
    OperationStatus(String),
    /// `…/locations/{loc}/{kind}OperationResults/{id}`
    OperationResult(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub subscription: String,
    pub resource_group: Option<String>,
    /// The managed instance's name in the path.
    pub instance: Option<String>,
    pub route: Result<Route, String>,
}

pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits an ARM path; `None` when it is not under a subscription at all.
pub fn parse(path: &str) -> Option<Path> {
    let parts: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
    let eq = |i: usize, s: &str| parts.get(i).is_some_and(|p| p.eq_ignore_ascii_case(s));
    if !eq(0, "subscriptions") || parts.len() < 2 {
        return None;
    }
    let subscription = parts[1].clone();
    let mut p = Path { subscription, resource_group: None, instance: None, route: Err(String::new()) };
    let mut i = 2;
    if eq(i, "resourceGroups") {
        p.resource_group = parts.get(i + 1).cloned();
        i += 2;
    }
    if !eq(i, "providers") || !eq(i + 1, "Microsoft.Sql") {
        p.route = Err(parts.get(i + 1).cloned().unwrap_or_default());
        return Some(p);
    }
    i += 2;
    let rest = &parts[i..];
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    p.route = match l.as_slice() {
        ["locations", _, kind, _] if kind.ends_with("azureasyncoperation") => {
            Ok(Route::OperationStatus(rest[3].clone()))
        }
        ["locations", _, kind, _] if kind.ends_with("operationresults") => Ok(Route::OperationResult(rest[3].clone())),
        ["managedinstances", _, tail @ ..] => {
            p.instance = Some(rest[1].clone());
            match tail {
                [] => Ok(Route::Instance),
                ["servertrustcertificates"] => Ok(Route::TrustList),
                ["servertrustcertificates", _] => Ok(Route::Trust(rest[3].clone())),
                ["endpointcertificates"] => Ok(Route::EndpointCertList),
                ["endpointcertificates", _] => Ok(Route::EndpointCert(rest[3].clone())),
                ["distributedavailabilitygroups"] => Ok(Route::DagList),
                ["distributedavailabilitygroups", _] => Ok(Route::Dag(rest[3].clone())),
                ["distributedavailabilitygroups", _, action] => {
                    Ok(Route::DagAction(rest[3].clone(), action.to_string()))
                }
                [other, ..] => Err(format!("managedInstances/{other}")),
            }
        }
        [first, ..] => Err(first.to_string()),
        [] => Err(String::new()),
    };
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_any_case() {
        let p = parse("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Sql/managedInstances/mi/distributedAvailabilityGroups/DAG_Sales%5DDB").unwrap();
        assert_eq!(p.instance.as_deref(), Some("mi"));
        assert_eq!(p.route, Ok(Route::Dag("DAG_Sales]DB".into())));
        let p = parse(
            "/SUBSCRIPTIONS/s1/RESOURCEGROUPS/rg/PROVIDERS/microsoft.sql/MANAGEDINSTANCES/mi/serverTrustCertificates",
        )
        .unwrap();
        assert_eq!(p.route, Ok(Route::TrustList));
        let p = parse("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Sql/locations/westeurope/distributedAvailabilityGroupsAzureAsyncOperation/abc").unwrap();
        assert_eq!(p.route, Ok(Route::OperationStatus("abc".into())));
        assert!(parse("/nope").is_none());
        let p =
            parse("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Sql/managedInstances/mi/databases").unwrap();
        assert_eq!(p.route, Err("managedInstances/databases".into()));
    }
}
