//! Which implementation a measurement ran against: the bridge under test or
//! the hand-written peer of `--peer`.

/// Which implementation a measurement ran against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The bridge under test (`--spawn` or the URL options).
    Ours,
    /// The hand-written peer (`--peer`).
    Peer,
}
