mod faults;
mod tds;
