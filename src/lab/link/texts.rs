//! The texts SQL Server writes for a link's errors: `last_connect_error_description`
//! and error-log lines. Numbers and texts from the 35000/41000 error lists where
//! they exist; the handshake texts are UNCONFIRMED (mi-link-facts §2).

pub const REFUSED: &str = "Connection attempt failed with error: '10061(No connection could be made because the target machine actively refused it.)'.";
pub const CLOSED_REFUSED: &str = "The connection was closed by the remote end, or an error occurred while receiving data: '10061(No connection could be made because the target machine actively refused it.)'";
pub const RESET: &str =
    "Connection attempt failed with error: '10054(An existing connection was forcibly closed by the remote host.)'.";
pub const NO_SUCH_HOST: &str = "Connection attempt failed with error: '11001(No such host is known.)'.";
pub const UNREACHABLE: &str =
    "Connection attempt failed with error: '10065(A socket operation was attempted to an unreachable host.)'.";
pub const SQL_CERT_NOT_ON_MI: &str =
    "The endpoint certificate of SQL Server is not imported into the managed instance.";
pub const MI_CERT_NOT_ON_SQL: &str = "The managed instance's endpoint certificate is not imported into SQL Server.";
pub const NO_TARGET_DATABASE: &str = "Connected to SQL Server, but there was no response from the target database.";
pub const REMOTE_CERT_EXPIRED: &str =
    "Connection attempt failed with error: 'The certificate used by the remote endpoint has expired.'";
pub const OWN_CERT_EXPIRED: &str =
    "Connection handshake failed. The certificate used by this endpoint was not found or has expired.";
pub const NO_ALGORITHM: &str = "Connection handshake failed. There is no compatible encryption algorithm. State 22.";
pub const NO_CONNECT_PERMISSION: &str = "Connection handshake failed. The login 'NT AUTHORITY\\ANONYMOUS LOGON' does not have CONNECT permission on the endpoint. State 84.";
pub const REDIRECT_EMPTY: &str = "Database Mirroring login attempt failed with error: 'Tried to send redirect request but the redirect string is empty'.";

/// 35201.
pub fn timeout(replica: &str) -> String {
    format!(
        "A connection timeout has occurred while attempting to establish a connection to availability replica '{replica}' with id [00000000-0000-0000-0000-000000000000]. Either a networking or firewall issue exists, or the endpoint address provided for the replica is not the database mirroring endpoint of the host server instance."
    )
}

/// 35206.
pub fn timeout_established(replica: &str) -> String {
    format!(
        "A connection timeout has occurred on a previously established connection to availability replica '{replica}'."
    )
}

/// 41976.
pub fn not_responding(ag: &str, url: &str) -> String {
    format!("Availability group '{ag}' is not responding at endpoint '{url}'.")
}

/// An error-log line for a failed endpoint handshake.
pub fn login_failed(why: &str) -> String {
    format!("Database Mirroring login attempt failed with error: '{why}'.")
}

/// 35202, in the error log once the sides connect.
pub fn connected(dag: &str, from: &str, to: &str) -> String {
    format!(
        "A connection for availability group '{dag}' from availability replica '{from}' with id [00000000-0000-0000-0000-000000000000] to '{to}' with id [00000000-0000-0000-0000-000000000000] has been successfully established.  This is an informational message only. No user action is required."
    )
}
