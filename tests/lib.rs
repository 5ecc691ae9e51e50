//! One integration-test binary: it links once.

mod lab;
mod support;
