//! Helpers of the Apideck sandbox tests.

#![allow(dead_code)]

pub mod spec;
