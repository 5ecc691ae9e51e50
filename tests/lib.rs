//! One integration-test binary: it links once.

mod audit;
mod bundle;
mod check;
mod deploy;
mod diagnose;
mod lab;
mod link;
mod props;
mod support;
mod watch;
