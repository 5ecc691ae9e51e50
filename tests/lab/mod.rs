mod faults;
mod isolation;
mod scenarios;
mod tds;
mod third_party;
mod topology;
