//! For the edw conformance suite's own tests only, never a dependency of the product: a
//! fault-injecting storage proxy ([`faults`]).

pub mod faults;
