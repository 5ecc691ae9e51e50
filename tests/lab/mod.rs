mod faults;
mod scenarios;
mod tds;
mod third_party;
mod topology;
