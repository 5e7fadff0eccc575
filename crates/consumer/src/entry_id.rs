//! [`EntryId`]: a stream entry id held inline, as Redis wrote it.
//!
//! Every entry a consumer reads carries an id that it keeps until the entry is acked or
//! dead-lettered. As a `String` that was one allocation and one free per entry, a tenth of
//! the consumer's CPU together with the others; an id is at most 41 bytes
//! (`<u64>-<u64>`), so it fits in the value itself.
//!
//! Invariant: [`EntryId::as_str`] is exactly the text it was made from (no normalising:
//! `XACK` and `XCLAIM` get back what Redis sent).

use std::fmt;

/// The longest id Redis writes: `18446744073709551615-18446744073709551615`.
const MAX_LEN: usize = 41;

/// A stream entry id of at most 41 bytes, held inline (`Copy`, no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct EntryId {
    len: u8,
    bytes: [u8; MAX_LEN],
}

impl EntryId {
    /// `0`: before every entry (a re-read of own pending entries starts there).
    pub(crate) const START: Self = {
        let mut bytes = [0; MAX_LEN];
        bytes[0] = b'0';
        Self { len: 1, bytes }
    };

    /// The id `text`; `None` when it is longer than any id Redis writes.
    pub(crate) fn new(text: &str) -> Option<Self> {
        let len = text.len();
        if len > MAX_LEN {
            return None;
        }
        let mut bytes = [0; MAX_LEN];
        bytes[..len].copy_from_slice(text.as_bytes());
        Some(Self {
            len: len as u8,
            bytes,
        })
    }

    /// The id as text.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)])
            .expect("made from a str, cut at its end")
    }
}

impl std::ops::Deref for EntryId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl redis::ToRedisArgs for EntryId {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        out.write_arg(self.as_str().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_longest_id_redis_writes_fits_and_one_byte_more_does_not() {
        let longest = format!("{}-{}", u64::MAX, u64::MAX);
        assert_eq!(longest.len(), MAX_LEN);
        assert_eq!(EntryId::new(&longest).unwrap().as_str(), longest);
        assert_eq!(EntryId::new(&format!("{longest}0")), None);
        assert_eq!(EntryId::new("").unwrap().as_str(), "");
    }

    #[test]
    fn it_reads_writes_and_compares_as_its_text() {
        let id = EntryId::new("1733450000000-12").unwrap();
        assert_eq!(id.as_str(), "1733450000000-12");
        assert_eq!(EntryId::START.as_str(), "0");
        assert_eq!(
            format!("{id} {id:?}"),
            "1733450000000-12 \"1733450000000-12\""
        );
        let packed = redis::cmd("XACK").arg(id).get_packed_command();
        assert_eq!(
            packed,
            b"*2\r\n$4\r\nXACK\r\n$16\r\n1733450000000-12\r\n".to_vec()
        );
        assert_ne!(id, EntryId::new("1733450000000-1").unwrap());
    }

    proptest! {
        #[test]
        fn any_text_that_fits_comes_back_unchanged(text in "\\PC{0,41}") {
            match EntryId::new(&text) {
                Some(id) => {
                    prop_assert!(text.len() <= MAX_LEN);
                    prop_assert_eq!(id.as_str(), text.as_str());
                    prop_assert_eq!(id, EntryId::new(&text).unwrap());
                }
                None => prop_assert!(text.len() > MAX_LEN),
            }
        }
    }
}
