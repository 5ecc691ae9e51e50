mod cli;
mod scenarios;
