//! Pure licensing rules: no I/O, no clock of their own.

pub mod grace;
