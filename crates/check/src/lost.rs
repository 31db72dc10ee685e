//! Lost acknowledged writes (to come).
