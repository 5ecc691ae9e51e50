//! Azure: signing in, and the Resource Manager API for the managed instance.

pub mod arm;
pub mod auth;
pub mod instance;
