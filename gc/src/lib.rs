//! Garbage collection of the slapstore store: delete every output that no generation, pin or
//! running build reaches (design §4, §9).
//!
//! Depends on `slapstore-store` only, never on the frontend. Marking, sweeping and `optimise`
//! arrive with the GC issue; this crate is the place they will live.
