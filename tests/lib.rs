//! One integration-test binary: it links once.

mod audit;
mod check;
mod diagnose;
mod lab;
mod link;
mod props;
mod support;
