//! Mutexes whose value is used whatever a panicking holder left: every lock of the crate guards a
//! list or cache that stays whole between its operations, and a panic already fails the check.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// The value behind `mutex`, locked.
pub fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The value of a mutex no one else holds any more.
pub fn unlocked<T>(mutex: Mutex<T>) -> T {
    mutex.into_inner().unwrap_or_else(PoisonError::into_inner)
}
