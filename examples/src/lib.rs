//! Runnable examples for seaworthy; see the `[[example]]` targets.
