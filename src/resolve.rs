//! Resolving spreadsheet values to directory users: per-row lookups or one bulk listing, whichever costs fewer requests.
