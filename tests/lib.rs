//! One integration-test binary: it links once.

mod check;
mod lab;
mod support;
