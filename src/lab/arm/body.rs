//! Request bodies as ARM reads them: ARM's JSON reader (Json.NET) takes property
//! names in any case and tolerates trailing commas, and the documented scripts
//! rely on both (`"TargetDatabase"`, `"PublicBlob"`, a comma before `}`).

use serde_json::Value;

/// Parses a body, dropping commas that come right before `}` or `]`.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the request content is not UTF-8".to_string())?;
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(c);
    }
    serde_json::from_str(&out).map_err(|e| e.to_string())
}

/// A property by name, in any case.
pub fn get<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// A string property of `properties`, in any case.
pub fn prop(body: &Value, name: &str) -> Option<String> {
    let p = get(body, "properties")?;
    get(p, name)?.as_str().map(str::to_string)
}

/// A string field of an action's body (`failover`, `setRole`): at the top, as
/// the spec defines those bodies.
pub fn field(body: &Value, name: &str) -> Option<String> {
    get(body, name)?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_powershell_body() {
        let body = br#"{
    "properties":{
        "TargetDatabase":"SalesDB",
        "SourceEndpoint":"TCP://10.0.0.4:5022",
        "PrimaryAvailabilityGroupName":"AG_SalesDB",
        "SecondaryAvailabilityGroupName":"mi-contoso",
    }
}"#;
        let v = parse(body).unwrap();
        assert_eq!(prop(&v, "targetDatabase").as_deref(), Some("SalesDB"));
        assert_eq!(prop(&v, "secondaryAvailabilityGroupName").as_deref(), Some("mi-contoso"));
        // A comma inside a string stays.
        assert_eq!(parse(br#"{"a": "x, }"}"#).unwrap()["a"], "x, }");
        assert!(parse(b"{\"a\": ").is_err());
    }
}
