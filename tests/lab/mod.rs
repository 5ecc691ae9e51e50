mod arm;
mod faults;
mod isolation;
mod link_create;
mod scenarios;
mod tds;
mod third_party;
mod topology;
