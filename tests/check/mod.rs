mod cli;
mod deadline;
mod scenarios;
