//! The mirroring endpoint: created, altered and dropped for real (its port
//! listens while it is STARTED).

use super::parse::Mirroring;
use super::{Ctx, Done};
use crate::lab::catalog::Catalog;
use crate::lab::sql::SqlError;
use crate::lab::state::World;
use crate::lab::state::objects::{Algorithm, Auth, Cipher, Encryption, Endpoint, EndpointState, Windows};

pub(super) fn create_endpoint(
    cx: &Ctx<'_>,
    world: &mut World,
    name: String,
    state: Option<String>,
    port: Option<u16>,
    mirroring: Option<Mirroring>,
) -> Done {
    let side = cx.side;
    let c = cx.c;
    let s = world.server_mut(side);
    if s.endpoint.is_some() {
        return Err(SqlError::new(
            7862,
            16,
            1,
            "An endpoint of the requested type already exists.  Only one endpoint of this type is supported.  Use ALTER ENDPOINT or DROP the existing endpoint and execute the CREATE ENDPOINT statement.",
        ));
    }
    let port = port.expect("parse demands it");
    let m = mirroring.ok_or_else(|| SqlError::syntax_near(&name))?;
    let state = endpoint_state(state.as_deref(), EndpointState::Stopped)?;
    let auth = auth(m.auth.as_deref().unwrap_or(&["WINDOWS".into()]), s)?;
    let cipher = cipher(&m)?;
    let endpoint = Endpoint {
        id: 65536,
        name: name.clone(),
        port,
        state,
        role: m.role.clone().unwrap_or_else(|| "ALL".into()),
        auth,
        cipher,
        // LISTENER_IP = ALL, the link's documented setting (a single address is a scenario's).
        listener_ip: None,
    };
    listen(c, &endpoint)?;
    world.server_mut(side).endpoint = Some(endpoint);
    Ok(("CREATE ENDPOINT", name))
}

pub(super) fn alter_endpoint(
    cx: &Ctx<'_>,
    world: &mut World,
    name: String,
    state: Option<String>,
    port: Option<u16>,
    mirroring: Option<Mirroring>,
) -> Done {
    let side = cx.side;
    let c = cx.c;
    let s = world.server_mut(side);
    let Some(current) = s.endpoint.clone().filter(|e| e.name.eq_ignore_ascii_case(&name)) else {
        return Err(SqlError::new(
            15151,
            16,
            1,
            format!("Cannot alter the endpoint '{name}', because it does not exist or you do not have permission."),
        ));
    };
    let mut e = current;
    if let Some(st) = state {
        e.state = endpoint_state(Some(&st), e.state)?;
    }
    if let Some(p) = port {
        e.port = p;
    }
    if let Some(m) = mirroring {
        if let Some(words) = &m.auth {
            e.auth = auth(words, s)?;
        }
        if m.encryption.is_some() {
            e.cipher = cipher(&m)?;
        }
        if let Some(r) = m.role {
            e.role = r;
        }
    }
    listen(c, &e)?;
    world.server_mut(side).endpoint = Some(e);
    Ok(("ALTER ENDPOINT", name))
}

pub(super) fn drop_endpoint(cx: &Ctx<'_>, world: &mut World, name: String) -> Done {
    let side = cx.side;
    let c = cx.c;
    let s = world.server_mut(side);
    if !s.endpoint.as_ref().is_some_and(|e| e.name.eq_ignore_ascii_case(&name)) {
        return Err(SqlError::new(
            15151,
            16,
            1,
            format!("Cannot drop the endpoint '{name}', because it does not exist or you do not have permission."),
        ));
    }
    s.endpoint = None;
    if let Some(h) = &c.host {
        h.endpoint_port(None);
    }
    Ok(("DROP ENDPOINT", name))
}

fn endpoint_state(s: Option<&str>, default: EndpointState) -> Result<EndpointState, SqlError> {
    match s {
        None => Ok(default),
        Some(s) => EndpointState::parse(s).ok_or_else(|| SqlError::syntax_near(s)),
    }
}

/// `WINDOWS [NTLM|KERBEROS|NEGOTIATE] [CERTIFICATE c]` or `CERTIFICATE c [WINDOWS …]`.
fn auth(words: &[String], s: &crate::lab::state::Server) -> Result<Auth, SqlError> {
    let mut a = Auth { windows: None, certificate: None, certificate_first: false };
    let mut i = 0;
    while i < words.len() {
        match words[i].to_ascii_uppercase().as_str() {
            "WINDOWS" => {
                let kind = match words.get(i + 1).map(|w| w.to_ascii_uppercase()).as_deref() {
                    Some("NTLM") => Some(Windows::Ntlm),
                    Some("KERBEROS") => Some(Windows::Kerberos),
                    Some("NEGOTIATE") => Some(Windows::Negotiate),
                    _ => None,
                };
                a.windows = Some(kind.unwrap_or(Windows::Negotiate));
                i += if kind.is_some() { 2 } else { 1 };
            }
            "CERTIFICATE" => {
                let name = words.get(i + 1).ok_or_else(|| SqlError::syntax_near("CERTIFICATE"))?;
                if s.certificate(name).is_none() {
                    return Err(SqlError::new(
                        15151,
                        16,
                        1,
                        format!(
                            "Cannot find the certificate '{name}', because it does not exist or you do not have permission."
                        ),
                    ));
                }
                a.certificate_first = a.windows.is_none();
                a.certificate = Some(name.clone());
                i += 2;
            }
            other => return Err(SqlError::syntax_near(other)),
        }
    }
    if a.windows.is_none() {
        a.certificate_first = false;
    }
    Ok(a)
}

fn cipher(m: &Mirroring) -> Result<Cipher, SqlError> {
    let (level, algorithms) = m.encryption.clone().unwrap_or_else(|| ("REQUIRED".into(), vec!["AES".into()]));
    let encryption = match level.as_str() {
        "DISABLED" => Encryption::Disabled,
        "SUPPORTED" => Encryption::Supported,
        _ => Encryption::Required,
    };
    let algorithms =
        algorithms.iter().map(|a| if a == "RC4" { Algorithm::Rc4 } else { Algorithm::Aes }).collect::<Vec<_>>();
    Ok(Cipher { encryption, algorithms })
}

/// The endpoint's port listens while it is STARTED (26023 when it cannot).
fn listen(c: &Catalog, e: &Endpoint) -> Result<(), SqlError> {
    let port = (e.state == EndpointState::Started).then_some(e.port);
    if let Some(h) = &c.host
        && !h.endpoint_port(port)
    {
        return Err(SqlError::new(
            26023,
            16,
            1,
            format!("Server TCP provider failed to listen on [ 'any' <ipv4> {}]. Tcp port is already in use.", e.port),
        ));
    }
    Ok(())
}
