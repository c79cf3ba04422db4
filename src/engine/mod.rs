//! The plan/apply engine: resolved users → current state → plan → changes → states read back.
