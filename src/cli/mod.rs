//! Front door: the command-line subcommands.

pub mod check;
pub mod diff;
pub mod drift;
pub mod hook;
pub mod init;
pub mod policies;
pub mod verify;
